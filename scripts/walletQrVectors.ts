/**
 * Generates firmware-protocol/vectors/wallet-qr.json: personal wallet QR codes (wallet-qr.md) signed with the
 * voucher vectors' key 1 at fixed times (Ed25519 is deterministic: the file is reproducible). Each case gives
 * its QR text, its bytes, the time it is checked at, and the verdict: the fields, or the error's code and path.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/walletQrVectors.test.ts
 */
import { toHex, utf8 } from '../src/codecs/bytes.js';
import { encodeBase45 } from '../src/codecs/base45.js';
import { encodeWalletQr, encodeWalletQrBody, encodeWalletQrText, WALLET_QR_PREFIX, type WalletQrFields } from '../src/codecs/walletQr.js';
import { privateKeyFromSeed, rawPublicKey, sha256, signMessage } from '../src/crypto/ed25519.js';
import { signWalletQr } from '../src/crypto/walletQr.js';

/** 2026-12-01 12:00 UTC, as the voucher vectors */
export const WALLET_VECTOR_NOW = Math.floor(Date.UTC(2026, 11, 1, 12, 0, 0) / 1000);

export interface WalletQrCase {
  readonly name: string;
  readonly description: string;
  readonly qr: string;
  readonly hex: string;
  readonly now: number;
  readonly verdict: { ok: true; fields: { keyId: number; issuedAt: number; lifetime: number; nonce: string; walletId: string } } | { ok: false; error: string; path: string };
}

const seed = (label: string): Uint8Array => sha256(utf8(`tallystick voucher vectors: ${label}`));

export function walletQrVectors(): { json: string; cases: WalletQrCase[] } {
  const key = privateKeyFromSeed(seed('voucher key 1'));
  const stranger = privateKeyFromSeed(seed('a key the root never certified'));
  const base: WalletQrFields = { keyId: 1, issuedAt: WALLET_VECTOR_NOW - 10, lifetime: 120, nonce: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), walletId: 'W-0001' };
  const fieldsOf = (f: WalletQrFields) => ({ keyId: f.keyId, issuedAt: f.issuedAt, lifetime: f.lifetime, nonce: toHex(f.nonce), walletId: f.walletId });
  const cases: WalletQrCase[] = [];
  const ok = (name: string, description: string, fields: WalletQrFields, now = WALLET_VECTOR_NOW): void => {
    const { raw, text } = signWalletQr(key, fields);
    cases.push({ name, description, qr: text, hex: toHex(raw), now, verdict: { ok: true, fields: fieldsOf(fields) } });
  };
  const refused = (name: string, description: string, raw: Uint8Array, error: string, path: string, now = WALLET_VECTOR_NOW, qr = encodeWalletQrText(raw)): void => {
    cases.push({ name, description, qr, hex: toHex(raw), now, verdict: { ok: false, error, path } });
  };
  /** A body changed after encoding, signed again with the right key: only the field check can refuse it */
  const resigned = (change: (body: Uint8Array) => Uint8Array, signer = key): Uint8Array => {
    const body = change(encodeWalletQrBody(base).slice());
    return encodeWalletQr(body, signMessage(signer, body));
  };
  const good = signWalletQr(key, base).raw;

  ok('fresh', 'issued 10 s ago, valid 120 s', base);
  ok('last-second', 'checked at issued at + lifetime: still valid', base, base.issuedAt + base.lifetime);
  ok('clock-skew', "issued 30 s in the checker's future: the skew allowed", { ...base, issuedAt: WALLET_VECTOR_NOW + 30 });
  ok('longest-id', 'a 64-character wallet id and the longest lifetime (600 s)', { ...base, walletId: `W-${'0123456789'.repeat(6)}AB`, lifetime: 600 });

  refused('bad-prefix', 'a voucher prefix, not TW1:', good, 'BAD_WALLET_QR', 'prefix', WALLET_VECTOR_NOW, `TV1:${encodeBase45(good)}`);
  refused('bad-base45', 'a character outside Base45', good, 'BAD_WALLET_QR', 'base45', WALLET_VECTOR_NOW, `${WALLET_QR_PREFIX}${encodeBase45(good).slice(0, -1)}a`);
  refused('truncated', 'cut short: smaller than the smallest code', good.slice(0, 60), 'BAD_WALLET_QR', 'length');
  refused('wrong-type', "type byte 'V' (a voucher's), signed", resigned((b) => (b.set([0x56], 0), b)), 'BAD_WALLET_QR', 'type');
  refused('wrong-version', 'version 2, signed', resigned((b) => (b.set([2], 1), b)), 'BAD_WALLET_QR', 'version');
  refused('trailing-byte', 'one byte after the wallet id, signed', resigned((b) => Uint8Array.of(...b, 0x41)), 'BAD_WALLET_QR', 'length');
  refused('bad-wallet-id', 'a space in the wallet id, signed', resigned((b) => (b.set([0x20], b.length - 1), b)), 'BAD_WALLET_QR', 'walletId');
  refused('lifetime-zero', 'lifetime 0, signed', resigned((b) => (b.set([0, 0], 8), b)), 'BAD_WALLET_QR', 'lifetime');
  refused('lifetime-too-long', 'lifetime 601 s, signed', resigned((b) => (b.set([0x02, 0x59], 8), b)), 'BAD_WALLET_QR', 'lifetime');
  const altered = good.slice();
  altered[20] = altered[20]! ^ 0x01;
  refused('altered', 'one bit of the wallet id changed after signing', altered, 'WALLET_QR_FORGED', 'signature');
  refused('stranger-key', 'key id 1 but signed by another key', resigned((b) => b, stranger), 'WALLET_QR_FORGED', 'signature');
  refused('unknown-key', 'key id 9, which the checker does not hold', signWalletQr(key, { ...base, keyId: 9 }).raw, 'WALLET_QR_UNKNOWN_KEY', 'keyId');
  refused('expired', 'checked one second after issued at + lifetime', good, 'WALLET_QR_EXPIRED', 'lifetime', base.issuedAt + base.lifetime + 1);
  refused('not-yet-valid', 'issued 31 s after the checking time (beyond the 30 s skew)', signWalletQr(key, { ...base, issuedAt: WALLET_VECTOR_NOW + 31 }).raw, 'WALLET_QR_EXPIRED', 'issuedAt');

  const json = `${JSON.stringify({ format: 'tallystick wallet QR vectors', spec: 'firmware-protocol/wallet-qr.md', keys: { '1': toHex(rawPublicKey(key)) }, skewSeconds: 30, cases }, null, 1)}\n`;
  return { json, cases };
}
