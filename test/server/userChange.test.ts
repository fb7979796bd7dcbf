/**
 * Disabling a console user and changing its role, over HTTP (POST /api/users/change, the system administrator)
 * and with tally server user disable|enable|role, on SQLite and PostgreSQL: the user's sessions end at once, its
 * logins are refused until enabled, a new role holds from the next login, the last enabled system administrator
 * is kept, every change is in the audit log with who and from where. And the session cookie is Secure when the
 * console is served through an HTTPS proxy (--https-proxy), not otherwise.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { storeBackends } from '../support/storeBackends.js';
import { buildConsoleWorld, PASSWORD, T0, USERS } from './consoleFixture.js';

const PRICING = { default: { pricePerUse: 10_000, investorShare: 0.7 } };
const apps: Array<{ close(): Promise<unknown> }> = [];
afterAll(async () => {
  for (const a of apps) await a.close();
});

async function world(place: Awaited<ReturnType<ReturnType<typeof storeBackends>[number]['place']>>, httpsProxy = false) {
  const store: ServerStore = await createServerStore(place);
  apps.push(store);
  await buildConsoleWorld(store);
  const app = await buildHttpApi({ store, pricing: PRICING, clock: () => T0 + 3_600_000, httpsProxy });
  apps.push(app);
  const login = async (username: string, headers: Record<string, string> = {}) => {
    const res = await app.inject({ method: 'POST', url: '/api/session', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ username, password: PASSWORD }) });
    const cookie = String(res.headers['set-cookie'] ?? '');
    return { status: res.statusCode, body: res.json() as { error?: { code: string; number: number } }, setCookie: cookie, cookie: cookie.split(';')[0]!, csrf: res.statusCode === 200 ? (res.json() as { data: { csrf: string } }).data.csrf : '' };
  };
  const change = async (as: { cookie: string; csrf: string }, body: unknown) => {
    const res = await app.inject({ method: 'POST', url: '/api/users/change', headers: { 'content-type': 'application/json', cookie: as.cookie, 'x-csrf-token': as.csrf }, payload: JSON.stringify(body) });
    return { status: res.statusCode, body: res.json() as { data?: { user: Record<string, unknown>; sessionsEnded: number }; error?: { code: string; number: number } } };
  };
  const session = async (as: { cookie: string }) => (await app.inject({ method: 'GET', url: '/api/session', headers: { cookie: as.cookie } })).json() as { status: string; data?: { role: string }; error?: { code: string } };
  return { store, app, login, change, session };
}

for (const backend of storeBackends('tally-user-change')) {
  describe(`console users disabled and given another role: ${backend.name}`, () => {
    it('over HTTP: sessions end, logins refused until enabled, a role change holds from the next login, the last sysadmin kept, all audit-logged', async () => {
      const { store, login, change, session } = await world(await backend.place('user_change_http'));
      const admin = await login(USERS.sysadmin.username);
      const clinic = USERS.clinic.username;
      const first = await login(clinic);
      const second = await login(clinic);
      expect((await session(first)).status).toBe('ok');

      const disabled = await change(admin, { username: clinic, disabled: true });
      expect(disabled.status).toBe(200);
      expect(disabled.body.data).toMatchObject({ user: { username: clinic, disabled: true, role: 'clinic' }, sessionsEnded: 2 });
      for (const s of [first, second]) expect((await session(s)).error?.code).toBe('session-expired');
      expect((await login(clinic)).body.error).toMatchObject({ code: 'login-failed', number: 6506 });
      expect((await store.access.users()).find((u) => u.username === clinic)?.disabled).toBe(true);

      expect((await change(admin, { username: clinic, disabled: false })).body.data).toMatchObject({ user: { disabled: false }, sessionsEnded: 0 });
      const again = await login(clinic);
      expect(again.status).toBe(200);
      expect((await session(again)).data?.role).toBe('clinic');

      const promoted = await change(admin, { username: clinic, role: 'auditor' });
      expect(promoted.body.data).toMatchObject({ user: { role: 'auditor' }, sessionsEnded: 1 });
      expect(promoted.body.data!.user.scope).toBeUndefined();
      expect((await session(again)).error?.code).toBe('session-expired');
      expect((await session(await login(clinic))).data?.role).toBe('auditor');

      expect((await change(admin, { username: clinic, role: 'clinic' })).body.error).toMatchObject({ code: 'bad-role-scope', number: 6512 });
      expect((await change(admin, { username: clinic, role: 'agent', agent: 'AG-9' })).body.error).toMatchObject({ code: 'unknown-agent', number: 6511 });
      expect(await change(admin, { username: 'nobody', disabled: true })).toMatchObject({ status: 404, body: { error: { code: 'unknown-user', number: 6513 } } });
      expect(await change(admin, { username: clinic })).toMatchObject({ status: 400 });
      // the only system administrator may neither disable itself nor take another role
      expect(await change(admin, { username: USERS.sysadmin.username, disabled: true })).toMatchObject({ status: 409, body: { error: { code: 'last-sysadmin', number: 6514 } } });
      expect(await change(admin, { username: USERS.sysadmin.username, role: 'auditor' })).toMatchObject({ status: 409, body: { error: { number: 6514 } } });
      expect((await session(admin)).data?.role).toBe('sysadmin');
      // the authority may not change users
      const boss = await login(USERS.authority.username);
      expect((await change(boss, { username: clinic, disabled: true })).body.error).toMatchObject({ code: 'forbidden', number: 6502 });

      const audit = (await store.access.audit()).filter((a) => a.action.startsWith('user.') && a.action !== 'user.add').reverse();
      expect(audit.map((a) => `${a.username} ${a.action} ${a.target}`)).toEqual([
        `${USERS.sysadmin.username} user.disable ${clinic}`,
        `${USERS.sysadmin.username} user.enable ${clinic}`,
        `${USERS.sysadmin.username} user.role ${clinic}`,
      ]);
      expect(audit.every((a) => a.role === 'sysadmin' && a.address === '127.0.0.1')).toBe(true);
      expect(JSON.parse(audit[2]!.detail)).toEqual({ username: clinic, role: 'auditor' });
    });
  });
}

describe('tally server user disable|enable|role', () => {
  const [sqlite] = storeBackends('tally-user-change-cli');
  it('changes the user in the store, ends its sessions, logs the operating-system account, refuses the last sysadmin with 6514', async () => {
    const place = await sqlite!.place('user_change_cli');
    const { login, session } = await world(place);
    const clinic = USERS.clinic.username;
    const s = await login(clinic);
    const storePath = place.kind === 'sqlite' ? place.path : '';
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['server', 'user', ...args, '--store', storePath], { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    expect(await run('disable', clinic)).toMatchObject({ code: 0, out: `user ${clinic}: disabled, clinic of CL-A; 1 session(s) ended` });
    expect((await session(s)).error?.code).toBe('session-expired');
    expect((await login(clinic)).status).toBe(401);
    expect((await run('enable', clinic)).code).toBe(0);
    expect((await run('role', clinic, '--role', 'agent', '--agent', 'AG-1')).out).toBe(`user ${clinic}: enabled, agent of AG-1; 0 session(s) ended`);
    expect((await session(await login(clinic))).data?.role).toBe('agent');
    const last = await run('disable', USERS.sysadmin.username);
    expect(last.code).not.toBe(0);
    expect(last.err).toMatch(/6514/);
    const store = await createServerStore(place);
    try {
      const audit = (await store.access.audit()).filter((a) => ['user.disable', 'user.enable', 'user.role'].includes(a.action));
      expect(audit).toHaveLength(3);
      expect(audit.every((a) => a.username.startsWith('os:') && a.address.startsWith('cli@'))).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('the session cookie over HTTPS', () => {
  const [sqlite] = storeBackends('tally-secure-cookie');
  it('is Secure behind the HTTPS proxy (--https-proxy), and not when served as plain HTTP', async () => {
    const plain = await world(await sqlite!.place('cookie_plain'));
    const proxied = await world(await sqlite!.place('cookie_proxied'), true);
    const p = await plain.login(USERS.authority.username, { 'x-forwarded-proto': 'https' });
    expect(p.setCookie).toMatch(/HttpOnly; SameSite=Strict/);
    expect(p.setCookie).not.toMatch(/Secure/);
    const s = await proxied.login(USERS.authority.username, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' });
    expect(s.setCookie).toMatch(/HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    // behind the proxy the client's address is the one it forwards (the login rate limit and the audit log use it)
    const row = (await proxied.store.access.audit()).find((a) => a.action === 'login.ok');
    expect(row?.address).toBe('203.0.113.7');
  });
});
