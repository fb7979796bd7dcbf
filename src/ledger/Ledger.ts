/**
 * The terminal's ledger. It alone writes the ledger, outbox, batches and uses
 * tables. Each state change is one synchronous SQLite transaction that appends
 * a signed, chained entry and queues it for the server: a deduction is durable
 * (fsync'd, WAL + synchronous=FULL) before the method returns, and if SQLite
 * cannot write, the method throws STORAGE_FAULT and nothing happened.
 */
import { bytesEqual, toHex } from '../codecs/bytes.js';
import type { BatchFields, OneTimeFields, SignedRecord } from '../codecs/cardRecord.js';
import { encodeSettingDetail, parseSettingDetail, type LedgerSetting, type LedgerSettingName } from '../codecs/terminalSetting.js';
import {
  encodeLedgerEntry,
  encodeLedgerEntryBody,
  CLOCK_TRUST_SLACK_MS,
  EntryType,
  GENESIS_HASH,
  parseLedgerEntry,
  type EntryTypeValue,
  type LedgerEntryFields,
} from '../codecs/ledgerEntry.js';
import { sha256 } from '../crypto/ed25519.js';
import { verifyLedgerEntries, type LedgerVerification } from '../crypto/ledgerChain.js';
import { TallyError } from '../errors.js';
import { CLOCK_FLOOR_MS, type Clock } from '../util/clock.js';
import { openDatabase, storageFault, type SqliteDatabase } from '../util/openDatabase.js';
import { TERMINAL_MIGRATIONS } from './schema.js';

export type EntrySigner = (body: Uint8Array) => Uint8Array;

/**
 * A local clock reading moves the high-water mark only while it is at most this far ahead of the
 * last trusted time plus what this process has measured since (monotonic clock). Further ahead is
 * a jump (an RTC glitch, a clock set forward): entries are marked untrusted and the mark stays, so
 * the clock coming back is trusted again at once. A server time moves the mark however far.
 */
export const MAX_LOCAL_CLOCK_LEAD_MS = 7 * 86_400_000;

/** How a clock reading stands against the mark */
export type ClockState = 'trusted' | 'before-floor' | 'behind' | 'ahead';

/** The latest clock.reset or clock.refused entry, as status shows it */
export interface ClockEvent {
  readonly seq: number;
  readonly type: 'clock.reset' | 'clock.refused';
  /** The entry's time (ms): the new mark for a reset */
  readonly time: number;
  readonly detail: string;
}

export interface TerminalIdentity {
  readonly terminalId: string;
  readonly clinicCode: string;
  readonly rootPublicKey: Uint8Array;
  /** The terminal certificate: a TERMINAL record signed by the root */
  readonly certificate: Uint8Array;
}

export interface BatchRow {
  readonly batchId: Uint8Array;
  readonly batchNo: number;
  readonly clinicCode: string;
  readonly count: number;
  readonly validFrom: number;
  readonly validUntil: number;
  readonly publicKey: Uint8Array;
  readonly whiteCardId: Uint8Array;
  readonly loadedSeq: number;
  readonly used: number;
}

export type UseState = 'reserved' | 'started' | 'completed' | 'failed' | 'released';

export interface UseRow {
  readonly batchId: Uint8Array;
  readonly serial: number;
  readonly state: UseState;
  readonly reserveSeq: number;
  readonly cardId: Uint8Array;
  readonly markerWritten: boolean;
  /** A voucher use (entry type 12): serial is the voucher's, batchId and cardId are empty */
  readonly voucher?: boolean;
  /** An insurance settlement use (entry type 14): its order id; serial 0, batchId and cardId empty */
  readonly settlement?: string;
}

export interface OutboxEntry {
  readonly seq: number;
  readonly raw: Uint8Array;
}

interface Head {
  seq: number;
  hash: Uint8Array;
  time: number;
}

const DEVICE_EVENT_STATE: Partial<Record<EntryTypeValue, UseState>> = {
  [EntryType.USE_STARTED]: 'started',
  [EntryType.USE_COMPLETED]: 'completed',
  [EntryType.USE_FAILED]: 'failed',
  [EntryType.USE_RELEASED]: 'released',
};

/** Which device events may follow which state */
const NEXT_STATES: Record<UseState, readonly UseState[]> = {
  reserved: ['started', 'released'],
  started: ['completed', 'failed'],
  completed: [],
  failed: [],
  released: [],
};

