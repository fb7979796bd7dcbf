/** The terminal database's schema, one migration per released version. */
import type { Migration } from '../util/openDatabase.js';

export const TERMINAL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'ledger, outbox, batches, uses, deny list, refusals',
    up: (db) =>
      db.exec(`
        CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE ledger (
          seq INTEGER PRIMARY KEY,
          type INTEGER NOT NULL,
          time INTEGER NOT NULL,
          hash BLOB NOT NULL,
          entry BLOB NOT NULL
        );
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY REFERENCES ledger(seq));
        CREATE TABLE batches (
          batch_id BLOB PRIMARY KEY,
          batch_no INTEGER NOT NULL,
          clinic_code TEXT NOT NULL,
          count INTEGER NOT NULL,
          valid_from INTEGER NOT NULL,
          valid_until INTEGER NOT NULL,
          public_key BLOB NOT NULL,
          white_card_id BLOB NOT NULL,
          loaded_seq INTEGER NOT NULL REFERENCES ledger(seq),
          used INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE uses (
          batch_id BLOB NOT NULL REFERENCES batches(batch_id),
          serial INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('reserved', 'started', 'completed', 'failed', 'released')),
          reserve_seq INTEGER NOT NULL REFERENCES ledger(seq),
          card_id BLOB NOT NULL,
          chip_uid BLOB,
          marker_written INTEGER NOT NULL DEFAULT 0,
          PRIMARY KEY (batch_id, serial)
        );
        CREATE UNIQUE INDEX uses_by_reserve ON uses(reserve_seq);
        CREATE TABLE deny (card_id BLOB PRIMARY KEY, reason TEXT NOT NULL);
        CREATE TABLE refusals (
          id INTEGER PRIMARY KEY,
          time INTEGER NOT NULL,
          code TEXT NOT NULL,
          detail TEXT,
          card_id BLOB,
          chip_uid BLOB
        );
      `),
  },
  {
    version: 2,
    description: 'voucher uses (ledger entry type 12, voucher-format.md)',
    up: (db) =>
      db.exec(`
        CREATE TABLE voucher_uses (
          serial INTEGER PRIMARY KEY,
          key_id INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('reserved', 'started', 'completed', 'failed', 'released')),
          reserve_seq INTEGER NOT NULL REFERENCES ledger(seq)
        );
        CREATE UNIQUE INDEX voucher_uses_by_reserve ON voucher_uses(reserve_seq);
      `),
  },
  {
    version: 3,
    description: 'insurance settlement uses (ledger entry type 14, settlement-voucher.md)',
    up: (db) =>
      db.exec(`
        CREATE TABLE settlement_uses (
          order_id TEXT PRIMARY KEY,
          state TEXT NOT NULL CHECK (state IN ('reserved', 'started', 'completed', 'failed', 'released')),
          reserve_seq INTEGER NOT NULL REFERENCES ledger(seq),
          outcome_sent INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX settlement_uses_by_reserve ON settlement_uses(reserve_seq);
      `),
  },
];
