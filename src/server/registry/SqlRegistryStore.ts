/** RegistryStore over a SqlDriver: the same SQL for SQLite and PostgreSQL (tables: store/schema.ts, migrations 3 and 4). */
import type { SqlDriver, SqlExecutor, SqlValue } from '../store/SqlDriver.js';
import { num, optional, type Row } from '../store/sqlRows.js';
import type {
  ClinicRow,
  ImportSummary,
  IssuanceRow,
  RegisteredTerminal,
  RegisteredTerminalStatus,
  RegistryBatchRow,
  RegistryCardKind,
  RegistryCardRow,
  RegistryFindings,
  RegistryStore,
  StationRow,
  TerminalRegistryRow,
  TerminalState,
  VerifiedRegistryExport,
} from './RegistryStore.js';


function clinicFromRow(r: Row): ClinicRow {
  return { clinicCode: String(r.clinic_code), name: String(r.name), ...optional('pricePerUse', r.price_per_use, num), ...optional('investorShare', r.investor_share, num), addedAt: num(r.added_at) };
}

function registeredFromRow(r: Row): RegisteredTerminal {
  return { terminalId: String(r.terminal_id), clinicCode: String(r.clinic_code), status: String(r.status) as RegisteredTerminalStatus, ...optional('note', r.note, String), addedAt: num(r.added_at), ...optional('retiredAt', r.retired_at, num) };
}

function cardFromRow(r: Row): RegistryCardRow {
  return {
    cardId: String(r.card_id),
    kind: String(r.kind) as RegistryCardKind,
    stationId: String(r.station_id),
    ...optional('signerCardId', r.signer_card_id, String),
    ...optional('clinicCode', r.clinic_code, String),
    ...optional('batchNo', r.batch_no, num),
    ...optional('count', r.count, num),
    ...optional('quota', r.quota, num),
    ...optional('batchesSigned', r.batches_signed, num),
    ...optional('validFrom', r.valid_from, num),
    ...optional('validUntil', r.valid_until, num),
    issuedAt: num(r.issued_at),
    written: num(r.written) === 1,
    ...optional('chipUid', r.chip_uid, String),
  };
}

function batchFromRow(r: Row): RegistryBatchRow {
  return {
    batchId: String(r.card_id),
    batchNo: num(r.batch_no),
    clinicCode: String(r.clinic_code),
    count: num(r.count),
    serialFrom: num(r.serial_from ?? 1),
    serialTo: num(r.serial_to ?? r.count),
    oneTimeWritten: num(r.one_time_written ?? 0),
    batchCardWritten: num(r.written) === 1,
    whiteCardId: String(r.signer_card_id),
    stationId: String(r.station_id),
    issuedAt: num(r.issued_at),
    validFrom: num(r.valid_from),
    validUntil: num(r.valid_until),
    ...optional('terminalId', r.holder, String),
  };
}

const BATCH_SELECT = `SELECT c.*, o.serial_from, o.serial_to, o.written AS one_time_written, b.terminal_id AS holder
  FROM registry_cards c LEFT JOIN registry_one_time o ON o.batch_id = c.card_id LEFT JOIN batches b ON b.batch_id = c.card_id
  WHERE c.kind = 'batch'`;

/** Mother, white, batch, one-time: the order cards are made in (a stable order across databases, which sort NULLs differently) */
const TIER = (column: string): string => `CASE ${column} WHEN 'mother' THEN 1 WHEN 'white' THEN 2 WHEN 'batch' THEN 3 ELSE 4 END`;

const CARD_COLUMNS = ['card_id', 'kind', 'station_id', 'signer_card_id', 'clinic_code', 'batch_no', 'count', 'quota', 'valid_from', 'valid_until', 'issued_at', 'written', 'chip_uid', 'record'] as const;
const ISSUANCE_COLUMNS = ['station_id', 'card_id', 'kind', 'issued_at', 'signer_card_id', 'clinic_code', 'batch_no', 'detail'] as const;

function issuanceDetail(card: VerifiedRegistryExport['cards'][number]): string {
  switch (card.kind) {
    case 'mother':
      return 'mother card personalised';
    case 'white':
      return `white card, quota ${card.quota ?? 0} batch cards`;
    case 'batch':
      return `batch card ${card.batchNo ?? '?'} for clinic ${card.clinicCode ?? '?'}, ${card.count ?? 0} one-time cards`;
  }
}

