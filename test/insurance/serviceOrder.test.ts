/**
 * Seed 001's entry point, end to end: the patient's booking app (a patient user of the console, its wallet the
 * session's) asks the server to pay a service order (an OCT exam at clinic CL-1) with the e-credential; the server
 * queries the certificate and settles with `tally sim insurance` (its own process) under the order's idempotency
 * key and feeds the result back with a redemption code; the order is then redeemed at a terminal of that clinic
 * (on the simulated board over the real serial protocol, its link MQTT) like a voucher: the server binds it to
 * the terminal and answers the settlement voucher, the terminal verifies it, records the use and runs the device,
 * the outcome makes the order used, and the day reconciles clean. A second redemption, another clinic's terminal,
 * an uninsured credential and another wallet's lookup are refused with their codes and change no money.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { saveClinic, saveTerminal } from '../../src/server/registry/registryAdmin.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { JOURNEY_ADMIN_TOKEN, startJourney, waitUntil, type Journey } from '../support/insuranceJourney.js';

const PASSWORD = 'correct horse battery staple';
let platform: PlatformProcess;
let journey: Journey;

beforeAll(async () => {
  platform = await startPlatformProcess();
  journey = await startJourney(platform);
  const now = Date.now();
  await saveClinic(journey.store.registry, { clinicCode: 'CL-1', name: 'Clinic one' }, now);
  await saveClinic(journey.store.registry, { clinicCode: 'CL-2', name: 'Clinic two' }, now);
  await saveTerminal(journey.store.registry, { terminalId: journey.terminalId, clinicCode: 'CL-1' }, now);
  await addUser(journey.store, { username: 'patient-a', role: 'patient', wallet: 'W-A', password: PASSWORD }, now, 'logged-by-caller');
  await addUser(journey.store, { username: 'patient-b', role: 'patient', wallet: 'W-B', password: PASSWORD }, now, 'logged-by-caller');
}, 60_000);
afterAll(async () => {
  await journey?.close();
  await platform?.close();
});

/** The booking app's session: the cookie and its CSRF token */
async function bookingApp(username: string) {
  const res = await fetch(`${journey.httpUrl}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) });
  expect(res.status).toBe(200);
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  const csrf = ((await res.json()) as { data: { csrf: string } }).data.csrf;
  return {
    pay: async (body: Record<string, unknown>) => {
      const answer = await fetch(`${journey.httpUrl}/api/wallet/insurance-orders`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf }, body: JSON.stringify(body) });
      return { status: answer.status, body: (await answer.json()) as { data?: Record<string, unknown>; error?: { code: string; number?: number } } };
    },
    order: async (orderId: string) => {
      const answer = await fetch(`${journey.httpUrl}/api/wallet/insurance-orders?orderId=${orderId}`, { headers: { cookie } });
      return { status: answer.status, body: (await answer.json()) as { data?: Record<string, unknown>; error?: { code: string } } };
    },
  };
}

const counters = async () => {
  const c = (await platform.admin('/admin/counters')) as { settlements: number; reversed: number };
  return { settlements: c.settlements, reversed: c.reversed };
};

describe('a service order paid in the booking app, redeemed at the terminal', () => {
  it('pays through the platform, feeds the result back, is redeemed once at a CL-1 terminal, used and reconciled', async () => {
    const app = await bookingApp('patient-a');
    const before = await counters();
    const paid = await app.pay({ clinicCode: 'CL-1', item: 'OCT', amountFen: 12_000, credential: 'EC-DEMO-0001' });
    expect(paid.status, JSON.stringify(paid.body)).toBe(201);
    expect(paid.body.data).toMatchObject({ state: 'settled', clinicCode: 'CL-1', item: 'OCT', amountFen: 12_000, insurerFen: expect.any(Number), patientFen: expect.any(Number), redeemCode: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/) });
    const { orderId, redeemCode, insurerFen, patientFen } = paid.body.data as { orderId: string; redeemCode: string; insurerFen: number; patientFen: number };
    expect(insurerFen + patientFen).toBe(12_000);
    expect(await counters()).toEqual({ ...before, settlements: before.settlements + 1 });
    // the audit log has the order, never the credential
    const audit = await journey.store.access.audit(20);
    const entry = audit.find((a) => a.action === 'wallet.insurance-order');
    expect(entry?.target).toBe(orderId);
    expect(JSON.stringify(entry)).not.toContain('EC-DEMO-0001');

    // another wallet cannot see it
    expect((await (await bookingApp('patient-b')).order(orderId)).body.error?.code).toBe('INSURANCE_UNKNOWN_ORDER');

    // at the terminal: the operator types the code; the voucher is checked, the use recorded, the device runs
    const ledger = journey.terminal.rig.terminal.ledger;
    const outcome = await journey.terminal.payment.redeem(redeemCode.toLowerCase());
    expect(outcome, JSON.stringify(outcome)).toMatchObject({ ok: true, action: 'insurance', orderId, amountFen: 12_000 });
    await journey.terminal.rig.deviceIdle();
    expect(ledger.settlementUse(orderId)).toMatchObject({ state: 'completed' });
    await waitUntil('the order is used at the server', async () => (await journey.store.insurance.order(orderId))?.state === 'used');
    expect((await app.order(orderId)).body.data).toMatchObject({ state: 'used', redeemedAt: journey.terminalId });
    expect((await app.order(orderId)).body.data).not.toHaveProperty('redeemCode');

    // the code again: refused, nothing more
    const head = ledger.lastSeq();
    const again = await journey.terminal.payment.redeem(redeemCode);
    expect(again).toMatchObject({ ok: false, code: 'INSURANCE_SERVICE_ORDER_REDEEMED' });
    expect(ledger.entriesFrom(head + 1, 10).map((e) => parseLedgerEntry(e.raw).type)).not.toContain(EntryType.SETTLEMENT_RESERVED);
    expect(await counters()).toEqual({ ...before, settlements: before.settlements + 1 });

    const day = new Date().toISOString().slice(0, 10);
    await waitUntil('the ledger use reached the server', async () => (await journey.store.insurance.ledgerSettlementUses(day)).length > 0);
    const report = (await (await fetch(`${journey.httpUrl}/api/insurance/reconcile?day=${day}`, { headers: { authorization: `Bearer ${JOURNEY_ADMIN_TOKEN}` } })).json()) as { data: { mismatches: { orderId?: string; kind: string }[] } };
    expect(report.data.mismatches.filter((m) => m.orderId === orderId)).toEqual([]);
  });

  it("another clinic's order is refused at this terminal and stays paid; an uninsured credential is not charged", async () => {
    const app = await bookingApp('patient-a');
    const other = await app.pay({ clinicCode: 'CL-2', item: 'OCT', amountFen: 5_000, credential: 'EC-DEMO-0001' });
    expect(other.body.data).toMatchObject({ state: 'settled' });
    const { orderId, redeemCode } = other.body.data as { orderId: string; redeemCode: string };
    const before = await counters();
    const refused = await journey.terminal.payment.redeem(redeemCode);
    expect(refused).toMatchObject({ ok: false, code: 'INSURANCE_SERVICE_ORDER_OTHER_CLINIC' });
    expect((await journey.store.insurance.order(orderId))).toMatchObject({ state: 'settled', terminalId: '' });
    expect(journey.terminal.rig.terminal.ledger.settlementUse(orderId)).toBeUndefined();

    const uninsured = await app.pay({ clinicCode: 'CL-1', item: 'OCT', amountFen: 5_000, credential: 'EC-NOBODY-0000' });
    expect(uninsured.status).toBe(201);
    expect(uninsured.body.data).toMatchObject({ state: 'failed', failure: 'INSURANCE_NOT_INSURED' });
    expect(uninsured.body.data).not.toHaveProperty('redeemCode');
    expect(await counters()).toEqual(before);
  });
});
