/**
 * The personal wallet QR golden vectors (firmware-protocol/vectors/wallet-qr.json) are what
 * scripts/walletQrVectors.ts makes today; each case, checked from its QR text alone at its time, gets its
 * recorded verdict (the fields, or the error code and the field path), and each accepted code's bytes are its
 * fields encoded again with its signature.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/walletQrVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { walletQrVectors, type WalletQrCase } from '../../scripts/walletQrVectors.js';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { encodeWalletQr, encodeWalletQrBody, encodeWalletQrText } from '../../src/codecs/walletQr.js';
import { verifyWalletQr } from '../../src/crypto/walletQr.js';
import { CodecError } from '../../src/errors.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/wallet-qr.json', import.meta.url));

describe('personal wallet QR golden vectors', () => {
  it('are what the generator makes today', () => {
    const { json } = walletQrVectors();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, json);
    expect(readFileSync(FILE, 'utf8'), 'wallet-qr.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/walletQrVectors.test.ts').toBe(json);
  });

  const vectors = JSON.parse(process.env.UPDATE_VECTORS === '1' ? walletQrVectors().json : readFileSync(FILE, 'utf8')) as { keys: Record<string, string>; cases: WalletQrCase[] };
  const keyOf = (keyId: number): Uint8Array | undefined => (vectors.keys[String(keyId)] ? fromHex(vectors.keys[String(keyId)]!) : undefined);

  it('holds accepted and refused cases of every error', () => {
    const errors = new Set(vectors.cases.flatMap((c) => (c.verdict.ok ? [] : [c.verdict.error])));
    expect([...errors].sort()).toEqual(['BAD_WALLET_QR', 'WALLET_QR_EXPIRED', 'WALLET_QR_FORGED', 'WALLET_QR_UNKNOWN_KEY']);
    expect(vectors.cases.filter((c) => c.verdict.ok).length).toBeGreaterThanOrEqual(3);
  });

  for (const c of vectors.cases) {
    it(`${c.name}: ${c.description}`, () => {
      if (c.verdict.ok) {
        const qr = verifyWalletQr(c.qr, keyOf, c.now);
        expect({ keyId: qr.keyId, issuedAt: qr.issuedAt, lifetime: qr.lifetime, nonce: toHex(qr.nonce), walletId: qr.walletId }).toEqual(c.verdict.fields);
        const f = c.verdict.fields;
        const again = encodeWalletQr(encodeWalletQrBody({ ...f, nonce: fromHex(f.nonce) }), fromHex(c.hex).slice(-64));
        expect(toHex(again)).toBe(c.hex);
        expect(encodeWalletQrText(again)).toBe(c.qr);
        return;
      }
      let caught: unknown;
      try {
        verifyWalletQr(c.qr, keyOf, c.now);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CodecError);
      expect({ code: (caught as CodecError).code, path: (caught as CodecError).path }).toEqual({ code: c.verdict.error, path: c.verdict.path });
    });
  }
});
