/**
 * Opens a SQLite database the way every tallystick database must be opened:
 * WAL, synchronous=FULL on EVERY open (better-sqlite3 reopens a WAL database
 * with NORMAL, which can lose the last commits on power loss), foreign keys,
 * and the schema migrated in place to the newest version.
 */
import Database from 'better-sqlite3';
import { storageFault, TallyError } from '../errors.js';

export type SqliteDatabase = Database.Database;

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly up: (db: SqliteDatabase) => void;
}

export function openDatabase(path: string, migrations: readonly Migration[], options: { readonly?: boolean } = {}): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  } catch (err) {
    throw storageFault(err, `cannot open ${path}`);
  }
  try {
    if (!options.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db, migrations);
    }
    return db;
  } catch (err) {
    db.close();
    throw storageFault(err, `cannot prepare ${path}`);
  }
}

export function schemaVersion(db: SqliteDatabase): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[]): void {
  const current = schemaVersion(db);
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (current > newest) throw new TallyError('STORAGE_FAULT', `database schema ${current} is newer than this software (${newest}): refusing to open it`);
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}

/** Turns a SQLite failure inside a ledger write into a fail-closed storage fault (errors.ts maps the codes) */
export { storageFault };
