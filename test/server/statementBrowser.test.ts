/**
 * A clinic's statement in a real browser (Debian's chromium through playwright-core): real terminals of clinic C1
 * (two) and C2 (one) swipe real one-time cards and sync with the real ingest; C1 has its own price and share and an
 * agent. The clinic's user logs in, opens the statement page, and the figures on it are the C1 row of
 * `tally server report income --json` (run on the same store), in integer fen, and each terminal's uses counted
 * from its ledger; the server's signature of each terminal statement verifies with the investor root. The PDF
 * downloads from the page, and pdftotext (poppler-utils) finds the same figures in it; in Chinese the PDF says
 * 结算单 (the page asks for Noto Sans CJK SC, which fontconfig has from fonts-noto-cjk). A clinic asking for another clinic's statement is refused
 * 6502, an unknown clinic is 6515, a sysadmin's page says it may not, and a server without chromium answers the
 * PDF 6516. Screenshots and the PDFs go to test-output/statement/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, utf8 } from '../../src/codecs/bytes.js';
import { parseStatementBody, type Statement } from '../../src/codecs/auditBundle.js';
import { verifyServerKeyCertificate } from '../../src/crypto/checkpoint.js';
import { verifyMessage } from '../../src/crypto/ed25519.js';
import { provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi, DEFAULT_PRICING, startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { systemClock } from '../../src/util/clock.js';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { auditIssuer, syncReport, type AuditIssuer } from '../support/auditRig.js';
import { tally } from '../support/cliLedger.js';
import { apiAs, cells, launchChromium, logIn, openPage } from '../support/consoleBrowser.js';

const OUT = fileURLToPath(new URL('../../test-output/statement/', import.meta.url));
const PASSWORD = 'correct horse battery staple';
const dir = tempDir('tally-statement-');
const dbPath = join(dir, 'server.db');
let audit: AuditIssuer;
let store: ServerStore;
let api: HttpApi;
let browser: Browser;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  audit = await auditIssuer(dir);
  store = await createServerStore({ kind: 'sqlite', path: dbPath });
  const now = Date.now();
  await store.registry.putClinic({ clinicCode: 'C1', name: 'Clinic one', pricePerUse: 8800, investorShare: 0.65, addedAt: now });
  await store.registry.putClinic({ clinicCode: 'C2', name: 'Clinic two', addedAt: now });
  await store.access.putAgent({ agentCode: 'AG-7', name: 'Agent seven', share: 0.1, addedAt: now });
  await store.access.assignClinic({ clinicCode: 'C1', agentCode: 'AG-7', assignedAt: now });
  const ingest = new Ingest({ store, rootPublicKey: fromHex(audit.rootHex), clock: systemClock, checkpointSigner: { key: audit.signer.key, certificate: audit.signer.certificate } });
  for (const [terminalId, clinicCode, uses] of [['T-A', 'C1', 3], ['T-B', 'C1', 2], ['T-C', 'C2', 1]] as const) {
    const rig = await provisionTerminal(audit.issuer, { dataDir: join(dir, terminalId), terminalId, clinicCode });
    const batch = await audit.issuer.makeBatch(clinicCode, 5);
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
    for (const card of batch.oneTimeCards.slice(0, uses)) expect(await rig.swipe(card)).toMatchObject({ ok: true });
    await syncReport(ingest, rig.terminal, 1);
    rig.terminal.close();
  }
  await addUser(store, { username: 'clinic-1', role: 'clinic', clinic: 'C1', password: PASSWORD }, now);
  await addUser(store, { username: 'boss', role: 'authority', password: PASSWORD }, now);
  await addUser(store, { username: 'admin', role: 'sysadmin', password: PASSWORD }, now);
  api = await startHttpApi({ store, pricing: DEFAULT_PRICING, dashboardDir, signer: { key: audit.signer.key, certificate: audit.signer.certificate } });
  browser = await launchChromium();
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await api?.close();
  await store?.close();
  await audit?.issuer.close();
  rmSync(dir, { recursive: true, force: true });
});

/** C1's row of the CLI's income report on the same store */
async function reportRow(clinicCode: string): Promise<Record<string, number | string>> {
  const report = await tally('server', 'report', 'income', '--store', dbPath, '--json');
  expect(report.code, report.err).toBe(0);
  return (JSON.parse(report.out) as Array<Record<string, number | string>>).find((r) => r.clinicCode === clinicCode)!;
}

const pdfText = (file: string): string => execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });

