/**
 * The server's half of the audit bundle from its own store, on SQLite and on
 * PostgreSQL: two real terminals of clinic C1 (and one of C2) sync with the real
 * ingest; the registry gives C1 a price and a share and an agent; tally audit
 * export --clinic C1 --from --to writes one signed bundle per terminal of the
 * clinic with the uses per day and batch and the income split; tally audit
 * verify and scripts/verify_ledger.py check each with the root fingerprint
 * alone. One terminal's report of seq 6 never reached the server: its bundle
 * fails with GAP at 6, and tally audit compare (and the Python verifier's
 * --compare) name seq 6 as the entry the server lacks, a charged use, and the
 * money it takes from each side.
 */
import { readdirSync, readFileSync } from 'node:fs';
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
import { storeBackends } from '../support/storeBackends.js';

const { scratch, cleanups } = useScratch();
const backends = storeBackends('server-audit');

describe.each(backends)('the server exports its half per clinic and period ($name)', (backend) => {
  it('signed bundles per terminal with uses per day and batch and the income split; a gap is GAP at its seq and compare names it', { timeout: 120_000 }, async () => {
    const dir = scratch();
    const { issuer, keyFile, rootHex, fingerprint, signer } = await auditIssuer(dir);
    cleanups.push(() => issuer.close());
    const options = await backend.place('audit');
    const storeArg = options.kind === 'sqlite' ? options.path : options.connectionString;
    const store = await createServerStore(options);
    onTestFinished(() => store.close());
    const now = Date.now();
    await store.registry.putClinic({ clinicCode: 'C1', name: 'Clinic one', pricePerUse: 8800, investorShare: 0.65, addedAt: now });
    await store.access.putAgent({ agentCode: 'AG-7', name: 'Agent seven', share: 0.1, addedAt: now });
    await store.access.assignClinic({ clinicCode: 'C1', agentCode: 'AG-7', assignedAt: now });
    const ingest = new Ingest({ store, rootPublicKey: Buffer.from(rootHex, 'hex'), clock: systemClock, checkpointSigner: { key: signer.key, certificate: signer.certificate } });

    // T-A: a batch and three uses, all synced
    const a = await provisionTerminal(issuer, { dataDir: join(dir, 'a'), terminalId: 'T-A', clinicCode: 'C1' });
    const batchA = await issuer.makeBatch('C1', 5);
    expect(await a.swipe(batchA.batchCard)).toMatchObject({ ok: true });
    for (const card of batchA.oneTimeCards.slice(0, 3)) expect(await a.swipe(card)).toMatchObject({ ok: true });
    await syncReport(ingest, a.terminal, 1);
    // T-B: a batch, four uses; the report of seq 6 (the second use) never reached the server
    const b = await provisionTerminal(issuer, { dataDir: join(dir, 'b'), terminalId: 'T-B', clinicCode: 'C1' });
    const batchB = await issuer.makeBatch('C1', 5);
    expect(await b.swipe(batchB.batchCard)).toMatchObject({ ok: true });
    for (const card of batchB.oneTimeCards.slice(0, 4)) expect(await b.swipe(card)).toMatchObject({ ok: true });
    const bEntries = b.terminal.ledger.pending(1000);
    expect(bEntries.find((p) => p.seq === 6)).toBeDefined();
    await syncReport(ingest, b.terminal, 1, [6]);
    // T-C, another clinic's: not in C1's export
    const c = await provisionTerminal(issuer, { dataDir: join(dir, 'c'), terminalId: 'T-C', clinicCode: 'C2' });
    await syncReport(ingest, c.terminal, 1);
    for (const rig of [a, b, c]) rig.terminal.close();

    const today = new Date().toISOString().slice(0, 10);
    const out = join(dir, 'C1');
    const exported = await tally('audit', 'export', '--store', storeArg, '--clinic', 'C1', '--from', today, '--to', today, '--signing-key', keyFile, '--root', rootHex, '--out', out);
    expect(exported.code, exported.err).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['T-A.json', 'T-B.json']);
    expect(exported.out.split('\n')).toEqual([
      `server bundle of T-A (${today}..${today}): 11 entries, 3 uses charged, 264.00 (the clinic's share 92.40), the latest checkpoint, the signed statement; written to ${join(out, 'T-A.json')}`,
      `server bundle of T-B (${today}..${today}): 13 entries, 3 uses charged, 264.00 (the clinic's share 92.40), the latest checkpoint, the signed statement; written to ${join(out, 'T-B.json')}`,
    ]);

    // T-A verifies with the fingerprint alone, by both verifiers, and states what the clinic owes and earns
    const va = await tally('audit', 'verify', join(out, 'T-A.json'), '--root-fingerprint', fingerprint);
    expect(va.code, va.out).toBe(0);
    const lines = va.out.split('\n');
    expect(lines[0]).toBe(`VERIFIED: server bundle of T-A (${join(out, 'T-A.json')})`);
    expect(lines[1]).toBe(`  clinic C1, ${today}..${today}: 3 uses charged at 88.00: 264.00 (the clinic's share 92.40, the investor's 145.20, agent AG-7's 26.40)`);
    expect(lines.at(-2)).toBe(`  uses per day: ${today} 3`);
    expect(lines.at(-1)).toMatch(/^ {2}card uses per batch: batch \d+ \([0-9a-f]{16}\) 3$/);
    const json = JSON.parse((await tally('audit', 'verify', join(out, 'T-A.json'), '--root-fingerprint', fingerprint, '--json')).out) as Record<string, unknown>;
    expect(json).toMatchObject({
      ok: true,
      period: { from: today, to: today },
      account: { uses: 3, days: [{ day: today, uses: 3 }] },
      statement: { ok: true, clinicCode: 'C1', pricing: { pricePerUse: 8800, investorShareBp: 6500, agentCode: 'AG-7', agentShareBp: 1000 }, income: { gross: 26400, clinic: 9240, investor: 14520, agentCode: 'AG-7', agent: 2640 } },
    });
    const pa = python('--bundle', join(out, 'T-A.json'), '--root-fingerprint', fingerprint, '--json');
    expect(pa.status, pa.stdout + pa.stderr).toBe(0);
    const pj = JSON.parse(pa.stdout) as Record<string, { income?: unknown }> & { account: unknown };
    expect(pj.account).toEqual(json.account);
    expect(pj.statement!.income).toEqual((json.statement as { income: unknown }).income);

    // a day without uses: the same entries, an account of nothing
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const empty = join(dir, 'T-A-yesterday.json');
    expect((await tally('audit', 'export', '--store', storeArg, '--terminal', 'T-A', '--from', yesterday, '--to', yesterday, '--signing-key', keyFile, '--root', rootHex, '--out', empty)).code).toBe(0);
    expect(JSON.parse((await tally('audit', 'verify', empty, '--root', rootHex, '--json')).out)).toMatchObject({ ok: true, account: { uses: 0, days: [], batches: [] }, statement: { income: { gross: 0 } } });

    // T-B: the server's half has a gap at seq 6; both verifiers say GAP at 6
    const vb = await tally('audit', 'verify', join(out, 'T-B.json'), '--root-fingerprint', fingerprint, '--json');
    expect(vb.code).toBe(4);
    expect(JSON.parse(vb.out)).toMatchObject({ ok: false, ledger: { ok: false, entries: 5, problem: { code: 'GAP', seq: 6 } }, checkpoint: { ok: true, seq: 5 }, statement: { ok: true } });
    const pb = python('--bundle', join(out, 'T-B.json'), '--root-fingerprint', fingerprint, '--json');
    expect(pb.status).toBe(4);
    expect(JSON.parse(pb.stdout)).toMatchObject({ ok: false, ledger: { problem: { code: 'GAP', seq: 6 } } });
    const text = await tally('audit', 'verify', join(out, 'T-B.json'), '--root-fingerprint', fingerprint);
    expect(text.out).toMatch(/ledger: BROKEN at seq 6: GAP: /);

    // the terminal's half beside the server's: seq 6 only on the terminal, a charged use, and what it does to the money
    const tb = join(dir, 'T-B-terminal.json');
    expect((await tally('audit', 'export', '--data', join(dir, 'b'), '--from', today, '--to', today, '--out', tb)).code).toBe(0);
    const compared = await tally('audit', 'compare', tb, join(out, 'T-B.json'), '--root-fingerprint', fingerprint);
    expect(compared.code).toBe(4);
    const cl = compared.out.split('\n');
    expect(cl.slice(0, 5)).toEqual([
      'DIFFER: 1 entries only on the terminal, 0 only on the server, 0 different at the same seq [AUDIT_HALVES_DIFFER 4063]',
      `uses charged (${today}..${today}): terminal 4, server 3 (the server counts 1 fewer)`,
      "money at 88.00 a use, the investor's share 65% (agent AG-7: 10% of the gross, out of it): terminal 352.00 (the clinic's share 123.20, the investor's 193.60, agent AG-7's 35.20), server 264.00 (the clinic's share 92.40, the investor's 145.20, agent AG-7's 26.40)",
      "the server's statement charges 88.00 less than the terminal's ledger: the clinic's share 30.80 less, the investor's 48.40 less, the agent's 8.80 less",
      expect.stringMatching(/^ {2}seq 6: use\.reserved \(card 2 of batch [0-9a-f]{16}\): the server lacks it; a card use charged 88\.00$/),
    ]);
    const tsJson = JSON.parse((await tally('audit', 'compare', tb, join(out, 'T-B.json'), '--root-fingerprint', fingerprint, '--json')).out) as {
      match: boolean;
      terminal: { charged: number; income: unknown };
      server: { charged: number; income: unknown };
      money: unknown;
      differences: { seq: number; kind: string; paidBy?: string; charged?: boolean }[];
    };
    expect(tsJson).toMatchObject({ match: false, money: { uses: -1, gross: -8800, clinic: -3080, investor: -4840, agent: -880 }, differences: [{ seq: 6, kind: 'terminal-only', paidBy: 'card', charged: true }] });
    const pyCompare = python('--compare', tb, '--with', join(out, 'T-B.json'), '--root-fingerprint', fingerprint, '--json');
    expect(pyCompare.status, pyCompare.stderr).toBe(4);
    const pc = JSON.parse(pyCompare.stdout) as Record<string, unknown>;
    expect({ match: pc.match, terminalCharged: pc.terminalCharged, serverCharged: pc.serverCharged, terminalIncome: pc.terminalIncome, serverIncome: pc.serverIncome, money: pc.money, differences: pc.differences }).toEqual({
      match: tsJson.match,
      terminalCharged: tsJson.terminal.charged,
      serverCharged: tsJson.server.charged,
      terminalIncome: tsJson.terminal.income,
      serverIncome: tsJson.server.income,
      money: tsJson.money,
      differences: tsJson.differences.map((d) => ({ seq: d.seq, kind: d.kind, ...(d.paidBy ? { paidBy: d.paidBy } : {}), ...(d.charged ? { charged: true } : {}) })),
    });

    // T-A's halves match, money and all
    const ta = join(dir, 'T-A-terminal.json');
    expect((await tally('audit', 'export', '--data', join(dir, 'a'), '--from', today, '--to', today, '--out', ta)).code).toBe(0);
    const matched = await tally('audit', 'compare', ta, join(out, 'T-A.json'), '--root-fingerprint', fingerprint);
    expect(matched.code, matched.out).toBe(0);
    expect(matched.out.split('\n').slice(0, 2)).toEqual([
      `MATCH: the terminal and the server hold the same 11 entries; 3 uses charged (${today}..${today})`,
      "money at 88.00 a use, the investor's share 65% (agent AG-7: 10% of the gross, out of it): terminal 264.00 (the clinic's share 92.40, the investor's 145.20, agent AG-7's 26.40), server 264.00 (the clinic's share 92.40, the investor's 145.20, agent AG-7's 26.40)",
    ]);
    expect(python('--compare', ta, '--with', join(out, 'T-A.json'), '--root-fingerprint', fingerprint).status).toBe(0);
    // the statement is what the clinic holds the investor to: it is in the file, signed
    expect(JSON.parse(readFileSync(join(out, 'T-A.json'), 'utf8'))).toMatchObject({ format: 'tallystick-audit-bundle/3', side: 'server', period: { from: today, to: today } });
  });
});
