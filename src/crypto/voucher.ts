/**
 * Signing and checking vouchers, voucher key certificates and trust lists
 * (codecs/voucher.ts, firmware-protocol/voucher-format.md). Checking needs
 * only the investor root's public key: the trust list's signer and every
 * voucher key in it carry the root's certificate.
 */
import type { KeyObject } from 'node:crypto';
import { concatBytes, toHex } from '../codecs/bytes.js';
import {
  encodeKeyCertificateBody,
  encodeTrustListBody,
  encodeVoucher,
  encodeVoucherBody,
  isRevokedSerial,
  KeyRole,
  openKeyCertificate,
  openTrustList,
  openVoucher,
  splitVoucherUse,
  type KeyCertificate,
  type KeyCertificateFields,
  type TrustList,
  type TrustListFields,
  type Voucher,
  type VoucherFields,
} from '../codecs/voucher.js';
import { CodecError, TallyError } from '../errors.js';
import { signMessage, verifyMessage } from './ed25519.js';

export function signKeyCertificate(rootKey: KeyObject, fields: KeyCertificateFields): Uint8Array {
  const body = encodeKeyCertificateBody(fields);
  return concatBytes([body, signMessage(rootKey, body)]);
}

export function signVoucher(voucherKey: KeyObject, fields: VoucherFields): Uint8Array {
  const body = encodeVoucherBody(fields);
  return encodeVoucher(body, signMessage(voucherKey, body));
}

export function signTrustList(signerKey: KeyObject, signerCertificate: Uint8Array, fields: TrustListFields): Uint8Array {
  const body = encodeTrustListBody(signerCertificate, fields);
  return concatBytes([body, signMessage(signerKey, body)]);
}

/** A trust list checked against the investor root, or TRUST_LIST_INVALID */
export function verifyTrustList(raw: Uint8Array, rootPublicKey: Uint8Array): TrustList {
  return openTrustList(
    raw,
    (signed, signature) => {
      if (!verifyMessage(rootPublicKey, signed, signature)) throw new CodecError('TRUST_LIST_INVALID', 'a voucher key certificate is not signed by this investor root', 'certificate.signature');
    },
    (signer, signed, signature) => {
      if (!verifyMessage(signer.publicKey, signed, signature)) throw new CodecError('TRUST_LIST_INVALID', `trust list not signed by key ${signer.keyId} (altered?)`, 'signature');
    },
  );
}

/** The certificate in the list for keyId that may sign vouchers at `nowSeconds`, or undefined */
export function voucherKeyOf(trust: TrustList, keyId: number, nowSeconds: number): KeyCertificate | undefined {
  return trust.keyCertificates.find((k) => k.keyId === keyId && (k.roles & KeyRole.VOUCHERS) !== 0 && k.validFrom <= nowSeconds && nowSeconds <= k.validUntil);
}

/**
 * A voucher whose signature verifies with a voucher key of the trust list: VOUCHER_MALFORMED (not a voucher),
 * VOUCHER_UNKNOWN_KEY (no such key in the list, or not valid now), VOUCHER_FORGED (the signature fails).
 * Validity, revocation and scope are the terminal's rules (terminal/voucherCheck.ts).
 */
export function verifyVoucher(raw: Uint8Array, trust: TrustList, nowSeconds: number): Voucher {
  return openVoucher(raw, (keyId, signed, signature) => {
    const key = voucherKeyOf(trust, keyId, nowSeconds);
    if (!key) throw new TallyError('VOUCHER_UNKNOWN_KEY', `key ${keyId} is not a voucher key of trust list ${trust.listSeq} valid now`, { keyId });
    if (!verifyMessage(key.publicKey, signed, signature)) throw new TallyError('VOUCHER_FORGED', `signature does not verify with key ${keyId} (${toHex(key.publicKey).slice(0, 16)}...)`, { keyId });
  });
}

/** Where and when a terminal is asked to accept a voucher */
export interface VoucherContext {
  /** Unix seconds, the terminal's time */
  readonly now: number;
  readonly clinicCode: string;
  /** The device class of the device this terminal enables (e.g. OCT), when configured */
  readonly deviceClass?: string;
  /** A booked slot is accepted this many seconds before its start and after its end */
  readonly slotToleranceSeconds?: number;
  /** True when this terminal's ledger already wrote this serial off */
  readonly writtenOff?: (serial: number) => boolean;
}

