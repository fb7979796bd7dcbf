/**
 * The HTTP adapter against `tally sim insurance` in its own process: certificate query with the coverage split,
 * settlement under an idempotency key (a retry after a timeout pays once), lookup by key, reversal (the cap is
 * given back), statement, and the faults: down, slow (the settlement is made, the answer late), error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTallyError } from '../../src/errors.js';
import { HttpInsurancePlatform } from '../../src/server/insurance/HttpInsurancePlatform.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';

const CREDENTIAL = 'EC-DEMO-0001';
let platform: PlatformProcess;
let adapter: HttpInsurancePlatform;

beforeAll(async () => {
  platform = await startPlatformProcess();
  adapter = new HttpInsurancePlatform({ url: platform.url, timeoutMs: 1500 });
});
afterAll(async () => platform?.close());

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isTallyError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

const today = () => new Date().toISOString().slice(0, 10);

describe('insurance platform adapter over HTTP to the simulated platform process', () => {
  it('queries a certificate with the split: 30% co-payment rounded up for the patient', async () => {
    const cert = await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 12_345 });
    expect(cert).toMatchObject({ item: 'OCT', amountFen: 12_345, insurerFen: 8641, patientFen: 3704, maskedName: '张*' });
    expect(await codeOf(adapter.queryCertificate({ credential: 'EC-NOBODY', item: 'OCT', amountFen: 100 }))).toBe('INSURANCE_NOT_INSURED');
    expect(await codeOf(adapter.queryCertificate({ credential: CREDENTIAL, item: 'MRI', amountFen: 100 }))).toBe('INSURANCE_NOT_COVERED');
  });

  it('settles once per idempotency key; another request under the key is refused; reversal gives the cap back', async () => {
    const cert = await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 10_000 });
    const request = { idempotencyKey: 'order-A:settle', certificateId: cert.certificateId, item: 'OCT', amountFen: 10_000, orderRef: 'order-A' };
    const first = await adapter.settle(request);
    const again = await adapter.settle(request);
    expect(again.settlementId).toBe(first.settlementId);
    expect(first).toMatchObject({ insurerFen: 7000, patientFen: 3000, status: 'settled', orderRef: 'order-A' });
    expect(await codeOf(adapter.settle({ ...request, amountFen: 9_999 }))).toBe('INSURANCE_IDEMPOTENCY');
    expect((await adapter.findSettlement('order-A:settle'))?.settlementId).toBe(first.settlementId);
    expect(await adapter.findSettlement('order-none:settle')).toBeUndefined();

    const capBefore = (await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 100 })).capLeftFen;
    const reversal = await adapter.reverse('order-A:reverse', first.settlementId);
    expect((await adapter.reverse('order-A:reverse', first.settlementId)).reversalId).toBe(reversal.reversalId);
    expect(await codeOf(adapter.reverse('order-A:reverse-2', first.settlementId))).toBe('INSURANCE_STATE');
    const capAfter = (await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 100 })).capLeftFen;
    expect(capAfter - capBefore).toBe(7000);
    expect((await adapter.findSettlement('order-A:settle'))?.status).toBe('reversed');

    const statement = await adapter.statement(today());
    expect(statement.settlements.filter((s) => s.orderRef === 'order-A')).toHaveLength(1);
    expect(statement.reversals.map((r) => r.settlementId)).toContain(first.settlementId);
  });

  it('the annual cap limits what the insurance pays; the rest is the patient\'s', async () => {
    await platform.admin('/admin/insured', { personId: 'P-CAP', name: 'Li Si', credential: 'EC-CAP' });
    await platform.admin('/admin/rules', { item: 'CT', covered: true, copayPercent: 0, annualCapFen: 5_000 });
    const cert = await adapter.queryCertificate({ credential: 'EC-CAP', item: 'CT', amountFen: 4_000 });
    await adapter.settle({ idempotencyKey: 'order-cap1:settle', certificateId: cert.certificateId, item: 'CT', amountFen: 4_000, orderRef: 'order-cap1' });
    const second = await adapter.queryCertificate({ credential: 'EC-CAP', item: 'CT', amountFen: 4_000 });
    expect(second).toMatchObject({ insurerFen: 1_000, patientFen: 3_000, capLeftFen: 1_000 });
  });

  it('faults: down (connections dropped) is PLATFORM_NO_ANSWER, error is PLATFORM_ERROR, slow is a TIMEOUT after which the key finds the settlement', async () => {
    const cert = await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 5_000 });
    await platform.setFault('down');
    expect(await codeOf(adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 5_000 }))).toBe('INSURANCE_PLATFORM_NO_ANSWER');
    await platform.setFault('error');
    expect(await codeOf(adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 5_000 }))).toBe('INSURANCE_PLATFORM_ERROR');
    await platform.setFault('slow', 5_000);
    const request = { idempotencyKey: 'order-B:settle', certificateId: cert.certificateId, item: 'OCT', amountFen: 5_000, orderRef: 'order-B' };
    expect(await codeOf(adapter.settle(request))).toBe('INSURANCE_PLATFORM_TIMEOUT');
    await platform.setFault('normal');
    const found = await adapter.findSettlement('order-B:settle');
    expect(found?.amountFen).toBe(5_000);
    // the retry after the timeout returns the same settlement: paid once
    expect((await adapter.settle(request)).settlementId).toBe(found?.settlementId);
    const counters = (await platform.admin('/admin/counters')) as { settlements: number };
    const statement = await adapter.statement(today());
    expect(statement.settlements.filter((s) => s.orderRef === 'order-B')).toHaveLength(1);
    expect(counters.settlements).toBe(statement.settlements.length);
  });

  it('survives a SIGKILL: the settlement made before it is there after the restart', async () => {
    const cert = await adapter.queryCertificate({ credential: CREDENTIAL, item: 'OCT', amountFen: 1_000 });
    const made = await adapter.settle({ idempotencyKey: 'order-C:settle', certificateId: cert.certificateId, item: 'OCT', amountFen: 1_000, orderRef: 'order-C' });
    await platform.kill('SIGKILL');
    // nothing listens: the connection is refused, so the request reached nobody
    expect(await codeOf(adapter.findSettlement('order-C:settle'))).toBe('INSURANCE_PLATFORM_DOWN');
    await platform.restart();
    expect((await adapter.findSettlement('order-C:settle'))?.settlementId).toBe(made.settlementId);
  });
});
