/**
 * What every page of the console shares: the session, the words in the user's language, the API call (writes carry
 * the session's CSRF token), element and table builders, and the page table the shell (app.ts) draws its menu from.
 * Every text from the server goes in with textContent, never as HTML.
 */
import { words, type Key, type Locale } from './i18n.js';

export interface Session {
  username: string;
  role: string;
  locale: Locale;
  csrf?: string;
  clinics?: string[];
}
export type Row = Record<string, unknown>;

/** The logged-in user (live binding: set by the shell) */
export let session: Session | undefined;
/** The shared words in the user's language (live binding) */
export let t = words('en');

export function setSession(s: Session | undefined): void {
  session = s;
  t = words(s?.locale ?? 'en');
}

/** Words one page keeps to itself, in both languages (the type makes both complete) */
export function localWords<K extends string>(both: { en: Record<K, string>; zh: Record<K, string> }): () => Record<K, string> {
  return () => (session?.locale === 'zh' ? both.zh : both.en);
}

export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, body?: unknown): Promise<T> {
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

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

export interface Column {
  key: string;
  /** a shared word's key, or the text itself */
  label: Key | string;
  num?: boolean;
  show?: (row: Row) => string | Node;
}

/** A table of rows; numeric columns right-aligned; each cell carries data-col for the tests */
export function table(id: string, columns: Column[], rows: Row[]): HTMLElement {
  if (rows.length === 0) return el('p', { id }, t.none);
  const head = el('tr', {}, ...columns.map((c) => el('th', c.num ? { class: 'num' } : {}, (t as Record<string, string>)[c.label] ?? c.label)));
  const body = rows.map((r) =>
    el('tr', {}, ...columns.map((c) => el('td', { 'data-col': c.key, ...(c.num ? { class: 'num' } : {}) }, c.show ? c.show(r) : r[c.key] === undefined ? '' : String(r[c.key])))),
  );
  return el('table', { id }, el('thead', {}, head), el('tbody', {}, ...body));
}

export const when = (ms: unknown): string => (typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) : '');

// ---------- the page table

export interface PageDef {
  /** the hash (#key), the menu link's id (nav-key) and the main element's id (page-key) */
  key: string;
  /** the menu's and the heading's text, in the user's language */
  label: () => string;
  /** fills the page; a Refused 403 shows "not allowed", a 401 goes back to the login */
  render: (main: HTMLElement) => Promise<void>;
  /** Only these roles get it in the menu (the server still checks every call); absent: every role but patient */
  roles?: readonly string[];
  /** The roles that land on this page after the login (else the first page) */
  home?: readonly string[];
}

/** In menu order: pages/index.ts imports each page file, and each file registers itself with one call */
export const PAGES: PageDef[] = [];

export function registerPage(page: PageDef): void {
  if (PAGES.some((p) => p.key === page.key)) throw new Error(`page ${page.key} registered twice`);
  PAGES.push(page);
}

let showHook: (key: string) => Promise<void> = async () => undefined;
/** Draw a page again (after a write); the shell sets what it does */
export const showPage = (key: string): Promise<void> => showHook(key);
export function setShowPage(hook: (key: string) => Promise<void>): void {
  showHook = hook;
}

/** A write from a button: the button waits, then the page is drawn again; a refusal shows its message in `error` */
export function submitWrite(button: HTMLButtonElement, path: string, body: unknown, error: HTMLElement, page: string): void {
  button.disabled = true;
  void api(path, body).then(
    () => showPage(page),
    (err: Error) => {
      button.disabled = false;
      error.textContent = err.message;
    },
  );
}
