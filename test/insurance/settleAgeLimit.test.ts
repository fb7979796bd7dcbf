/**
 * The age limit on orders between consent and a recorded settlement (InsuranceServiceOptions.settleAgeLimitMs,
 * default 30 min after the order was made). A settling order whose key the platform cannot be asked about raises
 * the alert insurance-settlement-unresolved once past it (and stays settling: only the platform knows whether it
 * charged), then ends by its key when the platform answers. A service order cut off before its settlement key fails
 * unpaid once past it, not at the end of its 7-day validity. The platform is an in-process fake counting settlement requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TallyError } from '../../src/errors.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import type { InsurancePlatform, PlatformSettlement } from '../../src/server/insurance/InsurancePlatform.js';
import { InsuranceService, type InsuranceServiceOptions } from '../../src/server/insurance/InsuranceService.js';
import type { InsuranceStore } from '../../src/server/insurance/InsuranceStore.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { ManualClock } from '../../src/util/clock.js';
import type { Logger } from '../../src/util/logger.js';
import { certifiedServerKey } from '../support/insuranceRig.js';
import { makeInvestor } from '../support/signedLedger.js';

const MINUTE = 60_000;

/** The platform as a fake: settle never answers (a timeout), and findSettlement is down or finds nothing */
class FakePlatform implements InsurancePlatform {
  readonly name = 'fake';
  lookup: 'down' | 'none' = 'down';
  /** Settlement requests that reached the platform (none is answered) */
  settleCalls = 0;
  queryCertificate(query: { item: string; amountFen: number }) {
    return Promise.resolve({ certificateId: 'C-1', maskedName: '张*', item: query.item, amountFen: query.amountFen, insurerFen: 7_000, patientFen: query.amountFen - 7_000, capLeftFen: 1_000_000, expiresAt: Number.MAX_SAFE_INTEGER });
  }
  settle(): Promise<PlatformSettlement> {
    this.settleCalls++;
    return Promise.reject(new TallyError('INSURANCE_PLATFORM_TIMEOUT', 'no answer in time'));
  }
  findSettlement(): Promise<PlatformSettlement | undefined> {
    return this.lookup === 'down' ? Promise.reject(new TallyError('INSURANCE_PLATFORM_DOWN', 'connection refused')) : Promise.resolve(undefined);
  }
  reverse(): never {
    throw new Error('nothing is reversed here');
  }
  statement(day: string) {
    return Promise.resolve({ day, settlements: [], reversals: [] });
  }
}

/** Structured events as the service logs them */
function recordingLogger(events: Array<Record<string, unknown>>): Logger {
  const logger = {
    child: () => logger,
    info: (o: Record<string, unknown>) => events.push({ level: 'info', ...o }),
    warn: (o: Record<string, unknown>) => events.push({ level: 'warn', ...o }),
    error: (o: Record<string, unknown>) => events.push({ level: 'error', ...o }),
    debug: () => undefined,
  };
  return logger as unknown as Logger;
}

let dir: string;
let store: ServerStore;
let platform: FakePlatform;
let events: Array<Record<string, unknown>>;
const clock = new ManualClock(Date.parse('2026-12-08T08:00:00Z'));
const signer = certifiedServerKey(makeInvestor());

