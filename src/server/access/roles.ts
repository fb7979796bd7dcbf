/**
 * The console's roles (issue 15, after the patent's operation servers) and what each may see and do. The table
 * here is the one every HTTP route names (httpApi.ts: `allow`), so a route without an entry cannot exist; the
 * test matrix (test/server/accessMatrix.test.ts) runs every route as every role.
 *   sysadmin: users, terminals, configuration; no money
 *   authority: the investor's top authority: everything the investor sees (income, splits, batches, cards)
 *   issuer: the issuing stations' cards and the batches they made; no income
 *   agent: the clinics it placed devices in and its share of their income
 *   clinic: its own terminals, uses, batches and statement; nothing of other clinics
 *   auditor: read-only, everything, and the audit log
 *   (vouchers: the issuer runs the back office and the community centres; a clinic sees its write-offs, keeps its slots)
 *   patient: a person's voucher wallet (seed 004's personal terminal): its own vouchers, their QR codes, booking
 * machine is the shared bearer token (tally server run --admin-token-file): what it could do before users existed.
 */
export const ROLES = ['sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient'] as const;
export type Role = (typeof ROLES)[number];
export type PrincipalRole = Role | 'machine';

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** Who is asking: a logged-in user (session) or the machine token */
export interface Principal {
  readonly username: string;
  readonly role: PrincipalRole;
  /** The clinics whose rows this principal may see; undefined: every clinic */
  readonly clinics?: ReadonlySet<string>;
  /** The agent an agent user is (its share in the income rows) */
  readonly agentCode?: string;
  /** The wallet a patient user holds (its vouchers, nobody else's) */
  readonly walletId?: string;
  readonly locale: 'en' | 'zh';
  /** Session principals: the session's CSRF token, which every write must carry */
  readonly csrf?: string;
  readonly sessionId?: string;
}

/** Everything a route may be about; each route names one */
export type Permission =
  | 'health'
  | 'terminals.read'
  | 'uses.read'
  | 'batches.read'
  | 'income.read'
  | 'statements.read'
  | 'alerts.read'
  | 'alerts.ack'
  | 'rejections.read'
  | 'registry.clinics.read'
  | 'registry.terminals.read'
  | 'registry.cards.read'
  | 'registry.batches.read'
  | 'registry.stations.read'
  | 'registry.issuance.read'
  | 'registry.import'
  | 'registry.write'
  | 'cards.revoke'
  | 'denylist.read'
  | 'agents.read'
  | 'agents.write'
  | 'users.read'
  | 'users.write'
  | 'audit.read'
  | 'vouchers.stats'
  | 'vouchers.read'
  | 'vouchers.slots'
  | 'vouchers.issue'
  | 'vouchers.write'
  | 'wallet.read'
  | 'wallet.book'
  | 'insurance.reconcile'
  | 'wallet.insurance';

const everyone: readonly PrincipalRole[] = [...ROLES, 'machine'];
/** The console's staff: everyone but a patient, who gets only its own wallet */
const staff: readonly PrincipalRole[] = everyone.filter((role) => role !== 'patient');

export const PERMISSIONS: Readonly<Record<Permission, readonly PrincipalRole[]>> = {
  health: everyone,
  'terminals.read': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor', 'machine'],
  'uses.read': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor', 'machine'],
  'batches.read': ['authority', 'issuer', 'agent', 'clinic', 'auditor', 'machine'],
  'income.read': ['authority', 'agent', 'clinic', 'auditor', 'machine'],
  'statements.read': ['authority', 'agent', 'clinic', 'auditor', 'machine'],
  'alerts.read': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor', 'machine'],
  'alerts.ack': ['sysadmin', 'authority'],
  'rejections.read': ['sysadmin', 'authority', 'auditor', 'machine'],
  'registry.clinics.read': staff,
  'registry.terminals.read': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor', 'machine'],
  'registry.cards.read': ['authority', 'issuer', 'auditor', 'machine'],
  'registry.batches.read': ['authority', 'issuer', 'agent', 'clinic', 'auditor', 'machine'],
  'registry.stations.read': ['sysadmin', 'authority', 'issuer', 'auditor', 'machine'],
  'registry.issuance.read': ['authority', 'issuer', 'auditor', 'machine'],
  'registry.import': ['authority', 'issuer', 'machine'],
  'registry.write': ['sysadmin', 'authority', 'machine'],
  // the card issuer and the top authority revoke cards; who manages terminals sees which have the new list
  'cards.revoke': ['authority', 'issuer', 'machine'],
  'denylist.read': ['sysadmin', 'authority', 'issuer', 'auditor', 'machine'],
  'agents.read': ['sysadmin', 'authority', 'agent', 'auditor'],
  'agents.write': ['authority'],
  'users.read': ['sysadmin', 'auditor'],
  'users.write': ['sysadmin'],
  'audit.read': ['sysadmin', 'auditor'],
  // the voucher back office (seed 004): the issuer runs it for the health authority, and a community centre's
  // staff log in as issuers to issue and book; a clinic sees its own write-offs and keeps its own slots
  'vouchers.stats': ['authority', 'issuer', 'clinic', 'auditor', 'machine'],
  'vouchers.read': ['authority', 'issuer', 'auditor', 'machine'],
  'vouchers.slots': ['authority', 'issuer', 'clinic'],
  'vouchers.issue': ['authority', 'issuer'],
  'vouchers.write': ['authority', 'issuer'],
  // the person's own wallet: only the patient user it belongs to (the back office reads wallets through vouchers.read)
  'wallet.read': ['patient'],
  'wallet.book': ['patient'],
  // insurance payments: money, so the investor's side and its auditors (the terminals pay over MQTT, not here)
  'insurance.reconcile': ['authority', 'auditor', 'machine'],
  // seed 001's booking app: the patient pays its own service orders with its e-credential
  'wallet.insurance': ['patient'],
};

export function may(principal: Principal, permission: Permission): boolean {
  return PERMISSIONS[permission].includes(principal.role);
}

/** Whether a row of this clinic is for this principal's eyes */
export function seesClinic(principal: Principal, clinicCode: string | undefined): boolean {
  return principal.clinics === undefined || (clinicCode !== undefined && principal.clinics.has(clinicCode));
}
