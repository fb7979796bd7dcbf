/**
 * The station's registry as a signed export for the server (see
 * codecs/registryExport.ts): every mother, white and batch card record it
 * holds, and per batch how many one-time cards it wrote. One-time records stay
 * at the station: their serial range is 1..count of the signed batch record,
 * and the server needs nothing more to reconcile. Every export is complete
 * (not a delta), so importing any of them, twice or out of order, is safe.
 */
import { toHex } from '../codecs/bytes.js';
import { RecordKind } from '../codecs/cardRecord.js';
import { encodeRegistryExport, type ExportedCard } from '../codecs/registryExport.js';
import { privateKeyFromSeed, signMessage } from '../crypto/ed25519.js';
import { TallyError } from '../errors.js';
import type { IssuingRegistry } from './IssuingRegistry.js';

export function exportRegistry(registry: IssuingRegistry, exportedAt: number): string {
  const station = registry.station();
  if (!station) throw new TallyError('USAGE', 'this station has no certified key yet: tally issue certify-station with the mother card first');
  const cards: ExportedCard[] = registry
    .cards()
    .filter((c) => c.kind === RecordKind.MOTHER || c.kind === RecordKind.WHITE || c.kind === RecordKind.BATCH)
    .map((c) => ({
      record: toHex(c.record),
      written: c.written,
      ...(c.chipUid ? { chipUid: toHex(c.chipUid) } : {}),
      ...(c.parentCardId ? { parentCardId: toHex(c.parentCardId) } : {}),
    }));
  const oneTime = registry.oneTimeSummary().map((b) => ({ batchId: toHex(b.batchId), count: b.count, written: b.written }));
  const key = privateKeyFromSeed(station.keySeed);
  return encodeRegistryExport(
    { stationId: station.stationId, exportedAt, certificate: { body: station.certificateBody, signature: toHex(station.certificateSignature) }, cards, oneTime },
    (payload) => toHex(signMessage(key, payload)),
  );
}
