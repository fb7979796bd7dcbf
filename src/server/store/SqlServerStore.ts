/** ServerStore over a SqlDriver: the same SQL for SQLite and PostgreSQL. */
import type {
  Alert,
  AlertKind,
  BatchHolder,
  BatchReconciliationRow,
  BatchRow,
  ChainNeighbour,
  DailyUses,
  DailyUsesQuery,
  UsesKey,
  UsesPeriod,
  UsesSum,
  UsesSeries,
  EntryRow,
  HeartbeatRow,
  DeniedCard,
  InsertOutcome,
  OpenUse,
  Rejection,
  SerialUse,
  VoucherUse,
  ServerStore,
  SmsReportRow,
  StoredEntry,
  TerminalRegistration,
  TerminalRow,
} from '../ServerStore.js';
import { bytesEqual } from '../../codecs/bytes.js';
import type { SqlDriver, SqlExecutor, SqlValue } from './SqlDriver.js';
import { bytes, num, optionalNumber, type Row } from './sqlRows.js';
import type { RegistryStore } from '../registry/RegistryStore.js';
import { SqlRegistryStore } from '../registry/SqlRegistryStore.js';
import type { AccessStore } from '../access/AccessStore.js';
import { SqlAccessStore } from '../access/SqlAccessStore.js';
import type { InsuranceStore } from '../insurance/InsuranceStore.js';
import { SqlInsuranceStore } from '../insurance/SqlInsuranceStore.js';
import { SqlVoucherStore } from '../voucher/SqlVoucherStore.js';
import { POSTGRES_DAY_OF, SQLITE_DAY_OF } from './schema.js';

const DAY_MS = 86_400_000;
let lastDay = { start: Number.NaN, day: '' };

/** A roll-up row; `untrusted` 1: the day is the server's arrival day, the terminal's clock was not trusted */
function dailyRow(r: Row): DailyUses {
  const row = { terminalId: String(r.terminal_id), clinicCode: String(r.clinic_code), day: String(r.day), uses: num(r.uses) };
  return num(r.untrusted) === 1 ? { ...row, clockUntrusted: true } : row;
}

/** YYYY-MM-DD (UTC) of a time; the last day is remembered, as a report's entries mostly share one */
export function dayOf(time: number): string {
  const start = time - (((time % DAY_MS) + DAY_MS) % DAY_MS);
  if (start !== lastDay.start) lastDay = { start, day: new Date(time).toISOString().slice(0, 10) };
  return lastDay.day;
}

const ENTRY_COLUMNS = ['terminal_id', 'seq', 'type', 'time', 'day', 'clock_trusted', 'clinic_code', 'batch_id', 'serial', 'ref', 'hash', 'prev_hash', 'raw', 'received_at'] as const;

const USE_RESERVED = 3;
const USE_RELEASED = 6;
const VOUCHER_RESERVED = 12;

function terminalFromRow(row: Row): TerminalRow {
  return {
    terminalId: String(row.terminal_id),
    clinicCode: String(row.clinic_code),
    devicePublicKey: bytes(row.device_public_key),
    certificate: bytes(row.certificate),
    contiguousSeq: num(row.contiguous_seq),
    highestSeq: num(row.highest_seq),
    firstSeenAt: num(row.first_seen_at),
  };
}

function entryFromRow(row: Row): StoredEntry {
  return {
    terminalId: String(row.terminal_id),
    seq: num(row.seq),
    type: num(row.type),
    time: num(row.time),
    clockTrusted: num(row.clock_trusted) === 1,
    clinicCode: String(row.clinic_code),
    ...(row.batch_id !== null ? { batchId: String(row.batch_id) } : {}),
    ...(row.serial !== null ? { serial: num(row.serial) } : {}),
    ...(row.ref !== null ? { ref: num(row.ref) } : {}),
    hash: bytes(row.hash),
    prevHash: bytes(row.prev_hash),
    raw: bytes(row.raw),
    receivedAt: num(row.received_at),
  };
}

/**
 * use.reserved entries of `count` (batch, serial) pairs that no release cancels. A VALUES table, then the
 * partial index: each serial is looked up (an OR chain made SQLite scan). CROSS JOIN keeps SQLite from turning
 * it around into a scan of every stored entry (and no ORDER BY, which invited that scan).
 */
export function openUsesSql(count: number): string {
  return `SELECT e.batch_id, e.serial, e.terminal_id, e.seq
    FROM (VALUES ${Array.from({ length: count }, () => '(CAST(? AS TEXT), CAST(? AS BIGINT))').join(', ')}) AS w
    CROSS JOIN entries e
    WHERE e.batch_id = w.column1 AND e.serial = w.column2 AND e.type = ${USE_RESERVED}
      AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = ${USE_RELEASED} AND r.ref = e.seq)`;
}

/** A daily table's position: the last row given (terminal, day, clinic); null: the table was read to its end */
type DailyPosition = readonly [string, string, string];
type DailyCursor = readonly [DailyPosition | null | undefined, DailyPosition | null | undefined];

function encodeDailyCursor(cursor: DailyCursor): string {
  return Buffer.from(JSON.stringify(cursor.map((p) => (p === undefined ? 0 : p))), 'utf8').toString('base64url');
}

/** The page cursor, or a StoreInputError when it is not one this store made */
export function parseDailyCursor(text: string | undefined): DailyCursor | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  const position = (p: unknown): DailyPosition | null | undefined | false =>
    p === 0 ? undefined : p === null ? null : Array.isArray(p) && p.length === 3 && p.every((x) => typeof x === 'string') ? (p as unknown as DailyPosition) : false;
  if (!Array.isArray(value) || value.length !== 2) throw new RangeError('not a page cursor');
  const [a, b] = [position(value[0]), position(value[1])];
  if (a === false || b === false) throw new RangeError('not a page cursor');
  return [a, b];
}

/** The Monday (YYYY-MM-DD) of a day's ISO week; the last one is remembered */
let lastWeek = { day: '', week: '' };
export function weekOf(day: string): string {
  if (day !== lastWeek.day) {
    const start = Date.parse(`${day}T00:00:00Z`);
    lastWeek = { day, week: new Date(start - ((new Date(start).getUTCDay() + 6) % 7) * DAY_MS).toISOString().slice(0, 10) };
  }
  return lastWeek.week;
}

