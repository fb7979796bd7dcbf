/**
 * The gateway's one SQLite database (the patent's storage module and more):
 * - archive: every message that crossed and every one refused, append-only
 *   (triggers refuse UPDATE and DELETE) and hash-chained like the ledger:
 *   row n carries SHA-256 over row n-1's hash and its own fields.
 * - crossing: canonical messages accepted and not yet handed to the payment
 *   link; a row leaves in the same transaction the MQTT store takes it, so a
 *   kill at any instant neither loses nor doubles it.
 * - mqtt_store: the payment link's outgoing MQTT packets (QoS 2 in flight),
 *   replayed by mqtt.js with the same packet ids after a restart; Mosquitto
 *   drops the duplicates of a QoS 2 id it already has.
 * - passed: sender + control id of each message that passed (a resend is
 *   acknowledged again and not passed twice).
 * - deliveries: the department queues (acks, retries, dead letters).
 * Every transaction is synchronous=FULL (openDatabase).
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { TallyError } from '../errors.js';
import { openDatabase, storageFault, type Migration, type SqliteDatabase } from '../util/openDatabase.js';

export type Verdict = 'passed' | 'refused' | 'duplicate' | 'dead-letter' | 'delivered';
export type ArchiveDirection = 'hospital-to-payment' | 'payment-to-hospital';

export interface ArchiveInput {
  readonly time: number;
  readonly direction: ArchiveDirection;
  /** Declared type, or what it claimed to be (e.g. 'hl7:ZZZ^Z01'), or 'unparsed' */
  readonly type: string;
  readonly verdict: Verdict;
  /** errors.ts code of a refusal */
  readonly code?: string;
  readonly reason?: string;
  readonly patientId?: string;
  readonly department?: string;
  /** application|facility|controlId of the sender, when known */
  readonly sourceKey?: string;
  /** The bytes as they arrived (kept up to ORIGINAL_KEPT_BYTES; their hash always) */
  readonly original?: Uint8Array;
  /** The canonical message that crossed */
  readonly canonical?: Uint8Array;
}

export interface ArchiveRow {
  readonly seq: number;
  readonly time: number;
  readonly direction: string;
  readonly type: string;
  readonly verdict: string;
  readonly code: string | null;
  readonly reason: string | null;
  readonly patientId: string | null;
  readonly department: string | null;
  readonly sourceKey: string | null;
  readonly originalLength: number;
  readonly originalSha256: Buffer;
  readonly original: Buffer | null;
  readonly canonical: Buffer | null;
  readonly prevHash: Buffer;
  readonly hash: Buffer;
}

/** A crossing to publish on the payment side, written with its archive row */
export interface CrossingInput {
  readonly topic: string;
  /** Built once the archive seq is known */
  readonly payload: (gatewaySeq: number) => Uint8Array;
}

/** A crossing in the outbox, not yet handed to the payment side */
export interface PendingCrossing {
  readonly gatewaySeq: number;
  readonly topic: string;
  readonly payload: Uint8Array;
}

export interface DeliveryInput {
  readonly department: string;
  readonly visitDate: string;
  readonly patient: unknown;
}

export interface DeliveryRow {
  readonly deliveryId: number;
  readonly department: string;
  readonly visitDate: string;
  readonly patient: string;
  readonly gatewaySeq: number;
  readonly state: 'queued' | 'sent' | 'acked' | 'dead' | 'handed';
  readonly attempts: number;
  readonly nextAt: number;
}

