/** SqlDriver over node-postgres: a pool; a transaction takes one client for its duration. */
import pg from 'pg';
import type { SqlDriver, SqlExecutor, SqlValue } from './SqlDriver.js';

/** `?` -> `$1, $2, ...` (our SQL has no `?` inside string literals) */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function toPg(params: readonly SqlValue[]): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p));
}

interface Queryable {
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
}

class PostgresExecutor implements SqlExecutor {
  constructor(private readonly target: Queryable) {}

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await this.target.query(numbered(sql), toPg(params))).rows as T[];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.target.query(numbered(sql), toPg(params))).rowCount ?? 0;
  }

  async insertIgnoring(table: string, columns: readonly string[], conflict: readonly string[], rows: readonly (readonly SqlValue[])[]): Promise<number[]> {
    if (rows.length === 0) return [];
    // one multi-row statement; the row index rides along so RETURNING says which rows went in
    const inserted: number[] = [];
    const chunk = Math.max(1, Math.floor(60_000 / (columns.length + 1)));
    for (let start = 0; start < rows.length; start += chunk) {
      const part = rows.slice(start, start + chunk);
      const params: unknown[] = [];
      const values = part.map((row) => {
        const placeholders = row.map((value) => {
          params.push(value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value);
          return `$${params.length}`;
        });
        return `(${placeholders.join(', ')})`;
      });
      const sql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')} ON CONFLICT (${conflict.join(', ')}) DO NOTHING RETURNING ${conflict.join(', ')}`;
      const result = await this.target.query(sql, params);
      const conflictIndexes = conflict.map((c) => columns.indexOf(c));
      const returned = new Set(result.rows.map((r: Record<string, unknown>) => conflict.map((c) => String(r[c])).join('\u0000')));
      part.forEach((row, i) => {
        if (returned.has(conflictIndexes.map((c) => String(row[c])).join('\u0000'))) inserted.push(start + i);
      });
    }
    return inserted;
  }
}

/** A numbered migration: its statements each do nothing where their work is done already (IF NOT EXISTS, a backfill that finds its rows) */
export interface PostgresMigration {
  readonly version: number;
  readonly statements: readonly string[];
}

/**
 * Runs the migrations this database has not recorded in schema_migrations, in order, and records each. A database
 * made before the record existed runs them all once (each is idempotent) and is recorded from then on, so a start
 * no longer repeats a backfill over every entry (migration 11's recount took minutes on a large store).
 */
export async function createPostgresDriver(connectionString: string, migrations: readonly PostgresMigration[]): Promise<SqlDriver> {
  const pool = new pg.Pool({ connectionString, max: 8 });
  // an idle client's network error must not crash the server
  pool.on('error', () => undefined);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(7243001)');
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const applied = new Set((await client.query('SELECT version FROM schema_migrations')).rows.map((r: { version: string | number }) => Number(r.version)));
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await client.query(statement);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING', [migration.version, Date.now()]);
    }
    await client.query('SELECT pg_advisory_unlock(7243001)');
  } finally {
    client.release();
  }
  const executor = new PostgresExecutor(pool);
  return {
    dialect: 'postgres',
    all: (sql, params) => executor.all(sql, params),
    run: (sql, params) => executor.run(sql, params),
    insertIgnoring: (table, columns, conflict, rows) => executor.insertIgnoring(table, columns, conflict, rows),
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const txClient = await pool.connect();
      try {
        await txClient.query('BEGIN');
        const result = await fn(new PostgresExecutor(txClient));
        await txClient.query('COMMIT');
        return result;
      } catch (err) {
        await txClient.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        txClient.release();
      }
    },
    close: () => pool.end(),
  };
}
