/**
 * Fuzzes the two decoders that take bytes from outside: the serial FrameParser
 * and the card record decoder. At least 1,000,000 random and mutated byte
 * strings each (FUZZ_COUNT overrides). Passes when nothing throws (a
 * RecordError from parseCardRecord is an answer, not a crash), no input takes
 * long (no hang), every frame the parser emits is a valid frame, every byte
 * is accounted for, and the heap does not grow.
 */
import { describe, expect, it } from 'vitest';
import { MAX_FRAME, encodeFrame, parseFrame } from '../../src/codecs/firmware/frame.js';
import { RecordError, RecordKind, encodeRecordBody, encodeSignedRecord, parseCardRecord, type RecordFields } from '../../src/codecs/cardRecord.js';
import { FrameParser, type DiscardedBytes, type ParsedFrame } from '../../src/readers/serial/FrameParser.js';
import { MESSAGE_FAMILIES, hexBytes, loadMessageVectors } from './vectorFiles.js';

const COUNT = Number(process.env.FUZZ_COUNT ?? 1_000_000);
/** One input taking this long counts as a hang */
const SLOW_INPUT_MS = 250;
const HEAP_GROWTH_LIMIT = 64 * 1024 * 1024;

/** xorshift32: fast and replayable from its seed */
function prng(seed: number): { next(): number; below(n: number): number } {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { next, below: (n: number) => next() % n };
}

type Random = ReturnType<typeof prng>;

function randomBytes(r: Random, maxLength: number, startByte?: number): Uint8Array {
  const out = new Uint8Array(r.below(maxLength + 1));
  for (let i = 0; i < out.length; i++) out[i] = startByte !== undefined && r.below(8) === 0 ? startByte : r.below(256);
  return out;
}

/** 1 to 4 mutations: bit flip, byte set, insert, delete, truncate, duplicate a slice, splice two seeds */
function mutate(r: Random, seed: Uint8Array, other: Uint8Array): Uint8Array {
  let bytes = seed.slice();
  const rounds = 1 + r.below(4);
  for (let k = 0; k < rounds; k++) {
    const at = bytes.length ? r.below(bytes.length) : 0;
    switch (r.below(7)) {
      case 0:
        if (bytes.length) bytes[at]! ^= 1 << r.below(8);
        break;
      case 1:
        if (bytes.length) bytes[at] = [0x00, 0xff, 0xa5, 0x7f, 0x80, 0x81, 0x82][r.below(7)]!;
        break;
      case 2: {
        const out = new Uint8Array(bytes.length + 1);
        out.set(bytes.subarray(0, at));
        out[at] = r.below(256);
        out.set(bytes.subarray(at), at + 1);
        bytes = out;
        break;
      }
      case 3:
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
        break;
      case 4:
        bytes = bytes.slice(0, at);
        break;
      case 5: {
        const end = Math.min(bytes.length, at + 1 + r.below(16));
        bytes = Uint8Array.from([...bytes.subarray(0, end), ...bytes.subarray(at, end), ...bytes.subarray(end)]);
        break;
      }
      case 6: {
        const cut = other.length ? r.below(other.length) : 0;
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...other.subarray(cut)]);
        break;
      }
    }
  }
  return bytes;
}

function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

