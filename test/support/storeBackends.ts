/**
 * The two server stores a contract suite runs against: SQLite in a temp folder
 * and PostgreSQL on a throw-away cluster of its own (test/support/postgres.ts),
 * started on first use. Call at a test file's top level: both are removed after
 * the file's tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { ServerStoreOptions } from '../../src/server/createServerStore.js';
import { startPostgres, type RunningPostgres } from './postgres.js';

export interface StoreBackend {
  readonly name: 'sqlite' | 'postgres';
  /** Where a fresh database of this name goes (a SQLite file, or a new PostgreSQL database on the cluster) */
  place(database: string): Promise<ServerStoreOptions>;
}

export function storeBackends(prefix: string): StoreBackend[] {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  let postgres: Promise<RunningPostgres> | undefined;
  afterAll(async () => {
    await (await postgres?.catch(() => undefined))?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return [
    { name: 'sqlite', place: async (database) => ({ kind: 'sqlite', path: join(dir, `${database}.db`) }) },
    {
      name: 'postgres',
      place: async (database) => {
        postgres ??= startPostgres();
        return { kind: 'postgres', connectionString: (await postgres).createDatabase(database) };
      },
    },
  ];
}
