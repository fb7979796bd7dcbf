/**
 * Checks an issuing station's registry export before anything of it is
 * stored: the station certificate is signed by the investor root (the mother
 * card), the export by the certified station key, and every card record in it
 * chains to the root on its own (white by root, batch by its white card). Any
 * failure refuses the whole export with a stable reason; nothing is imported.
 */
import { ReasonedError } from '../../errors.js';
import { bytesEqual, fromHex, toHex, utf8 } from '../../codecs/bytes.js';
import { parseCardRecord, RecordKind, type BatchFields, type MotherFields, type SignedRecord, type WhiteFields } from '../../codecs/cardRecord.js';
import {
  parseRegistryExportFile,
  parseRegistryExportPayload,
  parseStationCertificateBody,
  RegistryExportError,
  type RegistryExportPayload,
} from '../../codecs/registryExport.js';
import { verifyBatchChain, verifySignedBy } from '../../crypto/chain.js';
import { sha256, verifyMessage } from '../../crypto/ed25519.js';
import type { ImportCard, ImportSummary, VerifiedRegistryExport } from './RegistryStore.js';

export type ImportRefusalReason =
  | 'malformed'
  | 'unsupported-format'
  | 'oversized'
  | 'station-not-certified'
  | 'bad-signature'
  | 'station-mismatch'
  | 'forged-card'
  | 'inconsistent';

export class RegistryImportRefused extends ReasonedError<ImportRefusalReason> {
  override readonly name: string = 'RegistryImportRefused';
  constructor(reason: ImportRefusalReason, detail: string) {
    super('REGISTRY_IMPORT_REFUSED', reason, detail);
  }
}

const refuse = (reason: ImportRefusalReason, detail: string): never => {
  throw new RegistryImportRefused(reason, detail);
};

function cardOf(record: SignedRecord, rootPublicKey: Uint8Array, where: string): Omit<ImportCard, 'written' | 'chipUid' | 'record'> {
  const common = { cardId: toHex(record.cardId), issuedAt: record.issuedAt * 1000 };
  switch (record.kind) {
    case RecordKind.MOTHER: {
      const mother = record as SignedRecord<MotherFields>;
      if (!bytesEqual(mother.publicKey, rootPublicKey) || !verifySignedBy(mother, rootPublicKey)) refuse('forged-card', `${where}: a mother card of another root`);
      return { ...common, kind: 'mother' };
    }
    case RecordKind.WHITE: {
      const white = record as SignedRecord<WhiteFields>;
      if (!verifySignedBy(white, rootPublicKey)) refuse('forged-card', `${where}: white card ${common.cardId} not signed by the investor root`);
      return { ...common, kind: 'white', quota: white.quota, validUntil: white.validUntil * 1000 };
    }
    case RecordKind.BATCH: {
      let chain: { batch: SignedRecord<BatchFields>; white: SignedRecord<WhiteFields> } | undefined;
      try {
        chain = verifyBatchChain(record, rootPublicKey);
      } catch (err) {
        refuse('forged-card', `${where}: batch card ${common.cardId}: ${(err as Error).message}`);
      }
      const { batch, white } = chain!;
      return {
        ...common,
        kind: 'batch',
        signerCardId: toHex(white.cardId),
        clinicCode: batch.clinicCode,
        batchNo: batch.batchNo,
        count: batch.count,
        validFrom: batch.validFrom * 1000,
        validUntil: batch.validUntil * 1000,
      };
    }
    default:
      return refuse('inconsistent', `${where}: a card of kind ${record.kind} does not belong in a registry export`);
  }
}

/** Parses and verifies an export file's text; throws RegistryImportRefused */
export function verifyRegistryExport(fileText: string, rootPublicKey: Uint8Array): VerifiedRegistryExport {
  let payload: RegistryExportPayload;
  let signature: Uint8Array;
  let payloadBytes: Uint8Array;
  try {
    const file = parseRegistryExportFile(fileText);
    payloadBytes = utf8(file.payload);
    signature = fromHex(file.signature);
    payload = parseRegistryExportPayload(file.payload);
  } catch (err) {
    if (err instanceof RegistryExportError) throw new RegistryImportRefused(err.reason, err.message);
    throw err;
  }

  let stationKey: Uint8Array;
  let certificate: ReturnType<typeof parseStationCertificateBody>;
  try {
    certificate = parseStationCertificateBody(payload.certificate.body);
    stationKey = fromHex(certificate.publicKey);
  } catch (err) {
    if (err instanceof RegistryExportError) throw new RegistryImportRefused('station-not-certified', err.message);
    throw err;
  }
  if (!verifyMessage(rootPublicKey, utf8(payload.certificate.body), fromHex(payload.certificate.signature))) {
    refuse('station-not-certified', `station ${certificate.stationId}: its key is not certified by this investor's mother card`);
  }
  if (!verifyMessage(stationKey, payloadBytes, signature)) refuse('bad-signature', `the export is not signed by station ${certificate.stationId}'s key (altered after export?)`);
  if (payload.stationId !== certificate.stationId) refuse('station-mismatch', `export names station ${payload.stationId}, its certificate ${certificate.stationId}`);

  const cards: ImportCard[] = payload.cards.map((c, i) => {
    let record: SignedRecord;
    const raw = fromHex(c.record);
    try {
      record = parseCardRecord(raw);
    } catch (err) {
      return refuse('malformed', `cards[${i}]: ${(err as Error).message}`);
    }
    const card = cardOf(record, rootPublicKey, `cards[${i}]`);
    // a white card's signer is the mother card: its id is not in the white record, the station says which
    const signerCardId = card.kind === 'white' ? c.parentCardId : card.signerCardId;
    return { ...card, ...(signerCardId ? { signerCardId } : {}), written: c.written, ...(c.chipUid ? { chipUid: c.chipUid } : {}), record: raw };
  });
  const ids = new Set<string>();
  for (const c of cards) {
    if (ids.has(c.cardId)) refuse('inconsistent', `card ${c.cardId} appears twice`);
    ids.add(c.cardId);
  }
  const batches = new Map(cards.filter((c) => c.kind === 'batch').map((c) => [c.cardId, c]));
  const seenRanges = new Set<string>();
  for (const o of payload.oneTime) {
    const batch = batches.get(o.batchId);
    if (!batch) refuse('inconsistent', `one-time cards of batch ${o.batchId}, which the export does not hold`);
    if (o.count !== batch!.count) refuse('inconsistent', `batch ${o.batchId}: ${o.count} one-time cards, its signed record says ${batch!.count}`);
    if (o.written > o.count) refuse('inconsistent', `batch ${o.batchId}: ${o.written} of ${o.count} one-time cards written`);
    if (seenRanges.has(o.batchId)) refuse('inconsistent', `one-time range of batch ${o.batchId} appears twice`);
    seenRanges.add(o.batchId);
  }
  return {
    digest: toHex(sha256(payloadBytes)),
    stationId: certificate.stationId,
    stationPublicKey: certificate.publicKey,
    motherCardId: certificate.motherCardId,
    certifiedAt: certificate.issuedAt * 1000,
    exportedAt: payload.exportedAt,
    cards,
    oneTime: payload.oneTime,
  };
}

/** Verifies an export and imports it (idempotent); throws RegistryImportRefused and stores nothing when it does not verify */
export async function importRegistryExport(
  registry: { importExport(v: VerifiedRegistryExport, at: number): Promise<ImportSummary> },
  fileText: string,
  rootPublicKey: Uint8Array,
  at: number,
): Promise<ImportSummary> {
  return registry.importExport(verifyRegistryExport(fileText, rootPublicKey), at);
}
