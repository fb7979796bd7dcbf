import { describe, expect, it } from 'vitest';
import * as applet from '../../src/codecs/applet.js';
import { FciError, LifeCycle, type CardFci } from '../../src/codecs/applet.js';
import { fromHex, toHex } from '../../src/codecs/bytes.js';

const bytes = (hex: string): Uint8Array => fromHex(hex);
const clean = (hex: string): string => hex.replace(/\s/g, '');
const UID = '0102030405060708';
const MARKER = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf';

function fciShape(f: CardFci): Record<string, unknown> {
  return {
    ...f,
    chipUid: toHex(f.chipUid),
    ...(f.record ? { record: toHex(f.record) } : {}),
    ...(f.marker ? { marker: toHex(f.marker) } : {}),
  };
}

// FCI tags: 80 life cycle, 81 chip UID, 82 profile, 83 PIN tries, 84 sign counter, 85 sign quota, 86 record, 87 marker
const FCIS: readonly { name: string; fci: CardFci; hex: string }[] = [
  {
    name: 'blank card from the factory',
    fci: { lifeCycle: LifeCycle.PERSONALISATION, chipUid: bytes(UID), profile: 0 },
    hex: `80 01 01  81 08 ${UID}  82 01 00`,
  },
  {
    name: 'white card (PIN, counter and quota)',
    fci: { lifeCycle: LifeCycle.OPERATIONAL, chipUid: bytes(UID), profile: 2, pinTriesLeft: 3, signCounter: 1, signQuota: 50, record: bytes('0101') },
    hex: `80 01 02  81 08 ${UID}  82 01 02  83 01 03  84 04 00000001  85 04 00000032  86 02 0101`,
  },
  {
    name: 'consumed one-time card',
    fci: { lifeCycle: LifeCycle.OPERATIONAL, chipUid: bytes(UID), profile: 4, record: bytes('aabbcc'), marker: bytes(MARKER) },
    hex: `80 01 02  81 08 ${UID}  82 01 04  86 03 aabbcc  87 10 ${MARKER}`,
  },
  {
    name: 'long record (0x81 length form)',
    fci: { lifeCycle: LifeCycle.OPERATIONAL, chipUid: bytes(UID), profile: 3, record: bytes('77'.repeat(200)) },
    hex: `80 01 02  81 08 ${UID}  82 01 03  86 81 c8 ${'77'.repeat(200)}`,
  },
];

describe('applet FCI: fixtures both ways', () => {
  it.each(FCIS)('encodes $name', ({ fci, hex }) => {
    expect(toHex(applet.encodeFci(fci))).toBe(clean(hex));
  });
  it.each(FCIS)('parses $name', ({ fci, hex }) => {
    expect(fciShape(applet.parseFci(bytes(hex)))).toEqual(fciShape(fci));
  });
});

describe('applet FCI: strictness', () => {
  it.each([
    { name: 'truncated TLV', hex: `80 01 02  81 08 ${UID}  82 01` },
    { name: 'trailing byte', hex: `80 01 02  81 08 ${UID}  82 01 04 00` },
    { name: 'unknown life cycle 3', hex: `80 01 03  81 08 ${UID}  82 01 04` },
    { name: 'life cycle missing', hex: `81 08 ${UID}  82 01 04` },
    { name: 'chip UID of 7 bytes', hex: `80 01 02  81 07 01020304050607  82 01 04` },
    { name: 'profile missing', hex: `80 01 02  81 08 ${UID}` },
    { name: 'profile of 2 bytes', hex: `80 01 02  81 08 ${UID}  82 02 0004` },
    { name: 'life cycle of 2 bytes', hex: `80 02 0002  81 08 ${UID}  82 01 04` },
    { name: 'sign counter of 3 bytes', hex: `80 01 02  81 08 ${UID}  82 01 02  84 03 000001` },
    { name: 'sign quota of 5 bytes', hex: `80 01 02  81 08 ${UID}  82 01 02  85 05 0000000001` },
    { name: 'marker of 15 bytes', hex: `80 01 02  81 08 ${UID}  82 01 04  87 0f ${MARKER.slice(0, 30)}` },
    { name: 'duplicate tag', hex: `80 01 02  81 08 ${UID}  82 01 04  82 01 04` },
  ])('refuses $name', ({ hex }) => {
    expect(() => applet.parseFci(bytes(hex))).toThrow(FciError);
  });
});

