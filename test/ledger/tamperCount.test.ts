/**
 * The counted tamper test (issue 12): a real ledger made by the CLI, with its
 * last 12 entries still in the WAL and the server's checkpoint of its head, is
 * edited the ways an insider with sqlite3 and a hex editor would: a random byte
 * of every row's entry, every row deleted (from ledger and outbox), adjacent
 * rows swapped, the tail cut at every length, the unsigned columns of every row,
 * the database file truncated at every page boundary or a page zeroed, the WAL
 * truncated at every frame boundary and inside frames, a byte of every WAL frame
 * and of its header flipped. Each case goes through tally ledger verify and
 * scripts/verify_ledger.py with the checkpoint; the test counts the cases and
 * asserts that both give the same verdict and that none that changed the ledger
 * passes as intact. Unsigned column edits leave the signed ledger whole: both
 * verifiers name the row and its column instead.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { encodeCheckpointFile } from '../../src/codecs/checkpoint.js';
import { signCheckpoint } from '../../src/crypto/checkpoint.js';
import { loadServerKey } from '../../src/cli/commands/serverKey.js';
import { makeCliLedger, tally } from '../support/cliLedger.js';
import { mulberry32 } from '../support/random.js';
import { useScratch } from '../support/scratch.js';
import { python } from '../support/pythonVerifier.js';

const { scratch } = useScratch();

interface Verdict {
  ok: boolean;
  entries: number;
  lastSeq: number;
  headHash: string;
  problem?: { code: string; seq: number };
  checkpoint?: { ok: boolean; problem?: { code: string; seq: number } };
  unsignedColumns?: { seq: number; columns: string[] }[];
}

/** What a verdict names: the ledger's rule, else the checkpoint's, else intact */
const finding = (v: Verdict) => (v.problem ? `${v.problem.code}@${v.problem.seq}` : v.checkpoint?.problem ? `${v.checkpoint.problem.code}@${v.checkpoint.problem.seq}` : 'intact');


