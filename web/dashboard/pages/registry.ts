/**
 * Registry: clinics, agents, terminals, issuing stations, cards and the card deny list, each section as the role
 * may see it (a section the server refuses says so), with the writes the role may make: clinics and terminals
 * (system administrator, top authority), revoking a card (top authority, card issuer). A revoked card goes on the
 * deny list at a new version, which the server sends to every terminal; the deny-list section shows which
 * terminals' heartbeats name that version. The server checks every role; the buttons only follow it.
 */
import { api, el, localWords, Refused, registerPage, session, showPage, submitWrite, t, table, when, type Column, type Row } from '../core.js';

const w = localWords({
  en: { registry: 'Registry', clinics: 'Clinics', agents: 'Agents', terminals: 'Terminals', stations: 'Issuing stations', cards: 'Cards', denylist: 'Deny list', name: 'Name', price: 'Price per use (fen)', share: "Investor's share", state: 'State', station: 'Station', cardId: 'Card id', kind: 'Kind', reason: 'Reason', revoke: 'Revoke', revokedAt: 'Revoked at', revokedBy: 'By', version: 'Version', holds: 'Holds version', received: 'Received', yes: 'yes', no: 'not yet', save: 'Save clinic', retire: 'Retire', clinicsOf: 'Clinics', agentShare: 'Share', listVersion: 'Deny-list version', refresh: 'Refresh' },
  zh: { registry: '登记', clinics: '医疗机构', agents: '代理商', terminals: '终端', stations: '发卡站', cards: '卡片', denylist: '黑名单', name: '名称', price: '每次使用价格（分）', share: '投资方分成', state: '状态', station: '发卡站', cardId: '卡号', kind: '类型', reason: '原因', revoke: '注销', revokedAt: '注销时间', revokedBy: '操作人', version: '版本', holds: '持有版本', received: '已接收', yes: '是', no: '尚未', save: '保存医疗机构', retire: '停用', clinicsOf: '医疗机构', agentShare: '分成', listVersion: '黑名单版本', refresh: '刷新' },
});

const role = (): string => session?.role ?? '';
const writesRegistry = (): boolean => role() === 'sysadmin' || role() === 'authority';
const revokesCards = (): boolean => role() === 'authority' || role() === 'issuer';

/** One section: its rows from the server, or "not allowed" when the role may not see them */
async function section(id: string, title: string, path: string, draw: (rows: Row[] | Row) => Node[]): Promise<HTMLElement> {
  const box = el('section', { id: `registry-${id}` }, el('h2', {}, title));
  try {
    box.append(...draw(await api<Row[] | Row>(path)));
  } catch (err) {
    if (!(err instanceof Refused) || err.status !== 403) throw err;
    box.append(el('p', { class: 'refused' }, t.notAllowed));
  }
  return box;
}

