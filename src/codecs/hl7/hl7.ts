/**
 * HL7 v2 (ER7, the pipe-and-hat text) messages, parsed with Medplum's
 * Hl7Message (@medplum/core) after the checks it does not make: strict UTF-8,
 * a size and segment budget, an MSH with five distinct separators, segment
 * names of three letters or digits. Field values are unescaped here (\F\ \S\
 * \T\ \R\ \E\ and \Xhh\); any other escape, and any control character, is
 * refused, so a value that reaches a declared message is plain text. Pure.
 */
import { CodecError, type ErrorName } from '../../errors.js';
import { Hl7Message, type Hl7Segment } from '@medplum/core';

export type Hl7ProblemKind = 'encoding' | 'malformed' | 'segment' | 'escape';

/** HL7 table 0357 (message error condition codes) */
export const Hl7ErrorCode = {
  accepted: 0,
  segmentSequence: 100,
  requiredFieldMissing: 101,
  dataType: 102,
  tableValue: 103,
  unsupportedMessageType: 200,
  unsupportedEvent: 201,
  unsupportedVersion: 203,
  duplicateKey: 205,
  applicationInternal: 207,
} as const;

/** The gateway's refusal code of each kind of HL7 problem */
export const HL7_PROBLEM_CODE: Record<Hl7ProblemKind, ErrorName> = { encoding: 'GW_ENCODING', malformed: 'GW_MALFORMED', segment: 'GW_MALFORMED', escape: 'GW_MALFORMED' };

export class Hl7Problem extends CodecError {
  override readonly name: string = 'Hl7Problem';
  constructor(
    readonly kind: Hl7ProblemKind,
    detail: string,
    readonly hl7Code: number = Hl7ErrorCode.dataType,
  ) {
    super(HL7_PROBLEM_CODE[kind], detail);
  }
}

export interface Hl7Limits {
  readonly maxBytes: number;
  readonly maxSegments: number;
  readonly maxFieldChars: number;
}

export const DEFAULT_HL7_LIMITS: Hl7Limits = { maxBytes: 65_536, maxSegments: 64, maxFieldChars: 2_000 };

export interface Hl7Header {
  readonly sendingApplication: string;
  readonly sendingFacility: string;
  readonly receivingApplication: string;
  readonly receivingFacility: string;
  /** MSH-7 as sent (HL7 DTM) */
  readonly dateTime: string;
  /** MSH-9.1, e.g. ADT */
  readonly messageCode: string;
  /** MSH-9.2, e.g. A04 */
  readonly triggerEvent: string;
  /** MSH-10 */
  readonly controlId: string;
  /** MSH-11 */
  readonly processingId: string;
  /** MSH-12 */
  readonly version: string;
}

