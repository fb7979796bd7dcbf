/**
 * The console's administrative writes, shared by the CLI (tally server user add|passwd, tally server agent add)
 * and the HTTP API (POST /api/registry/agents, /api/alerts/ack): one validation each, naming the bad field, and
 * the audit-log entry of the CLI's own writes (the HTTP API logs its writes where they are answered).
 */
import { hostname, userInfo } from 'node:os';
import { TallyError } from '../../errors.js';
import { array, boolean, literal, number, object, optional, string, type Infer } from '../../codecs/mqtt/schema.js';
import { MAX_CLINIC_CODE } from '../../codecs/cardRecord.js';
import type { ServerStore } from '../ServerStore.js';
import type { Saved } from '../registry/registryAdmin.js';
import type { AgentRow, UserRow } from './AccessStore.js';
import { checkPasswordStrength, hashPassword } from './password.js';
import type { Role } from './roles.js';

const code = string(MAX_CLINIC_CODE, /^[^\s\p{Cc}]+$/u);
const text = (max: number) => string(max, /^\S(?:[^\p{Cc}]*\S)?$/u);

export const AgentInputSchema = object({
  agentCode: code,
  name: text(100),
  /** Of each use's gross, 0..1, out of the investor's part */
  share: number(0, 1),
  /** The clinics it placed devices in (each moves to this agent) */
  clinics: optional(array(code, 500)),
});
export type AgentInput = Infer<typeof AgentInputSchema>;

export const AckInputSchema = object({ key: string(300), note: text(500) });

/** POST /api/registry/cards/revoke: a card id (16 lowercase hex digits) and why */
export const RevokeInputSchema = object({ cardId: string(16, /^[0-9a-f]{16}$/), reason: text(200) });

/** POST /api/users/change: disable or enable a user, or give it another role */
export const UserChangeSchema = object({
  username: string(64),
  disabled: optional(boolean()),
  role: optional(literal('sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient')),
  clinic: optional(code),
  agent: optional(code),
  wallet: optional(code),
});

export const USERNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export async function saveAgent(store: ServerStore, input: AgentInput, now: number): Promise<Saved<AgentRow>> {
  const existing = (await store.access.agents()).find((a) => a.agentCode === input.agentCode);
  const row: AgentRow = { agentCode: input.agentCode, name: input.name, share: input.share, addedAt: existing?.addedAt ?? now };
  await store.access.putAgent(row);
  for (const clinicCode of input.clinics ?? []) await store.access.assignClinic({ clinicCode, agentCode: row.agentCode, assignedAt: now });
  return { created: !existing, row };
}

export interface NewUser {
  readonly username: string;
  readonly role: Role;
  readonly clinic?: string;
  readonly agent?: string;
  /** A patient user's wallet id */
  readonly wallet?: string;
  readonly locale?: 'en' | 'zh';
  readonly password: string;
}

/** Where a command run on the server's own machine comes from, for the audit log */
export const cliAddress = (): string => `cli@${hostname()}`;

/** Who runs a command on the server's machine: the operating-system account (the console has no login there) */
export function cliActor(): { username: string; role: string; address: string } {
  let account = 'unknown';
  try {
    account = userInfo().username;
  } catch {
    // no passwd entry: still logged, as unknown
  }
  return { username: `os:${account}`, role: 'operator', address: cliAddress() };
}

/** POST /api/users: a new console user (the same checks as tally server user add) */
export const UserAddSchema = object({
  username: string(64),
  role: literal('sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient'),
  clinic: optional(code),
  agent: optional(code),
  wallet: optional(code),
  locale: optional(literal('en', 'zh')),
  password: string(300),
});

