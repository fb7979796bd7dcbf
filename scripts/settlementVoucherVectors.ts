/**
 * Generates firmware-protocol/vectors/settlement-voucher.json: settlement vouchers
 * (firmware-protocol/settlement-voucher.md) signed with the golden ledger's test root key and a fixed server key
 * at fixed times (Ed25519 is deterministic, so the file is reproducible). Valid cases carry the terminal's check
 * (terminal id, time, the order it waits for) and the fields; invalid ones the error code the check must give.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/settlementVoucherVectors.test.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex, utf8 } from '../src/codecs/bytes.js';
import { encodeServerKeyCertificateBody, type SignedJson } from '../src/codecs/checkpoint.js';
import { orderCanonical, type SettlementVoucher, type SettlementVoucherFields } from '../src/codecs/settlementVoucher.js';
import { signSettlementVoucher } from '../src/crypto/settlementVoucher.js';
import { privateKeyFromSeed, rawPublicKey, sha256, signMessage } from '../src/crypto/ed25519.js';

const LEDGER_FILE = fileURLToPath(new URL('../firmware-protocol/vectors/ledger.json', import.meta.url));
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

export interface VoucherCheck {
  readonly terminalId: string;
  readonly now: number;
  readonly orderId?: string;
}

export interface VoucherCase {
  readonly name: string;
  readonly description: string;
  readonly voucher: unknown;
  readonly check: VoucherCheck;
  /** The fields a valid voucher gives */
  readonly fields?: SettlementVoucherFields;
  /** The code an invalid one is refused with */
  readonly error?: string;
}

export function settlementVoucherVectors(): { json: string; cases: VoucherCase[] } {
  const ledger = JSON.parse(readFileSync(LEDGER_FILE, 'utf8')) as { rootPublicKey: string; testKeySeeds: { root: string } };
  const rootKey = privateKeyFromSeed(fromHex(ledger.testKeySeeds.root));
  const serverKey = privateKeyFromSeed(sha256(utf8('tallystick settlement voucher vectors: server key')));
  const certBody = encodeServerKeyCertificateBody({ serverId: 'SRV-VECTOR-1', publicKey: toHex(rawPublicKey(serverKey)), motherCardId: '0102030405060708', issuedAt: Math.floor(T0 / 1000) - 86_400 });
  const certificate: SignedJson = { body: certBody, signature: toHex(signMessage(rootKey, utf8(certBody))) };
  const order = { orderId: 'INS-0a1b2c3d4e5f', terminalId: 'T-VECTOR-1', item: 'OCT', amountFen: 12_345 };
  const orderHash = toHex(sha256(utf8(orderCanonical(order))));
  const base = { ...order, orderHash, insurerFen: 8_641, patientFen: 3_704, settlementId: 'STL-00112233aabbccdd', issuedAt: T0, expiresAt: T0 + 600_000 };
  const good = signSettlementVoucher(serverKey, certificate, base);
  const fields: SettlementVoucherFields = { ...base, serverId: 'SRV-VECTOR-1' };
  const check = { terminalId: order.terminalId, now: T0 + 1_000, orderId: order.orderId };

  // a rogue server key certified by nobody the root knows (a fixed seed, so the file is reproducible)
  const rogue = privateKeyFromSeed(sha256(utf8('tallystick settlement voucher vectors: rogue key')));
  const rogueCertBody = encodeServerKeyCertificateBody({ serverId: 'SRV-VECTOR-1', publicKey: toHex(rawPublicKey(rogue)), motherCardId: '0102030405060708', issuedAt: Math.floor(T0 / 1000) });
  const rogueCert: SignedJson = { body: rogueCertBody, signature: toHex(signMessage(rogue, utf8(rogueCertBody))) };
  const altered: SettlementVoucher = { ...good, body: good.body.replace('"insurerFen":8641,"patientFen":3704', '"insurerFen":12345,"patientFen":0') };

  const cases: VoucherCase[] = [
    { name: 'valid', description: 'a voucher for this terminal and the order it waits for, checked a second after issue', voucher: good, check, fields },
    { name: 'valid-no-order-waiting', description: 'the same voucher checked without an order to match (the terminal restarted)', voucher: good, check: { terminalId: order.terminalId, now: T0 + 1_000 }, fields },
    { name: 'other-terminal', description: 'checked by another terminal', voucher: good, check: { ...check, terminalId: 'T-VECTOR-2' }, error: 'SETTLEMENT_VOUCHER_OTHER_TERMINAL' },
    { name: 'wrong-order', description: 'the terminal waits for another order', voucher: good, check: { ...check, orderId: 'INS-ffffffffffff' }, error: 'SETTLEMENT_VOUCHER_WRONG_ORDER' },
    { name: 'expired', description: 'checked at its expiry instant', voucher: good, check: { ...check, now: base.expiresAt }, error: 'SETTLEMENT_VOUCHER_EXPIRED' },
    { name: 'altered-amounts', description: 'the split changed after signing (sums still right)', voucher: altered, check, error: 'SETTLEMENT_VOUCHER_FORGED' },
    { name: 'rogue-server-key', description: 'signed by a server key the root never certified', voucher: signSettlementVoucher(rogue, rogueCert, base), check, error: 'SETTLEMENT_VOUCHER_FORGED' },
    { name: 'bad-signature', description: 'the signature of another body', voucher: { ...good, signature: signSettlementVoucher(serverKey, certificate, { ...base, expiresAt: base.expiresAt + 1 }).signature }, check, error: 'SETTLEMENT_VOUCHER_FORGED' },
    { name: 'sum-wrong', description: 'insurerFen + patientFen is not amountFen (signed so)', voucher: signSettlementVoucher(serverKey, certificate, { ...base, patientFen: 1 }), check, error: 'SETTLEMENT_VOUCHER_FORGED' },
    { name: 'not-a-voucher', description: 'a checkpoint-shaped object', voucher: { format: 'tallystick-checkpoint/1', body: '{}', signature: '00'.repeat(64), serverCertificate: certificate }, check, error: 'BAD_MESSAGE' },
  ];
  const json = `${JSON.stringify({ description: 'settlement vouchers (firmware-protocol/settlement-voucher.md); root key = vectors/ledger.json rootPublicKey', rootPublicKey: ledger.rootPublicKey, orderCanonical: orderCanonical(order), orderHash, cases }, null, 1)}\n`;
  return { json, cases };
}