/**
 * INSERT ... ON CONFLICT DO UPDATE adding to the counts, many rows a statement (each key once: PostgreSQL refuses
 * a row changed twice in one statement)
 */
async function upsertAdding(tx: SqlExecutor, table: string, keys: readonly string[], counts: readonly string[], rows: ReadonlyArray<readonly SqlValue[]>): Promise<void> {
  const columns = [...keys, ...counts];
  const one = `(${columns.map(() => '?').join(', ')})`;
  for (let i = 0; i < rows.length; i += 200) {
    const part = rows.slice(i, i + 200);
    await tx.run(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${part.map(() => one).join(', ')}
       ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${counts.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', ')}`,
      part.flat(),
    );
  }
}

/**
 * The changes one transaction makes to the roll-ups above the daily rows (migration 13): per terminal and per
 * clinic, by ISO week and month, and per clinic by day; untrusted uses apart, dated as in the daily rows
 */
class RollupDelta {
  private readonly byTerminal = new Map<string, SqlValue[]>();
  private readonly byClinic = new Map<string, SqlValue[]>();

  add(terminalId: string, clinicCode: string, day: string, untrusted: boolean, uses: number): void {
    const u = untrusted ? 1 : 0;
    const buckets = [['day', day], ['week', weekOf(day)], ['month', day.slice(0, 7)]] as const;
    for (const [period, bucket] of buckets) {
      RollupDelta.bump(this.byClinic, [period, clinicCode, bucket, u], uses);
      if (period !== 'day') RollupDelta.bump(this.byTerminal, [period, terminalId, clinicCode, bucket, u], uses);
    }
  }

  private static bump(map: Map<string, SqlValue[]>, key: ReadonlyArray<string | number>, uses: number): void {
    const k = key.join('\u0000');
    const row = map.get(k);
    if (row) row[row.length - 1] = (row[row.length - 1] as number) + uses;
    else map.set(k, [...key, uses]);
  }

  async apply(tx: SqlExecutor): Promise<void> {
    const sorted = (map: Map<string, SqlValue[]>): SqlValue[][] => [...map.entries()].filter(([, r]) => r[r.length - 1] !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
    await upsertAdding(tx, 'uses_by_terminal', ['period', 'terminal_id', 'clinic_code', 'bucket', 'untrusted'], ['uses'], sorted(this.byTerminal));
    await upsertAdding(tx, 'uses_by_clinic', ['period', 'clinic_code', 'bucket', 'untrusted'], ['uses'], sorted(this.byClinic));
  }
}

export class SqlServerStore implements ServerStore {
  readonly kind: 'sqlite' | 'postgres';
  readonly registry: RegistryStore;
  readonly access: AccessStore;
  readonly insurance: InsuranceStore;
  readonly vouchers: SqlVoucherStore;
  constructor(private readonly db: SqlDriver) {
    this.kind = db.dialect;
    this.registry = new SqlRegistryStore(db);
    this.access = new SqlAccessStore(db);
    this.insurance = new SqlInsuranceStore(db);
    this.vouchers = new SqlVoucherStore(db);
  }

  async registerTerminal(registration: TerminalRegistration, at: number): Promise<'new' | 'same' | 'different'> {
    const inserted = await this.db.insertIgnoring(
      'terminals',
      ['terminal_id', 'clinic_code', 'device_public_key', 'certificate', 'first_seen_at'],
      ['terminal_id'],
      [[registration.terminalId, registration.clinicCode, registration.devicePublicKey, registration.certificate, at]],
    );
    if (inserted.length > 0) return 'new';
    const existing = await this.terminal(registration.terminalId);
    return existing && bytesEqual(existing.devicePublicKey, registration.devicePublicKey) ? 'same' : 'different';
  }

  async terminal(terminalId: string): Promise<TerminalRow | undefined> {
    const rows = await this.db.all<Row>('SELECT * FROM terminals WHERE terminal_id = ?', [terminalId]);
    return rows[0] ? terminalFromRow(rows[0]) : undefined;
  }

  async terminals(): Promise<TerminalRow[]> {
    return (await this.db.all<Row>('SELECT * FROM terminals ORDER BY terminal_id')).map(terminalFromRow);
  }

  /**
   * Group commit: inserts that arrive while a transaction runs wait and go
   * together in the next one. A commit costs an fsync (about 3 ms on this
   * machine's disk), so concurrent reports of many terminals share it.
   */
  insertEntries(rows: readonly EntryRow[], at: number): Promise<InsertOutcome> {
    if (rows.length === 0) return Promise.resolve({ inserted: [], duplicates: [], conflicts: [] });
    return new Promise<InsertOutcome>((resolve, reject) => {
      this.insertQueue.push({ rows, at, resolve, reject });
      if (!this.flushing) this.flushing = this.flushInserts();
    });
  }

  private readonly insertQueue: Array<{ rows: readonly EntryRow[]; at: number; resolve: (o: InsertOutcome) => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;

  private async flushInserts(): Promise<void> {
    try {
      while (this.insertQueue.length > 0) {
        // one lock order for every transaction (PostgreSQL workers would deadlock otherwise)
        const group = this.insertQueue.splice(0, 64).sort((a, b) => (a.rows[0]!.terminalId < b.rows[0]!.terminalId ? -1 : a.rows[0]!.terminalId > b.rows[0]!.terminalId ? 1 : 0));
        try {
          const outcomes = await this.insertGroup(group);
          group.forEach((request, i) => request.resolve(outcomes[i]!));
        } catch (err) {
          if (group.length === 1) {
            group[0]!.reject(err);
            continue;
          }
          // one bad request must not fail the others: each on its own
          for (const request of group) await this.insertGroup([request]).then((o) => request.resolve(o[0]!), request.reject);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private insertGroup(group: ReadonlyArray<{ rows: readonly EntryRow[]; at: number }>): Promise<InsertOutcome[]> {
    return this.db.transaction(async (tx) => {
      const results: InsertOutcome[] = [];
      for (const request of group) results.push(await this.insertIn(tx, request.rows, request.at));
      const highest = new Map<string, number>();
      for (const request of group) for (const r of request.rows) highest.set(r.terminalId, Math.max(highest.get(r.terminalId) ?? 0, r.seq));
      const useRows = new Map<string, StoredEntry[]>();
      group.forEach((request, i) => {
        const inserted = new Set(results[i]!.inserted);
        for (const entry of request.rows) {
          if ((entry.type !== USE_RESERVED && entry.type !== USE_RELEASED) || !inserted.has(entry.seq)) continue;
          const r = { ...entry, receivedAt: request.at };
          const list = useRows.get(r.terminalId);
          if (list) list.push(r);
          else useRows.set(r.terminalId, [r]);
        }
      });
      const rollups = new RollupDelta();
      for (const terminalId of [...highest.keys()].sort()) {
        // after the terminal's row lock (PostgreSQL): another worker's entries of this terminal are committed and seen
        await this.advanceContiguous(tx, terminalId, highest.get(terminalId)!);
        const rows = useRows.get(terminalId);
        if (rows) await this.rollUpUses(tx, terminalId, rows, rollups);
      }
      // the clinic rows are shared by the clinic's terminals: written last, in one order in every transaction
      await rollups.apply(tx);
      return results;
    });
  }

  private async insertIn(tx: SqlExecutor, rows: readonly EntryRow[], at: number): Promise<InsertOutcome> {
    const values: SqlValue[][] = rows.map((r) => [
      r.terminalId,
      r.seq,
      r.type,
      r.time,
      dayOf(r.time),
      r.clockTrusted ? 1 : 0,
      r.clinicCode,
      r.batchId ?? null,
      r.serial ?? null,
      r.ref ?? null,
      r.hash,
      r.prevHash,
      r.raw,
      at,
    ]);
    const insertedIndexes = new Set(await tx.insertIgnoring('entries', ENTRY_COLUMNS, ['terminal_id', 'seq'], values));
    const inserted: number[] = [];
    const duplicates: number[] = [];
    const conflicts: number[] = [];
    const notInserted = rows.filter((_, i) => !insertedIndexes.has(i));
    rows.forEach((r, i) => insertedIndexes.has(i) && inserted.push(r.seq));
    for (const [terminalId, group] of groupBy(notInserted, (r) => r.terminalId)) {
      const stored = new Map((await this.neighboursIn(tx, terminalId, group.map((r) => r.seq))).map((n) => [n.seq, n.hash]));
      for (const r of group) {
        const hash = stored.get(r.seq);
        if (hash && bytesEqual(hash, r.hash)) duplicates.push(r.seq);
        else conflicts.push(r.seq);
      }
    }
    return { inserted, duplicates, conflicts };
  }

  /**
   * The daily roll-up (uses_daily) for the use entries of one terminal this transaction stored: a reservation
   * counts unless a release of it is stored (now or before); a release takes one off its reservation's day when
   * the reservation was counted before (stored earlier, and no earlier release cancelled it). usesPerDay reads it.
   */
  private async rollUpUses(tx: SqlExecutor, terminalId: string, rows: readonly StoredEntry[], rollups: RollupDelta): Promise<void> {
    // a use with a trusted clock counts on its own day (uses_daily); one with an untrusted clock on the day the
    // server received it, apart (uses_daily_untrusted, migration 11)
    const delta = new Map<string, { clinicCode: string; day: string; uses: number; untrusted: boolean }>();
    const addDay = (clinicCode: string, day: string, uses: number, untrusted: boolean): void => {
      const key = `${clinicCode}\u0000${day}\u0000${untrusted ? 1 : 0}`;
      const current = delta.get(key);
      if (current) current.uses += uses;
      else delta.set(key, { clinicCode, day, uses, untrusted });
    };
    const add = (clinicCode: string, use: { time: number; clockTrusted: boolean; receivedAt: number }, uses: number): void =>
      addDay(clinicCode, dayOf(use.clockTrusted ? use.time : use.receivedAt), uses, !use.clockTrusted);
    // per batch on this terminal: reservations stored, and how many of them a release cancelled (batch_uses)
    const batches = new Map<string, { reserved: number; released: number }>();
    const countBatch = (batchId: string | undefined, reserved: number, released: number): void => {
      if (batchId === undefined) return;
      const current = batches.get(batchId);
      if (current) {
        current.reserved += reserved;
        current.released += released;
      } else batches.set(batchId, { reserved, released });
    };
    const reserved = rows.filter((r) => r.type === USE_RESERVED);
    const reservedNow = new Set(reserved.map((r) => r.seq));
    for (let i = 0; i < reserved.length; i += 500) {
      const part = reserved.slice(i, i + 500);
      const released = new Set(
        (await tx.all<Row>(`SELECT ref FROM entries WHERE terminal_id = ? AND type = ${USE_RELEASED} AND ref IN (${part.map(() => '?').join(', ')})`, [terminalId, ...part.map((r) => r.seq)])).map((r) => num(r.ref)),
      );
      for (const r of part) {
        if (!released.has(r.seq)) add(r.clinicCode, r, 1);
        countBatch(r.batchId, 1, released.has(r.seq) ? 1 : 0);
      }
    }
    const releasedNow = new Map<number, number>();
    for (const r of rows) if (r.type === USE_RELEASED && r.ref !== undefined && !reservedNow.has(r.ref)) releasedNow.set(r.ref, (releasedNow.get(r.ref) ?? 0) + 1);
    const refs = [...releasedNow.keys()];
    for (let i = 0; i < refs.length; i += 500) {
      const part = refs.slice(i, i + 500);
      const marks = part.map(() => '?').join(', ');
      const releases = new Map((await tx.all<Row>(`SELECT ref, COUNT(*) AS n FROM entries WHERE terminal_id = ? AND type = ${USE_RELEASED} AND ref IN (${marks}) GROUP BY ref`, [terminalId, ...part])).map((r) => [num(r.ref), num(r.n)]));
      for (const r of await tx.all<Row>(`SELECT seq, clinic_code, batch_id, time, clock_trusted, received_at FROM entries WHERE terminal_id = ? AND type = ${USE_RESERVED} AND seq IN (${marks})`, [terminalId, ...part])) {
        const seq = num(r.seq);
        if ((releases.get(seq) ?? 0) !== releasedNow.get(seq)) continue;
        add(String(r.clinic_code), { time: num(r.time), clockTrusted: num(r.clock_trusted) === 1, receivedAt: num(r.received_at) }, -1);
        countBatch(r.batch_id === null ? undefined : String(r.batch_id), 0, 1);
      }
    }
    for (const d of delta.values()) {
      if (d.uses === 0) continue;
      const table = d.untrusted ? 'uses_daily_untrusted' : 'uses_daily';
      await tx.run(`INSERT INTO ${table} (terminal_id, clinic_code, day, uses) VALUES (?, ?, ?, ?) ON CONFLICT (terminal_id, clinic_code, day) DO UPDATE SET uses = ${table}.uses + excluded.uses`, [terminalId, d.clinicCode, d.day, d.uses]);
      rollups.add(terminalId, d.clinicCode, d.day, d.untrusted, d.uses);
    }
    const counts = [...batches.entries()].filter(([, c]) => c.reserved !== 0 || c.released !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    await upsertAdding(tx, 'batch_uses', ['terminal_id', 'batch_id'], ['reserved', 'released'], counts.map(([batchId, c]) => [terminalId, batchId, c.reserved, c.released]));
  }

  private async advanceContiguous(tx: SqlExecutor, terminalId: string, highest: number): Promise<void> {
    // PostgreSQL: lock the row so two workers' transactions advance it one after the other, each seeing the other's entries
    const lock = this.kind === 'postgres' ? ' FOR UPDATE' : '';
    const current = await tx.all<Row>(`SELECT contiguous_seq FROM terminals WHERE terminal_id = ?${lock}`, [terminalId]);
    if (!current[0]) return;
    const contiguous = num(current[0].contiguous_seq);
    let next = contiguous;
    const first = await tx.all<Row>('SELECT 1 AS present FROM entries WHERE terminal_id = ? AND seq = ?', [terminalId, contiguous + 1]);
    if (first.length > 0) {
      const end = await tx.all<Row>(
        `SELECT MIN(e.seq) AS last FROM entries e WHERE e.terminal_id = ? AND e.seq > ?
           AND NOT EXISTS (SELECT 1 FROM entries f WHERE f.terminal_id = e.terminal_id AND f.seq = e.seq + 1)`,
        [terminalId, contiguous],
      );
      next = num(end[0]?.last ?? contiguous);
    }
    await tx.run(
      `UPDATE terminals SET contiguous_seq = ?, highest_seq = CASE WHEN highest_seq < ? THEN ? ELSE highest_seq END WHERE terminal_id = ?`,
      [next, highest, highest, terminalId],
    );
  }

  private async neighboursIn(executor: SqlExecutor, terminalId: string, seqs: readonly number[]): Promise<ChainNeighbour[]> {
    if (seqs.length === 0) return [];
    const out: ChainNeighbour[] = [];
    let low = seqs[0]!;
    let high = low;
    for (const seq of seqs) {
      if (seq < low) low = seq;
      if (seq > high) high = seq;
    }
    // a report's seqs are nearly always one run: one range scan instead of a lookup per seq
    if (high - low < seqs.length * 2) {
      const wanted = new Set(seqs);
      const rows = await executor.all<Row>('SELECT seq, hash, prev_hash FROM entries WHERE terminal_id = ? AND seq BETWEEN ? AND ? ORDER BY seq', [terminalId, low, high]);
      for (const row of rows) if (wanted.has(num(row.seq))) out.push({ seq: num(row.seq), hash: bytes(row.hash), prevHash: bytes(row.prev_hash) });
      return out;
    }
    for (let i = 0; i < seqs.length; i += 500) {
      const part = seqs.slice(i, i + 500);
      const rows = await executor.all<Row>(
        `SELECT seq, hash, prev_hash FROM entries WHERE terminal_id = ? AND seq IN (${part.map(() => '?').join(', ')})`,
        [terminalId, ...part],
      );
      for (const row of rows) out.push({ seq: num(row.seq), hash: bytes(row.hash), prevHash: bytes(row.prev_hash) });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  neighbours(terminalId: string, seqs: readonly number[]): Promise<ChainNeighbour[]> {
    return this.neighboursIn(this.db, terminalId, seqs);
  }

  async entries(terminalId: string, fromSeq: number, limit: number): Promise<StoredEntry[]> {
    const rows = await this.db.all<Row>('SELECT * FROM entries WHERE terminal_id = ? AND seq >= ? ORDER BY seq LIMIT ?', [terminalId, fromSeq, limit]);
    return rows.map(entryFromRow);
  }

  async entryCount(terminalId?: string): Promise<number> {
    const rows = terminalId
      ? await this.db.all<Row>('SELECT COUNT(*) AS n FROM entries WHERE terminal_id = ?', [terminalId])
      : await this.db.all<Row>('SELECT COUNT(*) AS n FROM entries');
    return num(rows[0]?.n ?? 0);
  }

  async missingSeqs(terminalId: string, limit: number): Promise<number[]> {
    const terminal = await this.terminal(terminalId);
    if (!terminal) return [];
    const missing: number[] = [];
    let expected = terminal.contiguousSeq + 1;
    let after = terminal.contiguousSeq;
    while (missing.length < limit && expected <= terminal.highestSeq) {
      const rows = await this.db.all<Row>('SELECT seq FROM entries WHERE terminal_id = ? AND seq > ? ORDER BY seq LIMIT 1000', [terminalId, after]);
      if (rows.length === 0) break;
      for (const row of rows) {
        const s = num(row.seq);
        while (expected < s && missing.length < limit) missing.push(expected++);
        expected = s + 1;
        after = s;
      }
    }
    return missing;
  }

  async holdBatch(batch: BatchRow, terminalId: string, seq: number, at: number): Promise<BatchHolder> {
    return this.db.transaction(async (tx) => {
      await tx.insertIgnoring(
        'batches',
        ['batch_id', 'batch_no', 'clinic_code', 'count', 'terminal_id', 'seq', 'held_at'],
        ['batch_id'],
        [[batch.batchId, batch.batchNo, batch.clinicCode, batch.count, terminalId, seq, at]],
      );
      // an online claim (seq 0, maybe count 0) is completed by the batch.loaded entry that follows it
      await tx.run('UPDATE batches SET seq = ?, count = ? WHERE batch_id = ? AND terminal_id = ? AND seq = 0 AND ? > 0', [seq, batch.count, batch.batchId, terminalId, seq]);
      const rows = await tx.all<Row>('SELECT batch_id, terminal_id, seq FROM batches WHERE batch_id = ?', [batch.batchId]);
      const row = rows[0]!;
      return { batchId: String(row.batch_id), terminalId: String(row.terminal_id), seq: num(row.seq) };
    });
  }

  async batchHolder(batchId: string): Promise<BatchHolder | undefined> {
    const rows = await this.db.all<Row>('SELECT batch_id, terminal_id, seq FROM batches WHERE batch_id = ?', [batchId]);
    const row = rows[0];
    return row ? { batchId: String(row.batch_id), terminalId: String(row.terminal_id), seq: num(row.seq) } : undefined;
  }

  async openUses(batchId: string, serial: number): Promise<OpenUse[]> {
    return (await this.openUsesOf([{ batchId, serial }])).map(({ terminalId, seq }) => ({ terminalId, seq }));
  }

  async openUsesOf(serials: ReadonlyArray<{ readonly batchId: string; readonly serial: number }>): Promise<SerialUse[]> {
    const unique = [...new Map(serials.map((p) => [`${p.batchId}:${p.serial}`, p])).values()];
    const out: SerialUse[] = [];
    for (let i = 0; i < unique.length; i += 200) {
      const part = unique.slice(i, i + 200);
      const rows = await this.db.all<Row>(
        openUsesSql(part.length),
        part.flatMap((p) => [p.batchId, p.serial]),
      );
      for (const r of rows) out.push({ batchId: String(r.batch_id), serial: num(r.serial), terminalId: String(r.terminal_id), seq: num(r.seq) });
    }
    return out.sort((a, b) => (a.terminalId < b.terminalId ? -1 : a.terminalId > b.terminalId ? 1 : a.seq - b.seq));
  }

  async voucherUsesOf(serials: readonly number[]): Promise<VoucherUse[]> {
    const unique = [...new Set(serials)];
    const out: VoucherUse[] = [];
    for (let i = 0; i < unique.length; i += 200) {
      const part = unique.slice(i, i + 200);
      const rows = await this.db.all<Row>(
        `SELECT e.serial, e.terminal_id, e.seq, e.time, e.clock_trusted, e.clinic_code FROM entries e
         WHERE e.type = ${VOUCHER_RESERVED} AND e.serial IN (${part.map(() => '?').join(', ')})
           AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = ${USE_RELEASED} AND r.ref = e.seq)`,
        part,
      );
      for (const r of rows) out.push({ serial: num(r.serial), terminalId: String(r.terminal_id), seq: num(r.seq), time: num(r.time), clockTrusted: num(r.clock_trusted) === 1, clinicCode: String(r.clinic_code) });
    }
    return out.sort((a, b) => a.time - b.time || (a.terminalId < b.terminalId ? -1 : a.terminalId > b.terminalId ? 1 : a.seq - b.seq));
  }

  async voucherSerialsAt(terminalId: string, seqs: readonly number[]): Promise<Map<number, number>> {
    const unique = [...new Set(seqs)];
    const out = new Map<number, number>();
    for (let i = 0; i < unique.length; i += 500) {
      const part = unique.slice(i, i + 500);
      const rows = await this.db.all<Row>(`SELECT seq, serial FROM entries WHERE terminal_id = ? AND type = ${VOUCHER_RESERVED} AND seq IN (${part.map(() => '?').join(', ')})`, [terminalId, ...part]);
      for (const r of rows) if (r.serial !== null) out.set(num(r.seq), num(r.serial));
    }
    return out;
  }

  async voucherUsesPerClinic(): Promise<Array<{ clinicCode: string; uses: number }>> {
    // each serial once; written off at two clinics (a device-class voucher, a double that is alerted) it counts at the lower clinic code
    const rows = await this.db.all<Row>(
      `SELECT clinic_code, COUNT(*) AS uses FROM (
         SELECT e.serial, MIN(e.clinic_code) AS clinic_code FROM entries e
         WHERE e.type = ${VOUCHER_RESERVED} AND e.serial IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = ${USE_RELEASED} AND r.ref = e.seq)
         GROUP BY e.serial) v
       GROUP BY clinic_code ORDER BY clinic_code`,
    );
    return rows.map((r) => ({ clinicCode: String(r.clinic_code), uses: num(r.uses) }));
  }

  async recordRejection(rejection: Rejection): Promise<void> {
    await this.db.run('INSERT INTO rejections (at, terminal_id, topic, reason, detail) VALUES (?, ?, ?, ?, ?)', [
      rejection.at,
      rejection.terminalId ?? null,
      rejection.topic.slice(0, 300),
      rejection.reason,
      rejection.detail.slice(0, 1000),
    ]);
  }

  async rejections(limit = 1000): Promise<Rejection[]> {
    const rows = await this.db.all<Row>('SELECT * FROM rejections ORDER BY id LIMIT ?', [limit]);
    return rows.map((r) => ({
      at: num(r.at),
      ...(r.terminal_id !== null ? { terminalId: String(r.terminal_id) } : {}),
      topic: String(r.topic),
      reason: String(r.reason),
      detail: String(r.detail),
    }));
  }

  async raiseAlert(alert: Alert): Promise<boolean> {
    const inserted = await this.db.insertIgnoring('alerts', ['key', 'at', 'kind', 'terminal_id', 'detail'], ['key'], [[alert.key, alert.at, alert.kind, alert.terminalId, alert.detail]]);
    return inserted.length > 0;
  }

  async alerts(): Promise<Alert[]> {
    const rows = await this.db.all<Row>('SELECT * FROM alerts ORDER BY at, key');
    return rows.map((r) => ({ key: String(r.key), at: num(r.at), kind: String(r.kind) as AlertKind, terminalId: String(r.terminal_id), detail: String(r.detail) }));
  }

  async recordSmsReport(r: SmsReportRow): Promise<boolean> {
    const inserted = await this.db.insertIgnoring(
      'sms_reports',
      ['terminal_id', 'counter', 'sender', 'sent_at', 'received_at', 'head_seq', 'head_hash_prefix', 'outbox_depth', 'alerts', 'batches', 'body_hex', 'head_check'],
      ['terminal_id', 'counter'],
      [[r.terminalId, r.counter, r.sender, r.sentAt, r.receivedAt, r.headSeq, r.headHashPrefix, r.outboxDepth, r.alerts, JSON.stringify(r.batches), r.bodyHex, r.headCheck]],
    );
    return inserted.length > 0;
  }

  async smsReports(terminalId?: string): Promise<SmsReportRow[]> {
    const rows = terminalId === undefined
      ? await this.db.all<Row>('SELECT * FROM sms_reports ORDER BY received_at, terminal_id, counter')
      : await this.db.all<Row>('SELECT * FROM sms_reports WHERE terminal_id = ? ORDER BY counter', [terminalId]);
    return rows.map((r) => ({
      terminalId: String(r.terminal_id),
      counter: num(r.counter),
      sender: String(r.sender),
      sentAt: num(r.sent_at),
      receivedAt: num(r.received_at),
      headSeq: num(r.head_seq),
      headHashPrefix: String(r.head_hash_prefix),
      outboxDepth: num(r.outbox_depth),
      alerts: num(r.alerts),
      batches: JSON.parse(String(r.batches)) as SmsReportRow['batches'],
      bodyHex: String(r.body_hex),
      headCheck: num(r.head_check) as 0 | 1 | 2,
    }));
  }

  async setSmsHeadCheck(terminalId: string, counter: number, check: 1 | 2): Promise<void> {
    await this.db.run('UPDATE sms_reports SET head_check = ? WHERE terminal_id = ? AND counter = ?', [check, terminalId, counter]);
  }

  async lastDataAt(terminalId: string): Promise<number | undefined> {
    const [e] = await this.db.all<Row>('SELECT MAX(received_at) AS at FROM entries WHERE terminal_id = ?', [terminalId]);
    const [h] = await this.db.all<Row>('SELECT at FROM heartbeats WHERE terminal_id = ?', [terminalId]);
    const times = [e?.at, h?.at].filter((v) => v !== null && v !== undefined).map(num);
    return times.length ? Math.max(...times) : undefined;
  }

  async recordHeartbeat(h: HeartbeatRow): Promise<void> {
    await this.db.run(
      `INSERT INTO heartbeats (terminal_id, at, queue_depth, last_seq, batch_no, batch_remaining, denylist_version, clock_trusted, cert_expires_at, software) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (terminal_id) DO UPDATE SET at = excluded.at, queue_depth = excluded.queue_depth, last_seq = excluded.last_seq,
         batch_no = excluded.batch_no, batch_remaining = excluded.batch_remaining, denylist_version = excluded.denylist_version,
         clock_trusted = excluded.clock_trusted, cert_expires_at = excluded.cert_expires_at, software = excluded.software`,
      [h.terminalId, h.at, h.queueDepth, h.lastSeq, h.batchNo ?? null, h.batchRemaining ?? null, h.denylistVersion ?? null, h.clockTrusted === undefined ? null : h.clockTrusted ? 1 : 0, h.certExpiresAt ?? null, h.software ?? null],
    );
  }

  async heartbeats(): Promise<HeartbeatRow[]> {
    return (await this.db.all<Row>('SELECT * FROM heartbeats ORDER BY terminal_id')).map((r) => ({
      terminalId: String(r.terminal_id),
      at: num(r.at),
      queueDepth: num(r.queue_depth),
      lastSeq: num(r.last_seq),
      ...(r.batch_no !== null ? { batchNo: num(r.batch_no) } : {}),
      ...(r.batch_remaining !== null ? { batchRemaining: num(r.batch_remaining) } : {}),
      ...(r.denylist_version !== null ? { denylistVersion: num(r.denylist_version) } : {}),
      ...(r.clock_trusted !== null ? { clockTrusted: num(r.clock_trusted) === 1 } : {}),
      ...(r.cert_expires_at !== null ? { certExpiresAt: num(r.cert_expires_at) } : {}),
      ...(r.software !== null ? { software: String(r.software) } : {}),
    }));
  }

  async revokeCard(card: Omit<DeniedCard, 'version'>): Promise<{ created: boolean; card: DeniedCard }> {
    // the next version in the same statement: two revocations at once cannot take one version (UNIQUE; the loser retries)
    for (let attempt = 0; ; attempt++) {
      try {
        const inserted = await this.db.run(
          `INSERT INTO card_denylist (card_id, version, reason, revoked_at, revoked_by)
           SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM card_denylist WHERE true
           ON CONFLICT (card_id) DO NOTHING`,
          [card.cardId, card.reason, card.revokedAt, card.revokedBy],
        );
        const row = (await this.denylist()).find((d) => d.cardId === card.cardId)!;
        return { created: inserted > 0, card: row };
      } catch (err) {
        if (attempt >= 5 || !/unique|duplicate/i.test((err as Error).message)) throw err;
      }
    }
  }

  async denylist(): Promise<DeniedCard[]> {
    return (await this.db.all<Row>('SELECT * FROM card_denylist ORDER BY version')).map((r) => ({ cardId: String(r.card_id), version: num(r.version), reason: String(r.reason), revokedAt: num(r.revoked_at), revokedBy: String(r.revoked_by) }));
  }

  async auditedSeq(terminalId: string): Promise<number> {
    const rows = await this.db.all<Row>('SELECT audited_seq FROM signature_audit WHERE terminal_id = ?', [terminalId]);
    return rows[0] ? num(rows[0].audited_seq) : 0;
  }

  async setAuditedSeq(terminalId: string, seq: number): Promise<void> {
    await this.db.run(
      'INSERT INTO signature_audit (terminal_id, audited_seq) VALUES (?, ?) ON CONFLICT (terminal_id) DO UPDATE SET audited_seq = excluded.audited_seq',
      [terminalId, seq],
    );
  }

  /** From the roll-up the ingest keeps (uses_daily), not a scan of the entries */
  async usesPerDay(): Promise<DailyUses[]> {
    const rows = await this.db.all<Row>(
      `SELECT terminal_id, clinic_code, day, uses, 0 AS untrusted FROM uses_daily WHERE uses > 0
       UNION ALL SELECT terminal_id, clinic_code, day, uses, 1 AS untrusted FROM uses_daily_untrusted WHERE uses > 0
       ORDER BY terminal_id, untrusted, day, clinic_code`,
    );
    return rows.map((r) => dailyRow(r));
  }

  /** From the monthly clinic roll-up (migration 13) */
  async usesPerClinic(): Promise<Array<{ clinicCode: string; uses: number; untrustedUses: number }>> {
    const rows = await this.db.all<Row>(
      `SELECT clinic_code, SUM(uses) AS uses, SUM(CASE WHEN untrusted = 1 THEN uses ELSE 0 END) AS untrusted FROM uses_by_clinic
       WHERE period = 'month' GROUP BY clinic_code HAVING SUM(uses) > 0 ORDER BY clinic_code`,
    );
    return rows.map((r) => ({ clinicCode: String(r.clinic_code), uses: num(r.uses), untrustedUses: num(r.untrusted) }));
  }

  /**
   * From the smallest roll-up that holds the answer: per terminal and day the daily tables; per terminal and week
   * or month (or all time, from the months) uses_by_terminal; per clinic or all, uses_by_clinic
   */
  async usesSummed(by: UsesKey, period: UsesPeriod, clinics?: readonly string[], untrustedApart = false): Promise<UsesSum[]> {
    if (clinics && clinics.length === 0) return [];
    const where = clinics ? ` AND clinic_code IN (${clinics.map(() => '?').join(', ')})` : '';
    if (by === 'terminal' && period === 'day' && !untrustedApart) return this.usesPerTerminalDay(where, clinics ?? []);
    const key = by === 'terminal' ? 'terminal_id' : by === 'clinic' ? 'clinic_code' : "''";
    const bucket = period === 'all' ? "''" : period === 'day' && by === 'terminal' ? 'day' : 'bucket';
    const grouped = [by === 'all' ? undefined : key, period === 'all' ? undefined : bucket, untrustedApart ? 'untrusted' : undefined].filter((g) => g !== undefined);
    const groupBy = grouped.length ? ` GROUP BY ${grouped.join(', ')} ORDER BY ${grouped.join(', ')}` : '';
    const select = `SELECT ${key} AS k, ${bucket} AS b, ${untrustedApart ? 'untrusted' : '0'} AS u, SUM(uses) AS uses`;
    const rollup = period === 'all' ? 'month' : period;
    const [sql, params] =
      by === 'terminal' && period === 'day'
        ? [
            `${select} FROM (
               SELECT terminal_id, clinic_code, day, uses, 0 AS untrusted FROM uses_daily WHERE uses > 0${where}
               UNION ALL SELECT terminal_id, clinic_code, day, uses, 1 AS untrusted FROM uses_daily_untrusted WHERE uses > 0${where}) r${groupBy}`,
            clinics ? [...clinics, ...clinics] : [],
          ]
        : [`${select} FROM ${by === 'terminal' ? 'uses_by_terminal' : 'uses_by_clinic'} WHERE period = ? AND uses > 0${where}${groupBy}`, [rollup, ...(clinics ?? [])]];
    const rows = await this.db.all<Row>(sql, params);
    return rows.filter((r) => r.uses !== null).map((r) => ({ key: String(r.k), bucket: String(r.b), uses: num(r.uses), ...(num(r.u) === 1 ? { clockUntrusted: true as const } : {}) }));
  }

  /**
   * Uses per terminal and day, trusted and untrusted together, without a GROUP BY: a GROUP BY over the two daily
   * tables' union sorted every daily row of the year in a temporary b-tree (182,500 at the bench's scale: 1.9 s at
   * p95 under load). uses_daily is read in its covering (terminal, day, clinic, uses) index's order (migration 15),
   * so one terminal's rows of a day (a clinic each) are adjacent and summed here; the few untrusted rows (dated by
   * arrival) are added to their terminal's day, or follow when the terminal has no trusted use that day. Nothing
   * here compares text, so the database's collation does not matter.
   */
  private async usesPerTerminalDay(where: string, clinics: readonly string[]): Promise<UsesSum[]> {
    const untrusted = new Map<string, Map<string, number>>();
    for (const r of await this.db.all<Row>(`SELECT terminal_id, day, uses FROM uses_daily_untrusted WHERE uses > 0${where}`, clinics)) {
      const days = untrusted.get(String(r.terminal_id)) ?? new Map<string, number>();
      days.set(String(r.day), (days.get(String(r.day)) ?? 0) + num(r.uses));
      untrusted.set(String(r.terminal_id), days);
    }
    const out: UsesSum[] = [];
    let last: { key: string; bucket: string; uses: number } | undefined;
    for (const r of await this.db.all<Row>(`SELECT terminal_id, day, uses FROM uses_daily WHERE uses > 0${where} ORDER BY terminal_id, day`, clinics)) {
      const key = String(r.terminal_id);
      const bucket = String(r.day);
      if (last && last.bucket === bucket && last.key === key) last.uses += num(r.uses);
      else {
        const days = untrusted.get(key);
        const apart = days?.get(bucket) ?? 0;
        if (apart > 0) days!.delete(bucket);
        out.push((last = { key, bucket, uses: num(r.uses) + apart }));
      }
    }
    for (const [key, days] of untrusted) for (const [bucket, uses] of days) out.push({ key, bucket, uses });
    return out;
  }

  /**
   * One row a terminal from each daily table, its days and uses joined in one text (group_concat, string_agg) by
   * the database, split here into the terminal's line: 500 rows instead of 182,500 at the bench's scale, where
   * making a JavaScript row of each daily row took 1.3 s of the 1.9 s the series took (load 15 on 2 cores).
   */
  async terminalDaySeries(clinics?: readonly string[]): Promise<UsesSeries> {
    if (clinics && clinics.length === 0) return { buckets: [], groups: [], total: 0 };
    const where = clinics ? ` AND clinic_code IN (${clinics.map(() => '?').join(', ')})` : '';
    const joined = this.kind === 'postgres' ? "string_agg(day || ' ' || uses, ',')" : "group_concat(day || ' ' || uses, ',')";
    // each day gets a slot when first seen, each terminal an array by slot; the slots are put in day order at the end
    const slots = new Map<string, number>();
    const lines = new Map<string, number[]>();
    for (const table of ['uses_daily', 'uses_daily_untrusted']) {
      const rows = await this.db.all<Row>(`SELECT terminal_id, ${joined} AS days FROM ${table} WHERE uses > 0${where} GROUP BY terminal_id`, clinics ?? []);
      for (const r of rows) {
        const key = String(r.terminal_id);
        const line = lines.get(key) ?? [];
        lines.set(key, line);
        // "YYYY-MM-DD uses,YYYY-MM-DD uses,...": a day's several rows (a clinic each, or untrusted) add up
        for (const item of String(r.days).split(',')) {
          const day = item.slice(0, 10);
          let slot = slots.get(day);
          if (slot === undefined) slots.set(day, (slot = slots.size));
          line[slot] = (line[slot] ?? 0) + Number(item.slice(11));
        }
      }
    }
    const buckets = [...slots.keys()].sort();
    const order = buckets.map((day) => slots.get(day)!);
    let total = 0;
    const groups = [...lines.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, line]) => ({
        key,
        uses: order.map((slot) => {
          const n = line[slot] ?? 0;
          total += n;
          return n;
        }),
      }));
    return { buckets, groups, total };
  }

  /**
   * Each daily table read in its (terminal, day, clinic) index order from its own position, and the two merged
   * (a terminal's trusted rows before its untrusted ones): a page costs its own rows, never a sort of them all
   */
  async usesPerDayPage(query: DailyUsesQuery): Promise<{ rows: DailyUses[]; next?: string }> {
    if (query.clinics && query.clinics.length === 0) return { rows: [] };
    const limit = Math.max(1, Math.floor(query.limit));
    const after = parseDailyCursor(query.after);
    const filters: string[] = ['uses > 0'];
    const params: SqlValue[] = [];
    const filter = (sql: string, ...values: SqlValue[]): void => {
      filters.push(sql);
      params.push(...values);
    };
    if (query.from !== undefined) filter('day >= ?', query.from);
    if (query.to !== undefined) filter('day <= ?', query.to);
    if (query.clinics) filter(`clinic_code IN (${query.clinics.map(() => '?').join(', ')})`, ...query.clinics);
    const read = async (table: string, position: DailyPosition | null | undefined): Promise<Row[]> => {
      if (position === null) return [];
      const from = position ? ' AND (terminal_id, day, clinic_code) > (?, ?, ?)' : '';
      return this.db.all<Row>(
        `SELECT terminal_id, clinic_code, day, uses FROM ${table} WHERE ${filters.join(' AND ')}${from} ORDER BY terminal_id, day, clinic_code LIMIT ?`,
        [...params, ...(position ?? []), limit + 1],
      );
    };
    const trusted = await read('uses_daily', after?.[0]);
    const untrusted = await read('uses_daily_untrusted', after?.[1]);
    const rows: DailyUses[] = [];
    let t = 0;
    let u = 0;
    let lastT = after?.[0];
    let lastU = after?.[1];
    while (rows.length < limit && (t < trusted.length || u < untrusted.length)) {
      const a = trusted[t];
      const b = untrusted[u];
      if (a && (!b || String(a.terminal_id) <= String(b.terminal_id))) {
        rows.push(dailyRow({ ...a, untrusted: 0 }));
        lastT = [String(a.terminal_id), String(a.day), String(a.clinic_code)];
        t++;
      } else {
        rows.push(dailyRow({ ...b!, untrusted: 1 }));
        lastU = [String(b!.terminal_id), String(b!.day), String(b!.clinic_code)];
        u++;
      }
    }
    const more = t < trusted.length || u < untrusted.length;
    if (!more) return { rows };
    // a table read to its end has nothing after: null
    return { rows, next: encodeDailyCursor([t < trusted.length ? (lastT ?? undefined) : null, u < untrusted.length ? (lastU ?? undefined) : null]) };
  }

  /** The same figures counted from every stored entry (what the roll-up must always equal; tests and checks) */
  async usesPerDayFromEntries(): Promise<DailyUses[]> {
    const arrival = (this.kind === 'postgres' ? POSTGRES_DAY_OF : SQLITE_DAY_OF)('e.received_at');
    const rows = await this.db.all<Row>(
      `SELECT terminal_id, clinic_code, day, COUNT(*) AS uses, untrusted FROM (
         SELECT e.terminal_id, e.clinic_code, CASE WHEN e.clock_trusted = 1 THEN e.day ELSE ${arrival} END AS day, 1 - e.clock_trusted AS untrusted
         FROM entries e WHERE e.type = ${USE_RESERVED}
           AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = ${USE_RELEASED} AND r.ref = e.seq)) u
       GROUP BY terminal_id, clinic_code, day, untrusted ORDER BY terminal_id, untrusted, day, clinic_code`,
    );
    return rows.map((r) => dailyRow(r));
  }

  /** From the per-batch counts kept at ingest (batch_uses, migration 13) */
  async batchReconciliation(): Promise<BatchReconciliationRow[]> {
    return this.reconciliation('COALESCE(u.reserved, 0)', 'COALESCE(u.released, 0)', ' LEFT JOIN batch_uses u ON u.terminal_id = b.terminal_id AND u.batch_id = b.batch_id');
  }

  async batchReconciliationFromEntries(): Promise<BatchReconciliationRow[]> {
    return this.reconciliation(
      `(SELECT COUNT(*) FROM entries e WHERE e.terminal_id = b.terminal_id AND e.type = ${USE_RESERVED} AND e.batch_id = b.batch_id)`,
      `(SELECT COUNT(*) FROM entries e WHERE e.terminal_id = b.terminal_id AND e.type = ${USE_RESERVED} AND e.batch_id = b.batch_id
          AND EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = ${USE_RELEASED} AND r.ref = e.seq))`,
      '',
    );
  }

  private async reconciliation(reserved: string, released: string, join: string): Promise<BatchReconciliationRow[]> {
    const rows = await this.db.all<Row>(
      // an online claim not yet followed by its batch.loaded entry holds count 0: the registry knows the count
      `SELECT b.batch_id, b.batch_no, b.clinic_code, CASE WHEN b.count = 0 THEN COALESCE(rc.count, 0) ELSE b.count END AS count, b.terminal_id,
         ${reserved} AS reserved, ${released} AS released,
         h.batch_no AS hb_batch_no, h.batch_remaining AS hb_remaining
       FROM batches b LEFT JOIN heartbeats h ON h.terminal_id = b.terminal_id
         LEFT JOIN registry_cards rc ON rc.card_id = b.batch_id AND rc.kind = 'batch'${join}
       ORDER BY b.clinic_code, b.batch_no`,
    );
    return rows.map((r) => {
      const count = num(r.count);
      const released = num(r.released);
      const used = num(r.reserved) - released;
      const heartbeatRemaining = optionalNumber(r.hb_remaining);
      const sameBatch = optionalNumber(r.hb_batch_no) === num(r.batch_no);
      return {
        batchId: String(r.batch_id),
        batchNo: num(r.batch_no),
        clinicCode: String(r.clinic_code),
        count,
        terminalId: String(r.terminal_id),
        used,
        released,
        remaining: count - used,
        ...(sameBatch && heartbeatRemaining !== undefined ? { notYetReported: Math.max(0, count - heartbeatRemaining - used) } : {}),
      };
    });
  }

  async close(): Promise<void> {
    await this.flushing;
    return this.db.close();
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
