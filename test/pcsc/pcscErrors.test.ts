import { describe, expect, it } from 'vitest';
import { errorNameForPcscCode, pcscCodeOf, PcscCode, toTallyError } from '../../src/readers/pcsc/pcscErrors.js';
import { TallyError } from '../../src/errors.js';

describe('PC/SC error mapping', () => {
  it('reads the return code out of a pcsclite error message', () => {
    expect(pcscCodeOf(new Error('SCardTransmit error: Card was removed.(0x80100069)'))).toBe(PcscCode.REMOVED_CARD);
    expect(pcscCodeOf(new Error('Card Reader not connected'))).toBeUndefined();
  });

  it.each([
    [PcscCode.REMOVED_CARD, 'CARD_REMOVED'],
    [PcscCode.NO_SMARTCARD, 'CARD_REMOVED'],
    [PcscCode.RESET_CARD, 'CARD_REMOVED'],
    [PcscCode.UNPOWERED_CARD, 'CARD_REMOVED'],
    [PcscCode.NO_SERVICE, 'READER_UNAVAILABLE'],
    [PcscCode.SERVICE_STOPPED, 'READER_UNAVAILABLE'],
    [PcscCode.UNKNOWN_READER, 'READER_UNAVAILABLE'],
    [PcscCode.READER_UNAVAILABLE, 'READER_UNAVAILABLE'],
    [PcscCode.COMM_ERROR, 'READER_UNAVAILABLE'],
    [PcscCode.TIMEOUT, 'READER_TIMEOUT'],
    [PcscCode.SHARING_VIOLATION, 'READER_IN_USE'],
    [PcscCode.UNRESPONSIVE_CARD, 'UNKNOWN_CARD'],
    [PcscCode.UNSUPPORTED_CARD, 'UNKNOWN_CARD'],
    [0x80100001, 'READER_UNAVAILABLE'],
  ] as const)('0x%s maps to %s', (code, name) => {
    expect(errorNameForPcscCode(code)).toBe(name);
  });

  it('wraps with the operation, the hex code and the cause, and leaves a TallyError alone', () => {
    const cause = new Error('SCardConnect error: Sharing violation.(0x8010000b)');
    const err = toTallyError(cause, 'SCardConnect', { reader: 'R' });
    expect(err.code).toBe('READER_IN_USE');
    expect(err.context).toMatchObject({ reader: 'R', operation: 'SCardConnect', pcscCode: '0x8010000b' });
    expect(err.cause).toBe(cause);
    const already = new TallyError('CARD_REMOVED');
    expect(toTallyError(already, 'x')).toBe(already);
  });
});
