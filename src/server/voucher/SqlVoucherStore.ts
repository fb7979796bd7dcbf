/**
 * The voucher back office's state (seed 004: generate, send, issue, book, write off, void, count) over the
 * server's SqlDriver, SQLite and PostgreSQL with one SQL text. Every state change is ONE conditional UPDATE
 * (WHERE state IN ...): of many concurrent write-offs or bookings of a voucher exactly one changes a row,
 * and a slot's booked count only grows below its capacity. A booking is the two updates in one transaction.
 */
import { TallyError } from '../../errors.js';
import type { SqlDriver } from '../store/SqlDriver.js';

export type VoucherState = 'generated' | 'sent' | 'issued' | 'booked' | 'written_off' | 'voided';

/** What a batch is: the vouchers' exam type, scope and validity */
export interface VoucherBatchFields {
  readonly batchId: string;
  readonly examType: string;
  /** 1 a clinic, 2 a device class (voucher-format.md §2) */
  readonly scopeKind: 1 | 2;
  readonly scope: string;
  readonly count: number;
  /** Unix seconds */
  readonly validFrom: number;
  readonly validUntil: number;
  readonly bookingRequired: boolean;
}

export interface VoucherBatchSpec extends VoucherBatchFields {
  /** The first serial of the batch (serials are unique across the back office) */
  readonly firstSerial: number;
}

export interface VoucherRow {
  readonly serial: number;
  readonly batchId: string;
  readonly state: VoucherState;
  readonly validUntil: number;
  readonly bookingRequired: boolean;
  readonly centreId?: string;
  readonly walletId?: string;
  readonly slotId?: number;
  readonly terminalId?: string;
  readonly community?: string;
  /** Where it was written off */
  readonly clinicCode?: string;
  /** Unix seconds: when the terminal's ledger said the exam (the device session) completed */
  readonly completedAt?: number;
  /** How many times a terminal released it before its device started (each gave it back) */
  readonly releases: number;
}

/** The answer to a write-off claim: granted, or the refusal's code (errors.ts) */
export type WriteOffAnswer = { readonly granted: true } | { readonly granted: false; readonly code: 'VOUCHER_WRITTEN_OFF' | 'VOUCHER_VOIDED' | 'VOUCHER_NOT_BOOKED' | 'VOUCHER_EXPIRED' | 'VOUCHER_NOT_ISSUED'; readonly holder?: string };

type Row = Record<string, string | number | null>;
const num = (v: string | number | null | undefined): number => Number(v);

export class SqlVoucherStore {
  constructor(private readonly db: SqlDriver) {}

