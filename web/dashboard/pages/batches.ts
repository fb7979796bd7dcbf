/** Batches: reconciliation per batch (issued, used, released, remaining, not yet reported) */
import { api, el, registerPage, t, table, type Row } from '../core.js';

async function batches(main: HTMLElement): Promise<void> {
  const rows = await api<Row[]>('/api/batches');
  main.append(
    el('h1', {}, t.batches),
    table(
      'batches-table',
      [
        { key: 'batchNo', label: 'batch', num: true },
        { key: 'clinicCode', label: 'clinic' },
        { key: 'terminalId', label: 'terminal' },
        { key: 'count', label: 'count', num: true },
        { key: 'used', label: 'used', num: true },
        { key: 'released', label: 'released', num: true },
        { key: 'remaining', label: 'remaining', num: true },
        { key: 'notYetReported', label: 'notYetReported', num: true },
      ],
      rows,
    ),
  );
}

registerPage({ key: 'batches', label: () => t.batches, render: batches });
