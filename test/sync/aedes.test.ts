/** The demo's embedded broker (aedes, MQTT 3.1.1 only): sync and ingest work over it too. */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { InMemoryOutbox, makeInvestor } from '../support/signedLedger.js';
import { busyLedger, startServerRig, type ServerRig } from '../support/syncHarness.js';

let aedes: Aedes;
let server: Server;
let url: string;
const investor = makeInvestor();

beforeAll(async () => {
  aedes = await Aedes.createBroker();
  server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  url = `mqtt://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('sync over aedes', () => {
  it('drains a terminal to the ingest server on MQTT 3.1.1', async () => {
    let rig: ServerRig | undefined;
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-AEDES', 600));
    const sync = createSyncClient({ outbox, brokerUrl: url, protocolVersion: 4, pollMs: 50, policy: { reportBatchSize: 30, ackTimeoutMs: 1000 } });
    // the server comes up after the terminal: reports sent before it subscribed are lost at the broker and sent again
    try {
      rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: url, protocolVersion: 4 });
      await sync.drained(20_000);
      expect((await rig.store.entries('T-AEDES', 1, 1000)).map((e) => e.raw)).toEqual(outbox.ledger.entries);
      expect(sync.receiveMaximum()).toBe(20);
      expect(sync.stats.maxInflightPublishes).toBeLessThanOrEqual(20);
    } finally {
      await sync.stop();
      await rig?.close();
    }
  });
});
