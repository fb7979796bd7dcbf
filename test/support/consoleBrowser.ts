/**
 * What the console's browser tests share: Debian's chromium through playwright-core (nothing downloaded), a
 * login through the dashboard's form, opening a page by its hash and waiting until it says it is drawn, and the
 * cells of one column of a table (each cell carries data-col).
 */
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/**
 * A fresh context (downloads on; a 1200x800 screen unless `contextOptions` says otherwise, a phone's for instance),
 * logged in through the form; console messages about the CSP go to cspViolations
 */
export async function logIn(browser: Browser, url: string, username: string, password: string, cspViolations: string[] = [], contextOptions: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 }, ...contextOptions });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await page.goto(`${url}/`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login');
  await page.waitForSelector('main[data-ready="true"]');
  return page;
}

/** Go to #name and wait until the page is drawn (data-ready) */
export async function openPage(page: Page, name: string): Promise<void> {
  await page.evaluate((hash) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = hash;
  }, name);
  await page.waitForSelector(`#page-${name}[data-ready="true"]`);
}

export const cells = (page: Page, tableId: string, col: string): Promise<string[]> => page.$$eval(`#${tableId} td[data-col="${col}"]`, (tds) => tds.map((td) => td.textContent ?? ''));

/** GET a JSON API path as the page's logged-in user: the answer's status and body */
export interface ApiAnswer {
  status: number;
  body: { status: string; data?: unknown; error?: { code: string; number?: number } };
}
export function apiAs(page: Page, path: string): Promise<ApiAnswer> {
  return page.evaluate(async (p) => {
    const res = await fetch(p, { credentials: 'same-origin' });
    return { status: res.status, body: (await res.json()) as ApiAnswer['body'] };
  }, path);
}

/** Does action (a write, a refresh) and waits until the page is drawn anew: a main without the mark the old one got */
export async function redrawn(page: Page, name: string, action: () => Promise<void>): Promise<void> {
  await page.$eval('main', (main) => main.setAttribute('data-stale', 'yes'));
  await action();
  await page.waitForSelector(`#page-${name}[data-ready="true"]:not([data-stale])`);
}
