/**
 * The JSON payloads, one schema per topic kind: this table is the single source
 * of truth for what each topic carries (zigbee2mqtt style). Requests from the
 * server carry a `transaction`; the terminal always answers on its `response`
 * topic with {status: 'ok'} or {status: 'error', error}. The report itself is
 * binary (report.ts). Pure.
 */
import { MAX_DENYLIST_BYTES, MAX_DENYLIST_ENTRIES, MAX_JSON_BYTES, MAX_JSON_DEPTH, TERMINAL_ID_PATTERN } from './limits.js';
import { PayloadError } from './PayloadError.js';
import { array, boolean, integer, literal, object, optional, string, type Infer, type Schema } from './schema.js';
import type { DownlinkKind, UplinkKind } from './topics.js';

const u32 = integer(0, 0xffffffff);
const seq = integer(1);
const epochMs = integer(0, 8.64e15);
const cardIdHex = string(16, /^[0-9a-f]{16}$/);
const clinicCode = string(16, /^.{1,16}$/);
const seqRange: Schema<readonly [number, number]> = (value, path) => {
  const [from, to] = array(seq, 2)(value, path);
  if (from === undefined || to === undefined || from > to) throw new PayloadError('schema', `${path}: expected [from, to] with from <= to`, path.replace(/^\./, ''));
  return [from, to] as const;
};
const errorBody = object({ code: string(64), message: string(500) });

export const AckSchema = object({
  transaction: u32,
  status: literal('ok', 'error'),
  data: object({
    /** Inclusive seq ranges now durably stored at the server (new or already there) */
    committed: array(seqRange, 1000),
    /** Every seq up to this one is stored: the server's view of the terminal's ledger */
    highestContiguousSeq: integer(0),
    /** Entries refused, each with its reason; they stay in the terminal's outbox */
    rejected: optional(array(object({ seq: integer(0), reason: string(64) }), 1000)),
    /** The server's signed checkpoint of highestContiguousSeq (codecs/checkpoint.ts); checked by the terminal against the root */
    checkpoint: optional(object({ format: string(64), body: string(1024), signature: string(128), serverCertificate: object({ body: string(1024), signature: string(128) }) })),
  }),
  error: optional(errorBody),
});

export const ConfigSchema = object({
  transaction: u32,
  /** Only a newer version replaces the terminal's configuration */
  version: integer(1),
  clinicCode,
  policy: object({
    /** Ledger entries in one report */
    reportBatchSize: integer(1, 1000),
    /** Rate limit for draining a backlog */
    maxReportsPerSecond: integer(1, 10_000),
    heartbeatSeconds: integer(5, 86_400),
    /** Resend a report whose application ack has not arrived after this long */
    ackTimeoutSeconds: integer(1, 3600),
  }),
  connection: optional(
    object({
      keepaliveSeconds: integer(10, 3600),
      reconnectSeconds: integer(1, 3600),
    }),
  ),
});

export const DenylistSchema = object({
  transaction: u32,
  version: integer(1),
  kind: literal('full', 'delta'),
  /** delta only: the version this change applies to */
  baseVersion: optional(integer(1)),
  /** full: every denied card id; delta: the ones added */
  add: array(cardIdHex, MAX_DENYLIST_ENTRIES),
  /** delta only */
  remove: optional(array(cardIdHex, MAX_DENYLIST_ENTRIES)),
});

export const TimeSchema = object({ transaction: u32, serverTime: epochMs });

export const ResendSchema = object({ transaction: u32, fromSeq: seq, toSeq: optional(seq) });

export const ClaimResultSchema = object({
  transaction: u32,
  status: literal('ok', 'error'),
  data: optional(object({ batchId: cardIdHex, granted: boolean(), holder: optional(string(32, TERMINAL_ID_PATTERN)) })),
  error: optional(errorBody),
});

export const VoucherClaimSchema = object({ transaction: u32, serial: integer(1, 2 ** 48 - 1), keyId: integer(0, 0xffff), clinicCode, examType: string(16, /^[A-Za-z0-9._-]{1,16}$/) });

export const VoucherClaimResultSchema = object({
  transaction: u32,
  status: literal('ok', 'error'),
  /** code: the refusal's error name when not granted (VOUCHER_WRITTEN_OFF, VOUCHER_VOIDED, VOUCHER_NOT_BOOKED, ...) */
  data: optional(object({ serial: integer(1, 2 ** 48 - 1), granted: boolean(), code: optional(string(32, /^[A-Z0-9_]{1,32}$/)), detail: optional(string(200)) })),
  error: optional(errorBody),
});

const orderIdText = string(64, /^[A-Za-z0-9._-]{1,64}$/);
const insuranceOp = literal('start', 'poll', 'outcome', 'redeem');

/**
 * Terminal -> server (docs/insurance.md): start {item, amountFen}, poll {deviceCode}, outcome {orderId, ran},
 * redeem {redeemCode}: a service order the patient paid in a booking app (seed 001), its code as the app shows it
 */
