/**
 * The registry's findings on retired and unlisted terminals, one contract on
 * SQLite and a real PostgreSQL (its own throw-away cluster): the store query,
 * and the registry check over it raising terminal-retired-reporting (once per
 * retirement, counted from the stored retirement time) and
 * terminal-not-registered exactly once each, and never for a terminal where
 * the registry and the reports agree; and a database made at schema version 3
 * (before retired_at) upgraded in place.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { retireTerminal, saveTerminal } from '../../src/server/registry/registryAdmin.js';
import { RegistryCheck } from '../../src/server/registry/registryCheck.js';
import type { EntryRow, ServerStore } from '../../src/server/ServerStore.js';
import { createPostgresDriver } from '../../src/server/store/postgresDriver.js';
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from '../../src/server/store/schema.js';
import { ManualClock } from '../../src/util/clock.js';
import { openDatabase, schemaVersion } from '../../src/util/openDatabase.js';
import { storeBackends, type StoreBackend } from '../support/storeBackends.js';

const T0 = Date.UTC(2026, 10, 1, 8);

function hashOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

let counter = 0;

/** A terminal of this clinic reports entries fromSeq..toSeq, received by the server at `at` */
async function report(store: ServerStore, terminalId: string, clinicCode: string, fromSeq: number, toSeq: number, at: number): Promise<void> {
  await store.registerTerminal({ terminalId, clinicCode, devicePublicKey: new Uint8Array(32).fill(7), certificate: Uint8Array.of(7) }, at);
  const rows: EntryRow[] = [];
  for (let seq = fromSeq; seq <= toSeq; seq++) {
    rows.push({ terminalId, seq, type: 5, time: at, clockTrusted: true, clinicCode, hash: hashOf(`${terminalId}:${seq}`), prevHash: hashOf(`${terminalId}:${seq - 1}`), raw: Uint8Array.of(seq & 0xff) });
  }
  await store.insertEntries(rows, at);
}

/** A registry as schema version 3 left it (no retired_at), with one retired and one expected terminal */
async function registryAtVersion3(backend: StoreBackend): Promise<Awaited<ReturnType<StoreBackend['place']>>> {
  const place = await backend.place('registry_upgrade');
  const insert = `INSERT INTO registry_terminals (terminal_id, clinic_code, status, note, added_at) VALUES
    ('OLD-R', 'CL-U', 'retired', 'gone', 1), ('OLD-E', 'CL-U', 'expected', NULL, 2)`;
  if (place.kind === 'sqlite') {
    const db = openDatabase(place.path, SQLITE_MIGRATIONS.filter((m) => m.version <= 3));
    db.exec(insert);
    expect(schemaVersion(db)).toBe(3);
    db.close();
  } else {
    const driver = await createPostgresDriver(place.connectionString, POSTGRES_MIGRATIONS.filter((m) => m.version <= 3));
    await driver.run(insert);
    await driver.close();
  }
  return place;
}