function u8(buffer: Buffer | Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export class Ledger {
  private head: Head;
  private signer: EntrySigner | undefined;
  private readonly stmt;

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly clock: Clock,
    private readonly monotonicMs: () => number = () => performance.now(),
  ) {
    this.stmt = {
      getMeta: db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      // the head comes from the last entry's own bytes: the hash and time columns are unsigned copies
      head: db.prepare<[], { seq: number; entry: Buffer }>('SELECT seq, entry FROM ledger ORDER BY seq DESC LIMIT 1'),
      newestFirst: db.prepare<[], { seq: number; entry: Buffer }>('SELECT seq, entry FROM ledger ORDER BY seq DESC'),
      settings: db.prepare<[], { entry: Buffer }>('SELECT entry FROM ledger WHERE type = 9 ORDER BY seq DESC'),
      lastClockEvent: db.prepare<[], { seq: number; entry: Buffer }>('SELECT seq, entry FROM ledger WHERE type IN (10, 11) ORDER BY seq DESC LIMIT 1'),
      insertEntry: db.prepare('INSERT INTO ledger (seq, type, time, hash, entry) VALUES (?, ?, ?, ?, ?)'),
      insertOutbox: db.prepare('INSERT INTO outbox (seq) VALUES (?)'),
      batch: db.prepare<[Uint8Array], BatchDbRow>('SELECT * FROM batches WHERE batch_id = ?'),
      batches: db.prepare<[], BatchDbRow>('SELECT * FROM batches ORDER BY loaded_seq'),
      insertBatch: db.prepare(
        'INSERT INTO batches (batch_id, batch_no, clinic_code, count, valid_from, valid_until, public_key, white_card_id, loaded_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      use: db.prepare<[Uint8Array, number], UseDbRow>('SELECT * FROM uses WHERE batch_id = ? AND serial = ?'),
      useByReserve: db.prepare<[number], UseDbRow>('SELECT * FROM uses WHERE reserve_seq = ?'),
      upsertUse: db.prepare(
        `INSERT INTO uses (batch_id, serial, state, reserve_seq, card_id, chip_uid) VALUES (?, ?, 'reserved', ?, ?, ?)
         ON CONFLICT(batch_id, serial) DO UPDATE SET state = 'reserved', reserve_seq = excluded.reserve_seq, chip_uid = excluded.chip_uid, marker_written = 0
         WHERE uses.state = 'released'`,
      ),
      setUseState: db.prepare('UPDATE uses SET state = ? WHERE reserve_seq = ?'),
      markerWritten: db.prepare('UPDATE uses SET marker_written = 1 WHERE reserve_seq = ?'),
      addUsed: db.prepare('UPDATE batches SET used = used + ? WHERE batch_id = ?'),
      openUses: db.prepare<[], UseDbRow>("SELECT * FROM uses WHERE state IN ('reserved', 'started') ORDER BY reserve_seq"),
      voucherUse: db.prepare<[number], VoucherUseDbRow>('SELECT * FROM voucher_uses WHERE serial = ?'),
      voucherUseByReserve: db.prepare<[number], VoucherUseDbRow>('SELECT * FROM voucher_uses WHERE reserve_seq = ?'),
      upsertVoucherUse: db.prepare(
        `INSERT INTO voucher_uses (serial, key_id, state, reserve_seq) VALUES (?, ?, 'reserved', ?)
         ON CONFLICT(serial) DO UPDATE SET state = 'reserved', reserve_seq = excluded.reserve_seq WHERE voucher_uses.state = 'released'`,
      ),
      setVoucherUseState: db.prepare('UPDATE voucher_uses SET state = ? WHERE reserve_seq = ?'),
      openVoucherUses: db.prepare<[], VoucherUseDbRow>("SELECT * FROM voucher_uses WHERE state IN ('reserved', 'started') ORDER BY reserve_seq"),
      settlementUse: db.prepare<[string], SettlementUseDbRow>('SELECT * FROM settlement_uses WHERE order_id = ?'),
      settlementUseByReserve: db.prepare<[number], SettlementUseDbRow>('SELECT * FROM settlement_uses WHERE reserve_seq = ?'),
      insertSettlementUse: db.prepare("INSERT INTO settlement_uses (order_id, state, reserve_seq) VALUES (?, 'reserved', ?)"),
      setSettlementUseState: db.prepare('UPDATE settlement_uses SET state = ? WHERE reserve_seq = ?'),
      openSettlementUses: db.prepare<[], SettlementUseDbRow>("SELECT * FROM settlement_uses WHERE state IN ('reserved', 'started') ORDER BY reserve_seq"),
      settlementOutcomesDue: db.prepare<[], SettlementUseDbRow>("SELECT * FROM settlement_uses WHERE state IN ('completed', 'failed', 'released') AND outcome_sent = 0 ORDER BY reserve_seq"),
      settlementOutcomeSent: db.prepare('UPDATE settlement_uses SET outcome_sent = 1 WHERE order_id = ?'),
      denied: db.prepare<[Uint8Array], { reason: string }>('SELECT reason FROM deny WHERE card_id = ?'),
      insertDeny: db.prepare('INSERT INTO deny (card_id, reason) VALUES (?, ?) ON CONFLICT(card_id) DO UPDATE SET reason = excluded.reason'),
      deleteDeny: db.prepare('DELETE FROM deny WHERE card_id = ?'),
      clearDeny: db.prepare('DELETE FROM deny'),
      insertRefusal: db.prepare('INSERT INTO refusals (time, code, detail, card_id, chip_uid) VALUES (?, ?, ?, ?, ?)'),
      refusalCounts: db.prepare<[], { code: string; n: number }>('SELECT code, COUNT(*) AS n FROM refusals GROUP BY code ORDER BY n DESC'),
      entriesFrom: db.prepare<[number, number], { seq: number; entry: Buffer }>('SELECT seq, entry FROM ledger WHERE seq >= ? ORDER BY seq LIMIT ?'),
      allEntries: db.prepare<[], { entry: Buffer }>('SELECT entry FROM ledger ORDER BY seq'),
      entryAt: db.prepare<[number], { entry: Buffer }>('SELECT entry FROM ledger WHERE seq = ?'),
      pending: db.prepare<[number, number], { seq: number; entry: Buffer }>(
        'SELECT o.seq, l.entry FROM outbox o JOIN ledger l ON l.seq = o.seq WHERE o.seq > ? ORDER BY o.seq LIMIT ?',
      ),
      pendingCount: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM outbox'),
      ack: db.prepare('DELETE FROM outbox WHERE seq = ?'),
    };
    this.head = this.readHead() ?? { seq: 0, hash: GENESIS_HASH, time: 0 };
    this.trustedTime = this.readTrustedTime();
    const mark = this.stmt.getMeta.get('clock_high_water');
    this.highWater = mark ? Number(mark.value.toString()) : 0;
    this.markSeenAt = this.monotonicMs();
  }

  /** The persisted mark (meta clock_high_water) */
  private highWater: number;
  /** The time of the last clock-trusted entry (a reset's time after a reset) */
  private trustedTime: number;
  /** The monotonic clock when the mark was last confirmed by this process (at open, or when it moved) */
  private markSeenAt: number;

  static open(path: string, clock: Clock, monotonicMs?: () => number): Ledger {
    return Ledger.over(openDatabase(path, TERMINAL_MIGRATIONS), path, clock, monotonicMs);
  }

  /** For status and audits while the daemon owns the database: reads only, migrates nothing */
  static openReadOnly(path: string, clock: Clock, monotonicMs?: () => number): Ledger {
    return Ledger.over(openDatabase(path, TERMINAL_MIGRATIONS, { readonly: true }), path, clock, monotonicMs);
  }

  /** Preparing the statements is the first read of a read-only open: a damaged or unreachable file fails here */
  private static over(db: SqliteDatabase, path: string, clock: Clock, monotonicMs?: () => number): Ledger {
    try {
      return new Ledger(db, clock, monotonicMs);
    } catch (err) {
      db.close();
      throw storageFault(err, `cannot read ${path}`);
    }
  }

  /** The device key that signs entries; set once the terminal is provisioned */
  setSigner(signer: EntrySigner): void {
    this.signer = signer;
  }

  close(): void {
    this.db.close();
  }

  get database(): SqliteDatabase {
    return this.db;
  }

  // ---------- identity ----------

  identity(): TerminalIdentity | undefined {
    const get = (key: string): Buffer | undefined => this.stmt.getMeta.get(key)?.value;
    const terminalId = get('terminal_id');
    const clinicCode = get('clinic_code');
    const root = get('root_public_key');
    const cert = get('certificate');
    if (!terminalId || !clinicCode || !root || !cert) return undefined;
    return { terminalId: terminalId.toString('utf8'), clinicCode: clinicCode.toString('utf8'), rootPublicKey: u8(root), certificate: u8(cert) };
  }

  get terminalId(): string {
    const id = this.identity();
    if (!id) throw new TallyError('NOT_PROVISIONED');
    return id.terminalId;
  }

  terminalCertificate(): Uint8Array {
    const id = this.identity();
    if (!id) throw new TallyError('NOT_PROVISIONED');
    return id.certificate;
  }

  /** Writes the identity and the first entry, which carries the certificate */
  provision(identity: TerminalIdentity): number {
    if (this.identity() || this.head.seq !== 0) throw new TallyError('ALREADY_PROVISIONED');
    return this.write('provisioning', () => {
      this.stmt.setMeta.run('terminal_id', Buffer.from(identity.terminalId, 'utf8'));
      this.stmt.setMeta.run('clinic_code', Buffer.from(identity.clinicCode, 'utf8'));
      this.stmt.setMeta.run('root_public_key', identity.rootPublicKey);
      this.stmt.setMeta.run('certificate', identity.certificate);
      return this.append({ type: EntryType.PROVISIONED, card: identity.certificate }, identity.terminalId);
    });
  }

  // ---------- clock ----------

  /** Whether the clock can be believed now: past the floor, not behind the mark, not jumped far ahead of it */
  clockTrusted(now = this.clock.now()): boolean {
    return this.clockState(now) === 'trusted';
  }

  /** How a reading stands: before the floor, behind the mark, jumped ahead of it (see MAX_LOCAL_CLOCK_LEAD_MS), or trusted */
  clockState(now = this.clock.now()): ClockState {
    if (now < CLOCK_FLOOR_MS) return 'before-floor';
    const mark = this.highWaterMark();
    if (now < mark - CLOCK_TRUST_SLACK_MS) return 'behind';
    // a ledger that never trusted a time (a new terminal) takes the first one past the floor
    if (mark >= CLOCK_FLOOR_MS && now > this.markLimit()) return 'ahead';
    return 'trusted';
  }

  /** The latest local time that is not a jump: the mark plus the lead plus what this process measured since */
  markLimit(): number {
    return this.highWaterMark() + MAX_LOCAL_CLOCK_LEAD_MS + Math.max(0, this.monotonicMs() - this.markSeenAt);
  }

  /**
   * The time validity checks use: never earlier than the latest time the
   * terminal has seen (a clock reset to 1970 cannot bring an expired batch back).
   */
  effectiveNow(): number {
    return Math.max(this.clock.now(), this.highWaterMark());
  }

  /** The latest time the terminal has trusted: its last trusted entry's time or the persisted mark */
  highWaterMark(): number {
    return Math.max(this.trustedTime, this.highWater);
  }

  /**
   * Remembers the clock's latest trusted reading, durably but at most once a
   * minute, so the high-water mark survives restarts even when no entry is written.
   * A jump (clockState 'ahead') is not trusted and moves nothing.
   */
  noteClock(): void {
    const now = this.clock.now();
    if (now < this.highWater + 60_000 || !this.clockTrusted(now)) return;
    this.saveMark(now);
  }

  /**
   * A time from the server (over its authenticated link): the mark moves up to it however far
   * ahead, durably. Never down: a time behind the mark is refused before it gets here (TerminalClock.adopt).
   */
  trustTime(time: number): void {
    if (time < CLOCK_FLOOR_MS || time <= this.highWaterMark()) {
      this.markSeenAt = this.monotonicMs();
      return;
    }
    this.saveMark(time);
  }

  private saveMark(time: number): void {
    try {
      this.stmt.setMeta.run('clock_high_water', Buffer.from(String(time)));
      this.highWater = time;
      this.markSeenAt = this.monotonicMs();
    } catch {
      // only a guard: a failure here must not stop a swipe that would record nothing anyway
    }
  }

  /** The value of a setting as the ledger last recorded it (a terminal.setting entry), undefined when never recorded */
  recordedSetting(name: LedgerSettingName): boolean | undefined {
    for (const row of this.stmt.settings.all()) {
      try {
        const setting = parseSettingDetail(parseLedgerEntry(u8(row.entry)).detail);
        if (setting.name === name) return setting.value;
      } catch {
        // not a setting this version knows: not the one asked for
      }
    }
    return undefined;
  }

  /** Records a setting in force (one signed terminal.setting entry), so the ledger shows what let a card pass */
  recordSetting(setting: LedgerSetting): number {
    return this.write('terminal setting', () => this.append({ type: EntryType.TERMINAL_SETTING, detail: encodeSettingDetail(setting) }));
  }

  /** Records a time the terminal did not take (a local jump, a server time far behind the mark): one signed entry */
  recordClockRefused(detail: string): number {
    return this.write('clock refused', () => this.append({ type: EntryType.CLOCK_REFUSED, detail: detail.slice(0, 200) }));
  }

  /**
   * Sets the mark back (or forward) to time, with the proof that vouches for it (checked by the
   * caller with crypto/clockReset.ts): one signed, clock-trusted clock.reset entry dated time, and
   * the persisted mark, in one transaction.
   */
  resetClock(time: number, proof: Uint8Array, detail: string): number {
    return this.write('clock reset', () => {
      const seq = this.append({ type: EntryType.CLOCK_RESET, card: proof, detail: detail.slice(0, 200) }, this.terminalId, { time, clockTrusted: true });
      this.stmt.setMeta.run('clock_high_water', Buffer.from(String(time)));
      this.highWater = time;
      this.trustedTime = time;
      this.markSeenAt = this.monotonicMs();
      return seq;
    });
  }

  /** The latest clock.reset or clock.refused entry, or undefined */
  lastClockEvent(): ClockEvent | undefined {
    const row = this.stmt.lastClockEvent.get();
    if (!row) return undefined;
    try {
      const entry = parseLedgerEntry(u8(row.entry));
      return { seq: entry.seq, type: entry.type === EntryType.CLOCK_RESET ? 'clock.reset' : 'clock.refused', time: entry.time, detail: entry.detail ?? '' };
    } catch {
      return undefined;
    }
  }

  /** The seq of the last clock-trusted entry */
  trustedSeq(): number {
    return this.trustedAt;
  }

  // ---------- batches and uses ----------

  batch(batchId: Uint8Array): BatchRow | undefined {
    const row = this.stmt.batch.get(batchId);
    return row && batchFromDb(row);
  }

  batches(): BatchRow[] {
    return this.stmt.batches.all().map(batchFromDb);
  }

  /** auth: how the card proved itself (its challenge and answer), or that it is a version 1 card the migration setting let pass */
  loadBatch(batch: SignedRecord<BatchFields>, whiteCardId: Uint8Array, chipUid: Uint8Array, auth?: CardAuthProof): number {
    return this.write('batch load', () => {
      if (this.stmt.batch.get(batch.cardId)) throw new TallyError('BATCH_ALREADY_LOADED');
      const seq = this.append({ type: EntryType.BATCH_LOADED, card: batch.raw, chipUid, ...authFields(auth) });
      this.stmt.insertBatch.run(batch.cardId, batch.batchNo, batch.clinicCode, batch.count, batch.validFrom, batch.validUntil, batch.publicKey, whiteCardId, seq);
      return seq;
    });
  }

  use(batchId: Uint8Array, serial: number): UseRow | undefined {
    const row = this.stmt.use.get(batchId, serial);
    return row && useFromDb(row);
  }

  useByReserveSeq(seq: number): UseRow | undefined {
    const row = this.stmt.useByReserve.get(seq);
    if (row) return useFromDb(row);
    const voucher = this.stmt.voucherUseByReserve.get(seq);
    if (voucher) return voucherUseFromDb(voucher);
    const settlement = this.stmt.settlementUseByReserve.get(seq);
    return settlement && settlementUseFromDb(settlement);
  }

  /** The use an insurance order paid for on this terminal, if any */
  settlementUse(orderId: string): UseRow | undefined {
    const row = this.stmt.settlementUse.get(orderId);
    return row && settlementUseFromDb(row);
  }

  /**
   * An insurance settlement voucher (verified by the caller) turned into a use: in one transaction the
   * settlement.reserved entry (card = the voucher's text, detail = the order id), the settlement_uses row and
   * the report queued. An order pays one use on a terminal, ever: a second is SETTLEMENT_VOUCHER_REPLAYED.
   */
  reserveSettlementUse(orderId: string, voucherText: string, options: { completeAtOnce?: string } = {}): number {
    return this.write('settlement use', () => {
      const existing = this.stmt.settlementUse.get(orderId);
      if (existing) throw new TallyError('SETTLEMENT_VOUCHER_REPLAYED', `order ${orderId} used at seq ${existing.reserve_seq}`, { reserveSeq: existing.reserve_seq, orderId });
      const seq = this.append({ type: EntryType.SETTLEMENT_RESERVED, card: new TextEncoder().encode(voucherText), detail: orderId });
      this.stmt.insertSettlementUse.run(orderId, seq);
      if (options.completeAtOnce !== undefined) {
        this.append({ type: EntryType.USE_STARTED, ref: seq, detail: options.completeAtOnce });
        this.append({ type: EntryType.USE_COMPLETED, ref: seq });
        this.stmt.setSettlementUseState.run('completed', seq);
      }
      return seq;
    });
  }

  /** Settlement uses that ended and whose outcome the server has not acknowledged: ran unless released */
  settlementOutcomesDue(): { orderId: string; ran: boolean; reserveSeq: number }[] {
    return this.stmt.settlementOutcomesDue.all().map((r) => ({ orderId: r.order_id, ran: r.state !== 'released', reserveSeq: r.reserve_seq }));
  }

  /** The server acknowledged a settlement use's outcome */
  settlementOutcomeSent(orderId: string): void {
    this.write('settlement outcome', () => this.stmt.settlementOutcomeSent.run(orderId));
  }

  /** The last use of a voucher serial on this terminal, if any */
  voucherUse(serial: number): UseRow | undefined {
    const row = this.stmt.voucherUse.get(serial);
    return row && voucherUseFromDb(row);
  }

  /**
   * A voucher written off (voucher-format.md §8): in one transaction the serial is marked written off, the
   * voucher.reserved entry appended (card = key certificate || voucher) and the report queued. A serial is
   * written off unless its last use was released.
   */
  reserveVoucherUse(voucher: { serial: number; keyId: number }, card: Uint8Array, detail: string, options: { completeAtOnce?: string } = {}): number {
    return this.write('voucher write-off', () => {
      const existing = this.stmt.voucherUse.get(voucher.serial);
      if (existing && existing.state !== 'released') throw new TallyError('VOUCHER_WRITTEN_OFF', `serial ${voucher.serial}`, { reserveSeq: existing.reserve_seq });
      const seq = this.append({ type: EntryType.VOUCHER_RESERVED, card, detail });
      if (this.stmt.upsertVoucherUse.run(voucher.serial, voucher.keyId, seq).changes !== 1) throw new TallyError('VOUCHER_WRITTEN_OFF', `serial ${voucher.serial}`);
      if (options.completeAtOnce !== undefined) {
        this.append({ type: EntryType.USE_STARTED, ref: seq, detail: options.completeAtOnce });
        this.append({ type: EntryType.USE_COMPLETED, ref: seq });
        this.stmt.setVoucherUseState.run('completed', seq);
      }
      return seq;
    });
  }

  /**
   * The deduction: in one transaction the serial is marked spent, the chained
   * entry appended and the report queued. A serial is spent unless its last use was released.
   */
  reserveUse(card: SignedRecord<OneTimeFields>, chipUid: Uint8Array, options: { completeAtOnce?: string; auth?: CardAuthProof } = {}): number {
    return this.write('deduction', () => {
      const existing = this.stmt.use.get(card.batchId, card.serial);
      if (existing && existing.state !== 'released') throw new TallyError('ALREADY_USED', `serial ${card.serial}`, { reserveSeq: existing.reserve_seq });
      const seq = this.append({ type: EntryType.USE_RESERVED, card: card.raw, chipUid, ...authFields(options.auth) });
      const changed = this.stmt.upsertUse.run(card.batchId, card.serial, seq, card.cardId, chipUid).changes;
      if (changed !== 1) throw new TallyError('ALREADY_USED', `serial ${card.serial}`);
      this.stmt.addUsed.run(1, card.batchId);
      if (options.completeAtOnce !== undefined) {
        // no device to wait for: the whole two-phase use in the same transaction
        this.append({ type: EntryType.USE_STARTED, ref: seq, detail: options.completeAtOnce });
        this.append({ type: EntryType.USE_COMPLETED, ref: seq });
        this.stmt.setUseState.run('completed', seq);
      }
      return seq;
    });
  }

  /**
   * Records what the device did with a reserved use. Idempotent: an event that
   * the use's state already passed (a repeated "finished") returns undefined.
   */
  recordDeviceEvent(reserveSeq: number, type: EntryTypeValue, detail?: string): number | undefined {
    const next = DEVICE_EVENT_STATE[type];
    if (!next) throw new TallyError('INTERNAL', `not a device event: ${type}`);
    return this.write('device event', () => {
      const use = this.stmt.useByReserve.get(reserveSeq);
      const voucher = use ? undefined : this.stmt.voucherUseByReserve.get(reserveSeq);
      const settlement = use || voucher ? undefined : this.stmt.settlementUseByReserve.get(reserveSeq);
      const state = use?.state ?? voucher?.state ?? settlement?.state;
      if (!state) throw new TallyError('INTERNAL', `no use reserved at seq ${reserveSeq}`);
      if (!NEXT_STATES[state as UseState].includes(next)) return undefined;
      const seq = this.append({ type, ref: reserveSeq, ...(detail !== undefined ? { detail } : {}) });
      if (use) {
        this.stmt.setUseState.run(next, reserveSeq);
        if (next === 'released') this.stmt.addUsed.run(-1, use.batch_id);
      } else if (voucher) {
        this.stmt.setVoucherUseState.run(next, reserveSeq);
      } else {
        this.stmt.setSettlementUseState.run(next, reserveSeq);
      }
      return seq;
    });
  }

  setMarkerWritten(reserveSeq: number): void {
    this.write('marker', () => this.stmt.markerWritten.run(reserveSeq));
  }

  /** Uses whose device session had not ended when the daemon last stopped */
  openUses(): UseRow[] {
    const cards = this.stmt.openUses.all().map(useFromDb);
    const others = [...this.stmt.openVoucherUses.all().map(voucherUseFromDb), ...this.stmt.openSettlementUses.all().map(settlementUseFromDb)];
    return others.length === 0 ? cards : [...cards, ...others].sort((a, b) => a.reserveSeq - b.reserveSeq);
  }

  // ---------- deny list ----------

  deniedReason(cardIds: readonly Uint8Array[]): string | undefined {
    for (const id of cardIds) {
      const row = this.stmt.denied.get(id);
      if (row) return row.reason;
    }
    return undefined;
  }

  /** Replaces (full) or amends (differential) the deny list in one transaction */
  applyDenyList(update: { full: boolean; add: readonly { cardId: Uint8Array; reason: string }[]; remove?: readonly Uint8Array[]; version: number }): void {
    this.write('deny list', () => {
      if (update.full) this.stmt.clearDeny.run();
      for (const item of update.add) this.stmt.insertDeny.run(item.cardId, item.reason);
      for (const id of update.remove ?? []) this.stmt.deleteDeny.run(id);
      this.stmt.setMeta.run('deny_version', Buffer.from(String(update.version)));
    });
  }

  denyListVersion(): number {
    const v = this.stmt.getMeta.get('deny_version');
    return v ? Number(v.value.toString()) : 0;
  }

  // ---------- refusals (not chained; kept for reports) ----------

  recordRefusal(code: string, detail: string | undefined, cardId?: Uint8Array, chipUid?: Uint8Array): void {
    try {
      this.stmt.insertRefusal.run(this.clock.now(), code, detail ?? null, cardId ?? null, chipUid ?? null);
    } catch {
      // a refusal already fails closed; losing its log line must not hide the refusal itself
    }
  }

  refusalCounts(): Record<string, number> {
    return Object.fromEntries(this.stmt.refusalCounts.all().map((r) => [r.code, r.n]));
  }

  // ---------- reading the chain ----------

  lastSeq(): number {
    return this.head.seq;
  }

  /** The signed bytes of one entry, or undefined when the ledger has no such seq */
  entryAt(seq: number): Uint8Array | undefined {
    const row = this.stmt.entryAt.get(seq);
    return row && u8(row.entry);
  }

  /** SHA-256 of the entry's signed bytes, computed here (the hash column is an unsigned copy) */
  entryHashAt(seq: number): Uint8Array | undefined {
    const raw = this.entryAt(seq);
    return raw && sha256(raw);
  }

  /**
   * Records that a witness outside this database (the relay board, a server checkpoint, a card's
   * marker) holds a head this ledger lacks: one signed entry, queued for the server like any other.
   */
  recordRollbackWitness(witnessSeq: number, detail: string, card?: Uint8Array): number {
    return this.write('rollback witness', () => this.append({ type: EntryType.WITNESS_ROLLBACK, ref: witnessSeq, detail: detail.slice(0, 200), ...(card ? { card } : {}) }));
  }

  *entries(): Generator<Uint8Array> {
    for (const row of this.stmt.allEntries.iterate()) yield u8(row.entry);
  }

  verify(): LedgerVerification {
    const id = this.identity();
    if (!id) throw new TallyError('NOT_PROVISIONED');
    return verifyLedgerEntries(this.entries(), id.rootPublicKey);
  }

  // ---------- outbox (what sync drains) ----------

  pending(limit: number, afterSeq = 0): OutboxEntry[] {
    return this.stmt.pending.all(afterSeq, limit).map((r) => ({ seq: r.seq, raw: u8(r.entry) }));
  }

  acknowledge(seqs: readonly number[]): void {
    this.write('acknowledge', () => {
      for (const seq of seqs) this.stmt.ack.run(seq);
    });
  }

  entriesFrom(seq: number, limit: number): OutboxEntry[] {
    return this.stmt.entriesFrom.all(seq, limit).map((r) => ({ seq: r.seq, raw: u8(r.entry) }));
  }

  pendingCount(): number {
    return this.stmt.pendingCount.get()!.n;
  }

  // ---------- internals ----------

  /** Runs fn in one IMMEDIATE transaction; any SQLite failure becomes STORAGE_FAULT (fail closed) */
  private write<T>(what: string, fn: () => T): T {
    const headBefore = this.head;
    const clockBefore = { highWater: this.highWater, trustedTime: this.trustedTime, trustedAt: this.trustedAt, markSeenAt: this.markSeenAt };
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      this.head = headBefore;
      Object.assign(this, clockBefore);
      throw storageFault(err, what);
    }
  }

  /**
   * The chain head from the last entry's bytes (seq parsed, hash computed), and the
   * latest time recorded (a clock guard only: the verifier checks the signed times).
   */
  private readHead(): Head | undefined {
    const row = this.stmt.head.get();
    if (!row) return undefined;
    const raw = u8(row.entry);
    let seq = row.seq;
    let time = 0;
    try {
      const entry = parseLedgerEntry(raw);
      seq = entry.seq;
      time = entry.time;
    } catch {
      this.headDamaged = `the entry in row ${row.seq} does not parse`;
    }
    if (seq !== row.seq) this.headDamaged = `row ${row.seq} holds the entry of seq ${seq}`;
    return { seq, hash: sha256(raw), time };
  }

  /** The time of the last clock-trusted entry, reading back from the head (usually the head itself) */
  private readTrustedTime(): number {
    let read = 0;
    for (const row of this.stmt.newestFirst.iterate()) {
      try {
        const entry = parseLedgerEntry(u8(row.entry));
        if (entry.clockTrusted) {
          this.trustedAt = entry.seq;
          return entry.time;
        }
      } catch {
        // a damaged entry: the head check refuses appends; the persisted mark still holds
      }
      if (++read >= 100_000) break;
    }
    return 0;
  }

  private trustedAt = 0;

  /** Set when the last entry on disk is not one this ledger could have written: appends then refuse */
  private headDamaged: string | undefined;

  /** The last entry on disk must be the one this ledger last wrote (or read at open): never append after an edited tail */
  private checkHead(): void {
    if (this.headDamaged) throw new TallyError('LEDGER_BROKEN', this.headDamaged, { seq: this.head.seq });
    const row = this.stmt.head.get();
    const onDisk = row ? { seq: row.seq, hash: sha256(u8(row.entry)) } : { seq: 0, hash: GENESIS_HASH };
    if (onDisk.seq !== this.head.seq || !bytesEqual(onDisk.hash, this.head.hash)) {
      throw new TallyError('LEDGER_BROKEN', `the last entry on disk (seq ${onDisk.seq}) is not the chain head (seq ${this.head.seq}): the database was changed behind the terminal`, {
        diskSeq: onDisk.seq,
        headSeq: this.head.seq,
      });
    }
  }

  /** Appends one signed, chained entry and its outbox row; call inside write() */
  private append(
    fields: Pick<LedgerEntryFields, 'type'> & Partial<LedgerEntryFields>,
    terminalId = this.terminalId,
    clock: { time: number; clockTrusted: boolean } | undefined = undefined,
  ): number {
    if (!this.signer) throw new TallyError('NOT_PROVISIONED', 'no device key loaded');
    this.checkHead();
    const time = clock?.time ?? this.clock.now();
    const clockTrusted = clock?.clockTrusted ?? this.clockTrusted(time);
    const seq = this.head.seq + 1;
    const body = encodeLedgerEntryBody({
      ...fields,
      seq,
      prevHash: this.head.hash,
      time,
      clockTrusted,
      terminalId,
    });
    const raw = encodeLedgerEntry(body, this.signer(body));
    const hash = sha256(raw);
    this.stmt.insertEntry.run(seq, fields.type, time, hash, raw);
    this.stmt.insertOutbox.run(seq);
    // the head moves now; write() puts it back if the transaction rolls back
    this.head = { seq, hash, time: Math.max(time, this.head.time) };
    if (clockTrusted && time > this.trustedTime) {
      this.trustedTime = time;
      this.markSeenAt = this.monotonicMs();
    }
    if (clockTrusted) this.trustedAt = seq;
    return seq;
  }
}

