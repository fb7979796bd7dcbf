/**
 * Statement: one clinic's income in integer fen, the row of `tally server report income`, and for each of its
 * terminals the uses counted from the ledger the server holds, with the server's signature of that statement
 * (the audit bundle's). The PDF link asks the server, which prints the same statement with chromium.
 */
import { api, el, localWords, registerPage, table, type Row } from '../core.js';

const w = localWords({
  en: { statement: 'Statement', clinic: 'Clinic', pdf: 'Download PDF', pricePerUse: 'Price per use (fen)', investorShare: "Investor's share", agentShare: "Agent's share", totals: 'Income (as tally server report income)', perTerminal: 'Per terminal, from the ledger entries the server holds', entries: 'Entries', signature: 'Server signature', unsigned: 'unsigned (no server key)', matches: 'The ledgers charge the same uses as the report', differs: 'The ledgers charge another count than the report', noClinic: 'No clinic to show.' },
  zh: { statement: '结算单', clinic: '医疗机构', pdf: '下载 PDF', pricePerUse: '每次使用价格（分）', investorShare: '投资方分成', agentShare: '代理商分成', totals: '收入（与 tally server report income 一致）', perTerminal: '各终端：按服务器所存账本条目统计', entries: '条目', signature: '服务器签名', unsigned: '未签名（无服务器密钥）', matches: '账本计费次数与报表一致', differs: '账本计费次数与报表不一致', noClinic: '无可显示的医疗机构。' },
});

interface Income {
  uses?: number;
  gross: number;
  investor: number;
  clinic: number;
  agentCode?: string;
  agent?: number;
}
interface Statement {
  clinicCode: string;
  name?: string;
  pricing: { pricePerUse: number; investorShareBp: number; agentCode?: string; agentShareBp?: number };
  income: Income & { uses: number };
  terminals: Array<{ terminalId: string; entries: number; uses: number; income: Income; statement?: { signature: string } }>;
  ledgerUses: number;
  matches: boolean;
}

const percent = (bp: number): string => `${bp / 100}%`;

async function statement(main: HTMLElement): Promise<void> {
  const clinics = await api<Array<{ clinicCode: string; name: string }>>('/api/registry/clinics');
  main.append(el('h1', {}, w().statement));
  if (clinics.length === 0) return void main.append(el('p', {}, w().noClinic));
  const choice = el('select', { id: 'statement-clinic' }, ...clinics.map((c) => el('option', { value: c.clinicCode }, `${c.clinicCode} ${c.name}`)));
  const body = el('div', { id: 'statement' });
  const draw = async (): Promise<void> => {
    const s = await api<Statement>(`/api/statement?clinic=${encodeURIComponent(choice.value)}`);
    const hasAgent = s.pricing.agentCode !== undefined;
    const money = [
      { key: 'uses', label: 'uses', num: true },
      { key: 'gross', label: 'gross', num: true },
      { key: 'investor', label: 'investor', num: true },
      { key: 'clinic', label: 'clinicPart', num: true },
      ...(hasAgent ? [{ key: 'agent', label: 'agentPart', num: true }] : []),
    ];
    body.replaceChildren(
      el('p', {}, el('a', { id: 'statement-pdf', href: `/api/statement.pdf?clinic=${encodeURIComponent(s.clinicCode)}`, download: `statement-${s.clinicCode}.pdf` }, w().pdf)),
      el('p', { id: 'statement-pricing' }, `${w().pricePerUse}: ${s.pricing.pricePerUse}; ${w().investorShare}: ${percent(s.pricing.investorShareBp)}${hasAgent ? `; ${w().agentShare}: ${s.pricing.agentCode} ${percent(s.pricing.agentShareBp ?? 0)}` : ''}`),
      el('h2', {}, w().totals),
      table('statement-totals', money, [s.income as unknown as Row]),
      el('h2', {}, w().perTerminal),
      table(
        'statement-terminals',
        [{ key: 'terminalId', label: 'terminal' }, { key: 'entries', label: w().entries, num: true }, ...money, { key: 'signature', label: w().signature }],
        s.terminals.map((t) => ({ terminalId: t.terminalId, entries: t.entries, ...t.income, uses: t.uses, signature: t.statement ? `${t.statement.signature.slice(0, 16)}…` : w().unsigned })),
      ),
      el('p', { id: 'statement-check', class: s.matches ? '' : 'error' }, `${s.matches ? w().matches : w().differs}: ${s.ledgerUses} / ${s.income.uses}`),
    );
  };
  choice.addEventListener('change', () => {
    main.removeAttribute('data-ready');
    void draw().then(() => main.setAttribute('data-ready', 'true'));
  });
  main.append(el('div', { class: 'controls' }, el('label', {}, `${w().clinic} `, choice)), body);
  await draw();
}

registerPage({ key: 'statement', label: () => w().statement, render: statement });
