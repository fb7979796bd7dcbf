/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core; nothing downloaded): the page and
 * its bundle come from the HTTP API's own port under a strict Content-Security-Policy; each role logs in through
 * the form, opens every page, and the figures on the page are checked against the store (uses, income in fen,
 * terminals, batches, alerts), a page the role may not see says so; the CSV behind the charts downloads with the
 * raw rows; an alert is acknowledged with a note through the page and lands in the store and the audit log;
 * a user switches to Chinese. A screenshot of each page goes to test-output/dashboard/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, type Role } from '../../src/server/access/roles.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { currentPricing, incomeSplit, startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { buildConsoleWorld, PASSWORD, T0, USERS, VISIBLE } from './consoleFixture.js';

const OUT = fileURLToPath(new URL('../../test-output/dashboard/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tally-dashboard-'));
const PRICING = { default: { pricePerUse: 10_000, investorShare: 0.7 } };
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Which role may open which page (as the issue gives it) */
const PAGES: Record<string, readonly Role[]> = {
  overview: ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  terminals: ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  batches: ['authority', 'issuer', 'agent', 'clinic', 'auditor'],
  money: ['authority', 'agent', 'clinic', 'auditor'],
  alerts: ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
};

let store: ServerStore;
let api: HttpApi;
let browser: Browser;
const cspViolations: string[] = [];

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await buildConsoleWorld(store);
  await store.recordHeartbeat({ terminalId: 'T-A', at: Date.now(), queueDepth: 3, lastSeq: 5 });
  await store.recordHeartbeat({ terminalId: 'T-B', at: T0, queueDepth: 7, lastSeq: 3 });
  api = await startHttpApi({ store, pricing: PRICING, dashboardDir });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await api?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function loggedIn(role: Role): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await page.goto(`${api.url}/`);
  await page.fill('#username', USERS[role].username);
  await page.fill('#password', PASSWORD);
  await page.click('#login');
  await page.waitForSelector('main[data-ready="true"]');
  return page;
}

async function open(page: Page, name: string): Promise<void> {
  await page.evaluate((hash) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = hash;
  }, name);
  await page.waitForSelector(`#page-${name}[data-ready="true"]`);
}

const cells = (page: Page, tableId: string, col: string): Promise<string[]> => page.$$eval(`#${tableId} td[data-col="${col}"]`, (tds) => tds.map((td) => td.textContent ?? ''));

