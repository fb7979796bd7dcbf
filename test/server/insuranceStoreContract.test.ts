/** The insurance store's contract on SQLite and a real PostgreSQL: conditional transitions, the poll CAS, the phone claim. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import type { NewInsuranceOrder } from '../../src/server/insurance/InsuranceStore.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { storeBackends } from '../support/storeBackends.js';

const order = (n: number, extra: Partial<NewInsuranceOrder> = {}): NewInsuranceOrder => ({
  orderId: `INS-${n}`,
  terminalId: 'T-1',
  item: 'OCT',
  amountFen: 10_000 + n,
  orderHash: 'ab'.repeat(32),
  deviceCodeHash: `dc-${n}`,
  userCode: `UC${n}`,
  intervalS: 5,
  expiresAt: 2_000_000,
  createdAt: 1_000_000 + n,
  ...extra,
});

for (const backend of storeBackends('ins-store')) {
  describe(`InsuranceStore contract: ${backend.name}`, () => {
    let store: ServerStore;
    beforeAll(async () => {
      store = await createServerStore(await backend.place('insurance'));
    });
    afterAll(async () => store?.close());

    it('creates an order once; a clashing user or device code inserts nothing', async () => {
      expect(await store.insurance.createOrder(order(1))).toBe(true);
      expect(await store.insurance.createOrder(order(2, { userCode: 'UC1' }))).toBe(false);
      expect(await store.insurance.createOrder(order(3, { deviceCodeHash: 'dc-1' }))).toBe(false);
      expect(await store.insurance.orderByUserCode('UC1')).toMatchObject({ orderId: 'INS-1', state: 'pending', amountFen: 10_001, intervalS: 5, expiresAt: 2_000_000 });
      expect((await store.insurance.orderByDeviceCodeHash('dc-1'))?.orderId).toBe('INS-1');
      expect(await store.insurance.order('INS-2')).toBeUndefined();
    });

    it('a transition happens once: the second caller from the same state gets false', async () => {
      await store.insurance.createOrder(order(4));
      expect(await store.insurance.transition('INS-4', ['pending'], 'opened', {}, 1)).toBe(true);
      const [a, b] = await Promise.all([
        store.insurance.transition('INS-4', ['opened'], 'consented', { tokenHash: 't1' }, 2),
        store.insurance.transition('INS-4', ['opened'], 'consented', { tokenHash: 't2' }, 2),
      ]);
      expect([a, b].filter(Boolean)).toHaveLength(1);
      expect(await store.insurance.transition('INS-4', ['consented'], 'settling', { settleKey: 'INS-4:settle' }, 3)).toBe(true);
      expect(await store.insurance.transition('INS-4', ['consented'], 'settling', { settleKey: 'INS-4:settle' }, 3)).toBe(false);
      expect(await store.insurance.transition('INS-4', ['settling'], 'settled', { settlementId: 'STL-1', insurerFen: 7000, patientFen: 3004, voucher: '{}' }, 4)).toBe(true);
      expect(await store.insurance.order('INS-4')).toMatchObject({ state: 'settled', settleKey: 'INS-4:settle', settlementId: 'STL-1', insurerFen: 7000, patientFen: 3004, updatedAt: 4 });
      expect(await store.insurance.update('INS-4', ['pending'], { failure: 'X' }, 5)).toBe(false);
      expect((await store.insurance.ordersIn(['settled'])).map((o) => o.orderId)).toEqual(['INS-4']);
    });

    it('the poll is a compare-and-set on the last poll; the phone claim keeps the first phone', async () => {
      await store.insurance.createOrder(order(5));
      expect(await store.insurance.recordPoll('INS-5', undefined, 100, 5)).toBe(true);
      expect(await store.insurance.recordPoll('INS-5', undefined, 101, 5)).toBe(false);
      expect(await store.insurance.recordPoll('INS-5', 100, 200, 10)).toBe(true);
      expect(await store.insurance.order('INS-5')).toMatchObject({ lastPollAt: 200, intervalS: 10 });
      expect(await store.insurance.claimPhone('INS-5', 'phone-a', 1)).toBe(true);
      expect(await store.insurance.claimPhone('INS-5', 'phone-b', 2)).toBe(false);
      expect(await store.insurance.claimPhone('INS-5', 'phone-a', 3)).toBe(true);
    });

    it('lists orders by creation time and the ledgers\' settlement uses of a day', async () => {
      expect((await store.insurance.ordersBetween(1_000_004, 1_000_006)).map((o) => o.orderId)).toEqual(['INS-4', 'INS-5']);
      expect(await store.insurance.ledgerSettlementUses('2026-12-03')).toEqual([]);
    });
  });
}
