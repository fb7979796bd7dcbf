/**
 * The personal wallet QR code (firmware-protocol/wallet-qr.md): the person's own code, short-lived and signed by
 * the back office's voucher key, which the phone shows to a community centre (to receive a voucher) or a clinic
 * (to prove who holds a voucher). Fixed layout; the signature is checked (by the caller's verifier) before any
 * field after the key id is read. Pure: bytes in, fields out; errors are CodecError with the field path.
 */
import { CodecError } from '../errors.js';
import { decodeBase45, encodeBase45 } from './base45.js';
import { fromUtf8, utf8 } from './bytes.js';

export const WALLET_QR_PREFIX = 'TW1:';
export const WALLET_QR_TYPE = 0x57; // 'W'
export const WALLET_QR_VERSION = 1;
export const WALLET_QR_NONCE_BYTES = 8;
/** The longest a code may live: ten minutes (the back office gives two) */
export const MAX_WALLET_QR_LIFETIME = 600;
const SIGNATURE_BYTES = 64;
const FIXED = 19; // type, version, key id, issued at, lifetime, nonce, wallet id length
const WALLET_ID = /^[A-Za-z0-9._-]{1,64}$/;

export interface WalletQrFields {
  readonly keyId: number;
  /** u32 Unix seconds */
  readonly issuedAt: number;
  /** Seconds the code is valid from issuedAt, 1..600 */
  readonly lifetime: number;
  /** 8 random bytes: each code is distinct, and a centre takes a code once */
  readonly nonce: Uint8Array;
  readonly walletId: string;
}
export type WalletQr = WalletQrFields & { readonly raw: Uint8Array };

/** Checks the signature with the key the id names; throws a CodecError (WALLET_QR_UNKNOWN_KEY, WALLET_QR_FORGED) when it does not verify */
export type WalletQrSignatureCheck = (keyId: number, signed: Uint8Array, signature: Uint8Array) => void;

const bad = (detail: string, path = ''): never => {
  throw new CodecError('BAD_WALLET_QR', detail, path);
};

/** The signed bytes of a code (everything before the signature) */
export function encodeWalletQrBody(f: WalletQrFields): Uint8Array {
  if (!Number.isInteger(f.keyId) || f.keyId < 0 || f.keyId > 0xffff) bad('keyId must be a u16', 'keyId');
  if (!Number.isInteger(f.issuedAt) || f.issuedAt < 0 || f.issuedAt > 0xffffffff) bad('issuedAt must be a u32', 'issuedAt');
  if (!Number.isInteger(f.lifetime) || f.lifetime < 1 || f.lifetime > MAX_WALLET_QR_LIFETIME) bad(`lifetime ${f.lifetime} outside 1..${MAX_WALLET_QR_LIFETIME}`, 'lifetime');
  if (f.nonce.length !== WALLET_QR_NONCE_BYTES) bad(`nonce must be ${WALLET_QR_NONCE_BYTES} bytes`, 'nonce');
  if (!WALLET_ID.test(f.walletId)) bad(`walletId ${JSON.stringify(f.walletId)} must be 1..64 of A-Z a-z 0-9 . _ -`, 'walletId');
  const id = utf8(f.walletId);
  const out = new Uint8Array(FIXED + id.length);
  const view = new DataView(out.buffer);
  out[0] = WALLET_QR_TYPE;
  out[1] = WALLET_QR_VERSION;
  view.setUint16(2, f.keyId);
  view.setUint32(4, f.issuedAt);
  view.setUint16(8, f.lifetime);
  out.set(f.nonce, 10);
  out[18] = id.length;
  out.set(id, FIXED);
  return out;
}

export function encodeWalletQr(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_BYTES) bad('signature must be 64 bytes', 'signature');
  const out = new Uint8Array(body.length + SIGNATURE_BYTES);
  out.set(body);
  out.set(signature, body.length);
  return out;
}

/**
 * Opens a code's bytes: the type, version and key id, then the verifier over the rest, and only then the fields.
 * Whether it is still valid (issuedAt .. issuedAt + lifetime) is the caller's check, against its clock.
 */
export function openWalletQr(raw: Uint8Array, check: WalletQrSignatureCheck): WalletQr {
  if (raw.length < FIXED + 1 + SIGNATURE_BYTES) bad(`a code of ${raw.length} bytes is shorter than its smallest (${FIXED + 1 + SIGNATURE_BYTES})`, 'length');
  if (raw[0] !== WALLET_QR_TYPE) bad('not a personal wallet code (type byte)', 'type');
  if (raw[1] !== WALLET_QR_VERSION) bad(`unsupported version ${raw[1]}`, 'version');
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const keyId = view.getUint16(2);
  const signed = raw.subarray(0, raw.length - SIGNATURE_BYTES);
  check(keyId, signed, raw.subarray(raw.length - SIGNATURE_BYTES));
  const issuedAt = view.getUint32(4);
  const lifetime = view.getUint16(8);
  if (lifetime < 1 || lifetime > MAX_WALLET_QR_LIFETIME) bad(`lifetime ${lifetime} outside 1..${MAX_WALLET_QR_LIFETIME}`, 'lifetime');
  const length = raw[18]!;
  if (signed.length !== FIXED + length) bad(`walletId of ${length} bytes leaves ${signed.length - FIXED - length} bytes over`, signed.length < FIXED + length ? 'walletId' : 'length');
  let walletId = '';
  try {
    walletId = fromUtf8(signed.subarray(FIXED));
  } catch {
    bad('walletId is not UTF-8', 'walletId');
  }
  if (!WALLET_ID.test(walletId)) bad(`walletId ${JSON.stringify(walletId)} must be 1..64 of A-Z a-z 0-9 . _ -`, 'walletId');
  return { keyId, issuedAt, lifetime, nonce: raw.slice(10, 18), walletId, raw };
}

/** The QR text: prefix + Base45 (QR alphanumeric mode) */
export function encodeWalletQrText(raw: Uint8Array): string {
  return WALLET_QR_PREFIX + encodeBase45(raw);
}

/** The bytes of a code's text; BAD_WALLET_QR (path prefix or base45) for any other text */
export function decodeWalletQrText(text: string): Uint8Array {
  if (!text.startsWith(WALLET_QR_PREFIX)) bad(`QR text does not start with ${WALLET_QR_PREFIX}`, 'prefix');
  try {
    return decodeBase45(text.slice(WALLET_QR_PREFIX.length), 'BAD_WALLET_QR');
  } catch (err) {
    if (err instanceof CodecError) throw new CodecError('BAD_WALLET_QR', err.message, 'base45');
    throw err;
  }
}
