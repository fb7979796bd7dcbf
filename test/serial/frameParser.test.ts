/** The daemon's FrameParser stream against corrupted, truncated and oversized frames; counts what it tried */
import { describe, expect, it } from 'vitest';
import { MAX_PAYLOAD, encodeFrame } from '../../src/codecs/firmware/frame.js';
import { FrameParser, type DiscardedBytes, type ParsedFrame } from '../../src/readers/serial/FrameParser.js';

function collect(parser: FrameParser) {
  const frames: ParsedFrame[] = [];
  const discarded: DiscardedBytes[] = [];
  parser.on('data', (f: ParsedFrame) => frames.push(f));
  parser.on('discarded', (d: DiscardedBytes) => discarded.push(d));
  return { frames, discarded };
}

/** A deterministic PRNG so a failure can be replayed */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const good = (seq: number, size = 8): Uint8Array => encodeFrame({ seq, command: 0x21, payload: Uint8Array.from({ length: size }, (_, i) => (i * 7 + seq) & 0xff) });

describe('FrameParser', () => {
  it('finds every good frame after each kind of damage (1000 damaged frames, counted)', () => {
    const random = prng(1);
    const parser = new FrameParser();
    const { frames, discarded } = collect(parser);
    const tried = { corrupted: 0, truncated: 0, oversized: 0, garbage: 0 };
    for (let i = 0; i < 1000; i++) {
      const bad = good(i & 0xff, 1 + Math.floor(random() * 40));
      const kind = i % 4;
      let damaged: Uint8Array;
      if (kind === 0) {
        damaged = bad.slice();
        // flip a bit anywhere after the start byte: header, payload or CRC
        damaged[1 + Math.floor(random() * (damaged.length - 1))]! ^= 1 << Math.floor(random() * 8);
        tried.corrupted++;
      } else if (kind === 1) {
        damaged = bad.subarray(0, 1 + Math.floor(random() * (bad.length - 1)));
        tried.truncated++;
      } else if (kind === 2) {
        damaged = Uint8Array.of(0xa5, 0x02 + Math.floor(random() * 0xfd), Math.floor(random() * 256), 0x01, 0x21, 0, 0, 0);
        tried.oversized++;
      } else {
        damaged = Uint8Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 256));
        tried.garbage++;
      }
      parser.write(damaged);
      parser.write(good(i & 0xff));
      // what a truncated frame swallowed comes back when the line goes quiet
      parser.expire();
    }
    const goodHex = new Set(Array.from({ length: 256 }, (_, s) => Buffer.from(good(s)).toString('hex')));
    const recovered = frames.filter((f) => goodHex.has(Buffer.from(f.raw).toString('hex'))).length;
    expect(tried).toEqual({ corrupted: 250, truncated: 250, oversized: 250, garbage: 250 });
    expect(recovered).toBe(1000);
    // a bit flip in a frame is never accepted as a frame
    expect(frames.length).toBe(1000);
    expect(discarded.length).toBeGreaterThanOrEqual(750);
    expect(parser.pending).toBe(0);
  });

  it('reports an oversized length as bad-length at once, without waiting for its bytes', () => {
    const parser = new FrameParser();
    const { frames, discarded } = collect(parser);
    parser.write(Uint8Array.of(0xa5, (MAX_PAYLOAD + 1) >> 8, (MAX_PAYLOAD + 1) & 0xff));
    expect(discarded).toHaveLength(1);
    expect(discarded[0]!.reason).toBe('bad-length');
    parser.write(good(1));
    expect(frames).toHaveLength(1);
  });

  it('gives a bad-crc discard the header, so the receiver can NAK it', () => {
    const parser = new FrameParser();
    const { discarded } = collect(parser);
    const bad = good(9);
    bad[bad.length - 1]! ^= 0xff;
    parser.write(bad);
    expect(discarded[0]).toMatchObject({ reason: 'bad-crc', header: { seq: 9, command: 0x21 } });
  });

  it('decodes frames written one byte at a time', () => {
    const parser = new FrameParser();
    const { frames } = collect(parser);
    const bytes = Buffer.concat([good(1), good(2, MAX_PAYLOAD), good(3, 0)]);
    for (const b of bytes) parser.write(Uint8Array.of(b));
    expect(frames.map((f) => f.frame.seq)).toEqual([1, 2, 3]);
    expect(frames[1]!.frame.payload.length).toBe(MAX_PAYLOAD);
  });
});
