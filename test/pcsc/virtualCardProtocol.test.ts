import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { encodeVpcdMessage, VpcdMessageParser } from '../../src/sim/VirtualCardProtocol.js';

describe('vpcd message framing', () => {
  it('encodes a 2-byte big-endian length and the payload', () => {
    expect(toHex(encodeVpcdMessage(fromHex('9000')))).toBe('00029000');
    expect(toHex(encodeVpcdMessage(new Uint8Array(0)))).toBe('0000');
    expect(encodeVpcdMessage(new Uint8Array(0x1234)).subarray(0, 2)).toEqual(Uint8Array.of(0x12, 0x34));
    expect(() => encodeVpcdMessage(new Uint8Array(0x10000))).toThrow(RangeError);
  });

  it('parses control codes (1 byte) and APDUs (longer) from one chunk', () => {
    const parser = new VpcdMessageParser();
    const messages = parser.push(fromHex('000104' + '000101' + '000500a4040000'));
    expect(messages).toEqual([
      { type: 'control', code: 4 },
      { type: 'control', code: 1 },
      { type: 'apdu', apdu: fromHex('00a4040000') },
    ]);
    expect(parser.buffered).toBe(0);
  });

  it('keeps a partial message until the rest arrives, byte by byte', () => {
    const stream = fromHex('000104' + '000700a404000201ff' + '000100');
    const parser = new VpcdMessageParser();
    const seen = [];
    for (const byte of stream) seen.push(...parser.push(Uint8Array.of(byte)));
    expect(seen).toEqual([
      { type: 'control', code: 4 },
      { type: 'apdu', apdu: fromHex('00a404000201ff') },
      { type: 'control', code: 0 },
    ]);
  });

  it('round-trips random payloads split at random points', () => {
    for (let round = 0; round < 200; round++) {
      const payloads = Array.from({ length: 1 + (round % 5) }, (_, i) => Uint8Array.from({ length: 2 + ((round * 7 + i * 13) % 300) }, (_, j) => (j * 31 + round) & 0xff));
      const stream = Buffer.concat(payloads.map((p) => Buffer.from(encodeVpcdMessage(p))));
      const parser = new VpcdMessageParser();
      const out: Uint8Array[] = [];
      let offset = 0;
      while (offset < stream.length) {
        const size = 1 + ((offset * 17 + round) % 97);
        for (const m of parser.push(new Uint8Array(stream.subarray(offset, offset + size)))) out.push(m.type === 'apdu' ? m.apdu : Uint8Array.of(m.code));
        offset += size;
      }
      expect(out.map(toHex)).toEqual(payloads.map(toHex));
    }
  });
});
