/**
 * SMS PDUs as AT+CMGS sends them and AT+CMGR/+CMGL return them (3GPP TS 23.040
 * §9.2, TS 27.005 PDU mode): an SMSC address, then an SMS-SUBMIT (mobile to
 * network) or an SMS-DELIVER (network to mobile) TPDU. Pure, strict: every
 * length is checked against the octets that are there, trailing octets are an
 * error. Binary user data (8-bit data coding) is what tallystick sends; GSM
 * 7-bit and UCS-2 are decoded so that a person's text message is read and
 * refused by what it is, not by a parse failure. A user data header is decoded
 * (concatenation parts are named so the caller can refuse or join them).
 */
import { CodecError } from '../../errors.js';
import { concatBytes, fromHex, toHex } from '../bytes.js';

export type SmsAlphabet = 'gsm7' | 'binary' | 'ucs2';

export interface Concatenation {
  readonly reference: number;
  readonly total: number;
  readonly sequence: number;
}

export interface UserDataHeader {
  readonly elements: readonly { readonly iei: number; readonly data: Uint8Array }[];
  readonly concatenation?: Concatenation;
}

export interface SmsSubmit {
  readonly kind: 'submit';
  /** The SMSC address in the PDU ('' when the modem's default is meant) */
  readonly smsc: string;
  readonly messageReference: number;
  readonly destination: string;
  readonly protocolId: number;
  readonly dataCoding: number;
  readonly alphabet: SmsAlphabet;
  /** Relative validity in minutes as coded (undefined when the PDU carries none) */
  readonly validityMinutes?: number;
  readonly statusReportRequested: boolean;
  readonly header?: UserDataHeader;
  /** The user data after any header: octets (binary), or the text as octets of UTF-16 code units decoded to text below */
  readonly userData: Uint8Array;
  readonly text?: string;
}

export interface SmsDeliver {
  readonly kind: 'deliver';
  readonly smsc: string;
  readonly originator: string;
  readonly protocolId: number;
  readonly dataCoding: number;
  readonly alphabet: SmsAlphabet;
  /** Service centre time stamp, ms since the epoch (UTC) */
  readonly timestamp: number;
  readonly header?: UserDataHeader;
  readonly userData: Uint8Array;
  readonly text?: string;
}

export class SmsPduError extends CodecError {
  override readonly name: string = 'SmsPduError';
  constructor(detail: string, path = '') {
    super('BAD_SMS_PDU', detail, path);
  }
}

/** Data coding 0x04: general group, no class, 8-bit data */
export const DCS_BINARY = 0x04;
export const DCS_GSM7 = 0x00;
/** The longest TPDU AT+CMGS takes: 140 octets of user data plus headers */
export const MAX_TPDU_OCTETS = 176;

// GSM 03.38 default alphabet (basic table); the escape 0x1b is read as a space
const GSM7 =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';

function septetsToText(septets: readonly number[]): string {
  return septets.map((s) => (s === 0x1b ? ' ' : GSM7[s] ?? '?')).join('');
}

function textToSeptets(text: string): number[] {
  return [...text].map((ch, i) => {
    const s = GSM7.indexOf(ch);
    if (s < 0 || s === 0x1b) throw new SmsPduError(`character ${JSON.stringify(ch)} is not in the GSM 7-bit basic table`, `text[${i}]`);
    return s;
  });
}

/** Packs septets LSB first, starting after `fillBits` padding bits */
export function packSeptets(septets: readonly number[], fillBits = 0): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = fillBits;
  for (const s of septets) {
    acc |= (s & 0x7f) << bits;
    bits += 7;
    while (bits >= 8) {
      out.push(acc & 0xff);
      acc >>>= 8;
      bits -= 8;
    }
  }
  if (bits > 0) out.push(acc & 0xff);
  return Uint8Array.from(out);
}

