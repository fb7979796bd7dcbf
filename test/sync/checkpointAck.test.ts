/**
 * The server's checkpoint travels in its acks over a real broker: an ingest
 * server with a root-certified signing key signs the terminal's contiguous
 * head into each ack, and the terminal's sync client hands it on (onCheckpoint),
 * where it verifies against the root and names the head of the drained ledger.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { encodeServerKeyCertificateBody, parseCheckpoint, type CheckpointFields } from '../../src/codecs/checkpoint.js';
import { parseCardRecord, type BatchFields, type OneTimeFields, type SignedRecord } from '../../src/codecs/cardRecord.js';
import { EntryType } from '../../src/codecs/ledgerEntry.js';
import { verifyCheckpoint } from '../../src/crypto/checkpoint.js';
import { generateSigningKey, signMessage } from '../../src/crypto/ed25519.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { systemClock } from '../../src/util/clock.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

let broker: RunningMosquitto;
let rig: ServerRig;
const investor = makeInvestor();
const dir = mkdtempSync(join(tmpdir(), 'tally-checkpoint-ack-'));

beforeAll(async () => {
  broker = await startMosquitto();
  const serverKey = generateSigningKey();
  const body = encodeServerKeyCertificateBody({ serverId: 'SRV-ACK', publicKey: toHex(serverKey.publicKey), motherCardId: '0102030405060708', issuedAt: 1_790_000_000 });
  const certificate = { body, signature: toHex(signMessage(investor.root.privateKey, utf8(body))) };
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 300, workerThreads: 0, checkpointSigner: { key: serverKey.privateKey, certificate } });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('checkpoints in the acks', () => {
  it('arrive with the acks, verify against the root and name the head the server holds', async () => {
    const device = generateSigningKey();
    const identity = new SignedLedger(investor, 'T-CPACK', 'CL-1', device);
    const ledger = Ledger.open(join(dir, 'terminal.db'), systemClock);
    ledger.setSigner((b) => signMessage(device.privateKey, b));
    ledger.provision({ terminalId: 'T-CPACK', clinicCode: 'CL-1', rootPublicKey: investor.rootPublicKey, certificate: identity.certificate });
    const batch = makeBatch(investor, 'CL-1', 7, 20);
    const chip = new Uint8Array(8).fill(2);
    ledger.loadBatch(parseCardRecord(batch.record) as SignedRecord<BatchFields>, new Uint8Array(8), chip);
    for (let serial = 1; serial <= 5; serial++) {
      const seq = ledger.reserveUse(parseCardRecord(batch.oneTime(serial)) as SignedRecord<OneTimeFields>, chip);
      ledger.recordDeviceEvent(seq, EntryType.USE_STARTED);
      ledger.recordDeviceEvent(seq, EntryType.USE_COMPLETED);
    }
    const seen: CheckpointFields[] = [];
    const sync = createSyncClient({ outbox: ledger, brokerUrl: broker.url, pollMs: 50, onCheckpoint: (cp) => seen.push(verifyCheckpoint(parseCheckpoint(cp), investor.rootPublicKey)) });
    await sync.drained(20_000);
    await waitFor(() => seen.some((c) => c.seq === ledger.lastSeq()), 10_000, 'the checkpoint of the head');
    await sync.stop();
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ terminalId: 'T-CPACK', serverId: 'SRV-ACK', seq: 17, headHash: toHex(ledger.entryHashAt(17)!) });
    ledger.close();
  });
});
