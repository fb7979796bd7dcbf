/**
 * The host side of the card applet: every command of
 * firmware-protocol/card-applet.md as one method, over any ApduChannel.
 * Status words are turned into TallyErrors here and nowhere else.
 */
import { parseResponseApdu } from '../codecs/apdu.js';
import * as applet from '../codecs/applet.js';
import { concatBytes, utf8 } from '../codecs/bytes.js';
import { bytesRemaining, errorForStatusWord, isOk, pinTriesLeft, SW, swHex } from '../codecs/statusWords.js';
import { isTallyError, TallyError } from '../errors.js';
import type { ApduChannel } from './ApduChannel.js';

export class CardClient {
  constructor(private readonly channel: ApduChannel) {}

  /** Sends one command; follows 61xx with GET RESPONSE; throws on a failing status word */
  private async command(apdu: Uint8Array, what: string): Promise<Uint8Array> {
    let response = parseResponseApdu(await this.channel.transmit(apdu));
    const parts: Uint8Array[] = [response.data];
    for (let guard = 0; bytesRemaining(response.sw) !== undefined; guard++) {
      if (guard > 16) throw new TallyError('APDU_REJECTED', `${what}: too many GET RESPONSE rounds`);
      response = parseResponseApdu(await this.channel.transmit(applet.getResponse(bytesRemaining(response.sw)!)));
      parts.push(response.data);
    }
    if (!isOk(response.sw)) {
      const tries = pinTriesLeft(response.sw);
      throw new TallyError(errorForStatusWord(response.sw), `${what} answered ${swHex(response.sw)}`, {
        sw: response.sw,
        ...(tries !== undefined ? { triesLeft: tries } : {}),
        ...(response.sw === SW.AUTH_BLOCKED ? { triesLeft: 0 } : {}),
      });
    }
    return parts.length === 1 ? parts[0]! : concatBytes(parts);
  }

  /**
   * Selects the applet; its answer carries the whole card state (one APDU for a
   * swipe). Version 2 first; a card without it (6A82) is asked for version 1.
   */
  async select(): Promise<applet.CardFci & { readonly appletVersion: applet.AppletVersion }> {
    let data: Uint8Array | undefined;
    let appletVersion: applet.AppletVersion = 2;
    for (const version of applet.APPLET_VERSIONS) {
      try {
        data = await this.command(applet.selectApplet(version), 'SELECT');
        appletVersion = version;
        break;
      } catch (err) {
        if (!isTallyError(err, 'APPLET_NOT_FOUND') || version === 1) throw err;
      }
    }
    try {
      return { ...applet.parseFci(data!), appletVersion };
    } catch (err) {
      throw new TallyError('MALFORMED_RECORD', (err as Error).message);
    }
  }

  /** INTERNAL AUTHENTICATE: the card signs the challenge with its own P-256 key (DER signature) */
  async authenticate(challenge: Uint8Array): Promise<Uint8Array> {
    const answer = await this.command(applet.internalAuthenticate(challenge), 'INTERNAL AUTHENTICATE');
    if (answer.length === 0 || answer.length > applet.CARD_AUTH_ANSWER_MAX) throw new TallyError('APDU_REJECTED', 'card answer is not an ECDSA signature');
    return answer;
  }

  /** GENERATE KEY on a version 2 batch or one-time card: its 65-byte P-256 public point */
  async generateCardKey(): Promise<Uint8Array> {
    const publicKey = await this.command(applet.generateKey(), 'GENERATE KEY');
    if (publicKey.length !== 65 || publicKey[0] !== 0x04) throw new TallyError('APDU_REJECTED', 'card key is not an uncompressed P-256 point');
    return publicKey;
  }

  async verifyPin(pin: string): Promise<void> {
    await this.command(applet.verifyPin(utf8(pin)), 'VERIFY');
  }

  /** Tries left without spending one (VERIFY with no data) */
  async pinTriesLeft(): Promise<number> {
    const response = parseResponseApdu(await this.channel.transmit(applet.verifyPin(undefined)));
    if (response.sw === SW.OK) return applet.PIN_MAX_TRIES;
    if (response.sw === SW.AUTH_BLOCKED) return 0;
    const tries = pinTriesLeft(response.sw);
    if (tries === undefined) throw new TallyError(errorForStatusWord(response.sw), `VERIFY answered ${swHex(response.sw)}`, { sw: response.sw });
    return tries;
  }

  async setInitialPin(pin: string): Promise<void> {
    await this.command(applet.setInitialPin(utf8(pin)), 'CHANGE REFERENCE DATA');
  }

  async changePin(oldPin: string, newPin: string): Promise<void> {
    await this.command(applet.changePin(utf8(oldPin), utf8(newPin)), 'CHANGE REFERENCE DATA');
  }

  async generateKey(): Promise<Uint8Array> {
    const publicKey = await this.command(applet.generateKey(), 'GENERATE KEY');
    if (publicKey.length !== 32) throw new TallyError('APDU_REJECTED', 'public key is not 32 bytes');
    return publicKey;
  }

  async signDigest(digest: Uint8Array): Promise<Uint8Array> {
    const signature = await this.command(applet.signDigest(digest), 'SIGN');
    if (signature.length !== 64) throw new TallyError('APDU_REJECTED', 'signature is not 64 bytes');
    return signature;
  }

  async putProfile(kind: number): Promise<void> {
    await this.putData(applet.PutDataObject.PROFILE, Uint8Array.of(kind));
  }

  async putQuota(quota: number): Promise<void> {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, quota);
    await this.putData(applet.PutDataObject.QUOTA, data);
  }

  async putRecord(record: Uint8Array): Promise<void> {
    await this.putData(applet.PutDataObject.RECORD, record);
  }

  private async putData(object: number, data: Uint8Array): Promise<void> {
    for (const apdu of applet.putData(object, data)) await this.command(apdu, 'PUT DATA');
  }

  async activate(): Promise<void> {
    await this.command(applet.activate(), 'ACTIVATE');
  }

  async markConsumed(marker: Uint8Array): Promise<void> {
    await this.command(applet.markConsumed(marker), 'MARK CONSUMED');
  }
}
