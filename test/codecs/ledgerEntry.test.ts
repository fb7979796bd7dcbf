import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import {
  encodeLedgerEntry,
  encodeLedgerEntryBody,
  EntryType,
  GENESIS_HASH,
  LedgerEntryError,
  parseLedgerEntry,
  type LedgerEntryFields,
} from '../../src/codecs/ledgerEntry.js';

const bytes = (hex: string): Uint8Array => fromHex(hex);
const clean = (hex: string): string => hex.replace(/\s/g, '');
const TIME = '0000019b76daa800'; // 1767225600000 ms = 2026-01-01T00:00:00Z
const UID = '0102030405060708';
const SIG_TLV = `7f 40 ${'5a'.repeat(64)}`;

// Tags: 01 version, 40 seq, 41 prev hash, 42 type, 43 time, 44 clock trusted, 45 terminal id,
// then optional in this order: 46 card, 49 chip UID, 47 ref, 48 detail, 4a card challenge, 4b card answer; 7f signature last
const PROVISIONED_BODY = `01 01 01  40 08 0000000000000001  41 20 ${'00'.repeat(32)}  42 01 01  43 08 ${TIME}  44 01 01  45 03 542d31  46 05 0102030405`;
const RESERVED_BODY = `01 01 01  40 08 0000000000000005  41 20 ${'ab'.repeat(32)}  42 01 03  43 08 ${TIME}  44 01 00  45 03 542d31  46 03 cccccc  49 08 ${UID}`;
const RELEASED_BODY = `01 01 01  40 08 0000000000001234  41 20 ${'cd'.repeat(32)}  42 01 06  43 08 ${TIME}  44 01 01  45 03 542d31  47 08 0000000000000005  48 05 6661756c74`;
const FAILED_BODY = `01 01 01  40 08 0000000000000009  41 20 ${'ef'.repeat(32)}  42 01 07  43 08 ${TIME}  44 01 01  45 03 542d31  46 01 99  49 08 ${UID}  47 08 0000000000000008  48 00`;
const CHALLENGE = `${'7a'.repeat(8)}${'0e'.repeat(16)}`;
const ANSWER = `3006020101020102`; // a DER shape; the codec checks only its length (1..72)
const AUTHENTICATED_BODY = `${RESERVED_BODY}  4a 18 ${CHALLENGE}  4b 08 ${ANSWER}`;

const ENTRIES: readonly { name: string; fields: LedgerEntryFields; body: string }[] = [
  {
    name: 'provisioned (first entry, genesis hash)',
    fields: { seq: 1, prevHash: GENESIS_HASH, type: EntryType.PROVISIONED, time: 1767225600000, clockTrusted: true, terminalId: 'T-1', card: bytes('0102030405') },
    body: PROVISIONED_BODY,
  },
  {
    name: 'use reserved, clock not trusted',
    fields: { seq: 5, prevHash: bytes('ab'.repeat(32)), type: EntryType.USE_RESERVED, time: 1767225600000, clockTrusted: false, terminalId: 'T-1', card: bytes('cccccc'), chipUid: bytes(UID) },
    body: RESERVED_BODY,
  },
  {
    name: 'use released with ref and detail',
    fields: { seq: 0x1234, prevHash: bytes('cd'.repeat(32)), type: EntryType.USE_RELEASED, time: 1767225600000, clockTrusted: true, terminalId: 'T-1', ref: 5, detail: 'fault' },
    body: RELEASED_BODY,
  },
  {
    name: 'use failed with every optional field (empty detail)',
    fields: {
      seq: 9, prevHash: bytes('ef'.repeat(32)), type: EntryType.USE_FAILED, time: 1767225600000, clockTrusted: true, terminalId: 'T-1',
      card: bytes('99'), chipUid: bytes(UID), ref: 8, detail: '',
    },
    body: FAILED_BODY,
  },
  {
    name: 'use reserved with the card challenge and answer (applet version 2)',
    fields: { seq: 5, prevHash: bytes('ab'.repeat(32)), type: EntryType.USE_RESERVED, time: 1767225600000, clockTrusted: false, terminalId: 'T-1', card: bytes('cccccc'), chipUid: bytes(UID), cardChallenge: bytes(CHALLENGE), cardAnswer: bytes(ANSWER) },
    body: AUTHENTICATED_BODY,
  },
  {
    name: 'terminal setting (type 9)',
    fields: { seq: 0x1234, prevHash: bytes('cd'.repeat(32)), type: EntryType.TERMINAL_SETTING, time: 1767225600000, clockTrusted: true, terminalId: 'T-1', detail: 'fault' },
    body: RELEASED_BODY.replace('42 01 06', '42 01 09').replace('47 08 0000000000000005  ', ''),
  },
];

