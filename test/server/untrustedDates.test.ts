/**
 * Audit finding 5: a use recorded with an untrusted terminal clock (1970) was counted under 1970-01-02 in
 * `tally server report uses --by day` and the income report with no flag. Now it stands apart, dated by the
 * day the server received it, the income report says how many it holds, and the ingest raises an alert.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi, UNTRUSTED_DAY_SUFFIX } from '../../src/server/httpApi.js';
import type { EntryRow } from '../../src/server/ServerStore.js';
import { EntryType } from '../../src/codecs/ledgerEntry.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { tally } from '../support/cliLedger.js';
import { makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1, 10);
const hash = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

let dir: string;
let storePath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-untrusted-'));
  storePath = join(dir, 'server.db');
  const store = await createServerStore({ kind: 'sqlite', path: storePath });
  await store.registerTerminal({ terminalId: 'T-1', clinicCode: 'C1', devicePublicKey: new Uint8Array(32), certificate: Uint8Array.of(1) }, T0);
  const row = (seq: number, time: number, clockTrusted: boolean): EntryRow => ({
    terminalId: 'T-1', seq, type: 3, time, clockTrusted, clinicCode: 'C1', batchId: 'b'.repeat(16), serial: seq, hash: hash(`${seq}`), prevHash: hash(`${seq - 1}`), raw: Uint8Array.of(seq),
  });
  await store.insertEntries([row(1, T0, true)], T0);
  // the board's clock reset to 1970: the entry says 1970-01-02, untrusted; it arrives on 2026-11-03
  await store.insertEntries([row(2, DAY + 1000, false)], T0 + 2 * DAY);
  await store.close();
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('uses recorded with an untrusted clock', () => {
  it('stand apart in tally server report uses --by day, under the day the server received them', async () => {
    const r = await tally('server', 'report', 'uses', '--by', 'day', '--store', storePath, '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual([
      { key: '2026-11-01', uses: 1 },
      { key: `2026-11-03 ${UNTRUSTED_DAY_SUFFIX}`, uses: 1 },
    ]);
    expect(r.out).not.toContain('1970');
  });

  it('are counted in the income report, which says how many it holds', async () => {
    const r = await tally('server', 'report', 'income', '--store', storePath);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/clinicCode=C1 {2}uses=2 .*untrustedUses=1/);
    expect(r.out).toContain('of these, 1 use was recorded with an untrusted terminal clock (dated by the day the server received them)');
  });
});

describe('GET /api/uses and /api/income', () => {
  it('flag the untrusted rows and count them', async () => {
    const store = await createServerStore({ kind: 'sqlite', path: storePath });
    const token = 'untrusted-token-0123456789abcdef';
    const app = await buildHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, adminToken: token, clock: () => T0 });
    try {
      const headers = { authorization: `Bearer ${token}` };
      const uses = await app.inject({ method: 'GET', url: '/api/uses?group=none', headers });
      expect(uses.statusCode, uses.body).toBe(200);
      expect((uses.json() as { data: unknown[] }).data).toEqual([
        { terminalId: 'T-1', clinicCode: 'C1', day: '2026-11-01', uses: 1 },
        { terminalId: 'T-1', clinicCode: 'C1', day: '2026-11-03', uses: 1, clockUntrusted: true },
      ]);
      expect(uses.headers['x-next-after']).toBeUndefined();
      // paged: one row a page, the next from X-Next-After; a range; a cursor not made by the store is bad input
      const first = await app.inject({ method: 'GET', url: '/api/uses?group=none&limit=1', headers });
      expect((first.json() as { data: unknown[] }).data).toEqual([{ terminalId: 'T-1', clinicCode: 'C1', day: '2026-11-01', uses: 1 }]);
      const next = String(first.headers['x-next-after']);
      const second = await app.inject({ method: 'GET', url: `/api/uses?group=none&limit=1&after=${encodeURIComponent(next)}`, headers });
      expect((second.json() as { data: unknown[] }).data).toEqual([{ terminalId: 'T-1', clinicCode: 'C1', day: '2026-11-03', uses: 1, clockUntrusted: true }]);
      expect(second.headers['x-next-after']).toBeUndefined();
      const ranged = await app.inject({ method: 'GET', url: '/api/uses?group=none&from=2026-11-02&to=2026-11-30', headers });
      expect((ranged.json() as { data: unknown[] }).data).toEqual([{ terminalId: 'T-1', clinicCode: 'C1', day: '2026-11-03', uses: 1, clockUntrusted: true }]);
      const bad = await app.inject({ method: 'GET', url: '/api/uses?group=none&after=bm90LWEtY3Vyc29y', headers });
      expect([bad.statusCode, (bad.json() as { error: { code: string; field?: string } }).error]).toEqual([400, expect.objectContaining({ code: 'invalid', field: 'after' })]);
      expect((await app.inject({ method: 'GET', url: '/api/uses?group=none&limit=0', headers })).statusCode).toBe(400);
      const byDay = await app.inject({ method: 'GET', url: '/api/uses?group=day', headers });
      expect((byDay.json() as { data: unknown[] }).data).toEqual([
        { key: '2026-11-01', uses: 1 },
        { key: `2026-11-03 ${UNTRUSTED_DAY_SUFFIX}`, uses: 1 },
      ]);
      const csv = await app.inject({ method: 'GET', url: '/api/export/uses.csv', headers });
      expect(csv.body.trim().split('\r\n')).toEqual(['day,clinicCode,terminalId,agentCode,uses,clockUntrusted', '2026-11-01,C1,T-1,,1,', '2026-11-03,C1,T-1,,1,yes']);
      expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
      const csvRange = await app.inject({ method: 'GET', url: '/api/export/uses.csv?to=2026-11-02', headers });
      expect(csvRange.body).toBe('day,clinicCode,terminalId,agentCode,uses,clockUntrusted\r\n2026-11-01,C1,T-1,,1,\r\n');
      const income = await app.inject({ method: 'GET', url: '/api/income', headers });
      expect((income.json() as { data: Array<Record<string, unknown>> }).data).toEqual([expect.objectContaining({ clinicCode: 'C1', uses: 2, untrustedUses: 1 })]);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('the ingest', () => {
  it('raises untrusted-clock-uses when a use recorded with an untrusted clock arrives, once a day', async () => {
    const investor = makeInvestor();
    const ledger = new SignedLedger(investor, 'T-U', 'C1');
    const batch = makeBatch(investor, 'C1', 1, 4);
    ledger.loadBatch(batch);
    ledger.use(batch, 1);
    ledger.append(EntryType.USE_RESERVED, { card: batch.oneTime(2), clockTrusted: false });
    const untrustedSeq = ledger.lastSeq;
    const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'ingest.db') });
    try {
      const ingest = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock: { now: () => T0 + 2 * DAY } });
      const outcome = await ingest.handle(terminalTopic('T-U', 'report'), encodeReport({ transaction: 1, certificate: ledger.certificate, entries: ledger.entries }));
      expect(outcome.accepted, outcome.reason).toBe(true);
      const alerts = (await store.alerts()).filter((a) => a.kind === 'untrusted-clock-uses');
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.detail).toContain(`first seq ${untrustedSeq}`);
      expect(alerts[0]!.detail).toContain('2026-11-03');
      expect((await store.usesPerDay()).filter((d) => d.clockUntrusted)).toEqual([{ terminalId: 'T-U', clinicCode: 'C1', day: '2026-11-03', uses: 1, clockUntrusted: true }]);
    } finally {
      await store.close();
    }
  });
});