export const InsuranceRequestSchema = object({
  transaction: u32,
  op: insuranceOp,
  item: optional(string(16, /^[A-Z0-9_]{1,16}$/)),
  amountFen: optional(integer(1, 100_000_000)),
  deviceCode: optional(string(128, /^[A-Za-z0-9_-]{16,128}$/)),
  orderId: optional(orderIdText),
  ran: optional(boolean()),
  redeemCode: optional(string(16, /^[A-Za-z]{4}-?[A-Za-z]{4}$/)),
});

/**
 * Server -> terminal: the answer to a request (its transaction), or transaction 0 with op 'voucher': the
 * settlement voucher pushed once settled. A poll's RFC 8628 answer is `pending` with the interval to keep.
 */
export const InsuranceResultSchema = object({
  transaction: u32,
  status: literal('ok', 'error'),
  data: optional(
    object({
      op: literal('start', 'poll', 'outcome', 'voucher', 'redeem'),
      orderId: optional(orderIdText),
      deviceCode: optional(string(128, /^[A-Za-z0-9_-]{16,128}$/)),
      userCode: optional(string(16, /^[A-Z]{4}-[A-Z]{4}$/)),
      verificationUri: optional(string(256, /^https?:\/\/[\x21-\x7e]+$/)),
      verificationUriComplete: optional(string(300, /^https?:\/\/[\x21-\x7e]+$/)),
      bindingCode: optional(string(64)),
      expiresIn: optional(integer(1, 86_400)),
      interval: optional(integer(1, 3600)),
      pending: optional(literal('authorization_pending', 'slow_down', 'expired_token', 'access_denied')),
      reason: optional(string(64, /^[A-Z0-9_]{1,64}$/)),
      voucher: optional(string(4096)),
      state: optional(string(32)),
    }),
  ),
  error: optional(errorBody),
});

export const TrustListSchema = object({ listSeq: u32, hex: string(MAX_DENYLIST_BYTES, /^(?:[0-9a-f]{2})+$/) });

export const StatusSchema = object({
  state: literal('online', 'offline'),
  time: optional(epochMs),
  software: optional(string(64)),
});

export const HeartbeatSchema = object({
  time: epochMs,
  /** Entries not yet acknowledged by the server */
  queueDepth: integer(0),
  lastSeq: integer(0),
  uptimeSeconds: integer(0),
  batch: optional(object({ batchNo: integer(0, 0xffffffff), remaining: integer(0, 0xffffffff) })),
  reader: optional(string(64)),
  configVersion: optional(integer(0)),
  denylistVersion: optional(integer(0)),
  /** The last server message the terminal refused, and why */
  lastRefusal: optional(object({ kind: string(32), reason: string(300), time: epochMs })),
  /** Since issue 15 (optional: an older terminal leaves them out): whether the terminal trusts its clock */
  clockTrusted: optional(boolean()),
  /** When the terminal's TLS client certificate expires */
  certExpiresAt: optional(epochMs),
  /** The terminal's software version */
  software: optional(string(64)),
});

export const ClaimSchema = object({ transaction: u32, batchId: cardIdHex, batchNo: integer(0, 0xffffffff), clinicCode });

export const ResponseSchema = object({
  transaction: u32,
  request: literal('config', 'denylist', 'time', 'resend'),
  status: literal('ok', 'error'),
  error: optional(errorBody),
});

export type AckPayload = Infer<typeof AckSchema>;
export type ConfigPayload = Infer<typeof ConfigSchema>;
export type DenylistPayload = Infer<typeof DenylistSchema>;
export type TimePayload = Infer<typeof TimeSchema>;
export type ResendPayload = Infer<typeof ResendSchema>;
export type ClaimResultPayload = Infer<typeof ClaimResultSchema>;
export type StatusPayload = Infer<typeof StatusSchema>;
export type HeartbeatPayload = Infer<typeof HeartbeatSchema>;
export type ClaimPayload = Infer<typeof ClaimSchema>;
export type ResponsePayload = Infer<typeof ResponseSchema>;
export type VoucherClaimPayload = Infer<typeof VoucherClaimSchema>;
export type VoucherClaimResultPayload = Infer<typeof VoucherClaimResultSchema>;
export type TrustListPayload = Infer<typeof TrustListSchema>;
export type InsuranceRequestPayload = Infer<typeof InsuranceRequestSchema>;
export type InsuranceResultPayload = Infer<typeof InsuranceResultSchema>;

/** Topic kind -> payload type, for every JSON topic */
export interface JsonPayloads {
  ack: AckPayload;
  config: ConfigPayload;
  denylist: DenylistPayload;
  time: TimePayload;
  resend: ResendPayload;
  'claim-result': ClaimResultPayload;
  status: StatusPayload;
  heartbeat: HeartbeatPayload;
  claim: ClaimPayload;
  response: ResponsePayload;
  'voucher-claim': VoucherClaimPayload;
  'voucher-claim-result': VoucherClaimResultPayload;
  'trust-list': TrustListPayload;
  insurance: InsuranceRequestPayload;
  'insurance-result': InsuranceResultPayload;
}
export type JsonKind = keyof JsonPayloads;

