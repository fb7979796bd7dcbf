import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import {
  encodeRecordBody,
  encodeSignedRecord,
  parseCardRecord,
  RecordError,
  RecordKind,
  type RecordFields,
} from '../../src/codecs/cardRecord.js';

const bytes = (hex: string): Uint8Array => fromHex(hex);
const clean = (hex: string): string => hex.replace(/\s/g, '');
const ISSUED = '6955b900'; // 2026-01-01T00:00:00Z = 1767225600
const UNTIL = '6b36ec80'; // 2027-01-01T00:00:00Z = 1798761600
const SIG = '5a'.repeat(64);
const SIG_TLV = `7f 40 ${SIG}`;
const CLINIC = '434c494e49432d41'; // "CLINIC-A"

// Tags: 01 version, 02 kind, 03 card id, 04 issued at, 10 public key, 11 investor, 13 quota, 14 valid from,
// 15 valid until, 20 clinic, 21 batch no, 22 count, 25 issuer record, 26 batch id, 27 serial, 30 terminal id, 7f signature
const MOTHER_BODY = `01 01 01  02 01 01  03 08 ${'c1'.repeat(8)}  04 04 ${ISSUED}  10 20 ${'a1'.repeat(32)}  11 04 41636d65`;
const WHITE_BODY = `01 01 01  02 01 02  03 08 ${'c2'.repeat(8)}  04 04 ${ISSUED}  10 20 ${'a2'.repeat(32)}  13 04 00000032  15 04 ${UNTIL}`;
const WHITE = `${WHITE_BODY} ${SIG_TLV}`; // 68 + 66 = 134 bytes (0x86)
const BATCH_BODY =
  `01 01 01  02 01 03  03 08 ${'c3'.repeat(8)}  04 04 ${ISSUED}  10 20 ${'a3'.repeat(32)}  20 08 ${CLINIC}` +
  `  21 04 00000007  22 04 00000014  14 04 ${ISSUED}  15 04 ${UNTIL}  25 81 86 ${WHITE}`;
const ONE_TIME_BODY = `01 01 01  02 01 04  03 08 ${'c4'.repeat(8)}  04 04 ${ISSUED}  26 08 ${'c3'.repeat(8)}  27 04 00000003`;
const TERMINAL_BODY = `01 01 01  02 01 10  03 08 ${'c5'.repeat(8)}  04 04 ${ISSUED}  10 20 ${'a5'.repeat(32)}  30 03 542d31  20 08 ${CLINIC}`;

const WHITE_FIELDS: RecordFields = {
  kind: RecordKind.WHITE, cardId: bytes('c2'.repeat(8)), issuedAt: 1767225600, publicKey: bytes('a2'.repeat(32)), quota: 50, validUntil: 1798761600,
};

const RECORDS: readonly { name: string; fields: RecordFields; body: string }[] = [
  {
    name: 'mother',
    fields: { kind: RecordKind.MOTHER, cardId: bytes('c1'.repeat(8)), issuedAt: 1767225600, publicKey: bytes('a1'.repeat(32)), investor: 'Acme' },
    body: MOTHER_BODY,
  },
  { name: 'white', fields: WHITE_FIELDS, body: WHITE_BODY },
  {
    name: 'batch',
    fields: {
      kind: RecordKind.BATCH, cardId: bytes('c3'.repeat(8)), issuedAt: 1767225600, publicKey: bytes('a3'.repeat(32)), clinicCode: 'CLINIC-A',
      batchNo: 7, count: 20, validFrom: 1767225600, validUntil: 1798761600, issuer: bytes(WHITE),
    },
    body: BATCH_BODY,
  },
  {
    name: 'one-time',
    fields: { kind: RecordKind.ONE_TIME, cardId: bytes('c4'.repeat(8)), issuedAt: 1767225600, batchId: bytes('c3'.repeat(8)), serial: 3 },
    body: ONE_TIME_BODY,
  },
  {
    name: 'terminal certificate',
    fields: { kind: RecordKind.TERMINAL, cardId: bytes('c5'.repeat(8)), issuedAt: 1767225600, publicKey: bytes('a5'.repeat(32)), terminalId: 'T-1', clinicCode: 'CLINIC-A' },
    body: TERMINAL_BODY,
  },
];

function shape(value: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]));
}

describe('card records: fixtures both ways, all five kinds', () => {
  it.each(RECORDS)('encodes the $name record', ({ fields, body }) => {
    expect(toHex(encodeRecordBody(fields))).toBe(clean(body));
    expect(toHex(encodeSignedRecord(encodeRecordBody(fields), bytes(SIG)))).toBe(clean(`${body} ${SIG_TLV}`));
  });

  it.each(RECORDS)('parses the $name record', ({ fields, body }) => {
    const raw = `${body} ${SIG_TLV}`;
    const parsed = parseCardRecord(bytes(raw));
    expect(shape(parsed)).toEqual(shape({ ...fields, body: bytes(body), signature: bytes(SIG), raw: bytes(raw) }));
  });

  it.each(RECORDS)('parses the $name record as views into its bytes, the same fields', ({ fields, body }) => {
    const raw = bytes(`${body} ${SIG_TLV}`);
    const parsed = parseCardRecord(raw, { views: true });
    expect(shape(parsed)).toEqual(shape(parseCardRecord(raw)));
    for (const value of Object.values(parsed)) if (value instanceof Uint8Array) expect(value.buffer).toBe(raw.buffer);
    const copied = parseCardRecord(raw);
    for (const value of Object.values(copied)) if (value instanceof Uint8Array) expect(value.buffer).not.toBe(raw.buffer);
    expect(Object.keys(parsed).sort()).toEqual([...Object.keys(fields), 'body', 'signature', 'raw'].sort());
  });

  it('a one-time record stays within a few hundred bytes', () => {
    expect(bytes(`${ONE_TIME_BODY} ${SIG_TLV}`).length).toBe(104);
  });
});

