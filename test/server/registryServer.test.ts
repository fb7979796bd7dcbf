/**
 * The registry in a running ingest server behind a real Mosquitto: an export
 * POSTed to the server, a terminal syncing over MQTT that loads one registered
 * and one unknown batch from a clinic it is not registered to; the server's
 * own registry check (its timer, not a call from the test) raises the alerts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';
import { stationExport } from './registryFixtures.js';

let broker: RunningMosquitto;
let rig: ServerRig;
const investor = makeInvestor();

beforeAll(async () => {
  broker = await startMosquitto();
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: 0, verifierThreads: 0, registryCheckMs: 100 });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
});

describe('registry in the running server', () => {
  it('imports over HTTP and alerts on an unregistered batch and a terminal in the wrong clinic', async () => {
    const registered = makeBatch(investor, 'CL-1', 1, 5);
    const stray = makeBatch(investor, 'CL-1', 2, 5);
    const res = await fetch(`${rig.server.httpUrl}/api/registry/import`, { method: 'POST', body: stationExport(investor, 'ST-1', [registered]) });
    expect(res.status).toBe(200);
    await rig.store.registry.putTerminal({ terminalId: 'T-REG', clinicCode: 'CL-2', status: 'expected', addedAt: 1 });

    const ledger = new SignedLedger(investor, 'T-REG', 'CL-1');
    ledger.loadBatch(registered);
    ledger.use(registered, 1);
    ledger.loadBatch(stray);
    const sync = createSyncClient({ outbox: new InMemoryOutbox(ledger), brokerUrl: broker.url, pollMs: 50 });
    await sync.drained(20_000);
    await sync.stop();

    const alerts = async () => ((await (await fetch(`${rig.server.httpUrl}/api/alerts`)).json()) as { data: Array<{ kind: string; terminalId: string; detail: string }> }).data;
    await waitFor(async () => (await alerts()).length >= 2, 10_000, 'the registry alerts');
    const found = await alerts();
    expect(found.map((a) => a.kind).sort()).toEqual(['batch-not-registered', 'terminal-wrong-clinic']);
    expect(found.find((a) => a.kind === 'batch-not-registered')?.detail).toContain(stray.batchIdHex);
    const batches = ((await (await fetch(`${rig.server.httpUrl}/api/registry/batches`)).json()) as { data: Array<{ batchId: string; terminalId?: string }> }).data;
    expect(batches).toEqual([expect.objectContaining({ batchId: registered.batchIdHex, terminalId: 'T-REG' })]);
  });
});
