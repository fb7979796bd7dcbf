/**
 * The settlement voucher (firmware-protocol/settlement-voucher.md): the server states that an insurance order was
 * settled with the platform and that one terminal may run one use for it until an expiry. Signed like the
 * server's checkpoints: the server key (certified by the investor root, tally server certify-key) over
 * SHA-256(utf8(body)), the certificate carried along, so the terminal checks it with the root alone.
 *
 *   voucher  {format, body, signature, serverCertificate}
 *   body     a JSON string {format, orderId, orderHash, terminalId, item, amountFen, insurerFen, patientFen,
 *            settlementId, issuedAt, expiresAt, serverId}
 *
 * Strict parsing; pure (the signatures are checked in crypto/settlementVoucher.ts).
 */
import { CodecError } from '../errors.js';
import { parseSignedJson, type SignedJson } from './checkpoint.js';

export const SETTLEMENT_VOUCHER_FORMAT = 'tallystick-settlement-voucher/1';
/** Largest voucher accepted (a real one is about 900 bytes) */
export const MAX_SETTLEMENT_VOUCHER_BYTES = 4096;

export interface SettlementVoucherFields {
  readonly orderId: string;
  /** Hex SHA-256 of the order's canonical text (orderCanonical) */
  readonly orderHash: string;
  readonly terminalId: string;
  readonly item: string;
  readonly amountFen: number;
  readonly insurerFen: number;
  readonly patientFen: number;
  /** The platform's settlement id */
  readonly settlementId: string;
  /** ms since the epoch, server time */
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly serverId: string;
}

export interface SettlementVoucher extends SignedJson {
  readonly format: typeof SETTLEMENT_VOUCHER_FORMAT;
  readonly serverCertificate: SignedJson;
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const ITEM = /^[A-Z0-9_]{1,16}$/;

/** The order as the token and the voucher are bound to it: its hash is SHA-256 of this text */
export function orderCanonical(order: { orderId: string; terminalId: string; item: string; amountFen: number }): string {
  return `tallystick-insurance-order/1\n${order.orderId}\n${order.terminalId}\n${order.item}\n${order.amountFen}`;
}

export function encodeSettlementVoucherBody(f: SettlementVoucherFields): string {
  return JSON.stringify({
    format: SETTLEMENT_VOUCHER_FORMAT,
    orderId: f.orderId,
    orderHash: f.orderHash,
    terminalId: f.terminalId,
    item: f.item,
    amountFen: f.amountFen,
    insurerFen: f.insurerFen,
    patientFen: f.patientFen,
    settlementId: f.settlementId,
    issuedAt: f.issuedAt,
    expiresAt: f.expiresAt,
    serverId: f.serverId,
  });
}

function fail(detail: string, path = ''): never {
  throw new CodecError('BAD_MESSAGE', detail, path);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${where} is not an object`, where);
  return value as Record<string, unknown>;
}

function field(o: Record<string, unknown>, key: string, pattern: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || !pattern.test(v)) fail(`body.${key} is not valid`, `body.${key}`);
  return v;
}

function fen(o: Record<string, unknown>, key: string, min: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(`body.${key} is not a whole number >= ${min}`, `body.${key}`);
  return v;
}

export function parseSettlementVoucherBody(body: string): SettlementVoucherFields {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    fail('body is not JSON', 'body');
  }
  const o = record(value, 'body');
  if (o.format !== SETTLEMENT_VOUCHER_FORMAT) fail(`body format ${String(o.format)}, expected ${SETTLEMENT_VOUCHER_FORMAT}`, 'body.format');
  const f: SettlementVoucherFields = {
    orderId: field(o, 'orderId', ID),
    orderHash: field(o, 'orderHash', /^[0-9a-f]{64}$/),
    terminalId: field(o, 'terminalId', ID),
    item: field(o, 'item', ITEM),
    amountFen: fen(o, 'amountFen', 1),
    insurerFen: fen(o, 'insurerFen', 0),
    patientFen: fen(o, 'patientFen', 0),
    settlementId: field(o, 'settlementId', ID),
    issuedAt: fen(o, 'issuedAt', 0),
    expiresAt: fen(o, 'expiresAt', 0),
    serverId: field(o, 'serverId', ID),
  };
  if (f.insurerFen + f.patientFen !== f.amountFen) fail('insurerFen + patientFen is not amountFen', 'body.amountFen');
  if (f.expiresAt <= f.issuedAt) fail('expiresAt is not after issuedAt', 'body.expiresAt');
  return f;
}

/** The envelope from a parsed value (an MQTT or HTTP field) or its text; the signatures are not checked here */
export function parseSettlementVoucher(input: unknown): SettlementVoucher {
  let value = input;
  if (typeof input === 'string') {
    if (input.length > MAX_SETTLEMENT_VOUCHER_BYTES) fail(`${input.length} bytes, at most ${MAX_SETTLEMENT_VOUCHER_BYTES}`);
    try {
      value = JSON.parse(input);
    } catch {
      fail('voucher is not JSON');
    }
  }
  const o = record(value, 'voucher');
  if (o.format !== SETTLEMENT_VOUCHER_FORMAT) fail(`format ${String(o.format)}, expected ${SETTLEMENT_VOUCHER_FORMAT}`, 'format');
  let signed: SignedJson;
  let serverCertificate: SignedJson;
  try {
    signed = parseSignedJson(o, 'voucher');
    serverCertificate = parseSignedJson(o.serverCertificate, 'serverCertificate');
  } catch (err) {
    fail((err as Error).message, (err as CodecError).path);
  }
  if (signed.body.length > MAX_SETTLEMENT_VOUCHER_BYTES) fail('body too long', 'body');
  return { format: SETTLEMENT_VOUCHER_FORMAT, body: signed.body, signature: signed.signature, serverCertificate };
}

export function encodeSettlementVoucher(v: SettlementVoucher): string {
  return JSON.stringify({ format: v.format, body: v.body, signature: v.signature, serverCertificate: v.serverCertificate });
}