describe('the statement page and PDF in chromium', () => {
  it("a clinic's user: the report's figures in fen, each terminal's signed ledger statement, the PDF with the same figures", async () => {
    const row = await reportRow('C1');
    // 5 uses at 88.00: 44000 fen; the investor's 65% is 28600 of which the agent's 10% of the gross, 4400
    expect(row).toMatchObject({ uses: 5, gross: 44_000, investor: 24_200, clinic: 15_400, agentCode: 'AG-7', agent: 4_400 });
    const page = await logIn(browser, api.url, 'clinic-1', PASSWORD);
    await openPage(page, 'statement');
    expect(await page.$$eval('#statement-clinic option', (os) => os.map((o) => (o as unknown as { value: string }).value))).toEqual(['C1']);
    for (const col of ['uses', 'gross', 'investor', 'clinic', 'agent']) expect(await cells(page, 'statement-totals', col), col).toEqual([String(row[col])]);
    expect(await cells(page, 'statement-terminals', 'terminalId')).toEqual(['T-A', 'T-B']);
    expect(await cells(page, 'statement-terminals', 'uses')).toEqual(['3', '2']);
    expect(await cells(page, 'statement-terminals', 'gross')).toEqual(['26400', '17600']);
    expect(await page.textContent('#statement-check')).toContain('5 / 5');
    await page.screenshot({ path: `${OUT}clinic-statement.png`, fullPage: true });

    // the signatures on the page are the server key's, certified by the investor root, over what the page shows
    const answer = await apiAs(page, '/api/statement?clinic=C1');
    const terminals = (answer.body.data as { terminals: Array<{ terminalId: string; uses: number; statement: Statement }> }).terminals;
    for (const t of terminals) {
      const server = verifyServerKeyCertificate(t.statement.serverCertificate, fromHex(audit.rootHex));
      expect(verifyMessage(fromHex(server.publicKey), utf8(t.statement.body), fromHex(t.statement.signature)), t.terminalId).toBe(true);
      const fields = parseStatementBody(t.statement.body);
      expect(fields).toMatchObject({ terminalId: t.terminalId, clinicCode: 'C1', account: { uses: t.uses }, pricing: { pricePerUse: 8800, investorShareBp: 6500, agentCode: 'AG-7', agentShareBp: 1000 } });
    }
    // each statement is signed when asked for (its time is in the body): the page shows a signature for each
    expect(await cells(page, 'statement-terminals', 'signature')).toEqual([expect.stringMatching(/^[0-9a-f]{16}…$/), expect.stringMatching(/^[0-9a-f]{16}…$/)]);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#statement-pdf')]);
    const file = `${OUT}clinic-statement-en.pdf`;
    await download.saveAs(file);
    expect(readFileSync(file).subarray(0, 5).toString()).toBe('%PDF-');
    const text = pdfText(file);
    expect(text).toContain('Statement');
    for (const figure of [row.uses, row.gross, row.investor, row.clinic, row.agent, 26_400, 17_600, '440.00']) expect(text, String(figure)).toContain(String(figure));
    expect(text).toMatch(/T-A\s+\d+\s+3\s+26400/);

    // another clinic's statement is not for this user; neither as a page nor as a PDF
    expect(await apiAs(page, '/api/statement?clinic=C2')).toMatchObject({ status: 403, body: { error: { number: 6502 } } });
    expect((await apiAs(page, '/api/statement.pdf?clinic=C2')).status).toBe(403);
    await page.context().close();
  });

  it('in Chinese: the PDF says 结算单, drawn with the Noto CJK font installed; an unknown clinic is 6515', async () => {
    const page = await logIn(browser, api.url, 'boss', PASSWORD);
    await page.click('#language');
    await page.waitForSelector('#nav-statement:has-text("结算单")');
    await openPage(page, 'statement');
    await page.selectOption('#statement-clinic', 'C2');
    await page.waitForSelector('#page-statement[data-ready="true"]');
    const row = await reportRow('C2');
    expect(await cells(page, 'statement-totals', 'gross')).toEqual([String(row.gross)]);
    expect(await page.$('#statement-totals td[data-col="agent"]'), 'C2 has no agent').toBeNull();
    await page.screenshot({ path: `${OUT}authority-statement-zh.png`, fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#statement-pdf')]);
    const file = `${OUT}authority-statement-zh.pdf`;
    await download.saveAs(file);
    const text = pdfText(file);
    expect(text).toContain('结算单');
    expect(text).toContain('医疗机构');
    expect(text).toContain(String(row.gross));
    // chromium embeds its glyphs as Type 3 fonts without names: the font the page asks for is the one installed
    expect(execFileSync('fc-match', ['-f', '%{family}', 'Noto Sans CJK SC:lang=zh-cn'], { encoding: 'utf8' })).toContain('Noto Sans CJK SC');
    expect(execFileSync('pdffonts', [file], { encoding: 'utf8' })).toMatch(/Type 3/);
    expect(await apiAs(page, '/api/statement?clinic=NOPE')).toMatchObject({ status: 404, body: { error: { code: 'statement-clinic-unknown', number: 6515 } } });
    await page.context().close();
  });

  it("a system administrator's statement page says the role may not see it", async () => {
    const page = await logIn(browser, api.url, 'admin', PASSWORD);
    await openPage(page, 'statement');
    expect(await page.textContent('#refused')).toContain('may not');
    await page.context().close();
  });

  it('a server without chromium answers the PDF 503 with 6516, the statement itself still 200', async () => {
    const app = await buildHttpApi({ store, pricing: DEFAULT_PRICING, chromiumPath: join(dir, 'no-chromium') });
    try {
      const login = await app.inject({ method: 'POST', url: '/api/session', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ username: 'boss', password: PASSWORD }) });
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const pdf = await app.inject({ method: 'GET', url: '/api/statement.pdf?clinic=C1', headers: { cookie } });
      expect(pdf.statusCode).toBe(503);
      expect(pdf.json()).toMatchObject({ error: { code: 'statement-pdf-unavailable', number: 6516 } });
      const json = await app.inject({ method: 'GET', url: '/api/statement?clinic=C1', headers: { cookie } });
      expect(json.json()).toMatchObject({ data: { signed: false, income: { uses: 5, gross: 44_000 }, matches: true } });
    } finally {
      await app.close();
    }
  });
});
