/**
 * The voucher golden vectors (firmware-protocol/vectors/voucher.json) are what
 * scripts/voucherVectors.ts makes today, and the TypeScript terminal rules give
 * each case its recorded verdict from the QR text alone.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/voucherVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { voucherVectors, type InvalidTrustListCase, type VoucherCase } from '../../scripts/voucherVectors.js';
import { toHex } from '../../src/codecs/bytes.js';
import { decodeBase45, encodeBase45 } from '../../src/codecs/base45.js';
import { decodeVoucherQr, openVoucher } from '../../src/codecs/voucher.js';
import { admitVoucher, verifyTrustList } from '../../src/crypto/voucher.js';
import { isTallyError } from '../../src/errors.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/voucher.json', import.meta.url));

describe('voucher golden vectors', () => {
  it('are what the generator makes today', () => {
    const { json } = voucherVectors();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, json);
    expect(readFileSync(FILE, 'utf8'), 'voucher.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/voucherVectors.test.ts').toBe(json);
  });

  const vectors = JSON.parse(process.env.UPDATE_VECTORS === '1' ? voucherVectors().json : readFileSync(FILE, 'utf8')) as {
    rootPublicKey: string;
    trustList: { hex: string; fields: { listSeq: number; revoked: number[] } };
    staleTrustList: { hex: string };
    cases: VoucherCase[];
    invalidTrustLists: InvalidTrustListCase[];
  };
  const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));
  const root = bytes(vectors.rootPublicKey);
  const trust = verifyTrustList(bytes(vectors.trustList.hex), root);
  const stale = verifyTrustList(bytes(vectors.staleTrustList.hex), root);

  it('trust list verifies against the root and holds its fields', () => {
    expect(trust.listSeq).toBe(vectors.trustList.fields.listSeq);
    expect(trust.revoked).toEqual(vectors.trustList.fields.revoked);
    expect(trust.keyCertificates.map((k) => k.keyId)).toEqual([1, 7]);
  });

  it('covers every refusal a voucher can meet offline', () => {
    const errors = new Set(vectors.cases.flatMap((c) => (c.verdict.ok ? [] : [c.verdict.error])));
    expect([...errors].sort()).toEqual(['TRUST_LIST_STALE', 'VOUCHER_EXPIRED', 'VOUCHER_FORGED', 'VOUCHER_MALFORMED', 'VOUCHER_NOT_BOOKED', 'VOUCHER_REVOKED', 'VOUCHER_UNKNOWN_KEY', 'VOUCHER_WRITTEN_OFF', 'VOUCHER_WRONG_CLINIC']);
  });

  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const decide = () => {
      const raw = decodeVoucherQr(c.qr);
      expect(toHex(raw)).toBe(c.hex);
      const written = new Set(c.context.writtenOff ?? []);
      return admitVoucher(raw, c.trustList === 'stale' ? stale : trust, { ...c.context, writtenOff: (s) => written.has(s) });
    };
    if (c.verdict.ok) {
      const { raw, ...fields } = decide();
      expect(toHex(raw)).toBe(c.hex);
      expect({ ...fields, ...(fields.wallet ? { wallet: toHex(fields.wallet) } : {}) }).toEqual(c.verdict.fields);
      // QR alphanumeric mode: the whole text is in the 45-character set
      expect(c.qr).toMatch(/^[0-9A-Z $%*+\-./:]+$/);
    } else {
      let error: unknown;
      try {
        decide();
      } catch (err) {
        error = err;
      }
      expect(isTallyError(error) ? error.code : error).toBe(c.verdict.error);
    }
  });

  it.each(vectors.invalidTrustLists.map((c) => [c.name, c] as const))('refuses the trust list: %s', (_n, c) => {
    expect(() => verifyTrustList(bytes(c.hex), root)).toThrow(expect.objectContaining({ code: c.error }));
  });

  it('never parses a voucher whose signature fails', () => {
    const raw = bytes(vectors.cases.find((c) => c.name === 'clinic')!.hex);
    let parsed = false;
    expect(() =>
      openVoucher(raw, () => {
        throw new Error('refused by the verifier');
      }),
    ).toThrow('refused by the verifier');
    // the verifier sees exactly the signed bytes and the last 64
    openVoucher(raw, (keyId, signed, signature) => {
      parsed = true;
      expect(keyId).toBe(1);
      expect(signed.length + signature.length).toBe(raw.length);
    });
    expect(parsed).toBe(true);
  });

  it('Base45 follows RFC 9285', () => {
    expect(encodeBase45(new TextEncoder().encode('AB'))).toBe('BB8');
    expect(encodeBase45(new TextEncoder().encode('Hello!!'))).toBe('%69 VD92EX0');
    expect(encodeBase45(new TextEncoder().encode('ietf!'))).toBe('QED8WEX0');
    expect(new TextDecoder().decode(decodeBase45('QED8WEX0'))).toBe('ietf!');
    expect(() => decodeBase45('GGW')).toThrow(expect.objectContaining({ code: 'VOUCHER_MALFORMED' }));
    expect(() => decodeBase45('ABCD')).toThrow(expect.objectContaining({ code: 'VOUCHER_MALFORMED' }));
  });
});
