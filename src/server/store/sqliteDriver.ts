/**
 * SqlDriver over better-sqlite3: WAL and synchronous=FULL on every open
 * (src/util/openDatabase.ts). better-sqlite3 is synchronous, so an async
 * transaction holds a lock: nothing else runs on the connection until it ends.
 */
import type { Statement } from 'better-sqlite3';
import { openDatabase, type Migration, type SqliteDatabase } from '../../util/openDatabase.js';
import type { SqlDriver, SqlExecutor, SqlValue } from './SqlDriver.js';

class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async lock<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

class SqliteExecutor implements SqlExecutor {
  private readonly statements = new Map<string, Statement>();
  constructor(readonly db: SqliteDatabase) {}

  statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.statement(sql).all(...params) as T[];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.statement(sql).run(...params).changes;
  }

  async insertIgnoring(table: string, columns: readonly string[], conflict: readonly string[], rows: readonly (readonly SqlValue[])[]): Promise<number[]> {
    const sql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) ON CONFLICT (${conflict.join(', ')}) DO NOTHING`;
    const statement = this.statement(sql);
    const inserted: number[] = [];
    // an array binds as the anonymous parameters: no spread per row; better-sqlite3 binds any Uint8Array as a BLOB
    for (let index = 0; index < rows.length; index++) if (statement.run(rows[index]!).changes > 0) inserted.push(index);
    return inserted;
  }
}

export function createSqliteDriver(path: string, migrations: readonly Migration[]): SqlDriver {
  const db = openDatabase(path, migrations);
  const executor = new SqliteExecutor(db);
  const mutex = new Mutex();
  let inTransaction = false;
  const outside = <T>(fn: () => Promise<T>): Promise<T> => (inTransaction ? fn() : mutex.lock(fn));
  return {
    dialect: 'sqlite',
    all: (sql, params) => outside(() => executor.all(sql, params)),
    run: (sql, params) => outside(() => executor.run(sql, params)),
    insertIgnoring: (table, columns, conflict, rows) => outside(() => executor.insertIgnoring(table, columns, conflict, rows)),
    transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) =>
      mutex.lock(async () => {
        executor.statement('BEGIN IMMEDIATE').run();
        inTransaction = true;
        try {
          const result = await fn(executor);
          executor.statement('COMMIT').run();
          return result;
        } catch (err) {
          if (db.inTransaction) executor.statement('ROLLBACK').run();
          throw err;
        } finally {
          inTransaction = false;
        }
      }),
    close: async () => {
      await mutex.lock(async () => db.close());
    },
  };
}
