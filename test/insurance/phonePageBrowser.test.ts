/**
 * The patient's phone page in a real browser (Debian's chromium driven by playwright-core): the link the terminal
 * shows opens the page, which shows the binding code and amount, takes the e-credential, shows what the insurance
 * covers and what is left, and consents; the terminal's poll then gets the voucher. A second phone on the same
 * link sees the refusal with its code; a refusal on the page denies the terminal. No script but the page's own
 * runs (its CSP); the platform is `tally sim insurance` in its own process.
 * Seed 001's booking app: a patient, on the dashboard's wallet page, pays a service order with the e-credential
 * and is shown the redemption code, which the server's GET gives as settled; an uninsured credential shows its
 * reason code and message, in Chinese too, and charges nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { apiAs, logIn } from '../support/consoleBrowser.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { startInsuranceRig, type InsuranceRig } from '../support/insuranceRig.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let platform: PlatformProcess;
let rig: InsuranceRig;
let browser: Browser;
const cspViolations: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'ins-phone-browser-'));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  platform = await startPlatformProcess();
  rig = await startInsuranceRig(platform, { dashboardDir });
  await addUser(rig.store, { username: 'patient-wang', role: 'patient', wallet: 'W-WANG', password: PASSWORD }, Date.now(), 'logged-by-caller');
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await rig?.close();
  await platform?.close();
  rmSync(dir, { recursive: true, force: true });
});

// the terminal's side (MQTT in the product) as calls on the service
const startPayment = (amountFen: number) => rig.service.start({ terminalId: 'T-1', item: 'OCT', amountFen });

async function phone() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return { context, page };
}

describe('the phone page in chromium', () => {
  it('shows the order and the coverage, consents, and the terminal gets the voucher', async () => {
    const auth = await startPayment(12_345);
    const { context, page } = await phone();
    await page.goto(auth.verification_uri_complete);
    await expect.poll(() => page.textContent('#binding')).toBe(auth.binding_code);
    expect(await page.textContent('#amount')).toBe('¥123.45');
    await page.fill('#credential', 'EC-DEMO-0001');
    await page.click('#query');
    await page.waitForSelector('#quote:not([hidden])');
    expect(await page.textContent('#insurer')).toBe('¥86.41');
    expect(await page.textContent('#patient')).toBe('¥37.04');
    expect(await page.textContent('#insured')).toBe('张*');
    await page.click('#consent');
    await page.waitForSelector('#status[data-state="settled"]');

    expect(await rig.service.poll(auth.device_code, 'T-1')).toMatchObject({ orderId: auth.orderId, voucher: expect.any(String) });

    // a second phone on the same link is refused, in both languages, with its code
    const second = await phone();
    await second.page.goto(auth.verification_uri_complete);
    await second.page.waitForSelector('#error[data-code="INSURANCE_LINK_TAKEN"]');
    expect(await second.page.textContent('#error')).toContain('6609');
    expect(await second.page.textContent('#error')).toContain('已在另一部手机上打开');
    await second.context.close();
    await context.close();
  });

  it('a refusal on the page denies the terminal', async () => {
    const auth = await startPayment(5_000);
    const { context, page } = await phone();
    await page.goto(auth.verification_uri_complete);
    await page.fill('#credential', 'EC-DEMO-0001');
    await page.click('#query');
    await page.waitForSelector('#quote:not([hidden])');
    await page.click('#refuse');
    await page.waitForSelector('#status[data-state="refused"]');
    expect(await rig.service.poll(auth.device_code, 'T-1')).toMatchObject({ error: 'access_denied', reason: 'INSURANCE_REFUSED_BY_PATIENT' });
    await context.close();
    expect(cspViolations).toEqual([]);
  });
  it("the booking app on the patient's wallet page: a service order paid with the e-credential shows its redemption code; an uninsured one its reason, nothing charged", async () => {
    const counters = async () => (await platform.admin('/admin/counters')) as { settlements: number };
    const before = await counters();
    const page = await logIn(browser, rig.url, 'patient-wang', PASSWORD, cspViolations, { viewport: { width: 390, height: 844 }, isMobile: true });
    await page.waitForSelector('#page-wallet #insurance');
    const pay = async (credential: string) => {
      await page.fill('#insurance-clinicCode', 'CL-1');
      await page.fill('#insurance-item', 'OCT');
      await page.fill('#insurance-amount', '120.00');
      await page.fill('#insurance-credential', credential);
      await page.click('#insurance button[type="submit"]');
      await page.waitForSelector('#insurance-result > *');
    };
    await pay('EC-DEMO-0001');
    const code = (await page.textContent('#insurance-redeem-code')) ?? '';
    expect(code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    const orderId = (await page.getAttribute('#insurance-result [data-order]', 'data-order'))!;
    // the server has it settled under the same code, paid once at the platform
    const order = await apiAs(page, `/api/wallet/insurance-orders?orderId=${orderId}`);
    expect(order.status).toBe(200);
    expect(order.body.data).toMatchObject({ state: 'settled', redeemCode: code, clinicCode: 'CL-1', item: 'OCT', amountFen: 12_000 });
    expect((await counters()).settlements).toBe(before.settlements + 1);

    // an uninsured credential: its code and message in the page's language (Chinese here), nothing charged
    await page.click('#language');
    await page.waitForSelector('#page-wallet h1:has-text("我的服务券")');
    await page.waitForSelector('#insurance');
    await pay('EC-NOBODY-0000');
    await page.waitForSelector('#insurance-failure[data-code="INSURANCE_NOT_INSURED"]');
    expect(await page.textContent('#insurance-failure')).toContain('该医保电子凭证无对应参保人');
    expect(await page.textContent('#insurance-result')).toContain('未扣任何费用');
    expect((await counters()).settlements).toBe(before.settlements + 1);
    // a refusal (bad input) shows its code, never a stack
    await pay('');
    expect(await page.textContent('#insurance-result .error')).toMatch(/^BAD_INPUT|^invalid/);
    await page.context().close();
    expect(cspViolations).toEqual([]);
  }, 60_000);
});
