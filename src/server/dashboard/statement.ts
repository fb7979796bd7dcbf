/**
 * A clinic's statement for the console (GET /api/statement?clinic=, and as a PDF: GET /api/statement.pdf?clinic=).
 * Its totals are the clinic's row of `tally server report income` (the same incomeSplit over the store's card uses and vouchers charged per
 * clinic, at the same pricing), in integer fen. Beside them, for each terminal of the clinic, the statement the
 * audit bundle signs (crypto/auditBundle.ts statementFieldsOf + signStatement, with the server key when the server
 * has one): the uses charged counted from the ledger entries the server holds and their split at the clinic's
 * price and shares. `matches` says whether the ledger's count is the report's: a difference is a finding.
 * The PDF is this statement as HTML (statementHtml, every text escaped), printed by Debian's chromium through
 * playwright-core with the Noto CJK fonts the page names; no script runs in it.
 */
import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { formatMoney, shareBp, type Income, type Pricing } from '../../codecs/auditAccount.js';
import type { Statement } from '../../codecs/auditBundle.js';
import type { SignedJson } from '../../codecs/checkpoint.js';
import { signStatement, statementFieldsOf } from '../../crypto/auditBundle.js';
import { TallyError } from '../../errors.js';
import { currentPricing, incomeSplit, type IncomeRow, type PricingConfig } from '../httpApi.js';
import type { ServerStore } from '../ServerStore.js';

/** The clinic's price and shares as the income report takes them (the registry's clinic and agent over the defaults), in basis points */
export function clinicPricing(pricing: PricingConfig, clinicCode: string): Pricing {
  const share = pricing.perClinic?.[clinicCode] ?? pricing.default;
  return { pricePerUse: share.pricePerUse, investorShareBp: shareBp(share.investorShare), ...(share.agentCode !== undefined ? { agentCode: share.agentCode, agentShareBp: shareBp(share.agentShare ?? 0) } : {}) };
}

export interface StatementSigner {
  readonly key: KeyObject;
  readonly certificate: SignedJson;
}

export interface TerminalStatement {
  readonly terminalId: string;
  /** Ledger entries the server holds for the terminal */
  readonly entries: number;
  /** Uses charged, counted from those entries */
  readonly uses: number;
  readonly income: Income;
  /** The signed statement (audit-bundle.md): absent when the server runs without a signing key */
  readonly statement?: Statement;
}

export interface ClinicStatement {
  readonly clinicCode: string;
  readonly name?: string;
  readonly time: number;
  readonly pricing: Pricing;
  /** The clinic's row of tally server report income (zero uses: all zero) */
  readonly income: IncomeRow;
  readonly terminals: readonly TerminalStatement[];
  /** Uses charged by the terminals' ledgers, summed */
  readonly ledgerUses: number;
  /** ledgerUses is the report's count */
  readonly matches: boolean;
  readonly signed: boolean;
}

async function allEntries(store: ServerStore, terminalId: string): Promise<Uint8Array[]> {
  const raws: Uint8Array[] = [];
  for (let from = 1; ; ) {
    const page = await store.entries(terminalId, from, 1000);
    raws.push(...page.map((e) => e.raw));
    if (page.length < 1000) return raws;
    from = page.at(-1)!.seq + 1;
  }
}

