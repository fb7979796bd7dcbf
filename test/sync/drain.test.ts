/** The outbox drains through a real Mosquitto to the real ingest server: exactly once, within the receive maximum, across restarts. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSyncClient, type SyncClient, type SyncClientOptions } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeInvestor, type Investor } from '../support/signedLedger.js';
import { busyLedger, startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

const RECEIVE_MAXIMUM = 5;
let broker: RunningMosquitto;
let investor: Investor;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  broker = await startMosquitto({ maxInflight: RECEIVE_MAXIMUM });
  investor = makeInvestor();
});
afterAll(async () => {
  await broker?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function rig(protocolVersion: 4 | 5 = 5): Promise<ServerRig> {
  const r = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, protocolVersion, gapCheckMs: 200 });
  cleanups.push(() => r.close());
  return r;
}

function terminal(outbox: InMemoryOutbox, options: Partial<SyncClientOptions> = {}): SyncClient {
  const sync = createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 50, policy: { reportBatchSize: 25, ackTimeoutMs: 2000 }, ...options });
  cleanups.push(() => sync.stop());
  return sync;
}

async function expectServerMatches(r: ServerRig, outbox: InMemoryOutbox): Promise<void> {
  const stored = await r.store.entries(outbox.terminalId, 1, 1_000_000);
  expect(stored.length).toBe(outbox.ledger.lastSeq);
  expect(stored.map((e) => e.raw)).toEqual(outbox.ledger.entries);
  expect((await r.store.terminal(outbox.terminalId))?.contiguousSeq).toBe(outbox.ledger.lastSeq);
  expect(outbox.pendingCount()).toBe(0);
}

describe.each([5, 4] as const)('sync drain over MQTT %s', (protocolVersion) => {
  it('drains a backlog exactly once, never past the broker receive maximum', async () => {
    const r = await rig(protocolVersion);
    const outbox = new InMemoryOutbox(busyLedger(investor, `T-DRAIN-${protocolVersion}`, 1500));
    const sync = terminal(outbox, { protocolVersion });
    await sync.drained(30_000);
    await expectServerMatches(r, outbox);
    expect(sync.receiveMaximum()).toBe(protocolVersion === 5 ? RECEIVE_MAXIMUM : 20);
    expect(sync.stats.maxInflightPublishes).toBeLessThanOrEqual(protocolVersion === 5 ? RECEIVE_MAXIMUM : 20);
    expect(sync.stats.maxInflightReports).toBeLessThanOrEqual(protocolVersion === 5 ? RECEIVE_MAXIMUM : 20);
    expect(sync.stats.maxInflightReports).toBeGreaterThan(1);
    expect(r.server.ingest.stats.entriesInserted).toBe(outbox.ledger.lastSeq);
  });
});

describe('sync: an entry leaves the outbox only on the application ack', () => {
  it('keeps everything while no server acknowledges, although the broker PUBACKs', async () => {
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-NOSERVER', 60));
    const sync = terminal(outbox, { policy: { reportBatchSize: 10, ackTimeoutMs: 300 } });
    await waitFor(() => sync.stats.reportsSent >= 6, 10_000, 'reports sent');
    await new Promise((r) => setTimeout(r, 400));
    expect(outbox.pendingCount()).toBe(outbox.ledger.lastSeq);
    expect(outbox.acknowledgeCalls).toBe(0);
    const r = await rig();
    await sync.drained(20_000);
    await expectServerMatches(r, outbox);
    expect(sync.stats.ackTimeouts).toBeGreaterThan(0);
  });
});

describe('sync: resumes after restarts', () => {
  it('survives a broker restart mid-drain', async () => {
    const r = await rig();
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-BROKER', 3000));
    const sync = terminal(outbox, { policy: { reportBatchSize: 20, maxReportsPerSecond: 60, ackTimeoutMs: 1500 } });
    await waitFor(() => outbox.acknowledged.size > 200, 20_000, 'first acks');
    await broker.restart();
    await sync.drained(60_000);
    await expectServerMatches(r, outbox);
  });

  it('survives a server restart and a terminal restart mid-drain', async () => {
    const r = await rig();
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-RESTART', 2000));
    const first = terminal(outbox, { policy: { reportBatchSize: 20, maxReportsPerSecond: 40, ackTimeoutMs: 1000 } });
    await waitFor(() => outbox.acknowledged.size > 150, 20_000, 'first acks');
    await first.stop();
    const acknowledgedBefore = outbox.acknowledged.size;
    expect(acknowledgedBefore).toBeLessThan(outbox.ledger.lastSeq);
    const second = terminal(outbox, { policy: { reportBatchSize: 20, maxReportsPerSecond: 40, ackTimeoutMs: 1000 } });
    await waitFor(() => outbox.acknowledged.size > acknowledgedBefore + 150, 20_000, 'acks after the terminal restart');
    await r.restart();
    await second.drained(60_000);
    await expectServerMatches(r, outbox);
  });
});

describe('sync: rate limit', () => {
  it('drains a backlog no faster than the configured report rate', async () => {
    await rig();
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-RATE', 200));
    const started = Date.now();
    const sync = terminal(outbox, { policy: { reportBatchSize: 10, maxReportsPerSecond: 10 } });
    await sync.drained(30_000);
    const seconds = (Date.now() - started) / 1000;
    // 20 reports at 10/s with a one-second burst: at least about one second
    expect(sync.stats.reportsSent).toBeGreaterThanOrEqual(20);
    expect(seconds).toBeGreaterThan(0.9);
  });
});
