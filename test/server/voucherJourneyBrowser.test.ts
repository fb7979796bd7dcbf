/**
 * A service voucher's whole journey in a real browser (Debian's chromium driven by playwright-core), seed 004:
 * the issuer, on the console's voucher page, generates a batch that needs booking, sends it to a community
 * centre, adds a slot and issues a voucher to a wallet; the patient, on a phone-sized screen, logs in to the
 * wallet page, books the slot and is shown the voucher's QR code; the test reads that code from a screenshot with
 * jsqr and types it through `tally sim scanner` (on a socat pty) into a terminal beside a simulated relay board;
 * the voucher is written off and the device runs; the terminal's ledger reaches the server's ingest; the issuer's
 * page shows it written off with the exam completed and counted; the wallet no longer lists it. Under the strict
 * The centre then issues the next voucher by the person's own QR code (wallet-qr.md), read from the phone's
 * screenshot; the same code again is WALLET_QR_REPLAYED. Under the strict
 * Content-Security-Policy with no violation, in English and Chinese. Screenshots go to test-output/vouchers/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsqrModule from 'jsqr';
import { PNG } from 'pngjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { directChannel } from '../../src/card/ApduChannel.js';
import { startSimScanner } from '../../src/cli/commands/simScanner.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { KeyRole } from '../../src/codecs/voucher.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import type { SwipeTiming } from '../../src/daemon/TerminalDaemon.js';
import { certifyVoucherKey } from '../../src/issuing/certifyVoucherKey.js';
import { SerialScanner } from '../../src/readers/scanner/SerialScanner.js';
import { DEMO_MOTHER_PIN, Issuer } from '../../src/scenario/CardWorld.js';
import { SerialRig } from '../../src/scenario/SerialRig.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { VoucherOffice, type VoucherKey } from '../../src/server/voucher/VoucherOffice.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { launchChromium, logIn, openPage } from '../support/consoleBrowser.js';

const OUT = fileURLToPath(new URL('../../test-output/vouchers/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tally-voucher-journey-'));
const PASSWORD = 'correct horse battery staple';
const CLINIC = 'CLINIC-J';
const DAY = 86_400;
type JsQr = typeof jsqrModule.default;
const jsQR: JsQr = typeof jsqrModule === 'function' ? (jsqrModule as unknown as JsQr) : jsqrModule.default;

let store: ServerStore;
let api: HttpApi;
let browser: Browser;
let issuer: Issuer;
let voucherKey: VoucherKey;
const cleanups: Array<() => Promise<void> | void> = [];
const cspViolations: string[] = [];

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  mkdirSync(join(dir, 'issuer'));
  mkdirSync(join(dir, 'terminal'));
  issuer = await new Issuer(join(dir, 'issuer')).init();
  const now = Math.floor(Date.now() / 1000);
  const pair = generateSigningKey();
  const { certificate } = await certifyVoucherKey(directChannel(issuer.mother), DEMO_MOTHER_PIN, {
    keyId: 1, roles: KeyRole.VOUCHERS | KeyRole.TRUST_LISTS, validFrom: now - DAY, validUntil: now + 365 * DAY, publicKey: pair.publicKey, issuer: 'journey back office',
  });
  voucherKey = { key: pair.privateKey, certificate };
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await addUser(store, { username: 'issuer', role: 'issuer', password: PASSWORD }, Date.now());
  await addUser(store, { username: 'grandma-li', role: 'patient', wallet: 'W-LI', password: PASSWORD }, Date.now());
  api = await startHttpApi({ store, pricing: { default: { pricePerUse: 8_000, investorShare: 0.7 } }, dashboardDir, voucherKey });
  browser = await launchChromium();
}, 120_000);
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await browser?.close();
  await api?.close();
  await store?.close();
  issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

const loggedIn = (username: string, phone: boolean): Promise<Page> =>
  logIn(browser, api.url, username, PASSWORD, cspViolations, phone ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true } : { viewport: { width: 1280, height: 900 } });
const open = openPage;

/** Fills a form of the voucher page and submits it; the text of its answer */
async function submit(page: Page, id: string, values: Record<string, string>): Promise<string> {
  for (const [name, value] of Object.entries(values)) await page.fill(`#${id}-${name}`, value);
  await page.click(`#${id} button[type="submit"]`);
  await page.waitForSelector(`#${id}-result:not(:empty)`);
  return (await page.textContent(`#${id}-result`)) ?? '';
}

const cell = (page: Page, tableId: string, serial: number, col: string): Promise<string> =>
  page.$$eval(`#${tableId} tbody tr`, (rows, [s, c]) => rows.find((r) => r.querySelector('td[data-col="serial"]')?.textContent === s)?.querySelector(`td[data-col="${c}"]`)?.textContent ?? '', [String(serial), col] as const);

