/** Money: the income split per clinic in integer fen, with the totals */
import { api, el, registerPage, t, table, type Row } from '../core.js';

async function money(main: HTMLElement): Promise<void> {
  const rows = await api<Row[]>('/api/income');
  const sum = (k: string): number => rows.reduce((n, r) => n + (typeof r[k] === 'number' ? (r[k] as number) : 0), 0);
  const totals: Row = { clinicCode: t.total, uses: sum('uses'), gross: sum('gross'), investor: sum('investor'), clinic: sum('clinic'), agent: sum('agent') };
  main.append(
    el('h1', {}, t.money),
    table(
      'money-table',
      [
        { key: 'clinicCode', label: 'clinic' },
        { key: 'uses', label: 'uses', num: true },
        { key: 'gross', label: 'gross', num: true },
        { key: 'investor', label: 'investor', num: true },
        { key: 'clinic', label: 'clinicPart', num: true },
        { key: 'agentCode', label: 'agent' },
        { key: 'agent', label: 'agentPart', num: true },
      ],
      [...rows, totals],
    ),
  );
}

registerPage({ key: 'money', label: () => t.money, render: money });
