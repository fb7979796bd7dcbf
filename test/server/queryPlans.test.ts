/** The server's hot queries stay index lookups as the entries table grows (a scan per report is quadratic). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SQLITE_MIGRATIONS } from '../../src/server/store/schema.js';
import { openUsesSql } from '../../src/server/store/SqlServerStore.js';
import { openDatabase } from '../../src/util/openDatabase.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-plans-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('looks up each serial of a report through the partial index, never scanning the stored entries', () => {
  const db = openDatabase(join(dir, 'server.db'), SQLITE_MIGRATIONS);
  try {
    const insert = db.prepare(
      `INSERT INTO entries (terminal_id, seq, type, time, day, clock_trusted, clinic_code, batch_id, serial, ref, hash, prev_hash, raw, received_at)
       VALUES (?, ?, 3, 0, '2026-11-22', 1, 'CL-1', ?, ?, NULL, x'00', x'00', x'00', 0)`,
    );
    db.transaction(() => {
      for (let seq = 1; seq <= 5000; seq++) insert.run(`T-${seq % 7}`, seq, `batch-${seq % 13}`, seq);
    })();
    db.exec('ANALYZE');
    const pairs = Array.from({ length: 200 }, (_, i) => [`batch-${(i + 1) % 13}`, i + 1]).flat();
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${openUsesSql(200)}`).all(...pairs) as Array<{ detail: string }>).map((row) => row.detail);
    expect(plan.some((step) => /^SEARCH e USING (COVERING )?INDEX entries_use_serial/.test(step))).toBe(true);
    expect(plan.filter((step) => /^SCAN (e|r)\b/.test(step))).toEqual([]);
    const rows = db.prepare(openUsesSql(200)).all(...pairs);
    expect(rows).toHaveLength(200);
  } finally {
    db.close();
  }
});
