/**
 * The console's people in the server store (same database as the reports, so several server instances share
 * users, sessions and the login rate limit): agents and their clinics, users, sessions, failed logins, one-time
 * logins, alert acknowledgements and the audit log. The audit log has an append and reads, nothing else (and a
 * trigger in the database refuses UPDATE and DELETE). The contract suite runs it on SQLite and PostgreSQL
 * (test/server/accessContract.test.ts). Times are ms.
 */
import type { Role } from './roles.js';

export interface AgentRow {
  readonly agentCode: string;
  readonly name: string;
  /** The agent's part of each use's gross, 0..1, paid out of the investor's part */
  readonly share: number;
  readonly addedAt: number;
}

export interface ClinicAgentRow {
  readonly clinicCode: string;
  readonly agentCode: string;
  readonly assignedAt: number;
}

export interface UserRow {
  readonly username: string;
  readonly role: Role;
  /** The clinic of a clinic user, the agent of an agent user */
  readonly scope?: string;
  readonly locale: 'en' | 'zh';
  readonly createdAt: number;
  readonly disabled: boolean;
}

export interface StoredUser extends UserRow {
  readonly passwordHash: string;
}

export interface SessionRow {
  /** SHA-256 (hex) of the cookie's token: the token itself is never stored */
  readonly id: string;
  readonly username: string;
  readonly csrf: string;
  readonly address: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly expiresAt: number;
}

export interface AuditEntry {
  readonly at: number;
  readonly username: string;
  readonly role: string;
  /** What was done: user.add, login.ok, login.failed, registry.clinic.save, alert.ack, ... */
  readonly action: string;
  /** What it was done to (a user name, a clinic code, an alert key) */
  readonly target: string;
  /** JSON of the input, passwords never */
  readonly detail: string;
  /** Where from: the client address, or cli@HOST for a command on the server */
  readonly address: string;
}

export interface AuditRow extends AuditEntry {
  readonly id: number;
}

export interface AlertAck {
  readonly alertKey: string;
  readonly username: string;
  readonly note: string;
  readonly at: number;
}

export interface AccessStore {
  putAgent(agent: AgentRow): Promise<void>;
  agents(): Promise<AgentRow[]>;
  assignClinic(row: ClinicAgentRow): Promise<void>;
  clinicAgents(): Promise<ClinicAgentRow[]>;

  /** False: the user name is taken */
  addUser(user: StoredUser): Promise<boolean>;
  user(username: string): Promise<StoredUser | undefined>;
  users(): Promise<UserRow[]>;
  /** True when there is at least one user: the HTTP API then wants a login on every route */
  hasUsers(): Promise<boolean>;
  setPassword(username: string, passwordHash: string): Promise<boolean>;
  setLocale(username: string, locale: 'en' | 'zh'): Promise<void>;
  /** False: no such user */
  setDisabled(username: string, disabled: boolean): Promise<boolean>;
  /** False: no such user */
  setRole(username: string, role: Role, scope: string | undefined): Promise<boolean>;
  /** Ends every session of the user; returns how many */
  deleteSessionsOf(username: string): Promise<number>;

  createSession(session: SessionRow): Promise<void>;
  session(id: string): Promise<SessionRow | undefined>;
  touchSession(id: string, at: number): Promise<void>;
  deleteSession(id: string): Promise<void>;
  /** Sessions past their expiry are removed; returns how many */
  deleteExpiredSessions(now: number): Promise<number>;

  recordLoginFailure(keys: readonly string[], at: number): Promise<void>;
  /** Failures of this key since `since` */
  loginFailures(key: string, since: number): Promise<number>;
  clearLoginFailures(key: string): Promise<void>;

  createLoginToken(id: string, username: string, expiresAt: number): Promise<void>;
  /** Marks a token used and returns its user; undefined when unknown, used or expired (one use, atomically) */
  useLoginToken(id: string, now: number): Promise<string | undefined>;

  /** False: acknowledged already (the first acknowledgement stands) */
  acknowledgeAlert(ack: AlertAck): Promise<boolean>;
  alertAcks(): Promise<AlertAck[]>;

  appendAudit(entry: AuditEntry): Promise<void>;
  /** Newest first, at most `limit` */
  audit(limit?: number): Promise<AuditRow[]>;
}
