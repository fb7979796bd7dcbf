/** The registry over the HTTP API: POST an export (verified, idempotent, 422 with the reason when refused; the admin token wanted where one is configured), GET the lists, income at registered prices. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { ManualClock } from '../../src/util/clock.js';
import { startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { makeBatch, makeInvestor, SignedLedger, type Investor } from '../support/signedLedger.js';
import { stationExport } from './registryFixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-registry-http-'));
let store: ServerStore;
let api: HttpApi;
let noRoot: HttpApi;
let guarded: HttpApi;
let investor: Investor;
const TOKEN = 'import-token-0123456789abcdef';

beforeAll(async () => {
  investor = makeInvestor();
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  api = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, rootPublicKey: investor.rootPublicKey, clock: () => 42 });
  noRoot = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } } });
  guarded = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, rootPublicKey: investor.rootPublicKey, adminToken: TOKEN, clock: () => 43 });
});
afterAll(async () => {
  await api.close();
  await noRoot.close();
  await guarded.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string, base = api.url): Promise<{ status: number; body: { status: string; data?: unknown; error?: { code: string; message: string } } }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as never };
}

async function post(body: string, base = api.url, authorization?: string) {
  const res = await fetch(`${base}/api/registry/import`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { status: string; data?: Record<string, unknown>; error?: { code: string; message: string } } };
}

describe('registry HTTP API', () => {
  it('imports a posted export once, refuses a tampered one with its reason, and lists what it holds', async () => {
    const batch = makeBatch(investor, 'CL-1', 1, 12);
    const file = stationExport(investor, 'ST-WEB', [batch]);

    const tampered = JSON.stringify({ ...JSON.parse(file), signature: 'ff'.repeat(64) });
    const refused = await post(tampered);
    expect(refused.status).toBe(422);
    expect(refused.body.error?.code).toBe('bad-signature');
    const foreign = await post(stationExport(makeInvestor(), 'ST-X', [makeBatch(makeInvestor(), 'CL-1', 1, 1)]));
    expect(foreign.status).toBe(422);
    expect(foreign.body.error?.code).toBe('station-not-certified');
    expect((await post('not json')).body.error?.code).toBe('malformed');
    expect((await get('/api/registry/cards')).body.data).toEqual([]);

    const first = await post(file);
    expect(first.status).toBe(200);
    expect(first.body.data).toMatchObject({ stationId: 'ST-WEB', alreadyImported: false, cardsAdded: 2, oneTimeBatchesAdded: 1 });
    const again = await post(file);
    expect(again.body.data).toMatchObject({ alreadyImported: true, cardsAdded: 0 });

    const batches = (await get('/api/registry/batches')).body.data as Array<Record<string, unknown>>;
    expect(batches).toEqual([expect.objectContaining({ batchId: batch.batchIdHex, clinicCode: 'CL-1', count: 12, serialFrom: 1, serialTo: 12, stationId: 'ST-WEB' })]);
    expect(((await get('/api/registry/cards?kind=white')).body.data as unknown[]).length).toBe(1);
    expect((await get('/api/registry/cards?kind=bogus')).status).toBe(400);
    expect((await get('/api/registry/stations')).body.data).toEqual([expect.objectContaining({ stationId: 'ST-WEB', firstImportAt: 42 })]);
    const issuance = (await get('/api/registry/issuance?station=ST-WEB')).body.data as Array<{ kind: string }>;
    expect(issuance.map((i) => i.kind).sort()).toEqual(['batch', 'one-time', 'white']);
    expect((await get('/api/registry/issuance?station=nobody')).body.data).toEqual([]);
  });

  it('lists clinics and terminals; the income split uses a clinic\'s registered price and share', async () => {
    await store.registry.putClinic({ clinicCode: 'CL-7', name: 'North Eye', pricePerUse: 20_000, investorShare: 0.5, addedAt: 1 });
    await store.registry.putTerminal({ terminalId: 'T-7', clinicCode: 'CL-7', status: 'expected', addedAt: 1 });
    expect((await get('/api/registry/clinics')).body.data).toEqual([{ clinicCode: 'CL-7', name: 'North Eye', pricePerUse: 20_000, investorShare: 0.5, addedAt: 1 }]);
    expect((await get('/api/registry/terminals')).body.data).toEqual([{ terminalId: 'T-7', state: 'expected', clinicCode: 'CL-7' }]);

    const ledger = new SignedLedger(investor, 'T-7', 'CL-7');
    const batch = makeBatch(investor, 'CL-7', 5, 10);
    ledger.loadBatch(batch);
    ledger.use(batch, 1);
    ledger.use(batch, 2);
    const ingest = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock: new ManualClock(Date.UTC(2026, 10, 1)) });
    const entries = Array.from({ length: ledger.lastSeq }, (_, i) => ledger.entry(i + 1));
    expect((await ingest.handle(terminalTopic('T-7', 'report'), encodeReport({ transaction: 1, certificate: ledger.certificate, entries }))).accepted).toBe(true);
    expect((await get('/api/income')).body.data).toEqual([{ clinicCode: 'CL-7', uses: 2, gross: 40_000, investor: 20_000, clinic: 20_000 }]);
    expect((await get('/api/registry/terminals')).body.data).toEqual([expect.objectContaining({ terminalId: 'T-7', state: 'active' })]);
  });

  it('with an admin token configured, an import needs it (401 without, before the body is read); the signatures still decide', async () => {
    const file = stationExport(investor, 'ST-GUARD', [makeBatch(investor, 'CL-3', 1, 4)]);
    const stations = async () => ((await get('/api/registry/stations')).body.data as Array<{ stationId: string }>).map((st) => st.stationId);
    for (const auth of [undefined, `Bearer ${TOKEN}x`, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`]) {
      const refused = await post(file, guarded.url, auth);
      expect(refused.status, String(auth)).toBe(401);
      expect(refused.body.error?.code).toBe('unauthorized');
      expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
    expect((await post('not json', guarded.url)).status).toBe(401);
    expect(await stations()).not.toContain('ST-GUARD');

    const tampered = await post(JSON.stringify({ ...JSON.parse(file), signature: 'ff'.repeat(64) }), guarded.url, `Bearer ${TOKEN}`);
    expect(tampered.status).toBe(422);
    expect(tampered.body.error?.code).toBe('bad-signature');
    expect(await stations()).not.toContain('ST-GUARD');

    const imported = await post(file, guarded.url, `Bearer ${TOKEN}`);
    expect(imported.status).toBe(200);
    expect(imported.body.data).toMatchObject({ stationId: 'ST-GUARD', alreadyImported: false, cardsAdded: 2 });
    expect((await get('/api/registry/stations')).body.data).toContainEqual(expect.objectContaining({ stationId: 'ST-GUARD', firstImportAt: 43 }));
  });

  it('refuses imports when started without the investor root', async () => {
    const res = await post(stationExport(investor, 'ST-Y', []), noRoot.url);
    expect(res.status).toBe(503);
    expect(res.body.error?.code).toBe('no-root');
  });
});
