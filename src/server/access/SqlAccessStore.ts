/** AccessStore over a SqlDriver: the same SQL for SQLite and PostgreSQL. */
import type { SqlDriver } from '../store/SqlDriver.js';
import { num, type Row } from '../store/sqlRows.js';
import type { AccessStore, AgentRow, AlertAck, AuditEntry, AuditRow, ClinicAgentRow, SessionRow, StoredUser, UserRow } from './AccessStore.js';
import type { Role } from './roles.js';

function userFromRow(r: Row): StoredUser {
  return {
    username: String(r.username),
    role: String(r.role) as Role,
    ...(r.scope !== null && r.scope !== undefined ? { scope: String(r.scope) } : {}),
    locale: r.locale === 'zh' ? 'zh' : 'en',
    createdAt: num(r.created_at),
    disabled: num(r.disabled) === 1,
    passwordHash: String(r.password_hash),
  };
}

export class SqlAccessStore implements AccessStore {
  constructor(private readonly db: SqlDriver) {}

  async putAgent(a: AgentRow): Promise<void> {
    await this.db.run(
      'INSERT INTO agents (agent_code, name, share, added_at) VALUES (?, ?, ?, ?) ON CONFLICT (agent_code) DO UPDATE SET name = excluded.name, share = excluded.share',
      [a.agentCode, a.name, a.share, a.addedAt],
    );
  }

  async agents(): Promise<AgentRow[]> {
    return (await this.db.all<Row>('SELECT * FROM agents ORDER BY agent_code')).map((r) => ({ agentCode: String(r.agent_code), name: String(r.name), share: Number(r.share), addedAt: num(r.added_at) }));
  }

  async assignClinic(row: ClinicAgentRow): Promise<void> {
    await this.db.run(
      'INSERT INTO clinic_agents (clinic_code, agent_code, assigned_at) VALUES (?, ?, ?) ON CONFLICT (clinic_code) DO UPDATE SET agent_code = excluded.agent_code, assigned_at = excluded.assigned_at',
      [row.clinicCode, row.agentCode, row.assignedAt],
    );
  }

  async clinicAgents(): Promise<ClinicAgentRow[]> {
    return (await this.db.all<Row>('SELECT * FROM clinic_agents ORDER BY clinic_code')).map((r) => ({ clinicCode: String(r.clinic_code), agentCode: String(r.agent_code), assignedAt: num(r.assigned_at) }));
  }

  async addUser(u: StoredUser): Promise<boolean> {
    const inserted = await this.db.insertIgnoring(
      'users',
      ['username', 'role', 'scope', 'password_hash', 'locale', 'created_at', 'disabled'],
      ['username'],
      [[u.username, u.role, u.scope ?? null, u.passwordHash, u.locale, u.createdAt, u.disabled ? 1 : 0]],
    );
    return inserted.length > 0;
  }

  async user(username: string): Promise<StoredUser | undefined> {
    const rows = await this.db.all<Row>('SELECT * FROM users WHERE username = ?', [username]);
    return rows[0] ? userFromRow(rows[0]) : undefined;
  }

  async users(): Promise<UserRow[]> {
    return (await this.db.all<Row>('SELECT * FROM users ORDER BY username')).map((r) => {
      const { passwordHash: _hidden, ...user } = userFromRow(r);
      return user;
    });
  }

  async hasUsers(): Promise<boolean> {
    return (await this.db.all<Row>('SELECT 1 AS present FROM users LIMIT 1')).length > 0;
  }

  async setPassword(username: string, passwordHash: string): Promise<boolean> {
    return (await this.db.run('UPDATE users SET password_hash = ? WHERE username = ?', [passwordHash, username])) > 0;
  }

  async setLocale(username: string, locale: 'en' | 'zh'): Promise<void> {
    await this.db.run('UPDATE users SET locale = ? WHERE username = ?', [locale, username]);
  }

  async setDisabled(username: string, disabled: boolean): Promise<boolean> {
    return (await this.db.run('UPDATE users SET disabled = ? WHERE username = ?', [disabled ? 1 : 0, username])) > 0;
  }

