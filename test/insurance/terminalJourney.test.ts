/**
 * The insurance payment at the terminal, end to end: the operator starts it, the terminal asks the server over its
 * MQTT link, the simulated board shows the QR (DISPLAY_QR over the real serial protocol) and jsQR decodes the
 * board's pixels back to the verification link; the phone consents over HTTP; the voucher is pushed, verified with
 * the root, written as settlement.reserved (both verifiers agree), the device runs, the outcome reaches the server
 * and the day reconciles clean against `tally sim insurance` in its own process. Then the refusals at the terminal:
 * the patient refuses, an unknown e-credential, the link down (INSURANCE_OFFLINE, zh/en), nothing written.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { toHex } from '../../src/codecs/bytes.js';
import { operatorMessage } from '../../src/errors.js';
import type { InsuranceProgress } from '../../src/terminal/InsurancePayment.js';
import { decodeBoardQr, JOURNEY_ADMIN_TOKEN, phonePays, startJourney, waitUntil, type Journey } from '../support/insuranceJourney.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { comparable, python } from '../support/pythonVerifier.js';

let platform: PlatformProcess;
let journey: Journey;

beforeAll(async () => {
  platform = await startPlatformProcess();
  journey = await startJourney(platform);
}, 60_000);
afterAll(async () => {
  await journey?.close();
  await platform?.close();
});

const counters = async () => {
  const c = (await platform.admin('/admin/counters')) as { settlements: number; reversed: number };
  return { settlements: c.settlements, reversed: c.reversed };
};

/** Starts a payment and resolves once the board shows its QR */
function startPayment(amountFen = 12_000) {
  let shown: (e: Extract<InsuranceProgress, { type: 'qr' }>) => void;
  const qr = new Promise<Extract<InsuranceProgress, { type: 'qr' }>>((resolve) => (shown = resolve));
  const events: InsuranceProgress[] = [];
  const outcome = journey.terminal.payment.pay({ item: 'OCT', amountFen }, (e) => {
    events.push(e);
    if (e.type === 'qr') shown(e);
  });
  return { qr, outcome, events };
}

describe('an insurance payment at the terminal', () => {
  it('QR on the board decodes to the link, the phone consents, the voucher is verified, recorded and used; the day reconciles', async () => {
    const before = await counters();
    const headBefore = journey.terminal.rig.terminal.ledger.lastSeq();
    const { qr, outcome, events } = startPayment();
    const shown = await qr;
    // what a camera reads off the board's display is the link the server gave, with the user code in it
    const decoded = decodeBoardQr(journey.terminal.rig);
    expect(decoded).toBe(shown.qr.text);
    expect(decoded).toBe(`${journey.httpUrl}/pay?code=${shown.userCode}`);
    const board = journey.terminal.rig.firmware.panel;
    expect(board.lines).toEqual([shown.userCode, shown.bindingCode]);
    expect(shown.bindingCode).toBe(`${shown.orderId.slice(-4).toUpperCase()} ¥120.00`);

    const userCode = new URL(decoded!).searchParams.get('code')!;
    const consent = await phonePays(journey.httpUrl, userCode);
    expect(consent.status, JSON.stringify(consent.body)).toBe(200);
    const result = await outcome;
    expect(result).toMatchObject({ ok: true, action: 'insurance', orderId: shown.orderId, item: 'OCT', amountFen: 12_000 });
    if (!result.ok || result.action !== 'insurance') throw new Error('not paid');
    expect(result.insurerFen + result.patientFen).toBe(12_000);
    // pushed as soon as it was settled: the terminal did not have to poll for it
    expect(events.find((e) => e.type === 'voucher')).toMatchObject({ via: 'push' });
    expect((await counters()).settlements).toBe(before.settlements + 1);

    await journey.terminal.rig.deviceIdle();
    const ledger = journey.terminal.rig.terminal.ledger;
    const entries = ledger.entriesFrom(headBefore + 1, 10).map((e) => parseLedgerEntry(e.raw));
    expect(entries.map((e) => e.type)).toEqual([EntryType.SETTLEMENT_RESERVED, EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(entries[0]!.detail).toBe(shown.orderId);
    expect(ledger.settlementUse(shown.orderId)).toMatchObject({ state: 'completed' });

    // the outcome and the entries reach the server; the order is used and the day reconciles clean
    await waitUntil('the order used at the server', async () => (await journey.store.insurance.order(shown.orderId))?.state === 'used');
    await journey.terminal.sync.client.drained(15_000);
    await waitUntil('the outcome acknowledged', () => ledger.settlementOutcomesDue().length === 0);
    const day = new Date().toISOString().slice(0, 10);
    const report = (await (await fetch(`${journey.httpUrl}/api/insurance/reconcile?day=${day}`, { headers: { authorization: `Bearer ${JOURNEY_ADMIN_TOKEN}` } })).json()) as { data: { mismatches: { orderId?: string; kind: string }[] } };
    expect(report.data.mismatches).toEqual([]);

    // both verifiers agree on the ledger with its settlement use
    const ts = ledger.verify();
    expect(ts.ok).toBe(true);
    const py = python('--db', join(journey.dataDir, 'terminal.db'), '--root', toHex(journey.investor.rootPublicKey), '--json');
    expect(py.stderr).toBe('');
    expect(comparable(JSON.parse(py.stdout))).toEqual(comparable(ts));
  }, 60_000);

  it('the patient refuses: INSURANCE_REFUSED_BY_PATIENT at the terminal, nothing written, nothing charged', async () => {
    const before = await counters();
    const head = journey.terminal.rig.terminal.ledger.lastSeq();
    const { qr, outcome } = startPayment();
    const shown = await qr;
    expect((await phonePays(journey.httpUrl, shown.userCode, { refuse: true })).status).toBe(200);
    const result = await outcome;
    expect(result).toMatchObject({ ok: false, code: 'INSURANCE_REFUSED_BY_PATIENT', message: operatorMessage('INSURANCE_REFUSED_BY_PATIENT', 'en') });
    expect(journey.terminal.rig.terminal.ledger.lastSeq()).toBe(head);
    expect(await counters()).toEqual(before);
  }, 30_000);

  it('the link down: INSURANCE_OFFLINE with its zh/en message and a recorded refusal, nothing asked or written', async () => {
    const terminal = journey.terminal.rig.terminal;
    const head = terminal.ledger.lastSeq();
    const refusalsBefore = terminal.ledger.refusalCounts().INSURANCE_OFFLINE ?? 0;
    await journey.terminal.sync.stop();
    const result = await journey.terminal.payment.pay({ item: 'OCT', amountFen: 12_000 });
    expect(result).toMatchObject({ ok: false, code: 'INSURANCE_OFFLINE' });
    expect(operatorMessage('INSURANCE_OFFLINE', 'zh')).toContain('离线');
    expect(terminal.ledger.lastSeq()).toBe(head);
    expect(terminal.ledger.refusalCounts().INSURANCE_OFFLINE).toBe(refusalsBefore + 1);
    await journey.restartTerminal();
  }, 30_000);
});
