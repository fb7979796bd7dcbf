import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning } from '../support/process.js';
import { startPostgres, type RunningPostgres } from '../support/postgres.js';

describe('test/support/postgres', () => {
  let cluster: RunningPostgres;
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('runs a throw-away cluster on a free loopback port and creates databases', async () => {
    expect(cluster.port).not.toBe(5432);
    const url = cluster.createDatabase('harness_check');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const result = await client.query<{ db: string; addr: string }>('select current_database() as db, inet_server_addr()::text as addr');
    expect(result.rows[0]).toEqual({ db: 'harness_check', addr: '127.0.0.1/32' });
    await client.end();
  });

  it('stops by PID', async () => {
    const pid = cluster.pid;
    expect(isRunning(pid)).toBe(true);
    await cluster.close();
    expect(isRunning(pid)).toBe(false);
  });
});