describe('the dashboard in chromium', () => {
  it('serves the page and its bundle under a strict Content-Security-Policy, nothing from elsewhere', async () => {
    const res = await fetch(`${api.url}/`);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${api.url}/dashboard/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${api.url}/dashboard/secret.db`)).status).toBe(404);
  });

  for (const role of ROLES) {
    it(`${role}: every page, its figures as the store has them`, async () => {
      const page = await loggedIn(role);
      const visible = new Set(VISIBLE[role]);
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      for (const [name, allowed] of Object.entries(PAGES)) {
        if (role === 'patient') {
          // a patient's menu is its wallet alone: a staff page's address lands there
          await page.evaluate((hash) => {
            (globalThis as unknown as { location: { hash: string } }).location.hash = hash;
          }, name);
          await page.waitForSelector('#page-wallet');
          expect(await page.$(`#page-${name}`), `${role} ${name}`).toBeNull();
          continue;
        }
        await open(page, name);
        await page.screenshot({ path: `${OUT}${role}-${name}.png`, fullPage: true });
        if (!allowed.includes(role)) {
          expect(await page.textContent('#refused'), `${role} ${name}`).toContain('may not');
          continue;
        }
        if (name === 'overview') {
          const uses = (await store.usesPerDay()).filter((d) => visible.has(d.clinicCode)).reduce((n, d) => n + d.uses, 0);
          expect(await page.textContent('#overview-total')).toBe(String(uses));
          expect(await page.$('#chart canvas'), 'uPlot drew').not.toBeNull();
          // by agent per month: the numbers beside the chart, as the store has them
          await page.selectOption('#period', 'month');
          await page.selectOption('#by', 'agent');
          await page.waitForSelector('#page-overview[data-ready="true"]');
          const agentUses = (await store.usesPerDay()).filter((d) => visible.has(d.clinicCode) && d.clinicCode !== 'CL-B').reduce((n, d) => n + d.uses, 0);
          if (agentUses > 0) expect(await cells(page, 'overview-table', 'AG-1')).toEqual([String(agentUses)]);
        }
        if (name === 'money') {
          const income = incomeSplit(await store.usesPerDay(), await currentPricing(store, PRICING)).filter((r) => visible.has(r.clinicCode));
          const investor = await cells(page, 'money-table', 'investor');
          expect(investor).toEqual([...income.map((r) => String(r.investor)), String(income.reduce((n, r) => n + r.investor, 0))]);
          expect(await cells(page, 'money-table', 'agent')).toEqual([...income.map((r) => (r.agent === undefined ? '' : String(r.agent))), String(income.reduce((n, r) => n + (r.agent ?? 0), 0))]);
        }
        if (name === 'terminals') {
          expect((await cells(page, 'terminals-table', 'terminalId')).sort()).toEqual((await store.terminals()).filter((t) => visible.has(t.clinicCode)).map((t) => t.terminalId).sort());
          if (visible.has('CL-B')) expect((await cells(page, 'terminals-table', 'staleSince')).some((s) => s.startsWith('2026-11-02'))).toBe(true);
        }
        if (name === 'batches') expect((await cells(page, 'batches-table', 'clinicCode')).sort()).toEqual([...visible].sort());
        if (name === 'alerts') expect((await cells(page, 'alerts-table', 'detail')).sort()).toEqual([...visible].map((c) => `in ${c}`).sort());
      }
      expect(requests.every((u) => u.startsWith(api.url)), 'nothing from another origin').toBe(true);
      await page.context().close();
    });
  }

  it('downloads the CSV of the rows behind the charts', async () => {
    const page = await loggedIn('agent');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
    const text = readFileSync((await download.path())!, 'utf8');
    const lines = text.trim().split('\r\n');
    expect(lines[0]).toBe('day,clinicCode,terminalId,agentCode,uses,clockUntrusted');
    const rows = (await store.usesPerDay()).filter((d) => d.clinicCode !== 'CL-B');
    expect(lines.slice(1).sort()).toEqual(rows.map((d) => `${d.day},${d.clinicCode},${d.terminalId},AG-1,${d.uses},${d.clockUntrusted ? 'yes' : ''}`).sort());
    await page.context().close();
  });

  it('acknowledges an alert with a note through the page (store and audit log), and speaks Chinese on request', async () => {
    const page = await loggedIn('authority');
    await open(page, 'alerts');
    await page.fill('.ack-note', 'serials checked with the clinic');
    await page.click('.ack');
    await page.waitForSelector('#alerts-table td[data-col="acknowledged"]:has-text("serials checked")');
    const acks = await store.access.alertAcks();
    expect(acks).toEqual([expect.objectContaining({ username: 'boss', note: 'serials checked with the clinic' })]);
    expect((await store.access.audit()).find((a) => a.action === 'alert.ack')).toMatchObject({ username: 'boss', target: acks[0]!.alertKey, address: '127.0.0.1' });
    await page.screenshot({ path: `${OUT}authority-alerts-acknowledged.png`, fullPage: true });

    await page.click('#language');
    await page.waitForSelector('#nav-overview:has-text("概览")');
    await open(page, 'money');
    expect(await page.textContent('#money-table')).toContain('投资方');
    await page.screenshot({ path: `${OUT}authority-money-zh.png`, fullPage: true });
    expect((await store.access.user('boss'))?.locale).toBe('zh');
    await page.context().close();
    expect(cspViolations).toEqual([]);
  });
});