function shape(value: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]));
}

describe('ledger entries: fixtures both ways', () => {
  it.each(ENTRIES)('encodes $name', ({ fields, body }) => {
    expect(toHex(encodeLedgerEntryBody(fields))).toBe(clean(body));
    expect(toHex(encodeLedgerEntry(bytes(body), bytes('5a'.repeat(64))))).toBe(clean(`${body} ${SIG_TLV}`));
  });

  it.each(ENTRIES)('parses $name', ({ fields, body }) => {
    const raw = `${body} ${SIG_TLV}`;
    expect(shape(parseLedgerEntry(bytes(raw)))).toEqual(shape({ ...fields, body: bytes(body), signature: bytes('5a'.repeat(64)), raw: bytes(raw) }));
  });
});

describe('ledger entries: strictness', () => {
  const ENTRY = `${RESERVED_BODY} ${SIG_TLV}`;
  const REL = `${RELEASED_BODY} ${SIG_TLV}`;
  const REFUSED: readonly { name: string; hex: string; message: RegExp }[] = [
    { name: 'truncated by one byte', hex: clean(ENTRY).slice(0, -2), message: /not a TLV entry/ },
    { name: 'signature missing', hex: RESERVED_BODY, message: /missing or malformed signature/ },
    { name: 'signature of 63 bytes', hex: `${RESERVED_BODY} 7f 3f ${'5a'.repeat(63)}`, message: /missing or malformed signature/ },
    { name: 'data after the signature', hex: `${ENTRY} 48 00`, message: /data after the signature/ },
    { name: 'version 2', hex: ENTRY.replace('01 01 01', '01 01 02'), message: /unsupported entry version 2/ },
    { name: 'seq 0', hex: ENTRY.replace('40 08 0000000000000005', '40 08 0000000000000000'), message: /seq starts at 1/ },
    { name: 'seq of 7 bytes', hex: ENTRY.replace('40 08 0000000000000005', '40 07 00000000000005'), message: /8 bytes/ },
    { name: 'seq beyond safe integers', hex: ENTRY.replace('40 08 0000000000000005', '40 08 0020000000000000'), message: /safe integer/ },
    { name: 'prev hash of 31 bytes', hex: ENTRY.replace(`41 20 ${'ab'.repeat(32)}`, `41 1f ${'ab'.repeat(31)}`), message: /prevHash must be 32 bytes/ },
    { name: 'unknown type 99', hex: ENTRY.replace('42 01 03', '42 01 63'), message: /unknown entry type 99/ },
    { name: 'unknown type 0', hex: ENTRY.replace('42 01 03', '42 01 00'), message: /unknown entry type 0/ },
    { name: 'clock-trusted flag 2', hex: ENTRY.replace('44 01 00', '44 01 02'), message: /clockTrusted must be 0 or 1/ },
    { name: 'type and time swapped', hex: ENTRY.replace(`42 01 03  43 08 ${TIME}`, `43 08 ${TIME}  42 01 03`), message: /expected tag 0x42 at position 3/ },
    { name: 'terminal id missing', hex: ENTRY.replace('45 03 542d31', ''), message: /expected tag 0x45/ },
    { name: 'terminal id not UTF-8', hex: ENTRY.replace('45 03 542d31', '45 02 c328'), message: /terminalId is not UTF-8/ },
    { name: 'chip UID before card', hex: ENTRY.replace(`46 03 cccccc  49 08 ${UID}`, `49 08 ${UID}  46 03 cccccc`), message: /out-of-order tag 0x46/ },
    { name: 'card twice', hex: ENTRY.replace('46 03 cccccc', '46 03 cccccc 46 01 00'), message: /out-of-order tag 0x46/ },
    { name: 'chip UID of 7 bytes', hex: ENTRY.replace(`49 08 ${UID}`, '49 07 01020304050607'), message: /chipUid must be 8 bytes/ },
    { name: 'unknown optional tag 0x50', hex: ENTRY.replace('46 03 cccccc', '50 01 00'), message: /unexpected or out-of-order tag 0x50/ },
    { name: 'detail before ref', hex: REL.replace('47 08 0000000000000005  48 05 6661756c74', '48 05 6661756c74  47 08 0000000000000005'), message: /out-of-order tag 0x47/ },
    { name: 'ref of 4 bytes', hex: REL.replace('47 08 0000000000000005', '47 04 00000005'), message: /ref is 8 bytes/ },
    { name: 'detail not UTF-8', hex: REL.replace('48 05 6661756c74', '48 01 ff'), message: /detail is not UTF-8/ },
    { name: 'card challenge without its answer', hex: `${RESERVED_BODY} 4a 18 ${CHALLENGE} ${SIG_TLV}`, message: /challenge without its answer/ },
    { name: 'card answer without its challenge', hex: `${RESERVED_BODY} 4b 08 ${ANSWER} ${SIG_TLV}`, message: /answer without its challenge/ },
    { name: 'card answer before the challenge', hex: `${RESERVED_BODY} 4b 08 ${ANSWER} 4a 18 ${CHALLENGE} ${SIG_TLV}`, message: /out-of-order tag 0x4a/ },
    { name: 'card challenge of 23 bytes', hex: `${RESERVED_BODY} 4a 17 ${CHALLENGE.slice(2)} 4b 08 ${ANSWER} ${SIG_TLV}`, message: /card challenge is 24 bytes/ },
    { name: 'card answer of 73 bytes', hex: `${RESERVED_BODY} 4a 18 ${CHALLENGE} 4b 49 ${'30'.repeat(73)} ${SIG_TLV}`, message: /card answer is 1\.\.72 bytes/ },
    { name: 'card challenge before the detail', hex: `${RELEASED_BODY.replace('48 05 6661756c74', '')} 4a 18 ${CHALLENGE} 4b 08 ${ANSWER} 48 05 6661756c74 ${SIG_TLV}`, message: /out-of-order tag 0x48/ },
  ];

  it.each(REFUSED)('refuses $name', ({ hex, message }) => {
    expect(() => parseLedgerEntry(bytes(hex))).toThrow(LedgerEntryError);
    expect(() => parseLedgerEntry(bytes(hex))).toThrow(message);
  });

  it('refuses to encode what it could not parse back', () => {
    const base = ENTRIES[2]!.fields;
    expect(() => encodeLedgerEntryBody({ ...base, prevHash: bytes('00'.repeat(31)) })).toThrow(/prevHash must be 32 bytes/);
    expect(() => encodeLedgerEntryBody({ ...base, type: 99 as never })).toThrow(/unknown entry type 99/);
    expect(() => encodeLedgerEntryBody({ ...base, cardChallenge: bytes(CHALLENGE) })).toThrow(/go together/);
    expect(() => encodeLedgerEntryBody({ ...base, cardChallenge: bytes('00'), cardAnswer: bytes(ANSWER) })).toThrow(/24 bytes/);
    expect(() => encodeLedgerEntryBody({ ...base, seq: 0 })).toThrow(/seq starts at 1/);
    expect(() => encodeLedgerEntryBody({ ...base, detail: 'x'.repeat(201) })).toThrow(/detail longer than 200/);
    expect(() => encodeLedgerEntry(bytes(RELEASED_BODY), bytes('5a'.repeat(63)))).toThrow(/signature must be 64 bytes/);
  });
});