export function unpackSeptets(octets: Uint8Array, count: number, fillBits = 0): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const bit = fillBits + i * 7;
    const byte = bit >> 3;
    const shift = bit & 7;
    const lo = octets[byte] ?? 0;
    const hi = octets[byte + 1] ?? 0;
    out.push(((lo >> shift) | (hi << (8 - shift))) & 0x7f);
  }
  return out;
}

function alphabetOf(dcs: number): SmsAlphabet {
  const group = dcs >> 4;
  if (group <= 0x3) {
    if (dcs & 0x20) throw new SmsPduError(`data coding 0x${dcs.toString(16)}: compressed text is not supported`, 'dataCoding');
    const a = (dcs >> 2) & 0x3;
    if (a === 0) return 'gsm7';
    if (a === 1) return 'binary';
    if (a === 2) return 'ucs2';
    throw new SmsPduError(`data coding 0x${dcs.toString(16)}: reserved alphabet`, 'dataCoding');
  }
  if (group === 0xf) return dcs & 0x04 ? 'binary' : 'gsm7';
  if (group === 0xc || group === 0xd) return 'gsm7';
  if (group === 0xe) return 'ucs2';
  throw new SmsPduError(`data coding 0x${dcs.toString(16)} not supported`, 'dataCoding');
}

class PduReader {
  private at = 0;
  constructor(readonly bytes: Uint8Array) {}
  take(n: number, what: string): Uint8Array {
    if (this.at + n > this.bytes.length) throw new SmsPduError(`truncated at ${what}: needs ${n} octets at ${this.at}, the PDU has ${this.bytes.length}`, what);
    const out = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8(what: string): number {
    return this.take(1, what)[0]!;
  }
  rest(): Uint8Array {
    const out = this.bytes.slice(this.at);
    this.at = this.bytes.length;
    return out;
  }
  get remaining(): number {
    return this.bytes.length - this.at;
  }
}

function decodeBcd(octets: Uint8Array, digits: number): string {
  let out = '';
  for (let i = 0; i < digits; i++) {
    const octet = octets[i >> 1]!;
    const nibble = i & 1 ? octet >> 4 : octet & 0x0f;
    out += '0123456789*#abc'[nibble] ?? '';
    if (nibble === 0xf) throw new SmsPduError('filler nibble inside an address', 'address');
  }
  return out;
}

function encodeBcd(digits: string): Uint8Array {
  const out = new Uint8Array(Math.ceil(digits.length / 2));
  for (let i = 0; i < digits.length; i++) {
    const v = '0123456789*#abc'.indexOf(digits[i]!);
    if (v < 0) throw new SmsPduError(`address digit ${JSON.stringify(digits[i])}`, 'address');
    out[i >> 1]! |= i & 1 ? v << 4 : v;
  }
  if (digits.length & 1) out[out.length - 1]! |= 0xf0;
  return out;
}

/** An address as '+8613800000000' (international), '10086' (unknown), or letters (alphanumeric) */
function readAddress(r: PduReader, what: string): string {
  const digits = r.u8(`${what}.length`);
  const toa = r.u8(`${what}.type`);
  if ((toa & 0x80) === 0) throw new SmsPduError(`type of address 0x${toa.toString(16)}: bit 8 must be set`, `${what}.type`);
  if (digits > 20) throw new SmsPduError(`address of ${digits} digits, at most 20`, `${what}.length`);
  const octets = r.take(Math.ceil(digits / 2), what);
  const ton = (toa >> 4) & 0x7;
  if (ton === 5) return septetsToText(unpackSeptets(octets, Math.floor((digits * 4) / 7)));
  const number = decodeBcd(octets, digits);
  return ton === 1 ? `+${number}` : number;
}

function writeAddress(address: string): Uint8Array {
  const international = address.startsWith('+');
  const digits = international ? address.slice(1) : address;
  if (digits.length === 0 || digits.length > 20 || !/^[0-9*#]+$/.test(digits)) throw new SmsPduError(`address ${JSON.stringify(address)}: 1 to 20 digits, optionally after +`, 'address');
  return concatBytes([Uint8Array.of(digits.length, international ? 0x91 : 0x81), encodeBcd(digits)]);
}

function readSmsc(r: PduReader): string {
  const length = r.u8('smsc.length');
  if (length === 0) return '';
  if (length > 11) throw new SmsPduError(`SMSC address of ${length} octets, at most 11`, 'smsc.length');
  const toa = r.u8('smsc.type');
  const octets = r.take(length - 1, 'smsc');
  let digits = (length - 1) * 2;
  if (octets.length && octets[octets.length - 1]! >> 4 === 0xf) digits -= 1;
  const number = decodeBcd(octets, digits);
  return ((toa >> 4) & 0x7) === 1 ? `+${number}` : number;
}

function writeSmsc(smsc: string): Uint8Array {
  if (!smsc) return Uint8Array.of(0);
  const address = writeAddress(smsc);
  return concatBytes([Uint8Array.of(address.length - 1), address.subarray(1)]);
}

function decodeTimestamp(octets: Uint8Array): number {
  const swap = (o: number, what: string) => {
    const lo = o & 0x0f;
    const hi = o >> 4;
    if (lo > 9 || hi > 9) throw new SmsPduError(`time stamp digit not decimal (0x${o.toString(16)})`, `timestamp.${what}`);
    return lo * 10 + hi;
  };
  const [yy, mo, dd, hh, mi, ss] = ['year', 'month', 'day', 'hour', 'minute', 'second'].map((w, i) => swap(octets[i]!, w)) as [number, number, number, number, number, number];
  const tzOctet = octets[6]!;
  const quarters = (tzOctet & 0x07) * 10 + (tzOctet >> 4);
  const sign = tzOctet & 0x08 ? -1 : 1;
  if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59) throw new SmsPduError('time stamp out of range', 'timestamp');
  return Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss) - sign * quarters * 15 * 60_000;
}

/** The service centre time stamp in UTC (time zone 0) */
export function encodeTimestamp(ms: number): Uint8Array {
  const d = new Date(ms);
  const parts = [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), 0];
  return Uint8Array.from(parts.map((v) => ((v % 10) << 4) | Math.floor(v / 10)));
}

