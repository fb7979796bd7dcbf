/** The ingest server behind a real Mosquitto keeps running through hostile traffic, and still ingests. */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { createIngestServer } from '../../src/server/IngestServer.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeInvestor, SignedLedger } from '../support/signedLedger.js';
import { busyLedger, startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

let broker: RunningMosquitto;
let rig: ServerRig;
const investor = makeInvestor();

beforeAll(async () => {
  broker = await startMosquitto();
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: 0 });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
});

describe('ingest server under hostile traffic', () => {
  it('refuses garbage, forgeries and impersonation with recorded reasons, never stores them, and keeps ingesting', async () => {
    const attacker = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const victim = busyLedger(investor, 'T-VICTIM', 20);
    const foreign = new SignedLedger(makeInvestor(), 'T-VICTIM', 'CL-1'); // certificate from another root
    const messages: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < 100; i++) messages.push([terminalTopic(`T-X${i % 7}`, 'report'), new Uint8Array(randomBytes(1 + (i * 37) % 3000))]);
    messages.push([terminalTopic('T-VICTIM', 'report'), encodeReport({ transaction: 1, certificate: foreign.certificate, entries: foreign.entries })]);
    messages.push([terminalTopic('T-OTHER', 'report'), encodeReport({ transaction: 2, certificate: victim.certificate, entries: victim.entries })]);
    messages.push([terminalTopic('T-VICTIM', 'heartbeat'), Buffer.from('{"queueDepth": "many"}')]);
    for (const [topic, payload] of messages) await attacker.publishAsync(topic, Buffer.from(payload), { qos: 1 });
    await waitFor(() => rig.server.ingest.stats.messagesRejected >= messages.length, 20_000, 'every hostile message refused');
    expect(await rig.store.entryCount()).toBe(0);
    const reasons = new Set((await rig.store.rejections()).map((r) => r.reason));
    expect([...reasons].sort()).toEqual(expect.arrayContaining(['bad-certificate', 'malformed', 'schema', 'terminal-mismatch']));
    await attacker.endAsync();

    // and the genuine terminal gets through
    const outbox = new InMemoryOutbox(victim);
    const sync = createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 50 });
    await sync.drained(20_000);
    await sync.stop();
    expect((await rig.store.entries('T-VICTIM', 1, 100)).map((e) => e.raw)).toEqual(victim.entries);
    const health = (await (await fetch(`${rig.server.httpUrl}/api/health`)).json()) as { status: string; data: { messagesRejected: number } };
    expect(health.status).toBe('ok');
    expect(health.data.messagesRejected).toBe(messages.length);
    const rejections = (await (await fetch(`${rig.server.httpUrl}/api/rejections`)).json()) as { data: unknown[] };
    expect(rejections.data.length).toBe(messages.length);
    const alerts = (await (await fetch(`${rig.server.httpUrl}/api/alerts`)).json()) as { data: Array<{ kind: string }> };
    expect(alerts.data.map((a) => a.kind)).toEqual(['terminal-impersonation']);
  });
});

describe('ingest server start-up that fails', () => {
  const threadCount = (): number => readdirSync('/proc/self/task').length;

  it('when the HTTP port is taken, refuses to start and leaves nothing running: no MQTT session, no worker threads', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      // once through a clean start and stop, so threads the runtime makes on first use are not counted below
      const store = await createServerStore({ kind: 'sqlite', path: ':memory:' });
      await (await createIngestServer({ store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: 0 })).stop();
      const threadsBefore = threadCount();
      for (let attempt = 1; attempt <= 3; attempt++) {
        const clientId = `tally-ingest-port-taken-${attempt}`;
        await expect(createIngestServer({ store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: port, clientId, workerThreads: 2 })).rejects.toThrow(/EADDRINUSE/);
        await waitFor(() => new RegExp(`Client ${clientId} (disconnected|closed its connection)`).test(broker.log()), 5_000, `${clientId} gone from the broker`);
      }
      await waitFor(() => threadCount() <= threadsBefore, 5_000, 'the worker threads gone');
      expect(threadCount()).toBeLessThanOrEqual(threadsBefore);
      await store.close();
    } finally {
      blocker.close();
    }
  });
});
