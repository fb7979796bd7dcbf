import { cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { TERMINAL_MIGRATIONS } from '../../src/ledger/schema.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { loadCardFile } from '../../src/sim/cardFile.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { openDatabase, schemaVersion, type Migration } from '../../src/util/openDatabase.js';

const FIXTURES = join(__dirname, '../fixtures');
/** One folder per released schema version; add one whenever a migration is added */
const RELEASED = [{ version: 1, dir: 'schema-v1', terminalId: 'T-V1', used: 3, count: 6 }];

describe('upgrades: databases made by earlier versions', () => {
  for (const release of RELEASED) {
    it(`opens a schema-v${release.version} terminal, migrates it in place and keeps deducting`, async () => {
      const dir = tempDir('tally-upgrade-');
      cpSync(join(FIXTURES, release.dir), dir, { recursive: true });
      const terminal = Terminal.open({ dataDir: join(dir, 'terminal'), acceptVersion1Cards: true });
      try {
        expect(schemaVersion(terminal.ledger.database)).toBe(Math.max(...TERMINAL_MIGRATIONS.map((m) => m.version)));
        expect(terminal.ledger.verify()).toMatchObject({ ok: true, terminalId: release.terminalId });
        expect(terminal.status().batches[0]).toMatchObject({ count: release.count, used: release.used });
        const reader = new SimulatedReader();
        const replay = await terminal.handleCard(reader.insert(loadCardFile(join(dir, 'onetime-1.json'))));
        expect(replay).toMatchObject({ ok: false, code: 'ALREADY_USED' });
        const fresh = await terminal.handleCard(reader.insert(loadCardFile(join(dir, 'onetime-4.json'))));
        expect(fresh).toMatchObject({ ok: true, serial: 4 });
        expect(terminal.ledger.verify().ok).toBe(true);
      } finally {
        terminal.close();
      }
    });
  }

  it('applies a new migration to an old database in one transaction, and refuses a database newer than the software', () => {
    const path = join(tempDir('tally-migrate-'), 'x.db');
    const v1: Migration = { version: 1, description: 'table', up: (db) => db.exec('CREATE TABLE t (a INTEGER)') };
    openDatabase(path, [v1]).close();
    const v2: Migration = { version: 2, description: 'column', up: (db) => db.exec('ALTER TABLE t ADD COLUMN b TEXT') };
    const db = openDatabase(path, [v1, v2]);
    expect(schemaVersion(db)).toBe(2);
    expect((db.prepare('PRAGMA table_info(t)').all() as { name: string }[]).map((c) => c.name)).toEqual(['a', 'b']);
    db.close();
    const broken: Migration = { version: 3, description: 'fails half way', up: (d) => { d.exec('ALTER TABLE t ADD COLUMN c TEXT'); throw new Error('boom'); } };
    expect(() => openDatabase(path, [v1, v2, broken])).toThrow(/STORAGE_FAULT|boom|cannot prepare/);
    const after = new Database(path);
    expect(after.pragma('user_version', { simple: true })).toBe(2);
    expect((after.prepare('PRAGMA table_info(t)').all() as { name: string }[]).map((c) => c.name)).toEqual(['a', 'b']);
    after.close();
    expect(() => openDatabase(path, [v1])).toThrow(/newer than this software/);
  });

  it('sets synchronous=FULL on every open, also when the database is already in WAL mode', () => {
    const path = join(tempDir('tally-sync-'), 'x.db');
    openDatabase(path, []).close();
    const db = openDatabase(path, []);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    db.close();
  });
});
