/**
 * One entry of a terminal's ledger: the tally stick's notch.
 *
 * Every entry carries a gapless sequence number, the SHA-256 of the previous
 * entry (all zeros for the first), its type and time, and ends with the
 * terminal's Ed25519 signature over SHA-256 of the body. Anyone holding the
 * entries and the terminal certificate can detect a deleted, altered or
 * reordered entry. Same strict TLV discipline as cardRecord.ts. Pure.
 */
import { CodecError } from '../errors.js';
import { CARD_AUTH_ANSWER_MAX, CHALLENGE_NONCE_LENGTH, TERMINAL_TAG_LENGTH } from './applet.js';
import { fromUtf8, readU64be, u64be, utf8 } from './bytes.js';
import { SIGNATURE_LENGTH } from './cardRecord.js';
import { decodeTlvs, encodeTlv, encodeTlvs, type TlvItem } from './tlv.js';

export const LEDGER_ENTRY_VERSION = 1;
export const HASH_LENGTH = 32;
export const GENESIS_HASH = new Uint8Array(HASH_LENGTH);

/**
 * Before this instant a terminal's clock is certainly wrong (a board whose RTC
 * lost power boots in 1970 or 2000). Entries made then are marked untrusted.
 */
export const CLOCK_FLOOR_MS = Date.UTC(2026, 0, 1);
/** A trusted entry's time is at most this far behind the latest time recorded before it */
export const CLOCK_TRUST_SLACK_MS = 1000;

export const EntryType = {
  /** Factory provisioning: card = the terminal certificate */
  PROVISIONED: 1,
  /** A batch card loaded: card = the batch card's record */
  BATCH_LOADED: 2,
  /** A one-time card deducted and the device about to be enabled: card = its record */
  USE_RESERVED: 3,
  /** The device reported its session started (ref = the reserve entry) */
  USE_STARTED: 4,
  /** The device session finished normally */
  USE_COMPLETED: 5,
  /** The device never started: the use is released, not charged, the serial may be used again */
  USE_RELEASED: 6,
  /** The device started and then faulted: charged, with the fault recorded */
  USE_FAILED: 7,
  /**
   * A witness outside the database proved that this ledger lost entries (restored from an old copy or cut
   * short): ref = the seq the witness says existed, detail = which witness and what it holds, card = the
   * card record when the witness is a card's consumed marker. Written on the ledger as it is, so the server learns.
   */
  WITNESS_ROLLBACK: 8,
  /**
   * A terminal setting the ledger must show in force (the one kind: cards.acceptVersion1, the migration that lets
   * version 1 cards pass without a card key): detail = `name=value`, written when the setting differs from the last recorded.
   */
  TERMINAL_SETTING: 9,
  /**
   * The clock's high-water mark set back to this entry's time, which is trusted from here on: card = the
   * proof (UTF-8 JSON, codecs/clockReset.ts): the server's signed checkpoint of a ledger holding the
   * clock.refused entry before it, or the mother card's signed statement naming this entry's prev hash.
   */
  CLOCK_RESET: 10,
  /** A time the terminal did not take (a local clock far ahead of the mark, a server time far behind it): detail says which */
  CLOCK_REFUSED: 11,
  /**
   * A service voucher written off and the device about to be enabled (voucher-format.md §8): card = the voucher
   * key certificate followed by the voucher; detail = how it was claimed. Then use.started.. by ref, as a card use.
   */
  VOUCHER_RESERVED: 12,
  /**
   * An insurance settlement voucher verified and the device about to be enabled (settlement-voucher.md): card =
   * the voucher's UTF-8 text as the server signed it, detail = the order id. Then use.started.. by ref, as a card use.
   */
  SETTLEMENT_RESERVED: 14,
} as const;
export type EntryTypeValue = (typeof EntryType)[keyof typeof EntryType];

export const ENTRY_TYPE_NAMES: Record<EntryTypeValue, string> = {
  1: 'provisioned',
  2: 'batch.loaded',
  3: 'use.reserved',
  4: 'use.started',
  5: 'use.completed',
  6: 'use.released',
  7: 'use.failed',
  8: 'witness.rollback',
  9: 'terminal.setting',
  10: 'clock.reset',
  11: 'clock.refused',
  12: 'voucher.reserved',
  14: 'settlement.reserved',
};

const Tag = {
  VERSION: 0x01,
  SEQ: 0x40,
  PREV_HASH: 0x41,
  TYPE: 0x42,
  TIME: 0x43,
  CLOCK_TRUSTED: 0x44,
  TERMINAL_ID: 0x45,
  CARD: 0x46,
  REF: 0x47,
  DETAIL: 0x48,
  CHIP_UID: 0x49,
  CARD_CHALLENGE: 0x4a,
  CARD_ANSWER: 0x4b,
  SIGNATURE: 0x7f,
} as const;

