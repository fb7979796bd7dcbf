/**
 * Signs and checks personal wallet QR codes (firmware-protocol/wallet-qr.md) with Ed25519 over SHA-256 of the
 * signed bytes, as every tallystick signature. The check: the text's format, a key the checker holds, the
 * signature, then the time (issued at, less 30 s of clock skew, .. issued at + lifetime).
 */
import type { KeyObject } from 'node:crypto';
import { decodeWalletQrText, encodeWalletQr, encodeWalletQrBody, encodeWalletQrText, openWalletQr, type WalletQr, type WalletQrFields } from '../codecs/walletQr.js';
import { CodecError } from '../errors.js';
import { utf8 } from '../codecs/bytes.js';
import { sha256, signMessage, verifyMessage } from './ed25519.js';

/** A phone's clock and the checker's may differ this much before a fresh code counts as not yet valid */
export const WALLET_QR_SKEW_SECONDS = 30;

export function signWalletQr(key: KeyObject, fields: WalletQrFields): { raw: Uint8Array; text: string } {
  const body = encodeWalletQrBody(fields);
  const raw = encodeWalletQr(body, signMessage(key, body));
  return { raw, text: encodeWalletQrText(raw) };
}

/** The fields of a code's text, checked with the public key of its key id (undefined: not one of ours) at `nowSeconds` */
export function verifyWalletQr(text: string, publicKeyOf: (keyId: number) => Uint8Array | undefined, nowSeconds: number): WalletQr {
  const qr = openWalletQr(decodeWalletQrText(text), (keyId, signed, signature) => {
    const key = publicKeyOf(keyId);
    if (!key) throw new CodecError('WALLET_QR_UNKNOWN_KEY', `key ${keyId} is not one of this back office's`, 'keyId');
    if (!verifyMessage(key, signed, signature)) throw new CodecError('WALLET_QR_FORGED', 'the signature does not verify', 'signature');
  });
  if (nowSeconds < qr.issuedAt - WALLET_QR_SKEW_SECONDS) throw new CodecError('WALLET_QR_EXPIRED', `issued at ${qr.issuedAt}, after now ${nowSeconds}`, 'issuedAt');
  if (nowSeconds > qr.issuedAt + qr.lifetime) throw new CodecError('WALLET_QR_EXPIRED', `valid until ${qr.issuedAt + qr.lifetime}, now ${nowSeconds}`, 'lifetime');
  return qr;
}

/** The wallet binding of a voucher (voucher-format.md §2): the first 16 bytes of SHA-256 of the wallet id */
export function walletBinding(walletId: string): Uint8Array {
  return sha256(utf8(walletId)).slice(0, 16);
}
