/**
 * Deny by default: what the gateway decides about one message, before any I/O.
 * Every refusal names its errors.ts code, a reason, and the HL7 ACK to answer
 * with (AE for content the HIS can correct, AR for what the gateway will not
 * take at all). Only a message that parsed fully, is declared for this
 * direction, fits its size and rate, and maps onto its schema passes.
 */
import type { ErrorName } from '../errors.js';
import { declarationForHl7, declarationOf, schemaProblem, type Declaration, type RateLimit } from '../codecs/gateway/declared.js';
import { mapHl7, MappingProblem, type MappedMessage } from '../codecs/gateway/fromHl7.js';
import { Hl7ErrorCode, Hl7Problem, parseHl7, type AckCode, type Hl7Header, type Hl7Limits } from '../codecs/hl7/hl7.js';
import type { Clock } from '../util/clock.js';
import { TokenBucket } from '../util/TokenBucket.js';

export interface Refusal {
  readonly pass: false;
  readonly code: ErrorName;
  readonly reason: string;
  readonly ack: AckCode;
  readonly hl7Code: number;
  /** The declared type or what the message claimed to be */
  readonly type: string;
  readonly header?: Hl7Header;
  readonly patientId?: string;
}

export interface Pass {
  readonly pass: true;
  readonly declaration: Declaration;
  readonly mapped: MappedMessage;
  readonly header: Hl7Header;
}

export type Decision = Refusal | Pass;

export class RateLimits {
  private readonly buckets = new Map<string, TokenBucket>();
  constructor(
    private readonly clock: Clock,
    private readonly overrides: Readonly<Record<string, RateLimit>> = {},
  ) {}

  take(declaration: Declaration): boolean {
    let bucket = this.buckets.get(declaration.type);
    if (!bucket) {
      const limit = this.overrides[declaration.type] ?? declaration.rate;
      bucket = new TokenBucket(limit.perSecond, this.clock, limit.burst);
      this.buckets.set(declaration.type, bucket);
    }
    return bucket.tryTake();
  }
}

function refuse(code: ErrorName, reason: string, ack: AckCode, hl7Code: number, type: string, header?: Hl7Header, patientId?: string): Refusal {
  return { pass: false, code, reason, ack, hl7Code, type, header, patientId };
}

const HL7_PROBLEM_CODE: Record<Hl7Problem['kind'], ErrorName> = { encoding: 'GW_ENCODING', malformed: 'GW_MALFORMED', segment: 'GW_MALFORMED', escape: 'GW_MALFORMED' };

export interface InspectOptions {
  readonly gatewayId: string;
  readonly hl7Limits: Hl7Limits;
  readonly rates: RateLimits;
}

/** One HL7 message from the hospital side (the payload of an MLLP frame) */
export function inspectHl7(bytes: Uint8Array, options: InspectOptions): Decision {
  if (bytes.length > options.hl7Limits.maxBytes) {
    return refuse('GW_OVERSIZED', `message of ${bytes.length} bytes exceeds ${options.hl7Limits.maxBytes}`, 'AR', Hl7ErrorCode.applicationInternal, 'unparsed');
  }
  let parsed;
  try {
    parsed = parseHl7(bytes, options.hl7Limits);
  } catch (err) {
    if (err instanceof Hl7Problem) return refuse(HL7_PROBLEM_CODE[err.kind], err.message, 'AR', err.hl7Code, 'unparsed');
    return refuse('GW_MALFORMED', 'message does not parse', 'AR', Hl7ErrorCode.applicationInternal, 'unparsed');
  }
  const header = parsed.header;
  const claimed = `hl7:${header.messageCode}^${header.triggerEvent}`.slice(0, 40);
  const declaration = declarationForHl7(header.messageCode, header.triggerEvent);
  if (!declaration) {
    return refuse('GW_NOT_ALLOWED', `${header.messageCode}^${header.triggerEvent} is not on the allow list`.slice(0, 120), 'AR', Hl7ErrorCode.unsupportedMessageType, claimed, header);
  }
  if (declaration.direction !== 'hospital-to-payment') {
    return refuse('GW_WRONG_DIRECTION', `${declaration.type} may only come from the payment side`, 'AR', Hl7ErrorCode.unsupportedMessageType, declaration.type, header);
  }
  if (bytes.length > declaration.maxBytes) {
    return refuse('GW_OVERSIZED', `${declaration.type} of ${bytes.length} bytes exceeds its limit of ${declaration.maxBytes}`, 'AR', Hl7ErrorCode.applicationInternal, declaration.type, header);
  }
  if (!options.rates.take(declaration)) {
    return refuse('GW_RATE_LIMITED', `rate limit of ${declaration.type} exceeded: send again later`, 'AR', Hl7ErrorCode.applicationInternal, declaration.type, header);
  }
  try {
    const mapped = mapHl7(parsed, declaration, options.gatewayId);
    return { pass: true, declaration, mapped, header };
  } catch (err) {
    if (err instanceof MappingProblem) return refuse('GW_BAD_FIELD', err.message.slice(0, 200), 'AE', err.hl7Code, declaration.type, header);
    if (err instanceof Hl7Problem) return refuse(HL7_PROBLEM_CODE[err.kind], err.message, 'AE', err.hl7Code, declaration.type, header);
    return refuse('GW_BAD_FIELD', 'message content not understood', 'AE', Hl7ErrorCode.applicationInternal, declaration.type, header);
  }
}

export type JsonDecision<T> = { pass: true; value: T; declaration: Declaration } | { pass: false; code: ErrorName; reason: string; type: string };

/** A JSON message of a declared type arriving from the payment side */
export function inspectPaymentJson<T>(type: string, bytes: Uint8Array, rates: RateLimits): JsonDecision<T> {
  const declaration = declarationOf(type);
  if (!declaration || declaration.accepts !== 'json' || !declaration.schema) return { pass: false, code: 'GW_NOT_ALLOWED', reason: `${type} is not on the allow list`, type };
  if (declaration.direction !== 'payment-to-hospital') return { pass: false, code: 'GW_WRONG_DIRECTION', reason: `${type} may not come from the payment side`, type };
  if (bytes.length > declaration.maxBytes) return { pass: false, code: 'GW_OVERSIZED', reason: `${bytes.length} bytes exceeds ${declaration.maxBytes}`, type };
  if (!rates.take(declaration)) return { pass: false, code: 'GW_RATE_LIMITED', reason: `rate limit of ${type} exceeded`, type };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { pass: false, code: 'GW_MALFORMED', reason: 'not UTF-8 JSON', type };
  }
  const problem = schemaProblem(declaration.schema, value);
  if (problem) return { pass: false, code: 'GW_BAD_FIELD', reason: `${problem.path}: ${problem.message}`.slice(0, 200), type };
  return { pass: true, value: value as T, declaration };
}
