/**
 * The investor's card-writing tools. Every step checks everything that can be
 * checked (the right card in each slot, blank targets, PIN, quota) before the
 * first write, so a refusal leaves every card and the registry as they were.
 * Batch keys live only in memory while the batch's one-time records are
 * signed; the signed records stay in the registry so a spoiled card can be
 * rewritten onto a new blank without the key.
 */
import { randomBytes } from 'node:crypto';
import { LifeCycle, PIN_MAX_LENGTH, PIN_MIN_LENGTH, type AppletVersion, type CardFci } from '../codecs/applet.js';
import { toHex } from '../codecs/bytes.js';
import {
  encodeRecordBody,
  encodeSignedRecord,
  MAX_CLINIC_CODE,
  RecordKind,
  recordVersion,
  type BatchFields,
  type MotherFields,
  type RecordKindValue,
  type SignedRecord,
  type WhiteFields,
} from '../codecs/cardRecord.js';
import type { ApduChannel } from '../card/ApduChannel.js';
import { CardClient } from '../card/CardClient.js';
import { parseRecordOrThrow, verifySignedBy } from '../crypto/chain.js';
import { generateSigningKey, privateKeySeed, sha256, signMessage } from '../crypto/ed25519.js';
import { encodeStationCertificateBody, isStationId } from '../codecs/registryExport.js';
import { encodeTlsCaRecordBody, encodeTlsCaRecordFile } from '../codecs/tlsCaRecord.js';
import { utf8 } from '../codecs/bytes.js';
import { isTallyError, TallyError } from '../errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { IssuingRegistry } from './IssuingRegistry.js';

const DAY = 86_400;

export interface MotherResult {
  readonly cardId: string;
  readonly rootPublicKey: Uint8Array;
  readonly rootFingerprint: string;
}

export interface WhiteResult {
  readonly cardId: string;
  readonly quota: number;
  readonly validUntil: number;
}

export interface BatchResult {
  readonly batchId: string;
  readonly batchNo: number;
  readonly clinicCode: string;
  readonly count: number;
  readonly validFrom: number;
  readonly validUntil: number;
  /** Serials whose one-time cards were written; the others wait in the registry for `rewrite` */
  readonly written: readonly number[];
  readonly notWritten: readonly { serial: number; reason: string }[];
}

export interface StationResult {
  readonly stationId: string;
  readonly publicKey: string;
  readonly motherCardId: string;
  /** Hex investor root public key (the mother card's): what the server checks the station's exports with */
  readonly rootPublicKey: string;
}

export interface BatchRequest {
  readonly clinicCode: string;
  readonly count: number;
  readonly validDays: number;
  /** Unix seconds; default now */
  readonly validFrom?: number;
}

function checkPin(pin: string, what: string): void {
  if (!/^[0-9]+$/.test(pin) || pin.length < PIN_MIN_LENGTH || pin.length > PIN_MAX_LENGTH) {
    throw new TallyError('USAGE', `${what} must be ${PIN_MIN_LENGTH} to ${PIN_MAX_LENGTH} digits`);
  }
}

