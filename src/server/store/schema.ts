/** The server's tables, for SQLite and PostgreSQL. Same names and meaning; only the types differ. */
import type { Migration } from '../../util/openDatabase.js';

function tables(t: { int: string; blob: string; serial: string }): string[] {
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
    `CREATE TABLE IF NOT EXISTS signature_audit (
      terminal_id TEXT PRIMARY KEY,
      audited_seq ${t.int} NOT NULL)`,
  ];
}

export const SQLITE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'server store: terminals, entries, batches, rejections, alerts, heartbeats',
    up: (db) => {
      for (const sql of tables({ int: 'INTEGER', blob: 'BLOB', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT' })) db.exec(sql);
    },
  },
  {
    version: 2,
    description: 'signature audit position per terminal (for chain-anchored ingest)',
    // every statement is IF NOT EXISTS: creates what a version-1 database lacks
    up: (db) => {
      for (const sql of tables({ int: 'INTEGER', blob: 'BLOB', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT' })) db.exec(sql);
    },
  },
];

export const POSTGRES_SCHEMA: string[] = tables({ int: 'BIGINT', blob: 'BYTEA', serial: 'BIGSERIAL PRIMARY KEY' });
