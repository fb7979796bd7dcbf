/**
 * The tallystick card applet's command set, as pure builders and parsers.
 * The specification is firmware-protocol/card-applet.md; this file and
 * sim/SimulatedCard.ts implement the two sides of it.
 */
import { CodecError } from '../errors.js';
import { encodeCommandApdu } from './apdu.js';
import { readU32be, u32be } from './bytes.js';
import { decodeTlvs, encodeTlvs, type TlvItem } from './tlv.js';

/** F0 (proprietary, unregistered) + "TALLYSTK" + applet version 01 */
export const APPLET_AID_V1 = Uint8Array.of(0xf0, 0x54, 0x41, 0x4c, 0x4c, 0x59, 0x53, 0x54, 0x4b, 0x01);
/** Applet version 2: batch and one-time cards hold a P-256 key and answer INTERNAL AUTHENTICATE */
export const APPLET_AID_V2 = Uint8Array.of(0xf0, 0x54, 0x41, 0x4c, 0x4c, 0x59, 0x53, 0x54, 0x4b, 0x02);
/** The current applet */
export const APPLET_AID = APPLET_AID_V2;
export const APPLET_VERSIONS = [2, 1] as const;
export type AppletVersion = (typeof APPLET_VERSIONS)[number];

export function appletAid(version: AppletVersion): Uint8Array {
  return version === 2 ? APPLET_AID_V2 : APPLET_AID_V1;
}

/**
 * INTERNAL AUTHENTICATE (version 2): the terminal sends its 8-byte tag
 * (SHA-256(terminal id)[0..8], as in the consumed marker) and a fresh 16-byte
 * nonce; the card answers ECDSA P-256 with SHA-256 over
 * CARD_AUTH_DOMAIN || card id (8, from its record) || terminal tag || nonce,
 * DER-encoded as Java Card's ALG_ECDSA_SHA_256 gives it.
 */
export const CARD_AUTH_DOMAIN = new TextEncoder().encode('TALLYSTK-AUTH-02');
export const TERMINAL_TAG_LENGTH = 8;
export const CHALLENGE_NONCE_LENGTH = 16;
export const CARD_AUTH_CHALLENGE_LENGTH = TERMINAL_TAG_LENGTH + CHALLENGE_NONCE_LENGTH;
/** A DER ECDSA-Sig-Value over P-256 is at most 72 bytes */
export const CARD_AUTH_ANSWER_MAX = 72;

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;
/** Command chaining bit (ISO 7816-4 5.1.1.1): more data follows in the next command */
export const CLA_CHAIN = 0x10;

export const INS = {
  SELECT: 0xa4,
  GET_RESPONSE: 0xc0,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  GENERATE_KEY: 0x47,
  PSO_SIGN: 0x2a,
  PUT_DATA: 0xda,
  GET_DATA: 0xca,
  ACTIVATE: 0x44,
  MARK_CONSUMED: 0xe0,
  INTERNAL_AUTHENTICATE: 0x88,
} as const;

/** P2 of PUT DATA */
export const PutDataObject = {
  PROFILE: 0x01,
  QUOTA: 0x02,
  RECORD: 0x03,
} as const;

export const PIN_REFERENCE = 0x81;
export const PIN_MAX_TRIES = 3;
export const PIN_MIN_LENGTH = 4;
export const PIN_MAX_LENGTH = 12;
export const MARKER_LENGTH = 16;
export const DIGEST_LENGTH = 32;

export const LifeCycle = {
  PERSONALISATION: 1,
  OPERATIONAL: 2,
} as const;
export type LifeCycleValue = (typeof LifeCycle)[keyof typeof LifeCycle];

/** Tags of the FCI the card returns on SELECT (and of GET DATA P2) */
export const FciTag = {
  LIFE_CYCLE: 0x80,
  CHIP_UID: 0x81,
  PROFILE: 0x82,
  PIN_TRIES: 0x83,
  SIGN_COUNTER: 0x84,
  SIGN_QUOTA: 0x85,
  RECORD: 0x86,
  MARKER: 0x87,
} as const;

export interface CardFci {
  readonly lifeCycle: LifeCycleValue;
  /** Serial number of the chip, fixed at manufacture */
  readonly chipUid: Uint8Array;
  /** The record kind the card was personalised for (0: not yet) */
  readonly profile: number;
  readonly pinTriesLeft?: number;
  readonly signCounter?: number;
  readonly signQuota?: number;
  /** The signed card record, once written */
  readonly record?: Uint8Array;
  /** The write-once consumed marker, once written */
  readonly marker?: Uint8Array;
}

export class FciError extends CodecError {
  override readonly name: string = 'FciError';
  constructor(detail: string, path = '') {
    super('BAD_FCI', detail, path);
  }
}

export function encodeFci(fci: CardFci): Uint8Array {
  const items: TlvItem[] = [
    { tag: FciTag.LIFE_CYCLE, value: Uint8Array.of(fci.lifeCycle) },
    { tag: FciTag.CHIP_UID, value: fci.chipUid },
    { tag: FciTag.PROFILE, value: Uint8Array.of(fci.profile) },
  ];
  if (fci.pinTriesLeft !== undefined) items.push({ tag: FciTag.PIN_TRIES, value: Uint8Array.of(fci.pinTriesLeft) });
  if (fci.signCounter !== undefined) items.push({ tag: FciTag.SIGN_COUNTER, value: u32be(fci.signCounter) });
  if (fci.signQuota !== undefined) items.push({ tag: FciTag.SIGN_QUOTA, value: u32be(fci.signQuota) });
  if (fci.record) items.push({ tag: FciTag.RECORD, value: fci.record });
  if (fci.marker) items.push({ tag: FciTag.MARKER, value: fci.marker });
  return encodeTlvs(items);
}

