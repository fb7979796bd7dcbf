/**
 * The signed records that cards (and terminal certificates) carry.
 *
 * A record is a TLV sequence in a fixed canonical order per kind: version, kind,
 * card id, the kind's fields, and last the issuer's Ed25519 signature over
 * SHA-256 of everything before it (the "body"). Decoding is strict: wrong order,
 * unknown or missing tags, wrong lengths or trailing bytes are all errors, so a
 * record has exactly one encoding and an altered byte is always noticed.
 *
 * Chain: root (mother card) -> white -> batch -> one-time; root -> terminal.
 * A batch record embeds its white card's whole record so a terminal can check
 * the chain offline. Pure.
 */
import { CodecError } from '../errors.js';
import { fromUtf8, readU32be, u32be, utf8 } from './bytes.js';
import type { TlvError} from './tlv.js';
import { decodeTlvs, encodeTlv, encodeTlvs, type TlvItem } from './tlv.js';

export const RECORD_VERSION = 1;
/** Version 2: batch and one-time records name the card's own P-256 key (tag 18), so the chip proves it is the one issued */
export const RECORD_VERSION_CARD_KEY = 2;
/** An uncompressed P-256 point: 04 || X || Y */
export const CARD_KEY_LENGTH = 65;

export const RecordKind = {
  MOTHER: 1,
  WHITE: 2,
  BATCH: 3,
  ONE_TIME: 4,
  TERMINAL: 0x10,
} as const;
export type RecordKindValue = (typeof RecordKind)[keyof typeof RecordKind];

export const KIND_NAMES: Record<RecordKindValue, string> = {
  1: 'mother',
  2: 'white',
  3: 'batch',
  4: 'one-time',
  0x10: 'terminal',
};

export const CARD_ID_LENGTH = 8;
export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const MAX_CLINIC_CODE = 16;
export const MAX_NAME = 32;

const Tag = {
  VERSION: 0x01,
  KIND: 0x02,
  CARD_ID: 0x03,
  ISSUED_AT: 0x04,
  PUBLIC_KEY: 0x10,
  INVESTOR: 0x11,
  QUOTA: 0x13,
  VALID_FROM: 0x14,
  VALID_UNTIL: 0x15,
  CLINIC: 0x20,
  BATCH_NO: 0x21,
  COUNT: 0x22,
  ISSUER_RECORD: 0x25,
  BATCH_ID: 0x26,
  SERIAL: 0x27,
  TERMINAL_ID: 0x30,
  CARD_KEY: 0x18,
  SIGNATURE: 0x7f,
} as const;

interface RecordCommon {
  /** 8 random bytes the issuer chose; unique per card */
  readonly cardId: Uint8Array;
  /** Unix seconds */
  readonly issuedAt: number;
}

export interface MotherFields extends RecordCommon {
  readonly kind: typeof RecordKind.MOTHER;
  /** The investor's root public key; its private half never leaves the mother card */
  readonly publicKey: Uint8Array;
  readonly investor: string;
}

export interface WhiteFields extends RecordCommon {
  readonly kind: typeof RecordKind.WHITE;
  readonly publicKey: Uint8Array;
  /** How many batch cards this white card may sign (the card enforces it too) */
  readonly quota: number;
  readonly validUntil: number;
}

export interface BatchFields extends RecordCommon {
  readonly kind: typeof RecordKind.BATCH;
  /** The batch key that signed the batch's one-time cards */
  readonly publicKey: Uint8Array;
  readonly clinicCode: string;
  readonly batchNo: number;
  /** One-time cards in the batch: serials 1..count */
  readonly count: number;
  readonly validFrom: number;
  readonly validUntil: number;
  /** The complete signed record of the white card that signed this batch */
  readonly issuer: Uint8Array;
  /** Version 2: the batch card's own P-256 public key (uncompressed), made on the card */
  readonly cardKey?: Uint8Array;
}

export interface OneTimeFields extends RecordCommon {
  readonly kind: typeof RecordKind.ONE_TIME;
  /** The card id of the batch card */
  readonly batchId: Uint8Array;
  readonly serial: number;
  /** Version 2: the card's own P-256 public key (uncompressed), made on the card */
  readonly cardKey?: Uint8Array;
}

