/**
 * The terminal's logic: factory provisioning with the mother card, loading a
 * batch card once, and deciding a swipe (a one-time card, a voucher, an
 * insurance settlement) into a use whose device session (reserved -> started
 * -> completed, or released/failed) DeviceSession runs. It reaches cards only
 * through an ApduChannel and the device only through DeviceControl; every
 * state change goes through the Ledger.
 *
 * Order of a deduction (property 3 and 6 of the brief):
 *   read card -> verify chain, range, validity, deny list, not spent
 *   -> ONE transaction: serial spent + chained entry + report queued
 *   -> enable the device -> write the card's consumed marker.
 * A crash or a pulled card anywhere leaves either no use or a recorded use;
 * a missing marker is repaired the next time the card is presented.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, type KeyObject } from 'node:crypto';
import { LifeCycle, type CardFci } from '../codecs/applet.js';
import { bytesEqual, concatBytes, toHex, utf8 } from '../codecs/bytes.js';
import {
  encodeRecordBody,
  encodeSignedRecord,
  RecordKind,
  type BatchFields,
  type OneTimeFields,
  type SignedRecord,
  type TerminalFields,
} from '../codecs/cardRecord.js';
import { EntryType } from '../codecs/ledgerEntry.js';
import type { ApduChannel } from '../card/ApduChannel.js';
import { CardClient } from '../card/CardClient.js';
import { parseRecordOrThrow, verifyBatchChain, verifyOneTime, verifyTerminalCertificate } from '../crypto/chain.js';
import { challengeFor, newNonce, prepareCardKey, verifyCardChallenge } from '../crypto/cardAuth.js';
import { generateSigningKey, sha256, signMessage } from '../crypto/ed25519.js';
import { parseCheckpoint, parseCheckpointBody, type Checkpoint, type CheckpointFields } from '../codecs/checkpoint.js';
import { verifyCheckpoint } from '../crypto/checkpoint.js';
import { encodeClockResetProof, encodeMotherClockResetBody, type ClockResetProof } from '../codecs/clockReset.js';
import { verifyClockReset } from '../crypto/clockReset.js';
import { decodeVoucherQr, type TrustList } from '../codecs/voucher.js';
import { WALLET_QR_PREFIX } from '../codecs/walletQr.js';
import { verifyWalletQr, walletBinding } from '../crypto/walletQr.js';
import { encodeSettlementVoucher, parseSettlementVoucher } from '../codecs/settlementVoucher.js';
import { verifySettlementVoucher } from '../crypto/settlementVoucher.js';
import { admitVoucher, trustListState, voucherKeyOf } from '../crypto/voucher.js';
import { installTrustList, loadTrustList } from './voucherTrust.js';
import { codeOf, isTallyError, operatorMessage, TallyError, type ErrorName, type Locale } from '../errors.js';
import { Ledger, MAX_LOCAL_CLOCK_LEAD_MS, type CardAuthProof, type TerminalIdentity, type UseRow } from '../ledger/Ledger.js';
import type { DeviceControl, DeviceEvent } from '../readers/CardReader.js';
import { DeviceSession } from './DeviceSession.js';
import { systemClock, type Clock } from '../util/clock.js';
import { systemScheduler, type Scheduler } from '../util/scheduler.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { loadDeviceKey, saveDeviceKey } from './deviceKey.js';
import { okMessages, pick } from './messages.js';
import { MAX_SERVER_TIME_BEHIND_MS, TerminalClock } from './TerminalClock.js';
import { consumedMarker, readCheckpointFile, RollbackWitnesses, saveCheckpointFile } from './RollbackWitnesses.js';
import { rootFingerprint, terminalStatus, type TerminalStatus } from './terminalStatus.js';

export { CHECKPOINT_FILE, readCheckpointFile, type RollbackEvidence } from './RollbackWitnesses.js';
export { rootFingerprint, terminalStatus, type TerminalClockStatus, type TerminalStatus } from './terminalStatus.js';

export interface TerminalOptions {
  readonly dataDir: string;
  /** The local clock (the system clock by default); server time, once received, takes over from it (TerminalClock) */
  readonly clock?: Clock;
  /** A monotonic ms counter that carries server time forward (performance.now by default) */
  readonly monotonicMs?: () => number;
  /** Timers (the start timeout, the session bound, record retries); the system's by default, a ManualScheduler in tests */
  readonly scheduler?: Scheduler;
  readonly locale?: Locale;
  readonly log?: Logger;
  /** The relay; without one a use is recorded as started and completed at once */
  readonly device?: DeviceControl;
  /** Longest a device session may run (the relay opens after it) */
  readonly maxSessionMs?: number;
  /** The device must report "started" within this time, or the use is released */
  readonly startTimeoutMs?: number;
  /**
   * Asks the server, where the link is up, whether this terminal may load a
   * batch (a copied batch card already loaded elsewhere is then refused at
   * once). undefined: no answer (offline); the server flags a double load later.
   */
  /**
   * Migration only: accept version 1 batch and one-time cards, which hold no
   * key and so cannot prove they are the chip the issuer made. Off by default.
   */
  readonly acceptVersion1Cards?: boolean;
  readonly claimBatch?: (claim: { batchId: Uint8Array; batchNo: number; clinicCode: string }) => Promise<{ granted: boolean; holder?: string } | undefined>;
  /**
   * Refuse service on a relay board without the chain-head witness (serial protocol 1). Off by default:
   * such a board still runs the device, and each start logs and records the missing witness.
   */
  readonly requireBoardWitness?: boolean;
  /** The device class of the device this terminal enables (voucher.deviceClass): vouchers scoped to it are accepted */
  readonly voucherDeviceClass?: string;
  /**
   * The clinic checks identity (voucher.requireIdentity): a voucher is written off only after its holder's personal
   * QR code (wallet-qr.md) is scanned too, verified offline: signature by a voucher key of the trust list, within
   * its lifetime, naming the wallet the voucher is bound to.
   */
  readonly voucherIdentityRequired?: boolean;
  /**
   * Claims a voucher's write-off at the server where the link is up (as claimBatch). undefined: no answer
   * (offline): the terminal writes off offline and the server raises an alert if another terminal did too.
   */
  readonly claimVoucher?: (claim: { serial: number; keyId: number; clinicCode: string; examType: string }) => Promise<{ granted: boolean; code?: ErrorName; detail?: string } | undefined>;
}

