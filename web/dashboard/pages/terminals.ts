/** Terminals: online or offline, stale since, outbox depth, last sequence, alerts */
import { api, el, registerPage, t, table, when, type Row } from '../core.js';

async function terminals(main: HTMLElement): Promise<void> {
  const rows = await api<Row[]>('/api/terminals');
  main.append(
    el('h1', {}, t.terminals),
    table(
      'terminals-table',
      [
        { key: 'terminalId', label: 'terminal' },
        { key: 'clinicCode', label: 'clinic' },
        { key: 'status', label: 'status', show: (r) => el('span', { class: String(r.status) }, String(r.status)) },
        { key: 'reachability', label: 'reachability', show: (r) => (r.reachability === 'sms-only' ? el('span', { class: 'sms-only' }, t.smsOnly) : r.reachability === 'data' ? t.dataLink : '') },
        { key: 'lastHeartbeatAt', label: 'lastHeartbeat', show: (r) => when(r.lastHeartbeatAt) },
        { key: 'staleSince', label: 'staleSince', show: (r) => el('span', { class: 'stale' }, when(r.staleSince)) },
        { key: 'queueDepth', label: 'queueDepth', num: true },
        { key: 'contiguousSeq', label: 'lastSeq', num: true },
        { key: 'alerts', label: 'alertCount', num: true },
      ],
      rows,
    ),
  );
}

registerPage({ key: 'terminals', label: () => t.terminals, render: terminals });
