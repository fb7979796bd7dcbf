import { describe, expect, it } from 'vitest';
import {
  ApduError,
  encodeCommandApdu,
  encodeResponseApdu,
  parseCommandApdu,
  parseResponseApdu,
  type CommandApdu,
  type ResponseApdu,
} from '../../src/codecs/apdu.js';
import { fromHex, toHex } from '../../src/codecs/bytes.js';

const bytes = (hex: string): Uint8Array => fromHex(hex);
const clean = (hex: string): string => hex.replace(/\s/g, '');

/** Plain comparable shape: Uint8Array fields as hex */
function commandShape(c: CommandApdu): Record<string, unknown> {
  return { cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data: c.data ? toHex(c.data) : undefined, le: c.le };
}

// ISO 7816-3 12.1.3: case 1 header only, case 2 header+Le, case 3 header+Lc+data, case 4 header+Lc+data+Le
const COMMANDS: readonly { name: string; apdu: CommandApdu; hex: string }[] = [
  { name: 'case 1 (header only)', apdu: { cla: 0x80, ins: 0x44, p1: 0x00, p2: 0x00 }, hex: '80 44 00 00' },
  { name: 'case 2, Le 16', apdu: { cla: 0x00, ins: 0xc0, p1: 0x00, p2: 0x00, le: 16 }, hex: '00 c0 00 00 10' },
  { name: 'case 2, Le 256 coded as 00', apdu: { cla: 0x00, ins: 0xc0, p1: 0x00, p2: 0x00, le: 256 }, hex: '00 c0 00 00 00' },
  { name: 'case 3, PIN 1234', apdu: { cla: 0x00, ins: 0x20, p1: 0x00, p2: 0x81, data: bytes('31323334') }, hex: '00 20 00 81 04 31323334' },
  {
    name: 'case 4, SELECT by AID with Le 256',
    apdu: { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: bytes('f054414c4c5953544b01'), le: 256 },
    hex: '00 a4 04 00 0a f054414c4c5953544b01 00',
  },
  { name: 'case 4, Le 1', apdu: { cla: 0x00, ins: 0x2a, p1: 0x9e, p2: 0x9a, data: bytes('ab'), le: 1 }, hex: '00 2a 9e 9a 01 ab 01' },
  { name: 'case 3, longest short data (255)', apdu: { cla: 0x90, ins: 0xda, p1: 0, p2: 3, data: bytes('ee'.repeat(255)) }, hex: `90 da 00 03 ff ${'ee'.repeat(255)}` },
];

const RESPONSES: readonly { name: string; response: ResponseApdu; hex: string }[] = [
  { name: 'data and 9000', response: { data: bytes('abcd'), sw: 0x9000 }, hex: 'abcd 9000' },
  { name: 'status word only', response: { data: bytes(''), sw: 0x6a82 }, hex: '6a82' },
  { name: 'tries left 63C2', response: { data: bytes(''), sw: 0x63c2 }, hex: '63c2' },
  { name: 'full 256 bytes with 6110', response: { data: bytes('5a'.repeat(256)), sw: 0x6110 }, hex: `${'5a'.repeat(256)} 6110` },
];

describe('command APDU: fixtures both ways', () => {
  it.each(COMMANDS)('encodes $name', ({ apdu, hex }) => {
    expect(toHex(encodeCommandApdu(apdu))).toBe(clean(hex));
  });
  it.each(COMMANDS)('parses $name', ({ apdu, hex }) => {
    expect(commandShape(parseCommandApdu(bytes(hex)))).toEqual(commandShape(apdu));
  });
  it('encodes empty data as no Lc at all (case 1)', () => {
    expect(toHex(encodeCommandApdu({ cla: 0x80, ins: 0xda, p1: 0, p2: 1, data: bytes('') }))).toBe('80da0001');
  });
});

describe('command APDU: strictness', () => {
  it.each([
    { name: 'shorter than the header', hex: '00 a4 04' },
    { name: 'empty', hex: '' },
    { name: 'Lc says more than follows', hex: '00 20 00 81 04 3132' },
    { name: 'more bytes than Lc + Le', hex: '00 20 00 81 02 3132 00 00' },
    { name: 'extended length (Lc byte 00 followed by more)', hex: '00 20 00 81 00 0004 31323334' },
  ])('refuses $name', ({ hex }) => {
    expect(() => parseCommandApdu(bytes(hex))).toThrow(ApduError);
  });

  it.each([
    { name: 'CLA above a byte', apdu: { cla: 0x100, ins: 0, p1: 0, p2: 0 } },
    { name: 'negative INS', apdu: { cla: 0, ins: -1, p1: 0, p2: 0 } },
    { name: 'data longer than 255', apdu: { cla: 0, ins: 0xda, p1: 0, p2: 0, data: new Uint8Array(256) } },
    { name: 'Le 0', apdu: { cla: 0, ins: 0xc0, p1: 0, p2: 0, le: 0 } },
    { name: 'Le 257', apdu: { cla: 0, ins: 0xc0, p1: 0, p2: 0, le: 257 } },
  ])('refuses to encode $name', ({ apdu }) => {
    expect(() => encodeCommandApdu(apdu)).toThrow(ApduError);
  });
});

describe('response APDU: fixtures both ways', () => {
  it.each(RESPONSES)('encodes $name', ({ response, hex }) => {
    expect(toHex(encodeResponseApdu(response))).toBe(clean(hex));
  });
  it.each(RESPONSES)('parses $name', ({ response, hex }) => {
    const parsed = parseResponseApdu(bytes(hex));
    expect({ data: toHex(parsed.data), sw: parsed.sw }).toEqual({ data: toHex(response.data), sw: response.sw });
  });
});

describe('response APDU: strictness', () => {
  it('refuses a response shorter than a status word', () => {
    expect(() => parseResponseApdu(bytes('90'))).toThrow(ApduError);
    expect(() => parseResponseApdu(bytes(''))).toThrow(ApduError);
  });
  it('refuses a response longer than 256 data bytes + SW', () => {
    expect(() => parseResponseApdu(bytes(`${'00'.repeat(257)}9000`))).toThrow(ApduError);
    expect(() => encodeResponseApdu({ data: new Uint8Array(257), sw: 0x9000 })).toThrow(ApduError);
  });
});