/** How a card proved it is the chip the issuer made: its challenge and answer; or a version 1 card the migration setting let pass */
export type CardAuthProof = { readonly challenge: Uint8Array; readonly answer: Uint8Array } | { readonly version1: true };

/** The detail a version 1 card's entry carries: the setting that let it pass */
export const VERSION1_ACCEPTED_DETAIL = 'version 1 card accepted: cards.acceptVersion1';

function authFields(auth: CardAuthProof | undefined): Partial<LedgerEntryFields> {
  if (!auth) return {};
  return 'version1' in auth ? { detail: VERSION1_ACCEPTED_DETAIL } : { cardChallenge: auth.challenge, cardAnswer: auth.answer };
}

interface BatchDbRow {
  batch_id: Buffer;
  batch_no: number;
  clinic_code: string;
  count: number;
  valid_from: number;
  valid_until: number;
  public_key: Buffer;
  white_card_id: Buffer;
  loaded_seq: number;
  used: number;
}

interface UseDbRow {
  batch_id: Buffer;
  serial: number;
  state: string;
  reserve_seq: number;
  card_id: Buffer;
  marker_written: number;
}

function batchFromDb(r: BatchDbRow): BatchRow {
  return {
    batchId: u8(r.batch_id),
    batchNo: r.batch_no,
    clinicCode: r.clinic_code,
    count: r.count,
    validFrom: r.valid_from,
    validUntil: r.valid_until,
    publicKey: u8(r.public_key),
    whiteCardId: u8(r.white_card_id),
    loadedSeq: r.loaded_seq,
    used: r.used,
  };
}

