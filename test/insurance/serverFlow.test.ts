/**
 * Insurance payments at the server, against `tally sim insurance` in its own process: the phone over the HTTP
 * routes, the terminal's requests (MQTT in the product: Ingest.handleInsurance) as calls on the service; the
 * device flow (pending, slow_down, the voucher), the phone (open, quote, consent, refuse, a second phone), expiry,
 * the platform down and slow, a crash while settling found at restart by the key, a token used twice, reversal
 * when the device fails, and the reconciliation. Each money case counts the platform's settlements.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseSettlementVoucher } from '../../src/codecs/settlementVoucher.js';
import { verifySettlementVoucher } from '../../src/crypto/settlementVoucher.js';
import { isTallyError } from '../../src/errors.js';
import { ManualClock } from '../../src/util/clock.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { startInsuranceRig, type InsuranceRig } from '../support/insuranceRig.js';

let platform: PlatformProcess;
let rig: InsuranceRig;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  platform = await startPlatformProcess();
  rig = await startInsuranceRig(platform, { clock, timeoutMs: 1500 });
});
afterAll(async () => {
  await rig?.close();
  await platform?.close();
});
beforeEach(async () => {
  await platform.setFault('normal');
  rig.restartService();
});

interface Answer {
  status: number;
  body: { status?: string; data?: Record<string, unknown>; error?: unknown; voucher?: string; interval?: number; reason?: string } & Record<string, unknown>;
}

async function post(path: string, body: unknown, phone?: string): Promise<Answer & { cookie?: string }> {
  const res = await fetch(`${rig.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(phone ? { cookie: phone } : {}) }, body: JSON.stringify(body) });
  const cookie = res.headers.get('set-cookie')?.split(';')[0];
  return { status: res.status, body: (await res.json()) as Answer['body'], ...(cookie ? { cookie } : {}) };
}

const start = (amountFen = 10_000, terminalId = 'T-1') => rig.service.start({ terminalId, item: 'OCT', amountFen });
const poll = (deviceCode: string) => rig.service.poll(deviceCode, 'T-1');
const settlements = async () => {
  const c = (await platform.admin('/admin/counters')) as { settlements: number; reversed: number };
  return { settlements: c.settlements, reversed: c.reversed };
};

/** Opens the link on a fresh phone, quotes and consents; returns the phone's cookie */
async function payOnPhone(code: string): Promise<string> {
  const opened = await post('/api/insurance/phone/open', { code });
  expect(opened.status).toBe(200);
  const phone = opened.cookie!;
  const quote = await post('/api/insurance/phone/quote', { code, credential: 'EC-DEMO-0001' }, phone);
  expect(quote.status, JSON.stringify(quote.body)).toBe(200);
  await post('/api/insurance/phone/consent', { code }, phone);
  return phone;
}

