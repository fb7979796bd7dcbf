/**
 * The server's tables, for SQLite and PostgreSQL. Same names and meaning; only the types differ.
 *
 * Migrations are frozen: once released, a version's statements never change (test/server/migrationsFrozen.test.ts
 * holds each version's digest and fails when one changes). A change to the schema is a new version at the end.
 */
import type { Migration } from '../../util/openDatabase.js';

/** Migration 1: the store's first tables. */
function storeTables(t: { int: string; blob: string; serial: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS terminals (
      terminal_id TEXT PRIMARY KEY,
      clinic_code TEXT NOT NULL,
      device_public_key ${t.blob} NOT NULL,
      certificate ${t.blob} NOT NULL,
      contiguous_seq ${t.int} NOT NULL DEFAULT 0,
      highest_seq ${t.int} NOT NULL DEFAULT 0,
      first_seen_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS entries (
      terminal_id TEXT NOT NULL,
      seq ${t.int} NOT NULL,
      type SMALLINT NOT NULL,
      time ${t.int} NOT NULL,
      day TEXT NOT NULL,
      clock_trusted SMALLINT NOT NULL,
      clinic_code TEXT NOT NULL,
      batch_id TEXT,
      serial ${t.int},
      ref ${t.int},
      hash ${t.blob} NOT NULL,
      prev_hash ${t.blob} NOT NULL,
      raw ${t.blob} NOT NULL,
      received_at ${t.int} NOT NULL,
      PRIMARY KEY (terminal_id, seq))`,
    'CREATE INDEX IF NOT EXISTS entries_use_serial ON entries (batch_id, serial) WHERE type = 3',
    'CREATE INDEX IF NOT EXISTS entries_release_ref ON entries (terminal_id, ref) WHERE type = 6',
    `CREATE TABLE IF NOT EXISTS batches (
      batch_id TEXT PRIMARY KEY,
      batch_no ${t.int} NOT NULL,
      clinic_code TEXT NOT NULL,
      count ${t.int} NOT NULL,
      terminal_id TEXT NOT NULL,
      seq ${t.int} NOT NULL,
      held_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS rejections (
      id ${t.serial},
      at ${t.int} NOT NULL,
      terminal_id TEXT,
      topic TEXT NOT NULL,
      reason TEXT NOT NULL,
      detail TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS alerts (
      key TEXT PRIMARY KEY,
      at ${t.int} NOT NULL,
      kind TEXT NOT NULL,
      terminal_id TEXT NOT NULL,
      detail TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS heartbeats (
      terminal_id TEXT PRIMARY KEY,
      at ${t.int} NOT NULL,
      queue_depth ${t.int} NOT NULL,
      last_seq ${t.int} NOT NULL,
      batch_no ${t.int},
      batch_remaining ${t.int})`,
  ];
}

/** Migration 2: how far the background audit has checked each terminal's signatures (chain-anchored ingest). */
function signatureAuditTable(t: { int: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS signature_audit (
      terminal_id TEXT PRIMARY KEY,
      audited_seq ${t.int} NOT NULL)`,
  ];
}

/** The registry (server/registry): clinics, expected terminals, the stations' cards and issuance logs. Migration 3. */
function registryTables(t: { int: string; blob: string; real: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS clinics (
      clinic_code TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      price_per_use ${t.int},
      investor_share ${t.real},
      added_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS registry_terminals (
      terminal_id TEXT PRIMARY KEY,
      clinic_code TEXT NOT NULL,
      status TEXT NOT NULL,
      note TEXT,
      added_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS registry_stations (
      station_id TEXT PRIMARY KEY,
      public_key TEXT NOT NULL,
      mother_card_id TEXT NOT NULL,
      certified_at ${t.int} NOT NULL,
      first_import_at ${t.int} NOT NULL,
      last_import_at ${t.int} NOT NULL,
      last_exported_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS registry_cards (
      card_id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      station_id TEXT NOT NULL,
      signer_card_id TEXT,
      clinic_code TEXT,
      batch_no ${t.int},
      count ${t.int},
      quota ${t.int},
      valid_from ${t.int},
      valid_until ${t.int},
      issued_at ${t.int} NOT NULL,
      written SMALLINT NOT NULL,
      chip_uid TEXT,
      record ${t.blob} NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS registry_cards_signer ON registry_cards (signer_card_id)',
    `CREATE TABLE IF NOT EXISTS registry_one_time (
      batch_id TEXT PRIMARY KEY,
      station_id TEXT NOT NULL,
      serial_from ${t.int} NOT NULL,
      serial_to ${t.int} NOT NULL,
      written ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS registry_issuance (
      station_id TEXT NOT NULL,
      card_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      issued_at ${t.int} NOT NULL,
      signer_card_id TEXT,
      clinic_code TEXT,
      batch_no ${t.int},
      detail TEXT NOT NULL,
      PRIMARY KEY (station_id, card_id, kind))`,
    `CREATE TABLE IF NOT EXISTS registry_imports (
      digest TEXT PRIMARY KEY,
      station_id TEXT NOT NULL,
      exported_at ${t.int} NOT NULL,
      imported_at ${t.int} NOT NULL,
      cards_added ${t.int} NOT NULL,
      cards_updated ${t.int} NOT NULL)`,
  ];
}

/**
 * Migration 4: when a registered terminal was retired (ms; NULL while it is in service), so the registry check
 * counts a retired terminal's entries from its retirement. A terminal retired before this migration gets the
 * migration's time: the best the database can say, and where the check used to count from.
 */
function retiredAtColumn(t: { int: string; addColumn: string; nowMs: string }): string[] {
  return [
    `ALTER TABLE registry_terminals ${t.addColumn} retired_at ${t.int}`,
    `UPDATE registry_terminals SET retired_at = ${t.nowMs} WHERE status = 'retired' AND retired_at IS NULL`,
  ];
}

/**
 * Migration 5: the console's people (server/access). Agents and which clinics each placed devices in; users with
 * a role (and the clinic or agent a clinic or agent user sees), scrypt password hashes; sessions (by the SHA-256 of
 * their token, shared by every server instance); failed logins (the rate limit per account and per address);
 * one-time login tokens; alert acknowledgements; and the audit log, append-only: the store has no path that
 * changes or removes a row, and a trigger refuses UPDATE and DELETE on both databases.
 */
function accessTables(t: { int: string; serial: string; real: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS agents (
      agent_code TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      share ${t.real} NOT NULL,
      added_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS clinic_agents (
      clinic_code TEXT PRIMARY KEY,
      agent_code TEXT NOT NULL,
      assigned_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS users (
      username TEXT PRIMARY KEY,
      role TEXT NOT NULL,
      scope TEXT,
      password_hash TEXT NOT NULL,
      locale TEXT NOT NULL,
      created_at ${t.int} NOT NULL,
      disabled SMALLINT NOT NULL DEFAULT 0)`,
    `CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY,
      username TEXT NOT NULL,
      csrf TEXT NOT NULL,
      address TEXT NOT NULL,
      created_at ${t.int} NOT NULL,
      last_seen_at ${t.int} NOT NULL,
      expires_at ${t.int} NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username)',
    `CREATE TABLE IF NOT EXISTS login_failures (
      id ${t.serial},
      key TEXT NOT NULL,
      at ${t.int} NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at)',
    `CREATE TABLE IF NOT EXISTS login_tokens (
      id TEXT PRIMARY KEY,
      username TEXT NOT NULL,
      expires_at ${t.int} NOT NULL,
      used_at ${t.int})`,
    `CREATE TABLE IF NOT EXISTS alert_acks (
      alert_key TEXT PRIMARY KEY,
      username TEXT NOT NULL,
      note TEXT NOT NULL,
      at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS audit_log (
      id ${t.serial},
      at ${t.int} NOT NULL,
      username TEXT NOT NULL,
      role TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT NOT NULL,
      detail TEXT NOT NULL,
      address TEXT NOT NULL)`,
  ];
}

const SQLITE_AUDIT_GUARDS = [
  "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
  "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
];

const POSTGRES_AUDIT_GUARDS = [
  `CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$`,
  'CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()',
  'CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()',
];

/** A table of uses per terminal, clinic and UTC day (migrations 6 and 11) */
function usesByDayTable(name: string, int: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
      terminal_id TEXT NOT NULL,
      clinic_code TEXT NOT NULL,
      day TEXT NOT NULL,
      uses ${int} NOT NULL,
      PRIMARY KEY (terminal_id, clinic_code, day))`;
}

/**
 * Migration 6: uses per terminal, clinic and day kept as the ingest stores entries (SqlServerStore.insertGroup), so
 * the dashboard and the income report read a small table instead of every entry. The backfill counts what was
 * stored before, once: only while the table is empty.
 */
function usesDailyTable(t: { int: string }): string[] {
  return [
    usesByDayTable('uses_daily', t.int),
    `INSERT INTO uses_daily (terminal_id, clinic_code, day, uses)
      SELECT e.terminal_id, e.clinic_code, e.day, COUNT(*) FROM entries e
      WHERE e.type = 3 AND NOT EXISTS (SELECT 1 FROM uses_daily)
        AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = 6 AND r.ref = e.seq)
      GROUP BY e.terminal_id, e.clinic_code, e.day
      ON CONFLICT (terminal_id, clinic_code, day) DO NOTHING`,
  ];
}

/**
 * Migration 8: service vouchers (seed 004, voucher-format.md). Every state change is one conditional UPDATE ...
 * WHERE state IN (...) (server/voucher/SqlVoucherStore.ts): generated -> sent -> issued -> booked ->
 * written_off, or voided. A slot's booked count only grows while it is below its capacity.
 */
function voucherTables(t: { int: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS voucher_batches (
      batch_id TEXT PRIMARY KEY,
      exam_type TEXT NOT NULL,
      scope_kind SMALLINT NOT NULL,
      scope TEXT NOT NULL,
      count ${t.int} NOT NULL,
      valid_from ${t.int} NOT NULL,
      valid_until ${t.int} NOT NULL,
      booking_required SMALLINT NOT NULL,
      created_at ${t.int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS vouchers (
      serial ${t.int} PRIMARY KEY,
      batch_id TEXT NOT NULL REFERENCES voucher_batches(batch_id),
      state TEXT NOT NULL CHECK (state IN ('generated', 'sent', 'issued', 'booked', 'written_off', 'voided')),
      centre_id TEXT,
      community TEXT,
      wallet_id TEXT,
      slot_id ${t.int},
      terminal_id TEXT,
      clinic_code TEXT,
      sent_at ${t.int},
      issued_at ${t.int},
      booked_at ${t.int},
      written_off_at ${t.int},
      voided_at ${t.int},
      void_reason TEXT)`,
    'CREATE INDEX IF NOT EXISTS vouchers_by_batch ON vouchers (batch_id, state)',
    `CREATE TABLE IF NOT EXISTS voucher_slots (
      slot_id ${t.int} PRIMARY KEY,
      clinic_code TEXT NOT NULL,
      department TEXT NOT NULL,
      doctor TEXT NOT NULL,
      start_at ${t.int} NOT NULL,
      end_at ${t.int} NOT NULL,
      capacity ${t.int} NOT NULL,
      booked ${t.int} NOT NULL DEFAULT 0 CHECK (booked <= capacity))`,
  ];
}

/**
 * Migration 7: insurance payments (docs/insurance.md). One row an order; every state change is one conditional
 * UPDATE ... WHERE state IN (...) (server/insurance/SqlInsuranceStore.ts). Secrets are kept as SHA-256: the device
 * code and the authorisation token. settle_key is written before the platform is called, so a settlement the
 * platform made while the server crashed is found at the next start by that key.
 */
function insuranceTables(t: { int: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS insurance_orders (
      order_id TEXT PRIMARY KEY,
      terminal_id TEXT NOT NULL,
      item TEXT NOT NULL,
      amount_fen ${t.int} NOT NULL,
      order_hash TEXT NOT NULL,
      device_code_hash TEXT NOT NULL UNIQUE,
      user_code TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL,
      interval_s ${t.int} NOT NULL,
      last_poll_at ${t.int},
      expires_at ${t.int} NOT NULL,
      phone_id TEXT,
      certificate_id TEXT,
      insurer_fen ${t.int},
      patient_fen ${t.int},
      token_hash TEXT,
      settle_key TEXT UNIQUE,
      settlement_id TEXT,
      reverse_key TEXT,
      voucher TEXT,
      failure TEXT,
      created_at ${t.int} NOT NULL,
      updated_at ${t.int} NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS insurance_orders_state ON insurance_orders (state)',
    'CREATE INDEX IF NOT EXISTS insurance_orders_created ON insurance_orders (created_at)',
  ];
}

/**
 * Migration 10: the voucher uses (entry type 12) by serial, so the ingest finds the same voucher written off on
 * another terminal (voucher-format.md §6) without scanning every entry.
 */
function voucherUseIndex(): string[] {
  return ['CREATE INDEX IF NOT EXISTS entries_voucher_serial ON entries (serial) WHERE type = 12'];
}

/**
 * Migration 9: the SMS reports the server accepted (firmware-protocol/sms-report.md), one row per terminal and
 * report counter, with the chain head they name; head_check says whether the ledger received later holds that
 * head (0 not yet known, 1 holds it, 2 contradicts it: a rollback or fork).
 */
function smsReportTables(t: { int: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS sms_reports (
      terminal_id TEXT NOT NULL,
      counter ${t.int} NOT NULL,
      sender TEXT NOT NULL,
      sent_at ${t.int} NOT NULL,
      received_at ${t.int} NOT NULL,
      head_seq ${t.int} NOT NULL,
      head_hash_prefix TEXT NOT NULL,
      outbox_depth ${t.int} NOT NULL,
      alerts ${t.int} NOT NULL,
      batches TEXT NOT NULL,
      body_hex TEXT NOT NULL,
      head_check ${t.int} NOT NULL DEFAULT 0,
      PRIMARY KEY (terminal_id, counter))`,
  ];
}

/**
 * Migration 11: uses recorded with an untrusted terminal clock, per terminal, clinic and the day the server
 * received them (UTC): the best date the server has (audit finding 5). uses_daily keeps only uses with a
 * trusted clock. The backfill moves the untrusted uses stored before, once: only while the new table is empty
 * (the subtraction runs first, while it still is).
 */
function untrustedUsesTable(t: { int: string; arrivalDay: (column: string) => string }): string[] {
  const counted = `e.type = 3 AND e.clock_trusted = 0
        AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = 6 AND r.ref = e.seq)`;
  return [
    usesByDayTable('uses_daily_untrusted', t.int),
    `UPDATE uses_daily SET uses = uses - (SELECT COUNT(*) FROM entries e WHERE e.terminal_id = uses_daily.terminal_id
        AND e.clinic_code = uses_daily.clinic_code AND e.day = uses_daily.day AND ${counted})
      WHERE NOT EXISTS (SELECT 1 FROM uses_daily_untrusted)`,
    `INSERT INTO uses_daily_untrusted (terminal_id, clinic_code, day, uses)
      SELECT e.terminal_id, e.clinic_code, ${t.arrivalDay('e.received_at')}, COUNT(*) FROM entries e
      WHERE ${counted} AND NOT EXISTS (SELECT 1 FROM uses_daily_untrusted)
      GROUP BY e.terminal_id, e.clinic_code, ${t.arrivalDay('e.received_at')}
      ON CONFLICT (terminal_id, clinic_code, day) DO NOTHING`,
  ];
}

/**
 * Migration 12: a voucher use's outcome from the terminal's ledger (seed 004: the hospital module confirms the exam
 * complete; voucher-format.md §6): completed_at when the use's use.completed entry arrives; a use released
 * before the device started gives the voucher back (released_at, releases counts them).
 */
function voucherOutcomeColumns(t: { int: string; addColumn: string }): string[] {
  return [
    `ALTER TABLE vouchers ${t.addColumn} completed_at ${t.int}`,
    `ALTER TABLE vouchers ${t.addColumn} released_at ${t.int}`,
    `ALTER TABLE vouchers ${t.addColumn} releases ${t.int} NOT NULL DEFAULT 0`,
  ];
}

/** The Monday (YYYY-MM-DD) of a day column's ISO week, in each dialect */
export const SQLITE_WEEK_OF = (column: string): string => `date(${column}, '-' || ((CAST(strftime('%w', ${column}) AS INTEGER) + 6) % 7) || ' days')`;
export const POSTGRES_WEEK_OF = (column: string): string => `to_char(date_trunc('week', ${column}::date), 'YYYY-MM-DD')`;

/**
 * Migration 13: roll-ups that let each dashboard call read few rows, kept by the ingest in the transaction that
 * stores the entries (SqlServerStore.insertGroup): uses per clinic and day, ISO week (its Monday) and month, and
 * per terminal and week and month (per terminal and day is uses_daily), each with untrusted apart (1: dated by
 * arrival, as uses_daily_untrusted); per batch on its terminal, the use reservations stored and how many of them
 * a release cancelled (the batches page). Indexes on the daily tables in (terminal, day, clinic) order, which the
 * daily rows are paged in. The backfills count what the daily tables and the entries hold, once: each only while
 * its period has no row (a PostgreSQL database made before schema_migrations runs them once more).
 */
function rollupTables(t: { int: string; weekOf: (column: string) => string }): string[] {
  const daily = `SELECT terminal_id, clinic_code, day, uses, 0 AS untrusted FROM uses_daily WHERE uses > 0
        UNION ALL SELECT terminal_id, clinic_code, day, uses, 1 AS untrusted FROM uses_daily_untrusted WHERE uses > 0`;
  const buckets = { day: 'd.day', week: t.weekOf('d.day'), month: 'substr(d.day, 1, 7)' } as const;
  return [
    `CREATE TABLE IF NOT EXISTS uses_by_clinic (
      period TEXT NOT NULL,
      clinic_code TEXT NOT NULL,
      bucket TEXT NOT NULL,
      untrusted SMALLINT NOT NULL,
      uses ${t.int} NOT NULL,
      PRIMARY KEY (period, clinic_code, bucket, untrusted))`,
    `CREATE TABLE IF NOT EXISTS uses_by_terminal (
      period TEXT NOT NULL,
      terminal_id TEXT NOT NULL,
      clinic_code TEXT NOT NULL,
      bucket TEXT NOT NULL,
      untrusted SMALLINT NOT NULL,
      uses ${t.int} NOT NULL,
      PRIMARY KEY (period, terminal_id, clinic_code, bucket, untrusted))`,
    `CREATE TABLE IF NOT EXISTS batch_uses (
      terminal_id TEXT NOT NULL,
      batch_id TEXT NOT NULL,
      reserved ${t.int} NOT NULL,
      released ${t.int} NOT NULL,
      PRIMARY KEY (terminal_id, batch_id))`,
    'CREATE INDEX IF NOT EXISTS uses_daily_by_day ON uses_daily (terminal_id, day, clinic_code)',
    'CREATE INDEX IF NOT EXISTS uses_daily_untrusted_by_day ON uses_daily_untrusted (terminal_id, day, clinic_code)',
    ...(['day', 'week', 'month'] as const).map(
      (period) => `INSERT INTO uses_by_clinic (period, clinic_code, bucket, untrusted, uses)
      SELECT '${period}', d.clinic_code, ${buckets[period]}, d.untrusted, SUM(d.uses) FROM (${daily}) d
      WHERE NOT EXISTS (SELECT 1 FROM uses_by_clinic WHERE period = '${period}')
      GROUP BY d.clinic_code, ${buckets[period]}, d.untrusted
      ON CONFLICT (period, clinic_code, bucket, untrusted) DO NOTHING`,
    ),
    ...(['week', 'month'] as const).map(
      (period) => `INSERT INTO uses_by_terminal (period, terminal_id, clinic_code, bucket, untrusted, uses)
      SELECT '${period}', d.terminal_id, d.clinic_code, ${buckets[period]}, d.untrusted, SUM(d.uses) FROM (${daily}) d
      WHERE NOT EXISTS (SELECT 1 FROM uses_by_terminal WHERE period = '${period}')
      GROUP BY d.terminal_id, d.clinic_code, ${buckets[period]}, d.untrusted
      ON CONFLICT (period, terminal_id, clinic_code, bucket, untrusted) DO NOTHING`,
    ),
    `INSERT INTO batch_uses (terminal_id, batch_id, reserved, released)
      SELECT e.terminal_id, e.batch_id, COUNT(*),
        SUM(CASE WHEN EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = 6 AND r.ref = e.seq) THEN 1 ELSE 0 END)
      FROM entries e WHERE e.type = 3 AND e.batch_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM batch_uses)
      GROUP BY e.terminal_id, e.batch_id
      ON CONFLICT (terminal_id, batch_id) DO NOTHING`,
  ];
}

/**
 * Migration 14: the console's card deny list (issue 15) and what each terminal's heartbeat says of itself.
 * card_denylist: a revoked card, the deny-list version its revocation made (one more than the highest before),
 * who revoked it and why; the terminals get the whole list at the highest version. heartbeats gain the deny-list
 * version the terminal holds, whether its clock is trusted, its certificate's expiry and its software version.
 */
function denylistTables(t: { int: string; addColumn: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS card_denylist (
      card_id TEXT PRIMARY KEY,
      version ${t.int} NOT NULL UNIQUE,
      reason TEXT NOT NULL,
      revoked_at ${t.int} NOT NULL,
      revoked_by TEXT NOT NULL)`,
    `ALTER TABLE heartbeats ${t.addColumn} denylist_version ${t.int}`,
    `ALTER TABLE heartbeats ${t.addColumn} clock_trusted ${t.int}`,
    `ALTER TABLE heartbeats ${t.addColumn} cert_expires_at ${t.int}`,
    `ALTER TABLE heartbeats ${t.addColumn} software TEXT`,
  ];
}

/**
 * Migration 15: the personal wallet QR codes the back office has taken (wallet-qr.md §3), so a code is taken once
 * across a restart and across servers sharing the store: one row a code (its key id and nonce), inserted with ON
 * CONFLICT DO NOTHING (of two concurrent presentations one inserts), kept until its expiry, pruned after it.
 */
function walletQrTakenTable(t: { int: string }): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS wallet_qr_taken (
      code TEXT PRIMARY KEY,
      wallet_id TEXT NOT NULL,
      expires_at ${t.int} NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS wallet_qr_taken_by_expiry ON wallet_qr_taken (expires_at)',
  ];
}

/**
 * Migration 16: the daily tables' (terminal, day, clinic) indexes of migration 13 gain the uses, so the daily rows
 * (the dashboard's pages of them, the uses CSV, the day-by-terminal series) are read from the index alone, in its
 * order, without a lookup of each row in the table (a month's CSV at the bench's scale went through 182,500 of
 * them to find its 15,000). SQLite keeps the uses as the index's last column; PostgreSQL as an INCLUDE column.
 * The narrower indexes go: the new ones serve every query they served. The clinic and terminal roll-ups of
 * migration 13 get the same: their series are read in (period, key, bucket) order from the index alone.
 */
function coveringDailyIndexes(t: { include: (keys: string, covered: string) => string }): string[] {
  return [
    ...['uses_daily', 'uses_daily_untrusted'].flatMap((table) => [
      `CREATE INDEX IF NOT EXISTS ${table}_rows ON ${table} ${t.include('terminal_id, day, clinic_code', 'uses')}`,
      `DROP INDEX IF EXISTS ${table}_by_day`,
    ]),
    // the series read a period's rows in key and bucket order: the primary key's order, with the uses beside it
    `CREATE INDEX IF NOT EXISTS uses_by_clinic_rows ON uses_by_clinic ${t.include('period, clinic_code, bucket, untrusted', 'uses')}`,
    `CREATE INDEX IF NOT EXISTS uses_by_terminal_rows ON uses_by_terminal ${t.include('period, terminal_id, bucket, clinic_code, untrusted', 'uses')}`,
  ];
}

/**
 * Migration 17: insurance service orders (seed 001): a patient's booking app pays an order for an exam at a clinic
 * before any terminal is chosen. clinic_code names the clinic whose terminal may redeem it (terminal_id is '' until
 * one does), wallet_id the patient user's wallet that paid it. Both NULL on the terminal's own orders.
 */
function serviceOrderColumns(t: { addColumn: string }): string[] {
  return [`ALTER TABLE insurance_orders ${t.addColumn} clinic_code TEXT`, `ALTER TABLE insurance_orders ${t.addColumn} wallet_id TEXT`];
}

/** The UTC day (YYYY-MM-DD) of a millisecond time column, in each dialect */
export const SQLITE_DAY_OF = (column: string): string => `strftime('%Y-%m-%d', ${column} / 1000, 'unixepoch')`;
export const POSTGRES_DAY_OF = (column: string): string => `to_char(to_timestamp(${column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`;

export const SQLITE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'server store: terminals, entries, batches, rejections, alerts, heartbeats',
    up: (db) => {
      for (const sql of storeTables({ int: 'INTEGER', blob: 'BLOB', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT' })) db.exec(sql);
    },
  },
  {
    version: 2,
    description: 'signature audit position per terminal (for chain-anchored ingest)',
    up: (db) => {
      for (const sql of signatureAuditTable({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 3,
    description: 'registry: clinics, expected terminals, issuing stations, their cards, one-time ranges, issuance log, imports',
    up: (db) => {
      for (const sql of registryTables({ int: 'INTEGER', blob: 'BLOB', real: 'REAL' })) db.exec(sql);
    },
  },
  {
    version: 4,
    description: 'registry: when each retired terminal was retired',
    // runs once (user_version): SQLite has no ADD COLUMN IF NOT EXISTS
    up: (db) => {
      for (const sql of retiredAtColumn({ int: 'INTEGER', addColumn: 'ADD COLUMN', nowMs: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)" })) db.exec(sql);
    },
  },
  {
    version: 5,
    description: 'console: agents, users, sessions, login failures, one-time logins, alert acknowledgements, append-only audit log',
    up: (db) => {
      for (const sql of [...accessTables({ int: 'INTEGER', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT', real: 'REAL' }), ...SQLITE_AUDIT_GUARDS]) db.exec(sql);
    },
  },
  {
    version: 6,
    description: 'daily roll-up of uses per terminal and clinic, kept at ingest',
    up: (db) => {
      for (const sql of usesDailyTable({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 7,
    description: 'insurance payments: orders, device authorisations, tokens, settlements',
    up: (db) => {
      for (const sql of insuranceTables({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 8,
    description: 'service vouchers: batches, vouchers, booking slots (voucher-format.md)',
    up: (db) => {
      for (const sql of voucherTables({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 9,
    description: 'SMS reports: each accepted report with its chain head and whether the ledger holds it',
    up: (db) => {
      for (const sql of smsReportTables({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 10,
    description: 'voucher uses (entry type 12) indexed by serial, for the double write-off check at ingest',
    up: (db) => {
      for (const sql of voucherUseIndex()) db.exec(sql);
    },
  },
  {
    version: 11,
    description: 'uses with an untrusted terminal clock rolled up by the day the server received them, apart',
    up: (db) => {
      for (const sql of untrustedUsesTable({ int: 'INTEGER', arrivalDay: SQLITE_DAY_OF })) db.exec(sql);
    },
  },
  {
    version: 12,
    description: "voucher uses' outcomes: the exam completed, the voucher given back by a release",
    // runs once (user_version): SQLite has no ADD COLUMN IF NOT EXISTS
    up: (db) => {
      for (const sql of voucherOutcomeColumns({ int: 'INTEGER', addColumn: 'ADD COLUMN' })) db.exec(sql);
    },
  },
  {
    version: 13,
    description: 'roll-ups per clinic (day, week, month), per terminal (week, month) and per batch, kept at ingest',
    up: (db) => {
      for (const sql of rollupTables({ int: 'INTEGER', weekOf: SQLITE_WEEK_OF })) db.exec(sql);
    },
  },
  {
    version: 14,
    description: "the console's card deny list; the deny-list version, clock trust, certificate expiry and software in heartbeats",
    // runs once (user_version): SQLite has no ADD COLUMN IF NOT EXISTS
    up: (db) => {
      for (const sql of denylistTables({ int: 'INTEGER', addColumn: 'ADD COLUMN' })) db.exec(sql);
    },
  },
  {
    version: 15,
    description: 'personal wallet QR codes taken, each once, until they expire',
    up: (db) => {
      for (const sql of walletQrTakenTable({ int: 'INTEGER' })) db.exec(sql);
    },
  },
  {
    version: 16,
    description: "the daily tables' indexes cover the uses: the daily rows read from the index alone",
    up: (db) => {
      for (const sql of coveringDailyIndexes({ include: (keys, covered) => `(${keys}, ${covered})` })) db.exec(sql);
    },
  },
  {
    version: 17,
    description: 'insurance service orders paid from a booking app: the clinic that may redeem one, the wallet that paid it',
    // runs once (user_version): SQLite has no ADD COLUMN IF NOT EXISTS
    up: (db) => {
      for (const sql of serviceOrderColumns({ addColumn: 'ADD COLUMN' })) db.exec(sql);
    },
  },
];

/**
 * PostgreSQL records the versions it ran in schema_migrations (postgresDriver.ts) and runs only new ones; each
 * statement still does nothing where its work is done already (IF NOT EXISTS; the backfill finds no row), for a
 * database made before that record, which runs them all once. By the migration that brought them.
 */
export const POSTGRES_MIGRATIONS: ReadonlyArray<{ readonly version: number; readonly statements: readonly string[] }> = [
  { version: 1, statements: storeTables({ int: 'BIGINT', blob: 'BYTEA', serial: 'BIGSERIAL PRIMARY KEY' }) },
  { version: 2, statements: signatureAuditTable({ int: 'BIGINT' }) },
  { version: 3, statements: registryTables({ int: 'BIGINT', blob: 'BYTEA', real: 'DOUBLE PRECISION' }) },
  { version: 4, statements: retiredAtColumn({ int: 'BIGINT', addColumn: 'ADD COLUMN IF NOT EXISTS', nowMs: '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT' }) },
  { version: 5, statements: [...accessTables({ int: 'BIGINT', serial: 'BIGSERIAL PRIMARY KEY', real: 'DOUBLE PRECISION' }), ...POSTGRES_AUDIT_GUARDS] },
  { version: 6, statements: usesDailyTable({ int: 'BIGINT' }) },
  { version: 7, statements: insuranceTables({ int: 'BIGINT' }) },
  { version: 8, statements: voucherTables({ int: 'BIGINT' }) },
  { version: 9, statements: smsReportTables({ int: 'BIGINT' }) },
  { version: 10, statements: voucherUseIndex() },
  { version: 11, statements: untrustedUsesTable({ int: 'BIGINT', arrivalDay: POSTGRES_DAY_OF }) },
  { version: 12, statements: voucherOutcomeColumns({ int: 'BIGINT', addColumn: 'ADD COLUMN IF NOT EXISTS' }) },
  { version: 13, statements: rollupTables({ int: 'BIGINT', weekOf: POSTGRES_WEEK_OF }) },
  { version: 14, statements: denylistTables({ int: 'BIGINT', addColumn: 'ADD COLUMN IF NOT EXISTS' }) },
  { version: 15, statements: walletQrTakenTable({ int: 'BIGINT' }) },
  { version: 16, statements: coveringDailyIndexes({ include: (keys, covered) => `(${keys}) INCLUDE (${covered})` }) },
  { version: 17, statements: serviceOrderColumns({ addColumn: 'ADD COLUMN IF NOT EXISTS' }) },
];

/**
 * Every roll-up counted from the entries into its empty table, in one pass each: what migrations 6, 11 and 13 fill
 * when they upgrade a database, for a store whose entries were loaded in bulk without the ingest (the dashboard
 * bench). uses_daily gets the trusted uses only, so migration 11's move of the untrusted ones is not needed.
 */
export function rollupsFromEntries(dialect: 'sqlite' | 'postgres'): string[] {
  const t = dialect === 'sqlite' ? { int: 'INTEGER', arrivalDay: SQLITE_DAY_OF, weekOf: SQLITE_WEEK_OF } : { int: 'BIGINT', arrivalDay: POSTGRES_DAY_OF, weekOf: POSTGRES_WEEK_OF };
  return [
    `INSERT INTO uses_daily (terminal_id, clinic_code, day, uses)
      SELECT e.terminal_id, e.clinic_code, e.day, COUNT(*) FROM entries e
      WHERE e.type = 3 AND e.clock_trusted = 1 AND NOT EXISTS (SELECT 1 FROM uses_daily)
        AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = 6 AND r.ref = e.seq)
      GROUP BY e.terminal_id, e.clinic_code, e.day
      ON CONFLICT (terminal_id, clinic_code, day) DO NOTHING`,
    untrustedUsesTable(t)[2]!,
    // migration 16's covering indexes replaced migration 13's narrow ones: not made again
    ...rollupTables(t).filter((sql) => !/^CREATE INDEX IF NOT EXISTS \w+_by_day /.test(sql)),
  ];
}