const service = (overrides: Partial<InsuranceServiceOptions> = {}) =>
  new InsuranceService({ store: store.insurance, platform, signer, baseUrl: 'http://127.0.0.1:0', clock, logger: recordingLogger(events), raiseAlert: (alert) => store.raiseAlert(alert), ...overrides });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ins-age-'));
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  platform = new FakePlatform();
  events = [];
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the age limit between consent and settlement', () => {
  it('a settling order the platform cannot be asked about: retried quietly, then one alert past the limit; failed unpaid once the key shows nothing', async () => {
    const insurance = service();
    const auth = await insurance.start({ terminalId: 'T-1', item: 'OCT', amountFen: 10_000 });
    await insurance.open(auth.user_code, 'phone-1');
    await insurance.quote(auth.user_code, 'phone-1', 'EC-1');
    expect(await insurance.consent(auth.user_code, 'phone-1')).toMatchObject({ state: 'settling' });

    clock.advance(29 * MINUTE);
    expect(await insurance.recover()).toEqual({ settled: 0, failed: 0, unresolved: 1 });
    expect(await store.alerts()).toEqual([]);

    clock.advance(MINUTE);
    expect(await insurance.recover()).toEqual({ settled: 0, failed: 0, unresolved: 1 });
    expect(await insurance.recover()).toEqual({ settled: 0, failed: 0, unresolved: 1 });
    const alerts = await store.alerts();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'insurance-settlement-unresolved', terminalId: 'T-1', key: `insurance-unresolved:${auth.orderId}` });
    expect(alerts[0]!.detail).toContain(`${auth.orderId}:settle`);
    // once, with its code, however often the sweep asks again
    expect(events.filter((e) => e.event === 'insurance.settlement-unresolved')).toEqual([
      expect.objectContaining({ level: 'error', code: 'INSURANCE_SETTLEMENT_UNRESOLVED', orderId: auth.orderId, lookupFailure: 'INSURANCE_PLATFORM_DOWN', ageMin: 30 }),
    ]);
    // charged or not, only the platform knows: the order is not ended by guess
    expect((await store.insurance.order(auth.orderId))?.state).toBe('settling');

    platform.lookup = 'none';
    expect(await insurance.recover()).toEqual({ settled: 0, failed: 1, unresolved: 0 });
    expect(await store.insurance.order(auth.orderId)).toMatchObject({ state: 'failed', failure: 'INSURANCE_FAILED' });
    expect(platform.settleCalls).toBe(1);
  });

  it('a service order cut off before its settlement key fails unpaid soon after the age limit, not at the end of its 7 days', async () => {
    // the first server dies in the update that would store the settlement key: the order is left consented
    let died!: () => void;
    const cutOff = new Promise<void>((resolve) => (died = resolve));
    const dying = new Proxy(store.insurance, {
      get: (target, p) => (p === 'transition' ? (...a: Parameters<InsuranceStore['transition']>) => (a[2] === 'settling' ? (died(), new Promise(() => undefined)) : target.transition(...a)) : (target as unknown as Record<string | symbol, unknown>)[p] instanceof Function ? ((target as unknown as Record<string | symbol, (...x: unknown[]) => unknown>)[p] as (...x: unknown[]) => unknown).bind(target) : (target as unknown as Record<string | symbol, unknown>)[p]),
    });
    void service({ store: dying }).payServiceOrder({ walletId: 'W-1', clinicCode: 'CL-1', item: 'OCT', amountFen: 10_000, credential: 'EC-1' });
    await cutOff;
    const order = (await store.insurance.ordersIn(['consented']))[0];
    expect(order).toMatchObject({ state: 'consented', clinicCode: 'CL-1', walletId: 'W-1' });

    const restarted = service();
    clock.advance(29 * MINUTE);
    expect(await restarted.sweep()).toMatchObject({ expired: 0, failed: 0 });
    expect((await store.insurance.order(order!.orderId))?.state).toBe('consented');
    clock.advance(MINUTE);
    expect(await restarted.sweep()).toMatchObject({ expired: 0, failed: 1 });
    expect(await restarted.serviceOrder(order!.orderId, 'W-1')).toMatchObject({ state: 'failed', failure: 'INSURANCE_SETTLEMENT_INTERRUPTED' });
    expect(events.filter((e) => e.event === 'insurance.service-order-interrupted')).toEqual([expect.objectContaining({ code: 'INSURANCE_SETTLEMENT_INTERRUPTED', orderId: order!.orderId, was: 'consented' })]);
    expect(platform.settleCalls).toBe(0);
    expect(await store.alerts()).toEqual([]);
  });
});
