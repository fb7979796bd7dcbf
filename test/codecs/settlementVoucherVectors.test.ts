/**
 * The settlement voucher golden vectors (firmware-protocol/vectors/settlement-voucher.json) are what
 * scripts/settlementVoucherVectors.ts makes today, and the terminal's check gives each case its fields or its code.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/settlementVoucherVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { settlementVoucherVectors, type VoucherCase } from '../../scripts/settlementVoucherVectors.js';
import { encodeSettlementVoucher, orderCanonical, parseSettlementVoucher } from '../../src/codecs/settlementVoucher.js';
import { verifySettlementVoucher } from '../../src/crypto/settlementVoucher.js';
import { sha256 } from '../../src/crypto/ed25519.js';
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { isTallyError } from '../../src/errors.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/settlement-voucher.json', import.meta.url));

// written before the cases are read, so a regenerated file is the one checked
if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, settlementVoucherVectors().json);

describe('settlement voucher golden vectors', () => {
  it('are what the generator makes today', () => {
    const { json } = settlementVoucherVectors();
    expect(readFileSync(FILE, 'utf8'), 'settlement-voucher.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/settlementVoucherVectors.test.ts').toBe(json);
  });

  const vectors = JSON.parse(readFileSync(FILE, 'utf8')) as { rootPublicKey: string; orderCanonical: string; orderHash: string; cases: VoucherCase[] };
  const root = new Uint8Array(Buffer.from(vectors.rootPublicKey, 'hex'));

  it('the order hash is SHA-256 of the canonical order text', () => {
    expect(toHex(sha256(utf8(vectors.orderCanonical)))).toBe(vectors.orderHash);
    expect(orderCanonical({ orderId: 'INS-0a1b2c3d4e5f', terminalId: 'T-VECTOR-1', item: 'OCT', amountFen: 12_345 })).toBe(vectors.orderCanonical);
  });

  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const check = (): unknown => verifySettlementVoucher(parseSettlementVoucher(JSON.stringify(c.voucher)), root, c.check);
    if (c.fields) {
      expect(check()).toEqual(c.fields);
      // the envelope survives its own encoding byte for byte
      const parsed = parseSettlementVoucher(c.voucher);
      expect(JSON.parse(encodeSettlementVoucher(parsed))).toEqual(c.voucher);
    } else {
      let code = 'none';
      try {
        check();
      } catch (err) {
        code = isTallyError(err) ? err.code : 'not a TallyError';
      }
      expect(code).toBe(c.error);
    }
  });
});