async function registry(main: HTMLElement): Promise<void> {
  const error = el('p', { class: 'error', id: 'registry-error' });
  const run = (button: HTMLButtonElement, path: string, body: unknown): void => submitWrite(button, path, body, error, 'registry');
  const revokeButton = (cardId: string, reason: () => string): HTMLButtonElement => {
    const button = el('button', { class: 'revoke', 'data-card': cardId }, w().revoke);
    button.addEventListener('click', () => run(button, '/api/registry/cards/revoke', { cardId, reason: reason() || 'revoked in the console' }));
    return button;
  };

  const clinics = await section('clinics', w().clinics, '/api/registry/clinics', (rows) => {
    const out: Node[] = [table('clinics-table', [{ key: 'clinicCode', label: 'clinic' }, { key: 'name', label: w().name }, { key: 'pricePerUse', label: w().price, num: true }, { key: 'investorShare', label: w().share, num: true }], rows as Row[])];
    if (writesRegistry()) {
      const code = el('input', { id: 'clinic-code', placeholder: 'CL-…', size: '8' });
      const name = el('input', { id: 'clinic-name', placeholder: w().name });
      const save = el('button', { id: 'clinic-save', type: 'submit' }, w().save);
      const form = el('form', { class: 'controls' }, code, name, save);
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        run(save, '/api/registry/clinics', { clinicCode: code.value, name: name.value });
      });
      out.push(form);
    }
    return out;
  });
  const agents = await section('agents', w().agents, '/api/registry/agents', (rows) => [
    table('agents-table', [{ key: 'agentCode', label: 'agent' }, { key: 'name', label: w().name }, { key: 'share', label: w().agentShare, num: true }, { key: 'clinics', label: w().clinicsOf, show: (r) => (r.clinics as string[]).join(', ') }], rows as Row[]),
  ]);
  const terminals = await section('terminals', w().terminals, '/api/registry/terminals', (rows) => {
    const columns: Column[] = [{ key: 'terminalId', label: 'terminal' }, { key: 'clinicCode', label: 'clinic', show: (r) => String(r.clinicCode ?? r.reportedClinicCode ?? '') }, { key: 'state', label: w().state }];
    if (writesRegistry())
      columns.push({
        key: 'actions',
        label: '',
        show: (r) => {
          if (r.state === 'retired' || r.state === 'unexpected') return '';
          const button = el('button', { class: 'retire', 'data-terminal': String(r.terminalId) }, w().retire);
          button.addEventListener('click', () => run(button, '/api/registry/terminals/retire', { terminalId: r.terminalId }));
          return button;
        },
      });
    return [table('registry-terminals-table', columns, rows as Row[])];
  });
  const stations = await section('stations', w().stations, '/api/registry/stations', (rows) => [table('stations-table', [{ key: 'stationId', label: w().station }, { key: 'name', label: w().name }], rows as Row[])]);
  const reason = el('input', { id: 'revoke-reason', placeholder: w().reason, maxlength: '200' });
  const cards = await section('cards', w().cards, '/api/registry/cards', (rows) => {
    const columns: Column[] = [{ key: 'cardId', label: w().cardId }, { key: 'kind', label: w().kind }, { key: 'clinicCode', label: 'clinic' }, { key: 'batchNo', label: 'batch', num: true }, { key: 'stationId', label: w().station }];
    if (revokesCards()) columns.push({ key: 'actions', label: '', show: (r) => revokeButton(String(r.cardId), () => reason.value) });
    return [table('cards-table', columns, rows as Row[])];
  });
  if (revokesCards()) {
    // any card by its id: a one-time card is in no station's export
    const cardId = el('input', { id: 'revoke-card', placeholder: w().cardId, size: '18', maxlength: '16' });
    const button = el('button', { id: 'revoke-submit', type: 'submit' }, w().revoke);
    const form = el('form', { class: 'controls' }, el('label', {}, `${w().cardId} `, cardId), el('label', {}, `${w().reason} `, reason), button);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      run(button, '/api/registry/cards/revoke', { cardId: cardId.value.trim().toLowerCase(), reason: reason.value || 'revoked in the console' });
    });
    cards.append(form);
  }
  const denylist = await section('denylist', w().denylist, '/api/registry/denylist', (answer) => {
    const list = answer as { version: number; cards: Row[]; terminals: Row[] };
    const refresh = el('button', { id: 'denylist-refresh' }, w().refresh);
    refresh.addEventListener('click', () => void showPage('registry'));
    return [
      el('p', {}, `${w().listVersion}: `, el('strong', { id: 'denylist-version' }, String(list.version)), ' ', refresh),
      table('denylist-table', [{ key: 'cardId', label: w().cardId }, { key: 'version', label: w().version, num: true }, { key: 'reason', label: w().reason }, { key: 'revokedAt', label: w().revokedAt, show: (r) => when(r.revokedAt) }, { key: 'revokedBy', label: w().revokedBy }], list.cards),
      table(
        'denylist-terminals',
        [
          { key: 'terminalId', label: 'terminal' },
          { key: 'clinicCode', label: 'clinic' },
          { key: 'denylistVersion', label: w().holds, num: true },
          { key: 'lastHeartbeatAt', label: 'lastHeartbeat', show: (r) => when(r.lastHeartbeatAt) },
          { key: 'received', label: w().received, show: (r) => el('span', { class: r.received ? 'online' : 'stale' }, r.received ? w().yes : w().no) },
        ],
        list.terminals,
      ),
    ];
  });
  main.append(el('h1', {}, w().registry), error, clinics, agents, terminals, stations, cards, denylist);
}

registerPage({ key: 'registry', label: () => w().registry, render: registry });