export const ORIGINAL_KEPT_BYTES = 4_096;
const GENESIS = Buffer.alloc(32);

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'archive, crossing outbox, MQTT store, passed keys, department deliveries',
    up: (db) => {
      db.exec(`
        CREATE TABLE archive (
          seq INTEGER PRIMARY KEY,
          time INTEGER NOT NULL,
          direction TEXT NOT NULL,
          type TEXT NOT NULL,
          verdict TEXT NOT NULL,
          code TEXT,
          reason TEXT,
          patient_id TEXT,
          department TEXT,
          source_key TEXT,
          original_length INTEGER NOT NULL,
          original_sha256 BLOB NOT NULL,
          original BLOB,
          canonical BLOB,
          prev_hash BLOB NOT NULL,
          hash BLOB NOT NULL
        );
        CREATE INDEX archive_time ON archive(time);
        CREATE INDEX archive_type ON archive(type, time);
        CREATE INDEX archive_patient ON archive(patient_id, time) WHERE patient_id IS NOT NULL;
        CREATE INDEX archive_verdict ON archive(verdict, time);
        CREATE INDEX archive_department ON archive(department, type, verdict) WHERE department IS NOT NULL;
        CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END;
        CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END;
        CREATE TABLE crossing (gateway_seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL);
        CREATE TABLE mqtt_store (message_id INTEGER PRIMARY KEY, packet TEXT NOT NULL);
        CREATE TABLE passed (source_key TEXT PRIMARY KEY, gateway_seq INTEGER NOT NULL);
        CREATE TABLE deliveries (
          delivery_id INTEGER PRIMARY KEY,
          department TEXT NOT NULL,
          visit_date TEXT NOT NULL,
          patient TEXT NOT NULL,
          gateway_seq INTEGER NOT NULL,
          state TEXT NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0,
          next_at INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX deliveries_due ON deliveries(state, next_at);
        CREATE TABLE registrations (department TEXT NOT NULL, visit_date TEXT NOT NULL, booked INTEGER NOT NULL, PRIMARY KEY (department, visit_date));
      `);
    },
  },
];

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The bytes a row's hash covers (after the previous hash): its fields as canonical JSON */
export function archiveRowBody(row: Omit<ArchiveRow, 'prevHash' | 'hash' | 'original' | 'canonical'> & { canonical: Uint8Array | null }): Buffer {
  const fields = [
    row.seq,
    row.time,
    row.direction,
    row.type,
    row.verdict,
    row.code,
    row.reason,
    row.patientId,
    row.department,
    row.sourceKey,
    row.originalLength,
    Buffer.from(row.originalSha256).toString('hex'),
    row.canonical ? sha256(row.canonical).toString('hex') : null,
  ];
  return Buffer.from(JSON.stringify(fields), 'utf8');
}

export interface ArchiveQuery {
  readonly from?: number;
  readonly to?: number;
  readonly type?: string;
  readonly patientId?: string;
  readonly verdict?: string;
  readonly code?: string;
  readonly limit?: number;
  readonly afterSeq?: number;
}

export interface ArchiveProblem {
  readonly seq: number;
  readonly problem: string;
}

export class GatewayStore {
  readonly db: SqliteDatabase;
  private lastHash: Buffer;
  private nextSeq: number;
  private readonly insertArchive;
  private readonly insertCrossing;
  private readonly insertPassed;
  private readonly findPassed;
  private readonly insertDelivery;
  private readonly bumpRegistrations;

  private readonly statements = new Map<string, Database.Statement<unknown[]>>();

