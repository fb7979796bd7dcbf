/**
 * The little the server store needs from a SQL database, so one store class
 * serves SQLite and PostgreSQL. SQL is written once with `?` placeholders.
 */
export type SqlValue = string | number | Uint8Array | null;

export interface SqlExecutor {
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Returns the number of rows changed */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /**
   * INSERT ... ON CONFLICT DO NOTHING for many rows; returns the indexes of
   * the rows actually inserted. sql is the statement for one row.
   */
  insertIgnoring(table: string, columns: readonly string[], conflict: readonly string[], rows: readonly (readonly SqlValue[])[]): Promise<number[]>;
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs fn in one transaction; concurrent callers are serialised where the database needs it */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
