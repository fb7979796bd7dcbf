/**
 * A tallystick card, simulated: the applet of firmware-protocol/card-applet.md
 * answering real APDU bytes. Its private key (mother and white cards) lives in
 * the card's state and only signatures leave it. The same object serves the
 * in-process reader, the virtual card behind pcscd and the simulated
 * microcontroller; it can be saved to and loaded from a file.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseCommandApdu, encodeResponseApdu, type CommandApdu } from '../codecs/apdu.js';
import {
  appletAid,
  CARD_AUTH_CHALLENGE_LENGTH,
  CLA_CHAIN,
  type AppletVersion,
  DIGEST_LENGTH,
  encodeFci,
  FciTag,
  INS,
  LifeCycle,
  MARKER_LENGTH,
  PIN_MAX_LENGTH,
  PIN_MAX_TRIES,
  PIN_MIN_LENGTH,
  PIN_REFERENCE,
  PutDataObject,
  type CardFci,
  type LifeCycleValue,
} from '../codecs/applet.js';
import { bytesEqual, concatBytes, fromHex, readU32be, toHex } from '../codecs/bytes.js';
import { RecordKind } from '../codecs/cardRecord.js';
import { cardPublicKey, generateCardKey, signCardChallenge } from '../crypto/cardAuth.js';
import { SW } from '../codecs/statusWords.js';
import { decodeTlvs } from '../codecs/tlv.js';
import { generateSigningKey, privateKeyFromSeed, privateKeySeed, rawPublicKey, signDigest } from '../crypto/ed25519.js';
import type { SmartCard } from '../card/ApduChannel.js';

/** ATR: direct convention, T=1, historical bytes "TALLYSTK01", with its check byte */
export const SIMULATED_CARD_ATR = (() => {
  const historical = Buffer.from('TALLYSTK01', 'ascii');
  const body = Buffer.concat([Buffer.from([0x80 | historical.length, 0x80, 0x01]), historical]);
  let tck = 0;
  for (const b of body) tck ^= b;
  return new Uint8Array(Buffer.concat([Buffer.from([0x3b]), body, Buffer.from([tck])]));
})();

/** What the card keeps in its EEPROM. Serialisable; includes the card's secrets. */
export interface SimulatedCardState {
  chipUid: string;
  lifeCycle: LifeCycleValue;
  profile: number;
  keySeed?: string;
  pinSalt?: string;
  pinHash?: string;
  pinTriesLeft: number;
  signCounter: number;
  signQuota: number;
  record?: string;
  marker?: string;
  /** 2 (the default for new cards): batch and one-time cards hold a P-256 key; absent in files of version 1 cards */
  appletVersion?: AppletVersion;
  /** Version 2 batch and one-time cards: the P-256 private scalar, made on the card; never read out */
  authKey?: string;
}

const PIN_PROFILES = new Set<number>([RecordKind.MOTHER, RecordKind.WHITE]);
const CONSUMABLE_PROFILES = new Set<number>([RecordKind.BATCH, RecordKind.ONE_TIME]);
const MAX_RECORD = 1024;

class Reply {
  constructor(readonly sw: number, readonly data: Uint8Array = new Uint8Array(0)) {}
}

export class SimulatedCard implements SmartCard {
  private state: SimulatedCardState;
  private selected = false;
  private pinVerified = false;
  private pendingResponse: Uint8Array | undefined;
  private chainBuffer: { object: number; parts: Uint8Array[] } | undefined;
  private powered = false;
  /** Called after every state change, so a file-backed card can persist */
  onChange: ((state: SimulatedCardState) => void) | undefined;

  private constructor(state: SimulatedCardState) {
    this.state = state;
  }

  /** A card fresh from the factory: chip UID set, nothing personalised */
  static blank(chipUid: Uint8Array = new Uint8Array(randomBytes(8)), appletVersion: AppletVersion = 2): SimulatedCard {
    return new SimulatedCard({
      appletVersion,
      chipUid: toHex(chipUid),
      lifeCycle: LifeCycle.PERSONALISATION,
      profile: 0,
      pinTriesLeft: PIN_MAX_TRIES,
      signCounter: 0,
      signQuota: 0,
    });
  }

