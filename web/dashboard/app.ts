/**
 * The console in the browser: a login, then the pages the user's role may see (the server decides; a page it
 * refuses shows so). Data comes from the HTTP API as this user; writes carry the session's CSRF token. Every
 * text from the server goes in with textContent, never as HTML. Charts are uPlot, bundled (no CDN).
 */
import uPlot from 'uplot';
import { words, type Key, type Locale } from './i18n.js';

interface Session {
  username: string;
  role: string;
  locale: Locale;
  csrf?: string;
  clinics?: string[];
}
type Row = Record<string, unknown>;

let session: Session | undefined;
let t = words('en');
const root = document.getElementById('app')!;

class Refused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json', 'x-csrf-token': session?.csrf ?? '' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer = (await res.json()) as { status: string; data?: T; error?: { code: string; message: string; zh?: string } };
  if (answer.status !== 'ok') throw new Refused(res.status, answer.error?.code ?? 'error', (session?.locale === 'zh' && answer.error?.zh) || answer.error?.message || res.statusText);
  return answer.data as T;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

/** A table of rows; numeric columns right-aligned; each cell carries data-col for the tests */
function table(id: string, columns: Array<{ key: string; label: Key | string; num?: boolean; show?: (row: Row) => string | Node }>, rows: Row[]): HTMLElement {
  if (rows.length === 0) return el('p', { id }, t.none);
  const head = el('tr', {}, ...columns.map((c) => el('th', c.num ? { class: 'num' } : {}, (t as Record<string, string>)[c.label] ?? c.label)));
  const body = rows.map((r) =>
    el('tr', {}, ...columns.map((c) => el('td', { 'data-col': c.key, ...(c.num ? { class: 'num' } : {}) }, c.show ? c.show(r) : r[c.key] === undefined ? '' : String(r[c.key])))),
  );
  return el('table', { id }, el('thead', {}, head), el('tbody', {}, ...body));
}

const when = (ms: unknown): string => (typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) : '');

// ---------- pages

const PAGES: Record<string, { label: Key; render: (main: HTMLElement) => Promise<void> }> = {
  overview: { label: 'overview', render: overview },
  terminals: { label: 'terminals', render: terminals },
  batches: { label: 'batches', render: batches },
  money: { label: 'money', render: money },
  alerts: { label: 'alerts', render: alerts },
};

const bucketTime = (bucket: string): number => Date.parse(bucket.length === 7 ? `${bucket}-01T00:00:00Z` : `${bucket}T00:00:00Z`) / 1000;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

interface UseSeries {
  buckets: string[];
  groups: Array<{ key: string; uses: number[] }>;
  total: number;
}

/** The chart and its numbers come summed by the server from its daily roll-up; the CSV link gives the raw rows */
async function overview(main: HTMLElement): Promise<void> {
  const period = el('select', { id: 'period' }, ...['day', 'week', 'month'].map((p) => el('option', { value: p }, t[p as Key])));
  const by = el('select', { id: 'by' }, ...['clinic', 'terminal', 'agent'].map((p) => el('option', { value: p }, t[p as Key])));
  const chart = el('div', { id: 'chart' });
  const numbers = el('div', { id: 'numbers' });
  let generation = 0;
  const draw = async (mine: number): Promise<void> => {
    const series = await api<UseSeries>(`/api/uses/series?period=${period.value}&by=${by.value}`);
    if (mine !== generation) return;
    const label = (key: string): string => key || t.unassigned;
    chart.replaceChildren();
    if (series.buckets.length > 0) {
      // a chart of hundreds of lines says nothing: the eight largest are drawn, the table has them all
      const drawn = [...series.groups].sort((x, y) => y.uses.reduce((n, v) => n + v, 0) - x.uses.reduce((n, v) => n + v, 0)).slice(0, 8);
      const data: uPlot.AlignedData = [series.buckets.map(bucketTime), ...drawn.map((g) => g.uses)];
      new uPlot(
        { width: Math.min(720, window.innerWidth - 40), height: 300, series: [{}, ...drawn.map((g, i) => ({ label: label(g.key), stroke: COLOURS[i % COLOURS.length]!, width: 2, points: { show: series.buckets.length < 60 } }))], scales: { x: { time: true } }, axes: [{}, { label: t.uses }] },
        data,
        chart,
      );
    }
    const rows: Row[] = series.buckets.map((b, i) => ({ bucket: b, ...Object.fromEntries(series.groups.map((g) => [g.key, g.uses[i] ?? 0])) }));
    numbers.replaceChildren(
      table('overview-table', [{ key: 'bucket', label: period.value as Key }, ...series.groups.map((g) => ({ key: g.key, label: label(g.key), num: true }))], rows),
      el('p', {}, `${t.total}: `, el('strong', { id: 'overview-total' }, String(series.total))),
    );
  };
  const redraw = (): void => {
    const mine = ++generation;
    main.removeAttribute('data-ready');
    // only the latest choice draws and says ready: an earlier answer arriving late is dropped
    void draw(mine).then(() => mine === generation && main.setAttribute('data-ready', 'true'));
  };
  period.addEventListener('change', redraw);
  by.addEventListener('change', redraw);
  main.append(
    el('h1', {}, t.overview),
    el('div', { class: 'controls' }, el('label', {}, `${t.period} `, period), el('label', {}, `${t.by} `, by), el('a', { id: 'csv', href: '/api/export/uses.csv', download: 'uses.csv' }, t.csv)),
    el('div', { class: 'row' }, chart, numbers),
  );
  await draw(generation);
}

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
                  () => show('alerts'),
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

