/**
 * The card applet through CardClient against SimulatedCard: PIN retry counter,
 * SIGN behind the PIN, the white card's quota kept by the card, the write-once
 * consumed marker, personalisation locked by ACTIVATE, and GET RESPONSE chaining.
 */
import { describe, expect, it } from 'vitest';
import { parseResponseApdu } from '../../src/codecs/apdu.js';
import * as applet from '../../src/codecs/applet.js';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { encodeTlv } from '../../src/codecs/tlv.js';
import { RecordKind } from '../../src/codecs/cardRecord.js';
import type { ApduChannel } from '../../src/card/ApduChannel.js';
import { CardClient } from '../../src/card/CardClient.js';
import { sha256, verifyMessage } from '../../src/crypto/ed25519.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';

const PIN = '1234';
const MARKER_A = fromHex('a0'.repeat(16));
const MARKER_B = fromHex('b0'.repeat(16));
/** Any well-formed TLV is a record as far as the card is concerned */
const recordOfLength = (n: number): Uint8Array => encodeTlv(0x01, new Uint8Array(n - (n > 257 ? 4 : n > 129 ? 3 : 2)).fill(0x42));

/** A channel that counts APDUs and keeps the raw status words */
function countingChannel(card: SimulatedCard): ApduChannel & { apdus: number; statusWords: string[] } {
  card.powerOn();
  const channel = {
    apdus: 0,
    statusWords: [] as string[],
    transmit: async (apdu: Uint8Array): Promise<Uint8Array> => {
      channel.apdus++;
      const response = card.transmit(apdu);
      channel.statusWords.push(toHex(response.subarray(response.length - 2)));
      return response;
    },
  };
  return channel;
}

async function session(card: SimulatedCard): Promise<{ client: CardClient; channel: ReturnType<typeof countingChannel>; fci: applet.CardFci }> {
  const channel = countingChannel(card);
  const client = new CardClient(channel);
  const fci = await client.select();
  return { client, channel, fci };
}

/** A white card: key on the card, PIN set, quota of batch signatures, activated */
async function whiteCard(quota = 3): Promise<SimulatedCard> {
  const card = SimulatedCard.blank(fromHex('0102030405060708'));
  const { client } = await session(card);
  await client.putProfile(RecordKind.WHITE);
  await client.generateKey();
  await client.setInitialPin(PIN);
  await client.putQuota(quota);
  await client.putRecord(recordOfLength(40));
  await client.activate();
  return card;
}

async function oneTimeCard(recordLength = 104): Promise<SimulatedCard> {
  const card = SimulatedCard.blank();
  const { client } = await session(card);
  await client.putProfile(RecordKind.ONE_TIME);
  await client.putRecord(recordOfLength(recordLength));
  await client.activate();
  return card;
}

