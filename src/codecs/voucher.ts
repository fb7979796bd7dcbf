/**
 * Electronic service vouchers (firmware-protocol/voucher-format.md): the
 * voucher record a QR code carries, the voucher key certificate the investor
 * root signs, and the signed trust list a terminal checks vouchers against.
 *
 * Fixed binary layouts, not TLV: a voucher must fit a QR code that an old
 * phone shows and a kiosk scanner reads at arm's length. Every object ends
 * with a 64-byte Ed25519 signature over SHA-256 of all bytes before it.
 *
 * Signature first: `openVoucher`, `openKeyCertificate` and `openTrustList`
 * read only what they need to find the signing key (type, version, key id,
 * lengths), hand the signed bytes to the caller's verifier (crypto/voucher.ts)
 * and parse the fields only after it returned. A forged voucher is never parsed.
 * Pure: the verifier is injected.
 */
import { CodecError } from '../errors.js';
import { concatBytes, fromUtf8, readU32be, u16be, u32be, utf8 } from './bytes.js';
import { decodeBase45, encodeBase45 } from './base45.js';

export const VOUCHER_VERSION = 1;
/** What a voucher QR code's text starts with, before the Base45 */
export const VOUCHER_QR_PREFIX = 'TV1:';
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;
export const WALLET_BINDING_BYTES = 16;
export const MAX_SERIAL = 2 ** 48 - 1;
const MAX_LABEL = 16;
const MAX_ISSUER = 32;
const LABEL = /^[A-Za-z0-9._-]{1,16}$/;

const ObjectType = { VOUCHER: 0x56, KEY_CERTIFICATE: 0x4b, TRUST_LIST: 0x4c } as const;

export const VoucherScope = { CLINIC: 1, DEVICE_CLASS: 2 } as const;
export type VoucherScopeKind = (typeof VoucherScope)[keyof typeof VoucherScope];

export const VoucherFlag = { BOOKING_REQUIRED: 0x01, WALLET_BOUND: 0x02, BOOKED: 0x04 } as const;
const KNOWN_FLAGS = 0x07;

export const KeyRole = { VOUCHERS: 0x01, TRUST_LISTS: 0x02 } as const;

export interface VoucherBooking {
  readonly slotId: number;
  /** Unix seconds */
  readonly start: number;
  readonly end: number;
}

export interface VoucherFields {
  readonly keyId: number;
  /** Unique per voucher across the back office, 1..2^48-1; revocation names it */
  readonly serial: number;
  /** Unix seconds */
  readonly validFrom: number;
  readonly validUntil: number;
  readonly bookingRequired: boolean;
  readonly scopeKind: VoucherScopeKind;
  /** A clinic code (scope clinic) or a device class (scope device class) */
  readonly scope: string;
  readonly examType: string;
  /** First 16 bytes of SHA-256 of the wallet id it was issued to, when bound */
  readonly wallet?: Uint8Array;
  /** The booked slot, in a voucher re-signed at booking */
  readonly booking?: VoucherBooking;
}

export type Voucher = VoucherFields & { readonly raw: Uint8Array };

export interface KeyCertificateFields {
  readonly keyId: number;
  /** KeyRole bits */
  readonly roles: number;
  readonly validFrom: number;
  readonly validUntil: number;
  readonly publicKey: Uint8Array;
  /** Who holds the key (the back office's name for it) */
  readonly issuer: string;
}

export type KeyCertificate = KeyCertificateFields & { readonly raw: Uint8Array };

export interface TrustListFields {
  /** Grows with each list the back office signs; a terminal never goes back to a lower one */
  readonly listSeq: number;
  readonly issuedAt: number;
  /** After this the list is stale; vouchers are still accepted for graceSeconds more (offline) */
  readonly validUntil: number;
  readonly graceSeconds: number;
  /** Voucher key certificates (raw, each signed by the root) */
  readonly keys: readonly Uint8Array[];
  /** Revoked voucher serials, strictly ascending */
  readonly revoked: readonly number[];
}

export type TrustList = TrustListFields & { readonly signer: KeyCertificate; readonly keyCertificates: readonly KeyCertificate[]; readonly raw: Uint8Array };

