/**
 * The SMS report and the server's SMS commands (firmware-protocol/sms-report.md):
 * one 140-byte binary SMS each way, for when the data link is down and SMS still
 * gets through. Pure: bytes in, values out; the signatures are made and checked
 * in crypto/smsSignature.ts over smsSigningInput().
 *
 *   report   A1 | tag 8 | counter u32 | time u32 | headSeq u32 | headHash 8 | outbox u16 | alerts u8
 *            | n u8 | n x (batchNo u32, usesSince u16, usesTotal u16) | Ed25519 signature 64      (n <= 5: <= 137 bytes)
 *   command  C1 | tag 8 | counter u32 | time u32 | type u8 | payload | Ed25519 signature 64
 *            type 1 report-now (no payload), 2 deny (denyVersion u32, n u8, n x cardId 8; n <= 6), 3 time (none)
 *
 * All integers big-endian. `tag` is the first 8 bytes of SHA-256(utf8(terminalId)); the signature covers the
 * full terminal id, so a tag collision cannot make a message verify for another terminal.
 */
import { CodecError } from '../../errors.js';
import { bytesEqual, concatBytes, readU32be, u16be, u32be, utf8 } from '../bytes.js';

/** One binary SMS holds 140 octets of user data (TS 23.040, 8-bit data coding) */
export const SMS_MAX_OCTETS = 140;
export const SMS_SIGNATURE_LENGTH = 64;
export const SMS_TAG_LENGTH = 8;
export const SMS_HASH_PREFIX_LENGTH = 8;
export const SMS_REPORT_KIND = 0xa1;
export const SMS_COMMAND_KIND = 0xc1;
export const SMS_MAX_BATCHES = 5;
export const SMS_MAX_DENY = 6;
/** Domain separation: a report's signature never verifies as a ledger entry, a command or another format */
export const SMS_REPORT_DOMAIN = 'tallystick-sms-report/1';
export const SMS_COMMAND_DOMAIN = 'tallystick-sms-command/1';

export const SmsAlert = {
  STORAGE_FAULT: 0x01,
  ROLLBACK_SUSPECTED: 0x02,
  TAMPER: 0x04,
  CLOCK_UNTRUSTED: 0x08,
  /** More batches had uses than fit: the report names the ones with the most uses since the last report */
  BATCHES_OMITTED: 0x10,
} as const;
const KNOWN_ALERTS = 0x1f;
export const SMS_ALERT_NAMES: Record<number, string> = { 0x01: 'storage-fault', 0x02: 'rollback-suspected', 0x04: 'tamper', 0x08: 'clock-untrusted', 0x10: 'batches-omitted' };

export const SmsCommandType = { REPORT_NOW: 1, DENY: 2, TIME: 3 } as const;
export type SmsCommandTypeValue = (typeof SmsCommandType)[keyof typeof SmsCommandType];

export interface SmsBatchCount {
  readonly batchNo: number;
  /** Uses (reserve entries) in this batch since the previous report the terminal sent */
  readonly usesSince: number;
  /** Uses in this batch since it was loaded: a lost SMS costs no count */
  readonly usesTotal: number;
}

export interface SmsReportFields {
  readonly terminalTag: Uint8Array;
  /** 1, 2, 3 ... per terminal, never reused: the server refuses one not above the last it accepted */
  readonly counter: number;
  /** Terminal clock at sending, Unix seconds */
  readonly time: number;
  readonly headSeq: number;
  /** First 8 bytes of the entry hash at headSeq */
  readonly headHashPrefix: Uint8Array;
  /** Entries not yet acknowledged by the server (saturates at 65535) */
  readonly outboxDepth: number;
  readonly alerts: number;
  readonly batches: readonly SmsBatchCount[];
}

export interface SmsReport extends SmsReportFields {
  /** The octets the signature covers (everything before it) */
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
}

export type SmsCommandFields =
  | { readonly terminalTag: Uint8Array; readonly counter: number; readonly time: number; readonly type: typeof SmsCommandType.REPORT_NOW }
  | { readonly terminalTag: Uint8Array; readonly counter: number; readonly time: number; readonly type: typeof SmsCommandType.TIME }
  | {
      readonly terminalTag: Uint8Array;
      readonly counter: number;
      readonly time: number;
      readonly type: typeof SmsCommandType.DENY;
      readonly denyVersion: number;
      readonly cardIds: readonly Uint8Array[];
    };

export type SmsCommand = SmsCommandFields & { readonly body: Uint8Array; readonly signature: Uint8Array };

export class SmsMessageError extends CodecError {
  override readonly name: string = 'SmsMessageError';
  constructor(code: 'BAD_SMS_REPORT' | 'BAD_SMS_COMMAND', detail: string, path = '') {
    super(code, detail, path);
  }
}