export type SwipeOutcome =
  | { readonly ok: true; readonly action: 'use'; readonly seq: number; readonly serial: number; readonly batchNo: number; readonly remaining: number; readonly message: string }
  | { readonly ok: true; readonly action: 'batch-loaded'; readonly seq: number; readonly batchNo: number; readonly count: number; readonly message: string }
  | { readonly ok: true; readonly action: 'insurance'; readonly seq: number; readonly orderId: string; readonly item: string; readonly amountFen: number; readonly insurerFen: number; readonly patientFen: number; readonly message: string }
  | { readonly ok: true; readonly action: 'voucher'; readonly seq: number; readonly serial: number; readonly examType: string; readonly claimed: 'online' | 'offline'; readonly trustListGrace: boolean; readonly message: string }
  | { readonly ok: false; readonly code: ErrorName; readonly message: string; readonly detail: string };

export interface ProvisionRequest {
  readonly terminalId: string;
  readonly clinicCode: string;
  readonly pin: string;
  /** Hex SHA-256 of the root public key the factory expects; refuse any other mother card */
  readonly expectedRootFingerprint?: string;
}

/** How long a voucher that verified waits for its holder's personal QR code where the clinic checks identity */
export const HOLDER_WAIT_MS = 120_000;

export class Terminal {
  readonly ledger: Ledger;
  /** The terminal's time: entries, trust and validity follow it */
  readonly clock: TerminalClock;
  private readonly locale: Locale;
  private readonly log: Logger;
  private readonly device: DeviceControl | undefined;
  private deviceKey: KeyObject | undefined;
  /** The device session of each use: enable, the board's reports, releases, their timers */
  private readonly session: DeviceSession;
  private busy = false;
  /** cards.acceptVersion1 as this terminal has made sure the ledger records it (undefined: not yet looked) */
  private version1Recorded: boolean | undefined;
  /** The board, card and checkpoint witnesses of a rollback, and the latched finding */
  private readonly witnesses: RollbackWitnesses;
  /** The voucher trust list in force (voucher-format.md §4), loaded lazily */
  private trust: TrustList | undefined;
  private trustLoaded = false;
  /** Where the clinic checks identity: the voucher that verified, waiting for its holder's personal QR code */
  private awaitingHolder: { text: string; serial: number; atMs: number } | undefined;
  private readonly monotonicMs: () => number;

  private constructor(private readonly options: TerminalOptions) {
    this.clock = new TerminalClock(options.clock ?? systemClock, options.monotonicMs);
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.locale = options.locale ?? 'en';
    this.log = (options.log ?? silentLogger).child({ ns: 'terminal' });
    this.device = options.device;
    mkdirSync(options.dataDir, { recursive: true });
    this.ledger = Ledger.open(join(options.dataDir, 'terminal.db'), this.clock, options.monotonicMs);
    this.clock.setFloor(() => this.ledger.highWaterMark());
    this.witnesses = new RollbackWitnesses(this.ledger, this.log);
    this.deviceKey = loadDeviceKey(options.dataDir);
    if (this.deviceKey && this.ledger.identity()) this.useDeviceKey(this.deviceKey);
    this.session = new DeviceSession({
      ledger: this.ledger,
      device: this.device,
      scheduler: options.scheduler ?? systemScheduler,
      log: this.log,
      maxSessionMs: options.maxSessionMs ?? 60 * 60 * 1000,
      startTimeoutMs: options.startTimeoutMs ?? 30_000,
    });
  }

  static open(options: TerminalOptions): Terminal {
    const terminal = new Terminal(options);
    if (terminal.ledger.identity() && terminal.deviceKey) terminal.session.recoverOpenUses();
    return terminal;
  }

  close(): void {
    this.session.close();
    this.ledger.close();
  }

  private useDeviceKey(key: KeyObject): void {
    this.deviceKey = key;
    this.ledger.setSigner((body) => signMessage(key, body));
  }

  identity(): TerminalIdentity | undefined {
    return this.ledger.identity();
  }

  // ---------------- provisioning ----------------

