/**
 * The relay board's chain-head witness (serial-protocol.md §6.5) against
 * vectors/head.json: the acceptance rule, one NVM slot both ways, the head a
 * two-slot image holds (torn and corrupt slots included) and where a write goes.
 * The C codec runs the same file (cCodec.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { encodeHeadRecord, headAccepted, parseHeadRecord, readHeadImage, writeHeadImage, type ChainHead } from '../../src/codecs/firmware/head.js';
import { hexBytes, loadHeadVectors } from './vectorFiles.js';

const vectors = loadHeadVectors();
const head = (h: { seq: number; hash: string }): ChainHead => ({ seq: h.seq, hash: hexBytes(h.hash) });
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('chain-head witness vectors', () => {
  it('has refusals and acceptances', () => {
    expect(vectors.accept.filter((v) => v.accepted).length).toBeGreaterThan(0);
    expect(vectors.accept.filter((v) => !v.accepted).length).toBeGreaterThan(0);
  });

  it.each(vectors.accept.map((v) => [v.description, v] as const))('rule: %s', (_d, v) => {
    expect(headAccepted(head(v.held), head(v.proposed))).toBe(v.accepted);
  });

  it.each(vectors.records.map((v) => [v.description, v] as const))('NVM record: %s', (_d, v) => {
    expect(hex(encodeHeadRecord({ generation: v.generation, head: head(v.head) }))).toBe(v.hex);
    expect(parseHeadRecord(hexBytes(v.hex))).toEqual({ generation: v.generation, head: head(v.head) });
    const corrupt = hexBytes(v.hex);
    corrupt[19]! ^= 1;
    expect(parseHeadRecord(corrupt)).toBeUndefined();
  });

  it.each(vectors.images.map((v) => [v.description, v] as const))('NVM image: %s', (_d, v) => {
    expect(readHeadImage(hexBytes(v.hex))).toEqual({ generation: v.generation, head: head(v.head) });
  });

  it.each(vectors.writes.map((v) => [v.description, v] as const))('NVM write: %s', (_d, v) => {
    const { image, slot } = writeHeadImage(hexBytes(v.before), head(v.head));
    expect(hex(image)).toBe(v.after);
    expect(slot).toBe(v.slot);
  });
});
