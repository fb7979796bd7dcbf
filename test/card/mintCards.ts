/**
 * Test helpers that make cards the way an attacker or a test needs them:
 * a batch whose key the test holds (to mint out-of-range serials), and
 * copies of real cards with their EEPROM record altered.
 */
import { randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import {
  encodeRecordBody,
  encodeSignedRecord,
  parseCardRecord,
  RecordKind,
  type OneTimeFields,
  type RecordKindValue,
  type SignedRecord,
} from '../../src/codecs/cardRecord.js';
import { CardClient } from '../../src/card/CardClient.js';
import { generateSigningKey, sha256, signMessage } from '../../src/crypto/ed25519.js';
import { DEMO_WHITE_PIN, directChannel, type Issuer } from '../../src/scenario/CardWorld.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';

const DAY = 86_400;

/** The signed record a simulated card holds */
export function recordOf(card: SimulatedCard): SignedRecord {
  const hex = card.snapshot().record;
  if (!hex) throw new Error('card has no record');
  return parseCardRecord(fromHex(hex));
}

/** The record of a one-time card */
export function oneTimeOf(card: SimulatedCard): SignedRecord<OneTimeFields> {
  const record = recordOf(card);
  if (record.kind !== RecordKind.ONE_TIME) throw new Error(`not a one-time card: kind ${record.kind}`);
  return record;
}

/** A personalised card holding exactly these record bytes */
export async function writeCard(kind: RecordKindValue, record: Uint8Array): Promise<SimulatedCard> {
  const card = SimulatedCard.blank();
  const client = new CardClient(directChannel(card));
  await client.select();
  await client.putProfile(kind);
  await client.putRecord(record);
  await client.activate();
  return card;
}

/** A copy of a card with its record bytes replaced (what a forger with an EEPROM writer makes) */
export function withRecord(card: SimulatedCard, record: Uint8Array): SimulatedCard {
  return SimulatedCard.fromState({ ...card.snapshot(), record: toHex(record) });
}

/** Signs a record body with the issuer's white card, as the issuing station does (spends one of its quota) */
export async function signWithWhiteCard(issuer: Issuer, body: Uint8Array): Promise<Uint8Array> {
  const client = new CardClient(directChannel(issuer.white));
  await client.select();
  await client.verifyPin(DEMO_WHITE_PIN);
  return client.signDigest(sha256(body));
}

export interface OwnBatch {
  readonly batchCard: SimulatedCard;
  readonly batchId: Uint8Array;
  readonly count: number;
  readonly batchKey: KeyObject;
  /** A one-time card of this batch with any serial, signed with the real batch key (or another key) */
  mint(serial: number, options?: { signWith?: KeyObject; batchId?: Uint8Array }): Promise<SimulatedCard>;
}

/** A batch made like the issuing station makes one, except that the test keeps the batch key */
export async function makeOwnBatch(
  issuer: Issuer,
  options: { clinicCode: string; count: number; batchNo?: number; validFrom?: number; validUntil?: number },
): Promise<OwnBatch> {
  const now = Math.floor(Date.now() / 1000);
  const batchKey = generateSigningKey();
  const cardId = new Uint8Array(randomBytes(8));
  const validFrom = options.validFrom ?? now - DAY;
  const body = encodeRecordBody({
    kind: RecordKind.BATCH,
    cardId,
    issuedAt: now,
    publicKey: batchKey.publicKey,
    clinicCode: options.clinicCode,
    batchNo: options.batchNo ?? 900 + (cardId[0] ?? 0),
    count: options.count,
    validFrom,
    validUntil: options.validUntil ?? validFrom + 365 * DAY,
    issuer: recordOf(issuer.white).raw,
  });
  const batchRecord = encodeSignedRecord(body, await signWithWhiteCard(issuer, body));
  const batchCard = await writeCard(RecordKind.BATCH, batchRecord);
  return {
    batchCard,
    batchId: cardId,
    count: options.count,
    batchKey: batchKey.privateKey,
    mint: async (serial, mintOptions = {}) => {
      const otBody = encodeRecordBody({
        kind: RecordKind.ONE_TIME,
        cardId: new Uint8Array(randomBytes(8)),
        issuedAt: now,
        batchId: mintOptions.batchId ?? cardId,
        serial,
      });
      const record = encodeSignedRecord(otBody, signMessage(mintOptions.signWith ?? batchKey.privateKey, otBody));
      return writeCard(RecordKind.ONE_TIME, record);
    },
  };
}