const reportError = (detail: string, path = '') => new SmsMessageError('BAD_SMS_REPORT', detail, path);
const commandError = (detail: string, path = '') => new SmsMessageError('BAD_SMS_COMMAND', detail, path);

function u32(value: number, what: string, fail: (d: string, p: string) => Error): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw fail(`${what} ${value} is not a u32`, what);
  return u32be(value);
}

function u16(value: number, what: string, fail: (d: string, p: string) => Error): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw fail(`${what} ${value} is not a u16`, what);
  return u16be(value);
}

function fixed(bytes: Uint8Array, length: number, what: string, fail: (d: string, p: string) => Error): Uint8Array {
  if (bytes.length !== length) throw fail(`${what} is ${bytes.length} bytes, expected ${length}`, what);
  return bytes;
}

/** The body of a report (what is signed, after the domain and the terminal id) */
export function encodeSmsReportBody(fields: SmsReportFields): Uint8Array {
  if (fields.counter < 1) throw reportError('counter starts at 1', 'counter');
  if (fields.batches.length > SMS_MAX_BATCHES) throw reportError(`${fields.batches.length} batches, at most ${SMS_MAX_BATCHES}`, 'batches');
  if ((fields.alerts & ~KNOWN_ALERTS) !== 0 || !Number.isInteger(fields.alerts)) throw reportError(`unknown alert bits ${fields.alerts}`, 'alerts');
  return concatBytes([
    Uint8Array.of(SMS_REPORT_KIND),
    fixed(fields.terminalTag, SMS_TAG_LENGTH, 'terminalTag', reportError),
    u32(fields.counter, 'counter', reportError),
    u32(fields.time, 'time', reportError),
    u32(fields.headSeq, 'headSeq', reportError),
    fixed(fields.headHashPrefix, SMS_HASH_PREFIX_LENGTH, 'headHashPrefix', reportError),
    u16(Math.min(fields.outboxDepth, 0xffff), 'outboxDepth', reportError),
    Uint8Array.of(fields.alerts),
    Uint8Array.of(fields.batches.length),
    ...fields.batches.flatMap((b, i) => [u32(b.batchNo, `batches[${i}].batchNo`, reportError), u16(b.usesSince, `batches[${i}].usesSince`, reportError), u16(b.usesTotal, `batches[${i}].usesTotal`, reportError)]),
  ]);
}

export function encodeSmsCommandBody(fields: SmsCommandFields): Uint8Array {
  if (fields.counter < 1) throw commandError('counter starts at 1', 'counter');
  const head = [Uint8Array.of(SMS_COMMAND_KIND), fixed(fields.terminalTag, SMS_TAG_LENGTH, 'terminalTag', commandError), u32(fields.counter, 'counter', commandError), u32(fields.time, 'time', commandError), Uint8Array.of(fields.type)];
  if (fields.type === SmsCommandType.DENY) {
    if (fields.cardIds.length < 1 || fields.cardIds.length > SMS_MAX_DENY) throw commandError(`${fields.cardIds.length} card ids, 1 to ${SMS_MAX_DENY}`, 'cardIds');
    return concatBytes([...head, u32(fields.denyVersion, 'denyVersion', commandError), Uint8Array.of(fields.cardIds.length), ...fields.cardIds.map((id, i) => fixed(id, 8, `cardIds[${i}]`, commandError))]);
  }
  if (fields.type !== SmsCommandType.REPORT_NOW && fields.type !== SmsCommandType.TIME) throw commandError(`unknown command type ${String((fields as { type: unknown }).type)}`, 'type');
  return concatBytes(head);
}

/** What the signature covers: domain, 0x00, the full terminal id, 0x00, the body */
export function smsSigningInput(domain: typeof SMS_REPORT_DOMAIN | typeof SMS_COMMAND_DOMAIN, terminalId: string, body: Uint8Array): Uint8Array {
  return concatBytes([utf8(domain), Uint8Array.of(0), utf8(terminalId), Uint8Array.of(0), body]);
}

export function encodeSmsMessage(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SMS_SIGNATURE_LENGTH) throw reportError(`signature is ${signature.length} bytes, expected 64`, 'signature');
  const out = concatBytes([body, signature]);
  if (out.length > SMS_MAX_OCTETS) throw reportError(`${out.length} octets, one SMS holds ${SMS_MAX_OCTETS}`);
  return out;
}

/** Which of the two a user-data field is, by its first octet (undefined: neither) */
export function smsMessageKind(octets: Uint8Array): 'report' | 'command' | undefined {
  if (octets[0] === SMS_REPORT_KIND) return 'report';
  if (octets[0] === SMS_COMMAND_KIND) return 'command';
  return undefined;
}