/** Checks `signature` over `signed` with the key the object names; throws (VOUCHER_UNKNOWN_KEY, VOUCHER_FORGED, ...) when it does not verify */
export type VoucherSignatureCheck = (keyId: number, signed: Uint8Array, signature: Uint8Array) => void;
/** Checks a key certificate's signature with the investor root; throws when it does not verify */
export type RootSignatureCheck = (signed: Uint8Array, signature: Uint8Array) => void;
/** Checks a trust list's signature with its signer's (already verified) key; throws when it does not verify */
export type SignerSignatureCheck = (signer: KeyCertificate, signed: Uint8Array, signature: Uint8Array) => void;

type Malformed = 'VOUCHER_MALFORMED' | 'TRUST_LIST_INVALID';

class Reader {
  private offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly code: Malformed,
  ) {}
  fail(detail: string, path = ''): never {
    throw new CodecError(this.code, detail, path);
  }
  need(n: number, path: string): void {
    if (this.offset + n > this.bytes.length) this.fail(`${path}: ${n} bytes needed at offset ${this.offset}, ${this.bytes.length - this.offset} left`, path);
  }
  u8(path: string): number {
    this.need(1, path);
    return this.bytes[this.offset++]!;
  }
  u16(path: string): number {
    this.need(2, path);
    const v = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return v;
  }
  u32(path: string): number {
    this.need(4, path);
    const v = readU32be(this.bytes, this.offset);
    this.offset += 4;
    return v;
  }
  u48(path: string): number {
    this.need(6, path);
    const v = ((this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!) * 0x100000000 + readU32be(this.bytes, this.offset + 2);
    this.offset += 6;
    return v;
  }
  take(n: number, path: string): Uint8Array {
    this.need(n, path);
    const v = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  label(path: string, max: number, pattern?: RegExp): string {
    const n = this.u8(`${path}.length`);
    if (n < 1 || n > max) this.fail(`${path}: length ${n} outside 1..${max}`, path);
    let text: string;
    try {
      text = fromUtf8(this.take(n, path));
    } catch {
      this.fail(`${path}: invalid UTF-8`, path);
    }
    if (pattern && !pattern.test(text)) this.fail(`${path}: ${JSON.stringify(text)} is not 1..16 of A-Z a-z 0-9 . _ -`, path);
    return text;
  }
  end(path: string): void {
    if (this.offset !== this.bytes.length) this.fail(`${this.bytes.length - this.offset} bytes after ${path}`, path);
  }
  get position(): number {
    return this.offset;
  }
}

function u48be(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_SERIAL) throw new CodecError('VOUCHER_MALFORMED', `serial ${value} outside 1..2^48-1`, 'serial');
  return concatBytes([u16be(Math.floor(value / 0x100000000)), u32be(value % 0x100000000)]);
}

function u32(value: number, path: string, code: Malformed): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new CodecError(code, `${path} must be a u32`, path);
  return u32be(value);
}

function u16(value: number, path: string, code: Malformed): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new CodecError(code, `${path} must be a u16`, path);
  return u16be(value);
}

function labelBytes(text: string, path: string, max: number, code: Malformed, pattern?: RegExp): Uint8Array {
  const bytes = utf8(text);
  if (bytes.length < 1 || bytes.length > max || (pattern && !pattern.test(text))) throw new CodecError(code, `${path}: ${JSON.stringify(text)} must be 1..${max} ${pattern ? 'of A-Z a-z 0-9 . _ -' : 'bytes'}`, path);
  return concatBytes([Uint8Array.of(bytes.length), bytes]);
}

function signedAndSignature(raw: Uint8Array, min: number, code: Malformed, what: string): { signed: Uint8Array; signature: Uint8Array } {
  if (raw.length < min + SIGNATURE_BYTES) throw new CodecError(code, `${what} of ${raw.length} bytes is shorter than its smallest (${min + SIGNATURE_BYTES})`);
  return { signed: raw.subarray(0, raw.length - SIGNATURE_BYTES), signature: raw.subarray(raw.length - SIGNATURE_BYTES) };
}

// ---------- vouchers

/** Smallest voucher body: header 20 bytes, a 1-byte scope and exam type with their lengths */
const VOUCHER_MIN_BODY = 24;

