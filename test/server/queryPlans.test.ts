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

it('reads the daily rows (pages, the CSV, the day-by-terminal series) from the covering index alone, in its order', () => {
  const db = openDatabase(join(dir, 'daily.db'), SQLITE_MIGRATIONS);
  try {
    const plan = (sql: string): string[] => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((row) => row.detail);
    const page = plan("SELECT terminal_id, clinic_code, day, uses FROM uses_daily WHERE uses > 0 AND day >= '2025-06-01' AND (terminal_id, day, clinic_code) > ('T-1', '2025-06-02', 'CL-1') ORDER BY terminal_id, day, clinic_code LIMIT 5001");
    expect(page).toEqual([expect.stringMatching(/^SEARCH uses_daily USING COVERING INDEX uses_daily_rows /)]);
    const series = plan("SELECT terminal_id, group_concat(day || ' ' || uses, ',') AS days FROM uses_daily WHERE uses > 0 GROUP BY terminal_id");
    expect(series).toEqual([expect.stringMatching(/^SCAN uses_daily USING COVERING INDEX uses_daily_rows/)]);
    const clinics = plan("SELECT clinic_code, bucket, SUM(uses) FROM uses_by_clinic WHERE period = 'day' AND uses > 0 GROUP BY clinic_code, bucket ORDER BY clinic_code, bucket");
    expect(clinics).toEqual([expect.stringMatching(/^SEARCH uses_by_clinic USING COVERING INDEX uses_by_clinic_rows \(period=\?\)/)]);
  } finally {
    db.close();
  }
});