/** The statement of one clinic; STATEMENT_CLINIC_UNKNOWN when neither the registry nor the ingest knows it */
export async function clinicStatement(store: ServerStore, configured: PricingConfig, clinicCode: string, time: number, signer?: StatementSigner): Promise<ClinicStatement> {
  const clinic = (await store.registry.clinics()).find((c) => c.clinicCode === clinicCode);
  const terminals = (await store.terminals()).filter((t) => t.clinicCode === clinicCode).sort((a, b) => a.terminalId.localeCompare(b.terminalId));
  if (!clinic && terminals.length === 0) throw new TallyError('STATEMENT_CLINIC_UNKNOWN', clinicCode);
  const pricingConfig = await currentPricing(store, configured);
  const pricing = clinicPricing(pricingConfig, clinicCode);
  // the income report's row: card uses and the vouchers charged (each once), as the bundle's statement counts them
  const income = incomeSplit(await store.usesPerClinic(), pricingConfig, await store.voucherUsesPerClinic()).find((r) => r.clinicCode === clinicCode) ?? incomeSplit([{ clinicCode, uses: 0 }], pricingConfig)[0]!;
  const rows: TerminalStatement[] = [];
  for (const t of terminals) {
    const raws = await allEntries(store, t.terminalId);
    const fields = statementFieldsOf(raws, { terminalId: t.terminalId, clinicCode, time, period: null, pricing });
    rows.push({ terminalId: t.terminalId, entries: raws.length, uses: fields.account.uses, income: fields.income, ...(signer ? { statement: signStatement(signer.key, signer.certificate, fields) } : {}) });
  }
  const ledgerUses = rows.reduce((n, r) => n + r.uses, 0);
  return { clinicCode, ...(clinic ? { name: clinic.name } : {}), time, pricing, income, terminals: rows, ledgerUses, matches: ledgerUses === income.uses, signed: signer !== undefined };
}

const WORDS = {
  en: {
    title: 'Statement',
    clinic: 'Clinic',
    time: 'Made at (UTC)',
    price: 'Price per use (fen)',
    investorShare: "Investor's share",
    agentShare: "Agent's share",
    totals: 'Income (as tally server report income), in fen',
    uses: 'Uses',
    gross: 'Gross (fen)',
    investor: 'Investor (fen)',
    clinicPart: 'Clinic (fen)',
    agent: 'Agent (fen)',
    perTerminal: "Per terminal, counted from the ledger entries the server holds (the audit bundle's statement)",
    terminal: 'Terminal',
    entries: 'Entries',
    signature: 'Signed by the server',
    unsigned: 'not signed (the server has no signing key)',
    matches: 'The ledgers charge the same uses as the report',
    differs: 'The ledgers charge another count than the report',
    untrusted: 'uses recorded with an untrusted terminal clock',
    yuan: 'yuan',
  },
  zh: {
    title: '结算单',
    clinic: '医疗机构',
    time: '生成时间（UTC）',
    price: '每次使用价格（分）',
    investorShare: '投资方分成',
    agentShare: '代理商分成',
    totals: '收入（与 tally server report income 一致），单位：分',
    uses: '使用次数',
    gross: '总收入（分）',
    investor: '投资方（分）',
    clinicPart: '医疗机构（分）',
    agent: '代理商（分）',
    perTerminal: '各终端：按服务器所存账本条目统计（审计包签名结算）',
    terminal: '终端',
    entries: '条目',
    signature: '服务器签名',
    unsigned: '未签名（服务器无签名密钥）',
    matches: '账本计费次数与报表一致',
    differs: '账本计费次数与报表不一致',
    untrusted: '次使用记录时终端时钟不可信',
    yuan: '元',
  },
} as const;

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const bp = (value: number): string => `${(value / 100).toFixed(2).replace(/\.?0+$/, '')}%`;