export class SqlRegistryStore implements RegistryStore {
  constructor(private readonly db: SqlDriver) {}

  async putClinic(c: ClinicRow): Promise<void> {
    await this.db.run(
      `INSERT INTO clinics (clinic_code, name, price_per_use, investor_share, added_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (clinic_code) DO UPDATE SET name = excluded.name, price_per_use = excluded.price_per_use, investor_share = excluded.investor_share`,
      [c.clinicCode, c.name, c.pricePerUse ?? null, c.investorShare ?? null, c.addedAt],
    );
  }

  async clinics(): Promise<ClinicRow[]> {
    return (await this.db.all<Row>('SELECT * FROM clinics ORDER BY clinic_code')).map(clinicFromRow);
  }

  async putTerminal(t: RegisteredTerminal): Promise<void> {
    await this.db.run(
      `INSERT INTO registry_terminals (terminal_id, clinic_code, status, note, added_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (terminal_id) DO UPDATE SET clinic_code = excluded.clinic_code, status = excluded.status, note = excluded.note, retired_at = excluded.retired_at`,
      [t.terminalId, t.clinicCode, t.status, t.note ?? null, t.addedAt, t.retiredAt ?? null],
    );
  }

  async registeredTerminal(terminalId: string): Promise<RegisteredTerminal | undefined> {
    const rows = await this.db.all<Row>('SELECT * FROM registry_terminals WHERE terminal_id = ?', [terminalId]);
    return rows[0] ? registeredFromRow(rows[0]) : undefined;
  }

  async terminalRegistry(): Promise<TerminalRegistryRow[]> {
    const registered = new Map((await this.db.all<Row>('SELECT * FROM registry_terminals')).map((r) => [String(r.terminal_id), registeredFromRow(r)]));
    const seen = new Map((await this.db.all<Row>('SELECT terminal_id, clinic_code, first_seen_at, contiguous_seq FROM terminals')).map((r) => [String(r.terminal_id), r]));
    const ids = [...new Set([...registered.keys(), ...seen.keys()])].sort();
    return ids.map((terminalId) => {
      const reg = registered.get(terminalId);
      const s = seen.get(terminalId);
      const reported = s ? String(s.clinic_code) : undefined;
      const state: TerminalState = !reg ? 'unregistered' : reg.status === 'retired' ? 'retired' : !s ? 'expected' : reported === reg.clinicCode ? 'active' : 'wrong-clinic';
      return {
        terminalId,
        state,
        ...(reg ? { clinicCode: reg.clinicCode } : {}),
        ...(reported !== undefined ? { reportedClinicCode: reported } : {}),
        ...(s ? { firstSeenAt: num(s.first_seen_at), contiguousSeq: num(s.contiguous_seq) } : {}),
        ...(reg?.note !== undefined ? { note: reg.note } : {}),
        ...(reg?.status === 'retired' && reg.retiredAt !== undefined ? { retiredAt: reg.retiredAt } : {}),
      };
    });
  }