describe('PIN retry counter', () => {
  it('three wrong tries block the PIN; tries left come back as 63Cx', async () => {
    const card = await whiteCard();
    const { client, channel } = await session(card);
    await expect(client.verifyPin('0000')).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: 2, sw: 0x63c2 } });
    await expect(client.verifyPin('0000')).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: 1, sw: 0x63c1 } });
    await expect(client.verifyPin('0000')).rejects.toMatchObject({ code: 'PIN_BLOCKED', context: { triesLeft: 0, sw: 0x6983 } });
    expect(channel.statusWords.slice(-3)).toEqual(['63c2', '63c1', '6983']);
    // blocked means blocked: the right PIN is refused too, and the card remembers across sessions
    await expect(client.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    const later = await session(card);
    expect(later.fci.pinTriesLeft).toBe(0);
    expect(await later.client.pinTriesLeft()).toBe(0);
    await expect(later.client.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    await expect(later.client.signDigest(sha256(Uint8Array.of(1)))).rejects.toMatchObject({ code: 'PIN_REQUIRED' });
  });

  it('asking for tries left does not spend one', async () => {
    const card = await whiteCard();
    const { client } = await session(card);
    expect(await client.pinTriesLeft()).toBe(3);
    expect(await client.pinTriesLeft()).toBe(3);
    await expect(client.verifyPin('9999')).rejects.toMatchObject({ code: 'PIN_WRONG' });
    expect(await client.pinTriesLeft()).toBe(2);
  });

  it('the right PIN resets the counter', async () => {
    const card = await whiteCard();
    const { client } = await session(card);
    await expect(client.verifyPin('0000')).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: 2 } });
    await expect(client.verifyPin('0000')).rejects.toMatchObject({ context: { triesLeft: 1 } });
    await client.verifyPin(PIN);
    expect((await session(card)).fci.pinTriesLeft).toBe(3);
    expect(card.snapshot().pinTriesLeft).toBe(3);
  });

  it('changing the PIN needs the old one, and a wrong old PIN costs a try', async () => {
    const card = await whiteCard();
    const { client } = await session(card);
    await expect(client.changePin('0000', '5678')).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: 2 } });
    await client.changePin(PIN, '5678');
    const next = await session(card);
    await expect(next.client.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_WRONG' });
    await next.client.verifyPin('5678');
  });

  it('a PIN must be 4 to 12 digits', async () => {
    const card = SimulatedCard.blank();
    const { client } = await session(card);
    await client.putProfile(RecordKind.MOTHER);
    await expect(client.setInitialPin('12a4')).rejects.toMatchObject({ code: 'MALFORMED_APDU', context: { sw: 0x6a80 } });
    await expect(client.setInitialPin('123')).rejects.toMatchObject({ code: 'MALFORMED_APDU' });
    await expect(client.setInitialPin('1234567890123')).rejects.toMatchObject({ code: 'MALFORMED_APDU' });
    await client.setInitialPin('123456789012');
  });

  it('cards without a PIN refuse VERIFY', async () => {
    const { client } = await session(await oneTimeCard());
    await expect(client.verifyPin(PIN)).rejects.toMatchObject({ code: 'CARD_STATE', context: { sw: 0x6985 } });
  });
});

describe('SIGN', () => {
  it('needs the PIN verified in this session, and the signature is the card key over the digest', async () => {
    const card = await whiteCard();
    const publicKey = card.publicKeyForTest()!;
    const message = Uint8Array.of(1, 2, 3);
    const first = await session(card);
    await expect(first.client.signDigest(sha256(message))).rejects.toMatchObject({ code: 'PIN_REQUIRED', context: { sw: 0x6982 } });
    await first.client.verifyPin(PIN);
    const signature = await first.client.signDigest(sha256(message));
    expect(verifyMessage(publicKey, message, signature)).toBe(true);
    expect(verifyMessage(publicKey, Uint8Array.of(1, 2, 4), signature)).toBe(false);
    // a new session (card pulled and reinserted) forgets the PIN
    const second = await session(card);
    await expect(second.client.signDigest(sha256(message))).rejects.toMatchObject({ code: 'PIN_REQUIRED' });
    // a wrong PIN after a right one also clears the verification
    await second.client.verifyPin(PIN);
    await expect(second.client.verifyPin('0000')).rejects.toMatchObject({ code: 'PIN_WRONG' });
    await expect(second.client.signDigest(sha256(message))).rejects.toMatchObject({ code: 'PIN_REQUIRED' });
  });

  it('signs only 32-byte digests', async () => {
    const { client } = await session(await whiteCard());
    await client.verifyPin(PIN);
    await expect(client.signDigest(new Uint8Array(31))).rejects.toMatchObject({ code: 'MALFORMED_APDU', context: { sw: 0x6a80 } });
  });

  it('one-time cards cannot sign at all', async () => {
    const { client } = await session(await oneTimeCard());
    await expect(client.signDigest(sha256(Uint8Array.of(1)))).rejects.toMatchObject({ code: 'CARD_STATE' });
  });

  it('the key is made on the card, once, and only its public half comes out', async () => {
    const card = SimulatedCard.blank();
    const { client } = await session(card);
    await client.putProfile(RecordKind.WHITE);
    const publicKey = await client.generateKey();
    expect(toHex(publicKey)).toBe(toHex(card.publicKeyForTest()!));
    await expect(client.generateKey()).rejects.toMatchObject({ code: 'CARD_ALREADY_WRITTEN', context: { sw: 0x6986 } });
  });
});