  /** Factory initialisation: the mother card (after its PIN) signs this terminal's certificate */
  async provision(channel: ApduChannel, request: ProvisionRequest): Promise<{ seq: number; rootFingerprint: string; certificate: SignedRecord<TerminalFields> }> {
    if (this.ledger.identity()) throw new TallyError('ALREADY_PROVISIONED');
    const card = new CardClient(channel);
    const fci = await card.select();
    const mother = this.recordOf(fci);
    if (mother.kind !== RecordKind.MOTHER) throw new TallyError('WRONG_TIER', 'provisioning needs the mother card');
    const fingerprint = rootFingerprint(mother.publicKey);
    if (request.expectedRootFingerprint && request.expectedRootFingerprint.toLowerCase() !== fingerprint) {
      throw new TallyError('ROOT_MISMATCH', `card root ${fingerprint.slice(0, 16)}...`);
    }
    if (fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED');
    await card.verifyPin(request.pin);

    const deviceKey = generateSigningKey();
    const body = encodeRecordBody({
      kind: RecordKind.TERMINAL,
      cardId: new Uint8Array(randomBytes(8)),
      issuedAt: Math.floor(this.clock.now() / 1000),
      publicKey: deviceKey.publicKey,
      terminalId: request.terminalId,
      clinicCode: request.clinicCode,
    });
    const signature = await card.signDigest(sha256(body));
    const certificate = verifyTerminalCertificate(parseRecordOrThrow(encodeSignedRecord(body, signature)), mother.publicKey);

    saveDeviceKey(this.options.dataDir, deviceKey.privateKey);
    this.useDeviceKey(deviceKey.privateKey);
    const seq = this.ledger.provision({
      terminalId: request.terminalId,
      clinicCode: request.clinicCode,
      rootPublicKey: mother.publicKey,
      certificate: certificate.raw,
    });
    this.log.info({ terminalId: request.terminalId, clinicCode: request.clinicCode, root: fingerprint.slice(0, 16) }, 'provisioned');
    return { seq, rootFingerprint: fingerprint, certificate };
  }

  // ---------------- a card presented ----------------

  /** Handles one card: batch card -> load; one-time card -> deduct. Never throws: every failure is an outcome. */
  async handleCard(channel: ApduChannel): Promise<SwipeOutcome> {
    return this.serveOne('a card is being processed', async (identity) => {
      const card = new CardClient(channel);
      const fci = await card.select().catch((err: unknown) => {
        throw isTallyError(err, 'APPLET_NOT_FOUND') ? new TallyError('UNKNOWN_CARD') : err;
      });
      const record = this.recordOf(fci);
      switch (record.kind) {
        case RecordKind.ONE_TIME:
          return await this.deduct(card, fci, record, identity, this.challenge(card, record, identity));
        case RecordKind.BATCH:
          return await this.loadBatch(card, fci, record, identity, this.challenge(card, record, identity));
        default:
          throw new TallyError('WRONG_TIER', `a ${record.kind === RecordKind.MOTHER ? 'mother' : 'white'} card cannot be swiped`);
      }
    });
  }

  /** One card or voucher at a time, on a provisioned terminal whose witnesses agree; every failure becomes a refusal */
  private async serveOne(busyDetail: string, work: (identity: TerminalIdentity) => Promise<SwipeOutcome>): Promise<SwipeOutcome> {
    if (this.busy) return this.refuse('BUSY', busyDetail);
    this.busy = true;
    try {
      const identity = this.ledger.identity();
      if (!identity) throw new TallyError('NOT_PROVISIONED');
      const witnessed = this.checkBoardWitness();
      if (witnessed) throw witnessed;
      this.settleFromBoard();
      this.ledger.noteClock();
      this.noteClockJump();
      if (!this.options.acceptVersion1Cards) this.noteVersion1Off();
      return await work(identity);
    } catch (err) {
      return this.refuse(refusalCode(err), err instanceof TallyError ? err.detail : err instanceof Error ? err.message : String(err));
    } finally {
      this.busy = false;
    }
  }

  /**
   * Sends a version 2 card its challenge at once, so the terminal's own checks
   * run while the chip signs; the answer is checked (authenticated) before
   * anything is committed. A version 1 record is refused unless the migration
   * setting allows it.
   */
  private challenge(card: CardClient, record: SignedRecord<OneTimeFields | BatchFields>, identity: TerminalIdentity): CardChallenge {
    if (record.cardKey === undefined) {
      // refused after the record's own checks, so a forged old card is still named forged
      return {
        authenticated: async () => {
          if (!this.options.acceptVersion1Cards) throw new TallyError('VERSION1_CARD', 'a version 1 card holds no key of its own; the terminal setting cards.acceptVersion1 allows it during a migration');
          this.noteVersion1Setting(true);
          return { version1: true };
        },
      };
    }
    const challenge = challengeFor(identity.terminalId, newNonce());
    const answer = card.authenticate(challenge).then(
      (signature) => ({ signature }),
      (err: unknown) => ({ err }),
    );
    // the command is on its way: decode the card's point while the chip signs
    const cardKey = prepareCardKey(record.cardKey);
    return {
      authenticated: async () => {
        const result = await answer;
        if ('err' in result) {
          // the card removed or the reader failed is not evidence of a copy; a chip that cannot answer is
          const code = codeOf(result.err);
          if (code === 'CARD_REMOVED' || code === 'TRANSPORT_CLOSED' || code.startsWith('READER')) throw result.err;
          throw new TallyError('CLONED_CARD', `the chip did not answer its challenge (${code}): its record names a key this chip does not hold`);
        }
        if (!verifyCardChallenge(cardKey, record.cardId, challenge, result.signature)) {
          throw new TallyError('CLONED_CARD', "the chip's answer does not verify with the key its record names");
        }
        return { challenge, answer: result.signature };
      },
    };
  }

  /**
   * The ledger shows the migration setting in force: a terminal.setting entry (type 9) before the first version 1
   * card accepted under it, and another when it is turned off again. A ledger that never had it on records nothing.
   * Throws (STORAGE_FAULT) when it cannot be recorded: no version 1 card passes unrecorded.
   */
  private noteVersion1Setting(value: boolean): void {
    if (this.version1Recorded === value) return;
    const recorded = this.ledger.recordedSetting('cards.acceptVersion1') ?? false;
    if (recorded !== value) {
      const seq = this.ledger.recordSetting({ name: 'cards.acceptVersion1', value });
      this.log.warn({ seq, setting: 'cards.acceptVersion1', value }, value ? 'terminal.setting recorded: version 1 cards accepted (migration)' : 'terminal.setting recorded: version 1 cards refused again');
    }
    this.version1Recorded = value;
  }

  /** Turning the migration off is recorded too; a failure to record it refuses nothing (no version 1 card passes either way) */
  private noteVersion1Off(): void {
    try {
      this.noteVersion1Setting(false);
    } catch (err) {
      this.log.warn({ code: codeOf(err) }, 'terminal.setting cards.acceptVersion1=false not recorded; tried again at the next card');
    }
  }

  private recordOf(fci: CardFci): SignedRecord {
    if (fci.lifeCycle !== LifeCycle.OPERATIONAL || !fci.record) throw new TallyError('CARD_BLANK');
    const record = parseRecordOrThrow(fci.record);
    if (record.kind !== fci.profile) throw new TallyError('FORGED', 'record kind does not match the card profile');
    return record;
  }

  private refuse(code: ErrorName, detail: string, cardId?: Uint8Array, chipUid?: Uint8Array): SwipeOutcome {
    this.ledger.recordRefusal(code, detail, cardId, chipUid);
    this.log.info({ code, detail }, 'refused');
    return { ok: false, code, message: operatorMessage(code, this.locale), detail };
  }

  private checkValidity(validFrom: number, validUntil: number): void {
    const now = Math.floor(this.ledger.effectiveNow() / 1000);
    if (now >= validFrom && now <= validUntil) return;
    const range = `valid ${new Date(validFrom * 1000).toISOString()} to ${new Date(validUntil * 1000).toISOString()}`;
    // a jumped clock does not judge a card the trusted time finds valid: refused as the jump it is, not as expired
    const mark = Math.floor(this.ledger.highWaterMark() / 1000);
    if (this.ledger.clockState() === 'ahead' && mark >= validFrom && mark <= validUntil) {
      throw new TallyError('CLOCK_AHEAD', `${range}; the clock reads ${new Date(this.clock.now()).toISOString()}, more than ${MAX_LOCAL_CLOCK_LEAD_MS / 86_400_000} days past the last trusted time ${new Date(this.ledger.highWaterMark()).toISOString()}`);
    }
    throw new TallyError('EXPIRED', range);
  }

  /**
   * A local clock far ahead of the mark is a jump, not a time: it moves nothing and is recorded once
   * (a clock.refused entry, until a trusted entry follows) so the ledger and the server see it.
   */
  private noteClockJump(): void {
    if (this.ledger.clockState() !== 'ahead') return;
    const now = this.clock.now();
    const mark = this.ledger.highWaterMark();
    const fields = { localClock: new Date(now).toISOString(), highWaterMark: new Date(mark).toISOString(), aheadMs: now - mark };
    const last = this.ledger.lastClockEvent();
    if (last && last.type === 'clock.refused' && last.detail.startsWith('local') && last.seq > this.ledger.trustedSeq()) return;
    this.log.warn(fields, 'clock-refused: the local clock jumped far ahead of the last trusted time; not taken');
    try {
      this.ledger.recordClockRefused(`local ${fields.localClock}: ${Math.round((now - mark) / 86_400_000)} days ahead of the mark ${fields.highWaterMark}, not taken`);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'clock.refused not recorded');
    }
  }

