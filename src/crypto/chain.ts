/**
 * Verifying a card's chain back to the investor's root key, offline.
 * root --signs--> white --signs--> batch --signs--> one-time
 * root --signs--> terminal certificate
 * Only public keys are needed: a terminal holds no secret that mints cards.
 */
import { bytesEqual } from '../codecs/bytes.js';
import type {
  RecordError} from '../codecs/cardRecord.js';
import {
  parseCardRecord,
  RecordKind,
  type BatchFields,
  type OneTimeFields,
  type SignedRecord,
  type TerminalFields,
  type WhiteFields,
} from '../codecs/cardRecord.js';
import { TallyError } from '../errors.js';
import { verifyMessage } from './ed25519.js';

export function parseRecordOrThrow(raw: Uint8Array): SignedRecord {
  try {
    return parseCardRecord(raw);
  } catch (err) {
    throw new TallyError('MALFORMED_RECORD', (err as RecordError).message);
  }
}

export function verifySignedBy(record: SignedRecord, issuerPublicKey: Uint8Array): boolean {
  return verifyMessage(issuerPublicKey, record.body, record.signature);
}

/** A batch card's record checked back to the root: returns the batch and its white card */
export function verifyBatchChain(
  batch: SignedRecord,
  rootPublicKey: Uint8Array,
): { batch: SignedRecord<BatchFields>; white: SignedRecord<WhiteFields> } {
  if (batch.kind !== RecordKind.BATCH) throw new TallyError('WRONG_TIER', `expected a batch card, got kind ${batch.kind}`);
  const white = parseRecordOrThrow(batch.issuer);
  if (white.kind !== RecordKind.WHITE) throw new TallyError('FORGED', 'batch issuer is not a white card');
  if (!verifySignedBy(white, rootPublicKey)) throw new TallyError('FORGED', 'white card not signed by the investor root');
  if (!verifySignedBy(batch, white.publicKey)) throw new TallyError('FORGED', 'batch card not signed by its white card');
  return { batch, white };
}

export function verifyOneTime(card: SignedRecord, batchPublicKey: Uint8Array, batchId: Uint8Array): SignedRecord<OneTimeFields> {
  if (card.kind !== RecordKind.ONE_TIME) throw new TallyError('WRONG_TIER', `expected a one-time card, got kind ${card.kind}`);
  if (!bytesEqual(card.batchId, batchId)) throw new TallyError('BATCH_NOT_LOADED');
  if (!verifySignedBy(card, batchPublicKey)) throw new TallyError('FORGED', 'one-time card not signed by its batch key');
  return card;
}

export function verifyTerminalCertificate(cert: SignedRecord, rootPublicKey: Uint8Array): SignedRecord<TerminalFields> {
  if (cert.kind !== RecordKind.TERMINAL) throw new TallyError('WRONG_TIER', 'not a terminal certificate');
  if (!verifySignedBy(cert, rootPublicKey)) throw new TallyError('FORGED', 'terminal certificate not signed by the investor root');
  return cert;
}