export function encodeVoucherBody(v: VoucherFields): Uint8Array {
  const code = 'VOUCHER_MALFORMED';
  if (v.scopeKind !== VoucherScope.CLINIC && v.scopeKind !== VoucherScope.DEVICE_CLASS) throw new CodecError(code, `unknown scope kind ${String(v.scopeKind)}`, 'scopeKind');
  if (v.validUntil < v.validFrom) throw new CodecError(code, 'validUntil before validFrom', 'validUntil');
  if (v.wallet && v.wallet.length !== WALLET_BINDING_BYTES) throw new CodecError(code, `wallet binding must be ${WALLET_BINDING_BYTES} bytes`, 'wallet');
  if (v.booking && v.booking.end < v.booking.start) throw new CodecError(code, 'booking ends before it starts', 'booking');
  const flags = (v.bookingRequired ? VoucherFlag.BOOKING_REQUIRED : 0) | (v.wallet ? VoucherFlag.WALLET_BOUND : 0) | (v.booking ? VoucherFlag.BOOKED : 0);
  return concatBytes([
    Uint8Array.of(ObjectType.VOUCHER, VOUCHER_VERSION),
    u16(v.keyId, 'keyId', code),
    u48be(v.serial),
    u32(v.validFrom, 'validFrom', code),
    u32(v.validUntil, 'validUntil', code),
    Uint8Array.of(flags, v.scopeKind),
    labelBytes(v.scope, 'scope', MAX_LABEL, code, LABEL),
    labelBytes(v.examType, 'examType', MAX_LABEL, code, LABEL),
    ...(v.wallet ? [v.wallet] : []),
    ...(v.booking ? [u32(v.booking.slotId, 'booking.slotId', code), u32(v.booking.start, 'booking.start', code), u32(v.booking.end, 'booking.end', code)] : []),
  ]);
}

export function encodeVoucher(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_BYTES) throw new CodecError('VOUCHER_MALFORMED', 'signature must be 64 bytes', 'signature');
  return concatBytes([body, signature]);
}

/**
 * Reads a voucher: its type, version and key id, then `check` verifies the signature with that key, and only
 * then are the other fields parsed. VOUCHER_MALFORMED for bytes that are no voucher; whatever `check` throws.
 */
export function openVoucher(raw: Uint8Array, check: VoucherSignatureCheck): Voucher {
  const { signed, signature } = signedAndSignature(raw, VOUCHER_MIN_BODY, 'VOUCHER_MALFORMED', 'a voucher');
  const head = new Reader(signed, 'VOUCHER_MALFORMED');
  if (head.u8('type') !== ObjectType.VOUCHER) head.fail('not a voucher (type byte)', 'type');
  const version = head.u8('version');
  if (version !== VOUCHER_VERSION) head.fail(`unsupported voucher version ${version}`, 'version');
  const keyId = head.u16('keyId');
  check(keyId, signed, signature);
  return { ...parseVoucherFields(signed), raw };
}

/** The fields of a voucher's signed bytes. Call only after the signature verified (openVoucher does). */
function parseVoucherFields(signed: Uint8Array): VoucherFields {
  const r = new Reader(signed, 'VOUCHER_MALFORMED');
  r.u8('type');
  r.u8('version');
  const keyId = r.u16('keyId');
  const serial = r.u48('serial');
  if (serial === 0) r.fail('serial 0', 'serial');
  const validFrom = r.u32('validFrom');
  const validUntil = r.u32('validUntil');
  if (validUntil < validFrom) r.fail('validUntil before validFrom', 'validUntil');
  const flags = r.u8('flags');
  if ((flags & ~KNOWN_FLAGS) !== 0) r.fail(`unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`, 'flags');
  const scopeKind = r.u8('scopeKind');
  if (scopeKind !== VoucherScope.CLINIC && scopeKind !== VoucherScope.DEVICE_CLASS) r.fail(`unknown scope kind ${scopeKind}`, 'scopeKind');
  const scope = r.label('scope', MAX_LABEL, LABEL);
  const examType = r.label('examType', MAX_LABEL, LABEL);
  const wallet = flags & VoucherFlag.WALLET_BOUND ? r.take(WALLET_BINDING_BYTES, 'wallet') : undefined;
  let booking: VoucherBooking | undefined;
  if (flags & VoucherFlag.BOOKED) {
    booking = { slotId: r.u32('booking.slotId'), start: r.u32('booking.start'), end: r.u32('booking.end') };
    if (booking.end < booking.start) r.fail('booking ends before it starts', 'booking');
  }
  r.end('the voucher');
  return {
    keyId,
    serial,
    validFrom,
    validUntil,
    bookingRequired: (flags & VoucherFlag.BOOKING_REQUIRED) !== 0,
    scopeKind: scopeKind as VoucherScopeKind,
    scope,
    examType,
    ...(wallet ? { wallet } : {}),
    ...(booking ? { booking } : {}),
  };
}