export interface LedgerEntryFields {
  readonly seq: number;
  readonly prevHash: Uint8Array;
  readonly type: EntryTypeValue;
  /** Terminal clock, ms since the epoch */
  readonly time: number;
  /** False when the terminal's clock was not trusted at the time (never synced, or went backwards) */
  readonly clockTrusted: boolean;
  readonly terminalId: string;
  /** The card's signed record (or the terminal certificate), when the entry is about a card */
  readonly card?: Uint8Array;
  /** The chip UID of the card presented */
  readonly chipUid?: Uint8Array;
  /** For started/completed/released/failed: the seq of the reserve entry */
  readonly ref?: number;
  /** Free text: a reason or fault detail */
  readonly detail?: string;
  /** A version 2 card's authentication: the challenge the terminal sent (terminal tag 8 || nonce 16) */
  readonly cardChallenge?: Uint8Array;
  /** ... and the card's answer, its DER ECDSA P-256 signature (card-applet.md, INTERNAL AUTHENTICATE) */
  readonly cardAnswer?: Uint8Array;
}

export type LedgerEntry = LedgerEntryFields & {
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
  readonly raw: Uint8Array;
};

export class LedgerEntryError extends CodecError {
  override readonly name: string = 'LedgerEntryError';
  constructor(detail: string, path = '') {
    super('BAD_LEDGER_ENTRY', detail, path);
  }
}

const MAX_DETAIL = 200;
/** The challenge of INTERNAL AUTHENTICATE: terminal tag (8) || nonce (16) */
export const CARD_CHALLENGE_LENGTH = TERMINAL_TAG_LENGTH + CHALLENGE_NONCE_LENGTH;

export function encodeLedgerEntryBody(entry: LedgerEntryFields): Uint8Array {
  if (entry.prevHash.length !== HASH_LENGTH) throw new LedgerEntryError('prevHash must be 32 bytes');
  if (!(entry.type in ENTRY_TYPE_NAMES)) throw new LedgerEntryError(`unknown entry type ${entry.type}`);
  if (entry.seq < 1) throw new LedgerEntryError('seq starts at 1');
  const items: TlvItem[] = [
    { tag: Tag.VERSION, value: Uint8Array.of(LEDGER_ENTRY_VERSION) },
    { tag: Tag.SEQ, value: u64be(entry.seq) },
    { tag: Tag.PREV_HASH, value: entry.prevHash },
    { tag: Tag.TYPE, value: Uint8Array.of(entry.type) },
    { tag: Tag.TIME, value: u64be(entry.time) },
    { tag: Tag.CLOCK_TRUSTED, value: Uint8Array.of(entry.clockTrusted ? 1 : 0) },
    { tag: Tag.TERMINAL_ID, value: utf8(entry.terminalId) },
  ];
  if (entry.card) items.push({ tag: Tag.CARD, value: entry.card });
  if (entry.chipUid) items.push({ tag: Tag.CHIP_UID, value: entry.chipUid });
  if (entry.ref !== undefined) items.push({ tag: Tag.REF, value: u64be(entry.ref) });
  if (entry.detail !== undefined) {
    const detail = utf8(entry.detail);
    if (detail.length > MAX_DETAIL) throw new LedgerEntryError(`detail longer than ${MAX_DETAIL} bytes`);
    items.push({ tag: Tag.DETAIL, value: detail });
  }
  if ((entry.cardChallenge === undefined) !== (entry.cardAnswer === undefined)) throw new LedgerEntryError('a card challenge and its answer go together');
  if (entry.cardChallenge && entry.cardAnswer) {
    if (entry.cardChallenge.length !== CARD_CHALLENGE_LENGTH) throw new LedgerEntryError(`card challenge must be ${CARD_CHALLENGE_LENGTH} bytes`);
    if (entry.cardAnswer.length < 1 || entry.cardAnswer.length > CARD_AUTH_ANSWER_MAX) throw new LedgerEntryError(`card answer must be 1..${CARD_AUTH_ANSWER_MAX} bytes`);
    items.push({ tag: Tag.CARD_CHALLENGE, value: entry.cardChallenge }, { tag: Tag.CARD_ANSWER, value: entry.cardAnswer });
  }
  return encodeTlvs(items);
}

export function encodeLedgerEntry(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_LENGTH) throw new LedgerEntryError('signature must be 64 bytes');
  const sig = encodeTlv(Tag.SIGNATURE, signature);
  const out = new Uint8Array(body.length + sig.length);
  out.set(body);
  out.set(sig, body.length);
  return out;
}

const FIXED_TAGS = [Tag.VERSION, Tag.SEQ, Tag.PREV_HASH, Tag.TYPE, Tag.TIME, Tag.CLOCK_TRUSTED, Tag.TERMINAL_ID] as const;
const OPTIONAL_ORDER: readonly number[] = [Tag.CARD, Tag.CHIP_UID, Tag.REF, Tag.DETAIL, Tag.CARD_CHALLENGE, Tag.CARD_ANSWER];
const EMPTY = new Uint8Array(0);

/** The last terminal id decoded: a report's entries all name the same terminal, and the server parses every one */
let lastTerminalId = { bytes: new Uint8Array(0), text: '' };