const SCHEMAS: { [K in JsonKind]: Schema<JsonPayloads[K]> } = {
  ack: AckSchema,
  config: ConfigSchema,
  denylist: DenylistSchema,
  time: TimeSchema,
  resend: ResendSchema,
  'claim-result': ClaimResultSchema,
  status: StatusSchema,
  heartbeat: HeartbeatSchema,
  claim: ClaimSchema,
  response: ResponseSchema,
  'voucher-claim': VoucherClaimSchema,
  'voucher-claim-result': VoucherClaimResultSchema,
  'trust-list': TrustListSchema,
  insurance: InsuranceRequestSchema,
  'insurance-result': InsuranceResultSchema,
};

export function maxJsonBytes(kind: JsonKind): number {
  return kind === 'denylist' || kind === 'trust-list' ? MAX_DENYLIST_BYTES + 64 : MAX_JSON_BYTES;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

function checkSemantics<K extends JsonKind>(kind: K, value: JsonPayloads[K]): void {
  if (kind === 'denylist') {
    const list = value as DenylistPayload;
    if (list.kind === 'full' && (list.baseVersion !== undefined || list.remove !== undefined)) throw new PayloadError('schema', 'a full deny list has no baseVersion or remove');
    if (list.kind === 'delta' && (list.baseVersion === undefined || list.baseVersion >= list.version)) throw new PayloadError('schema', 'a delta needs a baseVersion below its version', 'baseVersion');
  }
  if (kind === 'resend') {
    const resend = value as ResendPayload;
    if (resend.toSeq !== undefined && resend.toSeq < resend.fromSeq) throw new PayloadError('schema', 'toSeq below fromSeq', 'toSeq');
  }
  if (kind === 'insurance') {
    const r = value as InsuranceRequestPayload;
    const needs: Record<InsuranceRequestPayload['op'], readonly (keyof InsuranceRequestPayload)[]> = { start: ['item', 'amountFen'], poll: ['deviceCode'], outcome: ['orderId', 'ran'], redeem: ['redeemCode'] };
    for (const key of needs[r.op]) if (r[key] === undefined) throw new PayloadError('schema', `insurance ${r.op} needs ${key}`, key);
  }
  if ((kind === 'ack' || kind === 'claim-result' || kind === 'voucher-claim-result' || kind === 'insurance-result' || kind === 'response') && (value as { status: string }).status === 'error' && !(value as { error?: unknown }).error) {
    throw new PayloadError('schema', 'status error without an error', 'error');
  }
}

export function parseJsonPayload<K extends JsonKind>(kind: K, payload: Uint8Array): JsonPayloads[K] {
  const limit = maxJsonBytes(kind);
  if (payload.length > limit) throw new PayloadError('oversized', `${kind} payload of ${payload.length} bytes exceeds ${limit}`);
  let json: unknown;
  let text: string;
  try {
    text = textDecoder.decode(payload);
    json = JSON.parse(text);
  } catch (err) {
    throw new PayloadError('malformed', `${kind} payload is not UTF-8 JSON: ${(err as Error).message}`);
  }
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) throw new PayloadError('malformed', `${kind} payload nested ${depth} deep, at most ${MAX_JSON_DEPTH}`);
  const validate = SCHEMAS[kind] as ((value: unknown, path: string) => JsonPayloads[K]) | undefined;
  if (typeof validate !== 'function') throw new PayloadError('malformed', `${kind} is not a JSON message kind`);
  const value = validate(json, '');
  checkSemantics(kind, value);
  return value;
}

/** The deepest nesting of arrays and objects in JSON text, in one pass without recursion (strings skipped) */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

export function encodeJsonPayload<K extends JsonKind>(kind: K, value: JsonPayloads[K]): Uint8Array {
  // validate on the way out too, so neither side can send what the other refuses
  const checked = SCHEMAS[kind](value, '');
  checkSemantics(kind, checked);
  const bytes = textEncoder.encode(JSON.stringify(checked));
  const limit = maxJsonBytes(kind);
  if (bytes.length > limit) throw new PayloadError('oversized', `${kind} payload of ${bytes.length} bytes exceeds ${limit}`);
  return bytes;
}

/** Compresses sorted seqs into inclusive ranges for an ack */
export function seqsToRanges(seqs: readonly number[]): Array<readonly [number, number]> {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const ranges: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else ranges.push([s, s]);
  }
  return ranges;
}

export function rangesToSeqs(ranges: readonly (readonly [number, number])[], limit = 100_000): number[] {
  const out: number[] = [];
  for (const [from, to] of ranges) {
    if (to - from + 1 + out.length > limit) throw new PayloadError('oversized', `more than ${limit} seqs in ranges`);
    for (let s = from; s <= to; s++) out.push(s);
  }
  return out;
}

export type { DownlinkKind, UplinkKind };