export interface ParsedHl7 {
  readonly header: Hl7Header;
  readonly segmentNames: readonly string[];
  /** The unescaped value of SEG-field[.component[.subcomponent]] (1-based), '' when absent */
  value(segment: string, field: number, component?: number, subcomponent?: number, repetition?: number): string;
  /** How many segments of this name */
  count(segment: string): number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const SEGMENT_NAME = /^[A-Z][A-Z0-9]{2}$/;
// C0 controls other than the segment separator, DEL, and C1 controls
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u000c\u000e-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_IN_VALUE = /[\u0000-\u001f\u007f-\u009f]/;

export function parseHl7(bytes: Uint8Array, limits: Hl7Limits = DEFAULT_HL7_LIMITS): ParsedHl7 {
  if (bytes.length > limits.maxBytes) throw new Hl7Problem('malformed', `message of ${bytes.length} bytes exceeds ${limits.maxBytes}`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new Hl7Problem('encoding', 'message is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (CONTROL.test(text.replace(/\n/g, ''))) throw new Hl7Problem('encoding', 'control character in message');
  if (!text.startsWith('MSH') || text.length < 9) throw new Hl7Problem('malformed', 'message does not start with an MSH segment');
  const separators = text.slice(3, 8);
  const set = new Set(separators);
  if (set.size !== 5 || /[A-Za-z0-9\r\n ]/.test(separators) || text.charAt(8) !== separators[0]) {
    throw new Hl7Problem('malformed', 'MSH-1/MSH-2 must be five distinct separator characters');
  }
  const rawSegments = text.split(/[\r\n]+/).filter((s) => s.length > 0);
  if (rawSegments.length > limits.maxSegments) throw new Hl7Problem('segment', `more than ${limits.maxSegments} segments`, Hl7ErrorCode.segmentSequence);
  for (const raw of rawSegments) {
    const name = raw.slice(0, 3);
    if (!SEGMENT_NAME.test(name) || (raw.length > 3 && raw.charAt(3) !== separators[0])) {
      throw new Hl7Problem('segment', `bad segment name ${JSON.stringify(raw.slice(0, 8))}`, Hl7ErrorCode.segmentSequence);
    }
  }
  if (rawSegments.slice(1).some((s) => s.startsWith('MSH'))) throw new Hl7Problem('segment', 'more than one MSH segment', Hl7ErrorCode.segmentSequence);
  let message: Hl7Message;
  try {
    message = Hl7Message.parse(rawSegments.join('\r'));
  } catch (err) {
    throw new Hl7Problem('malformed', (err as Error).message);
  }
  const context = message.context;
  const escape = context.escapeCharacter;
  const unescape = (raw: string): string => {
    if (raw.length > limits.maxFieldChars) throw new Hl7Problem('malformed', `value longer than ${limits.maxFieldChars} characters`);
    if (!raw.includes(escape)) return raw;
    let out = '';
    for (let i = 0; i < raw.length; i++) {
      const c = raw.charAt(i);
      if (c !== escape) {
        out += c;
        continue;
      }
      const end = raw.indexOf(escape, i + 1);
      if (end < 0) throw new Hl7Problem('escape', 'unterminated escape sequence');
      const code = raw.slice(i + 1, end);
      if (code === 'F') out += context.fieldSeparator;
      else if (code === 'S') out += context.componentSeparator;
      else if (code === 'T') out += context.subcomponentSeparator;
      else if (code === 'R') out += context.repetitionSeparator;
      else if (code === 'E') out += escape;
      else if (/^X(?:[0-9A-Fa-f]{2}){1,8}$/.test(code)) {
        const hex = code.slice(1);
        for (let j = 0; j < hex.length; j += 2) out += String.fromCharCode(parseInt(hex.slice(j, j + 2), 16));
      } else throw new Hl7Problem('escape', `unsupported escape sequence ${JSON.stringify(code.slice(0, 12))}`);
      i = end;
    }
    if (CONTROL_IN_VALUE.test(out)) throw new Hl7Problem('escape', 'escape sequence yields a control character');
    return out;
  };
  const segments = new Map<string, Hl7Segment[]>();
  for (const segment of message.segments) {
    const list = segments.get(segment.name);
    if (list) list.push(segment);
    else segments.set(segment.name, [segment]);
  }
  const value = (segmentName: string, field: number, component = 1, subcomponent?: number, repetition = 0): string => {
    const segment = segments.get(segmentName)?.[0];
    if (!segment) return '';
    const f = segment.getField(field);
    if (!f) return '';
    if (repetition >= f.components.length) return '';
    const raw = f.getComponent(component, subcomponent === undefined ? undefined : subcomponent - 1, repetition);
    return unescape(raw);
  };
  const msh = (field: number, component = 1): string => value('MSH', field, component);
  const header: Hl7Header = {
    sendingApplication: msh(3),
    sendingFacility: msh(4),
    receivingApplication: msh(5),
    receivingFacility: msh(6),
    dateTime: msh(7),
    messageCode: msh(9, 1),
    triggerEvent: msh(9, 2),
    controlId: msh(10),
    processingId: msh(11),
    version: msh(12),
  };
  if (!header.controlId) throw new Hl7Problem('malformed', 'MSH-10 (message control id) is empty', Hl7ErrorCode.requiredFieldMissing);
  if (!header.messageCode) throw new Hl7Problem('malformed', 'MSH-9 (message type) is empty', Hl7ErrorCode.requiredFieldMissing);
  return {
    header,
    segmentNames: message.segments.map((s) => s.name),
    value,
    count: (name) => segments.get(name)?.length ?? 0,
  };
}

/** A value made safe for an HL7 field: separators escaped, control characters dropped */
export function escapeHl7(value: string): string {
  return value
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\');
}

/** Builds one ER7 message with the default separators from already escaped fields */
export function encodeHl7Segments(segments: readonly (readonly string[])[]): Uint8Array {
  const text = segments.map((fields) => (fields[0] === 'MSH' ? ['MSH', '^~\\&', ...fields.slice(1)].join('|') : fields.join('|'))).join('\r');
  return new TextEncoder().encode(text);
}

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckRequest {
  readonly code: AckCode;
  /** The header of the message answered, when it parsed far enough */
  readonly original?: Hl7Header;
  readonly text: string;
  /** HL7 table 0357 code for ERR-3 */
  readonly hl7ErrorCode?: number;
  /** Our own stable refusal code (errors.ts), carried in ERR-5 */
  readonly tallyCode?: string;
  readonly ackControlId: string;
  /** HL7 DTM, e.g. 20261202120000 */
  readonly dateTime: string;
  readonly application: string;
  readonly facility: string;
}

/** An HL7 v2.5.1 general acknowledgement (ACK) with MSA and, when refused, ERR */
export function encodeAck(request: AckRequest): Uint8Array {
  const o = request.original;
  const msh = [
    'MSH',
    escapeHl7(request.application),
    escapeHl7(request.facility),
    escapeHl7(o?.sendingApplication ?? ''),
    escapeHl7(o?.sendingFacility ?? ''),
    request.dateTime,
    '',
    o?.triggerEvent ? `ACK^${escapeHl7(o.triggerEvent)}^ACK` : 'ACK',
    escapeHl7(request.ackControlId),
    'P',
    '2.5.1',
  ];
  const msa = ['MSA', request.code, escapeHl7(o?.controlId ?? ''), escapeHl7(request.text.slice(0, 200))];
  const segments: string[][] = [msh, msa];
  if (request.code !== 'AA') {
    const hl7Code = request.hl7ErrorCode ?? Hl7ErrorCode.applicationInternal;
    segments.push(['ERR', '', '', `${hl7Code}^${escapeHl7(request.text.slice(0, 200))}^HL70357`, 'E', escapeHl7(request.tallyCode ?? '')]);
  }
  return encodeHl7Segments(segments);
}

/** The acknowledgement code and control id of an ACK (used by the HIS simulator) */
export function parseAck(bytes: Uint8Array): { code: string; controlId: string; text: string; tallyCode: string; sourceKey: string } {
  const parsed = parseHl7(bytes);
  if (parsed.header.messageCode !== 'ACK') throw new Hl7Problem('malformed', `not an ACK: ${parsed.header.messageCode}`);
  const controlId = parsed.value('MSA', 2);
  return {
    code: parsed.value('MSA', 1),
    controlId,
    text: parsed.value('MSA', 3),
    tallyCode: parsed.value('ERR', 5),
    // the sender as the gateway read it: application|facility|control id of the message answered
    sourceKey: `${parsed.header.receivingApplication}|${parsed.header.receivingFacility}|${controlId}`,
  };
}

/** HL7 DTM (YYYYMMDDHHMMSS, UTC) of a time */
export function hl7DateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