describe('white card quota, enforced by the card', () => {
  it('signs exactly its quota, then answers 6A84', async () => {
    const card = await whiteCard(2);
    const { client, channel } = await session(card);
    await client.verifyPin(PIN);
    await client.signDigest(sha256(Uint8Array.of(1)));
    await client.signDigest(sha256(Uint8Array.of(2)));
    await expect(client.signDigest(sha256(Uint8Array.of(3)))).rejects.toMatchObject({ code: 'QUOTA_EXHAUSTED', context: { sw: 0x6a84 } });
    expect(channel.statusWords.at(-1)).toBe('6a84');
    const fci = (await session(card)).fci;
    expect(fci).toMatchObject({ signCounter: 2, signQuota: 2 });
    // a copy of the card carries the same counter: copying does not refill the quota
    const copy = (await session(card.clone())).client;
    await copy.verifyPin(PIN);
    await expect(copy.signDigest(sha256(Uint8Array.of(4)))).rejects.toMatchObject({ code: 'QUOTA_EXHAUSTED' });
  });

  it('the quota cannot be raised after activation', async () => {
    const card = await whiteCard(1);
    const { client } = await session(card);
    await expect(client.putQuota(100)).rejects.toMatchObject({ code: 'CARD_STATE' });
    expect((await session(card)).fci.signQuota).toBe(1);
  });
});

describe('write-once consumed marker', () => {
  it('is written once; a second write is refused with 6986 and the first stays', async () => {
    const card = await oneTimeCard();
    const { client } = await session(card);
    await client.markConsumed(MARKER_A);
    await expect(client.markConsumed(MARKER_B)).rejects.toMatchObject({ code: 'CARD_ALREADY_WRITTEN', context: { sw: 0x6986 } });
    await expect(client.markConsumed(MARKER_A)).rejects.toMatchObject({ code: 'CARD_ALREADY_WRITTEN' });
    expect(toHex((await session(card)).fci.marker!)).toBe(toHex(MARKER_A));
  });

  it('must be 16 bytes, and only on an activated batch or one-time card', async () => {
    const card = await oneTimeCard();
    await expect((await session(card)).client.markConsumed(new Uint8Array(15))).rejects.toMatchObject({ code: 'MALFORMED_APDU' });
    await expect((await session(await whiteCard())).client.markConsumed(MARKER_A)).rejects.toMatchObject({ code: 'CARD_STATE' });
    const blank = SimulatedCard.blank();
    const { client } = await session(blank);
    await client.putProfile(RecordKind.ONE_TIME);
    await expect(client.markConsumed(MARKER_A)).rejects.toMatchObject({ code: 'CARD_STATE' });
    expect(card.snapshot().marker).toBeUndefined();
  });
});

