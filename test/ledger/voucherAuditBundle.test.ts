/**
 * A clinic whose patients pay with one-time cards and with service vouchers
 * (issue 16): two real terminals of clinic C1 write off vouchers beside card
 * uses and sync with the real ingest; the server's bundles (tally audit export
 * --clinic C1, format 3) count the uses by what paid for them, and their
 * statements' uses and income, added up over the clinic's terminals, are the
 * clinic's row of tally server report income (storeIncome) and of the console's
 * statement, which charge each voucher written off once. Both verifiers give
 * each bundle the same account. Format 2 counted the card uses only and charged
 * this clinic 3 uses fewer than the income report.
 * The price (88.00, the investor 65%) splits each use into whole fen, so the
 * per-terminal splits add up to the clinic's split exactly.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseStatementBody } from '../../src/codecs/auditBundle.js';
import { provisionTerminal } from '../../src/scenario/CardWorld.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { clinicStatement, clinicPricing } from '../../src/server/dashboard/statement.js';
import { currentPricing, DEFAULT_PRICING, storeIncome } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { systemClock } from '../../src/util/clock.js';
import { auditIssuer, syncReport } from '../support/auditRig.js';
import { tally } from '../support/cliLedger.js';
import { python } from '../support/pythonVerifier.js';
import { useScratch } from '../support/scratch.js';
import { storeBackends } from '../support/storeBackends.js';

const { scratch, cleanups } = useScratch();
const backends = storeBackends('voucher-audit');

describe.each(backends)("a clinic's bundles count its vouchers as the income report does ($name)", (backend) => {
  it('card and voucher uses: the bundles add up to the income report and the console statement', { timeout: 180_000 }, async () => {
    const dir = scratch();
    const { issuer, keyFile, rootHex, fingerprint } = await auditIssuer(dir);
    cleanups.push(() => issuer.close());
    const options = await backend.place('vouchers');
    const storeArg = options.kind === 'sqlite' ? options.path : options.connectionString;
    const store = await createServerStore(options);
    onTestFinished(() => store.close());
    await store.registry.putClinic({ clinicCode: 'C1', name: 'Clinic one', pricePerUse: 8800, investorShare: 0.65, addedAt: Date.now() });
    const ingest = new Ingest({ store, rootPublicKey: Buffer.from(rootHex, 'hex'), clock: systemClock });
    const authority = await VoucherAuthority.create(issuer);

    // T-A: 3 card uses and 2 vouchers; T-B: 1 card use and 1 voucher
    const uses = { 'T-A': { cards: 3, vouchers: 2 }, 'T-B': { cards: 1, vouchers: 1 } } as const;
    for (const [terminalId, n] of Object.entries(uses)) {
      const rig = await provisionTerminal(issuer, { dataDir: join(dir, terminalId), terminalId, clinicCode: 'C1' });
      const batch = await issuer.makeBatch('C1', 5);
      expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
      for (const card of batch.oneTimeCards.slice(0, n.cards)) expect(await rig.swipe(card)).toMatchObject({ ok: true });
      rig.terminal.adoptTrustList(authority.trustList());
      for (let i = 0; i < n.vouchers; i++) expect(await rig.terminal.handleVoucher(authority.voucher({ scope: 'C1' }).qr)).toMatchObject({ ok: true, action: 'voucher' });
      await syncReport(ingest, rig.terminal, 1);
      rig.terminal.close();
    }

    const income = (await storeIncome(store, DEFAULT_PRICING)).find((r) => r.clinicCode === 'C1')!;
    expect(income).toMatchObject({ uses: 7, voucherUses: 3, gross: 7 * 8800 });

    const out = join(dir, 'C1');
    const exported = await tally('audit', 'export', '--store', storeArg, '--clinic', 'C1', '--signing-key', keyFile, '--root', rootHex, '--out', out);
    expect(exported.code, exported.err).toBe(0);
    expect(exported.out.split('\n')[0]).toMatch(/^server bundle of T-A \(every entry\): \d+ entries, 5 uses charged \(3 card, 2 voucher\), 440\.00 \(the clinic's share 154\.00\)/);
    const totals = { uses: 0, card: 0, voucher: 0, gross: 0, clinic: 0, investor: 0 };
    for (const [terminalId, n] of Object.entries(uses)) {
      const file = join(out, `${terminalId}.json`);
      const ts = await tally('audit', 'verify', file, '--root-fingerprint', fingerprint, '--json');
      expect(ts.code, ts.out).toBe(0);
      const verdict = JSON.parse(ts.out) as { format: number; account: { uses: number; card: number; voucher: number; settlement: number; days: unknown[] }; statement: { ok: boolean; income: unknown } };
      expect(verdict).toMatchObject({ format: 3, account: { uses: n.cards + n.vouchers, card: n.cards, voucher: n.vouchers, settlement: 0 }, statement: { ok: true } });
      const py = python('--bundle', file, '--root-fingerprint', fingerprint, '--json');
      expect(py.status, py.stdout + py.stderr).toBe(0);
      const pj = JSON.parse(py.stdout) as typeof verdict;
      expect(pj.account).toEqual(verdict.account);
      expect(pj.statement.income).toEqual(verdict.statement.income);
      const text = await tally('audit', 'verify', file, '--root-fingerprint', fingerprint);
      expect(text.out.split('\n')[1]).toBe(`  clinic C1, every entry: ${n.cards + n.vouchers} uses charged (${n.cards} card, ${n.vouchers} voucher) at 88.00: ${((n.cards + n.vouchers) * 88).toFixed(2)} (the clinic's share ${((n.cards + n.vouchers) * 30.8).toFixed(2)}, the investor's ${((n.cards + n.vouchers) * 57.2).toFixed(2)})`);
      const body = parseStatementBody((JSON.parse(readFileSync(file, 'utf8')) as { statement: { body: string } }).statement.body);
      totals.uses += body.account.uses;
      totals.card += body.account.card;
      totals.voucher += body.account.voucher;
      totals.gross += body.income.gross;
      totals.clinic += body.income.clinic;
      totals.investor += body.income.investor;
    }
    // the bundles' signed totals are the income report's
    expect(totals).toEqual({ uses: income.uses, card: income.uses - income.voucherUses!, voucher: income.voucherUses, gross: income.gross, clinic: income.clinic, investor: income.investor });

    // and the console's statement agrees with its own per-terminal ledger counts
    const statement = await clinicStatement(store, DEFAULT_PRICING, 'C1', Date.now());
    expect(statement).toMatchObject({ matches: true, ledgerUses: 7, income: { uses: 7, voucherUses: 3, gross: income.gross } });
    expect(clinicPricing(await currentPricing(store, DEFAULT_PRICING), 'C1')).toEqual({ pricePerUse: 8800, investorShareBp: 6500 });
  });
});