describe('parseLedgerEntry: terminal ids of entries parsed one after another', () => {
  const entryOf = (terminalId: string): Uint8Array =>
    encodeLedgerEntry(encodeLedgerEntryBody({ seq: 2, prevHash: GENESIS_HASH, type: EntryType.USE_STARTED, time: 1767225600000, clockTrusted: true, terminalId, ref: 1 }), new Uint8Array(64));

  it('names each entry its own terminal, also for ids of the same length and when the bytes parsed before change', () => {
    const ids = ['T-0001', 'T-0002', 'T-0001', 'T-1', 'T-0002', 'T-0002', 'Ü-0001'];
    expect(ids.map((id) => parseLedgerEntry(entryOf(id)).terminalId)).toEqual(ids);
    const reused = entryOf('T-0003');
    expect(parseLedgerEntry(reused).terminalId).toBe('T-0003');
    const at = toHex(reused).indexOf(toHex(new TextEncoder().encode('T-0003'))) / 2;
    reused[at + 5] = 0x34; // the same buffer, now naming T-0004
    expect(parseLedgerEntry(reused).terminalId).toBe('T-0004');
  });

  it('still refuses a terminal id that is not UTF-8', () => {
    const raw = entryOf('T-0005');
    const at = toHex(raw).indexOf(toHex(new TextEncoder().encode('T-0005'))) / 2;
    raw[at] = 0xff;
    expect(() => parseLedgerEntry(raw)).toThrow(/terminalId is not UTF-8/);
  });
});
