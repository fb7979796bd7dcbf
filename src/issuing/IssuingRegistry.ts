/** The issuing station's own record of every card it made. SQLite, same durability rules as the terminal. */
import { openDatabase, type Migration, type SqliteDatabase } from '../util/openDatabase.js';

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'cards, batches and the batches pre-signed one-time records',
    up: (db) =>
      db.exec(`
        CREATE TABLE cards (
          card_id BLOB PRIMARY KEY,
          kind INTEGER NOT NULL,
          chip_uid BLOB,
          parent_card_id BLOB,
          clinic_code TEXT,
          batch_no INTEGER,
          serial INTEGER,
          issued_at INTEGER NOT NULL,
          record BLOB NOT NULL,
          written INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE batches (
          batch_id BLOB PRIMARY KEY REFERENCES cards(card_id),
          batch_no INTEGER NOT NULL UNIQUE,
          white_card_id BLOB NOT NULL,
          clinic_code TEXT NOT NULL,
          count INTEGER NOT NULL,
          valid_from INTEGER NOT NULL,
          valid_until INTEGER NOT NULL
        );
        CREATE INDEX cards_by_parent ON cards(parent_card_id);
      `),
  },
  {
    version: 2,
    description: 'the station: its id, its signing key (signs registry exports only) and the mother card certificate of that key',
    up: (db) =>
      db.exec(`
        CREATE TABLE station (
          one INTEGER PRIMARY KEY CHECK (one = 1),
          station_id TEXT NOT NULL,
          key_seed BLOB NOT NULL,
          certificate_body TEXT NOT NULL,
          certificate_signature BLOB NOT NULL,
          certified_at INTEGER NOT NULL
        );
      `),
  },
];

/** The station's identity: its key signs registry exports (it cannot sign cards); the mother card certified it */
export interface StationIdentity {
  readonly stationId: string;
  readonly keySeed: Uint8Array;
  readonly certificateBody: string;
  readonly certificateSignature: Uint8Array;
  readonly certifiedAt: number;
}

export interface IssuedCard {
  readonly cardId: Uint8Array;
  readonly kind: number;
  readonly chipUid?: Uint8Array;
  readonly parentCardId?: Uint8Array;
  readonly clinicCode?: string;
  readonly batchNo?: number;
  readonly serial?: number;
  readonly issuedAt: number;
  readonly record: Uint8Array;
  readonly written: boolean;
}

interface CardRow {
  card_id: Buffer;
  kind: number;
  chip_uid: Buffer | null;
  parent_card_id: Buffer | null;
  clinic_code: string | null;
  batch_no: number | null;
  serial: number | null;
  issued_at: number;
  record: Buffer;
  written: number;
}

const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function fromRow(r: CardRow): IssuedCard {
  return {
    cardId: u8(r.card_id),
    kind: r.kind,
    ...(r.chip_uid ? { chipUid: u8(r.chip_uid) } : {}),
    ...(r.parent_card_id ? { parentCardId: u8(r.parent_card_id) } : {}),
    ...(r.clinic_code !== null ? { clinicCode: r.clinic_code } : {}),
    ...(r.batch_no !== null ? { batchNo: r.batch_no } : {}),
    ...(r.serial !== null ? { serial: r.serial } : {}),
    issuedAt: r.issued_at,
    record: u8(r.record),
    written: r.written === 1,
  };
}

export class IssuingRegistry {
  private constructor(private readonly db: SqliteDatabase) {}

  static open(path: string): IssuingRegistry {
    return new IssuingRegistry(openDatabase(path, MIGRATIONS));
  }

