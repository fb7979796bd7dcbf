import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { decodeTlvs, encodeLength, encodeTlv, encodeTlvs, TlvError, type TlvItem } from '../../src/codecs/tlv.js';

const bytes = (hex: string): Uint8Array => fromHex(hex);
const repeat = (byteHex: string, n: number): string => byteHex.repeat(n);

/** One table: each row is the items and the exact bytes they encode to (written by hand from the spec) */
const FIXTURES: readonly { name: string; items: TlvItem[]; hex: string }[] = [
  { name: 'one byte value', items: [{ tag: 0x01, value: bytes('01') }], hex: '01 01 01' },
  { name: 'empty value', items: [{ tag: 0x02, value: bytes('') }], hex: '02 00' },
  { name: 'two items in order', items: [{ tag: 0x03, value: bytes('aabb') }, { tag: 0x7f, value: bytes('cc') }], hex: '03 02 aabb 7f 01 cc' },
  { name: 'longest short length (127)', items: [{ tag: 0x10, value: bytes(repeat('aa', 127)) }], hex: `10 7f ${repeat('aa', 127)}` },
  { name: 'shortest 0x81 length (128)', items: [{ tag: 0x10, value: bytes(repeat('bb', 128)) }], hex: `10 81 80 ${repeat('bb', 128)}` },
  { name: 'longest 0x81 length (255)', items: [{ tag: 0x25, value: bytes(repeat('cc', 255)) }], hex: `25 81 ff ${repeat('cc', 255)}` },
  { name: 'shortest 0x82 length (256)', items: [{ tag: 0xff, value: bytes(repeat('dd', 256)) }], hex: `ff 82 0100 ${repeat('dd', 256)}` },
  { name: 'no items', items: [], hex: '' },
];

describe('TLV codec: fixtures both ways', () => {
  it.each(FIXTURES)('encodes $name', ({ items, hex }) => {
    expect(toHex(encodeTlvs(items))).toBe(hex.replace(/\s/g, ''));
  });

  it.each(FIXTURES)('decodes $name', ({ items, hex }) => {
    const decoded = decodeTlvs(bytes(hex));
    expect(decoded.map((i) => ({ tag: i.tag, value: toHex(i.value) }))).toEqual(items.map((i) => ({ tag: i.tag, value: toHex(i.value) })));
  });

  it('encodes the length forms at their boundaries', () => {
    expect(toHex(encodeLength(0))).toBe('00');
    expect(toHex(encodeLength(0x7f))).toBe('7f');
    expect(toHex(encodeLength(0x80))).toBe('8180');
    expect(toHex(encodeLength(0xff))).toBe('81ff');
    expect(toHex(encodeLength(0x100))).toBe('820100');
    expect(toHex(encodeLength(0xffff))).toBe('82ffff');
  });
});

describe('TLV codec: strictness', () => {
  const MALFORMED: readonly { name: string; hex: string; message: RegExp }[] = [
    { name: 'tag without a length', hex: '01', message: /truncated length/ },
    { name: 'value shorter than its length', hex: '01 03 aabb', message: /truncated/ },
    { name: 'trailing byte after a complete item', hex: '01 01 aa 05', message: /truncated length/ },
    { name: 'trailing partial item', hex: '01 01 aa 05 02 bb', message: /truncated/ },
    { name: '0x81 form without its length byte', hex: '01 81', message: /truncated long length/ },
    { name: '0x82 form with one length byte', hex: '01 82 01', message: /truncated long length/ },
    { name: 'non-minimal 0x81 length (< 128)', hex: `01 81 7f ${repeat('aa', 127)}`, message: /non-minimal/ },
    { name: 'non-minimal 0x82 length (< 256)', hex: `01 82 00ff ${repeat('aa', 255)}`, message: /non-minimal/ },
    { name: 'indefinite length form 0x80', hex: '01 80 00 00', message: /unsupported length form/ },
    { name: 'three-byte length form 0x83', hex: '01 83 000001 aa', message: /unsupported length form/ },
  ];

  it.each(MALFORMED)('refuses $name', ({ hex, message }) => {
    expect(() => decodeTlvs(bytes(hex))).toThrow(TlvError);
    expect(() => decodeTlvs(bytes(hex))).toThrow(message);
  });

  it('refuses to encode tags and lengths it cannot represent', () => {
    expect(() => encodeTlv(0x100, bytes('00'))).toThrow(TlvError);
    expect(() => encodeTlv(-1, bytes('00'))).toThrow(TlvError);
    expect(() => encodeLength(0x10000)).toThrow(TlvError);
    expect(() => encodeLength(1.5)).toThrow(TlvError);
  });
});