interface VoucherUseDbRow {
  serial: number;
  key_id: number;
  state: string;
  reserve_seq: number;
}

const NO_BYTES = new Uint8Array(0);

function voucherUseFromDb(r: VoucherUseDbRow): UseRow {
  return { batchId: NO_BYTES, serial: r.serial, state: r.state as UseState, reserveSeq: r.reserve_seq, cardId: NO_BYTES, markerWritten: true, voucher: true };
}

interface SettlementUseDbRow {
  order_id: string;
  state: string;
  reserve_seq: number;
  outcome_sent: number;
}

function settlementUseFromDb(r: SettlementUseDbRow): UseRow {
  return { batchId: NO_BYTES, serial: 0, state: r.state as UseState, reserveSeq: r.reserve_seq, cardId: NO_BYTES, markerWritten: true, settlement: r.order_id };
}

function useFromDb(r: UseDbRow): UseRow {
  return {
    batchId: u8(r.batch_id),
    serial: r.serial,
    state: r.state as UseState,
    reserveSeq: r.reserve_seq,
    cardId: u8(r.card_id),
    markerWritten: r.marker_written === 1,
  };
}

export function describeBatch(b: BatchRow): string {
  return `batch ${b.batchNo} (${toHex(b.batchId)}) clinic ${b.clinicCode}: ${b.used}/${b.count} used`;
}