  close(): void {
    this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  addCard(card: Omit<IssuedCard, 'written'> & { written?: boolean }): void {
    this.db
      .prepare(
        'INSERT INTO cards (card_id, kind, chip_uid, parent_card_id, clinic_code, batch_no, serial, issued_at, record, written) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        card.cardId,
        card.kind,
        card.chipUid ?? null,
        card.parentCardId ?? null,
        card.clinicCode ?? null,
        card.batchNo ?? null,
        card.serial ?? null,
        card.issuedAt,
        card.record,
        card.written ? 1 : 0,
      );
  }

  addBatch(batch: { batchId: Uint8Array; batchNo: number; whiteCardId: Uint8Array; clinicCode: string; count: number; validFrom: number; validUntil: number }): void {
    this.db
      .prepare('INSERT INTO batches (batch_id, batch_no, white_card_id, clinic_code, count, valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(batch.batchId, batch.batchNo, batch.whiteCardId, batch.clinicCode, batch.count, batch.validFrom, batch.validUntil);
  }

  markWritten(cardId: Uint8Array, chipUid: Uint8Array): void {
    this.db.prepare('UPDATE cards SET written = 1, chip_uid = ? WHERE card_id = ?').run(chipUid, cardId);
  }

  nextBatchNo(): number {
    const row = this.db.prepare<[], { n: number | null }>('SELECT MAX(batch_no) AS n FROM batches').get();
    return (row?.n ?? 0) + 1;
  }

  batchesOfWhite(whiteCardId: Uint8Array): number {
    return this.db.prepare<[Uint8Array], { n: number }>('SELECT COUNT(*) AS n FROM batches WHERE white_card_id = ?').get(whiteCardId)!.n;
  }

  card(cardId: Uint8Array): IssuedCard | undefined {
    const row = this.db.prepare<[Uint8Array], CardRow>('SELECT * FROM cards WHERE card_id = ?').get(cardId);
    return row && fromRow(row);
  }

  cards(kind?: number): IssuedCard[] {
    const rows = kind === undefined
      ? this.db.prepare<[], CardRow>('SELECT * FROM cards ORDER BY issued_at, batch_no, serial').all()
      : this.db.prepare<[number], CardRow>('SELECT * FROM cards WHERE kind = ? ORDER BY issued_at, batch_no, serial').all(kind);
    return rows.map(fromRow);
  }

  oneTimeCardsOfBatch(batchId: Uint8Array): IssuedCard[] {
    return this.db.prepare<[Uint8Array], CardRow>('SELECT * FROM cards WHERE parent_card_id = ? AND kind = 4 ORDER BY serial').all(batchId).map(fromRow);
  }

  station(): StationIdentity | undefined {
    const row = this.db
      .prepare<[], { station_id: string; key_seed: Buffer; certificate_body: string; certificate_signature: Buffer; certified_at: number }>('SELECT * FROM station WHERE one = 1')
      .get();
    return (
      row && { stationId: row.station_id, keySeed: u8(row.key_seed), certificateBody: row.certificate_body, certificateSignature: u8(row.certificate_signature), certifiedAt: row.certified_at }
    );
  }

  /** Sets (or replaces, after a new certification) the station identity */
  setStation(identity: StationIdentity): void {
    this.db
      .prepare(
        `INSERT INTO station (one, station_id, key_seed, certificate_body, certificate_signature, certified_at) VALUES (1, ?, ?, ?, ?, ?)
         ON CONFLICT (one) DO UPDATE SET station_id = excluded.station_id, key_seed = excluded.key_seed, certificate_body = excluded.certificate_body,
           certificate_signature = excluded.certificate_signature, certified_at = excluded.certified_at`,
      )
      .run(identity.stationId, identity.keySeed, identity.certificateBody, identity.certificateSignature, identity.certifiedAt);
  }

  /** Per batch: its count and how many of its one-time cards were written */
  oneTimeSummary(): Array<{ batchId: Uint8Array; count: number; written: number }> {
    return this.db
      .prepare<[], { batch_id: Buffer; count: number; written: number }>(
        `SELECT b.batch_id, b.count, (SELECT COUNT(*) FROM cards c WHERE c.parent_card_id = b.batch_id AND c.kind = 4 AND c.written = 1) AS written
         FROM batches b ORDER BY b.batch_no`,
      )
      .all()
      .map((r) => ({ batchId: u8(r.batch_id), count: r.count, written: r.written }));
  }

  batchByNo(batchNo: number): { batchId: Uint8Array; count: number; clinicCode: string } | undefined {
    const row = this.db
      .prepare<[number], { batch_id: Buffer; count: number; clinic_code: string }>('SELECT batch_id, count, clinic_code FROM batches WHERE batch_no = ?')
      .get(batchNo);
    return row && { batchId: u8(row.batch_id), count: row.count, clinicCode: row.clinic_code };
  }
}
