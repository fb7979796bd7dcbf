/**
 * The patient's phone page in a real browser (Debian's chromium driven by playwright-core): the link the terminal
 * shows opens the page, which shows the binding code and amount, takes the e-credential, shows what the insurance
 * covers and what is left, and consents; the terminal's poll then gets the voucher. A second phone on the same
 * link sees the refusal with its code; a refusal on the page denies the terminal. No script but the page's own
 * runs (its CSP); the platform is `tally sim insurance` in its own process.
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { startInsuranceRig, type InsuranceRig } from '../support/insuranceRig.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let platform: PlatformProcess;
let rig: InsuranceRig;
let browser: Browser;
const cspViolations: string[] = [];

beforeAll(async () => {
  platform = await startPlatformProcess();
  rig = await startInsuranceRig(platform);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await rig?.close();
  await platform?.close();
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
});