// ---------- frame

function loginForm(message?: string): void {
  const username = el('input', { id: 'username', autocomplete: 'username' });
  const password = el('input', { id: 'password', type: 'password', autocomplete: 'current-password' });
  const error = el('p', { class: 'error', id: 'login-error' }, message ?? '');
  const form = el('form', { class: 'login' }, el('h1', {}, t.title), el('label', {}, t.username, el('br'), username), el('label', {}, t.password, el('br'), password), el('button', { id: 'login', type: 'submit' }, t.login), error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    api<Session>('/api/session', { username: username.value, password: password.value }).then(
      (s) => start(s),
      (err: Error) => {
        error.textContent = err.message;
      },
    );
  });
  root.replaceChildren(form);
}

async function show(page: string): Promise<void> {
  const name = PAGES[page] ? page : 'overview';
  const nav = el(
    'header',
    {},
    el('strong', {}, t.title),
    ...Object.entries(PAGES).map(([key, p]) => el('a', { href: `#${key}`, id: `nav-${key}`, ...(key === name ? { class: 'active' } : {}) }, t[p.label])),
    el('span', { class: 'who', id: 'who' }, `${session!.username} (${session!.role}${session!.clinics ? ` ${session!.clinics.join(', ')}` : ''})`),
  );
  const language = el('button', { id: 'language' }, t.language);
  language.addEventListener('click', () => void api<Session>('/api/session/locale', { locale: session!.locale === 'zh' ? 'en' : 'zh' }).then((s) => start({ ...session!, locale: s.locale as Locale })));
  const logout = el('button', { id: 'logout' }, t.logout);
  logout.addEventListener('click', () => void api('/api/session/logout', {}).finally(() => ((session = undefined), loginForm())));
  nav.append(language, logout);
  const main = el('main', { id: `page-${name}` });
  root.replaceChildren(nav, main);
  document.documentElement.lang = session!.locale === 'zh' ? 'zh-CN' : 'en';
  try {
    await PAGES[name]!.render(main);
  } catch (err) {
    if (err instanceof Refused && err.status === 401) return loginForm(err.message);
    main.replaceChildren(el('h1', {}, t[PAGES[name]!.label]), el('p', { class: 'error', id: 'refused' }, err instanceof Refused && err.status === 403 ? t.notAllowed : String((err as Error).message)));
  }
  main.setAttribute('data-ready', 'true');
}

function start(s: Session): void {
  session = s;
  t = words(s.locale);
  void show(location.hash.slice(1));
}

window.addEventListener('hashchange', () => session && void show(location.hash.slice(1)));
api<Session>('/api/session').then(start, (err: Error) => loginForm(err instanceof Refused && err.code === 'session-expired' ? err.message : undefined));
