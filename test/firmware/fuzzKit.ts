/** Shared by the fuzz tests: a replayable PRNG, random and mutated byte strings, heap readings, the budgets */
import { concatBytes } from '../../src/codecs/bytes.js';

export const COUNT = Number(process.env.FUZZ_COUNT ?? 1_000_000);
/** One input taking this long counts as a hang (GC pauses on a busy CI box stay far below) */
export const SLOW_INPUT_MS = 1000;
/** The whole fuzz budget per decoder; a hang trips this too */
export const FUZZ_TIMEOUT_MS = 180_000;
export const HEAP_GROWTH_LIMIT = 64 * 1024 * 1024;

/** xorshift32: fast and replayable from its seed */
export function prng(seed: number): { next(): number; below(n: number): number } {
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

export type Random = ReturnType<typeof prng>;

export function randomBytes(r: Random, maxLength: number, startByte?: number): Uint8Array {
  const out = new Uint8Array(r.below(maxLength + 1));
  for (let i = 0; i < out.length; i++) out[i] = startByte !== undefined && r.below(8) === 0 ? startByte : r.below(256);
  return out;
}

/** 1 to 4 mutations: bit flip, byte set, insert, delete, truncate, duplicate a slice, splice two seeds */
export function mutate(r: Random, seed: Uint8Array, other: Uint8Array): Uint8Array {
  let bytes: Uint8Array = seed.slice();
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
      case 2:
        bytes = concatBytes([bytes.subarray(0, at), Uint8Array.of(r.below(256)), bytes.subarray(at)]);
        break;
      case 3:
        bytes = concatBytes([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        break;
      case 4:
        bytes = bytes.slice(0, at);
        break;
      case 5: {
        const end = Math.min(bytes.length, at + 1 + r.below(16));
        bytes = concatBytes([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
      case 6:
        bytes = concatBytes([bytes.subarray(0, at), other.subarray(other.length ? r.below(other.length) : 0)]);
        break;
    }
  }
  return bytes;
}

export function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}