let transaction = 0;

describe('a service voucher from the back office to the terminal, in chromium', () => {
  it('issued on the voucher page, booked and shown on the phone, read from the screenshot, scanned and written off; the back office shows it used', async () => {
    // the terminal: a simulated relay board on a pty, the serial scanner on another, `tally sim scanner` at its end
    const out: string[] = [];
    const sim = await startSimScanner({}, { out: (l) => out.push(l), err: (l) => out.push(l) });
    cleanups.push(() => sim.stop());
    const scanner = new SerialScanner(await openSerialTransport(sim.daemonPath));
    cleanups.push(() => scanner.close());
    const rig = await SerialRig.start({ dataDir: join(dir, 'terminal'), scanner, device: { startDelayMs: 2, runMs: 5 } }, async (r) => {
      await r.provision(issuer.mother, { terminalId: 'T-J1', clinicCode: CLINIC, pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
    });
    cleanups.push(() => rig.close());
    rig.terminal.adoptTrustList(await new VoucherOffice(store.vouchers, voucherKey).trustList());

    // the issuer: a batch that needs booking, sent to the centre, a slot now, one voucher to grandma Li's wallet
    const desk = await loggedIn('issuer', false);
    await open(desk, 'vouchers');
    const generated = await submit(desk, 'voucher-generate', { batchId: 'VB-J', scope: CLINIC, count: '3' });
    const first = Number(/(\d+)\.\.(\d+)/.exec(generated)?.[1]);
    expect(first).toBeGreaterThan(0);
    expect(await submit(desk, 'voucher-send', { batchId: 'VB-J', centreId: 'CC-GULOU', community: 'Gulou', count: '2' })).toContain('2');
    const start = new Date((Math.floor(Date.now() / 60_000) - 5) * 60_000).toISOString().slice(0, 16);
    expect(await submit(desk, 'voucher-slot', { slotId: '11', clinicCode: CLINIC, department: 'Ophthalmology', doctor: 'Dr Zhao', start, minutes: '30', capacity: '1' })).toContain('Done');
    const issued = await submit(desk, 'voucher-issue', { serial: String(first), centreId: 'CC-GULOU', walletId: 'W-LI' });
    expect(issued).toContain('W-LI');
    await desk.waitForSelector('#voucher-issued img.voucher-qr');
    // a refusal carries its code: the same voucher again
    expect(await submit(desk, 'voucher-issue', { serial: String(first), centreId: 'CC-GULOU', walletId: 'W-OTHER' })).toContain('VOUCHER_STATE_REFUSED');
    await desk.screenshot({ path: join(OUT, 'back-office-issued.png'), fullPage: true });

    // the patient's phone: the wallet page is where a patient lands; book the slot, then the QR code is shown
    const phone = await loggedIn('grandma-li', true);
    await phone.waitForSelector('#page-wallet[data-ready="true"]');
    const card = `.wallet-card[data-serial="${first}"]`;
    expect(await phone.getAttribute(card, 'data-state')).toBe('to-book');
    expect(await phone.$$(`${card} img.voucher-qr`)).toHaveLength(0); // to book first: no code to show yet
    await phone.screenshot({ path: join(OUT, 'wallet-to-book.png'), fullPage: true });
    await phone.click(`${card} button.book`);
    await phone.waitForSelector(`.wallet-card[data-serial="${first}"][data-state="booked"] img.voucher-qr`);
    // (the page's CSP refuses string evaluation: functions only, typed without the DOM library)
    type Doc = { document: { querySelector(s: string): { complete?: boolean } | null; documentElement: { scrollWidth: number } } };
    await phone.waitForFunction((sel) => (globalThis as unknown as Doc).document.querySelector(sel)?.complete === true, `${card} img.voucher-qr`);
    expect(await phone.evaluate(() => (globalThis as unknown as Doc).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(OUT, 'wallet-booked.png'), fullPage: true });
    expect((await store.vouchers.slot(11))!.booked).toBe(1);

    // read the code from a screenshot of the phone's screen, as a scanner would see it
    const shot = join(OUT, 'wallet-qr.png');
    await (await phone.$(`${card} img.voucher-qr`))!.screenshot({ path: shot });
    const png = PNG.sync.read(readFileSync(shot));
    const found = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.byteLength), png.width, png.height);
    expect(found?.data).toMatch(/^TV1:[0-9A-Z $%*+\-./:]+$/);

    // typed through tally sim scanner into the terminal: written off, the relay closes, the session completes
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = rig.daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    await sim.command(`scan ${found!.data}`);
    const timing = await decided;
    expect(timing.outcome).toMatchObject({ ok: true, action: 'voucher', serial: first });
    await rig.daemon.settled();
    await rig.deviceIdle();
    expect(rig.terminal.ledger.voucherUse(first)).toMatchObject({ state: 'completed' });

    // the terminal's ledger reaches the server's ingest
    const ingest = new Ingest({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, clock: { now: () => Date.now() } });
    const pending = rig.terminal.ledger.pending(1000);
    const outcome = await ingest.handle(terminalTopic('T-J1', 'report'), encodeReport({ transaction: ++transaction, certificate: rig.terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) }));
    expect(outcome.rejectedEntries).toEqual([]);

    // the back office shows it used: written off at the terminal, the exam completed, counted
    await desk.reload();
    await desk.waitForSelector('main[data-ready="true"]');
    await open(desk, 'vouchers');
    expect(await cell(desk, 'voucher-stock', first, 'state')).toBe('written_off');
    expect(await cell(desk, 'voucher-stock', first, 'terminalId')).toBe('T-J1');
    expect(await cell(desk, 'voucher-stock', first, 'completedAt')).not.toBe('');
    expect(await cell(desk, 'voucher-stock', first + 1, 'state')).toBe('sent');
    const byClinic = await desk.$$eval('#voucher-stats-clinic tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    expect(byClinic).toContainEqual([expect.any(String), CLINIC, '1', '1']);
    await desk.screenshot({ path: join(OUT, 'back-office-used.png'), fullPage: true });

    // the wallet no longer lists it; in Chinese
    await phone.reload();
    await phone.waitForSelector('#page-wallet[data-ready="true"]');
    expect(await phone.$$(card)).toHaveLength(0);
    await phone.waitForSelector('#wallet-empty');
    await phone.waitForSelector('#personal-qr');
    // the centre issues the next voucher by the person's own QR code: read from the phone's screenshot, typed into the form
    const personalShot = join(OUT, 'wallet-personal-qr.png');
    await phone.waitForFunction((sel) => (globalThis as unknown as Doc).document.querySelector(sel)?.complete === true, '#personal-qr');
    await (await phone.$('#personal-qr'))!.screenshot({ path: personalShot });
    const personalPng = PNG.sync.read(readFileSync(personalShot));
    const personal = jsQR(new Uint8ClampedArray(personalPng.data.buffer, personalPng.data.byteOffset, personalPng.data.byteLength), personalPng.width, personalPng.height);
    expect(personal?.data).toMatch(/^TW1:/);
    await desk.fill('#voucher-issue-walletId', '');
    expect(await submit(desk, 'voucher-issue', { serial: String(first + 1), centreId: 'CC-GULOU', personalQr: personal!.data })).toContain('W-LI');
    // the same code again (a screenshot shown twice) is refused with its code
    expect(await submit(desk, 'voucher-issue', { serial: String(first + 1), centreId: 'CC-GULOU', personalQr: personal!.data })).toContain('WALLET_QR_REPLAYED');
    expect(await store.vouchers.voucher(first + 1)).toMatchObject({ state: 'issued', walletId: 'W-LI' });
    await phone.reload();
    await phone.waitForSelector(`.wallet-card[data-serial="${first + 1}"]`);
    await phone.click('#language');
    await phone.waitForSelector('#page-wallet h1:has-text("我的服务券")');
    await phone.screenshot({ path: join(OUT, 'wallet-after-zh.png'), fullPage: true });
    expect(cspViolations).toEqual([]);
  }, 180_000);

  it("a patient gets only the wallet in the menu; the staff's pages are not in it, and their APIs refuse them", async () => {
    const phone = await loggedIn('grandma-li', true);
    const menu = await phone.$$eval('header a', (links) => links.map((a) => a.id));
    expect(menu).toEqual(['nav-wallet']);
    // a staff page's address lands on the wallet
    await phone.goto(phone.url().replace(/#.*$/, '') + '#overview');
    await phone.waitForSelector('#page-wallet');
    const refused = await phone.evaluate(async () =>
      Promise.all(['/api/vouchers/batches', '/api/registry/clinics', '/api/terminals', '/api/uses', '/api/batches', '/api/income', '/api/alerts', '/api/registry/terminals', '/api/users'].map(async (url) => `${url} ${(await fetch(url)).status}`)),
    );
    expect(refused).toEqual(['/api/vouchers/batches', '/api/registry/clinics', '/api/terminals', '/api/uses', '/api/batches', '/api/income', '/api/alerts', '/api/registry/terminals', '/api/users'].map((url) => `${url} 403`));
  }, 60_000);
});