function parseHeader(octets: Uint8Array): UserDataHeader {
  const elements: { iei: number; data: Uint8Array }[] = [];
  let at = 0;
  let concatenation: Concatenation | undefined;
  while (at < octets.length) {
    if (at + 2 > octets.length) throw new SmsPduError('user data header element truncated', 'header');
    const iei = octets[at]!;
    const len = octets[at + 1]!;
    if (at + 2 + len > octets.length) throw new SmsPduError(`user data header element 0x${iei.toString(16)} truncated`, 'header');
    const data = octets.slice(at + 2, at + 2 + len);
    if (iei === 0x00 && len === 3) concatenation = { reference: data[0]!, total: data[1]!, sequence: data[2]! };
    if (iei === 0x08 && len === 4) concatenation = { reference: (data[0]! << 8) | data[1]!, total: data[2]!, sequence: data[3]! };
    elements.push({ iei, data });
    at += 2 + len;
  }
  return concatenation ? { elements, concatenation } : { elements };
}

function readUserData(r: PduReader, alphabet: SmsAlphabet, hasHeader: boolean): { header?: UserDataHeader; userData: Uint8Array; text?: string } {
  const udl = r.u8('userDataLength');
  const octetCount = alphabet === 'gsm7' ? Math.ceil((udl * 7) / 8) : udl;
  if (udl > (alphabet === 'gsm7' ? 160 : 140)) throw new SmsPduError(`user data length ${udl} above one SMS`, 'userDataLength');
  if (r.remaining < octetCount) throw new SmsPduError(`user data truncated: length says ${octetCount} octets, ${r.remaining} there`, 'userData');
  if (r.remaining > octetCount) throw new SmsPduError(`${r.remaining - octetCount} octets after the user data`, 'userData');
  const ud = r.rest();
  let header: UserDataHeader | undefined;
  let headerOctets = 0;
  if (hasHeader) {
    const udhl = ud[0];
    if (udhl === undefined || 1 + udhl > ud.length) throw new SmsPduError('user data header longer than the user data', 'header');
    header = parseHeader(ud.subarray(1, 1 + udhl));
    headerOctets = 1 + udhl;
  }
  if (alphabet === 'binary') return { ...(header ? { header } : {}), userData: ud.slice(headerOctets) };
  if (alphabet === 'ucs2') {
    const body = ud.subarray(headerOctets);
    if (body.length % 2) throw new SmsPduError('UCS-2 text of an odd number of octets', 'userData');
    let text = '';
    for (let i = 0; i < body.length; i += 2) text += String.fromCharCode((body[i]! << 8) | body[i + 1]!);
    return { ...(header ? { header } : {}), userData: body.slice(), text };
  }
  const headerSeptets = Math.ceil((headerOctets * 8) / 7);
  const fill = headerSeptets * 7 - headerOctets * 8;
  const septets = unpackSeptets(ud.subarray(headerOctets), udl - headerSeptets, fill);
  return { ...(header ? { header } : {}), userData: Uint8Array.from(septets), text: septetsToText(septets) };
}

