/** The real terminal Ledger (SQLite) as the OutboxSource: drained to the server, survives a terminal restart, deny lists land in it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../../src/codecs/bytes.js';
import { parseCardRecord, type BatchFields, type OneTimeFields, type SignedRecord } from '../../src/codecs/cardRecord.js';
import { EntryType } from '../../src/codecs/ledgerEntry.js';
import { encodeJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { generateSigningKey, signMessage } from '../../src/crypto/ed25519.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import type { OutboxSource } from '../../src/sync/OutboxSource.js';
import { systemClock } from '../../src/util/clock.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

let broker: RunningMosquitto;
let rig: ServerRig;
const investor = makeInvestor();
const dir = mkdtempSync(join(tmpdir(), 'tally-ledger-sync-'));

beforeAll(async () => {
  broker = await startMosquitto();
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 300 });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

function openLedger(path: string, device: ReturnType<typeof generateSigningKey>): Ledger {
  const ledger = Ledger.open(path, systemClock);
  ledger.setSigner((body) => signMessage(device.privateKey, body));
  return ledger;
}

describe('sync with the real Ledger', () => {
  it('drains the SQLite outbox to the server, across a terminal restart, and applies deny lists to it', async () => {
    const device = generateSigningKey();
    const identity = new SignedLedger(investor, 'T-LEDGER', 'CL-1', device); // only for its certificate
    const path = join(dir, 'terminal.db');
    let ledger = openLedger(path, device);
    ledger.provision({ terminalId: 'T-LEDGER', clinicCode: 'CL-1', rootPublicKey: investor.rootPublicKey, certificate: identity.certificate });
    const batch = makeBatch(investor, 'CL-1', 4, 50);
    const chip = new Uint8Array(8).fill(1);
    ledger.loadBatch(parseCardRecord(batch.record) as SignedRecord<BatchFields>, new Uint8Array(8), chip);
    const swipe = (l: Ledger, serial: number): void => {
      const seq = l.reserveUse(parseCardRecord(batch.oneTime(serial)) as SignedRecord<OneTimeFields>, chip);
      l.recordDeviceEvent(seq, EntryType.USE_STARTED);
      l.recordDeviceEvent(seq, EntryType.USE_COMPLETED);
    };
    for (let serial = 1; serial <= 20; serial++) swipe(ledger, serial);

    const outbox: OutboxSource = ledger;
    let sync = createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 50 });
    await sync.drained(20_000);
    expect(ledger.pendingCount()).toBe(0);
    await sync.stop();

    // the terminal restarts with more uses made while it was down
    for (let serial = 21; serial <= 30; serial++) swipe(ledger, serial);
    ledger.close();
    ledger = openLedger(path, device);
    expect(ledger.pendingCount()).toBe(30);
    sync = createSyncClient({
      outbox: ledger,
      brokerUrl: broker.url,
      pollMs: 50,
      onDenylist: (update) => ledger.applyDenyList({ version: update.version, full: update.full, add: update.add.map((id) => ({ cardId: fromHex(id), reason: 'server' })), remove: update.remove.map(fromHex) }),
    });
    const waitForRefusalOrApply = (version: number) => waitFor(() => ledger.denyListVersion() === version, 5000, `deny list ${version}`);
    await sync.drained(20_000);
    const stored = await rig.store.entries('T-LEDGER', 1, 1000);
    expect(stored.map((e) => e.raw)).toEqual([...ledger.entries()]);
    expect(ledger.verify().ok).toBe(true);
    expect((await rig.store.usesPerDay()).reduce((n, d) => n + d.uses, 0)).toBe(30);

    await waitFor(() => sync.subscribed(), 5000, 'subscribed');
    await rig.server.publishDenylist('T-LEDGER', { transaction: 1, version: 3, kind: 'full', add: ['00000000000000ab'] });
    await waitForRefusalOrApply(3);
    await rig.server.client.publishAsync(terminalTopic('T-LEDGER', 'denylist'), Buffer.from(encodeJsonPayload('denylist', { transaction: 2, version: 4, kind: 'delta', baseVersion: 3, add: [], remove: ['00000000000000ab'] })), { qos: 1 });
    await waitForRefusalOrApply(4);
    expect(sync.state().denylist).toEqual({ version: 4, cards: [] });
    await sync.stop();
    ledger.close();
  });
});