/** Audit-logged as user.add by the actor (the HTTP API's write logs it itself, without the password) */
export async function addUser(store: ServerStore, input: NewUser, now: number, actor: { username: string; role: string; address: string } | 'logged-by-caller' = cliActor()): Promise<UserRow> {
  if (!USERNAME_PATTERN.test(input.username)) throw new TallyError('USAGE', 'a user name is 1..64 letters, digits and . _ @ -, starting with a letter or digit');
  if ((input.role === 'clinic') !== (input.clinic !== undefined) || (input.role === 'agent') !== (input.agent !== undefined) || (input.role === 'patient') !== (input.wallet !== undefined)) throw new TallyError('BAD_ROLE_SCOPE', `role ${input.role}`);
  if (input.agent !== undefined && !(await store.access.agents()).some((a) => a.agentCode === input.agent)) throw new TallyError('UNKNOWN_AGENT', input.agent);
  checkPasswordStrength(input.username, input.password);
  const scope = input.clinic ?? input.agent ?? input.wallet;
  const user = { username: input.username, role: input.role, ...(scope !== undefined ? { scope } : {}), locale: input.locale ?? 'en', createdAt: now, disabled: false } as const;
  if (!(await store.access.addUser({ ...user, passwordHash: await hashPassword(input.password) }))) throw new TallyError('USER_EXISTS', input.username);
  if (actor !== 'logged-by-caller') await store.access.appendAudit({ at: now, ...actor, action: 'user.add', target: input.username, detail: JSON.stringify({ role: input.role, ...(scope !== undefined ? { scope } : {}) }) });
  return user;
}

export async function changePassword(store: ServerStore, username: string, password: string, now: number): Promise<void> {
  checkPasswordStrength(username, password);
  if (!(await store.access.setPassword(username, await hashPassword(password)))) throw new TallyError('LOGIN_FAILED', `no user ${username}`);
  await store.access.appendAudit({ at: now, ...cliActor(), action: 'user.passwd', target: username, detail: '{}', address: cliAddress() });
}

export interface UserChange {
  readonly username: string;
  /** true: the user can no longer log in and every session of theirs ends; false: enabled again */
  readonly disabled?: boolean;
  /** A new role, with its clinic or agent (like add); every session of the user ends */
  readonly role?: Role;
  readonly clinic?: string;
  readonly agent?: string;
  readonly wallet?: string;
}

/**
 * Disables or enables a user, or changes its role; the sessions of the user end (a disabled user is logged out at
 * once, a new role is read at the next login). Never leaves the store without an enabled system administrator.
 * Audit-logged as user.disable, user.enable or user.role by the actor (the HTTP API's write logs it itself)
 */
export async function changeUser(store: ServerStore, change: UserChange, now: number, actor: { username: string; role: string; address: string } | 'logged-by-caller' = cliActor()): Promise<{ user: UserRow; sessionsEnded: number }> {
  const user = await store.access.user(change.username);
  if (!user) throw new TallyError('UNKNOWN_USER', change.username);
  const role = change.role ?? user.role;
  if (change.role !== undefined) {
    if ((role === 'clinic') !== (change.clinic !== undefined) || (role === 'agent') !== (change.agent !== undefined) || (role === 'patient') !== (change.wallet !== undefined)) throw new TallyError('BAD_ROLE_SCOPE', `role ${role}`);
    if (change.agent !== undefined && !(await store.access.agents()).some((a) => a.agentCode === change.agent)) throw new TallyError('UNKNOWN_AGENT', change.agent);
  }
  const disabled = change.disabled ?? user.disabled;
  if (user.role === 'sysadmin' && !user.disabled && (disabled || role !== 'sysadmin')) {
    const others = (await store.access.users()).filter((u) => u.role === 'sysadmin' && !u.disabled && u.username !== user.username);
    if (others.length === 0) throw new TallyError('LAST_SYSADMIN', change.username);
  }
  const scope = change.role !== undefined ? (change.clinic ?? change.agent ?? change.wallet) : user.scope;
  if (change.role !== undefined) await store.access.setRole(user.username, role, scope);
  if (change.disabled !== undefined) await store.access.setDisabled(user.username, disabled);
  const sessionsEnded = disabled || change.role !== undefined ? await store.access.deleteSessionsOf(user.username) : 0;
  const action = change.role !== undefined ? 'user.role' : disabled ? 'user.disable' : 'user.enable';
  if (actor !== 'logged-by-caller') await store.access.appendAudit({ at: now, ...actor, action, target: user.username, detail: JSON.stringify({ ...(change.role !== undefined ? { role, ...(scope !== undefined ? { scope } : {}) } : {}), ...(change.disabled !== undefined ? { disabled } : {}), sessionsEnded }) });
  const { passwordHash: _hidden, ...row } = { ...user, role, disabled, ...(scope !== undefined ? { scope } : {}) };
  if (scope === undefined) delete (row as { scope?: string }).scope;
  return { user: row, sessionsEnded };
}