  private async loadBatch(card: CardClient, fci: CardFci, record: SignedRecord, identity: TerminalIdentity, challenge: CardChallenge): Promise<SwipeOutcome> {
    const { batch, white } = await settleFirst(challenge, () => verifyBatchChain(record, identity.rootPublicKey));
    const auth = await challenge.authenticated();
    this.witnesses.checkCardMarker(fci, record, identity, EntryType.BATCH_LOADED);
    if (batch.clinicCode !== identity.clinicCode) throw new TallyError('WRONG_CLINIC', `batch for ${batch.clinicCode}, terminal at ${identity.clinicCode}`);
    const denied = this.ledger.deniedReason([batch.cardId, white.cardId]);
    if (denied) throw new TallyError('REVOKED', denied);
    if (white.validUntil < Math.floor(this.ledger.effectiveNow() / 1000)) throw new TallyError('EXPIRED', 'white card expired');
    this.checkValidity(batch.validFrom, batch.validUntil);
    const loaded = this.ledger.batch(batch.cardId);
    if (loaded) {
      await this.repairMarker(card, fci, loaded.loadedSeq, identity);
      throw new TallyError('BATCH_ALREADY_LOADED', `batch ${batch.batchNo}`);
    }
    if (fci.marker) throw new TallyError('ALREADY_USED', 'batch card already initialised a terminal');
    const claim = await this.options.claimBatch?.({ batchId: batch.cardId, batchNo: batch.batchNo, clinicCode: batch.clinicCode }).catch(() => undefined);
    if (claim && !claim.granted) throw new TallyError('ALREADY_USED', `batch ${batch.batchNo} is already loaded on terminal ${claim.holder ?? '(another)'}`);
    const seq = this.ledger.loadBatch(batch, white.cardId, fci.chipUid, auth);
    const version1 = 'version1' in auth;
    this.log.info({ seq, batchNo: batch.batchNo, count: batch.count, cardAuthenticated: !version1 }, version1 ? 'batch loaded: version 1 card accepted without authentication (migration setting)' : 'batch loaded');
    await this.writeMarker(card, seq, identity);
    return { ok: true, action: 'batch-loaded', seq, batchNo: batch.batchNo, count: batch.count, message: pick(okMessages.batchLoaded(batch.batchNo, batch.count), this.locale) };
  }