const DIGEST = '11'.repeat(32);

/** Every command builder of the applet spec, with the exact APDU bytes */
const COMMANDS: readonly { name: string; build: () => Uint8Array; hex: string }[] = [
  { name: 'SELECT by AID', build: () => applet.selectApplet(), hex: '00 a4 04 00 0a f054414c4c5953544b02 00' },
  { name: 'SELECT version 1 by AID', build: () => applet.selectApplet(1), hex: '00 a4 04 00 0a f054414c4c5953544b01 00' },
  { name: 'INTERNAL AUTHENTICATE', build: () => applet.internalAuthenticate(new Uint8Array(24).fill(0xab)), hex: '00 88 00 00 18 ' + 'ab'.repeat(24) + ' 00' },
  { name: 'GET RESPONSE 16', build: () => applet.getResponse(16), hex: '00 c0 00 00 10' },
  { name: 'GET RESPONSE 256', build: () => applet.getResponse(256), hex: '00 c0 00 00 00' },
  { name: 'VERIFY PIN 1234', build: () => applet.verifyPin(bytes('31323334')), hex: '00 20 00 81 04 31323334' },
  { name: 'VERIFY without data (tries left)', build: () => applet.verifyPin(undefined), hex: '00 20 00 81' },
  { name: 'CHANGE REFERENCE DATA, first PIN', build: () => applet.setInitialPin(bytes('31323334')), hex: '00 24 01 81 04 31323334' },
  {
    name: 'CHANGE REFERENCE DATA, old and new',
    build: () => applet.changePin(bytes('31323334'), bytes('3536373839')),
    hex: '00 24 00 81 0a 04 31323334 3536373839',
  },
  { name: 'GENERATE KEY', build: () => applet.generateKey(), hex: '00 47 80 00 00' },
  { name: 'PSO SIGN a digest', build: () => applet.signDigest(bytes(DIGEST)), hex: `00 2a 9e 9a 20 ${DIGEST} 00` },
  { name: 'GET DATA record', build: () => applet.getData(applet.FciTag.RECORD), hex: '80 ca 00 86 00' },
  { name: 'ACTIVATE', build: () => applet.activate(), hex: '80 44 00 00' },
  { name: 'MARK CONSUMED', build: () => applet.markConsumed(bytes(MARKER)), hex: `80 e0 00 00 10 ${MARKER}` },
];

describe('applet command builders', () => {
  it.each(COMMANDS)('$name', ({ build, hex }) => {
    expect(toHex(build())).toBe(clean(hex));
  });

  it('the AID is F0 "TALLYSTK" 02 (version 1: 01)', () => {
    expect(toHex(applet.APPLET_AID)).toBe('f054414c4c5953544b02');
    expect(toHex(applet.APPLET_AID_V1)).toBe('f054414c4c5953544b01');
  });

  it('PUT DATA that fits one command is not chained', () => {
    expect(applet.putData(applet.PutDataObject.PROFILE, bytes('04')).map(toHex)).toEqual(['80da00010104']);
    const exact = applet.putData(applet.PutDataObject.RECORD, bytes('ab'.repeat(240)));
    expect(exact.map(toHex)).toEqual([`80da0003f0${'ab'.repeat(240)}`]);
  });

  it('PUT DATA longer than a chunk is chained with CLA 90 on all but the last command', () => {
    const data = bytes(`${'01'.repeat(240)}${'02'.repeat(240)}${'03'.repeat(20)}`);
    expect(applet.putData(applet.PutDataObject.RECORD, data).map(toHex)).toEqual([
      `90da0003f0${'01'.repeat(240)}`,
      `90da0003f0${'02'.repeat(240)}`,
      `80da000314${'03'.repeat(20)}`,
    ]);
  });

  it('PUT DATA honours a smaller chunk size', () => {
    expect(applet.putData(applet.PutDataObject.QUOTA, bytes('00000032'), 3).map(toHex)).toEqual(['90da000203000000', '80da00020132']);
  });
});
