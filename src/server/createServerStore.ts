/** The server store factory: SQLite (embedded default) or PostgreSQL (production). */
import type { ServerStore } from './ServerStore.js';
import { createPostgresDriver } from './store/postgresDriver.js';
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from './store/schema.js';
import { createSqliteDriver } from './store/sqliteDriver.js';
import { SqlServerStore } from './store/SqlServerStore.js';

export type ServerStoreOptions = { readonly kind: 'sqlite'; readonly path: string } | { readonly kind: 'postgres'; readonly connectionString: string };

export async function createServerStore(options: ServerStoreOptions): Promise<ServerStore> {
  const driver = options.kind === 'sqlite' ? createSqliteDriver(options.path, SQLITE_MIGRATIONS) : await createPostgresDriver(options.connectionString, POSTGRES_MIGRATIONS);
  return new SqlServerStore(driver);
}
