/**
 * PostgreSQL runs each migration once: the versions it ran are recorded in schema_migrations, so a start does not
 * repeat a backfill over every entry (migration 11's recount made a 27M-entry store take minutes to open).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresDriver } from '../../src/server/store/postgresDriver.js';
import { POSTGRES_MIGRATIONS } from '../../src/server/store/schema.js';
import { startPostgres, type RunningPostgres } from '../support/postgres.js';

describe('PostgreSQL migrations', () => {
  let postgres: RunningPostgres;
  beforeAll(async () => {
    postgres = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await postgres?.close();
  });

  it('records each version it ran, runs only new ones at the next start, and upgrades a database made before the record', async () => {
    const url = postgres.createDatabase('migrations_once');
    const first = await createPostgresDriver(url, POSTGRES_MIGRATIONS);
    const recorded = await first.all<{ version: string | number }>('SELECT version FROM schema_migrations ORDER BY version', []);
    expect(recorded.map((r) => Number(r.version))).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    await first.close();

    // a recorded version is not run again (its statement would fail), a new one runs once
    const probe = [
      ...POSTGRES_MIGRATIONS.map((m) => (m.version === 11 ? { version: 11, statements: ['SELECT no_such_function()'] } : m)),
      { version: 999, statements: ['CREATE TABLE probe_once (n BIGINT)', 'INSERT INTO probe_once VALUES (1)'] },
    ];
    const second = await createPostgresDriver(url, probe);
    expect(await second.all<{ n: string | number }>('SELECT n FROM probe_once', [])).toHaveLength(1);
    await second.close();
    const third = await createPostgresDriver(url, probe);
    expect(await third.all<{ n: string | number }>('SELECT n FROM probe_once', [])).toHaveLength(1);

    // a database from before schema_migrations: every (idempotent) statement runs once more, then it is recorded
    await third.run('DROP TABLE schema_migrations', []);
    await third.close();
    const upgraded = await createPostgresDriver(url, POSTGRES_MIGRATIONS);
    expect((await upgraded.all('SELECT version FROM schema_migrations', [])).length).toBe(POSTGRES_MIGRATIONS.length);
    await upgraded.close();
  }, 120_000);
});