  private async deduct(card: CardClient, fci: CardFci, record: SignedRecord<OneTimeFields>, identity: TerminalIdentity, challenge: CardChallenge): Promise<SwipeOutcome> {
    // the record's own checks run while the card signs its challenge
    const loaded = await settleFirst(challenge, () => {
      const found = this.ledger.batch(record.batchId);
      if (found) verifyOneTime(record, found.publicKey, found.batchId);
      return found;
    });
    // a copy of a genuine record is refused as a copy, before what its (copied) marker says
    const auth = await challenge.authenticated();
    if ('version1' in auth) this.log.warn({ serial: record.serial }, 'version 1 card accepted without authentication (migration setting)');
    // before BATCH_NOT_LOADED: a batch loaded after the copy the ledger was restored from is gone too
    this.witnesses.checkCardMarker(fci, record, identity, EntryType.USE_RESERVED);
    if (!loaded) throw new TallyError('BATCH_NOT_LOADED', `batch id ${toHex(record.batchId)}`);
    const batch = loaded;
    if (record.serial < 1 || record.serial > batch.count) throw new TallyError('OUT_OF_RANGE', `serial ${record.serial} outside 1..${batch.count}`);
    this.checkValidity(batch.validFrom, batch.validUntil);
    const denied = this.ledger.deniedReason([record.cardId, batch.batchId, batch.whiteCardId]);
    if (denied) throw new TallyError('REVOKED', denied);
    const previous = this.ledger.use(record.batchId, record.serial);
    if (previous && previous.state !== 'released') {
      await this.repairMarker(card, fci, previous.reserveSeq, identity, previous);
      throw new TallyError(batch.used >= batch.count ? 'BATCH_EXHAUSTED' : 'ALREADY_USED', `serial ${record.serial} used at seq ${previous.reserveSeq}`);
    }
    // a marker on a card this ledger never charged (or only released): the card says it was used elsewhere
    if (fci.marker && !previous) throw new TallyError('ALREADY_USED', 'card carries a consumed marker');
    // fail closed while the ledger still owes a device event (a storage fault); one use at a time
    this.session.checkReadyForUse();

    // no relay configured (a bare PC/SC reader, bench, manual CLI swipes): reserved, started and
    // completed in ONE transaction, so a storage fault cannot leave a refused customer charged
    const seq = this.ledger.reserveUse(record, fci.chipUid, this.device ? { auth } : { auth, completeAtOnce: 'no device relay configured' });
    this.log.info({ seq, batchNo: batch.batchNo, serial: record.serial }, 'use reserved');
    await this.enableDevice(seq);
    await this.writeMarker(card, seq, identity);
    const remaining = batch.count - batch.used - 1;
    return { ok: true, action: 'use', seq, serial: record.serial, batchNo: batch.batchNo, remaining, message: pick(okMessages.useGranted(record.serial, batch.batchNo, remaining), this.locale) };
  }

  /** The marker is a courtesy to people reading the card; the ledger is the authority, so a failure here is logged, not fatal */
  private async writeMarker(card: CardClient, seq: number, identity: TerminalIdentity): Promise<void> {
    try {
      await card.markConsumed(consumedMarker(seq, identity));
      this.ledger.setMarkerWritten(seq);
    } catch (err) {
      this.log.warn({ seq, code: codeOf(err) }, 'consumed marker not written; it is repaired when the card comes back');
    }
  }

  private async repairMarker(card: CardClient, fci: CardFci, seq: number, identity: TerminalIdentity, use?: UseRow): Promise<void> {
    if (fci.marker) {
      if (use && !use.markerWritten && bytesEqual(fci.marker, consumedMarker(seq, identity))) this.ledger.setMarkerWritten(seq);
      return;
    }
    this.log.info({ seq }, 'repairing the consumed marker');
    await this.writeMarker(card, seq, identity);
  }

  // ---------------- service vouchers (voucher-format.md) ----------------

  /** The voucher trust list in force, or undefined (a kept file that no longer verifies is not used) */
  voucherTrustList(): TrustList | undefined {
    const identity = this.ledger.identity();
    if (!this.trustLoaded && identity) {
      this.trustLoaded = true;
      try {
        this.trust = loadTrustList(this.options.dataDir, identity.rootPublicKey);
      } catch (err) {
        this.log.error({ code: codeOf(err) }, 'kept voucher trust list does not verify: not used');
      }
    }
    return this.trust;
  }

  /** A trust list from the server or a file: verified against the root, installed unless older. Throws TRUST_LIST_INVALID */
  adoptTrustList(raw: Uint8Array): { listSeq: number; installed: boolean } {
    const identity = this.ledger.identity();
    if (!identity) throw new TallyError('NOT_PROVISIONED');
    const { list, installed } = installTrustList(this.options.dataDir, identity.rootPublicKey, raw, this.voucherTrustList());
    this.trust = list;
    this.log.info({ listSeq: list.listSeq, installed, keys: list.keyCertificates.length, revoked: list.revoked.length }, installed ? 'voucher trust list installed' : 'voucher trust list not newer than the one kept');
    return { listSeq: list.listSeq, installed };
  }

  /**
   * A code the scanner read (its text, AIM prefix removed): checked offline against the trust list, claimed at
   * the server where the link is up, written off in ONE ledger transaction, then the device is enabled. Where the
   * clinic checks identity, a voucher that verifies waits (VOUCHER_IDENTITY_NEEDED) for the next scan, its holder's
   * personal QR code (TW1:), for HOLDER_WAIT_MS; any other scan drops it. Never throws.
   */
  async handleVoucher(text: string): Promise<SwipeOutcome> {
    const scanned = text.trim();
    const waiting = this.awaitingHolder;
    if (!scanned.startsWith(WALLET_QR_PREFIX)) {
      this.awaitingHolder = undefined;
      return this.writeOffVoucher(scanned, undefined);
    }
    if (!waiting || this.monotonicMs() - waiting.atMs > HOLDER_WAIT_MS) {
      this.awaitingHolder = undefined;
      return this.serveOne('a card or voucher is being processed', async () => {
        throw new TallyError('WALLET_QR_NO_VOUCHER', waiting ? `voucher ${waiting.serial} waited more than ${HOLDER_WAIT_MS / 1000} s` : 'no voucher scanned before it');
      });
    }
    const outcome = await this.writeOffVoucher(waiting.text, scanned);
    // one personal code for each voucher scan; a busy terminal keeps it waiting
    if (outcome.ok || outcome.code !== 'BUSY') this.awaitingHolder = undefined;
    return outcome;
  }