export interface TerminalFields extends RecordCommon {
  readonly kind: typeof RecordKind.TERMINAL;
  /** The terminal's device key, which signs its ledger */
  readonly publicKey: Uint8Array;
  readonly terminalId: string;
  readonly clinicCode: string;
}

export type RecordFields = MotherFields | WhiteFields | BatchFields | OneTimeFields | TerminalFields;

/** A decoded record: its fields, the signed body, the signature and the exact bytes */
export type SignedRecord<F extends RecordFields = RecordFields> = F & {
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
  readonly raw: Uint8Array;
};

export class RecordError extends CodecError {
  override readonly name: string = 'RecordError';
  constructor(detail: string, path = '') {
    super('MALFORMED_RECORD', detail, path);
  }
}

type FieldType = 'bytes8' | 'bytes32' | 'u32' | 'clinic' | 'name' | 'record' | 'cardKey';
interface FieldSpec {
  readonly tag: number;
  readonly key: string;
  readonly type: FieldType;
}

const COMMON_FIELDS: FieldSpec[] = [
  { tag: Tag.CARD_ID, key: 'cardId', type: 'bytes8' },
  { tag: Tag.ISSUED_AT, key: 'issuedAt', type: 'u32' },
];

const KIND_FIELDS: Record<RecordKindValue, FieldSpec[]> = {
  [RecordKind.MOTHER]: [
    { tag: Tag.PUBLIC_KEY, key: 'publicKey', type: 'bytes32' },
    { tag: Tag.INVESTOR, key: 'investor', type: 'name' },
  ],
  [RecordKind.WHITE]: [
    { tag: Tag.PUBLIC_KEY, key: 'publicKey', type: 'bytes32' },
    { tag: Tag.QUOTA, key: 'quota', type: 'u32' },
    { tag: Tag.VALID_UNTIL, key: 'validUntil', type: 'u32' },
  ],
  [RecordKind.BATCH]: [
    { tag: Tag.PUBLIC_KEY, key: 'publicKey', type: 'bytes32' },
    { tag: Tag.CLINIC, key: 'clinicCode', type: 'clinic' },
    { tag: Tag.BATCH_NO, key: 'batchNo', type: 'u32' },
    { tag: Tag.COUNT, key: 'count', type: 'u32' },
    { tag: Tag.VALID_FROM, key: 'validFrom', type: 'u32' },
    { tag: Tag.VALID_UNTIL, key: 'validUntil', type: 'u32' },
    { tag: Tag.ISSUER_RECORD, key: 'issuer', type: 'record' },
  ],
  [RecordKind.ONE_TIME]: [
    { tag: Tag.BATCH_ID, key: 'batchId', type: 'bytes8' },
    { tag: Tag.SERIAL, key: 'serial', type: 'u32' },
  ],
  [RecordKind.TERMINAL]: [
    { tag: Tag.PUBLIC_KEY, key: 'publicKey', type: 'bytes32' },
    { tag: Tag.TERMINAL_ID, key: 'terminalId', type: 'name' },
    { tag: Tag.CLINIC, key: 'clinicCode', type: 'clinic' },
  ],
};

const CARD_KEY_FIELD: FieldSpec = { tag: Tag.CARD_KEY, key: 'cardKey', type: 'cardKey' };
/** The kinds whose cards carry a key of their own from version 2 on */
const CARD_KEY_KINDS = new Set<number>([RecordKind.BATCH, RecordKind.ONE_TIME]);

function isKind(value: number): value is RecordKindValue {
  return value in KIND_FIELDS;
}