function pduBytes(hex: string): Uint8Array {
  const clean = hex.trim();
  if (clean.length === 0) throw new SmsPduError('empty PDU');
  if (clean.length % 2 || !/^[0-9A-Fa-f]+$/.test(clean)) throw new SmsPduError('PDU is not an even number of hex digits');
  return fromHex(clean);
}

function readValidity(r: PduReader, vpf: number): number | undefined {
  if (vpf === 0) return undefined;
  if (vpf !== 2) {
    r.take(7, 'validity');
    return undefined;
  }
  const vp = r.u8('validity');
  if (vp <= 143) return (vp + 1) * 5;
  if (vp <= 167) return 12 * 60 + (vp - 143) * 30;
  if (vp <= 196) return (vp - 166) * 24 * 60;
  return (vp - 192) * 7 * 24 * 60;
}

function encodeValidity(minutes: number): number {
  if (minutes <= 720) return Math.max(0, Math.ceil(minutes / 5) - 1);
  if (minutes <= 1440) return 143 + Math.ceil((minutes - 720) / 30);
  if (minutes <= 30 * 1440) return 166 + Math.ceil(minutes / 1440);
  return Math.min(255, 192 + Math.ceil(minutes / (7 * 1440)));
}

/** A PDU as AT+CMGS takes it (hex, SMSC first) */
export function parseSubmitPdu(hex: string): SmsSubmit {
  const r = new PduReader(pduBytes(hex));
  const smsc = readSmsc(r);
  const first = r.u8('firstOctet');
  if ((first & 0x03) !== 0x01) throw new SmsPduError(`message type ${first & 0x03}, expected 1 (SMS-SUBMIT)`, 'firstOctet');
  const messageReference = r.u8('messageReference');
  const destination = readAddress(r, 'destination');
  const protocolId = r.u8('protocolId');
  const dataCoding = r.u8('dataCoding');
  const alphabet = alphabetOf(dataCoding);
  const validityMinutes = readValidity(r, (first >> 3) & 0x03);
  const ud = readUserData(r, alphabet, (first & 0x40) !== 0);
  return { kind: 'submit', smsc, messageReference, destination, protocolId, dataCoding, alphabet, ...(validityMinutes !== undefined ? { validityMinutes } : {}), statusReportRequested: (first & 0x20) !== 0, ...ud };
}

