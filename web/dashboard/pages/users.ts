/**
 * Users (the system administrator's; the auditor reads it): every console user with its role, scope and state;
 * add one, disable or enable it, give it another role. The server checks the role and audit-logs each change
 * (POST /api/users, /api/users/change); a refusal shows its message in the user's language.
 */
import { api, el, localWords, registerPage, session, submitWrite, table, when, type Row } from '../core.js';

const ROLES = ['sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient'];

const w = localWords({
  en: { users: 'Users', username: 'User name', role: 'Role', scope: 'Clinic, agent or wallet', locale: 'Language', created: 'Created', state: 'State', enabled: 'enabled', disabled: 'disabled', disable: 'Disable', enable: 'Enable', changeRole: 'Change role', add: 'Add user', password: 'Password', scopeHint: 'clinic, agent or wallet' },
  zh: { users: '用户', username: '用户名', role: '角色', scope: '医疗机构、代理商或钱包', locale: '语言', created: '创建时间', state: '状态', enabled: '已启用', disabled: '已停用', disable: '停用', enable: '启用', changeRole: '更改角色', add: '添加用户', password: '密码', scopeHint: '机构、代理商或钱包代码' },
});

/** clinic, agent and patient roles carry their scope (a patient's is its voucher wallet); the others none */
const scoped = (role: string, scope: string): Record<string, string> => (role === 'clinic' ? { clinic: scope } : role === 'agent' ? { agent: scope } : role === 'patient' ? { wallet: scope } : {});

async function users(main: HTMLElement): Promise<void> {
  const rows = await api<Row[]>('/api/users');
  const writes = session?.role === 'sysadmin';
  const error = el('p', { class: 'error', id: 'users-error' });
  const run = (button: HTMLButtonElement, path: string, body: unknown): void => submitWrite(button, path, body, error, 'users');
  const roleSelect = (id: string, value: string): HTMLSelectElement => {
    const select = el('select', { id }, ...ROLES.map((r) => el('option', { value: r }, r)));
    select.value = value;
    return select;
  };
  main.append(
    el('h1', {}, w().users),
    table(
      'users-table',
      [
        { key: 'username', label: w().username },
        { key: 'role', label: w().role },
        { key: 'scope', label: w().scope },
        { key: 'locale', label: w().locale },
        { key: 'createdAt', label: w().created, show: (r) => when(r.createdAt) },
        { key: 'disabled', label: w().state, show: (r) => el('span', { class: r.disabled ? 'offline' : 'online' }, r.disabled ? w().disabled : w().enabled) },
        ...(writes
          ? [
              {
                key: 'actions',
                label: '',
                show: (r: Row): Node => {
                  const name = String(r.username);
                  const toggle = el('button', { class: r.disabled ? 'enable' : 'disable', 'data-user': name }, r.disabled ? w().enable : w().disable);
                  toggle.addEventListener('click', () => run(toggle, '/api/users/change', { username: name, disabled: !r.disabled }));
                  const role = roleSelect(`role-${name}`, String(r.role));
                  const scope = el('input', { id: `scope-${name}`, placeholder: w().scopeHint, size: '10', value: r.scope === undefined ? '' : String(r.scope) });
                  const change = el('button', { class: 'change-role', 'data-user': name }, w().changeRole);
                  change.addEventListener('click', () => run(change, '/api/users/change', { username: name, role: role.value, ...scoped(role.value, scope.value) }));
                  return el('span', {}, toggle, ' ', role, scope, change);
                },
              },
            ]
          : []),
      ],
      rows,
    ),
    error,
  );
  if (!writes) return;
  const username = el('input', { id: 'new-username', autocomplete: 'off' });
  const password = el('input', { id: 'new-password', type: 'password', autocomplete: 'new-password' });
  const role = roleSelect('new-role', 'clinic');
  const scope = el('input', { id: 'new-scope', placeholder: w().scopeHint });
  const locale = el('select', { id: 'new-locale' }, el('option', { value: 'zh' }, '中文'), el('option', { value: 'en' }, 'English'));
  const add = el('button', { id: 'add-user', type: 'submit' }, w().add);
  const form = el('form', { class: 'controls', id: 'add-user-form' }, el('label', {}, `${w().username} `, username), el('label', {}, `${w().password} `, password), el('label', {}, `${w().role} `, role), el('label', {}, `${w().scope} `, scope), el('label', {}, `${w().locale} `, locale), add);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    run(add, '/api/users', { username: username.value, password: password.value, role: role.value, locale: locale.value, ...scoped(role.value, scope.value) });
  });
  main.append(el('h2', {}, w().add), form);
}

registerPage({ key: 'users', label: () => w().users, render: users });