  private async writeOffVoucher(text: string, holderQr: string | undefined): Promise<SwipeOutcome> {
    return this.serveOne('a card or voucher is being processed', async (identity) => {
      const raw = decodeVoucherQr(text);
      const trust = this.voucherTrustList();
      if (!trust) throw new TallyError('TRUST_LIST_MISSING');
      const now = Math.floor(this.ledger.effectiveNow() / 1000);
      const voucher = admitVoucher(raw, trust, {
        now,
        clinicCode: identity.clinicCode,
        ...(this.options.voucherDeviceClass ? { deviceClass: this.options.voucherDeviceClass } : {}),
        writtenOff: (serial) => {
          const use = this.ledger.voucherUse(serial);
          return use !== undefined && use.state !== 'released';
        },
      });
      if (this.options.voucherIdentityRequired) this.checkHolder(text, voucher, trust, now, holderQr);
      const grace = trustListState(trust, now) === 'grace';
      if (grace) this.log.warn({ event: 'trust-list-grace', listSeq: trust.listSeq }, 'voucher trust list past its validity: accepted in its offline grace');
      this.session.checkReadyForUse();
      const claim = await this.options.claimVoucher?.({ serial: voucher.serial, keyId: voucher.keyId, clinicCode: identity.clinicCode, examType: voucher.examType }).catch(() => undefined);
      if (claim && !claim.granted) throw new TallyError(claim.code ?? 'VOUCHER_WRITTEN_OFF', claim.detail ?? `server refused the write-off of serial ${voucher.serial}`, { serial: voucher.serial });
      const key = voucherKeyOf(trust, voucher.keyId, now)!;
      const claimed = claim ? 'online' : 'offline';
      const seq = this.ledger.reserveVoucherUse(voucher, concatBytes([key.raw, voucher.raw]), `claimed ${claimed}; trust list ${trust.listSeq}`, this.device ? {} : { completeAtOnce: 'no device relay configured' });
      this.log.info({ seq, serial: voucher.serial, examType: voucher.examType, claimed }, 'voucher written off');
      await this.enableDevice(seq);
      return { ok: true, action: 'voucher', seq, serial: voucher.serial, examType: voucher.examType, claimed, trustListGrace: grace, message: pick(okMessages.voucherAccepted(voucher.serial, voucher.examType, grace), this.locale) };
    });
  }

  /**
   * Where the clinic checks identity: the personal QR code names the voucher's holder (wallet-qr.md §5). Without one
   * yet, the voucher waits for it (VOUCHER_IDENTITY_NEEDED); a code that does not verify keeps its own refusal
   * (BAD_WALLET_QR, WALLET_QR_UNKNOWN_KEY, WALLET_QR_FORGED, WALLET_QR_EXPIRED); another wallet's is WALLET_QR_WRONG_PERSON.
   */
  private checkHolder(text: string, voucher: { serial: number; wallet?: Uint8Array }, trust: TrustList, now: number, holderQr: string | undefined): void {
    if (!voucher.wallet) throw new TallyError('VOUCHER_HOLDER_UNNAMED', `serial ${voucher.serial} is bound to no wallet`, { serial: voucher.serial });
    if (holderQr === undefined) {
      this.awaitingHolder = { text, serial: voucher.serial, atMs: this.monotonicMs() };
      this.log.info({ event: 'voucher-awaits-holder', serial: voucher.serial }, "voucher verified: waiting for its holder's personal QR code");
      throw new TallyError('VOUCHER_IDENTITY_NEEDED', `serial ${voucher.serial}`, { serial: voucher.serial });
    }
    const person = verifyWalletQr(holderQr, (keyId) => voucherKeyOf(trust, keyId, now)?.publicKey, now);
    if (!bytesEqual(walletBinding(person.walletId), voucher.wallet)) {
      throw new TallyError('WALLET_QR_WRONG_PERSON', `wallet ${person.walletId} does not hold voucher ${voucher.serial}`, { serial: voucher.serial });
    }
    this.log.info({ event: 'voucher-holder-checked', serial: voucher.serial, walletId: person.walletId }, "the voucher's holder showed a personal QR code");
  }

  // ---------------- insurance settlement vouchers (settlement-voucher.md) ----------------

  /**
   * A settlement voucher from the server: checked with the root alone (server key certified, signature, this
   * terminal, the order waited for, not expired by the terminal's time, not used here before), THEN the use is
   * reserved in one ledger transaction (settlement.reserved) and the device enabled. Never throws.
   */
  async handleSettlement(voucherText: string, expect: { orderId?: string } = {}): Promise<SwipeOutcome> {
    return this.serveOne('a card, voucher or payment is being processed', async (identity) => {
      const voucher = parseSettlementVoucher(voucherText);
      const fields = verifySettlementVoucher(voucher, identity.rootPublicKey, { terminalId: identity.terminalId, now: this.ledger.effectiveNow(), ...(expect.orderId !== undefined ? { orderId: expect.orderId } : {}) });
      const used = this.ledger.settlementUse(fields.orderId);
      if (used) throw new TallyError('SETTLEMENT_VOUCHER_REPLAYED', `order ${fields.orderId} used at seq ${used.reserveSeq}`, { orderId: fields.orderId });
      this.session.checkReadyForUse();
      // the text as the server signed it, re-encoded canonically (the envelope's field order), so the entry carries exactly the voucher checked
      const seq = this.ledger.reserveSettlementUse(fields.orderId, encodeSettlementVoucher(voucher), this.device ? {} : { completeAtOnce: 'no device relay configured' });
      this.log.info({ event: 'insurance.use-reserved', seq, orderId: fields.orderId, item: fields.item, amountFen: fields.amountFen, settlementId: fields.settlementId }, 'insurance settlement use reserved');
      if (!this.device) this.session.notifyUseEnded();
      await this.enableDevice(seq);
      return {
        ok: true,
        action: 'insurance',
        seq,
        orderId: fields.orderId,
        item: fields.item,
        amountFen: fields.amountFen,
        insurerFen: fields.insurerFen,
        patientFen: fields.patientFen,
        message: pick(okMessages.insurancePaid(fields.item, fields.insurerFen, fields.patientFen), this.locale),
      };
    });
  }