/** A PDU as AT+CMGR/+CMGL return it (hex, SMSC first) */
export function parseDeliverPdu(hex: string): SmsDeliver {
  const r = new PduReader(pduBytes(hex));
  const smsc = readSmsc(r);
  const first = r.u8('firstOctet');
  if ((first & 0x03) !== 0x00) throw new SmsPduError(`message type ${first & 0x03}, expected 0 (SMS-DELIVER)`, 'firstOctet');
  const originator = readAddress(r, 'originator');
  const protocolId = r.u8('protocolId');
  const dataCoding = r.u8('dataCoding');
  const alphabet = alphabetOf(dataCoding);
  const timestamp = decodeTimestamp(r.take(7, 'timestamp'));
  const ud = readUserData(r, alphabet, (first & 0x40) !== 0);
  return { kind: 'deliver', smsc, originator, protocolId, dataCoding, alphabet, timestamp, ...ud };
}

export interface SubmitInput {
  readonly destination: string;
  readonly userData: Uint8Array;
  readonly messageReference?: number;
  readonly validityMinutes?: number;
  readonly smsc?: string;
}

export interface EncodedPdu {
  /** Hex, SMSC address first, as AT+CMGS and AT+CMGR carry it */
  readonly hex: string;
  /** Octets after the SMSC address: the length AT+CMGS=<length> takes */
  readonly tpduLength: number;
}

function userDataOctets(userData: Uint8Array): Uint8Array {
  if (userData.length > 140) throw new SmsPduError(`${userData.length} octets of user data, one SMS holds 140`, 'userData');
  return concatBytes([Uint8Array.of(userData.length), userData]);
}

/** An 8-bit binary SMS-SUBMIT (no status report, relative validity) */
export function encodeSubmitPdu(input: SubmitInput): EncodedPdu {
  const vp = input.validityMinutes ?? 3 * 24 * 60;
  const tpdu = concatBytes([Uint8Array.of(0x11, (input.messageReference ?? 0) & 0xff), writeAddress(input.destination), Uint8Array.of(0x00, DCS_BINARY, encodeValidity(vp)), userDataOctets(input.userData)]);
  return { hex: toHex(concatBytes([writeSmsc(input.smsc ?? ''), tpdu])).toUpperCase(), tpduLength: tpdu.length };
}

export interface DeliverInput {
  readonly originator: string;
  readonly timestamp: number;
  readonly smsc?: string;
  /** Binary user data (8-bit coding) */
  readonly userData?: Uint8Array;
  /** Or a GSM 7-bit text */
  readonly text?: string;
  /** A raw user data header (without its length octet): a concatenation part, say */
  readonly header?: Uint8Array;
  /** The data coding as given (default 0x04 for userData, 0x00 for text) */
  readonly dataCoding?: number;
}

export function encodeDeliverPdu(input: DeliverInput): EncodedPdu {
  const header = input.header ? concatBytes([Uint8Array.of(input.header.length), input.header]) : new Uint8Array(0);
  let ud: Uint8Array;
  let dcs: number;
  if (input.text !== undefined) {
    dcs = input.dataCoding ?? DCS_GSM7;
    const headerSeptets = Math.ceil((header.length * 8) / 7);
    const fill = headerSeptets * 7 - header.length * 8;
    const septets = textToSeptets(input.text);
    if (septets.length + headerSeptets > 160) throw new SmsPduError(`${septets.length} characters, one SMS holds 160`, 'text');
    ud = concatBytes([Uint8Array.of(septets.length + headerSeptets), header, packSeptets(septets, fill)]);
  } else {
    dcs = input.dataCoding ?? DCS_BINARY;
    ud = userDataOctets(concatBytes([header, input.userData ?? new Uint8Array(0)]));
  }
  const first = 0x04 | (input.header ? 0x40 : 0);
  const tpdu = concatBytes([Uint8Array.of(first), writeAddress(input.originator), Uint8Array.of(0x00, dcs), encodeTimestamp(input.timestamp), ud]);
  return { hex: toHex(concatBytes([writeSmsc(input.smsc ?? ''), tpdu])).toUpperCase(), tpduLength: tpdu.length };
}

/** Octets of the SMSC part at the head of a PDU (for checking AT+CMGS=<length>) */
export function smscOctets(hex: string): number {
  const bytes = pduBytes(hex);
  return 1 + bytes[0]!;
}