/** The text of a voucher's QR code: prefix + Base45, all in QR alphanumeric mode */
export function encodeVoucherQr(raw: Uint8Array): string {
  return VOUCHER_QR_PREFIX + encodeBase45(raw);
}

/** The voucher bytes of a QR code's text; VOUCHER_MALFORMED for any other text */
export function decodeVoucherQr(text: string): Uint8Array {
  if (!text.startsWith(VOUCHER_QR_PREFIX)) throw new CodecError('VOUCHER_MALFORMED', `QR text does not start with ${VOUCHER_QR_PREFIX}`, 'prefix');
  return decodeBase45(text.slice(VOUCHER_QR_PREFIX.length));
}

// ---------- voucher key certificates (signed by the investor root)

const CERT_FIXED = 46;

export function encodeKeyCertificateBody(c: KeyCertificateFields): Uint8Array {
  const code = 'TRUST_LIST_INVALID';
  if (c.publicKey.length !== PUBLIC_KEY_BYTES) throw new CodecError(code, 'publicKey must be 32 bytes', 'publicKey');
  if (c.roles < 1 || c.roles > 3) throw new CodecError(code, `roles ${c.roles}: 1 vouchers, 2 trust lists, 3 both`, 'roles');
  return concatBytes([
    Uint8Array.of(ObjectType.KEY_CERTIFICATE, VOUCHER_VERSION),
    u16(c.keyId, 'keyId', code),
    Uint8Array.of(c.roles),
    u32(c.validFrom, 'validFrom', code),
    u32(c.validUntil, 'validUntil', code),
    c.publicKey,
    labelBytes(c.issuer, 'issuer', MAX_ISSUER, code),
  ]);
}

/** Reads a key certificate: `check` verifies the root's signature over it before any field is parsed */
export function openKeyCertificate(raw: Uint8Array, check: RootSignatureCheck): KeyCertificate {
  const { signed, signature } = signedAndSignature(raw, CERT_FIXED + 1, 'TRUST_LIST_INVALID', 'a voucher key certificate');
  if (signed[0] !== ObjectType.KEY_CERTIFICATE || signed[1] !== VOUCHER_VERSION) throw new CodecError('TRUST_LIST_INVALID', 'not a version 1 voucher key certificate', 'type');
  check(signed, signature);
  const r = new Reader(signed, 'TRUST_LIST_INVALID');
  r.u8('type');
  r.u8('version');
  const keyId = r.u16('keyId');
  const roles = r.u8('roles');
  if (roles < 1 || roles > 3) r.fail(`roles ${roles}`, 'roles');
  const validFrom = r.u32('validFrom');
  const validUntil = r.u32('validUntil');
  const publicKey = r.take(PUBLIC_KEY_BYTES, 'publicKey');
  const issuer = r.label('issuer', MAX_ISSUER);
  r.end('the certificate');
  return { keyId, roles, validFrom, validUntil, publicKey, issuer, raw };
}

/** Length of the key certificate at the start of `bytes`, from its issuer length byte (no field is trusted yet) */
function keyCertificateLength(bytes: Uint8Array, code: Malformed): number {
  if (bytes.length < CERT_FIXED) throw new CodecError(code, 'key certificate cut short', 'signer');
  return CERT_FIXED + bytes[CERT_FIXED - 1]! + SIGNATURE_BYTES;
}

/** The card field of a voucher.reserved ledger entry: key certificate || voucher, split by the certificate's own length */
export function splitVoucherUse(card: Uint8Array): { certificate: Uint8Array; voucher: Uint8Array } {
  const length = keyCertificateLength(card, 'VOUCHER_MALFORMED');
  if (card.length <= length) throw new CodecError('VOUCHER_MALFORMED', 'voucher use holds a key certificate and no voucher', 'voucher');
  return { certificate: card.subarray(0, length), voucher: card.subarray(length) };
}