function encodeField(spec: FieldSpec, value: unknown): Uint8Array {
  switch (spec.type) {
    case 'bytes8':
    case 'bytes32': {
      const expected = spec.type === 'bytes8' ? CARD_ID_LENGTH : PUBLIC_KEY_LENGTH;
      if (!(value instanceof Uint8Array) || value.length !== expected) throw new RecordError(`${spec.key} must be ${expected} bytes`);
      return value;
    }
    case 'u32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RecordError(`${spec.key} must be a u32`);
      return u32be(value);
    case 'clinic':
    case 'name': {
      const max = spec.type === 'clinic' ? MAX_CLINIC_CODE : MAX_NAME;
      if (typeof value !== 'string' || value.length === 0) throw new RecordError(`${spec.key} must be a non-empty string`);
      const bytes = utf8(value);
      if (bytes.length > max) throw new RecordError(`${spec.key} longer than ${max} bytes`);
      return bytes;
    }
    case 'record':
      if (!(value instanceof Uint8Array) || value.length === 0) throw new RecordError(`${spec.key} must be a record`);
      return value;
    case 'cardKey':
      if (!(value instanceof Uint8Array) || value.length !== CARD_KEY_LENGTH || value[0] !== 0x04) throw new RecordError(`${spec.key} must be an uncompressed P-256 point (65 bytes, 04...)`);
      return value;
  }
}

function decodeField(spec: FieldSpec, value: Uint8Array, copy: boolean): unknown {
  switch (spec.type) {
    case 'bytes8':
    case 'bytes32': {
      const expected = spec.type === 'bytes8' ? CARD_ID_LENGTH : PUBLIC_KEY_LENGTH;
      if (value.length !== expected) throw new RecordError(`${spec.key}: expected ${expected} bytes, got ${value.length}`);
      return copy ? value.slice() : value;
    }
    case 'u32':
      if (value.length !== 4) throw new RecordError(`${spec.key}: expected 4 bytes, got ${value.length}`);
      return readU32be(value);
    case 'clinic':
    case 'name': {
      const max = spec.type === 'clinic' ? MAX_CLINIC_CODE : MAX_NAME;
      if (value.length === 0 || value.length > max) throw new RecordError(`${spec.key}: length ${value.length} outside 1..${max}`);
      try {
        return fromUtf8(value);
      } catch {
        throw new RecordError(`${spec.key}: invalid UTF-8`);
      }
    }
    case 'record':
      if (value.length === 0) throw new RecordError(`${spec.key}: empty`);
      return copy ? value.slice() : value;
    case 'cardKey':
      if (value.length !== CARD_KEY_LENGTH || value[0] !== 0x04) throw new RecordError(`${spec.key}: not an uncompressed P-256 point`);
      return copy ? value.slice() : value;
  }
}

/** Encodes the signed body of a record (everything but the signature) */
export function encodeRecordBody(fields: RecordFields): Uint8Array {
  if (!isKind(fields.kind)) throw new RecordError(`unknown record kind ${String(fields.kind)}`);
  const record = fields as unknown as Record<string, unknown>;
  const withCardKey = record.cardKey !== undefined;
  if (withCardKey && !CARD_KEY_KINDS.has(fields.kind)) throw new RecordError(`a ${KIND_NAMES[fields.kind]} record carries no card key`);
  const items: TlvItem[] = [
    { tag: Tag.VERSION, value: Uint8Array.of(withCardKey ? RECORD_VERSION_CARD_KEY : RECORD_VERSION) },
    { tag: Tag.KIND, value: Uint8Array.of(fields.kind) },
  ];
  for (const spec of fieldSpecs(fields.kind, withCardKey)) {
    items.push({ tag: spec.tag, value: encodeField(spec, record[spec.key]) });
  }
  return encodeTlvs(items);
}

/** Appends the signature to a body made by encodeRecordBody */
export function encodeSignedRecord(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_LENGTH) throw new RecordError(`signature must be ${SIGNATURE_LENGTH} bytes`);
  const sig = encodeTlv(Tag.SIGNATURE, signature);
  const out = new Uint8Array(body.length + sig.length);
  out.set(body, 0);
  out.set(sig, body.length);
  return out;
}

const FIELD_SPECS = Object.fromEntries(Object.entries(KIND_FIELDS).map(([kind, specs]) => [kind, [...COMMON_FIELDS, ...specs]])) as Record<RecordKindValue, FieldSpec[]>;
const FIELD_SPECS_V2 = Object.fromEntries([...CARD_KEY_KINDS].map((kind) => [kind, [...FIELD_SPECS[kind as RecordKindValue], CARD_KEY_FIELD]])) as Record<number, FieldSpec[]>;