export class IssuingStation {
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly registry: IssuingRegistry,
    options: { clock?: Clock; log?: Logger } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.log = (options.log ?? silentLogger).child({ ns: 'issuing' });
  }

  private nowSeconds(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  /** Selects a card that must be blank (factory state, no profile) */
  private async blankCard(channel: ApduChannel, role: string): Promise<{ card: CardClient; fci: CardFci & { appletVersion: AppletVersion } }> {
    const card = new CardClient(channel);
    const fci = await card.select().catch((err: unknown) => {
      throw isTallyError(err, 'APPLET_NOT_FOUND') ? new TallyError('ISSUE_WRONG_CARD', `${role}: not a tallystick card`) : err;
    });
    if (fci.lifeCycle !== LifeCycle.PERSONALISATION || fci.profile !== 0) throw new TallyError('ISSUE_NOT_BLANK', `${role} slot holds a card that is already personalised`);
    return { card, fci };
  }

  /** Selects an issued card of the expected kind */
  private async issuedCard<K extends RecordKindValue>(channel: ApduChannel, kind: K, role: string): Promise<{ card: CardClient; fci: CardFci; record: SignedRecord }> {
    const card = new CardClient(channel);
    const fci = await card.select().catch((err: unknown) => {
      throw isTallyError(err, 'APPLET_NOT_FOUND') ? new TallyError('ISSUE_WRONG_CARD', `${role}: not a tallystick card`) : err;
    });
    if (fci.lifeCycle !== LifeCycle.OPERATIONAL || !fci.record) throw new TallyError('ISSUE_WRONG_CARD', `${role} slot holds a blank card`);
    const record = parseRecordOrThrow(fci.record);
    if (record.kind !== kind || fci.profile !== kind) throw new TallyError('ISSUE_WRONG_CARD', `${role} slot holds a card of another kind`);
    return { card, fci, record };
  }

  /** Personalises the unique mother card: the root key is generated on the card and never leaves it */
  async personaliseMother(channel: ApduChannel, options: { pin: string; investor: string }): Promise<MotherResult> {
    checkPin(options.pin, 'the mother card PIN');
    if (this.registry.cards(RecordKind.MOTHER).length > 0) throw new TallyError('ISSUE_QUOTA', 'this registry already has its mother card');
    const { card, fci } = await this.blankCard(channel, 'mother card');
    await card.putProfile(RecordKind.MOTHER);
    const rootPublicKey = await card.generateKey();
    await card.setInitialPin(options.pin);
    await card.verifyPin(options.pin);
    const fields: MotherFields = { kind: RecordKind.MOTHER, cardId: new Uint8Array(randomBytes(8)), issuedAt: this.nowSeconds(), publicKey: rootPublicKey, investor: options.investor };
    const body = encodeRecordBody(fields);
    const record = encodeSignedRecord(body, await card.signDigest(sha256(body)));
    await card.putRecord(record);
    await card.activate();
    this.registry.addCard({ cardId: fields.cardId, kind: RecordKind.MOTHER, chipUid: fci.chipUid, issuedAt: fields.issuedAt, record, written: true });
    const rootFingerprint = toHex(sha256(rootPublicKey));
    this.log.info({ cardId: toHex(fields.cardId), root: rootFingerprint.slice(0, 16) }, 'mother card personalised');
    return { cardId: toHex(fields.cardId), rootPublicKey, rootFingerprint };
  }

  /**
   * Gives the station a key of its own, certified by the mother card (after its
   * PIN), so the server can trust the station's registry exports with nothing
   * but the investor root. The key signs exports only: it cannot sign a card.
   * Certifying again replaces the key (a station rebuilt or its key exposed).
   */
  async certifyStation(mother: { channel: ApduChannel; pin: string }, stationId: string): Promise<StationResult> {
    if (!isStationId(stationId)) throw new TallyError('USAGE', 'station id: 1..64 of A-Z a-z 0-9 . _ -');
    const m = await this.issuedCard(mother.channel, RecordKind.MOTHER, 'mother card');
    if (m.fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'mother card');
    await m.card.verifyPin(mother.pin);
    const key = generateSigningKey();
    const publicKey = toHex(key.publicKey);
    const body = encodeStationCertificateBody({ stationId, publicKey, motherCardId: toHex(m.record.cardId), issuedAt: this.nowSeconds() });
    const signature = await m.card.signDigest(sha256(utf8(body)));
    this.registry.setStation({ stationId, keySeed: privateKeySeed(key.privateKey), certificateBody: body, certificateSignature: signature, certifiedAt: this.nowSeconds() });
    this.log.info({ stationId, motherCardId: toHex(m.record.cardId) }, 'station certified');
    return { stationId, publicKey, motherCardId: toHex(m.record.cardId), rootPublicKey: toHex((m.record as SignedRecord<MotherFields>).publicKey) };
  }

  /**
   * The mother card (after its PIN) certifies the investor's TLS CA: a record naming the CA certificate's
   * SHA-256, so terminals trust the broker only through a CA the root vouches for. Returns the record file.
   */
  async certifyTlsCa(mother: { channel: ApduChannel; pin: string }, ca: { fingerprint: string; subject: string }): Promise<{ recordJson: string; motherCardId: string }> {
    if (!/^[0-9a-f]{64}$/.test(ca.fingerprint)) throw new TallyError('USAGE', 'CA fingerprint: 32 bytes of lower-case hex');
    const m = await this.issuedCard(mother.channel, RecordKind.MOTHER, 'mother card');
    if (m.fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'mother card');
    await m.card.verifyPin(mother.pin);
    const body = encodeTlsCaRecordBody({ caFingerprint: ca.fingerprint, caSubject: ca.subject, motherCardId: toHex(m.record.cardId), issuedAt: this.nowSeconds() });
    const signature = await m.card.signDigest(sha256(utf8(body)));
    this.log.info({ caFingerprint: ca.fingerprint.slice(0, 16), motherCardId: toHex(m.record.cardId) }, 'TLS CA certified');
    return { recordJson: encodeTlsCaRecordFile(body, toHex(signature)), motherCardId: toHex(m.record.cardId) };
  }

  /** Makes a white card: its own key on the card, its record signed by the mother card after the mother PIN */
  async makeWhite(
    mother: { channel: ApduChannel; pin: string },
    white: { channel: ApduChannel; pin: string; quota: number; validDays: number },
  ): Promise<WhiteResult> {
    checkPin(white.pin, 'the white card PIN');
    if (!Number.isInteger(white.quota) || white.quota < 1 || white.quota > 100_000) throw new TallyError('USAGE', 'quota must be 1..100000 batch cards');
    if (!Number.isInteger(white.validDays) || white.validDays < 1) throw new TallyError('USAGE', 'validity must be at least one day');
    const m = await this.issuedCard(mother.channel, RecordKind.MOTHER, 'mother card');
    const target = await this.blankCard(white.channel, 'white card');
    if (m.fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'mother card');
    await m.card.verifyPin(mother.pin);

    await target.card.putProfile(RecordKind.WHITE);
    const publicKey = await target.card.generateKey();
    await target.card.setInitialPin(white.pin);
    await target.card.putQuota(white.quota);
    const issuedAt = this.nowSeconds();
    const fields: WhiteFields = { kind: RecordKind.WHITE, cardId: new Uint8Array(randomBytes(8)), issuedAt, publicKey, quota: white.quota, validUntil: issuedAt + white.validDays * DAY };
    const body = encodeRecordBody(fields);
    const record = encodeSignedRecord(body, await m.card.signDigest(sha256(body)));
    await target.card.putRecord(record);
    await target.card.activate();
    this.registry.addCard({ cardId: fields.cardId, kind: RecordKind.WHITE, chipUid: target.fci.chipUid, parentCardId: m.record.cardId, issuedAt, record, written: true });
    this.log.info({ cardId: toHex(fields.cardId), quota: white.quota }, 'white card made');
    return { cardId: toHex(fields.cardId), quota: white.quota, validUntil: fields.validUntil };
  }

  /**
   * Makes a batch card with the white card, and its one-time cards 1..count.
   * oneTimeChannel(serial) gives the channel to a blank card for that serial.
   */
  async makeBatch(
    white: { channel: ApduChannel; pin: string },
    batchCard: ApduChannel,
    request: BatchRequest,
    oneTimeChannel: (serial: number) => Promise<ApduChannel>,
  ): Promise<BatchResult> {
    const clinicBytes = Buffer.byteLength(request.clinicCode, 'utf8');
    if (clinicBytes === 0 || clinicBytes > MAX_CLINIC_CODE) throw new TallyError('USAGE', `clinic code must be 1..${MAX_CLINIC_CODE} bytes`);
    if (!Number.isInteger(request.count) || request.count < 1 || request.count > 100_000) throw new TallyError('USAGE', 'count must be 1..100000');
    if (!Number.isInteger(request.validDays) || request.validDays < 1) throw new TallyError('USAGE', 'validity must be at least one day');
    const w = await this.issuedCard(white.channel, RecordKind.WHITE, 'white card');
    const whiteRecord = w.record as SignedRecord<WhiteFields>;
    const now = this.nowSeconds();
    if (whiteRecord.validUntil < now) throw new TallyError('EXPIRED', 'white card expired');
    if ((w.fci.signCounter ?? 0) >= (w.fci.signQuota ?? 0) || this.registry.batchesOfWhite(whiteRecord.cardId) >= whiteRecord.quota) {
      throw new TallyError('ISSUE_QUOTA', `white card has made ${w.fci.signCounter ?? 0} of ${whiteRecord.quota} batch cards`);
    }
    const target = await this.blankCard(batchCard, 'batch card');
    if (w.fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'white card');
    await w.card.verifyPin(white.pin);

    const batchKey = generateSigningKey();
    const validFrom = request.validFrom ?? now;
    // applet version 2: the batch card makes its own P-256 key first; its record names it
    const batchCardKey = target.fci.appletVersion === 2 ? await this.startConsumable(target.card, RecordKind.BATCH) : undefined;
    const fields: BatchFields = {
      kind: RecordKind.BATCH,
      cardId: new Uint8Array(randomBytes(8)),
      issuedAt: now,
      publicKey: batchKey.publicKey,
      clinicCode: request.clinicCode,
      batchNo: this.registry.nextBatchNo(),
      count: request.count,
      validFrom,
      validUntil: validFrom + request.validDays * DAY,
      issuer: whiteRecord.raw,
      ...(batchCardKey ? { cardKey: batchCardKey } : {}),
    };
    const body = encodeRecordBody(fields);
    let signature: Uint8Array;
    try {
      signature = await w.card.signDigest(sha256(body));
    } catch (err) {
      if (isTallyError(err, 'QUOTA_EXHAUSTED')) throw new TallyError('ISSUE_QUOTA', 'the white card refused: its quota is used up');
      throw err;
    }
    const batchRecord = encodeSignedRecord(body, signature);
    if (!verifySignedBy(parseRecordOrThrow(batchRecord), whiteRecord.publicKey)) throw new TallyError('FORGED', 'white card signature does not verify');

    const signOneTime = (serial: number, cardKey?: Uint8Array): { serial: number; cardId: Uint8Array; record: Uint8Array } => {
      const otBody = encodeRecordBody({ kind: RecordKind.ONE_TIME, cardId: new Uint8Array(randomBytes(8)), issuedAt: now, batchId: fields.cardId, serial, ...(cardKey ? { cardKey } : {}) });
      const record = encodeSignedRecord(otBody, signMessage(batchKey.privateKey, otBody));
      return { serial, cardId: parseRecordOrThrow(record).cardId, record };
    };
    // version 1 cards: every one-time record is signed now and kept for rewrite; version 2 records need each chip's key, so they are signed as each card is written
    const legacy = batchCardKey === undefined;
    const oneTime = legacy ? Array.from({ length: request.count }, (_, i) => signOneTime(i + 1)) : [];
    this.registry.transaction(() => {
      this.registry.addCard({ cardId: fields.cardId, kind: RecordKind.BATCH, parentCardId: whiteRecord.cardId, clinicCode: fields.clinicCode, batchNo: fields.batchNo, issuedAt: now, record: batchRecord });
      this.registry.addBatch({ batchId: fields.cardId, batchNo: fields.batchNo, whiteCardId: whiteRecord.cardId, clinicCode: fields.clinicCode, count: fields.count, validFrom, validUntil: fields.validUntil });
      for (const ot of oneTime) {
        this.registry.addCard({ cardId: ot.cardId, kind: RecordKind.ONE_TIME, parentCardId: fields.cardId, clinicCode: fields.clinicCode, batchNo: fields.batchNo, serial: ot.serial, issuedAt: now, record: ot.record });
      }
    });
    if (legacy) await this.writeConsumable(target.card, RecordKind.BATCH, batchRecord);
    else await this.finishConsumable(target.card, batchRecord);
    this.registry.markWritten(fields.cardId, target.fci.chipUid);

    const writeOne = async (serial: number): Promise<void> => {
      const channel = await oneTimeChannel(serial);
      const known = oneTime[serial - 1];
      if (known) return this.writeOneTime(channel, known.cardId, known.record);
      const blank = await this.blankCard(channel, 'one-time card');
      if (blank.fci.appletVersion !== 2) throw new TallyError('ISSUE_WRONG_CARD', 'a version 2 batch needs version 2 one-time cards');
      const cardKey = await this.startConsumable(blank.card, RecordKind.ONE_TIME);
      const ot = signOneTime(serial, cardKey);
      this.registry.addCard({ cardId: ot.cardId, kind: RecordKind.ONE_TIME, parentCardId: fields.cardId, clinicCode: fields.clinicCode, batchNo: fields.batchNo, serial, issuedAt: now, record: ot.record });
      await this.finishConsumable(blank.card, ot.record);
      this.registry.markWritten(ot.cardId, blank.fci.chipUid);
    };
    const written: number[] = [];
    const notWritten: { serial: number; reason: string }[] = [];
    for (let serial = 1; serial <= request.count; serial++) {
      try {
        await writeOne(serial);
        written.push(serial);
      } catch (err) {
        notWritten.push({ serial, reason: (err as Error).message });
      }
    }
    this.log.info({ batchNo: fields.batchNo, count: fields.count, written: written.length }, 'batch made');
    return { batchId: toHex(fields.cardId), batchNo: fields.batchNo, clinicCode: fields.clinicCode, count: fields.count, validFrom, validUntil: fields.validUntil, written, notWritten };
  }

  /** Writes a one-time card the registry already holds onto a blank card (first write, or a spoiled card replaced) */
  async rewriteOneTime(channel: ApduChannel, batchNo: number, serial: number): Promise<void> {
    const batch = this.registry.batchByNo(batchNo);
    if (!batch) throw new TallyError('USAGE', `no batch ${batchNo} in this registry`);
    const card = this.registry.oneTimeCardsOfBatch(batch.batchId).find((c) => c.serial === serial);
    if (!card && serial >= 1 && serial <= batch.count) {
      throw new TallyError('ISSUE_REGISTRY', `serial ${serial} of batch ${batchNo} was never written: a version 2 record names its chip's own key and the batch key that would sign it is gone; issue a new batch for it`);
    }
    if (!card) throw new TallyError('USAGE', `batch ${batchNo} has no serial ${serial}`);
    if (recordVersion(parseRecordOrThrow(card.record)) === 2) throw new TallyError('ISSUE_NOT_BLANK', `one-time card ${serial} of batch ${batchNo} is a version 2 card bound to its chip's key: a second chip cannot carry it`);
    await this.writeOneTime(channel, card.cardId, card.record);
  }

  /**
   * Writes a batch card the registry holds but never saw written (the card was
   * pulled mid-write or spoiled): the signed record needs no key and no quota.
   * A batch card already written is refused: two would be a copy.
   */
  async rewriteBatchCard(channel: ApduChannel, batchNo: number): Promise<void> {
    const batch = this.registry.batchByNo(batchNo);
    if (!batch) throw new TallyError('USAGE', `no batch ${batchNo} in this registry`);
    const card = this.registry.card(batch.batchId);
    if (!card) throw new TallyError('ISSUE_REGISTRY', `batch ${batchNo} has no card record`);
    if (card.written) throw new TallyError('ISSUE_NOT_BLANK', `batch card ${batchNo} was already written; a second one would be a copy`);
    if (recordVersion(parseRecordOrThrow(card.record)) === 2) throw new TallyError('ISSUE_NOT_BLANK', `batch card ${batchNo} is a version 2 record bound to the key of the chip it was made for`);
    const target = await this.blankCard(channel, 'batch card');
    await this.writeConsumable(target.card, RecordKind.BATCH, card.record);
    this.registry.markWritten(card.cardId, target.fci.chipUid);
  }

  private async writeOneTime(channel: ApduChannel, cardId: Uint8Array, record: Uint8Array): Promise<void> {
    const target = await this.blankCard(channel, 'one-time card');
    await this.writeConsumable(target.card, RecordKind.ONE_TIME, record);
    this.registry.markWritten(cardId, target.fci.chipUid);
  }

  /** Version 2: profile set and the card's own key made on it; returns its public point for the record */
  private async startConsumable(card: CardClient, kind: RecordKindValue): Promise<Uint8Array> {
    await card.putProfile(kind);
    return card.generateCardKey();
  }

  private async finishConsumable(card: CardClient, record: Uint8Array): Promise<void> {
    await card.putRecord(record);
    await card.activate();
  }

  private async writeConsumable(card: CardClient, kind: RecordKindValue, record: Uint8Array): Promise<void> {
    await card.putProfile(kind);
    await card.putRecord(record);
    await card.activate();
  }
}
