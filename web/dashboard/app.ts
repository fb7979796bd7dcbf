/**
 * The console in the browser: a login, then the pages the user's role may see (the server decides; a page it
 * refuses shows so). The pages are one file each in pages/ (pages/index.ts lists them); this shell draws the menu
 * from their table, the language and logout buttons, and routes #key to the page.
 */
import { api, el, PAGES, Refused, session, setSession, setShowPage, t, type Session } from './core.js';
import type { Locale } from './i18n.js';
import './pages/index.js';

const root = document.getElementById('app')!;

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

async function show(key: string): Promise<void> {
  const user = session!;
  // a patient gets only the pages made for it (its wallet): the console's pages are the staff's
  const menu = PAGES.filter((p) => (p.roles ? p.roles.includes(user.role) : user.role !== 'patient'));
  const page = menu.find((p) => p.key === key) ?? menu.find((p) => p.home?.includes(user.role)) ?? menu[0]!;
  const nav = el(
    'header',
    {},
    el('strong', {}, t.title),
    ...menu.map((p) => el('a', { href: `#${p.key}`, id: `nav-${p.key}`, ...(p === page ? { class: 'active' } : {}) }, p.label())),
    el('span', { class: 'who', id: 'who' }, `${user.username} (${user.role}${user.clinics ? ` ${user.clinics.join(', ')}` : ''})`),
  );
  const language = el('button', { id: 'language' }, t.language);
  language.addEventListener('click', () => void api<Session>('/api/session/locale', { locale: user.locale === 'zh' ? 'en' : 'zh' }).then((s) => start({ ...user, locale: s.locale as Locale })));
  const logout = el('button', { id: 'logout' }, t.logout);
  logout.addEventListener('click', () => void api('/api/session/logout', {}).finally(() => (setSession(undefined), loginForm())));
  nav.append(language, logout);
  const main = el('main', { id: `page-${page.key}` });
  root.replaceChildren(nav, main);
  document.documentElement.lang = user.locale === 'zh' ? 'zh-CN' : 'en';
  try {
    await page.render(main);
  } catch (err) {
    if (err instanceof Refused && err.status === 401) return loginForm(err.message);
    main.replaceChildren(el('h1', {}, page.label()), el('p', { class: 'error', id: 'refused' }, err instanceof Refused && err.status === 403 ? t.notAllowed : String((err as Error).message)));
  }
  main.setAttribute('data-ready', 'true');
}

function start(s: Session): void {
  setSession(s);
  void show(location.hash.slice(1));
}

setShowPage(show);
window.addEventListener('hashchange', () => session && void show(location.hash.slice(1)));
api<Session>('/api/session').then(start, (err: Error) => loginForm(err instanceof Refused && err.code === 'session-expired' ? err.message : undefined));
