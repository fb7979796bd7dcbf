/**
 * InsurancePayment at the terminal with its time driven by hand (ManualScheduler) and the server a scripted
 * InsuranceLink: the poll waits the interval the server set and no less, slow_down makes it longer from then on, a
 * pushed voucher ends the wait at once with no further poll, and a code whose life ends without an answer is
 * INSURANCE_CODE_EXPIRED (INSURANCE_OFFLINE with the link down). Then each settlement voucher the terminal must
 * refuse, on a real Terminal (ledger, root, device key): forged, for another terminal, expired, for another order,
 * replayed; each with its code, both operator messages and a recorded refusal, and no use written.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSettlementVoucher, type SettlementVoucherFields } from '../../src/codecs/settlementVoucher.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { signSettlementVoucher } from '../../src/crypto/settlementVoucher.js';
import { operatorMessage, type ErrorName } from '../../src/errors.js';
import { InsurancePayment, type InsuranceAuthorization, type InsuranceLink, type InsurancePoll } from '../../src/terminal/InsurancePayment.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { ManualScheduler } from '../../src/util/scheduler.js';
import { certifiedServerKey } from '../support/insuranceRig.js';
import { useScratch } from '../support/scratch.js';
import { makeInvestor, provisionDataDir } from '../support/signedLedger.js';

const { cleanups, scratch } = useScratch();
const TERMINAL_ID = 'T-PAY-1';

/** A provisioned terminal (no relay: a use completes at once) and a server key its root certifies */
function world() {
  const investor = makeInvestor();
  const dataDir = join(scratch(), 'terminal');
  provisionDataDir(investor, dataDir, TERMINAL_ID);
  const terminal = Terminal.open({ dataDir, locale: 'en' });
  cleanups.push(() => terminal.close());
  const signer = certifiedServerKey(investor);
  const voucher = (fields: Partial<SettlementVoucherFields> = {}, key = signer.key): string =>
    encodeSettlementVoucher(
      signSettlementVoucher(key, signer.certificate, {
        orderId: 'INS-000000000001',
        orderHash: '00'.repeat(32),
        terminalId: TERMINAL_ID,
        item: 'OCT',
        amountFen: 12_000,
        insurerFen: 8_400,
        patientFen: 3_600,
        settlementId: 'STL-1',
        issuedAt: Date.now(),
        expiresAt: Date.now() + 600_000,
        ...fields,
      }),
    );
  return { terminal, voucher };
}

const AUTH: InsuranceAuthorization = {
  orderId: 'INS-000000000001',
  deviceCode: 'device-code',
  userCode: 'BCDF-GHJK',
  verificationUri: 'http://127.0.0.1/pay',
  verificationUriComplete: 'http://127.0.0.1/pay?code=BCDF-GHJK',
  bindingCode: '0001 ¥120.00',
  expiresIn: 300,
  interval: 5,
};