describe('personalisation', () => {
  it('profile and record are write-once even before activation', async () => {
    const { client } = await session(SimulatedCard.blank());
    await client.putProfile(RecordKind.ONE_TIME);
    await expect(client.putProfile(RecordKind.BATCH)).rejects.toMatchObject({ code: 'CARD_ALREADY_WRITTEN' });
    await client.putRecord(recordOfLength(50));
    await expect(client.putRecord(recordOfLength(50))).rejects.toMatchObject({ code: 'CARD_ALREADY_WRITTEN' });
  });

  it('refuses a record that is not TLV, an unknown profile, and activation before the record', async () => {
    const { client } = await session(SimulatedCard.blank());
    await expect(client.putProfile(9)).rejects.toMatchObject({ code: 'MALFORMED_APDU' });
    await client.putProfile(RecordKind.ONE_TIME);
    await expect(client.activate()).rejects.toMatchObject({ code: 'CARD_STATE' });
    await expect(client.putRecord(Uint8Array.of(0x01, 0x05, 0x00))).rejects.toMatchObject({ code: 'MALFORMED_APDU' });
  });

  it('a PIN card cannot be activated without its key and PIN', async () => {
    const { client } = await session(SimulatedCard.blank());
    await client.putProfile(RecordKind.WHITE);
    await client.putRecord(recordOfLength(40));
    await expect(client.activate()).rejects.toMatchObject({ code: 'CARD_STATE' });
    await client.generateKey();
    await expect(client.activate()).rejects.toMatchObject({ code: 'CARD_STATE' });
    await client.setInitialPin(PIN);
    await client.activate();
  });

  it('is locked after ACTIVATE: no profile, record, quota, key or first PIN can be written', async () => {
    const card = await whiteCard();
    const before = JSON.stringify(card.snapshot());
    const { client } = await session(card);
    await expect(client.putProfile(RecordKind.MOTHER)).rejects.toMatchObject({ code: 'CARD_STATE', context: { sw: 0x6985 } });
    await expect(client.putRecord(recordOfLength(40))).rejects.toMatchObject({ code: 'CARD_STATE' });
    await expect(client.putQuota(9)).rejects.toMatchObject({ code: 'CARD_STATE' });
    await expect(client.generateKey()).rejects.toMatchObject({ code: 'CARD_STATE' });
    await expect(client.setInitialPin('5555')).rejects.toMatchObject({ code: 'CARD_STATE' });
    await expect(client.activate()).rejects.toMatchObject({ code: 'CARD_STATE' });
    expect(JSON.stringify(card.snapshot())).toBe(before);
  });
});

describe('APDU handling', () => {
  it('a long FCI comes back in 256-byte pieces with 61xx and GET RESPONSE, reassembled by CardClient', async () => {
    const record = recordOfLength(600);
    const card = await oneTimeCard(600);
    const { channel, fci } = await session(card);
    expect(toHex(fci.record!)).toBe(toHex(record));
    // FCI = 3 + 10 + 3 + 604 = 620 bytes: 256 + 256 + 108
    expect(channel.apdus).toBe(3);
    expect(channel.statusWords).toEqual(['6100', '616c', '9000']);
  });

  it('a record longer than one command is written with chained PUT DATA', async () => {
    const card = SimulatedCard.blank();
    const channel = countingChannel(card);
    const client = new CardClient(channel);
    await client.select();
    await client.putProfile(RecordKind.BATCH);
    const before = channel.apdus;
    await client.putRecord(recordOfLength(700));
    expect(channel.apdus - before).toBe(3);
    expect(card.snapshot().record).toBe(toHex(recordOfLength(700)));
  });

  it('GET RESPONSE with nothing pending, commands before SELECT, unknown INS and CLA, malformed APDUs', async () => {
    const card = await oneTimeCard();
    card.powerOn();
    const sw = (apdu: Uint8Array): number => parseResponseApdu(card.transmit(apdu)).sw;
    expect(sw(applet.markConsumed(MARKER_A))).toBe(0x6985); // not selected yet
    expect(sw(applet.selectApplet())).toBe(0x9000);
    expect(sw(applet.getResponse(16))).toBe(0x6985);
    expect(sw(fromHex('80ff0000'))).toBe(0x6d00);
    expect(sw(fromHex('a0a40400'))).toBe(0x6e00);
    expect(sw(fromHex('00a4'))).toBe(0x6700);
    expect(sw(fromHex('00a404000af054414c4c5953544b03'))).toBe(0x6a82); // another applet version
    expect(card.snapshot().marker).toBeUndefined();
  });

  it('a card without our applet makes SELECT fail with APPLET_NOT_FOUND', async () => {
    const client = new CardClient({ transmit: async () => Uint8Array.of(0x6a, 0x82) });
    await expect(client.select()).rejects.toMatchObject({ code: 'APPLET_NOT_FOUND', context: { sw: 0x6a82 } });
  });
});