function terminalIdOf(bytes: Uint8Array): string {
  const last = lastTerminalId.bytes;
  if (bytes.length === last.length && bytes.every((b, i) => b === last[i])) return lastTerminalId.text;
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    throw new LedgerEntryError('terminalId is not UTF-8');
  }
  lastTerminalId = { bytes: bytes.slice(), text };
  return text;
}

function u64(value: Uint8Array): number {
  try {
    return readU64be(value);
  } catch (err) {
    throw new LedgerEntryError((err as Error).message);
  }
}

/** Byte fields of the result are views into raw: copy raw first if its buffer is reused */
export function parseLedgerEntry(raw: Uint8Array): LedgerEntry {
  let items: TlvItem[];
  try {
    items = decodeTlvs(raw);
  } catch (err) {
    throw new LedgerEntryError(`not a TLV entry: ${(err as Error).message}`);
  }
  for (let i = 0; i < FIXED_TAGS.length; i++) {
    if (items[i]?.tag !== FIXED_TAGS[i]) throw new LedgerEntryError(`expected tag 0x${FIXED_TAGS[i]!.toString(16)} at position ${i}`);
  }
  const version = items[0]!.value;
  const seqBytes = items[1]!.value;
  const prevHash = items[2]!.value;
  const typeBytes = items[3]!.value;
  const timeBytes = items[4]!.value;
  const trustedBytes = items[5]!.value;
  if (version.length !== 1 || version[0] !== LEDGER_ENTRY_VERSION) throw new LedgerEntryError(`unsupported entry version ${version[0] ?? '?'}`);
  if (seqBytes.length !== 8 || timeBytes.length !== 8) throw new LedgerEntryError('seq and time are 8 bytes');
  if (prevHash.length !== HASH_LENGTH) throw new LedgerEntryError('prevHash must be 32 bytes');
  const type = typeBytes[0];
  if (typeBytes.length !== 1 || type === undefined || !(type in ENTRY_TYPE_NAMES)) throw new LedgerEntryError(`unknown entry type ${type ?? '?'}`);
  const trusted = trustedBytes[0];
  if (trustedBytes.length !== 1 || (trusted !== 0 && trusted !== 1)) throw new LedgerEntryError('clockTrusted must be 0 or 1');
  const terminalId = terminalIdOf(items[6]!.value);
  const seq = u64(seqBytes);
  const time = u64(timeBytes);
  if (seq < 1) throw new LedgerEntryError('seq starts at 1');
  // one object of one shape for every entry; the optional fields are added after
  const entry: { -readonly [K in keyof LedgerEntry]: LedgerEntry[K] } = {
    seq,
    prevHash,
    type: type as EntryTypeValue,
    time,
    clockTrusted: trusted === 1,
    terminalId,
    // views into raw, not copies: the server parses every entry it ingests, and raw is never written to
    body: raw.subarray(0, raw.length - (2 + SIGNATURE_LENGTH)),
    signature: EMPTY, // found after the optional fields, below
    raw,
  };
  let index = FIXED_TAGS.length;
  let orderPosition = 0;
  while (index < items.length && items[index]!.tag !== Tag.SIGNATURE) {
    const item = items[index]!;
    const position = OPTIONAL_ORDER.indexOf(item.tag);
    if (position < orderPosition) throw new LedgerEntryError(`unexpected or out-of-order tag 0x${item.tag.toString(16)}`);
    orderPosition = position + 1;
    switch (item.tag) {
      case Tag.CARD:
        entry.card = item.value;
        break;
      case Tag.CHIP_UID:
        if (item.value.length !== 8) throw new LedgerEntryError('chipUid must be 8 bytes');
        entry.chipUid = item.value;
        break;
      case Tag.REF:
        if (item.value.length !== 8) throw new LedgerEntryError('ref is 8 bytes');
        entry.ref = readU64be(item.value);
        break;
      case Tag.DETAIL:
        try {
          entry.detail = fromUtf8(item.value);
        } catch {
          throw new LedgerEntryError('detail is not UTF-8');
        }
        break;
      case Tag.CARD_CHALLENGE:
        if (item.value.length !== CARD_CHALLENGE_LENGTH) throw new LedgerEntryError(`card challenge is ${CARD_CHALLENGE_LENGTH} bytes`);
        entry.cardChallenge = item.value;
        break;
      case Tag.CARD_ANSWER:
        if (item.value.length < 1 || item.value.length > CARD_AUTH_ANSWER_MAX) throw new LedgerEntryError(`card answer is 1..${CARD_AUTH_ANSWER_MAX} bytes`);
        entry.cardAnswer = item.value;
        break;
    }
    index++;
  }
  const sig = items[index];
  if (!sig || sig.tag !== Tag.SIGNATURE || sig.value.length !== SIGNATURE_LENGTH) throw new LedgerEntryError('missing or malformed signature');
  if (index !== items.length - 1) throw new LedgerEntryError('data after the signature');
  if ((entry.cardChallenge === undefined) !== (entry.cardAnswer === undefined)) throw new LedgerEntryError('a card challenge without its answer, or an answer without its challenge');
  entry.signature = sig.value;
  return entry;
}