  static fromState(state: SimulatedCardState): SimulatedCard {
    return new SimulatedCard(structuredClone(state));
  }

  /** A physical copy of this card: same EEPROM contents (a cloned card) */
  clone(): SimulatedCard {
    return SimulatedCard.fromState(this.state);
  }

  /**
   * What a cloner makes: another chip with the same chip UID, record and
   * marker, but not the card's private key (no command reads it). With
   * ownKey the copy holds a key of its own, so it answers with a wrong signature.
   */
  copyWithoutKey({ ownKey = false }: { ownKey?: boolean } = {}): SimulatedCard {
    const { authKey: _secret, ...visible } = this.state;
    void _secret;
    return SimulatedCard.fromState({ ...visible, ...(ownKey ? { authKey: toHex(generateCardKey().privateScalar) } : {}) });
  }

  get appletVersion(): AppletVersion {
    return this.state.appletVersion ?? 1;
  }

  snapshot(): SimulatedCardState {
    return structuredClone(this.state);
  }

  /** Takes the EEPROM contents another process left (the virtual card in its own process); the session resets */
  restore(state: SimulatedCardState): void {
    this.state = structuredClone(state);
    this.resetSession();
  }

  get chipUid(): Uint8Array {
    return fromHex(this.state.chipUid);
  }

  powerOn(): Uint8Array {
    this.powered = true;
    this.resetSession();
    return SIMULATED_CARD_ATR;
  }

  powerOff(): void {
    this.powered = false;
    this.resetSession();
  }

  private resetSession(): void {
    this.selected = false;
    this.pinVerified = false;
    this.pendingResponse = undefined;
    this.chainBuffer = undefined;
  }

  transmit(apdu: Uint8Array): Uint8Array {
    if (!this.powered) this.powerOn();
    let reply: Reply;
    try {
      reply = this.dispatch(parseCommandApdu(apdu));
    } catch {
      reply = new Reply(SW.WRONG_LENGTH);
    }
    return this.respond(reply);
  }

  /** Long answers go out in 256-byte pieces with 61xx, as a T=0 card does */
  private respond(reply: Reply): Uint8Array {
    if (reply.data.length <= 256) return encodeResponseApdu({ data: reply.data, sw: reply.sw });
    this.pendingResponse = reply.data.subarray(256);
    const remaining = Math.min(this.pendingResponse.length, 256);
    return encodeResponseApdu({ data: reply.data.subarray(0, 256), sw: SW.BYTES_REMAINING | (remaining & 0xff) });
  }

  private changed(): void {
    this.onChange?.(this.snapshot());
  }

  private dispatch(cmd: CommandApdu): Reply {
    const cla = cmd.cla & ~CLA_CHAIN;
    if (cla !== 0x00 && cla !== 0x80) return new Reply(SW.CLA_NOT_SUPPORTED);
    if (cmd.ins !== INS.GET_RESPONSE) this.pendingResponse = undefined;
    if (cmd.ins !== INS.PUT_DATA && this.chainBuffer) this.chainBuffer = undefined;
    if (cmd.ins === INS.SELECT) return this.select(cmd);
    if (cmd.ins === INS.GET_RESPONSE) return this.getResponse();
    if (!this.selected) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    switch (cmd.ins) {
      case INS.VERIFY:
        return this.verify(cmd);
      case INS.CHANGE_REFERENCE_DATA:
        return this.changeReferenceData(cmd);
      case INS.GENERATE_KEY:
        return this.generateKey(cmd);
      case INS.PSO_SIGN:
        return this.sign(cmd);
      case INS.PUT_DATA:
        return this.putData(cmd);
      case INS.GET_DATA:
        return this.getData(cmd);
      case INS.ACTIVATE:
        return this.activate();
      case INS.MARK_CONSUMED:
        return this.markConsumed(cmd);
      case INS.INTERNAL_AUTHENTICATE:
        return this.internalAuthenticate(cmd);
      default:
        return new Reply(SW.INS_NOT_SUPPORTED);
    }
  }

