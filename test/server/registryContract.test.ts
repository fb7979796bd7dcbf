/**
 * The registry's findings on retired and unlisted terminals, one contract on
 * SQLite and a real PostgreSQL (its own throw-away cluster): the store query,
 * and the registry check over it raising terminal-retired-reporting and
 * terminal-not-registered exactly once each, and never for a terminal where
 * the registry and the reports agree.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { RegistryCheck } from '../../src/server/registry/registryCheck.js';
import type { EntryRow, ServerStore } from '../../src/server/ServerStore.js';
import { ManualClock } from '../../src/util/clock.js';
import { startPostgres, type RunningPostgres } from '../support/postgres.js';

const T0 = Date.UTC(2026, 10, 1, 8);

function hashOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

let counter = 0;

function contract(name: string, open: () => Promise<ServerStore>): void {
  describe(`registry findings contract: ${name}`, () => {
    let store: ServerStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });
    // every test works on terminals and clinics of its own: the store is shared by the file's tests
    const tag = (): string => `${name}-${++counter}`;

    /** A terminal of this clinic reports entries fromSeq..toSeq, received by the server at `at` */
    async function reports(terminalId: string, clinicCode: string, fromSeq: number, toSeq: number, at: number): Promise<void> {
      await store.registerTerminal({ terminalId, clinicCode, devicePublicKey: new Uint8Array(32).fill(7), certificate: Uint8Array.of(7) }, at);
      const rows: EntryRow[] = [];
      for (let seq = fromSeq; seq <= toSeq; seq++) {
        rows.push({ terminalId, seq, type: 5, time: at, clockTrusted: true, clinicCode, hash: hashOf(`${terminalId}:${seq}`), prevHash: hashOf(`${terminalId}:${seq - 1}`), raw: Uint8Array.of(seq & 0xff) });
      }
      await store.insertEntries(rows, at);
    }

    it('lists every retired terminal with when its newest entry arrived', async () => {
      const t = tag();
      const [silent, reporting, active] = [`R-${t}-silent`, `R-${t}-reporting`, `R-${t}-active`];
      await store.registry.putTerminal({ terminalId: silent, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: reporting, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: active, clinicCode: `CL-${t}`, status: 'expected', addedAt: 1 });
      await reports(reporting, `CL-${t}`, 1, 3, T0);
      await reports(reporting, `CL-${t}`, 4, 6, T0 + 500);
      // a gap filled later is an old entry: the newest is still seq 6's
      await reports(active, `CL-${t}`, 1, 2, T0);
      const mine = (await store.registry.findings()).retiredTerminals.filter((r) => r.terminalId.startsWith(`R-${t}-`));
      expect(mine).toEqual([
        { terminalId: reporting, clinicCode: `CL-${t}`, highestSeq: 6, lastReceivedAt: T0 + 500 },
        { terminalId: silent, clinicCode: `CL-${t}` },
      ]);
    });

    it('lists a reporting terminal the registry does not know only where the registry lists terminals for its clinic', async () => {
      const t = tag();
      const listed = `CL-${t}-listed`;
      const unlisted = `CL-${t}-unlisted`;
      await store.registry.putTerminal({ terminalId: `U-${t}-known`, clinicCode: listed, status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: `U-${t}-gone`, clinicCode: listed, status: 'retired', addedAt: 1 });
      await reports(`U-${t}-known`, listed, 1, 1, T0);
      await reports(`U-${t}-stray`, listed, 1, 2, T0);
      await reports(`U-${t}-elsewhere`, unlisted, 1, 2, T0);
      const mine = (await store.registry.findings()).unregisteredTerminals.filter((r) => r.terminalId.startsWith(`U-${t}-`));
      expect(mine).toEqual([{ terminalId: `U-${t}-stray`, clinicCode: listed, listed: 2 }]);
    });

    it('the check alerts once on a retired terminal whose entries keep arriving, never on an active one or on entries from before', async () => {
      const t = tag();
      const clinic = `CL-${t}`;
      const [retired, active, lateRetired] = [`A-${t}-retired`, `A-${t}-active`, `A-${t}-late`];
      const clock = new ManualClock(T0);
      // entries from before the retirement, already stored when the server starts
      await reports(retired, clinic, 1, 5, T0 - 60_000);
      await store.registry.putTerminal({ terminalId: retired, clinicCode: clinic, status: 'retired', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: active, clinicCode: clinic, status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: lateRetired, clinicCode: clinic, status: 'expected', addedAt: 1 });
      const check = new RegistryCheck(store, clock);
      const mine = async () => (await check.check()).filter((a) => a.terminalId.startsWith(`A-${t}-`));

      await reports(active, clinic, 1, 3, clock.now());
      await reports(lateRetired, clinic, 1, 3, clock.now());
      expect(await mine()).toEqual([]);

      clock.advance(10_000);
      await reports(retired, clinic, 6, 7, clock.now());
      await reports(active, clinic, 4, 5, clock.now());
      const raised = await mine();
      expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-retired-reporting', retired]]);
      expect(raised[0]!.detail).toContain(`retired in the registry (clinic ${clinic})`);
      expect(raised[0]!.detail).toContain('seq 7');

      // more entries: the same alert, not raised again; a fresh check (a restarted server) finds it stored
      clock.advance(10_000);
      await reports(retired, clinic, 8, 8, clock.now());
      expect(await mine()).toEqual([]);
      expect((await new RegistryCheck(store, clock).check()).filter((a) => a.terminalId === retired)).toEqual([]);

      // retired now: what it sent before is no news, what it sends after is
      await store.registry.putTerminal({ terminalId: lateRetired, clinicCode: clinic, status: 'retired', addedAt: 1 });
      expect(await mine()).toEqual([]);
      clock.advance(10_000);
      await reports(lateRetired, clinic, 4, 4, clock.now());
      expect((await mine()).map((a) => [a.kind, a.terminalId])).toEqual([['terminal-retired-reporting', lateRetired]]);

      const stored = (await store.alerts()).filter((a) => a.kind === 'terminal-retired-reporting' && a.terminalId.startsWith(`A-${t}-`));
      expect(stored.map((a) => a.terminalId).sort()).toEqual([lateRetired, retired].sort());
    });

    it('the check counts entries of a terminal retired before the server started from the moment it started, not from its first check', async () => {
      const t = tag();
      const retired = `S-${t}-retired`;
      await reports(retired, `CL-${t}`, 1, 2, T0 - 60_000);
      await store.registry.putTerminal({ terminalId: retired, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1 });
      const clock = new ManualClock(T0);
      const check = new RegistryCheck(store, clock);
      clock.advance(5_000);
      await reports(retired, `CL-${t}`, 3, 3, clock.now());
      clock.advance(5_000);
      expect((await check.check()).filter((a) => a.terminalId === retired).map((a) => a.kind)).toEqual(['terminal-retired-reporting']);
    });

    it('the check alerts once on an unlisted terminal reporting for a clinic the registry lists terminals for', async () => {
      const t = tag();
      const clinic = `CL-${t}`;
      const clock = new ManualClock(T0);
      await store.registry.putTerminal({ terminalId: `N-${t}-listed`, clinicCode: clinic, status: 'expected', addedAt: 1 });
      await reports(`N-${t}-listed`, clinic, 1, 2, T0);
      await reports(`N-${t}-stray`, clinic, 1, 2, T0);
      await reports(`N-${t}-other`, `${clinic}-nobody-lists`, 1, 2, T0);
      const check = new RegistryCheck(store, clock);
      const mine = async () => (await check.check()).filter((a) => a.terminalId.startsWith(`N-${t}-`));
      const raised = await mine();
      expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-not-registered', `N-${t}-stray`]]);
      expect(raised[0]!.detail).toBe(`terminal N-${t}-stray reports for clinic ${clinic}, which the registry lists 1 terminal(s) for, but is not registered`);
      expect(await mine()).toEqual([]);

      // registered by the administrator: no longer a finding
      await store.registry.putTerminal({ terminalId: `N-${t}-stray`, clinicCode: clinic, status: 'expected', addedAt: 2 });
      expect((await store.registry.findings()).unregisteredTerminals.filter((r) => r.terminalId.startsWith(`N-${t}-`))).toEqual([]);
      expect((await store.alerts()).filter((a) => a.kind === 'terminal-not-registered' && a.terminalId.startsWith(`N-${t}-`))).toHaveLength(1);
    });
  });
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'tally-registry-contract-'));
let postgres: RunningPostgres | undefined;

contract('sqlite', () => createServerStore({ kind: 'sqlite', path: join(sqliteDir, 'server.db') }));
contract('postgres', async () => {
  postgres = await startPostgres();
  return createServerStore({ kind: 'postgres', connectionString: postgres.createDatabase('registry_contract') });
});

afterAll(async () => {
  await postgres?.close();
  rmSync(sqliteDir, { recursive: true, force: true });
});