function fieldSpecs(kind: RecordKindValue, withCardKey: boolean): FieldSpec[] {
  return withCardKey ? FIELD_SPECS_V2[kind]! : FIELD_SPECS[kind];
}

/**
 * Strictly decodes a signed record. Does not verify the signature: see verify in crypto/chain.
 * Byte fields are copies, unless `views` (the server, parsing a card in every entry it ingests): then they are views into raw.
 */
export function parseCardRecord(raw: Uint8Array, { views = false }: { views?: boolean } = {}): SignedRecord {
  let items: TlvItem[];
  try {
    items = decodeTlvs(raw);
  } catch (err) {
    throw new RecordError(`not a TLV record: ${(err as TlvError).message}`);
  }
  const take = (index: number, tag: number, what: string): Uint8Array => {
    const item = items[index];
    if (!item) throw new RecordError(`missing ${what}`);
    if (item.tag !== tag) throw new RecordError(`expected ${what} (tag 0x${tag.toString(16)}) at position ${index}, found tag 0x${item.tag.toString(16)}`);
    return item.value;
  };
  const versionBytes = take(0, Tag.VERSION, 'version');
  const version = versionBytes[0];
  if (versionBytes.length !== 1 || (version !== RECORD_VERSION && version !== RECORD_VERSION_CARD_KEY)) throw new RecordError(`unsupported record version ${version ?? '?'}`);
  const kindBytes = take(1, Tag.KIND, 'kind');
  const kind = kindBytes[0];
  if (kindBytes.length !== 1 || kind === undefined || !isKind(kind)) throw new RecordError(`unknown record kind ${kind ?? '?'}`);
  if (version === RECORD_VERSION_CARD_KEY && !CARD_KEY_KINDS.has(kind)) throw new RecordError(`a version 2 record must be a batch or one-time record, not ${KIND_NAMES[kind]}`);
  const specs = fieldSpecs(kind, version === RECORD_VERSION_CARD_KEY);
  const copy = !views;
  const values = specs.map((spec, i) => decodeField(spec, take(i + 2, spec.tag, spec.key), copy));
  const sigIndex = specs.length + 2;
  const signature = take(sigIndex, Tag.SIGNATURE, 'signature');
  if (signature.length !== SIGNATURE_LENGTH) throw new RecordError(`signature: expected ${SIGNATURE_LENGTH} bytes, got ${signature.length}`);
  if (items.length !== sigIndex + 1) throw new RecordError('data after the signature');
  // the body is every byte before the signature TLV (2 bytes of header + 64)
  const bodyLength = raw.length - (2 + SIGNATURE_LENGTH);
  const record: Record<string, unknown> = {
    kind,
    body: copy ? raw.slice(0, bodyLength) : raw.subarray(0, bodyLength),
    signature: copy ? signature.slice() : signature,
    raw: copy ? raw.slice() : raw,
  };
  for (let i = 0; i < specs.length; i++) record[specs[i]!.key] = values[i];
  return record as unknown as SignedRecord;
}

/** 2 for a batch or one-time record that names its card's own key, else 1 */
export function recordVersion(record: RecordFields): number {
  return 'cardKey' in record && record.cardKey !== undefined ? RECORD_VERSION_CARD_KEY : RECORD_VERSION;
}

export function describeRecord(record: RecordFields): string {
  const name = KIND_NAMES[record.kind];
  switch (record.kind) {
    case RecordKind.MOTHER:
      return `${name} card of ${record.investor}`;
    case RecordKind.WHITE:
      return `${name} card, quota ${record.quota}`;
    case RecordKind.BATCH:
      return `${name} card ${record.batchNo} for clinic ${record.clinicCode}, ${record.count} cards`;
    case RecordKind.ONE_TIME:
      return `${name} card serial ${record.serial}`;
    case RecordKind.TERMINAL:
      return `${name} ${record.terminalId} at clinic ${record.clinicCode}`;
  }
}