  private fci(): CardFci {
    const s = this.state;
    const pinCard = PIN_PROFILES.has(s.profile);
    return {
      lifeCycle: s.lifeCycle,
      chipUid: fromHex(s.chipUid),
      profile: s.profile,
      ...(pinCard ? { pinTriesLeft: s.pinTriesLeft, signCounter: s.signCounter, signQuota: s.signQuota } : {}),
      ...(s.record ? { record: fromHex(s.record) } : {}),
      ...(s.marker ? { marker: fromHex(s.marker) } : {}),
    };
  }

  private select(cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0x04) return new Reply(SW.WRONG_P1P2);
    if (!cmd.data || !bytesEqual(cmd.data, appletAid(this.appletVersion))) {
      this.selected = false;
      return new Reply(SW.FILE_NOT_FOUND);
    }
    this.selected = true;
    this.pinVerified = false;
    return new Reply(SW.OK, encodeFci(this.fci()));
  }

  private getResponse(): Reply {
    const pending = this.pendingResponse;
    if (!pending) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    this.pendingResponse = undefined;
    return new Reply(SW.OK, pending);
  }

  private hashPin(pin: Uint8Array, salt: Uint8Array): Buffer {
    return createHash('sha256').update(salt).update(pin).digest();
  }

  private validPinFormat(pin: Uint8Array): boolean {
    return pin.length >= PIN_MIN_LENGTH && pin.length <= PIN_MAX_LENGTH && pin.every((b) => b >= 0x30 && b <= 0x39);
  }

  private verify(cmd: CommandApdu): Reply {
    const s = this.state;
    if (cmd.p2 !== PIN_REFERENCE) return new Reply(SW.REFERENCE_NOT_FOUND);
    if (!PIN_PROFILES.has(s.profile) || !s.pinHash || !s.pinSalt) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (s.pinTriesLeft === 0) return new Reply(SW.AUTH_BLOCKED);
    if (!cmd.data) return new Reply(this.pinVerified ? SW.OK : SW.PIN_TRIES_LEFT | s.pinTriesLeft);
    const ok = timingSafeEqual(this.hashPin(cmd.data, fromHex(s.pinSalt)), Buffer.from(fromHex(s.pinHash)));
    if (ok) {
      if (s.pinTriesLeft !== PIN_MAX_TRIES) {
        s.pinTriesLeft = PIN_MAX_TRIES;
        this.changed();
      }
      this.pinVerified = true;
      return new Reply(SW.OK);
    }
    this.pinVerified = false;
    s.pinTriesLeft -= 1;
    this.changed();
    return new Reply(s.pinTriesLeft === 0 ? SW.AUTH_BLOCKED : SW.PIN_TRIES_LEFT | s.pinTriesLeft);
  }

  private changeReferenceData(cmd: CommandApdu): Reply {
    const s = this.state;
    if (cmd.p2 !== PIN_REFERENCE) return new Reply(SW.REFERENCE_NOT_FOUND);
    if (!PIN_PROFILES.has(s.profile) || !cmd.data) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    let newPin: Uint8Array;
    if (cmd.p1 === 0x01) {
      if (s.lifeCycle !== LifeCycle.PERSONALISATION || s.pinHash) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
      newPin = cmd.data;
    } else if (cmd.p1 === 0x00) {
      if (!s.pinHash || !s.pinSalt) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
      if (s.pinTriesLeft === 0) return new Reply(SW.AUTH_BLOCKED);
      const oldLength = cmd.data[0]!;
      if (1 + oldLength >= cmd.data.length) return new Reply(SW.WRONG_DATA);
      const oldPin = cmd.data.subarray(1, 1 + oldLength);
      newPin = cmd.data.subarray(1 + oldLength);
      if (!timingSafeEqual(this.hashPin(oldPin, fromHex(s.pinSalt)), Buffer.from(fromHex(s.pinHash)))) {
        s.pinTriesLeft -= 1;
        this.changed();
        return new Reply(s.pinTriesLeft === 0 ? SW.AUTH_BLOCKED : SW.PIN_TRIES_LEFT | s.pinTriesLeft);
      }
    } else {
      return new Reply(SW.WRONG_P1P2);
    }
    if (!this.validPinFormat(newPin)) return new Reply(SW.WRONG_DATA);
    const salt = new Uint8Array(randomBytes(16));
    s.pinSalt = toHex(salt);
    s.pinHash = toHex(new Uint8Array(this.hashPin(newPin, salt)));
    s.pinTriesLeft = PIN_MAX_TRIES;
    this.pinVerified = false;
    this.changed();
    return new Reply(SW.OK);
  }

  private generateKey(cmd: CommandApdu): Reply {
    const s = this.state;
    if (cmd.p1 !== 0x80) return new Reply(SW.WRONG_P1P2);
    if (s.lifeCycle !== LifeCycle.PERSONALISATION) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (CONSUMABLE_PROFILES.has(s.profile) && this.appletVersion === 2) {
      // version 2: the card's own P-256 key, named in its record, answers INTERNAL AUTHENTICATE
      if (s.authKey) return new Reply(SW.COMMAND_NOT_ALLOWED);
      const key = generateCardKey();
      s.authKey = toHex(key.privateScalar);
      this.changed();
      return new Reply(SW.OK, key.publicKey);
    }
    if (!PIN_PROFILES.has(s.profile)) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (s.keySeed) return new Reply(SW.COMMAND_NOT_ALLOWED);
    const key = generateSigningKey();
    s.keySeed = toHex(privateKeySeed(key.privateKey));
    this.changed();
    return new Reply(SW.OK, key.publicKey);
  }

  private sign(cmd: CommandApdu): Reply {
    const s = this.state;
    if (cmd.p1 !== 0x9e || cmd.p2 !== 0x9a) return new Reply(SW.WRONG_P1P2);
    if (!PIN_PROFILES.has(s.profile) || !s.keySeed) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (!this.pinVerified) return new Reply(SW.SECURITY_NOT_SATISFIED);
    if (!cmd.data || cmd.data.length !== DIGEST_LENGTH) return new Reply(SW.WRONG_DATA);
    // a mother card signs its own record during personalisation; everything else after activation
    if (s.lifeCycle !== LifeCycle.OPERATIONAL && s.profile !== RecordKind.MOTHER) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (s.signQuota > 0 && s.signCounter >= s.signQuota) return new Reply(SW.NOT_ENOUGH_MEMORY);
    const signature = signDigest(privateKeyFromSeed(fromHex(s.keySeed)), cmd.data);
    // the counter is persisted before the signature leaves the card
    if (s.lifeCycle === LifeCycle.OPERATIONAL) {
      s.signCounter += 1;
      this.changed();
    }
    return new Reply(SW.OK, signature);
  }

  private putData(cmd: CommandApdu): Reply {
    const s = this.state;
    if (s.lifeCycle !== LifeCycle.PERSONALISATION) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    const data = cmd.data ?? new Uint8Array(0);
    const chained = (cmd.cla & CLA_CHAIN) !== 0;
    if (chained || this.chainBuffer) {
      if (this.chainBuffer && this.chainBuffer.object !== cmd.p2) {
        this.chainBuffer = undefined;
        return new Reply(SW.CONDITIONS_NOT_SATISFIED);
      }
      const buffer = this.chainBuffer ?? { object: cmd.p2, parts: [] };
      buffer.parts.push(data.slice());
      if (buffer.parts.reduce((n, p) => n + p.length, 0) > MAX_RECORD) {
        this.chainBuffer = undefined;
        return new Reply(SW.NOT_ENOUGH_MEMORY);
      }
      if (chained) {
        this.chainBuffer = buffer;
        return new Reply(SW.OK);
      }
      this.chainBuffer = undefined;
      return this.storeObject(cmd.p2, concatBytes(buffer.parts));
    }
    return this.storeObject(cmd.p2, data);
  }

  private storeObject(object: number, data: Uint8Array): Reply {
    const s = this.state;
    switch (object) {
      case PutDataObject.PROFILE: {
        const kind = data[0];
        if (data.length !== 1 || kind === undefined || !(PIN_PROFILES.has(kind) || CONSUMABLE_PROFILES.has(kind))) return new Reply(SW.WRONG_DATA);
        if (s.profile !== 0) return new Reply(SW.COMMAND_NOT_ALLOWED);
        s.profile = kind;
        break;
      }
      case PutDataObject.QUOTA:
        if (data.length !== 4) return new Reply(SW.WRONG_DATA);
        if (!PIN_PROFILES.has(s.profile)) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
        s.signQuota = readU32be(data);
        break;
      case PutDataObject.RECORD:
        if (data.length === 0 || data.length > MAX_RECORD) return new Reply(SW.WRONG_DATA);
        if (s.profile === 0) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
        if (s.record) return new Reply(SW.COMMAND_NOT_ALLOWED);
        try {
          decodeTlvs(data);
        } catch {
          return new Reply(SW.WRONG_DATA);
        }
        s.record = toHex(data);
        break;
      default:
        return new Reply(SW.WRONG_P1P2);
    }
    this.changed();
    return new Reply(SW.OK);
  }

  private getData(cmd: CommandApdu): Reply {
    const fci = this.fci();
    const value = ((): Uint8Array | undefined => {
      switch (cmd.p2) {
        case FciTag.CHIP_UID:
          return fci.chipUid;
        case FciTag.PIN_TRIES:
          return fci.pinTriesLeft === undefined ? undefined : Uint8Array.of(fci.pinTriesLeft);
        case FciTag.RECORD:
          return fci.record;
        case FciTag.MARKER:
          return fci.marker;
        default:
          return undefined;
      }
    })();
    return value ? new Reply(SW.OK, value) : new Reply(SW.REFERENCE_NOT_FOUND);
  }

  private activate(): Reply {
    const s = this.state;
    if (s.lifeCycle !== LifeCycle.PERSONALISATION) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (s.profile === 0 || !s.record) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (PIN_PROFILES.has(s.profile) && (!s.pinHash || !s.keySeed)) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    // a version 2 batch or one-time card goes live only with its key, and a record that names that key
    // (a version 1 record on it holds no key: the terminal treats the card as version 1)
    const named = CONSUMABLE_PROFILES.has(s.profile) ? recordCardKey(fromHex(s.record)) : undefined;
    if (named && (!s.authKey || !bytesEqual(named, cardPublicKey(fromHex(s.authKey))))) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    s.lifeCycle = LifeCycle.OPERATIONAL;
    this.pinVerified = false;
    this.changed();
    return new Reply(SW.OK);
  }

  private markConsumed(cmd: CommandApdu): Reply {
    const s = this.state;
    if (s.lifeCycle !== LifeCycle.OPERATIONAL || !CONSUMABLE_PROFILES.has(s.profile)) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (!cmd.data || cmd.data.length !== MARKER_LENGTH) return new Reply(SW.WRONG_DATA);
    if (s.marker) return new Reply(SW.COMMAND_NOT_ALLOWED);
    s.marker = toHex(cmd.data);
    this.changed();
    return new Reply(SW.OK);
  }

  private internalAuthenticate(cmd: CommandApdu): Reply {
    const s = this.state;
    if (this.appletVersion !== 2) return new Reply(SW.INS_NOT_SUPPORTED);
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return new Reply(SW.WRONG_P1P2);
    if (s.lifeCycle !== LifeCycle.OPERATIONAL || !CONSUMABLE_PROFILES.has(s.profile) || !s.record) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    if (!s.authKey) return new Reply(SW.REFERENCE_NOT_FOUND);
    if (!cmd.data || cmd.data.length !== CARD_AUTH_CHALLENGE_LENGTH) return new Reply(SW.WRONG_DATA);
    const cardId = recordCardId(fromHex(s.record));
    if (!cardId) return new Reply(SW.CONDITIONS_NOT_SATISFIED);
    return new Reply(SW.OK, signCardChallenge(fromHex(s.authKey), cardId, cmd.data));
  }

  /** The card's public key, for tests: derived from the secret as the card would */
  publicKeyForTest(): Uint8Array | undefined {
    return this.state.keySeed ? rawPublicKey(privateKeyFromSeed(fromHex(this.state.keySeed))) : undefined;
  }
}

/** The card id (tag 03) of a record, as the applet reads it from its own record */
function recordCardId(record: Uint8Array): Uint8Array | undefined {
  return decodeTlvs(record).find((item) => item.tag === 0x03)?.value;
}

/** The card key (tag 18) a version 2 record names */
function recordCardKey(record: Uint8Array): Uint8Array | undefined {
  return decodeTlvs(record).find((item) => item.tag === 0x18)?.value;
}
