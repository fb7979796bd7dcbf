/**
 * The server's schema migrations are frozen: each released version's
 * statements (SQLite and PostgreSQL) keep the digest recorded in
 * test/fixtures/server-migrations.json. Changing an old migration fails here;
 * a new version is appended with UPDATE_MIGRATIONS=1, which records only
 * versions the file does not hold yet.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from '../../src/server/store/schema.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/server-migrations.json', import.meta.url));

function sqliteStatements(up: (db: never) => void): string[] {
  const statements: string[] = [];
  up({ exec: (sql: string) => void statements.push(sql) } as never);
  return statements;
}

const digest = (statements: readonly string[]): string => createHash('sha256').update(statements.join('\n;\n')).digest('hex');

function current(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of SQLITE_MIGRATIONS) out[`sqlite:${m.version}`] = digest(sqliteStatements(m.up as (db: never) => void));
  for (const m of POSTGRES_MIGRATIONS) out[`postgres:${m.version}`] = digest(m.statements);
  return out;
}

describe('server migrations', () => {
  it('versions are 1..n in order on both databases', () => {
    expect(SQLITE_MIGRATIONS.map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((_, i) => i + 1));
    expect(POSTGRES_MIGRATIONS.map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
  });

  it('no released migration changed', () => {
    const recorded: Record<string, string> = existsSync(FIXTURE) ? JSON.parse(readFileSync(FIXTURE, 'utf8')) : {};
    const now = current();
    const added = Object.keys(now).filter((k) => !(k in recorded));
    if (process.env.UPDATE_MIGRATIONS === '1' && added.length > 0) {
      writeFileSync(FIXTURE, `${JSON.stringify({ ...recorded, ...Object.fromEntries(added.map((k) => [k, now[k]])) }, null, 2)}\n`);
    } else {
      expect(added, 'new migrations: record them with UPDATE_MIGRATIONS=1 npx vitest run test/server/migrationsFrozen.test.ts').toEqual([]);
    }
    for (const [key, value] of Object.entries(recorded)) {
      expect(now[key], `migration ${key} changed after release: add a new version instead`).toBe(value);
    }
  });
});