describe('insurance payments at the server', () => {
  it('the device flow: pending, slow_down raises the interval, the phone consents, the voucher verifies for this terminal', async () => {
    const auth = await start(10_000);
    expect(auth.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(auth.verification_uri_complete).toBe(`${rig.url}/pay?code=${auth.user_code}`);
    expect(auth.binding_code).toBe(`${auth.orderId.slice(-4).toUpperCase()} ¥100.00`);
    expect(await poll(auth.device_code)).toMatchObject({ error: 'authorization_pending', interval: 1 });
    expect(await poll(auth.device_code)).toMatchObject({ error: 'slow_down', interval: 6 });
    clock.advance(6_000);

    const before = (await settlements()).settlements;
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    expect(opened.body.data).toMatchObject({ state: 'opened', amountFen: 10_000, bindingCode: auth.binding_code });
    const phone = opened.cookie!;
    const quote = await post('/api/insurance/phone/quote', { code: auth.user_code, credential: 'EC-DEMO-0001' }, phone);
    expect(quote.body.data).toMatchObject({ insurerFen: 7_000, patientFen: 3_000, maskedName: '张*' });
    const consent = await post('/api/insurance/phone/consent', { code: auth.user_code }, phone);
    expect(consent.body.data).toMatchObject({ state: 'settled' });
    expect((await settlements()).settlements).toBe(before + 1);

    const done = await poll(auth.device_code);
    expect(done).toMatchObject({ orderId: auth.orderId });
    const voucher = parseSettlementVoucher((done as { voucher: string }).voucher);
    const fields = verifySettlementVoucher(voucher, rig.investor.rootPublicKey, { terminalId: 'T-1', now: clock.now(), orderId: auth.orderId });
    expect(fields).toMatchObject({ orderId: auth.orderId, amountFen: 10_000, insurerFen: 7_000, patientFen: 3_000, serverId: 'SRV-INS' });
    expect(() => verifySettlementVoucher(voucher, rig.investor.rootPublicKey, { terminalId: 'T-2', now: clock.now() })).toThrow(expect.objectContaining({ code: 'SETTLEMENT_VOUCHER_OTHER_TERMINAL' }));
    expect(() => verifySettlementVoucher(voucher, rig.investor.rootPublicKey, { terminalId: 'T-1', now: fields.expiresAt })).toThrow(expect.objectContaining({ code: 'SETTLEMENT_VOUCHER_EXPIRED' }));
    const forged = { ...voucher, body: voucher.body.replace('"amountFen":10000', '"amountFen":1000').replace('"insurerFen":7000', '"insurerFen":-2000') };
    expect(() => verifySettlementVoucher(forged, rig.investor.rootPublicKey, { terminalId: 'T-1', now: clock.now() })).toThrow(expect.objectContaining({ code: 'SETTLEMENT_VOUCHER_FORGED' }));

    // the use ran on the terminal, and its ledger entry names the order: reconciled clean
    await rig.service.outcome(auth.orderId, 'T-1', true);
    const day = new Date().toISOString().slice(0, 10);
    const clean = await rig.service.reconcile(day, new Set([auth.orderId]));
    expect(clean.mismatches.filter((m) => m.orderId === auth.orderId)).toEqual([]);
    const missing = await rig.service.reconcile(day, new Set());
    expect(missing.mismatches.filter((m) => m.orderId === auth.orderId).map((m) => m.kind)).toEqual(['used-without-ledger-use']);
  });

  it('two phones on one link: the second is refused with INSURANCE_LINK_TAKEN, and cannot consent', async () => {
    const auth = await start();
    const first = await post('/api/insurance/phone/open', { code: auth.user_code });
    expect(first.status).toBe(200);
    const second = await post('/api/insurance/phone/open', { code: auth.user_code.replace('-', '').toLowerCase() });
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({ code: 'INSURANCE_LINK_TAKEN', number: 6609 });
    const consent = await post('/api/insurance/phone/consent', { code: auth.user_code }, second.cookie);
    expect(consent.body.error).toMatchObject({ code: 'INSURANCE_LINK_TAKEN' });
  });

  it('the patient refuses: access_denied with the reason, nothing settled', async () => {
    const auth = await start();
    const before = await settlements();
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    await post('/api/insurance/phone/refuse', { code: auth.user_code }, opened.cookie);
    clock.advance(2_000);
    expect(await poll(auth.device_code)).toMatchObject({ error: 'access_denied', reason: 'INSURANCE_REFUSED_BY_PATIENT' });
    expect(await settlements()).toEqual(before);
  });

  it('the code expires: expired_token for the terminal, 410 for a phone', async () => {
    const auth = await start();
    clock.advance(auth.expires_in * 1000);
    expect(await poll(auth.device_code)).toMatchObject({ error: 'expired_token' });
    const late = await post('/api/insurance/phone/open', { code: auth.user_code });
    expect(late.status).toBe(410);
    expect(late.body.error).toMatchObject({ code: 'INSURANCE_CODE_EXPIRED_SERVER' });
  });

  it('platform down at consent (no connection): the order fails cleanly with the reason, nothing settled', async () => {
    const auth = await start();
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    await post('/api/insurance/phone/quote', { code: auth.user_code, credential: 'EC-DEMO-0001' }, opened.cookie);
    const before = await settlements();
    // a platform whose process is gone refuses the connection: the request reached nobody
    await platform.kill('SIGKILL');
    const consent = await post('/api/insurance/phone/consent', { code: auth.user_code }, opened.cookie);
    await platform.restart();
    expect(consent.body.data).toMatchObject({ state: 'failed', failure: 'INSURANCE_PLATFORM_DOWN' });
    clock.advance(2_000);
    expect(await poll(auth.device_code)).toMatchObject({ error: 'access_denied', reason: 'INSURANCE_PLATFORM_DOWN' });
    expect(await settlements()).toEqual(before);
  });

  it('platform dropping connections at consent: the settlement may have been made, so the order waits; the lookup by its key finds none: failed, nothing settled', async () => {
    const auth = await start();
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    await post('/api/insurance/phone/quote', { code: auth.user_code, credential: 'EC-DEMO-0001' }, opened.cookie);
    const before = await settlements();
    await platform.setFault('down');
    const consent = await post('/api/insurance/phone/consent', { code: auth.user_code }, opened.cookie);
    // a dropped connection does not say whether the platform did the work: not failed (that could lose a payment), settling
    expect(consent.body.data).toMatchObject({ state: 'settling' });
    expect(await rig.service.recover()).toEqual({ settled: 0, failed: 0, unresolved: 1 });
    await platform.setFault('normal');
    expect(await rig.service.recover()).toEqual({ settled: 0, failed: 1, unresolved: 0 });
    clock.advance(2_000);
    expect(await poll(auth.device_code)).toMatchObject({ error: 'access_denied', reason: 'INSURANCE_FAILED' });
    expect(await settlements()).toEqual(before);
  });

  it('a server that died between the consent and the settlement (consented, no settlement key): the sweep expires it with the code, nothing settled', async () => {
    const auth = await start();
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    await post('/api/insurance/phone/quote', { code: auth.user_code, credential: 'EC-DEMO-0001' }, opened.cookie);
    const before = await settlements();
    // what the consent's first update leaves when the process dies before the second (consented -> settling, with the key)
    expect(await rig.store.insurance.transition(auth.orderId, ['opened'], 'consented', { tokenHash: 'ab'.repeat(32) }, clock.now())).toBe(true);
    await rig.service.sweep();
    expect((await rig.store.insurance.order(auth.orderId))?.state).toBe('consented');
    clock.advance(auth.expires_in * 1000);
    expect((await rig.service.sweep()).expired).toBeGreaterThanOrEqual(1);
    expect((await rig.store.insurance.order(auth.orderId))).toMatchObject({ state: 'expired', failure: 'INSURANCE_CODE_EXPIRED' });
    expect(await poll(auth.device_code)).toMatchObject({ error: 'expired_token' });
    expect(await settlements()).toEqual(before);
  });

  it('platform slow: the settlement times out, is found by its key, and is paid once', async () => {
    const auth = await start();
    const opened = await post('/api/insurance/phone/open', { code: auth.user_code });
    await post('/api/insurance/phone/quote', { code: auth.user_code, credential: 'EC-DEMO-0001' }, opened.cookie);
    const before = (await settlements()).settlements;
    // the settle answer is late (committed first); the lookup by key answers in time
    await platform.setFault('slow', 2_500);
    const consenting = post('/api/insurance/phone/consent', { code: auth.user_code }, opened.cookie);
    // the lookup after the timeout runs while slow: it also times out, so the order stays settling
    const stuck = await consenting;
    expect(stuck.body.data).toMatchObject({ state: 'settling' });
    expect((await settlements()).settlements).toBe(before + 1);
    await platform.setFault('normal');
    // the server crashes here; the next start finds the settlement by its key
    const restarted = rig.restartService();
    expect(await restarted.recover()).toEqual({ settled: 1, failed: 0, unresolved: 0 });
    clock.advance(2_000);
    expect(await poll(auth.device_code)).toHaveProperty('voucher');
    expect((await settlements()).settlements).toBe(before + 1);
  });

  it('a token used twice, or a token not the order\'s, settles nothing more', async () => {
    const auth = await start();
    await payOnPhone(auth.user_code);
    const order = (await rig.store.insurance.order(auth.orderId))!;
    expect(order.state).toBe('settled');
    const before = (await settlements()).settlements;
    await expect(rig.service.settle(auth.orderId, 'not-the-token')).rejects.toMatchObject({ code: 'INSURANCE_TOKEN_INVALID' });
    // the one conditional update that spends a token moves consented -> settling once
    expect(await rig.store.insurance.transition(auth.orderId, ['consented'], 'settling', {}, clock.now())).toBe(false);
    const again = await post('/api/insurance/phone/consent', { code: auth.user_code }, undefined);
    expect(again.status).toBe(409);
    expect((await settlements()).settlements).toBe(before);
  });

  it('the device fails: the settlement is reversed with the platform, and reconciles', async () => {
    const auth = await start(20_000);
    await payOnPhone(auth.user_code);
    const before = await settlements();
    expect(await rig.service.outcome(auth.orderId, 'T-1', false)).toMatchObject({ state: 'reversed' });
    // the terminal sends it again (lost ack): no second reversal
    await rig.service.outcome(auth.orderId, 'T-1', false);
    expect(await settlements()).toEqual({ ...before, reversed: before.reversed + 1 });
    await expect(rig.service.outcome(auth.orderId, 'T-9', true)).rejects.toMatchObject({ code: 'INSURANCE_UNKNOWN_ORDER' });
    const report = await rig.service.reconcile(new Date().toISOString().slice(0, 10), new Set());
    expect(report.mismatches.filter((m) => m.orderId === auth.orderId)).toEqual([]);
  });

  it('a voucher no terminal used is reversed when it expires; the reconciliation listed it until then', async () => {
    const auth = await start(30_000);
    await payOnPhone(auth.user_code);
    const day = new Date().toISOString().slice(0, 10);
    clock.advance(11 * 60_000);
    expect((await rig.service.reconcile(day, new Set())).mismatches.filter((m) => m.orderId === auth.orderId).map((m) => m.kind)).toEqual(['settled-not-used']);
    // within the grace after the expiry a terminal may still be delivering the use: not reversed yet
    expect((await rig.service.sweep()).reversed).toBe(0);
    clock.advance(10 * 60_000);
    const swept = await rig.service.sweep();
    expect(swept.reversed).toBeGreaterThanOrEqual(1);
    expect((await rig.store.insurance.order(auth.orderId))?.state).toBe('reversed');
    expect((await rig.service.reconcile(day, new Set())).mismatches.filter((m) => m.orderId === auth.orderId)).toEqual([]);
  });

  it('a platform settlement this server never recorded, and a ledger use without a settlement, are listed', async () => {
    const cert = (await (await fetch(`${platform.url}/v1/certificates/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ credential: 'EC-DEMO-0001', item: 'OCT', amountFen: 500 }) })).json()) as { data: { certificateId: string } };
    await fetch(`${platform.url}/v1/settlements`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'stranger:settle' }, body: JSON.stringify({ certificateId: cert.data.certificateId, item: 'OCT', amountFen: 500, orderRef: 'INS-stranger' }) });
    const report = await rig.service.reconcile(new Date().toISOString().slice(0, 10), new Set(['INS-ghost']));
    expect(report.mismatches.map((m) => m.kind)).toEqual(expect.arrayContaining(['platform-settlement-without-order', 'ledger-use-without-settlement']));
    expect(isTallyError(new Error('x'))).toBe(false);
  });
});
