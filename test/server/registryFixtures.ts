/** A station export made straight from a test investor's root key (test/support/signedLedger.ts): the batches it names are ones the ingest tests load. */
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { parseCardRecord, type BatchFields, type SignedRecord } from '../../src/codecs/cardRecord.js';
import { encodeRegistryExport, encodeStationCertificateBody } from '../../src/codecs/registryExport.js';
import { generateSigningKey, signMessage } from '../../src/crypto/ed25519.js';
import type { BatchCards, Investor } from '../support/signedLedger.js';

export function stationExport(investor: Investor, stationId: string, batches: readonly BatchCards[], exportedAt = 1_800_000_000_000): string {
  const station = generateSigningKey();
  const body = encodeStationCertificateBody({ stationId, publicKey: toHex(station.publicKey), motherCardId: '00'.repeat(8), issuedAt: 1_790_000_000 });
  const certificate = { body, signature: toHex(signMessage(investor.root.privateKey, utf8(body))) };
  const cards = batches.flatMap((b) => {
    const record = parseCardRecord(b.record) as SignedRecord<BatchFields>;
    return [
      { record: toHex(record.issuer), written: true },
      { record: toHex(b.record), written: true },
    ];
  });
  const oneTime = batches.map((b) => ({ batchId: b.batchIdHex, count: b.count, written: b.count }));
  return encodeRegistryExport({ stationId, exportedAt, certificate, cards, oneTime }, (payload) => toHex(signMessage(station.privateKey, payload)));
}