  /** Called whenever a use reaches its end in the ledger (completed, failed, released): settlement outcomes are then due */
  onUseEnded(listener: () => void): () => void {
    return this.session.onUseEnded(listener);
  }

  // ---------------- device session (two-phase use) ----------------

  /** The relay closed for the use (the session released it if not); a board that refuses the ledger's head proves a rollback */
  private async enableDevice(seq: number): Promise<void> {
    const headSeq = this.ledger.lastSeq();
    try {
      await this.session.enable(seq);
    } catch (err) {
      if (isTallyError(err, 'BOARD_HEAD_REFUSED')) {
        const held = err.context.held as { seq: number; hashPrefix: string } | undefined;
        throw this.witnesses.found(
          { witness: 'board', witnessSeq: held?.seq ?? 0, ledgerSeq: headSeq, detail: `relay board holds seq ${held?.seq ?? '?'} (${held?.hashPrefix ?? '?'}), refused the head ${headSeq}` },
          true,
        );
      }
      throw new TallyError('DEVICE_FAULT', (err as Error).message);
    }
  }

  // ---------------- rollback witnesses ----------------

  /**
   * Compares the ledger with the head the relay board keeps (serial-protocol.md §6.5).
   * Returns the refusal when the ledger lacks the board's head (a rollback: latched, recorded,
   * reported), when a rollback was found before, or when a required board witness is missing.
   * The daemon calls it whenever the reader is ready; every card goes through it first.
   */
  checkBoardWitness(): TallyError | undefined {
    return this.witnesses.checkBoard(this.device?.witness?.(), this.options.requireBoardWitness ?? false);
  }

  /**
   * The server's signed checkpoint from an ack: checked against the investor root, then kept (the
   * latest, in <dataDir>/checkpoint.json) as a witness outside the database. One naming a seq this
   * ledger lacks, or another hash there, proves the ledger was restored or cut short after the
   * server saw it: latched, recorded, reported. Throws BAD_CHECKPOINT for one that does not verify.
   */
  adoptCheckpoint(value: unknown): CheckpointFields {
    const identity = this.ledger.identity();
    if (!identity) throw new TallyError('NOT_PROVISIONED');
    const checkpoint = parseCheckpoint(value);
    const fields = verifyCheckpoint(checkpoint, identity.rootPublicKey);
    if (fields.terminalId !== identity.terminalId) throw new TallyError('BAD_CHECKPOINT', `checkpoint for terminal ${fields.terminalId}`);
    const latest = this.latestCheckpoint();
    if (!latest || fields.seq >= parseCheckpointBody(latest.body).seq) saveCheckpointFile(this.options.dataDir, checkpoint, this.log);
    const hash = this.ledger.entryHashAt(fields.seq);
    if (hash && toHex(hash) === fields.headHash) this.resetClockByServer(checkpoint, fields);
    if (!hash || toHex(hash) !== fields.headHash) {
      const ledgerSeq = this.ledger.lastSeq();
      const detail = hash
        ? `server ${fields.serverId} signed seq ${fields.seq} (${fields.headHash.slice(0, 16)}); the ledger's entry ${fields.seq} is another`
        : `server ${fields.serverId} signed seq ${fields.seq} (${fields.headHash.slice(0, 16)}); the ledger ends at seq ${ledgerSeq}`;
      this.witnesses.found({ witness: 'checkpoint', witnessSeq: fields.seq, ledgerSeq, detail }, true);
    }
    return fields;
  }