export function parseFci(bytes: Uint8Array): CardFci {
  let items: TlvItem[];
  try {
    items = decodeTlvs(bytes);
  } catch (err) {
    throw new FciError(`FCI is not TLV: ${(err as Error).message}`);
  }
  const byTag = new Map<number, Uint8Array>();
  for (const item of items) {
    if (byTag.has(item.tag)) throw new FciError(`duplicate FCI tag 0x${item.tag.toString(16)}`);
    byTag.set(item.tag, item.value);
  }
  const one = (tag: number): number | undefined => {
    const v = byTag.get(tag);
    if (v === undefined) return undefined;
    if (v.length !== 1) throw new FciError(`FCI tag 0x${tag.toString(16)} must be 1 byte`);
    return v[0];
  };
  const u32 = (tag: number): number | undefined => {
    const v = byTag.get(tag);
    if (v === undefined) return undefined;
    if (v.length !== 4) throw new FciError(`FCI tag 0x${tag.toString(16)} must be 4 bytes`);
    return readU32be(v);
  };
  const lifeCycle = one(FciTag.LIFE_CYCLE);
  if (lifeCycle !== LifeCycle.PERSONALISATION && lifeCycle !== LifeCycle.OPERATIONAL) throw new FciError(`bad life cycle ${lifeCycle}`);
  const chipUid = byTag.get(FciTag.CHIP_UID);
  if (!chipUid || chipUid.length !== 8) throw new FciError('chip UID missing or not 8 bytes');
  const profile = one(FciTag.PROFILE);
  if (profile === undefined) throw new FciError('profile missing');
  const marker = byTag.get(FciTag.MARKER);
  if (marker && marker.length !== MARKER_LENGTH) throw new FciError('marker must be 16 bytes');
  const fci: CardFci = {
    lifeCycle,
    chipUid: chipUid.slice(),
    profile,
    ...optional('pinTriesLeft', one(FciTag.PIN_TRIES)),
    ...optional('signCounter', u32(FciTag.SIGN_COUNTER)),
    ...optional('signQuota', u32(FciTag.SIGN_QUOTA)),
    ...optional('record', byTag.get(FciTag.RECORD)?.slice()),
    ...optional('marker', marker?.slice()),
  };
  return fci;
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

// ---- command builders (one per command of the spec) ----

export function selectApplet(version: AppletVersion = 2): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: appletAid(version), le: 256 });
}

/** The bytes a card signs for INTERNAL AUTHENTICATE */
export function cardAuthMessage(cardId: Uint8Array, challenge: Uint8Array): Uint8Array {
  const message = new Uint8Array(CARD_AUTH_DOMAIN.length + cardId.length + challenge.length);
  message.set(CARD_AUTH_DOMAIN, 0);
  message.set(cardId, CARD_AUTH_DOMAIN.length);
  message.set(challenge, CARD_AUTH_DOMAIN.length + cardId.length);
  return message;
}

/** INTERNAL AUTHENTICATE: challenge = terminal tag (8) || nonce (16) */
export function internalAuthenticate(challenge: Uint8Array): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.INTERNAL_AUTHENTICATE, p1: 0x00, p2: 0x00, data: challenge, le: 256 });
}

export function getResponse(length: number): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.GET_RESPONSE, p1: 0, p2: 0, le: length });
}

export function verifyPin(pin: Uint8Array | undefined): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.VERIFY, p1: 0, p2: PIN_REFERENCE, ...(pin ? { data: pin } : {}) });
}

/** Sets the first PIN during personalisation (P1=01: no old PIN) */
export function setInitialPin(pin: Uint8Array): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.CHANGE_REFERENCE_DATA, p1: 0x01, p2: PIN_REFERENCE, data: pin });
}

/** Changes the PIN in operation: data = len(old) || old || new */
export function changePin(oldPin: Uint8Array, newPin: Uint8Array): Uint8Array {
  const data = new Uint8Array(1 + oldPin.length + newPin.length);
  data[0] = oldPin.length;
  data.set(oldPin, 1);
  data.set(newPin, 1 + oldPin.length);
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.CHANGE_REFERENCE_DATA, p1: 0x00, p2: PIN_REFERENCE, data });
}

export function generateKey(): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.GENERATE_KEY, p1: 0x80, p2: 0x00, le: 256 });
}

export function signDigest(digest: Uint8Array): Uint8Array {
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.PSO_SIGN, p1: 0x9e, p2: 0x9a, data: digest, le: 256 });
}

/** PUT DATA, split into chained commands of at most chunk bytes */
export function putData(object: number, data: Uint8Array, chunk = 240): Uint8Array[] {
  const commands: Uint8Array[] = [];
  for (let offset = 0; offset < data.length || offset === 0; offset += chunk) {
    const part = data.subarray(offset, offset + chunk);
    const last = offset + chunk >= data.length;
    commands.push(encodeCommandApdu({ cla: CLA_PROPRIETARY | (last ? 0 : CLA_CHAIN), ins: INS.PUT_DATA, p1: 0, p2: object, data: part }));
    if (last) break;
  }
  return commands;
}

export function getData(tag: number): Uint8Array {
  return encodeCommandApdu({ cla: CLA_PROPRIETARY, ins: INS.GET_DATA, p1: 0, p2: tag, le: 256 });
}

export function activate(): Uint8Array {
  return encodeCommandApdu({ cla: CLA_PROPRIETARY, ins: INS.ACTIVATE, p1: 0, p2: 0 });
}

export function markConsumed(marker: Uint8Array): Uint8Array {
  return encodeCommandApdu({ cla: CLA_PROPRIETARY, ins: INS.MARK_CONSUMED, p1: 0, p2: 0, data: marker });
}
