/**
 * One error scheme: every codec throws a CodecError, a TallyError with a
 * stable code of its format and the path of the bad field, so callers map a
 * fault to its code and field without reading the message.
 */
import { describe, expect, it } from 'vitest';
import { CodecError, ErrorCodes, TallyError, codeOf, isCodecError } from '../../src/errors.js';
import { parseCommandApdu } from '../../src/codecs/apdu.js';
import { parseFci } from '../../src/codecs/applet.js';
import { decodeTlvs } from '../../src/codecs/tlv.js';
import { parseFrame } from '../../src/codecs/firmware/frame.js';
import { parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { parseJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { PayloadError } from '../../src/codecs/mqtt/PayloadError.js';
import { parseDeliverPdu } from '../../src/codecs/sms/pdu.js';
import { parseSmsCommand, parseSmsReport } from '../../src/codecs/sms/smsReport.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

describe('codec errors', () => {
  it.each([
    ['TLV', () => decodeTlvs(Uint8Array.of(0x40, 0x05, 0x01)), 'BAD_TLV'],
    ['APDU', () => parseCommandApdu(Uint8Array.of(0x00)), 'MALFORMED_APDU'],
    ['FCI', () => parseFci(Uint8Array.of(0x01)), 'BAD_FCI'],
    ['frame', () => parseFrame(Uint8Array.of(0x00, 0x01)), 'BAD_FRAME'],
    ['ledger entry', () => parseLedgerEntry(Uint8Array.of(0x30, 0x01)), 'BAD_LEDGER_ENTRY'],
    ['SMS PDU', () => parseDeliverPdu('0004'), 'BAD_SMS_PDU'],
    ['SMS report', () => parseSmsReport(new Uint8Array(80)), 'BAD_SMS_REPORT'],
    ['SMS command', () => parseSmsCommand(new Uint8Array(80)), 'BAD_SMS_COMMAND'],
  ] as const)('%s: a CodecError with its code', (_what, fn, code) => {
    const err = thrown(fn);
    expect(err).toBeInstanceOf(CodecError);
    expect(err).toBeInstanceOf(TallyError);
    expect(codeOf(err)).toBe(code);
    expect(isCodecError(err, code)).toBe(true);
    expect(ErrorCodes[code].zh.length).toBeGreaterThan(0);
  });

  it('an MQTT payload names the bad field in path, not only in the message', () => {
    const err = thrown(() => parseJsonPayload('time', new TextEncoder().encode(JSON.stringify({ transaction: 1, serverTime: 'soon' }))));
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).reason).toBe('schema');
    expect((err as PayloadError).path).toBe('serverTime');
    expect(codeOf(err)).toBe('BAD_MESSAGE');
  });
});