/** A server that answers polls from a script (the last answer repeats); polls are timed on the scheduler */
function scriptedLink(clock: ManualScheduler, answers: (InsurancePoll | undefined)[], options: { online?: () => boolean } = {}) {
  const pollTimes: number[] = [];
  const listeners = new Set<(orderId: string, voucher: string) => void>();
  const link: InsuranceLink = {
    online: options.online ?? (() => true),
    start: () => Promise.resolve(AUTH),
    poll: () => {
      pollTimes.push(clock.now());
      return Promise.resolve(answers.length > 1 ? answers.shift() : answers[0]);
    },
    outcome: () => Promise.resolve(true),
    redeem: () => Promise.resolve(undefined),
    onVoucher: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return { link, pollTimes, push: (orderId: string, voucher: string) => listeners.forEach((l) => l(orderId, voucher)) };
}

/** Lets the payment's promise chain run up to its next timer */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

describe('InsurancePayment: the poll interval, slow_down, the push, expiry (ManualScheduler)', () => {
  it('polls at the interval the server set, never sooner; slow_down makes every later wait longer', async () => {
    const { terminal, voucher } = world();
    const clock = new ManualScheduler(1_000_000);
    const { link, pollTimes } = scriptedLink(clock, [
      { pending: 'authorization_pending', interval: 5 },
      { pending: 'slow_down', interval: 10 },
      { pending: 'authorization_pending', interval: 10 },
      { orderId: AUTH.orderId, voucher: voucher() },
    ]);
    const payment = new InsurancePayment({ terminal, link, clock });
    const events: string[] = [];
    const paying = payment.pay({ item: 'OCT', amountFen: 12_000 }, (e) => events.push(e.type === 'poll' ? `poll ${e.answer} ${e.interval}` : e.type));
    await settle();
    expect(events).toEqual(['qr']);
    clock.advance(4_999);
    await settle();
    expect(pollTimes).toEqual([]);
    clock.advance(1);
    await settle();
    expect(pollTimes).toEqual([1_005_000]);
    // the second poll 5 s after the first: answered slow_down (interval 10 from now on)
    clock.advance(5_000);
    await settle();
    expect(pollTimes).toEqual([1_005_000, 1_010_000]);
    clock.advance(9_999);
    await settle();
    expect(pollTimes).toHaveLength(2);
    clock.advance(1);
    await settle();
    expect(pollTimes).toEqual([1_005_000, 1_010_000, 1_020_000]);
    clock.advance(10_000);
    await settle();
    expect(pollTimes).toEqual([1_005_000, 1_010_000, 1_020_000, 1_030_000]);
    const outcome = await paying;
    expect(outcome).toMatchObject({ ok: true, action: 'insurance', orderId: AUTH.orderId });
    expect(events).toEqual(['qr', 'poll authorization_pending 5', 'poll slow_down 10', 'poll authorization_pending 10', 'voucher']);
    expect(payment.polls).toBe(4);
    expect(terminal.ledger.settlementUse(AUTH.orderId)?.state).toBe('completed');
  });

  it('a pushed voucher ends the wait at once: no poll after it', async () => {
    const { terminal, voucher } = world();
    const clock = new ManualScheduler(0);
    const { link, pollTimes, push } = scriptedLink(clock, [{ pending: 'authorization_pending', interval: 5 }]);
    const payment = new InsurancePayment({ terminal, link, clock });
    const paying = payment.pay({ item: 'OCT', amountFen: 12_000 });
    await settle();
    clock.advance(5_000);
    await settle();
    expect(pollTimes).toEqual([5_000]);
    clock.advance(2_000);
    // a voucher for another order does not end it
    push('INS-OTHER', voucher({ orderId: 'INS-OTHER' }));
    await settle();
    push(AUTH.orderId, voucher());
    const outcome = await paying;
    expect(outcome).toMatchObject({ ok: true, orderId: AUTH.orderId });
    expect(pollTimes).toEqual([5_000]);
    expect(clock.pending()).toBe(0);
  });

  it('no answer until the code expires: INSURANCE_CODE_EXPIRED online, INSURANCE_OFFLINE with the link down; nothing written', async () => {
    for (const [online, code] of [
      [true, 'INSURANCE_CODE_EXPIRED'],
      [false, 'INSURANCE_OFFLINE'],
    ] as const) {
      const { terminal } = world();
      const clock = new ManualScheduler(0);
      let up = true;
      const { link, pollTimes } = scriptedLink(clock, [undefined], { online: () => up });
      const payment = new InsurancePayment({ terminal, link, clock });
      const paying = payment.pay({ item: 'OCT', amountFen: 12_000 });
      await settle();
      up = online;
      // one poll each interval, unanswered, up to the code's life (300 s)
      for (let t = 0; t < 300_000; t += 5_000) {
        clock.advance(5_000);
        await settle();
      }
      const outcome = await paying;
      expect(outcome).toMatchObject({ ok: false, code });
      expect(pollTimes).toHaveLength(60);
      expect(terminal.ledger.settlementUse(AUTH.orderId)).toBeUndefined();
      expect(terminal.ledger.refusalCounts()[code]).toBe(1);
    }
  });

  it('expired_token and access_denied from the server end the payment with their codes', async () => {
    for (const [answer, code] of [
      [{ pending: 'expired_token', interval: 5 }, 'INSURANCE_CODE_EXPIRED'],
      [{ pending: 'access_denied', interval: 5, reason: 'INSURANCE_REFUSED_BY_PATIENT' }, 'INSURANCE_REFUSED_BY_PATIENT'],
    ] as const) {
      const { terminal } = world();
      const clock = new ManualScheduler(0);
      const { link } = scriptedLink(clock, [answer]);
      const paying = new InsurancePayment({ terminal, link, clock }).pay({ item: 'OCT', amountFen: 12_000 });
      await settle();
      clock.advance(5_000);
      expect(await paying).toMatchObject({ ok: false, code, message: operatorMessage(code, 'en') });
    }
  });
});

describe('settlement vouchers the terminal refuses (nothing written)', () => {
  it('forged, another terminal, expired, another order, replayed: each with its code, both messages, a recorded refusal', async () => {
    const { terminal, voucher } = world();
    const cases: [string, string, ErrorName, { orderId?: string }][] = [
      ['signed by a key the root did not certify', voucher({}, generateSigningKey().privateKey), 'SETTLEMENT_VOUCHER_FORGED', { orderId: AUTH.orderId }],
      ['for another terminal', voucher({ terminalId: 'T-OTHER' }), 'SETTLEMENT_VOUCHER_OTHER_TERMINAL', { orderId: AUTH.orderId }],
      ['expired', voucher({ issuedAt: Date.now() - 700_000, expiresAt: Date.now() - 100_000 }), 'SETTLEMENT_VOUCHER_EXPIRED', { orderId: AUTH.orderId }],
      ['for another order than the one shown', voucher({ orderId: 'INS-OTHER' }), 'SETTLEMENT_VOUCHER_WRONG_ORDER', { orderId: AUTH.orderId }],
    ];
    const before = terminal.ledger.lastSeq();
    for (const [what, text, code, expect_] of cases) {
      const outcome = await terminal.handleSettlement(text, expect_);
      expect(outcome, what).toMatchObject({ ok: false, code, message: operatorMessage(code, 'en') });
      expect(operatorMessage(code, 'zh'), what).not.toBe(operatorMessage(code, 'en'));
      expect(terminal.ledger.refusalCounts()[code], what).toBe(1);
    }
    expect(terminal.ledger.lastSeq()).toBe(before);
    expect(terminal.ledger.settlementUse(AUTH.orderId)).toBeUndefined();
    // the good one is used once; the same voucher again is a replay, and nothing more is written
    const good = voucher();
    expect(await terminal.handleSettlement(good, { orderId: AUTH.orderId })).toMatchObject({ ok: true });
    const after = terminal.ledger.lastSeq();
    expect(await terminal.handleSettlement(good, { orderId: AUTH.orderId })).toMatchObject({ ok: false, code: 'SETTLEMENT_VOUCHER_REPLAYED' });
    expect(terminal.ledger.lastSeq()).toBe(after);
    expect(terminal.ledger.verify()).toMatchObject({ ok: true });
  });
});