  /**
   * The server's signed time wins over a mark that is far ahead of it, once the terminal has recorded
   * the conflict (clock.refused) and the server has signed a ledger holding that entry: then the
   * checkpoint cannot be an old one replayed. The mark goes back to the checkpoint's time.
   */
  private resetClockByServer(checkpoint: Checkpoint, fields: CheckpointFields): void {
    const mark = this.ledger.highWaterMark();
    if (fields.time >= mark - MAX_SERVER_TIME_BEHIND_MS) return;
    const last = this.ledger.lastClockEvent();
    if (!last || last.type !== 'clock.refused' || fields.seq < last.seq) return;
    const proof: ClockResetProof = { by: 'server', checkpoint };
    try {
      this.applyClockReset(proof, `server ${fields.serverId}: checkpoint seq ${fields.seq}`);
      this.clock.adopt(fields.time);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, code: codeOf(err) }, 'clock reset by the server refused');
    }
  }

  /**
   * An authorised reset with the mother card (tally terminal clock-reset): after its PIN the card
   * signs (terminal, this ledger's head, time); the mark goes to that time, the statement kept in the
   * clock.reset entry. Good once: the next entry has another head.
   */
  async resetClockWithMotherCard(channel: ApduChannel, request: { pin: string; time?: number }): Promise<{ seq: number; time: number; previousMark: number }> {
    const identity = this.ledger.identity();
    if (!identity) throw new TallyError('NOT_PROVISIONED');
    const card = new CardClient(channel);
    const fci = await card.select();
    const mother = this.recordOf(fci);
    if (mother.kind !== RecordKind.MOTHER) throw new TallyError('WRONG_TIER', 'a clock reset needs the mother card');
    if (!bytesEqual(mother.publicKey, identity.rootPublicKey)) throw new TallyError('ROOT_MISMATCH', `card root ${rootFingerprint(mother.publicKey).slice(0, 16)}..., terminal root ${rootFingerprint(identity.rootPublicKey).slice(0, 16)}...`);
    if (fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED');
    await card.verifyPin(request.pin);
    const time = Math.floor(request.time ?? this.clock.localNow());
    const headSeq = this.ledger.lastSeq();
    const body = encodeMotherClockResetBody({ terminalId: identity.terminalId, headSeq, headHash: toHex(this.ledger.entryHashAt(headSeq)!), time, motherCardId: toHex(mother.cardId) });
    const signature = toHex(await card.signDigest(sha256(utf8(body))));
    const previousMark = this.ledger.highWaterMark();
    const seq = this.applyClockReset({ by: 'mother-card', body, signature }, `mother card ${toHex(mother.cardId)}`);
    return { seq, time, previousMark };
  }

  /** Checks a reset's proof as the verifier will, then writes it: clock.reset entry and the new mark */
  private applyClockReset(proof: ClockResetProof, who: string): number {
    const identity = this.ledger.identity();
    if (!identity) throw new TallyError('NOT_PROVISIONED');
    const headSeq = this.ledger.lastSeq();
    const last = this.ledger.lastClockEvent();
    const refusedSeq = last?.type === 'clock.refused' ? last.seq : undefined;
    const verdict = verifyClockReset(proof, {
      rootPublicKey: identity.rootPublicKey,
      terminalId: identity.terminalId,
      headSeq,
      headHash: toHex(this.ledger.entryHashAt(headSeq)!),
      refusedSeq,
      hashAt: (seq) => {
        const hash = this.ledger.entryHashAt(seq);
        return hash && toHex(hash);
      },
    });
    const previousMark = this.ledger.highWaterMark();
    const seq = this.ledger.resetClock(verdict.time, encodeClockResetProof(proof), `${who}: mark ${new Date(previousMark).toISOString()} -> ${new Date(verdict.time).toISOString()}`);
    this.log.warn({ by: verdict.by, signer: verdict.signer, seq, previousMark: new Date(previousMark).toISOString(), mark: new Date(verdict.time).toISOString() }, 'clock-reset: the high-water mark was set by an authorised time');
    return seq;
  }

  /** The latest checkpoint the server sent, as `tally ledger checkpoint` exports it */
  latestCheckpoint(): Checkpoint | undefined {
    return readCheckpointFile(this.options.dataDir);
  }

  /**
   * Device-session events from the relay board complete the two-phase use. Returns whether the
   * ledger has it now: the serial backend ACKs the board's event only then (DeviceSession).
   */
  onDeviceEvent(event: DeviceEvent): boolean {
    return this.session.onDeviceEvent(event);
  }

  /**
   * Settles the uses the last run left open with the relay board's own report of its session
   * (DeviceSession.settleFromBoard). The daemon calls it when the reader is ready; every card goes through it first.
   */
  settleFromBoard(): void {
    this.session.settleFromBoard();
  }

  /** A graceful stop (SIGTERM): a use whose device has not started yet is released and its relay opened (DeviceSession) */
  async prepareStop(): Promise<void> {
    await this.session.prepareStop();
  }

  // ---------------- time from the server ----------------

  /**
   * The server's time (sync's `time` message): from now on entries, clock
   * trust and validity checks follow it, and the ledger's high-water mark
   * moves up to it at once, durably. Throws when the time is far behind what
   * the terminal has already recorded (see TerminalClock); nothing changes then.
   */
  adoptServerTime(serverTime: number): void {
    const trustedBefore = this.ledger.clockTrusted();
    const localBefore = this.clock.now();
    let reading;
    try {
      reading = this.clock.adopt(serverTime);
    } catch (err) {
      this.recordServerTimeRefused(serverTime);
      throw err;
    }
    this.ledger.trustTime(this.clock.now());
    const offsetMs = reading.serverTime - reading.localTime;
    const stepMs = this.clock.now() - localBefore;
    const fields = { offsetMs, stepMs, localClockTrusted: trustedBefore, serverTime: new Date(serverTime).toISOString() };
    if (!trustedBefore || Math.abs(stepMs) > 60_000) this.log.warn(fields, 'terminal time follows the server: the local clock was wrong');
    else this.log.info(fields, 'terminal time follows the server');
  }

  /**
   * A server time far behind the mark: recorded once (clock.refused, until a trusted entry or a reset
   * follows). The server's checkpoint for a ledger holding it then resets the mark (resetClockByServer).
   */
  private recordServerTimeRefused(serverTime: number): void {
    const mark = this.ledger.highWaterMark();
    this.log.warn({ serverTime: new Date(serverTime).toISOString(), highWaterMark: new Date(mark).toISOString() }, 'clock-refused: server time far behind the high-water mark; waiting for its signed checkpoint');
    const last = this.ledger.lastClockEvent();
    if (last && last.type === 'clock.refused' && last.detail.startsWith('server') && last.seq > this.ledger.trustedSeq()) return;
    try {
      this.ledger.recordClockRefused(`server ${new Date(serverTime).toISOString()}: ${Math.round((mark - serverTime) / 1000)} s behind the mark ${new Date(mark).toISOString()}, not taken until signed`);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'clock.refused not recorded');
    }
  }

  // ---------------- status ----------------

  status(): TerminalStatus {
    return { ...terminalStatus(this.ledger, this.clock), unrecordedDeviceEvents: this.session.unrecordedEvents, ...(this.witnesses.evidence ? { rollback: this.witnesses.evidence } : {}) };
  }
}

/** A version 2 card's pending answer to its challenge */
interface CardChallenge {
  /** Resolves once the card's answer verified (or the card is a version 1 card the setting allows); CLONED_CARD otherwise */
  authenticated(): Promise<CardAuthProof>;
}

/** Runs checks while the card's answer is on its way; on a refusal the answer is still awaited, so the card's session stays in step */
async function settleFirst<T>(challenge: CardChallenge, checks: () => T): Promise<T> {
  try {
    return checks();
  } catch (err) {
    await challenge.authenticated().catch(() => undefined);
    throw err;
  }
}

/** The refusal reason an operator sees for an error */
function refusalCode(err: unknown): ErrorName {
  const code = codeOf(err);
  if (code === 'MALFORMED_RECORD') return 'FORGED';
  if (code === 'TRANSPORT_CLOSED') return 'CARD_REMOVED';
  return code;
}
