/**
 * Signing and checking settlement vouchers (codecs/settlementVoucher.ts). The terminal checks, before it commits
 * anything: the server key chains to the investor root, the body is signed by it, the voucher names this terminal,
 * the order it waits for (when it waits for one) and has not expired by the terminal's clock. Replays are the
 * ledger's to refuse (one settlement.reserved an order).
 */
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../codecs/bytes.js';
import { parseServerKeyCertificateBody, type SignedJson } from '../codecs/checkpoint.js';
import { encodeSettlementVoucherBody, parseSettlementVoucherBody, SETTLEMENT_VOUCHER_FORMAT, type SettlementVoucher, type SettlementVoucherFields } from '../codecs/settlementVoucher.js';
import { TallyError, CodecError } from '../errors.js';
import { verifyServerKeyCertificate } from './checkpoint.js';
import { signMessage, verifyMessage } from './ed25519.js';

export function signSettlementVoucher(serverKey: KeyObject, certificate: SignedJson, fields: Omit<SettlementVoucherFields, 'serverId'>): SettlementVoucher {
  const { serverId } = parseServerKeyCertificateBody(certificate.body);
  const body = encodeSettlementVoucherBody({ ...fields, serverId });
  return { format: SETTLEMENT_VOUCHER_FORMAT, body, signature: toHex(signMessage(serverKey, utf8(body))), serverCertificate: certificate };
}

export interface VoucherExpectation {
  readonly terminalId: string;
  /** The terminal's time, ms */
  readonly now: number;
  /** The order the terminal is waiting for, when it waits for one */
  readonly orderId?: string;
}

/** The voucher's fields, or a TallyError: SETTLEMENT_VOUCHER_FORGED, _OTHER_TERMINAL, _WRONG_ORDER, _EXPIRED */
export function verifySettlementVoucher(voucher: SettlementVoucher, rootPublicKey: Uint8Array, expect: VoucherExpectation): SettlementVoucherFields {
  let fields: SettlementVoucherFields;
  try {
    const server = verifyServerKeyCertificate(voucher.serverCertificate, rootPublicKey);
    fields = parseSettlementVoucherBody(voucher.body);
    if (fields.serverId !== server.serverId) throw new CodecError('SETTLEMENT_VOUCHER_FORGED', `voucher names server ${fields.serverId}, its certificate ${server.serverId}`);
    if (!verifyMessage(fromHex(server.publicKey), utf8(voucher.body), fromHex(voucher.signature))) throw new CodecError('SETTLEMENT_VOUCHER_FORGED', `not signed by server ${server.serverId}'s key (altered?)`);
  } catch (err) {
    throw new TallyError('SETTLEMENT_VOUCHER_FORGED', (err as Error).message);
  }
  if (fields.terminalId !== expect.terminalId) throw new TallyError('SETTLEMENT_VOUCHER_OTHER_TERMINAL', `for ${fields.terminalId}, this is ${expect.terminalId}`, { orderId: fields.orderId });
  if (expect.orderId !== undefined && fields.orderId !== expect.orderId) throw new TallyError('SETTLEMENT_VOUCHER_WRONG_ORDER', `pays ${fields.orderId}, waiting for ${expect.orderId}`, { orderId: fields.orderId });
  if (expect.now >= fields.expiresAt) throw new TallyError('SETTLEMENT_VOUCHER_EXPIRED', `expired ${new Date(fields.expiresAt).toISOString()}`, { orderId: fields.orderId });
  return fields;
}