function contract(backend: StoreBackend): void {
  const name = backend.name;
  describe(`registry findings contract: ${name}`, () => {
    let store: ServerStore;
    beforeAll(async () => {
      store = await createServerStore(await backend.place('registry_contract'));
    });
    afterAll(async () => {
      await store?.close();
    });
    // every test works on terminals and clinics of its own: the store is shared by the file's tests
    const tag = (): string => `${name}-${++counter}`;

    const reports = (terminalId: string, clinicCode: string, fromSeq: number, toSeq: number, at: number): Promise<void> => report(store, terminalId, clinicCode, fromSeq, toSeq, at);

    it('lists every retired terminal with when it was retired and when its newest entry arrived', async () => {
      const t = tag();
      const [silent, reporting, active] = [`R-${t}-silent`, `R-${t}-reporting`, `R-${t}-active`];
      await store.registry.putTerminal({ terminalId: silent, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1, retiredAt: T0 - 5 });
      await store.registry.putTerminal({ terminalId: reporting, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1, retiredAt: T0 + 100 });
      await store.registry.putTerminal({ terminalId: active, clinicCode: `CL-${t}`, status: 'expected', addedAt: 1 });
      await reports(reporting, `CL-${t}`, 1, 3, T0);
      await reports(reporting, `CL-${t}`, 4, 6, T0 + 500);
      // a gap filled later is an old entry: the newest is still seq 6's
      await reports(active, `CL-${t}`, 1, 2, T0);
      const mine = (await store.registry.findings()).retiredTerminals.filter((r) => r.terminalId.startsWith(`R-${t}-`));
      expect(mine).toEqual([
        { terminalId: reporting, clinicCode: `CL-${t}`, retiredAt: T0 + 100, highestSeq: 6, lastReceivedAt: T0 + 500 },
        { terminalId: silent, clinicCode: `CL-${t}`, retiredAt: T0 - 5 },
      ]);
      expect(await store.registry.registeredTerminal(silent)).toEqual({ terminalId: silent, clinicCode: `CL-${t}`, status: 'retired', addedAt: 1, retiredAt: T0 - 5 });
      expect((await store.registry.terminalRegistry()).find((r) => r.terminalId === reporting)).toMatchObject({ state: 'retired', retiredAt: T0 + 100 });
      // back in service: the time goes with the status
      await store.registry.putTerminal({ terminalId: silent, clinicCode: `CL-${t}`, status: 'expected', addedAt: 1 });
      expect(await store.registry.registeredTerminal(silent)).toEqual({ terminalId: silent, clinicCode: `CL-${t}`, status: 'expected', addedAt: 1 });
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

    it('the check alerts once a retirement on entries received after it, whenever it runs; not on entries from before, nor on an active terminal', async () => {
      const t = tag();
      const clinic = `CL-${t}`;
      const [retired, active, lateRetired] = [`A-${t}-retired`, `A-${t}-active`, `A-${t}-late`];
      const clock = new ManualClock(T0);
      const registry = store.registry;
      await saveTerminal(registry, { terminalId: retired, clinicCode: clinic }, T0 - 90_000);
      await saveTerminal(registry, { terminalId: active, clinicCode: clinic }, T0 - 90_000);
      await saveTerminal(registry, { terminalId: lateRetired, clinicCode: clinic }, T0 - 90_000);
      // retired while no server ran; its entries kept arriving before the first check: counted all the same
      await reports(retired, clinic, 1, 5, T0 - 60_000);
      expect(await retireTerminal(registry, { terminalId: retired }, T0 - 30_000)).toMatchObject({ status: 'retired', retiredAt: T0 - 30_000 });
      await reports(retired, clinic, 6, 7, T0 - 10_000);
      await reports(active, clinic, 1, 3, T0);
      await reports(lateRetired, clinic, 1, 3, T0);
      const check = new RegistryCheck(store, clock);
      const mine = async () => (await check.check()).filter((a) => a.terminalId.startsWith(`A-${t}-`));
      const raised = await mine();
      expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-retired-reporting', retired]]);
      expect(raised[0]!.key).toBe(`retired-reporting:${retired}:${T0 - 30_000}`);
      expect(raised[0]!.detail).toBe(
        `terminal ${retired} is retired in the registry (clinic ${clinic}) since ${new Date(T0 - 30_000).toISOString()} but its entries keep arriving: seq 7 received ${new Date(T0 - 10_000).toISOString()}`,
      );

      // more entries, or retiring it again with a note: the same retirement, not raised again; a restarted server finds it stored
      clock.advance(10_000);
      await reports(retired, clinic, 8, 8, clock.now());
      expect(await retireTerminal(registry, { terminalId: retired, note: 'still on?' }, clock.now())).toMatchObject({ retiredAt: T0 - 30_000, note: 'still on?' });
      expect(await mine()).toEqual([]);
      expect((await new RegistryCheck(store, clock).check()).filter((a) => a.terminalId === retired)).toEqual([]);

      // retired now: what it sent before is no news, what it sends after is
      clock.advance(10_000);
      await retireTerminal(registry, { terminalId: lateRetired }, clock.now());
      expect(await mine()).toEqual([]);
      clock.advance(10_000);
      await reports(lateRetired, clinic, 4, 4, clock.now());
      expect((await mine()).map((a) => [a.kind, a.terminalId])).toEqual([['terminal-retired-reporting', lateRetired]]);

      // back in service (the time cleared) and reporting: nothing; retired again: a new retirement, a new alert
      clock.advance(10_000);
      const { row: back } = await saveTerminal(registry, { terminalId: lateRetired, clinicCode: clinic }, clock.now());
      expect(back.retiredAt).toBeUndefined();
      expect((await registry.registeredTerminal(lateRetired))?.retiredAt).toBeUndefined();
      await reports(lateRetired, clinic, 5, 5, clock.now());
      expect(await mine()).toEqual([]);
      clock.advance(10_000);
      const again = clock.now();
      const { row: retiredAgain } = await saveTerminal(registry, { terminalId: lateRetired, clinicCode: clinic, status: 'retired' }, again);
      expect(retiredAgain.retiredAt).toBe(again);
      expect(await mine()).toEqual([]);
      clock.advance(10_000);
      await reports(lateRetired, clinic, 6, 6, clock.now());
      const second = await mine();
      expect(second.map((a) => [a.kind, a.terminalId, a.key])).toEqual([['terminal-retired-reporting', lateRetired, `retired-reporting:${lateRetired}:${again}`]]);

      // the active terminal reported all along: never an alert
      await reports(active, clinic, 4, 5, clock.now());
      expect(await mine()).toEqual([]);
      const stored = (await store.alerts()).filter((a) => a.kind === 'terminal-retired-reporting' && a.terminalId.startsWith(`A-${t}-`));
      expect(stored.map((a) => a.terminalId).sort()).toEqual([lateRetired, lateRetired, retired].sort());
    });

    it('upgrades a database made at schema version 3 in place: a retired terminal gets the upgrade time, an expected one none', async () => {
      const place = await registryAtVersion3(backend);
      const before = Date.now();
      const upgraded = await createServerStore(place);
      const after = Date.now();
      const old = await upgraded.registry.registeredTerminal('OLD-R');
      const upgradedAt = old?.retiredAt ?? 0;
      try {
        expect(old).toMatchObject({ terminalId: 'OLD-R', clinicCode: 'CL-U', status: 'retired', note: 'gone', addedAt: 1 });
        expect(upgradedAt).toBeGreaterThanOrEqual(before - 2);
        expect(upgradedAt).toBeLessThanOrEqual(after + 2);
        expect(await upgraded.registry.registeredTerminal('OLD-E')).toEqual({ terminalId: 'OLD-E', clinicCode: 'CL-U', status: 'expected', addedAt: 2 });
        // the new column takes writes, and the check counts from the upgrade time
        await report(upgraded, 'OLD-R', 'CL-U', 1, 1, after + 1_000);
        const raised = await new RegistryCheck(upgraded, new ManualClock(after + 2_000)).check();
        expect(raised.map((a) => [a.kind, a.key])).toEqual([['terminal-retired-reporting', `retired-reporting:OLD-R:${upgradedAt}`]]);
        await retireTerminal(upgraded.registry, { terminalId: 'OLD-E' }, after + 3_000);
        expect((await upgraded.registry.registeredTerminal('OLD-E'))?.retiredAt).toBe(after + 3_000);
      } finally {
        await upgraded.close();
      }
      // opened again: nothing changes (PostgreSQL runs its statements on every start)
      const reopened = await createServerStore(place);
      try {
        expect((await reopened.registry.registeredTerminal('OLD-R'))?.retiredAt).toBe(upgradedAt);
        expect((await reopened.registry.registeredTerminal('OLD-E'))?.retiredAt).toBe(after + 3_000);
      } finally {
        await reopened.close();
      }
      if (place.kind === 'sqlite') {
        const db = openDatabase(place.path, [], { readonly: true });
        // upgraded through every later migration too
        expect(schemaVersion(db)).toBe(SQLITE_MIGRATIONS.at(-1)!.version);
        db.close();
      }
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

for (const backend of storeBackends('tally-registry-contract')) contract(backend);