describe('the counted tamper test', () => {
  it('detects every edit of a real ledger with both verifiers', { timeout: 240_000 }, async () => {
    const made = await makeCliLedger(scratch(), { count: 12, swipes: 8 });
    // a second connection keeps the last swipes' frames in the WAL (the CLI's own close does not checkpoint while it is open)
    const hold = new Database(made.db);
    hold.prepare('SELECT COUNT(*) FROM ledger').get();
    for (const card of made.unusedCards) expect((await tally('terminal', 'swipe', '--data', made.data, '--card', card)).code).toBe(0);
    const pristine = scratch();
    copyFileSync(made.db, join(pristine, 'terminal.db'));
    copyFileSync(`${made.db}-wal`, join(pristine, 'terminal.db-wal'));
    hold.close();
    const walBytes = statSync(join(pristine, 'terminal.db-wal')).size;
    const pageSize = 4096;
    const frames = (walBytes - 32) / (24 + pageSize);
    expect(Number.isInteger(frames) && frames > 10).toBe(true);

    // the server's checkpoint of the whole ledger (its key certified by the mother card)
    const keyFile = join(made.dir, 'server-key.json');
    expect((await tally('server', 'certify-key', '--server-id', 'SRV-1', '--key', keyFile, '--mother', join(made.dir, 'mother.json'), '--mother-pin', '123456')).code).toBe(0);
    const whole = JSON.parse((await tally('ledger', 'verify', '--db', join(pristine, 'terminal.db'), '--root', made.rootHex, '--json')).out) as Verdict;
    expect(whole).toMatchObject({ ok: true, entries: 2 + 12 * 3, unsignedColumns: [] });
    const n = whole.lastSeq;
    const signer = loadServerKey(keyFile, Buffer.from(made.rootHex, 'hex'));
    const checkpoint = join(made.dir, 'checkpoint.json');
    writeFileSync(checkpoint, encodeCheckpointFile(signCheckpoint(signer.key, signer.certificate, { terminalId: 'T-CLI-1', seq: n, headHash: whole.headHash, time: Date.now() })));

    interface Case {
      readonly kind: string;
      readonly dir: string;
      /** An unsigned-column edit: the row and column both verifiers must name */
      readonly column?: { seq: number; column: string };
    }
    const cases: Case[] = [];
    const random = mulberry32(12);
    let caseNo = 0;
    // the same ledger with every frame checkpointed into the database file (no WAL): every page of the file is then live
    const checkpointed = scratch();
    copyFileSync(join(pristine, 'terminal.db'), join(checkpointed, 'terminal.db'));
    copyFileSync(join(pristine, 'terminal.db-wal'), join(checkpointed, 'terminal.db-wal'));
    const merge = new Database(join(checkpointed, 'terminal.db'));
    merge.pragma('wal_checkpoint(TRUNCATE)');
    merge.close();
    const newCase = (kind: string, edit: (dir: string) => void, column?: Case['column'], base = pristine) => {
      const dir = join(made.dir, 'cases', String(caseNo++));
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(base, 'terminal.db'), join(dir, 'terminal.db'));
      if (existsSync(join(base, 'terminal.db-wal'))) copyFileSync(join(base, 'terminal.db-wal'), join(dir, 'terminal.db-wal'));
      edit(dir);
      cases.push({ kind, dir, ...(column ? { column } : {}) });
    };
    const sql = (dir: string, fn: (db: Database.Database) => void) => {
      const db = new Database(join(dir, 'terminal.db'));
      db.pragma('foreign_keys = OFF'); // as the sqlite3 shell has it
      fn(db);
      db.close();
    };
    const entryOf = (db: Database.Database, seq: number) => db.prepare<[number], { entry: Buffer }>('SELECT entry FROM ledger WHERE seq = ?').get(seq)!.entry;

    for (let seq = 1; seq <= n; seq++) {
      newCase('entry byte flipped', (dir) =>
        sql(dir, (db) => {
          const entry = entryOf(db, seq);
          const at = Math.floor(random() * entry.length);
          entry[at] = entry[at]! ^ (1 + Math.floor(random() * 255));
          db.prepare('UPDATE ledger SET entry = ? WHERE seq = ?').run(entry, seq);
        }),
      );
      newCase('row deleted (ledger and outbox)', (dir) => sql(dir, (db) => db.exec(`DELETE FROM outbox WHERE seq = ${seq}; DELETE FROM ledger WHERE seq = ${seq}`)));
      newCase('tail cut (ledger and outbox)', (dir) => sql(dir, (db) => db.exec(`DELETE FROM outbox WHERE seq >= ${seq}; DELETE FROM ledger WHERE seq >= ${seq}`)));
      if (seq < n) {
        newCase('adjacent rows swapped', (dir) =>
          sql(dir, (db) => {
            const [a, b] = [entryOf(db, seq), entryOf(db, seq + 1)];
            db.prepare('UPDATE ledger SET entry = ? WHERE seq = ?').run(b, seq);
            db.prepare('UPDATE ledger SET entry = ? WHERE seq = ?').run(a, seq + 1);
          }),
        );
      }
      const column = ['hash', 'time', 'type'][seq % 3]!;
      const change = { hash: 'hash = zeroblob(32)', time: 'time = time + 1', type: 'type = (type % 8) + 1' }[column];
      newCase('unsigned column edited', (dir) => sql(dir, (db) => db.exec(`UPDATE ledger SET ${change} WHERE seq = ${seq}`)), { seq, column });
    }
    const pages = statSync(join(pristine, 'terminal.db')).size / pageSize;
    const fullPages = statSync(join(checkpointed, 'terminal.db')).size / pageSize;
    expect(existsSync(join(checkpointed, 'terminal.db-wal'))).toBe(false);
    for (const [base, count, where] of [[pristine, pages, 'beside its WAL'], [checkpointed, fullPages, 'checkpointed']] as const) {
      for (let page = 1; page < count; page++) {
        newCase(`database file (${where}) truncated at a page`, (dir) => truncateSync(join(dir, 'terminal.db'), page * pageSize), undefined, base);
      }
      for (let page = 0; page < count; page++) {
        newCase(`database file (${where}) page zeroed`, (dir) => {
          const file = readFileSync(join(dir, 'terminal.db'));
          file.fill(0, page * pageSize, (page + 1) * pageSize);
          writeFileSync(join(dir, 'terminal.db'), file);
        }, undefined, base);
      }
    }
    for (let frame = 0; frame < frames; frame++) {
      newCase('WAL truncated at a frame boundary', (dir) => truncateSync(join(dir, 'terminal.db-wal'), 32 + frame * (24 + pageSize)));
      newCase('WAL truncated inside a frame', (dir) => truncateSync(join(dir, 'terminal.db-wal'), 32 + frame * (24 + pageSize) + 24 + Math.floor(random() * pageSize)));
      newCase('WAL frame byte flipped', (dir) => {
        const wal = readFileSync(join(dir, 'terminal.db-wal'));
        const at = 32 + frame * (24 + pageSize) + 24 + Math.floor(random() * pageSize);
        wal[at] = wal[at]! ^ 0x10;
        writeFileSync(join(dir, 'terminal.db-wal'), wal);
      });
    }
    newCase('WAL header byte flipped', (dir) => {
      const wal = readFileSync(join(dir, 'terminal.db-wal'));
      wal[12] = wal[12]! ^ 0x01; // the checkpoint sequence, covered by the header checksum
      writeFileSync(join(dir, 'terminal.db-wal'), wal);
    });

    // both verifiers on every case (Python in one run over all of them)
    const ts: Verdict[] = [];
    const tsExit: number[] = [];
    for (const c of cases) {
      const r = await tally('ledger', 'verify', '--db', join(c.dir, 'terminal.db'), '--root', made.rootHex, '--checkpoint', checkpoint, '--json');
      expect(r.out, `${c.kind} ${c.dir}: ${r.err}`).toMatch(/^\{/);
      tsExit.push(r.code);
      ts.push(JSON.parse(r.out) as Verdict);
    }
    const job = join(made.dir, 'cases.json');
    writeFileSync(job, JSON.stringify({ root: made.rootHex, checkpoint, dbs: cases.map((c) => join(c.dir, 'terminal.db')) }));
    const run = python('--many-db', job);
    expect(run.stderr).toBe('');
    const py = JSON.parse(run.stdout) as Verdict[];

    const tally_: Record<string, { tried: number; detected: number; unchanged: number; missed: number; says: Record<string, number> }> = {};
    cases.forEach((c, i) => {
      const [t, p] = [ts[i]!, py[i]!];
      expect({ kind: c.kind, dir: c.dir, finding: finding(p), columns: p.unsignedColumns }).toEqual({ kind: c.kind, dir: c.dir, finding: finding(t), columns: t.unsignedColumns });
      expect(tsExit[i]).toBe(t.ok ? 0 : 4);
      const row = (tally_[c.kind] ??= { tried: 0, detected: 0, unchanged: 0, missed: 0, says: {} });
      row.tried++;
      const said = c.column ? 'intact, and names the row and column edited' : finding(t).replace(/@\d+$/, '');
      row.says[said] = (row.says[said] ?? 0) + 1;
      if (c.column) {
        const named = (v: Verdict) => v.ok && v.unsignedColumns!.some((m) => m.seq === c.column!.seq && m.columns.includes(c.column!.column));
        if (named(t) && named(p)) row.detected++;
        else row.missed++;
      } else if (!t.ok && !p.ok) row.detected++;
      else if (t.ok && p.ok && t.entries === n && t.headHash === whole.headHash) row.unchanged++; // the edit lost no entry (a commit without a ledger row)
      else row.missed++;
    });
    const lines = Object.entries(tally_).map(([kind, r]) => `${kind.padEnd(44)} ${String(r.tried).padStart(4)} tried ${String(r.detected).padStart(4)} detected ${r.unchanged} ledger unchanged ${r.missed} missed   tally ledger verify: ${Object.entries(r.says).map(([k, v]) => `${k} x${v}`).join(', ')}`);
    const total = Object.values(tally_).reduce((a, r) => ({ tried: a.tried + r.tried, detected: a.detected + r.detected, unchanged: a.unchanged + r.unchanged, missed: a.missed + r.missed }), { tried: 0, detected: 0, unchanged: 0, missed: 0 });
    console.log(`tamper cases on a ${n}-entry CLI ledger (${frames} WAL frames, ${pages} database pages), with the server's checkpoint at seq ${n}:\n${lines.join('\n')}\ntotal ${total.tried} tried, ${total.detected} detected by both, ${total.unchanged} left the ledger unchanged, ${total.missed} missed`);
    expect(total.missed).toBe(0);
    // every edit of rows and columns, and of a database file whose pages are all live, is named; only edits of the WAL
    // or of pages the WAL holds newer copies of may leave the ledger as it was
    for (const [kind, r] of Object.entries(tally_)) if (!kind.startsWith('WAL') && !kind.includes('beside its WAL')) expect({ kind, detected: r.detected }).toEqual({ kind, detected: r.tried });
    expect(existsSync(join(pristine, 'terminal.db-wal'))).toBe(true);
  });
});
