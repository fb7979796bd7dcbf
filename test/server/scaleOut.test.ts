/** Several ingest workers behind one MQTT shared subscription, on SQLite and on PostgreSQL: nothing lost, nothing doubled; the HTTP reports agree. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore, type ServerStoreOptions } from '../../src/server/createServerStore.js';
import { createIngestServer, type IngestServer } from '../../src/server/IngestServer.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { startPostgres, type RunningPostgres } from '../support/postgres.js';
import { InMemoryOutbox, makeInvestor, type Investor } from '../support/signedLedger.js';
import { busyLedger } from '../support/syncHarness.js';

let broker: RunningMosquitto;
let postgres: RunningPostgres;
let investor: Investor;
const dir = mkdtempSync(join(tmpdir(), 'tally-scale-'));

beforeAll(async () => {
  [broker, postgres] = await Promise.all([startMosquitto(), startPostgres()]);
  investor = makeInvestor();
});
afterAll(async () => {
  await broker?.close();
  await postgres?.close();
  rmSync(dir, { recursive: true, force: true });
});

const WORKERS = 3;
const TERMINALS = 5;

describe.each(['sqlite', 'postgres'] as const)('scale-out on %s', (kind) => {
  it('splits terminals reports over workers through $share and stores each entry exactly once', async () => {
    const storeOptions = (): ServerStoreOptions =>
      kind === 'sqlite' ? { kind, path: join(dir, 'shared.db') } : { kind, connectionString: postgres.connectionString('scaleout') };
    if (kind === 'postgres') postgres.createDatabase('scaleout');
    const stores: ServerStore[] = [];
    const workers: IngestServer[] = [];
    for (let i = 0; i < WORKERS; i++) {
      const store = await createServerStore(storeOptions());
      stores.push(store);
      workers.push(
        await createIngestServer({
          store,
          rootPublicKey: investor.rootPublicKey,
          brokerUrl: broker.url,
          sharedGroup: `ingest-${kind}`,
          clientId: `worker-${kind}-${i}`,
          gapCheckMs: 300,
          ...(i === 0 ? { httpPort: 0, pricing: { default: { pricePerUse: 1000, investorShare: 0.6 } } } : {}),
        }),
      );
    }
    const outboxes = Array.from({ length: TERMINALS }, (_, t) => new InMemoryOutbox(busyLedger(investor, `T-${kind}-${t}`, 400, `CL-${t % 2}`)));
    const syncs = outboxes.map((outbox) => createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 50, policy: { reportBatchSize: 10, ackTimeoutMs: 3000 } }));
    try {
      await Promise.all(syncs.map((s) => s.drained(60_000)));
      const store = stores[0]!;
      for (const outbox of outboxes) {
        const stored = await store.entries(outbox.terminalId, 1, 10_000);
        expect(stored.map((e) => e.raw)).toEqual(outbox.ledger.entries);
        expect((await store.terminal(outbox.terminalId))?.contiguousSeq).toBe(outbox.ledger.lastSeq);
      }
      const total = outboxes.reduce((n, o) => n + o.ledger.lastSeq, 0);
      expect(await store.entryCount()).toBe(total);
      const inserted = workers.reduce((n, w) => n + w.ingest.stats.entriesInserted, 0);
      expect(inserted).toBe(total);
      for (const worker of workers) expect(worker.ingest.stats.reports).toBeGreaterThan(0);
      // no deadlock or busy error turned a report away
      expect(workers.map((w) => w.ingest.stats.messagesRejected)).toEqual(workers.map(() => 0));
      expect(await store.alerts()).toEqual([]);

      // the reports over HTTP
      const get = async (path: string): Promise<unknown> => {
        const response = await fetch(`${workers[0]!.httpUrl}${path}`);
        const body = (await response.json()) as { status: string; data: unknown };
        expect(body.status).toBe('ok');
        return body.data;
      };
      const usesPerTerminal = Math.floor((400 - 2) / 3);
      const byTerminal = (await get('/api/uses?group=terminal')) as Array<{ key: string; uses: number }>;
      expect(byTerminal).toEqual(outboxes.map((o) => ({ key: o.terminalId, uses: usesPerTerminal })).sort((a, b) => a.key.localeCompare(b.key)));
      const income = (await get('/api/income')) as Array<{ clinicCode: string; uses: number; gross: number; investor: number; clinic: number }>;
      expect(income).toEqual([
        { clinicCode: 'CL-0', uses: 3 * usesPerTerminal, gross: 3 * usesPerTerminal * 1000, investor: 3 * usesPerTerminal * 600, clinic: 3 * usesPerTerminal * 400 },
        { clinicCode: 'CL-1', uses: 2 * usesPerTerminal, gross: 2 * usesPerTerminal * 1000, investor: 2 * usesPerTerminal * 600, clinic: 2 * usesPerTerminal * 400 },
      ]);
      const batches = (await get('/api/batches')) as Array<{ used: number; remaining: number }>;
      expect(batches).toHaveLength(TERMINALS);
      expect(batches.every((b) => b.used === usesPerTerminal && b.remaining === 0)).toBe(true);
      const terminals = (await get('/api/terminals')) as Array<{ contiguousSeq: number }>;
      expect(terminals).toHaveLength(TERMINALS);
      const bad = await fetch(`${workers[0]!.httpUrl}/api/uses?group=galaxy`);
      expect(bad.status).toBe(400);
      expect((await fetch(`${workers[0]!.httpUrl}/nope`)).status).toBe(404);
    } finally {
      await Promise.all(syncs.map((s) => s.stop()));
      for (const worker of workers) await worker.stop();
      for (const store of stores) await store.close();
    }
  });
});