  importExport(v: VerifiedRegistryExport, at: number): Promise<ImportSummary> {
    return this.db.transaction(async (tx) => {
      const none = { stationId: v.stationId, digest: v.digest, cardsAdded: 0, cardsUpdated: 0, oneTimeBatchesAdded: 0, oneTimeBatchesUpdated: 0 };
      if ((await tx.all<Row>('SELECT 1 AS present FROM registry_imports WHERE digest = ?', [v.digest])).length > 0) return { ...none, alreadyImported: true };

      await tx.insertIgnoring(
        'registry_stations',
        ['station_id', 'public_key', 'mother_card_id', 'certified_at', 'first_import_at', 'last_import_at', 'last_exported_at'],
        ['station_id'],
        [[v.stationId, v.stationPublicKey, v.motherCardId, v.certifiedAt, at, at, v.exportedAt]],
      );
      // a newer certification (a rebuilt station) replaces the key; an older export never rolls anything back
      await tx.run(
        `UPDATE registry_stations SET last_import_at = ?,
           public_key = CASE WHEN certified_at <= ? THEN ? ELSE public_key END,
           mother_card_id = CASE WHEN certified_at <= ? THEN ? ELSE mother_card_id END,
           certified_at = CASE WHEN certified_at <= ? THEN ? ELSE certified_at END,
           last_exported_at = CASE WHEN last_exported_at < ? THEN ? ELSE last_exported_at END
         WHERE station_id = ?`,
        [at, v.certifiedAt, v.stationPublicKey, v.certifiedAt, v.motherCardId, v.certifiedAt, v.certifiedAt, v.exportedAt, v.exportedAt, v.stationId],
      );

      const cardRows: SqlValue[][] = v.cards.map((c) => [
        c.cardId,
        c.kind,
        v.stationId,
        c.signerCardId ?? null,
        c.clinicCode ?? null,
        c.batchNo ?? null,
        c.count ?? null,
        c.quota ?? null,
        c.validFrom ?? null,
        c.validUntil ?? null,
        c.issuedAt,
        c.written ? 1 : 0,
        c.chipUid ?? null,
        c.record,
      ]);
      const cardsAdded = (await tx.insertIgnoring('registry_cards', CARD_COLUMNS, ['card_id'], cardRows)).length;
      let cardsUpdated = 0;
      for (const c of v.cards.filter((card) => card.written)) {
        cardsUpdated += await tx.run('UPDATE registry_cards SET written = 1, chip_uid = ? WHERE card_id = ? AND written = 0', [c.chipUid ?? null, c.cardId]);
      }

      const oneTimeRows: SqlValue[][] = v.oneTime.map((o) => [o.batchId, v.stationId, 1, o.count, o.written]);
      const oneTimeBatchesAdded = (await tx.insertIgnoring('registry_one_time', ['batch_id', 'station_id', 'serial_from', 'serial_to', 'written'], ['batch_id'], oneTimeRows)).length;
      let oneTimeBatchesUpdated = 0;
      for (const o of v.oneTime) oneTimeBatchesUpdated += await tx.run('UPDATE registry_one_time SET written = ? WHERE batch_id = ? AND written < ?', [o.written, o.batchId, o.written]);

      await this.logIssuance(tx, v);
      await tx.run('INSERT INTO registry_imports (digest, station_id, exported_at, imported_at, cards_added, cards_updated) VALUES (?, ?, ?, ?, ?, ?)', [
        v.digest,
        v.stationId,
        v.exportedAt,
        at,
        cardsAdded,
        cardsUpdated,
      ]);
      return { ...none, alreadyImported: false, cardsAdded, cardsUpdated, oneTimeBatchesAdded, oneTimeBatchesUpdated };
    });
  }

  /** One log row per card the station made, and one per batch's one-time range; never changed once there */
  private async logIssuance(tx: SqlExecutor, v: VerifiedRegistryExport): Promise<void> {
    const batches = new Map(v.cards.filter((c) => c.kind === 'batch').map((c) => [c.cardId, c]));
    const rows: SqlValue[][] = v.cards.map((c) => [v.stationId, c.cardId, c.kind, c.issuedAt, c.signerCardId ?? null, c.clinicCode ?? null, c.batchNo ?? null, issuanceDetail(c)]);
    for (const o of v.oneTime) {
      const batch = batches.get(o.batchId);
      rows.push([v.stationId, o.batchId, 'one-time', batch?.issuedAt ?? v.exportedAt, o.batchId, batch?.clinicCode ?? null, batch?.batchNo ?? null, `one-time cards, serials 1..${o.count}`]);
    }
    await tx.insertIgnoring('registry_issuance', ISSUANCE_COLUMNS, ['station_id', 'card_id', 'kind'], rows);
  }

  async stations(): Promise<StationRow[]> {
    return (await this.db.all<Row>('SELECT * FROM registry_stations ORDER BY station_id')).map((r) => ({
      stationId: String(r.station_id),
      publicKey: String(r.public_key),
      motherCardId: String(r.mother_card_id),
      certifiedAt: num(r.certified_at),
      firstImportAt: num(r.first_import_at),
      lastImportAt: num(r.last_import_at),
      lastExportedAt: num(r.last_exported_at),
    }));
  }

  async cards(kind?: RegistryCardKind): Promise<RegistryCardRow[]> {
    const signed = `(SELECT COUNT(*) FROM registry_cards s WHERE s.signer_card_id = c.card_id AND s.kind = 'batch')`;
    const sql = `SELECT c.*, CASE WHEN c.kind = 'white' THEN ${signed} END AS batches_signed FROM registry_cards c`;
    const order = ` ORDER BY c.issued_at, ${TIER('c.kind')}, c.card_id`;
    const rows = kind ? await this.db.all<Row>(`${sql} WHERE c.kind = ?${order}`, [kind]) : await this.db.all<Row>(`${sql}${order}`);
    return rows.map(cardFromRow);
  }

