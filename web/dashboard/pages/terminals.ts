/** Terminals: online or offline, stale since, outbox depth, last sequence, alerts; from the heartbeat: clock trust, certificate expiry (amber within 30 days), software, deny-list version */
import { api, el, localWords, registerPage, t, table, when, type Row } from '../core.js';

const w = localWords({
  en: { clock: 'Clock', trusted: 'trusted', untrusted: 'untrusted', certExpires: 'Certificate expires', software: 'Software', denylist: 'Deny list' },
  zh: { clock: '时钟', trusted: '可信', untrusted: '不可信', certExpires: '证书到期', software: '软件版本', denylist: '黑名单版本' },
});

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
        { key: 'clockTrusted', label: w().clock, show: (r) => (r.clockTrusted === undefined ? '' : el('span', { class: r.clockTrusted ? 'online' : 'stale' }, r.clockTrusted ? w().trusted : w().untrusted)) },
        { key: 'certExpiresAt', label: w().certExpires, show: (r) => el('span', typeof r.certExpiresAt === 'number' && r.certExpiresAt - Date.now() < 30 * 86_400_000 ? { class: 'stale' } : {}, when(r.certExpiresAt)) },
        { key: 'software', label: w().software },
        { key: 'denylistVersion', label: w().denylist, num: true },
      ],
      rows,
    ),
  );
}

registerPage({ key: 'terminals', label: () => t.terminals, render: terminals });
