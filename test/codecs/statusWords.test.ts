import { describe, expect, it } from 'vitest';
import { bytesRemaining, errorForStatusWord, isOk, pinTriesLeft, SW, swHex } from '../../src/codecs/statusWords.js';
import type { ErrorName } from '../../src/errors.js';

/** The applet spec's status words, written as their literal values, with the error each maps to */
const MAPPING: readonly { sw: number; constant: number | undefined; error: ErrorName; tries?: number; remaining?: number }[] = [
  { sw: 0x63c2, constant: undefined, error: 'PIN_WRONG', tries: 2 },
  { sw: 0x63c1, constant: undefined, error: 'PIN_WRONG', tries: 1 },
  { sw: 0x63c0, constant: SW.PIN_TRIES_LEFT, error: 'PIN_WRONG', tries: 0 },
  { sw: 0x6983, constant: SW.AUTH_BLOCKED, error: 'PIN_BLOCKED' },
  { sw: 0x6982, constant: SW.SECURITY_NOT_SATISFIED, error: 'PIN_REQUIRED' },
  { sw: 0x6985, constant: SW.CONDITIONS_NOT_SATISFIED, error: 'CARD_STATE' },
  { sw: 0x6986, constant: SW.COMMAND_NOT_ALLOWED, error: 'CARD_ALREADY_WRITTEN' },
  { sw: 0x6a84, constant: SW.NOT_ENOUGH_MEMORY, error: 'QUOTA_EXHAUSTED' },
  { sw: 0x6a82, constant: SW.FILE_NOT_FOUND, error: 'APPLET_NOT_FOUND' },
  { sw: 0x6581, constant: SW.MEMORY_FAILURE, error: 'CARD_MEMORY' },
  { sw: 0x6a80, constant: SW.WRONG_DATA, error: 'MALFORMED_APDU' },
  { sw: 0x6700, constant: SW.WRONG_LENGTH, error: 'MALFORMED_APDU' },
  { sw: 0x6a86, constant: SW.WRONG_P1P2, error: 'MALFORMED_APDU' },
  { sw: 0x6a88, constant: SW.REFERENCE_NOT_FOUND, error: 'APDU_REJECTED' },
  { sw: 0x6d00, constant: SW.INS_NOT_SUPPORTED, error: 'APDU_REJECTED' },
  { sw: 0x6e00, constant: SW.CLA_NOT_SUPPORTED, error: 'APDU_REJECTED' },
  { sw: 0x6f00, constant: SW.UNKNOWN, error: 'APDU_REJECTED' },
  { sw: 0x6110, constant: undefined, error: 'APDU_REJECTED', remaining: 16 },
  { sw: 0x6100, constant: SW.BYTES_REMAINING, error: 'APDU_REJECTED', remaining: 256 },
];

describe('status words', () => {
  it.each(MAPPING)('$sw: constant, error, tries and remaining bytes', ({ sw, constant, error, tries, remaining }) => {
    if (constant !== undefined) expect(constant).toBe(sw);
    expect(errorForStatusWord(sw)).toBe(error);
    expect(pinTriesLeft(sw)).toBe(tries);
    expect(bytesRemaining(sw)).toBe(remaining);
    expect(isOk(sw)).toBe(false);
  });

  it('only 9000 is success', () => {
    expect(SW.OK).toBe(0x9000);
    expect(isOk(0x9000)).toBe(true);
    expect(isOk(0x9001)).toBe(false);
    expect(pinTriesLeft(0x9000)).toBeUndefined();
    expect(bytesRemaining(0x9000)).toBeUndefined();
  });

  it('prints status words as four upper-case hex digits', () => {
    expect(swHex(0x63c2)).toBe('63C2');
    expect(swHex(0x9000)).toBe('9000');
    expect(swHex(0x0061)).toBe('0061');
  });
});
