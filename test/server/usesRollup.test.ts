/**
 * The roll-ups of uses kept as the ingest stores entries, on SQLite and a real PostgreSQL: the daily rows
 * (uses_daily, migration 6), per clinic by day, week and month and per terminal by week and month, and the
 * per-batch counts (migration 13). After every insert, in any order of arrival (a release before its reservation,
 * both in one report, resends, a second release of one use, untrusted clocks, several terminals, clinics and
 * days, concurrent inserts), each equals the count from every stored entry, and the daily rows read page by page
 * are the daily rows; a database from before migration 6 is counted once when it is upgraded.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { useSeries } from '../../src/server/httpApi.js';
import type { DailyUses, EntryRow, ServerStore } from '../../src/server/ServerStore.js';
import { createPostgresDriver } from '../../src/server/store/postgresDriver.js';
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from '../../src/server/store/schema.js';
import { createSqliteDriver } from '../../src/server/store/sqliteDriver.js';
import { storeBackends } from '../support/storeBackends.js';

const DAY = 86_400_000;
/** A terminal's batches: the second one is never held (its uses count on the daily rows, on no batch row) */
const batchOf = (terminalId: string, n: number): string => `${terminalId}${n}`.padEnd(16, 'b');
const T0 = Date.UTC(2026, 10, 1, 10);
const hash = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

/** A terminal's ledger of n entries: reservations (type 3), releases of some (type 6), other entries (type 5) */
function ledger(terminalId: string, plan: ReadonlyArray<{ kind: 'use' | 'release' | 'other'; day: number; trusted?: boolean; batch?: number }>): EntryRow[] {
  const rows: EntryRow[] = [];
  const reserved: number[] = [];
  plan.forEach((step, i) => {
    const seq = i + 1;
    // an untrusted clock reads 1970: such a use counts apart, on the day the server received it
    const trusted = step.trusted ?? true;
    // TB moves to TA's clinic on day 30: the clinic's rows are written by both terminals
    const base = { terminalId, seq, time: trusted ? T0 + step.day * DAY : 86_400_000 + step.day, clockTrusted: trusted, clinicCode: terminalId === 'TB' && step.day >= 30 ? 'CL-TA' : `CL-${terminalId}`, hash: hash(`${terminalId}:${seq}`), prevHash: hash(`${terminalId}:${seq - 1}`), raw: Uint8Array.of(seq & 0xff) };
    if (step.kind === 'use') {
      reserved.push(seq);
      rows.push({ ...base, type: 3, batchId: batchOf(terminalId, step.batch ?? 0), serial: seq });
    } else if (step.kind === 'release' && reserved.length > 0) rows.push({ ...base, type: 6, ref: reserved[seq % reserved.length]! });
    else rows.push({ ...base, type: 5 });
  });
  return rows;
}

const monday = (day: string): string => {
  const d = new Date(`${day}T00:00:00Z`);
  return new Date(d.getTime() - ((d.getUTCDay() + 6) % 7) * DAY).toISOString().slice(0, 10);
};
const bucketOf = { day: (d: string) => d, week: monday, month: (d: string) => d.slice(0, 7), all: () => '' };

/** Every sum the store gives from its roll-ups, against the same sums of the daily rows counted from the entries */
async function expectRollupsFromEntries(store: ServerStore, clinicSets: ReadonlyArray<readonly string[] | undefined>): Promise<number> {
  const daily = await store.usesPerDayFromEntries();
  let checked = 0;
  for (const by of ['terminal', 'clinic', 'all'] as const)
    for (const period of ['day', 'week', 'month', 'all'] as const)
      for (const clinics of clinicSets)
        for (const apart of [false, true]) {
          const expected = new Map<string, number>();
          for (const d of daily.filter((r) => !clinics || clinics.includes(r.clinicCode))) {
            const k = `${by === 'terminal' ? d.terminalId : by === 'clinic' ? d.clinicCode : ''}|${bucketOf[period](d.day)}|${apart && d.clockUntrusted ? 1 : 0}`;
            expected.set(k, (expected.get(k) ?? 0) + d.uses);
          }
          const got = await store.usesSummed(by, period, clinics, apart);
          expect(new Map(got.map((r) => [`${r.key}|${r.bucket}|${r.clockUntrusted ? 1 : 0}`, r.uses])), `${by} ${period} ${String(clinics)} ${apart}`).toEqual(expected);
          expect(got.length).toBe(expected.size);
          checked += got.length;
        }
  expect(await store.batchReconciliation()).toEqual(await store.batchReconciliationFromEntries());
  return checked;
}