describe('fuzz', () => {
  it(`FrameParser: ${COUNT} random and mutated byte strings, no crash, no hang, bounded memory`, () => {
    const seeds: Uint8Array[] = [];
    for (const family of MESSAGE_FAMILIES) for (const v of loadMessageVectors(family)) seeds.push(hexBytes(v.hex));
    seeds.push(encodeFrame({ seq: 1, command: 0x21, payload: new Uint8Array(512).fill(0xa5) }));
    const r = prng(0x7a11);
    const parser = new FrameParser();
    let frames = 0;
    let invalidFrames = 0;
    let frameBytes = 0;
    let discardedBytes = 0;
    let maxPending = 0;
    parser.on('data', ({ raw }: ParsedFrame) => {
      frames++;
      frameBytes += raw.length;
      try {
        parseFrame(raw);
      } catch {
        invalidFrames++;
      }
    });
    parser.on('discarded', (d: DiscardedBytes) => (discardedBytes += d.bytes.length));
    let bytesIn = 0;
    let slowest = 0;
    const kinds = { random: 0, randomWithStarts: 0, mutated: 0, valid: 0 };
    const heapBefore = heapUsed();
    const started = performance.now();
    for (let i = 0; i < COUNT; i++) {
      let input: Uint8Array;
      const pick = r.below(10);
      if (pick < 3) {
        input = randomBytes(r, 64);
        kinds.random++;
      } else if (pick < 5) {
        input = randomBytes(r, 64, 0xa5);
        kinds.randomWithStarts++;
      } else if (pick < 9) {
        input = mutate(r, seeds[r.below(seeds.length)]!, seeds[r.below(seeds.length)]!);
        kinds.mutated++;
      } else {
        input = seeds[r.below(seeds.length)]!;
        kinds.valid++;
      }
      const t0 = performance.now();
      parser.write(input);
      // now and then the line goes quiet and a partial frame is dropped
      if (i % 8 === 7) parser.expire();
      const took = performance.now() - t0;
      if (took > slowest) slowest = took;
      bytesIn += input.length;
      if (parser.pending > maxPending) maxPending = parser.pending;
    }
    parser.expire();
    const seconds = (performance.now() - started) / 1000;
    const heapGrowth = heapUsed() - heapBefore;
    console.log(
      `fuzz FrameParser: ${COUNT} inputs (${JSON.stringify(kinds)}), ${(bytesIn / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s = ${Math.round(COUNT / seconds)} inputs/s; ` +
        `${frames} frames, ${discardedBytes} bytes discarded, slowest input ${slowest.toFixed(2)} ms, max pending ${maxPending}, heap growth ${(heapGrowth / 1e6).toFixed(1)} MB`,
    );
    expect(kinds.random + kinds.randomWithStarts + kinds.mutated + kinds.valid).toBe(COUNT);
    expect(COUNT).toBeGreaterThanOrEqual(1_000_000);
    expect(invalidFrames).toBe(0);
    expect(frames).toBeGreaterThanOrEqual(kinds.valid);
    // every byte is either in a frame or reported as discarded
    expect(frameBytes + discardedBytes).toBe(bytesIn);
    expect(parser.pending).toBe(0);
    expect(maxPending).toBeLessThanOrEqual(MAX_FRAME);
    expect(slowest).toBeLessThan(SLOW_INPUT_MS);
    expect(heapGrowth).toBeLessThan(HEAP_GROWTH_LIMIT);
  });

  it(`parseCardRecord: ${COUNT} random and mutated records, only RecordError, no hang, bounded memory`, () => {
    const cardId = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const key = new Uint8Array(32).fill(7);
    const signature = new Uint8Array(64).fill(9);
    const sign = (fields: RecordFields): Uint8Array => encodeSignedRecord(encodeRecordBody(fields), signature);
    const white = sign({ kind: RecordKind.WHITE, cardId, issuedAt: 1_760_000_000, publicKey: key, quota: 10, validUntil: 1_900_000_000 });
    const seeds = [
      sign({ kind: RecordKind.MOTHER, cardId, issuedAt: 1_760_000_000, publicKey: key, investor: 'Investor Ltd' }),
      white,
      sign({ kind: RecordKind.BATCH, cardId, issuedAt: 1_760_000_000, publicKey: key, clinicCode: 'CLINIC-7', batchNo: 3, count: 100, validFrom: 1_760_000_000, validUntil: 1_900_000_000, issuer: white }),
      sign({ kind: RecordKind.ONE_TIME, cardId, issuedAt: 1_760_000_000, batchId: cardId, serial: 42 }),
      sign({ kind: RecordKind.TERMINAL, cardId, issuedAt: 1_760_000_000, publicKey: key, terminalId: 'T-0001', clinicCode: '医院-7' }),
    ];
    for (const seed of seeds) expect(() => parseCardRecord(seed)).not.toThrow();
    const r = prng(0xca4d);
    const outcome = { parsed: 0, recordError: 0 };
    const kinds = { random: 0, mutated: 0 };
    let slowest = 0;
    const heapBefore = heapUsed();
    const started = performance.now();
    for (let i = 0; i < COUNT; i++) {
      let input: Uint8Array;
      if (r.below(4) === 0) {
        input = randomBytes(r, 300);
        kinds.random++;
      } else {
        input = mutate(r, seeds[r.below(seeds.length)]!, seeds[r.below(seeds.length)]!);
        kinds.mutated++;
      }
      const t0 = performance.now();
      try {
        parseCardRecord(input);
        outcome.parsed++;
      } catch (err) {
        if (!(err instanceof RecordError)) throw new Error(`input ${i} (${Buffer.from(input).toString('hex')}) threw ${String(err)}`, { cause: err });
        outcome.recordError++;
      }
      const took = performance.now() - t0;
      if (took > slowest) slowest = took;
    }
    const seconds = (performance.now() - started) / 1000;
    const heapGrowth = heapUsed() - heapBefore;
    console.log(
      `fuzz parseCardRecord: ${COUNT} inputs (${JSON.stringify(kinds)}) in ${seconds.toFixed(1)} s = ${Math.round(COUNT / seconds)} inputs/s; ` +
        `${JSON.stringify(outcome)}, slowest ${slowest.toFixed(2)} ms, heap growth ${(heapGrowth / 1e6).toFixed(1)} MB`,
    );
    expect(outcome.parsed + outcome.recordError).toBe(COUNT);
    expect(COUNT).toBeGreaterThanOrEqual(1_000_000);
    // mutations that keep a record valid happen (a flipped signature bit): the fuzzer reaches the success path
    expect(outcome.parsed).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(SLOW_INPUT_MS);
    expect(heapGrowth).toBeLessThan(HEAP_GROWTH_LIMIT);
  });
});
