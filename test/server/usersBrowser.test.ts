/**
 * The users page in a real browser (Debian's chromium through playwright-core): the system administrator sees
 * every console user as the store has them, adds a clinic user through the form (a weak password is refused 6507
 * on the page), the new user logs in and sees only its clinic; disabling it ends its session at once (its page
 * goes back to the login, it cannot log in again), enabling lets it in, a new role is kept; each change is in
 * the audit log with the administrator's name and address, and the password never is. The auditor reads the list
 * without any button; the top authority may not see it. Screenshots go to test-output/users/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { apiAs, cells, launchChromium, logIn, openPage, redrawn } from '../support/consoleBrowser.js';
import { buildConsoleWorld, PASSWORD, USERS } from './consoleFixture.js';

const OUT = fileURLToPath(new URL('../../test-output/users/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tally-users-page-'));
const NEW_PASSWORD = 'a long enough password 42';
let store: ServerStore;
let api: HttpApi;
let browser: Browser;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await buildConsoleWorld(store);
  api = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, dashboardDir });
  browser = await launchChromium();
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await api?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The user's row's state cell */
const stateOf = async (page: Page, username: string): Promise<string> => (await page.textContent(`#users-table tr:has(td[data-col="username"]:text-is("${username}")) td[data-col="disabled"]`)) ?? '';

const redraw = (page: Page, action: () => Promise<void>): Promise<void> => redrawn(page, 'users', action);

describe('the users page in chromium', () => {
  it('the system administrator adds, disables, enables and re-roles a user; each change audit-logged, sessions end', async () => {
    const admin = await logIn(browser, api.url, USERS.sysadmin.username, PASSWORD);
    await openPage(admin, 'users');
    expect((await cells(admin, 'users-table', 'username')).sort()).toEqual((await store.access.users()).map((u) => u.username).sort());
    expect(await cells(admin, 'users-table', 'role')).toEqual(expect.arrayContaining(['sysadmin', 'clinic', 'agent']));
    await admin.screenshot({ path: `${OUT}sysadmin-users.png`, fullPage: true });

    // a weak password: refused with its message, nothing added
    await admin.fill('#new-username', 'nurse-b');
    await admin.fill('#new-password', 'short');
    await admin.selectOption('#new-role', 'clinic');
    await admin.fill('#new-scope', 'CL-B');
    await admin.click('#add-user');
    await admin.waitForSelector('#users-error:not(:empty)');
    expect(await admin.textContent('#users-error')).toContain('at least 12 characters');
    expect(await store.access.user('nurse-b')).toBeUndefined();

    await admin.fill('#new-password', NEW_PASSWORD);
    await redraw(admin, () => admin.click('#add-user'));
    expect(await store.access.user('nurse-b')).toMatchObject({ role: 'clinic', scope: 'CL-B', locale: 'zh', disabled: false });
    expect(await cells(admin, 'users-table', 'username')).toContain('nurse-b');

    // the new user logs in and sees its clinic only
    const nurse = await logIn(browser, api.url, 'nurse-b', NEW_PASSWORD);
    expect(await nurse.textContent('#who')).toContain('CL-B');
    const clinics = (await apiAs(nurse, '/api/registry/clinics')).body.data as Array<{ clinicCode: string }>;
    expect(clinics.map((c) => c.clinicCode)).toEqual(['CL-B']);

    // disabled: its session ends at once, and it cannot log in
    await redraw(admin, () => admin.click('button.disable[data-user="nurse-b"]'));
    expect((await store.access.user('nurse-b'))?.disabled).toBe(true);
    expect(await stateOf(admin, 'nurse-b')).toBe('disabled');
    expect(await apiAs(nurse, '/api/session')).toMatchObject({ status: 401, body: { error: { code: 'session-expired' } } });
    await nurse.context().close();
    const refused = await browser.newContext();
    const again = await refused.newPage();
    await again.goto(`${api.url}/`);
    await again.fill('#username', 'nurse-b');
    await again.fill('#password', NEW_PASSWORD);
    await again.click('#login');
    await again.waitForSelector('#login-error:not(:empty)');
    await refused.close();

    // enabled again, then made an auditor
    await redraw(admin, () => admin.click('button.enable[data-user="nurse-b"]'));
    expect((await store.access.user('nurse-b'))?.disabled).toBe(false);
    await admin.selectOption('#role-nurse-b', 'auditor');
    await admin.fill('#scope-nurse-b', '');
    await redraw(admin, () => admin.click('button.change-role[data-user="nurse-b"]'));
    expect(await store.access.user('nurse-b')).toMatchObject({ role: 'auditor', disabled: false });
    expect((await store.access.user('nurse-b'))?.scope).toBeUndefined();
    await admin.screenshot({ path: `${OUT}sysadmin-users-changed.png`, fullPage: true });

    // the last system administrator cannot be disabled: 6514 on the page
    await admin.click(`button.disable[data-user="${USERS.sysadmin.username}"]`);
    await admin.waitForSelector('#users-error:not(:empty)');
    expect((await store.access.user(USERS.sysadmin.username))?.disabled).toBe(false);

    const log = (await store.access.audit()).filter((a) => a.target === 'nurse-b');
    expect(log.map((a) => a.action).sort()).toEqual(['login.failed', 'login.ok', 'user.add', 'user.disable', 'user.enable', 'user.role'].sort());
    for (const a of log.filter((x) => x.action.startsWith('user.'))) expect(a, a.action).toMatchObject({ username: USERS.sysadmin.username, role: 'sysadmin', address: '127.0.0.1' });
    expect(JSON.parse(log.find((a) => a.action === 'user.add')!.detail)).toEqual({ role: 'clinic', scope: 'CL-B' });
    expect(JSON.stringify(await store.access.audit())).not.toContain(NEW_PASSWORD);
    await admin.context().close();
  });

  it('the auditor reads the list without buttons; the top authority may not see it', async () => {
    const auditor = await logIn(browser, api.url, USERS.auditor.username, PASSWORD);
    await openPage(auditor, 'users');
    expect((await cells(auditor, 'users-table', 'username')).length).toBe((await store.access.users()).length);
    expect(await auditor.$('#users-table button')).toBeNull();
    expect(await auditor.$('#add-user')).toBeNull();
    await auditor.screenshot({ path: `${OUT}auditor-users.png`, fullPage: true });
    await auditor.context().close();
    const boss = await logIn(browser, api.url, USERS.authority.username, PASSWORD);
    await openPage(boss, 'users');
    expect(await boss.textContent('#refused')).toContain('may not');
    await boss.context().close();
  });
});