/** The daily rows read `limit` at a time, the next page from each page's cursor */
async function dailyInPages(store: ServerStore, limit: number, query: { from?: string; to?: string; clinics?: readonly string[] } = {}): Promise<DailyUses[]> {
  const rows: DailyUses[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.usesPerDayPage({ ...query, ...(after !== undefined ? { after } : {}), limit });
    expect(page.rows.length).toBeLessThanOrEqual(limit);
    rows.push(...page.rows);
    if (page.next === undefined) return rows;
    after = page.next;
  }
  throw new Error('pages never ended');
}

// days 0..40 cross ISO weeks and a month end (2026-11-30)
const step = fc.record({ kind: fc.constantFrom('use' as const, 'use' as const, 'release' as const, 'other' as const), day: fc.constantFrom(0, 1, 3, 6, 7, 29, 30, 40), trusted: fc.constantFrom(true, true, true, false), batch: fc.constantFrom(0, 0, 0, 1) });

for (const backend of storeBackends('tally-rollup')) {
  describe(`uses roll-up: ${backend.name}`, () => {
    it('equals the count from the entries after every insert, in any order of arrival', async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(step, { minLength: 1, maxLength: 30 }),
          fc.array(step, { minLength: 1, maxLength: 20 }),
          fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 0, max: 1_000_000 }),
          async (planA, planB, chunkSizes, seed) => {
            const store: ServerStore = await createServerStore(await backend.place(`rollup_${run++}`));
            try {
              const all = [...ledger('TA', planA), ...ledger('TB', planB)];
              // a shuffled order of arrival, cut into reports, some resent
              const order = all.map((r, i) => ({ r, k: (i * 7919 + seed) % 1009 })).sort((a, b) => a.k - b.k).map((x) => x.r);
              for (const id of ['TA', 'TB']) {
                await store.registerTerminal({ terminalId: id, clinicCode: `CL-${id}`, devicePublicKey: new Uint8Array(32), certificate: Uint8Array.of(1) }, T0);
                await store.holdBatch({ batchId: batchOf(id, 0), batchNo: 1, clinicCode: `CL-${id}`, count: 50 }, id, 1, T0);
              }
              let at = 0;
              let c = 0;
              const reports: EntryRow[][] = [];
              while (at < order.length) {
                const size = chunkSizes[c++ % chunkSizes.length]!;
                reports.push(order.slice(at, at + size));
                at += size;
              }
              // concurrent inserts: the store's group commit puts several into one transaction
              for (let i = 0; i < reports.length; i += 3) {
                // reports arrive over several days: an untrusted use is dated by its first arrival
                await Promise.all(reports.slice(i, i + 3).map((rows, k) => store.insertEntries(rows, T0 + ((i + k) % 3) * DAY)));
                if (i % 2 === 0) await store.insertEntries(reports[i]!, T0 + 5 * DAY);
                const fromEntries = await store.usesPerDayFromEntries();
                expect(await store.usesPerDay()).toEqual(fromEntries);
                const perClinic = new Map<string, { uses: number; untrustedUses: number }>();
                for (const d of fromEntries) {
                  const c = perClinic.get(d.clinicCode) ?? { uses: 0, untrustedUses: 0 };
                  perClinic.set(d.clinicCode, { uses: c.uses + d.uses, untrustedUses: c.untrustedUses + (d.clockUntrusted ? d.uses : 0) });
                  // never a 1970 day: an untrusted use carries the day the server received it
                  expect(d.day >= '2026-11-01', d.day).toBe(true);
                }
                expect(await store.usesPerClinic()).toEqual([...perClinic.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([clinicCode, c]) => ({ clinicCode, ...c })));
                await expectRollupsFromEntries(store, [undefined, ['CL-TB']]);
              }
              // paged: the same rows, in the same order, whatever the page size; a range and a clinic filter
              const daily = await store.usesPerDay();
              for (const limit of [1, 2, 3, 7, 1000]) expect(await dailyInPages(store, limit)).toEqual(daily);
              expect(await dailyInPages(store, 2, { from: '2026-11-02', to: '2026-11-30', clinics: ['CL-TA'] })).toEqual(daily.filter((d) => d.day >= '2026-11-02' && d.day <= '2026-11-30' && d.clinicCode === 'CL-TA'));
            } finally {
              await store.close();
            }
          },
        ),
        { numRuns: backend.name === 'sqlite' ? 40 : 12, seed: 1507 },
      );
    });

    it('sums per terminal, clinic or all and per day, ISO week, month or all time in the database as the daily rows add up', async () => {
      const store = await createServerStore(await backend.place('rollup_summed'));
      try {
        // days across a Sunday/Monday, a month end and a year end (2026-12-27 is a Sunday, 2027-01-01 a Friday)
        const start = Date.UTC(2026, 11, 20, 9);
        const rows: EntryRow[] = [];
        for (const [t, id] of ['TA', 'TB', 'TC'].entries()) {
          await store.registerTerminal({ terminalId: id, clinicCode: `CL-${t % 2}`, devicePublicKey: new Uint8Array(32), certificate: Uint8Array.of(1) }, start);
          let seq = 0;
          for (let d = 0; d < 20; d++) for (let u = 0; u < ((d * 7 + t * 3) % 4); u++) rows.push({ terminalId: id, seq: ++seq, type: 3, time: start + d * DAY + u, clockTrusted: true, clinicCode: `CL-${t % 2}`, batchId: 'b'.repeat(16), serial: seq, hash: hash(`${id}:${seq}`), prevHash: hash(`${id}:${seq - 1}`), raw: Uint8Array.of(seq) });
        }
        // two uses with an untrusted clock: counted on the day the server received them, apart when asked
        for (const seq of [1001, 1002]) rows.push({ terminalId: 'TA', seq, type: 3, time: 1000, clockTrusted: false, clinicCode: 'CL-0', batchId: 'b'.repeat(16), serial: seq, hash: hash(`TA:${seq}`), prevHash: hash(`TA:${seq - 1}`), raw: Uint8Array.of(seq & 0xff) });
        await store.insertEntries(rows, start + 3 * DAY);
        const daily = await store.usesPerDay();
        expect(daily.filter((d) => d.clockUntrusted).map((d) => [d.day, d.uses])).toEqual([['2026-12-23', 2]]);
        const checked = await expectRollupsFromEntries(store, [undefined, ['CL-1'], ['CL-0', 'CL-1'], []]);
        // the day-by-terminal series the store builds from a row a terminal: the same as the series of the sums
        for (const clinics of [undefined, ['CL-1'], ['CL-0', 'CL-1'], []]) expect(await store.terminalDaySeries(clinics), `terminalDaySeries ${String(clinics)}`).toEqual(useSeries(await store.usesSummed('terminal', 'day', clinics)));
        expect((await store.usesSummed('all', 'week')).map((r) => r.bucket)).toEqual(['2026-12-14', '2026-12-21', '2026-12-28', '2027-01-04']);
        expect(checked).toBeGreaterThan(100);
      } finally {
        await store.close();
      }
    });

    it('counts what a database from before migration 6 holds, once, when it is upgraded (untrusted uses apart: migration 11)', async () => {
      const place = await backend.place('rollup_upgrade');
      const rows = ledger('TU', [
        { kind: 'use', day: 0 },
        { kind: 'use', day: 1 },
        { kind: 'release', day: 1 },
        { kind: 'use', day: 1 },
        { kind: 'use', day: 2, trusted: false },
      ]);
      const driver = place.kind === 'sqlite' ? createSqliteDriver(place.path, SQLITE_MIGRATIONS.filter((m) => m.version <= 5)) : await createPostgresDriver(place.connectionString, POSTGRES_MIGRATIONS.filter((m) => m.version <= 5));
      for (const r of rows) {
        await driver.run('INSERT INTO entries (terminal_id, seq, type, time, day, clock_trusted, clinic_code, batch_id, serial, ref, hash, prev_hash, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
          r.terminalId, r.seq, r.type, r.time, new Date(r.time).toISOString().slice(0, 10), r.clockTrusted ? 1 : 0, r.clinicCode, r.batchId ?? null, r.serial ?? null, r.ref ?? null, r.hash, r.prevHash, r.raw, T0 + 3 * DAY,
        ]);
      }
      await driver.run('INSERT INTO batches (batch_id, batch_no, clinic_code, count, terminal_id, seq, held_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [batchOf('TU', 0), 1, 'CL-TU', 10, 'TU', 1, T0]);
      await driver.close();
      for (let open = 0; open < 2; open++) {
        const store = await createServerStore(place);
        // migration 13 counted the week, month, clinic and batch roll-ups from what was there, once
        await expectRollupsFromEntries(store, [undefined]);
        expect((await store.batchReconciliation()).map((b) => [b.used, b.released])).toEqual([[3, 1]]);
        expect(await store.usesPerDay()).toEqual(await store.usesPerDayFromEntries());
        expect((await store.usesPerDay()).reduce((n, d) => n + d.uses, 0)).toBe(3);
        // migration 11 moved the 1970 use apart, to the day it was received
        expect((await store.usesPerDay()).filter((d) => d.clockUntrusted)).toEqual([{ terminalId: 'TU', clinicCode: 'CL-TU', day: '2026-11-04', uses: 1, clockUntrusted: true }]);
        expect(await store.usesPerClinic()).toEqual([{ clinicCode: 'CL-TU', uses: 3, untrustedUses: 1 }]);
        await store.close();
      }
    });
  });
}