describe('card records: strictness', () => {
  const ONE = `${ONE_TIME_BODY} ${SIG_TLV}`;
  const swap = (hex: string, a: string, b: string): string => clean(hex).replace(clean(a), '@').replace(clean(b), clean(a)).replace('@', clean(b));
  const REFUSED: readonly { name: string; hex: string; message: RegExp }[] = [
    { name: 'truncated by one byte', hex: clean(ONE).slice(0, -2), message: /not a TLV record/ },
    { name: 'signature missing', hex: ONE_TIME_BODY, message: /missing signature/ },
    { name: 'a complete TLV after the signature', hex: `${ONE} 01 01 01`, message: /data after the signature/ },
    { name: 'a stray byte after the signature', hex: `${ONE} 00`, message: /not a TLV record/ },
    { name: 'card id and issued-at swapped', hex: swap(ONE, `03 08 ${'c4'.repeat(8)}`, `04 04 ${ISSUED}`), message: /expected cardId/ },
    { name: 'version 3', hex: ONE.replace('01 01 01', '01 01 03'), message: /unsupported record version 3/ },
    { name: 'version 2 without its card key', hex: ONE.replace('01 01 01', '01 01 02'), message: /cardKey/ },
    { name: 'version of two bytes', hex: ONE.replace('01 01 01', '01 02 0001'), message: /unsupported record version/ },
    { name: 'unknown kind 5', hex: ONE.replace('02 01 04', '02 01 05'), message: /unknown record kind 5/ },
    { name: 'kind tag missing', hex: ONE.replace('02 01 04', ''), message: /expected kind/ },
    { name: 'card id of 7 bytes', hex: ONE.replace(`03 08 ${'c4'.repeat(8)}`, `03 07 ${'c4'.repeat(7)}`), message: /cardId: expected 8 bytes, got 7/ },
    { name: 'serial of 3 bytes', hex: ONE.replace('27 04 00000003', '27 03 000003'), message: /serial: expected 4 bytes/ },
    { name: 'signature of 63 bytes', hex: `${ONE_TIME_BODY} 7f 3f ${'5a'.repeat(63)}`, message: /signature: expected 64 bytes/ },
    { name: 'a field of another kind (terminal id in a one-time card)', hex: ONE.replace('27 04 00000003', '30 03 542d31'), message: /expected serial/ },
    { name: 'a one-time record claiming to be a batch', hex: ONE.replace('02 01 04', '02 01 03'), message: /expected publicKey/ },
    { name: 'empty', hex: '', message: /missing version/ },
  ];

  it.each(REFUSED)('refuses $name', ({ hex, message }) => {
    expect(() => parseCardRecord(bytes(hex))).toThrow(RecordError);
    expect(() => parseCardRecord(bytes(hex))).toThrow(message);
  });

  it('refuses string fields out of range on parse', () => {
    const terminal = `${TERMINAL_BODY} ${SIG_TLV}`;
    expect(() => parseCardRecord(bytes(terminal.replace(`20 08 ${CLINIC}`, '20 00')))).toThrow(/clinicCode: length 0/);
    expect(() => parseCardRecord(bytes(terminal.replace(`20 08 ${CLINIC}`, `20 11 ${'41'.repeat(17)}`)))).toThrow(/clinicCode: length 17/);
    expect(() => parseCardRecord(bytes(terminal.replace('30 03 542d31', '30 02 c328')))).toThrow(/terminalId: invalid UTF-8/);
    expect(() => parseCardRecord(bytes(terminal.replace('30 03 542d31', `30 21 ${'41'.repeat(33)}`)))).toThrow(/terminalId: length 33/);
  });

  it('refuses to encode fields it could not parse back', () => {
    const one = RECORDS[3]!.fields;
    expect(() => encodeRecordBody({ ...one, cardId: bytes('c4'.repeat(7)) } as RecordFields)).toThrow(/cardId must be 8 bytes/);
    expect(() => encodeRecordBody({ ...one, serial: 2 ** 32 } as RecordFields)).toThrow(/serial must be a u32/);
    expect(() => encodeRecordBody({ ...one, serial: -1 } as RecordFields)).toThrow(RecordError);
    expect(() => encodeRecordBody({ ...RECORDS[4]!.fields, clinicCode: 'X'.repeat(17) } as RecordFields)).toThrow(/longer than 16/);
    expect(() => encodeRecordBody({ ...RECORDS[4]!.fields, terminalId: '' } as RecordFields)).toThrow(/non-empty/);
    expect(() => encodeRecordBody({ ...one, kind: 5 } as unknown as RecordFields)).toThrow(/unknown record kind 5/);
    expect(() => encodeSignedRecord(bytes(ONE_TIME_BODY), bytes('5a'.repeat(63)))).toThrow(/signature must be 64 bytes/);
  });
});