/** The statement as a printable page (no script, every text escaped) */
export function statementHtml(s: ClinicStatement, locale: 'en' | 'zh'): string {
  const w = WORDS[locale];
  const cell = (v: string | number, num = false): string => `<td${num ? ' class="num"' : ''}>${escape(String(v))}</td>`;
  const hasAgent = s.pricing.agentCode !== undefined;
  const head = [w.uses, w.gross, w.investor, w.clinicPart, ...(hasAgent ? [w.agent] : [])];
  const parts = (i: { uses?: number; gross: number; investor: number; clinic: number; agent?: number }, uses: number): string =>
    [cell(uses, true), cell(i.gross, true), cell(i.investor, true), cell(i.clinic, true), ...(hasAgent ? [cell(i.agent ?? 0, true)] : [])].join('');
  const terminals = s.terminals
    .map((t) => `<tr>${cell(t.terminalId)}${cell(t.entries, true)}${parts(t.income, t.uses)}${cell(t.statement ? `${t.statement.signature.slice(0, 16)}…` : w.unsigned)}</tr>`)
    .join('');
  return `<!doctype html>
<html lang="${locale === 'zh' ? 'zh-CN' : 'en'}"><head><meta charset="utf-8"><title>${escape(`${w.title} ${s.clinicCode}`)}</title>
<style>
body { font-family: "Noto Sans CJK SC", "Noto Sans", sans-serif; font-size: 11pt; color: #111; margin: 0; }
h1 { font-size: 16pt; margin: 0 0 8pt; } h2 { font-size: 12pt; margin: 14pt 0 4pt; }
table { border-collapse: collapse; margin: 4pt 0; } th, td { border: 0.5pt solid #888; padding: 2pt 6pt; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } dl { display: grid; grid-template-columns: max-content auto; gap: 2pt 12pt; margin: 0; } dt { color: #555; }
</style></head><body>
<h1>${escape(`${w.title} · ${s.clinicCode}${s.name ? ` ${s.name}` : ''}`)}</h1>
<dl>
<dt>${w.clinic}</dt><dd id="clinic">${escape(s.clinicCode)}</dd>
<dt>${w.time}</dt><dd>${escape(new Date(s.time).toISOString().replace('T', ' ').slice(0, 19))}</dd>
<dt>${w.price}</dt><dd>${s.pricing.pricePerUse}</dd>
<dt>${w.investorShare}</dt><dd>${bp(s.pricing.investorShareBp)}</dd>
${hasAgent ? `<dt>${w.agentShare}</dt><dd>${escape(s.pricing.agentCode!)} ${bp(s.pricing.agentShareBp ?? 0)}</dd>` : ''}
</dl>
<h2>${w.totals}</h2>
<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody><tr>${parts(s.income, s.income.uses)}</tr></tbody></table>
<p>${w.gross}: ${s.income.gross} = ${formatMoney(s.income.gross)} ${w.yuan}${s.income.untrustedUses ? `; ${s.income.untrustedUses} ${w.untrusted}` : ''}</p>
<h2>${w.perTerminal}</h2>
<table><thead><tr><th>${w.terminal}</th><th>${w.entries}</th>${head.map((h) => `<th>${h}</th>`).join('')}<th>${w.signature}</th></tr></thead><tbody>${terminals}</tbody></table>
<p>${s.matches ? w.matches : w.differs}: ${s.ledgerUses} / ${s.income.uses}</p>
</body></html>
`;
}

export const CHROMIUM = '/usr/bin/chromium';

/** The statement page printed to PDF by chromium (STATEMENT_PDF_UNAVAILABLE when there is none or it fails) */
export async function printPdf(html: string, executablePath = CHROMIUM): Promise<Buffer> {
  if (!existsSync(executablePath)) throw new TallyError('STATEMENT_PDF_UNAVAILABLE', `no chromium at ${executablePath} (scripts/setup.sh installs it)`);
  const { chromium } = await import('playwright-core');
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    browser = await chromium.launch({ executablePath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'], timeout: 30_000 });
    const context = await browser.newContext({ javaScriptEnabled: false, offline: true });
    const page = await context.newPage();
    await page.setContent(html, { waitUntil: 'load', timeout: 30_000 });
    return await page.pdf({ format: 'A4', printBackground: true, margin: { top: '15mm', bottom: '15mm', left: '12mm', right: '12mm' } });
  } catch (err) {
    throw new TallyError('STATEMENT_PDF_UNAVAILABLE', `chromium did not print the statement: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await browser?.close().catch(() => undefined);
  }
}
