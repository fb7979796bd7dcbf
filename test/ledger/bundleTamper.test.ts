/**
 * The counted bundle tamper test: the golden server's and terminal's bundles
 * (firmware-protocol/vectors/audit-bundle.json) edited the ways either party
 * could: every entry dropped, a byte of every entry flipped, adjacent entries
 * swapped, the statement's figures (uses, each day, each batch, the income
 * parts, the price, the share, the clinic, the period, the entry list; on the
 * whole ledger, what paid for each use: voucher counts up and down, a voucher
 * said to be a card and back, a day's vouchers, the insurance uses and their
 * amounts, each with the income kept to its uses) changed
 * and signed again with the real server key, characters of the signed body
 * changed without signing, the signature, and the bundle's own fields. Both
 * verifiers (tally's and scripts/verify_ledger.py --many-bundles) must give
 * every case the same verdict, and none may verify.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bundleVerdictSummary } from '../../scripts/auditBundleVectors.js';
import { parseAuditBundle, parseStatementBody, type AuditBundle, type StatementFields } from '../../src/codecs/auditBundle.js';
import { fromHex, toHex, utf8 } from '../../src/codecs/bytes.js';
import { signStatement, verifyAuditBundle } from '../../src/crypto/auditBundle.js';
import { splitIncome } from '../../src/codecs/auditAccount.js';
import { privateKeyFromSeed, sha256 } from '../../src/crypto/ed25519.js';
import { isTallyError } from '../../src/errors.js';
import { python } from '../support/pythonVerifier.js';
import { mulberry32 } from '../support/random.js';
import { useScratch } from '../support/scratch.js';
import { writeFileSync } from 'node:fs';

const { scratch } = useScratch();
const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/audit-bundle.json', import.meta.url));

interface Vectors {
  rootPublicKey: string;
  bundles: { name: string; bundle: AuditBundle }[];
}


describe('the counted bundle tamper test', () => {
  it('both verifiers refuse every edited bundle alike', { timeout: 300_000 }, () => {
    const v = JSON.parse(readFileSync(FILE, 'utf8')) as Vectors;
    const root = fromHex(v.rootPublicKey);
    const server = v.bundles.find((b) => b.name === 'server-march')!.bundle;
    const terminal = v.bundles.find((b) => b.name === 'terminal')!.bundle;
    // the fixed server key of the vectors (scripts/auditBundleVectors.ts): a dishonest investor holds it
    const serverKey = privateKeyFromSeed(sha256(utf8('tallystick checkpoint vectors: server key')));
    const honest = parseStatementBody(server.statement!.body);
    const resign = (fields: StatementFields): AuditBundle => ({ ...server, statement: signStatement(serverKey, server.statement!.serverCertificate, fields) });
    const random = mulberry32(2026);
    const cases: { kind: string; bundle: unknown }[] = [];
    const add = (kind: string, bundle: unknown) => cases.push({ kind, bundle: JSON.parse(JSON.stringify(bundle)) as unknown });

    for (const [side, base] of [['server', server], ['terminal', terminal]] as const) {
      const n = base.entries.length;
      for (let i = 0; i < n; i++) {
        if (i < n - 1 || side === 'server') add(`${side}: entry dropped`, { ...base, entries: base.entries.filter((_, j) => j !== i) }); // the terminal's last: its checkpoint names it TRUNCATED
        const bytes = fromHex(base.entries[i]!);
        const at = Math.floor(random() * bytes.length);
        bytes[at] = bytes[at]! ^ (1 + Math.floor(random() * 255));
        add(`${side}: entry byte flipped`, { ...base, entries: base.entries.map((e, j) => (j === i ? toHex(bytes) : e)) });
        if (i < n - 1) add(`${side}: adjacent entries swapped`, { ...base, entries: base.entries.map((e, j) => (j === i ? base.entries[i + 1]! : j === i + 1 ? base.entries[i]! : e)) });
      }
      add(`${side}: another terminal id`, { ...base, terminalId: 'T-OTHER' });
    }
    // the statement's figures changed and signed again with the real server key
    const a = honest.account;
    add('re-signed: uses', resign({ ...honest, account: { ...a, uses: a.uses + 1 } }));
    a.days.forEach((_, i) => add('re-signed: a day', resign({ ...honest, account: { ...a, days: a.days.map((d, j) => (j === i ? { ...d, uses: d.uses + 1 } : d)) } })));
    a.days.forEach((_, i) => add('re-signed: a day dropped', resign({ ...honest, account: { ...a, days: a.days.filter((__, j) => j !== i) } })));
    a.batches.forEach((_, i) => add('re-signed: a batch', resign({ ...honest, account: { ...a, batches: a.batches.map((b, j) => (j === i ? { ...b, uses: b.uses - 1 } : b)) } })));
    a.batches.forEach((_, i) => add('re-signed: a batch number', resign({ ...honest, account: { ...a, batches: a.batches.map((b, j) => (j === i ? { ...b, batchNo: b.batchNo + 1 } : b)) } })));
    for (const part of ['gross', 'clinic', 'investor', 'agent'] as const) add(`re-signed: income ${part}`, resign({ ...honest, income: { ...honest.income, [part]: (honest.income[part] ?? 0) + 1 } }));
    add('re-signed: price', resign({ ...honest, pricing: { ...honest.pricing, pricePerUse: honest.pricing.pricePerUse + 1 } }));
    add('re-signed: share', resign({ ...honest, pricing: { ...honest.pricing, investorShareBp: honest.pricing.investorShareBp - 1 } }));
    add('re-signed: agent share', resign({ ...honest, pricing: { ...honest.pricing, agentShareBp: 0 } }));
    add('re-signed: clinic', resign({ ...honest, clinicCode: 'C-OTHER' }));
    add('re-signed: terminal', resign({ ...honest, terminalId: 'T-OTHER' }));
    add('re-signed: period', resign({ ...honest, period: { from: '2026-03-02', to: '2026-03-31' } }));
    add('re-signed: no period', resign({ ...honest, period: null }));
    add('re-signed: an entry unlisted', resign({ ...honest, entries: honest.entries.slice(0, -1) }));
    add('re-signed: an entry hash', resign({ ...honest, entries: honest.entries.map(([s, h], i) => (i === 5 ? [s, h.replace(/^./, (c) => (c === '0' ? '1' : '0'))] : [s, h])) }));
    // the same on the whole ledger, which holds a voucher use and an insurance use: what paid for each is signed too
    const whole = v.bundles.find((b) => b.name === 'server')!.bundle;
    const all = parseStatementBody(whole.statement!.body);
    const w = all.account;
    const resignWhole = (fields: StatementFields): AuditBundle => ({ ...whole, statement: signStatement(serverKey, whole.statement!.serverCertificate, fields) });
    // keeps the statement's arithmetic (income = uses at the price), so only a recount of the entries refuses it
    const lie = (account: StatementFields['account']) => resignWhole({ ...all, account, income: splitIncome(account.uses, all.pricing) });
    const voucherDay = w.days.findIndex((d) => d.voucher > 0);
    const dayWith = (i: number, change: Partial<StatementFields['account']['days'][number]>) => w.days.map((d, j) => (j === i ? { ...d, ...change } : d));
    expect(w.voucher).toBeGreaterThan(0);
    expect(w.settlement).toBeGreaterThan(0);
    add('re-signed: one voucher more', lie({ ...w, uses: w.uses + 1, voucher: w.voucher + 1, days: dayWith(voucherDay, { uses: w.days[voucherDay]!.uses + 1, voucher: w.days[voucherDay]!.voucher + 1 }) }));
    add('re-signed: one voucher fewer', lie({ ...w, uses: w.uses - 1, voucher: w.voucher - 1, days: dayWith(voucherDay, { uses: w.days[voucherDay]!.uses - 1, voucher: w.days[voucherDay]!.voucher - 1 }) }));
    add('re-signed: a voucher said to be a card', lie({ ...w, card: w.card + 1, voucher: w.voucher - 1, days: dayWith(voucherDay, { card: w.days[voucherDay]!.card + 1, voucher: w.days[voucherDay]!.voucher - 1 }) }));
    add('re-signed: a card said to be a voucher', lie({ ...w, card: w.card - 1, voucher: w.voucher + 1, days: dayWith(voucherDay, { card: w.days[voucherDay]!.card - 1, voucher: w.days[voucherDay]!.voucher + 1 }) }));
    add('re-signed: the voucher count alone', lie({ ...w, voucher: w.voucher + 1 }));
    w.days.forEach((d, i) => add("re-signed: a day's vouchers", lie({ ...w, days: dayWith(i, { voucher: d.voucher + 1, uses: d.uses + 1 }) })));
    add('re-signed: the voucher use on another day', lie({ ...w, days: w.days.map((d, j) => (j === voucherDay ? { ...d, uses: d.uses - 1, voucher: d.voucher - 1 } : j === 0 ? { ...d, uses: d.uses + 1, voucher: d.voucher + 1 } : d)) }));
    add('re-signed: no insurance use', lie({ ...w, settlement: 0, settled: { amountFen: 0, insurerFen: 0, patientFen: 0 } }));
    add('re-signed: an insurance use counted as a voucher', lie({ ...w, uses: w.uses + 1, voucher: w.voucher + 1, settlement: w.settlement - 1 }));
    for (const k of ['amountFen', 'insurerFen', 'patientFen'] as const) add(`re-signed: settled ${k}`, lie({ ...w, settled: { ...w.settled, [k]: w.settled[k] + 1 } }));
    add('re-signed: the whole ledger, income without the voucher', resignWhole({ ...all, income: splitIncome(w.card, all.pricing) }));
    add('bundle: another period', { ...server, period: { from: '2026-03-01', to: '2026-03-30' } });
    add('bundle: no period', { ...server, period: null });
    add('bundle: no statement', { ...server, statement: null });
    // the signed body changed without a signature: a sample of its characters, and the signature's
    const body = server.statement!.body;
    for (let k = 0; k < 150; k++) {
      const at = Math.floor(random() * body.length);
      const ch = body[at] === '1' ? '2' : /[0-9]/.test(body[at]!) ? '1' : body[at] === 'a' ? 'b' : 'a';
      add('unsigned: a character of the statement body', { ...server, statement: { ...server.statement!, body: body.slice(0, at) + ch + body.slice(at + 1) } });
    }
    for (let k = 0; k < 16; k++) {
      const sig = fromHex(server.statement!.signature);
      sig[k * 4] = sig[k * 4]! ^ 0x01;
      add('unsigned: the statement signature', { ...server, statement: { ...server.statement!, signature: toHex(sig) } });
    }

    const tsOf = (bundle: unknown) => {
      try {
        return bundleVerdictSummary(verifyAuditBundle(parseAuditBundle(JSON.stringify(bundle)), root));
      } catch (err) {
        if (!isTallyError(err) || err.code !== 'BAD_AUDIT_BUNDLE') throw err;
        return { ok: false, problem: { code: 'BAD_AUDIT_BUNDLE' } };
      }
    };
    const ts = cases.map((c) => tsOf(c.bundle));
    const job = join(scratch(), 'bundles.json');
    writeFileSync(job, JSON.stringify({ root: v.rootPublicKey, bundles: cases.map((c) => c.bundle) }));
    const run = python('--many-bundles', job);
    expect(run.stderr).toBe('');
    const py = JSON.parse(run.stdout) as Record<string, unknown>[];
    const counts = new Map<string, { tried: number; refused: number }>();
    cases.forEach((c, i) => {
      expect({ kind: c.kind, i, verdict: py[i] }).toEqual({ kind: c.kind, i, verdict: ts[i] });
      const row = counts.get(c.kind) ?? { tried: 0, refused: 0 };
      row.tried++;
      if (!ts[i]!.ok && !py[i]!.ok) row.refused++;
      counts.set(c.kind, row);
    });
    const lines = [...counts.entries()].map(([kind, r]) => `${kind.padEnd(48)} ${String(r.tried).padStart(4)} tried ${String(r.refused).padStart(4)} refused by both`);
    const refused = [...counts.values()].reduce((s, r) => s + r.refused, 0);
    console.log(`bundle tamper cases (golden server bundle of March 2026 and terminal bundle, ${server.entries.length} entries):\n${lines.join('\n')}\ntotal ${cases.length} tried, ${refused} refused by both, ${cases.length - refused} verified`);
    expect(refused).toBe(cases.length);
    // the honest bundles verify in both, so the refusals are the edits'
    expect(tsOf(server).ok && tsOf(terminal).ok && tsOf(whole).ok).toBe(true);
  });
});