/** How the trust list stands at `now`: fresh, in its offline grace (accepted, said on the display), or stale */
export function trustListState(trust: TrustList, now: number): 'fresh' | 'grace' | 'stale' {
  if (now <= trust.validUntil) return 'fresh';
  return now <= trust.validUntil + trust.graceSeconds ? 'grace' : 'stale';
}

export const DEFAULT_SLOT_TOLERANCE_SECONDS = 15 * 60;

/**
 * The terminal's whole offline decision on a voucher's bytes, in this order (voucher-format.md §6):
 * trust list stale, signature (unknown key, forged), revoked, validity, scope, booking, written off here.
 * Returns the voucher, or throws the refusal's TallyError.
 */
export function admitVoucher(raw: Uint8Array, trust: TrustList, ctx: VoucherContext): Voucher {
  if (trustListState(trust, ctx.now) === 'stale') {
    throw new TallyError('TRUST_LIST_STALE', `trust list ${trust.listSeq} valid until ${new Date(trust.validUntil * 1000).toISOString()} plus ${trust.graceSeconds} s of grace`, { listSeq: trust.listSeq });
  }
  const v = verifyVoucher(raw, trust, ctx.now);
  const context = { serial: v.serial, keyId: v.keyId };
  if (isRevoked(trust, v.serial)) throw new TallyError('VOUCHER_REVOKED', `serial ${v.serial} is revoked by trust list ${trust.listSeq}`, context);
  if (ctx.now < v.validFrom || ctx.now > v.validUntil) throw new TallyError('VOUCHER_EXPIRED', `valid ${new Date(v.validFrom * 1000).toISOString()}..${new Date(v.validUntil * 1000).toISOString()}`, context);
  if (v.scopeKind === 1 && v.scope !== ctx.clinicCode) throw new TallyError('VOUCHER_WRONG_CLINIC', `voucher for clinic ${v.scope}, terminal at ${ctx.clinicCode}`, context);
  if (v.scopeKind === 2 && v.scope !== ctx.deviceClass) throw new TallyError('VOUCHER_WRONG_CLINIC', `voucher for device class ${v.scope}, this device is ${ctx.deviceClass ?? 'of no class'}`, context);
  if (v.bookingRequired) {
    if (!v.booking) throw new TallyError('VOUCHER_NOT_BOOKED', 'booking required and none in the voucher', context);
    const tolerance = ctx.slotToleranceSeconds ?? DEFAULT_SLOT_TOLERANCE_SECONDS;
    if (ctx.now < v.booking.start - tolerance || ctx.now > v.booking.end + tolerance) {
      throw new TallyError('VOUCHER_NOT_BOOKED', `booked for ${new Date(v.booking.start * 1000).toISOString()}..${new Date(v.booking.end * 1000).toISOString()}`, context);
    }
  }
  if (ctx.writtenOff?.(v.serial)) throw new TallyError('VOUCHER_WRITTEN_OFF', `serial ${v.serial} already written off on this terminal`, context);
  return v;
}

function isRevoked(trust: TrustList, serial: number): boolean {
  return isRevokedSerial(trust.revoked, serial);
}

/**
 * The card field of a voucher.reserved ledger entry (voucher-format.md §8): the key certificate checked against
 * the root, then the voucher against that key. An auditor needs nothing but the root. Throws a TallyError.
 */
export function openVoucherUse(card: Uint8Array, rootPublicKey: Uint8Array): { certificate: KeyCertificate; voucher: Voucher } {
  const parts = splitVoucherUse(card);
  const certificate = openKeyCertificate(parts.certificate, (signed, signature) => {
    if (!verifyMessage(rootPublicKey, signed, signature)) throw new TallyError('VOUCHER_UNKNOWN_KEY', 'voucher key certificate not signed by the investor root');
  });
  if ((certificate.roles & KeyRole.VOUCHERS) === 0) throw new TallyError('VOUCHER_UNKNOWN_KEY', `key ${certificate.keyId} is not certified to sign vouchers`);
  const voucher = openVoucher(parts.voucher, (keyId, signed, signature) => {
    if (keyId !== certificate.keyId) throw new TallyError('VOUCHER_UNKNOWN_KEY', `voucher names key ${keyId}, its certificate ${certificate.keyId}`);
    if (!verifyMessage(certificate.publicKey, signed, signature)) throw new TallyError('VOUCHER_FORGED', `voucher not signed by key ${keyId}`);
  });
  return { certificate, voucher };
}