  /** A batch and its vouchers, all 'generated' */
  async generateBatch(spec: VoucherBatchSpec, at: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run('INSERT INTO voucher_batches (batch_id, exam_type, scope_kind, scope, count, valid_from, valid_until, booking_required, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
        spec.batchId, spec.examType, spec.scopeKind, spec.scope, spec.count, spec.validFrom, spec.validUntil, spec.bookingRequired ? 1 : 0, at,
      ]);
      const rows = Array.from({ length: spec.count }, (_, i) => [spec.firstSerial + i, spec.batchId, 'generated'] as const);
      await tx.insertIgnoring('vouchers', ['serial', 'batch_id', 'state'], ['serial'], rows);
    });
  }

  /** Sends up to `count` generated vouchers of a batch to a community centre: how many went */
  sendToCentre(batchId: string, centreId: string, community: string, count: number, at: number): Promise<number> {
    return this.db.run(
      `UPDATE vouchers SET state = 'sent', centre_id = ?, community = ?, sent_at = ?
       WHERE serial IN (SELECT serial FROM vouchers WHERE batch_id = ? AND state = 'generated' ORDER BY serial LIMIT ?) AND state = 'generated'`,
      [centreId, community, at, batchId, count],
    );
  }

  /** The centre issues a voucher it holds to a wallet: true when it did */
  async issueToWallet(serial: number, centreId: string, walletId: string, at: number): Promise<boolean> {
    return (await this.db.run("UPDATE vouchers SET state = 'issued', wallet_id = ?, issued_at = ? WHERE serial = ? AND state = 'sent' AND centre_id = ?", [walletId, at, serial, centreId])) === 1;
  }

  /** A new slot: false when the slot id is taken (nothing changed) */
  async addSlot(slot: { slotId: number; clinicCode: string; department: string; doctor: string; start: number; end: number; capacity: number }): Promise<boolean> {
    const inserted = await this.db.insertIgnoring(
      'voucher_slots',
      ['slot_id', 'clinic_code', 'department', 'doctor', 'start_at', 'end_at', 'capacity'],
      ['slot_id'],
      [[slot.slotId, slot.clinicCode, slot.department, slot.doctor, slot.start, slot.end, slot.capacity]],
    );
    return inserted.length === 1;
  }

  /** The newest vouchers (highest serials), at most `limit` */
  async latest(limit = 500): Promise<VoucherRow[]> {
    const rows = await this.db.all<Row>('SELECT v.*, b.valid_until, b.booking_required FROM vouchers v JOIN voucher_batches b ON b.batch_id = v.batch_id ORDER BY v.serial DESC LIMIT ?', [limit]);
    return rows.map(voucherFromRow);
  }

  /**
   * Books a slot for an issued, unexpired voucher of that wallet (the seed: only while it is unbooked, unchecked,
   * valid and not written off): the slot's count and the voucher's state, each one conditional update, in one
   * transaction; either failing books nothing. 'slot-full', 'not-bookable' or 'booked'.
   */
  book(serial: number, walletId: string, slotId: number, nowSeconds: number): Promise<'booked' | 'slot-full' | 'not-bookable'> {
    return this.db
      .transaction(async (tx) => {
        const voucher = await tx.run(
          "UPDATE vouchers SET state = 'booked', slot_id = ?, booked_at = ? WHERE serial = ? AND wallet_id = ? AND state = 'issued' AND batch_id IN (SELECT batch_id FROM voucher_batches WHERE valid_until >= ?)",
          [slotId, nowSeconds, serial, walletId, nowSeconds],
        );
        if (voucher !== 1) throw new BookingRefused('not-bookable');
        const seat = await tx.run('UPDATE voucher_slots SET booked = booked + 1 WHERE slot_id = ? AND booked < capacity', [slotId]);
        if (seat !== 1) throw new BookingRefused('slot-full');
        return 'booked' as const;
      })
      .catch((err: unknown) => {
        if (err instanceof BookingRefused) return err.outcome;
        throw err;
      });
  }

  /**
   * A terminal's write-off claim (online, before its ledger entry) or its ledger entry arriving (offline): one
   * conditional update. The same terminal again is granted (a resend); another terminal is refused with the holder.
   */
  async writeOff(serial: number, terminalId: string, clinicCode: string, nowSeconds: number): Promise<WriteOffAnswer> {
    const changed = await this.db.run(
      `UPDATE vouchers SET state = 'written_off', terminal_id = ?, clinic_code = ?, written_off_at = ?
       WHERE serial = ? AND (state = 'booked' OR (state IN ('sent', 'issued') AND batch_id IN (SELECT batch_id FROM voucher_batches WHERE booking_required = 0)))`,
      [terminalId, clinicCode, nowSeconds, serial],
    );
    if (changed === 1) return { granted: true };
    const row = await this.voucher(serial);
    if (!row) return { granted: false, code: 'VOUCHER_NOT_ISSUED' };
    if (row.state === 'written_off') return row.terminalId === terminalId ? { granted: true } : { granted: false, code: 'VOUCHER_WRITTEN_OFF', ...(row.terminalId ? { holder: row.terminalId } : {}) };
    if (row.state === 'voided') return { granted: false, code: 'VOUCHER_VOIDED' };
    if (row.state === 'generated') return { granted: false, code: 'VOUCHER_NOT_ISSUED' };
    return { granted: false, code: 'VOUCHER_NOT_BOOKED' };
  }

  /**
   * A terminal released its use of the voucher before the device started (use.released): the write-off it held is
   * given back, one conditional update (only that terminal's write-off, only while written off): the voucher is
   * booked again if it was (its seat kept), else issued (or sent). True when it did.
   */
  async release(serial: number, terminalId: string, nowSeconds: number): Promise<boolean> {
    return (
      (await this.db.run(
        `UPDATE vouchers SET state = CASE WHEN slot_id IS NOT NULL THEN 'booked' WHEN wallet_id IS NOT NULL THEN 'issued' ELSE 'sent' END,
           terminal_id = NULL, clinic_code = NULL, written_off_at = NULL, completed_at = NULL, released_at = ?, releases = releases + 1
         WHERE serial = ? AND state = 'written_off' AND terminal_id = ?`,
        [nowSeconds, serial, terminalId],
      )) === 1
    );
  }

  /** The terminal's use.completed: the exam is complete (the seed's 检查核实), once; true when it changed the row */
  async complete(serial: number, terminalId: string, atSeconds: number): Promise<boolean> {
    return (await this.db.run("UPDATE vouchers SET completed_at = ? WHERE serial = ? AND state = 'written_off' AND terminal_id = ? AND completed_at IS NULL", [atSeconds, serial, terminalId])) === 1;
  }

  /** Voids the vouchers past their validity that were not written off: how many */
  voidExpired(nowSeconds: number): Promise<number> {
    return this.db.run(
      `UPDATE vouchers SET state = 'voided', voided_at = ?, void_reason = 'expired'
       WHERE state IN ('generated', 'sent', 'issued', 'booked') AND batch_id IN (SELECT batch_id FROM voucher_batches WHERE valid_until < ?)`,
      [nowSeconds, nowSeconds],
    );
  }

  async voucher(serial: number): Promise<VoucherRow | undefined> {
    const rows = await this.db.all<Row>(
      'SELECT v.*, b.valid_until, b.booking_required FROM vouchers v JOIN voucher_batches b ON b.batch_id = v.batch_id WHERE v.serial = ?',
      [serial],
    );
    return rows[0] && voucherFromRow(rows[0]);
  }

  /** The seed's statistics: generated, sent, voided and written off, per community (or clinic for write-offs) */
  async statistics(by: 'community' | 'clinic'): Promise<{ key: string; generated: number; sent: number; voided: number; writtenOff: number }[]> {
    const column = by === 'community' ? 'community' : 'clinic_code';
    const rows = await this.db.all<Row>(
      `SELECT COALESCE(${column}, '') AS k, COUNT(*) AS generated,
         SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END) AS sent,
         SUM(CASE WHEN state = 'voided' THEN 1 ELSE 0 END) AS voided,
         SUM(CASE WHEN state = 'written_off' THEN 1 ELSE 0 END) AS written_off
       FROM vouchers GROUP BY COALESCE(${column}, '') ORDER BY k`,
    );
    return rows.map((r) => ({ key: String(r.k), generated: num(r.generated), sent: num(r.sent), voided: num(r.voided), writtenOff: num(r.written_off) }));
  }

  /** The next free serial: one past the highest any batch holds (the first is 1,000,001) */
  async nextSerial(): Promise<number> {
    const rows = await this.db.all<Row>('SELECT MAX(serial) AS m FROM vouchers');
    const max = rows[0]?.m;
    return max === null || max === undefined ? 1_000_001 : num(max) + 1;
  }

  async batch(batchId: string): Promise<VoucherBatchRow | undefined> {
    const r = (await this.db.all<Row>('SELECT * FROM voucher_batches WHERE batch_id = ?', [batchId]))[0];
    return r && batchFromRow(r);
  }

  async batches(): Promise<VoucherBatchRow[]> {
    return (await this.db.all<Row>('SELECT * FROM voucher_batches ORDER BY created_at, batch_id')).map(batchFromRow);
  }

  async slot(slotId: number): Promise<VoucherSlotRow | undefined> {
    const r = (await this.db.all<Row>('SELECT * FROM voucher_slots WHERE slot_id = ?', [slotId]))[0];
    return r && slotFromRow(r);
  }

  /** Slots of a clinic (every clinic without one) that have not ended by `nowSeconds` */
  async slots(nowSeconds: number, clinicCode?: string): Promise<VoucherSlotRow[]> {
    const rows = await this.db.all<Row>(
      `SELECT * FROM voucher_slots WHERE end_at >= ?${clinicCode !== undefined ? ' AND clinic_code = ?' : ''} ORDER BY start_at, slot_id`,
      clinicCode !== undefined ? [nowSeconds, clinicCode] : [nowSeconds],
    );
    return rows.map(slotFromRow);
  }

  /** The vouchers a wallet holds that are not written off (a written-off voucher leaves the wallet) */
  async walletVouchers(walletId: string): Promise<VoucherRow[]> {
    const rows = await this.db.all<Row>(
      `SELECT v.*, b.valid_until, b.booking_required FROM vouchers v JOIN voucher_batches b ON b.batch_id = v.batch_id
       WHERE v.wallet_id = ? AND v.state <> 'written_off' ORDER BY v.serial`,
      [walletId],
    );
    return rows.map(voucherFromRow);
  }

  /** Who got what at a centre: the vouchers it holds or issued, newest first */
  async centreVouchers(centreId: string, limit = 500): Promise<VoucherRow[]> {
    const rows = await this.db.all<Row>(
      `SELECT v.*, b.valid_until, b.booking_required FROM vouchers v JOIN voucher_batches b ON b.batch_id = v.batch_id
       WHERE v.centre_id = ? ORDER BY v.serial DESC LIMIT ?`,
      [centreId, limit],
    );
    return rows.map(voucherFromRow);
  }

  /**
   * Takes a personal QR code once (wallet-qr.md §3): `code` names it (key id and nonce), kept until `expiresAt`.
   * One conditional insert: of concurrent presentations of one code exactly one is true, before and after a
   * restart. Codes expired `pruneMarginSeconds` before `nowSeconds` are deleted first (they fail their expiry
   * check before they get here; the margin covers servers whose clocks differ).
   */
  async takeWalletQr(code: string, walletId: string, expiresAt: number, nowSeconds: number, pruneMarginSeconds: number): Promise<boolean> {
    await this.db.run('DELETE FROM wallet_qr_taken WHERE expires_at < ?', [nowSeconds - pruneMarginSeconds]);
    return (await this.db.insertIgnoring('wallet_qr_taken', ['code', 'wallet_id', 'expires_at'], ['code'], [[code, walletId, expiresAt]])).length === 1;
  }

  /** How many personal QR codes are remembered as taken (not yet pruned) */
  async walletQrsRemembered(): Promise<number> {
    return num((await this.db.all<Row>('SELECT COUNT(*) AS n FROM wallet_qr_taken'))[0]?.n ?? 0);
  }

  /** Voids one voucher not written off yet (recalled, lost): true when it did */
  async void(serial: number, reason: string, nowSeconds: number): Promise<boolean> {
    return (
      (await this.db.run("UPDATE vouchers SET state = 'voided', voided_at = ?, void_reason = ? WHERE serial = ? AND state IN ('generated', 'sent', 'issued', 'booked')", [nowSeconds, reason, serial])) === 1
    );
  }

  /** Serials voided for a reason other than expiry: the trust list revokes them (an expired voucher fails on its own) */
  async revokedSerials(): Promise<number[]> {
    return (await this.db.all<Row>("SELECT serial FROM vouchers WHERE state = 'voided' AND void_reason <> 'expired' ORDER BY serial")).map((r) => num(r.serial));
  }

  /**
   * The seed's statistics per period: how many vouchers were generated (their batch created), sent, voided and
   * written off in each UTC day, week (Monday) or month from `from` to `until` (Unix seconds), per community
   * (where the voucher was sent) or per clinic (where it was written off). Four grouped counts in SQL, by day.
   */
  async periodStatistics(options: { by: 'community' | 'clinic'; period: 'day' | 'week' | 'month'; from: number; until: number }): Promise<VoucherPeriodRow[]> {
    const column = options.by === 'community' ? 'v.community' : 'v.clinic_code';
    const events: Array<[keyof Omit<VoucherPeriodRow, 'period' | 'key'>, string]> = [
      ['generated', 'b.created_at'],
      ['sent', 'v.sent_at'],
      ['voided', 'v.voided_at'],
      ['writtenOff', 'v.written_off_at'],
      ['completed', 'v.completed_at'],
    ];
    const out = new Map<string, VoucherPeriodRow>();
    for (const [name, at] of events) {
      const rows = await this.db.all<Row>(
        `SELECT COALESCE(${column}, '') AS k, ${at} / 86400 AS d, COUNT(*) AS n
         FROM vouchers v JOIN voucher_batches b ON b.batch_id = v.batch_id
         WHERE ${at} IS NOT NULL AND ${at} >= ? AND ${at} <= ? GROUP BY COALESCE(${column}, ''), ${at} / 86400`,
        [options.from, options.until],
      );
      for (const r of rows) {
        const period = periodOf(num(r.d), options.period);
        const key = String(r.k);
        const id = `${period}\u0000${key}`;
        const row = out.get(id) ?? { period, key, generated: 0, sent: 0, voided: 0, writtenOff: 0, completed: 0 };
        out.set(id, { ...row, [name]: row[name] + num(r.n) });
      }
    }
    return [...out.values()].sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

export interface VoucherBatchRow extends VoucherBatchFields {
  readonly createdAt: number;
}

export interface VoucherSlotRow {
  readonly slotId: number;
  readonly clinicCode: string;
  readonly department: string;
  readonly doctor: string;
  readonly start: number;
  readonly end: number;
  readonly capacity: number;
  readonly booked: number;
}

export interface VoucherPeriodRow {
  /** YYYY-MM-DD (day, or the Monday of a week) or YYYY-MM */
  readonly period: string;
  readonly key: string;
  readonly generated: number;
  readonly sent: number;
  readonly voided: number;
  readonly writtenOff: number;
  /** Written off and the exam completed (the terminal's use.completed) */
  readonly completed: number;
}

function periodOf(day: number, period: 'day' | 'week' | 'month'): string {
  // day 0 (1970-01-01) was a Thursday: Monday is 3 days before
  const start = period === 'week' ? day - ((day + 3) % 7) : day;
  const iso = new Date(start * 86_400_000).toISOString();
  return period === 'month' ? iso.slice(0, 7) : iso.slice(0, 10);
}

function batchFromRow(r: Row): VoucherBatchRow {
  return {
    batchId: String(r.batch_id),
    examType: String(r.exam_type),
    scopeKind: num(r.scope_kind) === 2 ? 2 : 1,
    scope: String(r.scope),
    count: num(r.count),
    validFrom: num(r.valid_from),
    validUntil: num(r.valid_until),
    bookingRequired: num(r.booking_required) === 1,
    createdAt: num(r.created_at),
  };
}

function slotFromRow(r: Row): VoucherSlotRow {
  return {
    slotId: num(r.slot_id),
    clinicCode: String(r.clinic_code),
    department: String(r.department),
    doctor: String(r.doctor),
    start: num(r.start_at),
    end: num(r.end_at),
    capacity: num(r.capacity),
    booked: num(r.booked),
  };
}

function voucherFromRow(r: Row): VoucherRow {
  return {
    serial: num(r.serial),
    batchId: String(r.batch_id),
    state: r.state as VoucherState,
    validUntil: num(r.valid_until),
    bookingRequired: num(r.booking_required) === 1,
    ...(r.centre_id !== null ? { centreId: String(r.centre_id) } : {}),
    ...(r.wallet_id !== null ? { walletId: String(r.wallet_id) } : {}),
    ...(r.slot_id !== null ? { slotId: num(r.slot_id) } : {}),
    ...(r.terminal_id !== null ? { terminalId: String(r.terminal_id) } : {}),
    ...(r.community !== null && r.community !== undefined ? { community: String(r.community) } : {}),
    ...(r.clinic_code !== null && r.clinic_code !== undefined ? { clinicCode: String(r.clinic_code) } : {}),
    ...(r.completed_at !== null && r.completed_at !== undefined ? { completedAt: num(r.completed_at) } : {}),
    releases: num(r.releases ?? 0),
  };
}

/** Unwinds the booking's transaction; answered as its outcome */
class BookingRefused extends TallyError {
  constructor(readonly outcome: 'slot-full' | 'not-bookable') {
    super(outcome === 'slot-full' ? 'VOUCHER_SLOT_FULL' : 'VOUCHER_NOT_BOOKABLE', outcome);
    this.message = outcome;
  }
}
