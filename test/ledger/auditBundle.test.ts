/**
 * The audit bundle end to end, as a clinic and an investor would use it: a
 * terminal syncs with the ingest (its acks carry checkpoints); tally audit
 * export makes the terminal's half from its data folder and the server's half
 * (with its signed statement) from the server's store; tally audit verify and
 * scripts/verify_ledger.py --bundle check each with the root fingerprint alone;
 * tally audit compare says MATCH, then lists the entries the server has not
 * received, then, after the terminal's database is restored from an older copy,
 * the entries the terminal lacks and the uses that makes disappear.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { provisionTerminal } from '../../src/scenario/CardWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { systemClock } from '../../src/util/clock.js';
import { tally } from '../support/cliLedger.js';
import { auditIssuer, syncReport } from '../support/auditRig.js';
import { python } from '../support/pythonVerifier.js';
import { useScratch } from '../support/scratch.js';

const { scratch, cleanups } = useScratch();

describe('the audit bundle', () => {
  it('is exported by both halves, verified with the root fingerprint alone, and compared entry by entry', { timeout: 60_000 }, async () => {
    const dir = scratch();
    const { issuer, keyFile, rootHex, fingerprint, signer } = await auditIssuer(dir);
    cleanups.push(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 6);
    const storePath = join(dir, 'server.db');
    const store = await createServerStore({ kind: 'sqlite', path: storePath });
    onTestFinished(() => store.close());
    const ingest = new Ingest({ store, rootPublicKey: Buffer.from(rootHex, 'hex'), clock: systemClock, checkpointSigner: { key: signer.key, certificate: signer.certificate } });

    const dataDir = join(dir, 'data');
    const db = join(dataDir, 'terminal.db');
    let rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-AUD', clinicCode: 'C1' });
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
    for (const card of batch.oneTimeCards.slice(0, 2)) expect(await rig.swipe(card)).toMatchObject({ ok: true });
    await syncReport(ingest, rig.terminal, 1);
    rig.terminal.close();
    copyFileSync(db, join(dir, 'backup.db'));
    rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-AUD', clinicCode: 'C1' });
    for (const card of batch.oneTimeCards.slice(2, 4)) expect(await rig.swipe(card)).toMatchObject({ ok: true });
    await syncReport(ingest, rig.terminal, 2);
    rig.terminal.close();

    const exportBoth = async (name: string) => {
      const t = join(dir, `${name}-terminal.json`);
      const s = join(dir, `${name}-server.json`);
      const te = await tally('audit', 'export', '--data', dataDir, '--out', t);
      expect(te.code, te.err).toBe(0);
      const se = await tally('audit', 'export', '--store', storePath, '--terminal', 'T-AUD', '--signing-key', keyFile, '--root', rootHex, '--out', s);
      expect(se.code, se.err).toBe(0);
      return { t, s };
    };
    const first = await exportBoth('synced');
    for (const bundle of [first.t, first.s]) {
      const verified = await tally('audit', 'verify', bundle, '--root-fingerprint', fingerprint);
      expect(verified.code, verified.out).toBe(0);
      expect(verified.out).toMatch(/^VERIFIED: (terminal|server) bundle of T-AUD/);
      const py = python('--bundle', bundle, '--root-fingerprint', fingerprint, '--json');
      expect(py.status, py.stdout + py.stderr).toBe(0);
      expect(JSON.parse(py.stdout)).toMatchObject({ ok: true, ledger: { ok: true, entries: 14 } });
    }
    const matched = await tally('audit', 'compare', first.t, first.s, '--root-fingerprint', fingerprint);
    expect(matched.code, matched.out).toBe(0);
    expect(matched.out.split('\n')[0]).toBe('MATCH: the terminal and the server hold the same 14 entries; 4 uses charged (every entry)');

    // a forged statement is refused by both verifiers
    const forged = JSON.parse(readFileSync(first.s, 'utf8')) as { statement: { body: string } };
    forged.statement.body = forged.statement.body.replace('"T-AUD"', '"T-AUD" ');
    const forgedFile = join(dir, 'forged.json');
    writeFileSync(forgedFile, JSON.stringify(forged));
    const refused = await tally('audit', 'verify', forgedFile, '--root', rootHex, '--json');
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.out)).toMatchObject({ ok: false, statement: { ok: false, problem: { code: 'STATEMENT_INVALID' } } });
    expect(python('--bundle', forgedFile, '--root', rootHex).status).toBe(4);

    // one more use the server has not received yet
    rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-AUD', clinicCode: 'C1' });
    expect(await rig.swipe(batch.oneTimeCards[4]!)).toMatchObject({ ok: true });
    rig.terminal.close();
    const unsent = await exportBoth('unsent');
    const ahead = await tally('audit', 'compare', unsent.t, unsent.s, '--root-fingerprint', fingerprint, '--json');
    expect(ahead.code).toBe(4);
    expect(JSON.parse(ahead.out)).toMatchObject({ match: false, terminal: { entries: 17, charged: 5 }, server: { entries: 14, charged: 4 }, differences: [15, 16, 17].map((seq) => ({ seq, kind: 'terminal-only' })) });

    // the terminal's database restored from the copy taken after the first sync: the server holds what it lost
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    copyFileSync(join(dir, 'backup.db'), db);
    const restored = await exportBoth('restored');
    const lost = await tally('audit', 'compare', restored.t, restored.s, '--root-fingerprint', fingerprint);
    expect(lost.code).toBe(4);
    const lines = lost.out.split('\n');
    expect(lines[0]).toBe('DIFFER: 0 entries only on the terminal, 6 only on the server, 0 different at the same seq [AUDIT_HALVES_DIFFER 4063]');
    expect(lines[1]).toBe('uses charged (every entry): terminal 2, server 4 (the terminal counts 2 fewer)');
    expect(lines[2]).toBe("money at 100.00 a use, the investor's share 70%: terminal 200.00 (the clinic's share 60.00, the investor's 140.00), server 400.00 (the clinic's share 120.00, the investor's 280.00)");
    expect(lines[3]).toBe("the server's statement charges 200.00 more than the terminal's ledger: the clinic's share 60.00 more, the investor's 140.00 more");
    expect(lost.out).toMatch(/seq 9: use.reserved \(card 3 of batch [0-9a-f]{16}\): the terminal lacks it; a card use charged 100\.00$/m);
    // the terminal's own half: its ledger is valid alone, but the checkpoint it kept outside the database names it cut
    const py = python('--bundle', restored.t, '--root-fingerprint', fingerprint, '--json');
    expect(py.status).toBe(4);
    expect(JSON.parse(py.stdout)).toMatchObject({ ok: false, ledger: { ok: true, entries: 8 }, checkpoint: { ok: false, problem: { code: 'TRUNCATED', seq: 9 } } });
    const ts = await tally('audit', 'verify', restored.t, '--root-fingerprint', fingerprint);
    expect(ts.code).toBe(4);
    expect(ts.out).toMatch(/checkpoint: TRUNCATED: /);
  });
});