  async batches(): Promise<RegistryBatchRow[]> {
    return (await this.db.all<Row>(`${BATCH_SELECT} ORDER BY c.clinic_code, c.issued_at, c.batch_no`)).map(batchFromRow);
  }

  async batch(batchId: string): Promise<RegistryBatchRow | undefined> {
    const rows = await this.db.all<Row>(`${BATCH_SELECT} AND c.card_id = ?`, [batchId]);
    return rows[0] ? batchFromRow(rows[0]) : undefined;
  }

  async inUse(): Promise<boolean> {
    return (await this.db.all<Row>('SELECT 1 AS present FROM registry_imports LIMIT 1')).length > 0;
  }

  async findings(): Promise<RegistryFindings> {
    const unregistered = (await this.inUse())
      ? await this.db.all<Row>(
          `SELECT b.batch_id, b.batch_no, b.clinic_code, b.terminal_id FROM batches b
           WHERE NOT EXISTS (SELECT 1 FROM registry_cards c WHERE c.card_id = b.batch_id) ORDER BY b.batch_id`,
        )
      : [];
    const wrong = await this.db.all<Row>(
      `SELECT t.terminal_id, t.clinic_code AS reported, r.clinic_code AS registered FROM terminals t JOIN registry_terminals r ON r.terminal_id = t.terminal_id
       WHERE r.clinic_code <> t.clinic_code AND r.status <> 'retired' ORDER BY t.terminal_id`,
    );
    // the newest entry by its seq: one primary-key lookup a retired terminal, not a scan of its entries
    const retired = await this.db.all<Row>(
      `SELECT r.terminal_id, r.clinic_code, r.retired_at, t.highest_seq, e.received_at FROM registry_terminals r
       LEFT JOIN terminals t ON t.terminal_id = r.terminal_id
       LEFT JOIN entries e ON e.terminal_id = t.terminal_id AND e.seq = t.highest_seq
       WHERE r.status = 'retired' ORDER BY r.terminal_id`,
    );
    const stray = await this.db.all<Row>(
      `SELECT t.terminal_id, t.clinic_code, (SELECT COUNT(*) FROM registry_terminals c WHERE c.clinic_code = t.clinic_code) AS listed FROM terminals t
       WHERE NOT EXISTS (SELECT 1 FROM registry_terminals r WHERE r.terminal_id = t.terminal_id)
         AND EXISTS (SELECT 1 FROM registry_terminals c WHERE c.clinic_code = t.clinic_code) ORDER BY t.terminal_id`,
    );
    return {
      unregisteredBatches: unregistered.map((r) => ({ batchId: String(r.batch_id), batchNo: num(r.batch_no), clinicCode: String(r.clinic_code), terminalId: String(r.terminal_id) })),
      wrongClinicTerminals: wrong.map((r) => ({ terminalId: String(r.terminal_id), registeredClinicCode: String(r.registered), reportedClinicCode: String(r.reported) })),
      retiredTerminals: retired.map((r) => ({
        terminalId: String(r.terminal_id),
        clinicCode: String(r.clinic_code),
        ...optional('retiredAt', r.retired_at, num),
        ...optional('highestSeq', r.highest_seq, num),
        ...optional('lastReceivedAt', r.received_at, num),
      })),
      unregisteredTerminals: stray.map((r) => ({ terminalId: String(r.terminal_id), clinicCode: String(r.clinic_code), listed: num(r.listed) })),
    };
  }

  async issuance(stationId?: string): Promise<IssuanceRow[]> {
    const order = ` ORDER BY station_id, issued_at, ${TIER('kind')}, batch_no, card_id`;
    const rows = stationId
      ? await this.db.all<Row>(`SELECT * FROM registry_issuance WHERE station_id = ?${order}`, [stationId])
      : await this.db.all<Row>(`SELECT * FROM registry_issuance${order}`);
    return rows.map((r) => ({
      stationId: String(r.station_id),
      cardId: String(r.card_id),
      kind: String(r.kind) as IssuanceRow['kind'],
      issuedAt: num(r.issued_at),
      ...optional('signerCardId', r.signer_card_id, String),
      ...optional('clinicCode', r.clinic_code, String),
      ...optional('batchNo', r.batch_no, num),
      detail: String(r.detail),
    }));
  }
}