  /** A prepared statement, made once */
  private sql(text: string): Database.Statement<unknown[]> {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** Runs fn in one transaction (one fsync for all its writes); inside the group commit a savepoint */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Runs fn in the group commit's one transaction (one fsync for all its
   * writers, storeCommit.ts); when it does not commit, the chain's head
   * (last hash, next seq) is put back as it was.
   */
  atomically<T>(fn: () => T): T {
    const savedHash = this.lastHash;
    const savedSeq = this.nextSeq;
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      this.lastHash = savedHash;
      this.nextSeq = savedSeq;
      throw new TallyError('GW_ARCHIVE_FAULT', storageFault(err, 'gateway archive').message, {}, { cause: err });
    }
  }

  constructor(path: string, options: { readonly?: boolean } = {}) {
    this.db = openDatabase(path, MIGRATIONS, options);
    const last = this.db.prepare('SELECT seq, hash FROM archive ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: Buffer } | undefined;
    this.lastHash = last?.hash ?? GENESIS;
    this.nextSeq = (last?.seq ?? 0) + 1;
    if (options.readonly) {
      this.insertArchive = this.insertCrossing = this.insertPassed = this.findPassed = this.insertDelivery = this.bumpRegistrations = undefined as never;
      return;
    }
    this.insertArchive = this.db.prepare(
      `INSERT INTO archive (seq, time, direction, type, verdict, code, reason, patient_id, department, source_key, original_length, original_sha256, original, canonical, prev_hash, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertCrossing = this.db.prepare('INSERT INTO crossing (gateway_seq, topic, payload) VALUES (?, ?, ?)');
    this.insertPassed = this.db.prepare('INSERT INTO passed (source_key, gateway_seq) VALUES (?, ?)');
    this.findPassed = this.db.prepare('SELECT gateway_seq FROM passed WHERE source_key = ?').pluck();
    this.insertDelivery = this.db.prepare("INSERT INTO deliveries (department, visit_date, patient, gateway_seq, state) VALUES (?, ?, ?, ?, 'queued')");
    this.bumpRegistrations = this.db.prepare(
      'INSERT INTO registrations (department, visit_date, booked) VALUES (?, ?, 1) ON CONFLICT (department, visit_date) DO UPDATE SET booked = booked + 1 RETURNING booked',
    ).pluck();
  }

  /** The seq a message passed under, when this sender's control id already passed */
  passedSeq(sourceKey: string): number | undefined {
    return this.findPassed.get(sourceKey) as number | undefined;
  }

  /**
   * Appends archive rows (and for passing ones their crossing, passed key,
   * delivery and registration count) in ONE transaction: a group commit. Fails
   * closed: any SQLite failure throws GW_ARCHIVE_FAULT and nothing of the batch
   * is kept.
   */
  append(
    batch: readonly { archive: ArchiveInput; crossing?: CrossingInput; delivery?: DeliveryInput; keepPassedKey?: boolean }[],
  ): { seqs: number[]; booked: Map<string, number>; crossings: PendingCrossing[] } {
    const seqs: number[] = [];
    const booked = new Map<string, number>();
    const crossings: PendingCrossing[] = [];
    const savedHash = this.lastHash;
    const savedSeq = this.nextSeq;
    try {
      this.db.transaction(() => {
        for (const item of batch) {
          const a = item.archive;
          const seq = this.nextSeq++;
          const crossing = item.crossing ? item.crossing.payload(seq) : undefined;
          const canonical = a.canonical ?? crossing ?? null;
          const original = a.original ?? new Uint8Array(0);
          const originalSha256 = sha256(original);
          const fields = {
            seq,
            time: a.time,
            direction: a.direction,
            type: a.type,
            verdict: a.verdict,
            code: a.code ?? null,
            reason: a.reason?.slice(0, 500) ?? null,
            patientId: a.patientId ?? null,
            department: a.department ?? null,
            sourceKey: a.sourceKey ?? null,
            originalLength: original.length,
            originalSha256,
            canonical,
          };
          const hash = sha256(this.lastHash, archiveRowBody(fields));
          this.insertArchive.run(
            seq,
            fields.time,
            fields.direction,
            fields.type,
            fields.verdict,
            fields.code,
            fields.reason,
            fields.patientId,
            fields.department,
            fields.sourceKey,
            fields.originalLength,
            originalSha256,
            original.length > 0 ? original.subarray(0, ORIGINAL_KEPT_BYTES) : null,
            canonical,
            this.lastHash,
            hash,
          );
          this.lastHash = hash;
          seqs.push(seq);
          if (item.crossing && crossing) {
            this.insertCrossing.run(seq, item.crossing.topic, crossing);
            crossings.push({ gatewaySeq: seq, topic: item.crossing.topic, payload: crossing });
            if (a.sourceKey) this.insertPassed.run(a.sourceKey, seq);
          } else if (item.keepPassedKey && a.sourceKey) this.insertPassed.run(a.sourceKey, seq);
          if (item.delivery) {
            this.insertDelivery.run(item.delivery.department, item.delivery.visitDate, JSON.stringify(item.delivery.patient), seq);
            const count = this.bumpRegistrations.get(item.delivery.department, item.delivery.visitDate) as number;
            booked.set(`${item.delivery.department}|${item.delivery.visitDate}`, count);
          }
        }
      })();
    } catch (err) {
      this.lastHash = savedHash;
      this.nextSeq = savedSeq;
      const fault = storageFault(err, 'gateway archive');
      throw new TallyError('GW_ARCHIVE_FAULT', fault.message, {}, { cause: err });
    }
    return { seqs, booked, crossings };
  }

  /** Crossings not yet handed to the payment link, in seq order */
  pendingCrossings(limit: number, afterSeq = 0): PendingCrossing[] {
    return this.sql('SELECT gateway_seq AS gatewaySeq, topic, payload FROM crossing WHERE gateway_seq > ? ORDER BY gateway_seq LIMIT ?').all(afterSeq, limit) as PendingCrossing[];
  }

  /** A crossing handed over by other means than the MQTT store (the diode) */
  deleteCrossing(gatewaySeq: number): void {
    this.sql('DELETE FROM crossing WHERE gateway_seq = ?').run(gatewaySeq);
  }

  crossingCount(): number {
    return this.sql('SELECT count(*) FROM crossing').pluck().get() as number;
  }

  registrationsBooked(department: string, visitDate: string): number {
    return (this.sql('SELECT booked FROM registrations WHERE department = ? AND visit_date = ?').pluck().get(department, visitDate) as number | undefined) ?? 0;
  }

  allRegistrations(): { department: string; visitDate: string; booked: number }[] {
    return this.sql('SELECT department, visit_date AS visitDate, booked FROM registrations ORDER BY visit_date, department').all() as never;
  }

  query(q: ArchiveQuery): ArchiveRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (clause: string, value: unknown): void => {
      if (value === undefined) return;
      where.push(clause);
      args.push(value);
    };
    add('time >= ?', q.from);
    add('time < ?', q.to);
    add('type = ?', q.type);
    add('patient_id = ?', q.patientId);
    add('verdict = ?', q.verdict);
    add('code = ?', q.code);
    add('seq > ?', q.afterSeq);
    const sql = `SELECT seq, time, direction, type, verdict, code, reason, patient_id AS patientId, department, source_key AS sourceKey,
      original_length AS originalLength, original_sha256 AS originalSha256, original, canonical, prev_hash AS prevHash, hash
      FROM archive ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ?`;
    args.push(q.limit ?? 1000);
    return this.sql(sql).all(...args) as ArchiveRow[];
  }

  counts(): { verdict: string; code: string | null; n: number }[] {
    return this.sql('SELECT verdict, code, count(*) AS n FROM archive GROUP BY verdict, code ORDER BY verdict, code').all() as never;
  }

  /** Walks the whole chain: links, hashes, gapless seqs, the originals kept whole */
  verify(): { rows: number; problems: ArchiveProblem[] } {
    const problems: ArchiveProblem[] = [];
    let prev = GENESIS;
    let expected = 1;
    let rows = 0;
    const iterate = this.sql(
        `SELECT seq, time, direction, type, verdict, code, reason, patient_id AS patientId, department, source_key AS sourceKey,
         original_length AS originalLength, original_sha256 AS originalSha256, original, canonical, prev_hash AS prevHash, hash FROM archive ORDER BY seq`,
      )
      .iterate() as IterableIterator<ArchiveRow>;
    for (const row of iterate) {
      rows += 1;
      if (row.seq !== expected) problems.push({ seq: row.seq, problem: `gap: expected seq ${expected}` });
      expected = row.seq + 1;
      if (!Buffer.from(row.prevHash).equals(prev)) problems.push({ seq: row.seq, problem: 'prev_hash does not match the row before' });
      const hash = sha256(row.prevHash, archiveRowBody({ ...row, canonical: row.canonical }));
      if (!hash.equals(Buffer.from(row.hash))) problems.push({ seq: row.seq, problem: 'hash does not match the row' });
      if (row.original && row.originalLength <= ORIGINAL_KEPT_BYTES && !sha256(row.original).equals(Buffer.from(row.originalSha256))) {
        problems.push({ seq: row.seq, problem: 'original bytes do not match their hash' });
      }
      prev = Buffer.from(row.hash);
      if (problems.length > 100) break;
    }
    return { rows, problems };
  }

  // --- the MQTT store of the payment link (mqtt.js Store contract) ---

  /** Stores an outgoing packet; when it is a crossing's publish, the crossing leaves the outbox in the same transaction */
  storePacket(messageId: number, packet: string, crossingSeq: number | undefined): void {
    this.db.transaction(() => {
      this.sql('INSERT OR REPLACE INTO mqtt_store (message_id, packet) VALUES (?, ?)').run(messageId, packet);
      if (crossingSeq !== undefined) this.sql('DELETE FROM crossing WHERE gateway_seq = ?').run(crossingSeq);
    })();
  }

  packet(messageId: number): string | undefined {
    return this.sql('SELECT packet FROM mqtt_store WHERE message_id = ?').pluck().get(messageId) as string | undefined;
  }

  deletePacket(messageId: number): void {
    this.sql('DELETE FROM mqtt_store WHERE message_id = ?').run(messageId);
  }

  packets(): string[] {
    return this.sql('SELECT packet FROM mqtt_store ORDER BY rowid').pluck().all() as string[];
  }

  // --- department deliveries ---

  dueDeliveries(now: number, limit: number): DeliveryRow[] {
    return this.sql(
        `SELECT delivery_id AS deliveryId, department, visit_date AS visitDate, patient, gateway_seq AS gatewaySeq, state, attempts, next_at AS nextAt
         FROM deliveries WHERE state IN ('queued', 'sent') AND next_at <= ? ORDER BY next_at, delivery_id LIMIT ?`,
      )
      .all(now, limit) as DeliveryRow[];
  }

  markDeliverySent(deliveryId: number, attempts: number, nextAt: number, state: 'sent' | 'handed' = 'sent'): void {
    this.sql('UPDATE deliveries SET state = ?, attempts = ?, next_at = ? WHERE delivery_id = ?').run(state, attempts, nextAt, deliveryId);
  }

  /** True when this ack was for a delivery still waiting for it */
  ackDelivery(deliveryId: number, department: string): boolean {
    return this.sql("UPDATE deliveries SET state = 'acked' WHERE delivery_id = ? AND department = ? AND state = 'sent'").run(deliveryId, department).changes === 1;
  }

  markDead(deliveryId: number): void {
    this.sql("UPDATE deliveries SET state = 'dead' WHERE delivery_id = ?").run(deliveryId);
  }

  requeueDead(department?: string): number {
    const sql = `UPDATE deliveries SET state = 'queued', attempts = 0, next_at = 0 WHERE state = 'dead'${department ? ' AND department = ?' : ''}`;
    return (department ? this.sql(sql).run(department) : this.sql(sql).run()).changes;
  }

  deliveries(state?: string): DeliveryRow[] {
    return this.sql(
        `SELECT delivery_id AS deliveryId, department, visit_date AS visitDate, patient, gateway_seq AS gatewaySeq, state, attempts, next_at AS nextAt
         FROM deliveries ${state ? 'WHERE state = ?' : ''} ORDER BY delivery_id`,
      )
      .all(...(state ? [state] : [])) as DeliveryRow[];
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
