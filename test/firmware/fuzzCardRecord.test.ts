/**
 * Fuzzes the card record decoder with at least 1,000,000 random and mutated
 * records (FUZZ_COUNT overrides): a RecordError is an answer, any other
 * exception a failure; no input takes long; the heap does not grow.
 */
import { describe, expect, it } from 'vitest';
import { RecordError, RecordKind, encodeRecordBody, encodeSignedRecord, parseCardRecord, type RecordFields } from '../../src/codecs/cardRecord.js';
import { COUNT, FUZZ_TIMEOUT_MS, HEAP_GROWTH_LIMIT, SLOW_INPUT_MS, heapUsed, mutate, prng, randomBytes } from './fuzzKit.js';

describe('fuzz: card records', () => {
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
  }, FUZZ_TIMEOUT_MS);
});
