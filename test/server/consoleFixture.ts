/**
 * A console world for the access tests and the browser tests: three clinics (CL-A and CL-C placed by agent
 * AG-1, CL-B by nobody), a seen and registered terminal in each with uses on two days, a held batch and an
 * alert each, and one user of every role (clinic-a of CL-A, agent-1 of AG-1, patient-1 holding wallet W-1), all with PASSWORD.
 */
import { createHash } from 'node:crypto';
import { addUser, saveAgent } from '../../src/server/access/accessAdmin.js';
import { ROLES, type Role } from '../../src/server/access/roles.js';
import type { EntryRow, ServerStore } from '../../src/server/ServerStore.js';

export const PASSWORD = 'correct horse battery staple';
export const CLINICS = ['CL-A', 'CL-B', 'CL-C'] as const;
export const USERS: Record<Role, { username: string; clinic?: string; agent?: string; wallet?: string }> = {
  sysadmin: { username: 'admin' },
  authority: { username: 'boss' },
  issuer: { username: 'issuer' },
  agent: { username: 'agent-1', agent: 'AG-1' },
  clinic: { username: 'clinic-a', clinic: 'CL-A' },
  auditor: { username: 'auditor' },
  patient: { username: 'patient-1', wallet: 'W-1' },
};
/** The clinics each role's rows may name */
export const VISIBLE: Record<Role, readonly string[]> = {
  sysadmin: CLINICS,
  authority: CLINICS,
  issuer: CLINICS,
  agent: ['CL-A', 'CL-C'],
  clinic: ['CL-A'],
  auditor: CLINICS,
  // a patient sees no clinic rows (not even the registry's list of clinics)
  patient: [],
};
/** Uses per clinic in the world: CL-A 5, CL-B 3, CL-C 2 (day 1 and day 2) */
export const USES: Record<string, number> = { 'CL-A': 5, 'CL-B': 3, 'CL-C': 2 };
export const T0 = Date.UTC(2026, 10, 2, 9);

const hash = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

export async function buildConsoleWorld(store: ServerStore, options: { users?: boolean } = {}): Promise<void> {
  for (const [i, clinicCode] of CLINICS.entries()) {
    const terminalId = `T-${clinicCode.slice(3)}`;
    await store.registry.putClinic({ clinicCode, name: `Clinic ${clinicCode}`, pricePerUse: 10_000, investorShare: 0.7, addedAt: T0 });
    await store.registry.putTerminal({ terminalId, clinicCode, status: 'expected', addedAt: T0 });
    await store.registerTerminal({ terminalId, clinicCode, devicePublicKey: new Uint8Array(32).fill(i + 1), certificate: Uint8Array.of(i) }, T0);
    const batchId = `b${i}`.padEnd(16, '0');
    await store.holdBatch({ batchId, batchNo: i + 1, clinicCode, count: 50 }, terminalId, 1, T0);
    const rows: EntryRow[] = [];
    for (let u = 0; u < USES[clinicCode]!; u++) {
      const seq = u + 1;
      rows.push({ terminalId, seq, type: 3, time: T0 + (u % 2) * 86_400_000, clockTrusted: true, clinicCode, batchId, serial: seq, hash: hash(`${terminalId}:${seq}`), prevHash: hash(`${terminalId}:${seq - 1}`), raw: Uint8Array.of(seq) });
    }
    await store.insertEntries(rows, T0);
    await store.raiseAlert({ key: `alert-${terminalId}`, at: T0, kind: 'serial-used-twice', terminalId, detail: `in ${clinicCode}` });
  }
  await saveAgent(store, { agentCode: 'AG-1', name: 'East Sales', share: 0.1, clinics: ['CL-A', 'CL-C'] }, T0);
  if (options.users === false) return;
  for (const role of ROLES) await addUser(store, { ...USERS[role], role, password: PASSWORD }, T0);
}
