/** Alerts: list, filter, acknowledge with a note (the server records it in the audit log) */
import { api, el, registerPage, session, showPage, t, table, when, type Row } from '../core.js';

async function alerts(main: HTMLElement): Promise<void> {
  const rows = await api<Row[]>('/api/alerts');
  const filter = el('input', { id: 'alert-filter', placeholder: t.filter });
  const list = el('div', {});
  const canAck = session?.role === 'sysadmin' || session?.role === 'authority';
  const draw = (): void => {
    const shown = rows.filter((r) => !filter.value || `${r.kind} ${r.terminalId} ${r.detail}`.includes(filter.value));
    list.replaceChildren(
      table(
        'alerts-table',
        [
          { key: 'at', label: 'time', show: (r) => when(r.at) },
          { key: 'kind', label: 'kind' },
          { key: 'terminalId', label: 'terminal' },
          { key: 'detail', label: 'detail' },
          {
            key: 'acknowledged',
            label: 'acknowledged',
            show: (r) => {
              const ack = r.acknowledged as { by: string; at: number; note: string } | undefined;
              if (ack) return `${ack.by} ${when(ack.at)}: ${ack.note}`;
              if (!canAck) return '';
              const note = el('input', { class: 'ack-note', placeholder: t.note });
              const button = el('button', { class: 'ack' }, t.acknowledge);
              button.addEventListener('click', () => {
                void api('/api/alerts/ack', { key: r.key, note: note.value }).then(
                  () => showPage('alerts'),
                  (err: Error) => button.replaceWith(el('span', { class: 'error' }, err.message)),
                );
              });
              return el('span', {}, note, button);
            },
          },
        ],
        shown,
      ),
    );
  };
  filter.addEventListener('input', draw);
  main.append(el('h1', {}, t.alerts), el('div', { class: 'controls' }, filter), list);
  draw();
}

registerPage({ key: 'alerts', label: () => t.alerts, render: alerts });