  async setRole(username: string, role: Role, scope: string | undefined): Promise<boolean> {
    return (await this.db.run('UPDATE users SET role = ?, scope = ? WHERE username = ?', [role, scope ?? null, username])) > 0;
  }

  async deleteSessionsOf(username: string): Promise<number> {
    return this.db.run('DELETE FROM sessions WHERE username = ?', [username]);
  }

  async createSession(s: SessionRow): Promise<void> {
    await this.db.run('INSERT INTO sessions (id, username, csrf, address, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      s.id,
      s.username,
      s.csrf,
      s.address,
      s.createdAt,
      s.lastSeenAt,
      s.expiresAt,
    ]);
  }

  async session(id: string): Promise<SessionRow | undefined> {
    const r = (await this.db.all<Row>('SELECT * FROM sessions WHERE id = ?', [id]))[0];
    return r
      ? { id: String(r.id), username: String(r.username), csrf: String(r.csrf), address: String(r.address), createdAt: num(r.created_at), lastSeenAt: num(r.last_seen_at), expiresAt: num(r.expires_at) }
      : undefined;
  }

  async touchSession(id: string, at: number): Promise<void> {
    await this.db.run('UPDATE sessions SET last_seen_at = ? WHERE id = ?', [at, id]);
  }

  async deleteSession(id: string): Promise<void> {
    await this.db.run('DELETE FROM sessions WHERE id = ?', [id]);
  }

  deleteExpiredSessions(now: number): Promise<number> {
    return this.db.run('DELETE FROM sessions WHERE expires_at <= ?', [now]);
  }

  async recordLoginFailure(keys: readonly string[], at: number): Promise<void> {
    for (const key of keys) await this.db.run('INSERT INTO login_failures (key, at) VALUES (?, ?)', [key, at]);
  }

  async loginFailures(key: string, since: number): Promise<number> {
    return num((await this.db.all<Row>('SELECT COUNT(*) AS n FROM login_failures WHERE key = ? AND at > ?', [key, since]))[0]?.n ?? 0);
  }

  async clearLoginFailures(key: string): Promise<void> {
    await this.db.run('DELETE FROM login_failures WHERE key = ?', [key]);
  }

  async createLoginToken(id: string, username: string, expiresAt: number): Promise<void> {
    await this.db.run('INSERT INTO login_tokens (id, username, expires_at) VALUES (?, ?, ?)', [id, username, expiresAt]);
  }

  async useLoginToken(id: string, now: number): Promise<string | undefined> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run('UPDATE login_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?', [now, id, now]);
      if (changed === 0) return undefined;
      const rows = await tx.all<Row>('SELECT username FROM login_tokens WHERE id = ?', [id]);
      return rows[0] ? String(rows[0].username) : undefined;
    });
  }

  async acknowledgeAlert(ack: AlertAck): Promise<boolean> {
    return (await this.db.insertIgnoring('alert_acks', ['alert_key', 'username', 'note', 'at'], ['alert_key'], [[ack.alertKey, ack.username, ack.note, ack.at]])).length > 0;
  }

  async alertAcks(): Promise<AlertAck[]> {
    return (await this.db.all<Row>('SELECT * FROM alert_acks ORDER BY at')).map((r) => ({ alertKey: String(r.alert_key), username: String(r.username), note: String(r.note), at: num(r.at) }));
  }

  async appendAudit(e: AuditEntry): Promise<void> {
    await this.db.run('INSERT INTO audit_log (at, username, role, action, target, detail, address) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      e.at,
      e.username.slice(0, 100),
      e.role,
      e.action,
      e.target.slice(0, 300),
      e.detail.slice(0, 2000),
      e.address.slice(0, 100),
    ]);
  }

  async audit(limit = 1000): Promise<AuditRow[]> {
    return (await this.db.all<Row>('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?', [limit])).map((r) => ({
      id: num(r.id),
      at: num(r.at),
      username: String(r.username),
      role: String(r.role),
      action: String(r.action),
      target: String(r.target),
      detail: String(r.detail),
      address: String(r.address),
    }));
  }
}