// ---------- trust lists (signed by a key the root certified for trust lists)

export function encodeTrustListBody(signerCertificate: Uint8Array, t: TrustListFields): Uint8Array {
  const code = 'TRUST_LIST_INVALID';
  if (t.keys.length > 255) throw new CodecError(code, 'at most 255 keys', 'keys');
  for (let i = 1; i < t.revoked.length; i++) if (t.revoked[i]! <= t.revoked[i - 1]!) throw new CodecError(code, 'revoked serials must be strictly ascending', `revoked[${i}]`);
  if (signerCertificate.length !== keyCertificateLength(signerCertificate, code)) throw new CodecError(code, 'signer certificate length', 'signer');
  return concatBytes([
    Uint8Array.of(ObjectType.TRUST_LIST, VOUCHER_VERSION),
    u16(signerCertificate.length, 'signer.length', code),
    signerCertificate,
    u32(t.listSeq, 'listSeq', code),
    u32(t.issuedAt, 'issuedAt', code),
    u32(t.validUntil, 'validUntil', code),
    u32(t.graceSeconds, 'graceSeconds', code),
    Uint8Array.of(t.keys.length),
    ...t.keys.flatMap((k) => [u16(k.length, 'keys.length', code), k]),
    u32(t.revoked.length, 'revoked.length', code),
    ...t.revoked.map((s) => u48be(s)),
  ]);
}

/**
 * Reads a trust list: its signer's certificate is checked against the root (`checkRoot`), the list's signature
 * with that signer's key (`checkSigner`), and only then the body is parsed; every key certificate in it is
 * checked against the root too. TRUST_LIST_INVALID for anything that is not a valid list.
 */
export function openTrustList(raw: Uint8Array, checkRoot: RootSignatureCheck, checkSigner: SignerSignatureCheck): TrustList {
  const code = 'TRUST_LIST_INVALID';
  const { signed, signature } = signedAndSignature(raw, 4 + CERT_FIXED + SIGNATURE_BYTES, code, 'a trust list');
  const r = new Reader(signed, code);
  if (r.u8('type') !== ObjectType.TRUST_LIST) r.fail('not a trust list (type byte)', 'type');
  if (r.u8('version') !== VOUCHER_VERSION) r.fail('unsupported trust list version', 'version');
  const signerLength = r.u16('signer.length');
  const signerBytes = r.take(signerLength, 'signer');
  if (signerLength !== keyCertificateLength(signerBytes, code)) r.fail('signer certificate length does not match its issuer length', 'signer');
  const signer = openKeyCertificate(signerBytes, checkRoot);
  if ((signer.roles & KeyRole.TRUST_LISTS) === 0) throw new CodecError(code, `key ${signer.keyId} is not certified to sign trust lists`, 'signer.roles');
  checkSigner(signer, signed, signature);
  const listSeq = r.u32('listSeq');
  const issuedAt = r.u32('issuedAt');
  const validUntil = r.u32('validUntil');
  const graceSeconds = r.u32('graceSeconds');
  const keyCount = r.u8('keys.count');
  const keys: Uint8Array[] = [];
  const keyCertificates: KeyCertificate[] = [];
  for (let i = 0; i < keyCount; i++) {
    const length = r.u16(`keys[${i}].length`);
    const cert = r.take(length, `keys[${i}]`);
    keys.push(cert);
    keyCertificates.push(openKeyCertificate(cert, checkRoot));
  }
  const revokedCount = r.u32('revoked.count');
  r.need(revokedCount * 6, 'revoked');
  const revoked: number[] = [];
  for (let i = 0; i < revokedCount; i++) {
    const serial = r.u48(`revoked[${i}]`);
    if (i > 0 && serial <= revoked[i - 1]!) r.fail('revoked serials not strictly ascending', `revoked[${i}]`);
    revoked.push(serial);
  }
  r.end('the trust list');
  return { listSeq, issuedAt, validUntil, graceSeconds, keys, revoked, signer, keyCertificates, raw };
}

/** True when the sorted `revoked` holds serial (binary search: a list may hold many) */
export function isRevokedSerial(revoked: readonly number[], serial: number): boolean {
  let lo = 0;
  let hi = revoked.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = revoked[mid]!;
    if (v === serial) return true;
    if (v < serial) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
