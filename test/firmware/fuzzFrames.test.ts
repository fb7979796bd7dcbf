/**
 * Fuzzes the serial FrameParser with at least 1,000,000 random and mutated
 * byte strings (FUZZ_COUNT overrides): nothing throws, no input takes long,
 * every frame it emits is valid, every byte is accounted for, the heap does
 * not grow. Behind the CRC, the typed message decoder gets hostile payloads.
 */
import { describe, expect, it } from 'vitest';
import { MAX_FRAME, MAX_PAYLOAD, encodeFrame, parseFrame } from '../../src/codecs/firmware/frame.js';
import { encodeMessage, parseMessage } from '../../src/codecs/firmware/messages.js';
import { FirmwarePayloadError } from '../../src/codecs/firmware/payload.js';
import { FrameParser, type DiscardedBytes, type ParsedFrame } from '../../src/readers/serial/FrameParser.js';
import { COUNT, FUZZ_TIMEOUT_MS, HEAP_GROWTH_LIMIT, SLOW_INPUT_MS, heapUsed, mutate, prng, randomBytes } from './fuzzKit.js';
import { MESSAGE_FAMILIES, hexBytes, loadMessageVectors } from './vectorFiles.js';

/** Typed payload decoding sits behind the CRC, so fewer inputs reach it; 200k is plenty */
const MESSAGE_COUNT = 200_000;

describe('fuzz: serial frames', () => {
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
  }, FUZZ_TIMEOUT_MS);

  it(`parseMessage: ${MESSAGE_COUNT} checked frames with hostile payloads, only FirmwarePayloadError, and what parses re-encodes to the same bytes`, () => {
    const seeds: { command: number; payload: Uint8Array }[] = [];
    for (const family of MESSAGE_FAMILIES) {
      for (const v of loadMessageVectors(family)) seeds.push({ command: v.frame.command, payload: hexBytes(v.frame.payload) });
    }
    const commands = [...new Set(seeds.map((x) => x.command)), 0x00, 0x7e, 0xff];
    const r = prng(0x5e7);
    const outcome = { parsed: 0, payloadError: 0, roundTrips: 0 };
    for (let i = 0; i < MESSAGE_COUNT; i++) {
      const seed = seeds[r.below(seeds.length)]!;
      const other = seeds[r.below(seeds.length)]!;
      const command = r.below(4) === 0 ? commands[r.below(commands.length)]! : seed.command;
      let payload = r.below(5) === 0 ? randomBytes(r, 80) : mutate(r, seed.payload, other.payload);
      if (payload.length > MAX_PAYLOAD) payload = payload.subarray(0, MAX_PAYLOAD);
      const frame = { seq: r.below(256), command, payload };
      try {
        const message = parseMessage(frame);
        outcome.parsed++;
        // strict decoding means one meaning per byte string: encoding it back gives the same payload
        const again = encodeMessage(message);
        if (again.command === command && Buffer.from(again.payload).equals(Buffer.from(payload))) outcome.roundTrips++;
        else throw new Error(`input ${i}: ${Buffer.from(payload).toString('hex')} for 0x${command.toString(16)} re-encodes differently`);
      } catch (err) {
        if (!(err instanceof FirmwarePayloadError)) throw new Error(`input ${i}: threw ${String(err)}`, { cause: err });
        outcome.payloadError++;
      }
    }
    console.log(`fuzz parseMessage: ${MESSAGE_COUNT} frames, ${JSON.stringify(outcome)}`);
    expect(outcome.parsed + outcome.payloadError).toBe(MESSAGE_COUNT);
    expect(outcome.roundTrips).toBe(outcome.parsed);
    expect(outcome.parsed).toBeGreaterThan(0);
  }, FUZZ_TIMEOUT_MS);
});