class Reader {
  private at = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly fail: (d: string, p: string) => Error,
  ) {}
  take(n: number, what: string): Uint8Array {
    if (this.at + n > this.bytes.length) throw this.fail(`truncated at ${what} (offset ${this.at}, ${this.bytes.length} octets)`, what);
    const out = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8(what: string): number {
    return this.take(1, what)[0]!;
  }
  u16(what: string): number {
    const b = this.take(2, what);
    return (b[0]! << 8) | b[1]!;
  }
  u32(what: string): number {
    return readU32be(this.take(4, what));
  }
  get offset(): number {
    return this.at;
  }
}

function splitSignature(octets: Uint8Array, fail: (d: string, p: string) => Error): { body: Uint8Array; signature: Uint8Array } {
  if (octets.length > SMS_MAX_OCTETS) throw fail(`${octets.length} octets, one SMS holds ${SMS_MAX_OCTETS}`, '');
  if (octets.length < SMS_SIGNATURE_LENGTH + 1) throw fail(`truncated: ${octets.length} octets`, '');
  return { body: octets.subarray(0, octets.length - SMS_SIGNATURE_LENGTH), signature: octets.slice(octets.length - SMS_SIGNATURE_LENGTH) };
}

export function parseSmsReport(octets: Uint8Array): SmsReport {
  const { body, signature } = splitSignature(octets, reportError);
  const r = new Reader(body, reportError);
  const kind = r.u8('kind');
  if (kind !== SMS_REPORT_KIND) throw reportError(`kind 0x${kind.toString(16)}, expected 0xa1 (report v1)`, 'kind');
  const terminalTag = r.take(SMS_TAG_LENGTH, 'terminalTag');
  const counter = r.u32('counter');
  if (counter < 1) throw reportError('counter 0', 'counter');
  const time = r.u32('time');
  const headSeq = r.u32('headSeq');
  const headHashPrefix = r.take(SMS_HASH_PREFIX_LENGTH, 'headHashPrefix');
  const outboxDepth = r.u16('outboxDepth');
  const alerts = r.u8('alerts');
  if ((alerts & ~KNOWN_ALERTS) !== 0) throw reportError(`unknown alert bits 0x${alerts.toString(16)}`, 'alerts');
  const n = r.u8('batches');
  if (n > SMS_MAX_BATCHES) throw reportError(`${n} batches, at most ${SMS_MAX_BATCHES}`, 'batches');
  const batches: SmsBatchCount[] = [];
  for (let i = 0; i < n; i++) {
    const batchNo = r.u32(`batches[${i}].batchNo`);
    const usesSince = r.u16(`batches[${i}].usesSince`);
    const usesTotal = r.u16(`batches[${i}].usesTotal`);
    if (usesSince > usesTotal) throw reportError(`usesSince ${usesSince} above usesTotal ${usesTotal}`, `batches[${i}]`);
    batches.push({ batchNo, usesSince, usesTotal });
  }
  if (r.offset !== body.length) throw reportError(`${body.length - r.offset} octets after the batches (concatenated or padded)`, '');
  return { terminalTag, counter, time, headSeq, headHashPrefix, outboxDepth, alerts, batches, body: body.slice(), signature };
}

export function parseSmsCommand(octets: Uint8Array): SmsCommand {
  const { body, signature } = splitSignature(octets, commandError);
  const r = new Reader(body, commandError);
  const kind = r.u8('kind');
  if (kind !== SMS_COMMAND_KIND) throw commandError(`kind 0x${kind.toString(16)}, expected 0xc1 (command v1)`, 'kind');
  const terminalTag = r.take(SMS_TAG_LENGTH, 'terminalTag');
  const counter = r.u32('counter');
  if (counter < 1) throw commandError('counter 0', 'counter');
  const time = r.u32('time');
  const type = r.u8('type');
  let fields: SmsCommandFields;
  if (type === SmsCommandType.REPORT_NOW || type === SmsCommandType.TIME) {
    fields = { terminalTag, counter, time, type };
  } else if (type === SmsCommandType.DENY) {
    const denyVersion = r.u32('denyVersion');
    const n = r.u8('cardIds');
    if (n < 1 || n > SMS_MAX_DENY) throw commandError(`${n} card ids, 1 to ${SMS_MAX_DENY}`, 'cardIds');
    const cardIds: Uint8Array[] = [];
    for (let i = 0; i < n; i++) cardIds.push(r.take(8, `cardIds[${i}]`));
    fields = { terminalTag, counter, time, type, denyVersion, cardIds };
  } else {
    throw commandError(`unknown command type ${type}`, 'type');
  }
  if (r.offset !== body.length) throw commandError(`${body.length - r.offset} octets after the command (concatenated or padded)`, '');
  return { ...fields, body: body.slice(), signature };
}

export function sameTag(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b);
}
