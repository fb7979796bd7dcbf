/**
 * A damaged terminal database (truncated, a page zeroed, not a database at all)
 * is a broken ledger, not a crash: tally ledger verify exits 4 with
 * DATABASE_UNREADABLE (4060, English and Chinese) and the last good seq, and
 * the Python verifier names the same seq.
 */
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeCliLedger, tally } from '../support/cliLedger.js';
import { python } from '../support/pythonVerifier.js';
import { useScratch } from '../support/scratch.js';

const { scratch } = useScratch();

describe('a damaged ledger database', () => {
  it('is DATABASE_UNREADABLE with exit 4 and the last good seq, in both languages, never a stack trace', async () => {
    const made = await makeCliLedger(scratch(), { count: 4, swipes: 2 });
    const size = readFileSync(made.db).length;
    truncateSync(made.db, size - 4096);
    const run = await tally('ledger', 'verify', '--db', made.db, '--root-fingerprint', made.rootFingerprint);
    expect(run.code).toBe(4);
    expect(run.out).toMatch(/^ledger BROKEN at seq 1: the database cannot be read/m);
    expect(run.err).toContain('DATABASE_UNREADABLE 4060: Ledger database damaged');
    expect(run.err).toContain('账本数据库已损坏');
    expect(run.err).not.toMatch(/\n\s+at /);
    const json = JSON.parse((await tally('ledger', 'verify', '--db', made.db, '--root', made.rootHex, '--json')).out);
    expect(json).toMatchObject({ ok: false, lastSeq: 0, problem: { code: 'DATABASE_UNREADABLE', seq: 1 } });
    const py = python('--db', made.db, '--root-fingerprint', made.rootFingerprint, '--json');
    expect(py.status).toBe(4);
    expect(JSON.parse(py.stdout)).toMatchObject({ ok: false, problem: { code: 'DATABASE_UNREADABLE', seq: 1 } });
    expect((await tally('ledger', 'show', '--db', made.db)).err).toContain('DATABASE_UNREADABLE 4060');
  });

  it('a file that is not a database at all', async () => {
    const file = join(scratch(), 'terminal.db');
    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    const run = await tally('ledger', 'verify', '--db', file, '--root', '00'.repeat(32), '--json');
    expect(run.code).toBe(4);
    expect(JSON.parse(run.out)).toMatchObject({ ok: false, problem: { code: 'DATABASE_UNREADABLE', seq: 1 } });
    expect(python('--db', file, '--root', '00'.repeat(32)).status).toBe(4);
  });
});
