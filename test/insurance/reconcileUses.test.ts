/**
 * The daily reconciliation matches every settlement with exactly one ledger use: two uses (settlement.reserved
 * entries not released) naming the same settled order are listed, both of them, as order-with-several-ledger-uses.
 * ledgerUseOrders is read from stored raw entries; reconcile is the pure function the service calls.
 */
import { describe, expect, it } from 'vitest';
import { encodeLedgerEntry, encodeLedgerEntryBody, EntryType } from '../../src/codecs/ledgerEntry.js';
import type { PlatformStatement } from '../../src/server/insurance/InsurancePlatform.js';
import { ledgerUseOrders, reconcile } from '../../src/server/insurance/InsuranceService.js';
import type { InsuranceOrderRow, InsuranceStore } from '../../src/server/insurance/InsuranceStore.js';

const DAY = '2026-12-03';
const AT = Date.parse(`${DAY}T09:00:00Z`);

function reservedEntry(terminalId: string, seq: number, orderId: string): Uint8Array {
  const body = encodeLedgerEntryBody({ seq, prevHash: new Uint8Array(32), type: EntryType.SETTLEMENT_RESERVED, time: AT, clockTrusted: true, terminalId, detail: orderId });
  return encodeLedgerEntry(body, new Uint8Array(64));
}

const usedOrder = (orderId: string): InsuranceOrderRow => ({
  orderId,
  terminalId: 'T-1',
  item: 'OCT',
  amountFen: 10_000,
  orderHash: '00',
  deviceCodeHash: '00',
  userCode: 'BCDFGHJK',
  state: 'used',
  intervalS: 5,
  expiresAt: AT + 300_000,
  insurerFen: 7_000,
  patientFen: 3_000,
  settlementId: `S-${orderId}`,
  createdAt: AT,
  updatedAt: AT,
});

const statement = (...orderIds: string[]): PlatformStatement => ({
  day: DAY,
  settlements: orderIds.map((orderRef) => ({ settlementId: `S-${orderRef}`, idempotencyKey: `${orderRef}:settle`, orderRef, item: 'OCT', amountFen: 10_000, insurerFen: 7_000, patientFen: 3_000, at: AT, status: 'settled' as const })),
  reversals: [],
});

describe('reconciliation: one settlement, one ledger use', () => {
  it('two ledger uses naming one settled order are both listed; one use each reconciles clean', async () => {
    const uses = [
      { terminalId: 'T-1', seq: 7, raw: reservedEntry('T-1', 7, 'INS-aaaa') },
      { terminalId: 'T-2', seq: 3, raw: reservedEntry('T-2', 3, 'INS-aaaa') },
      { terminalId: 'T-1', seq: 9, raw: reservedEntry('T-1', 9, 'INS-bbbb') },
    ];
    const store = { ledgerSettlementUses: (day: string) => Promise.resolve(day === DAY ? uses : []) } as unknown as InsuranceStore;
    const byOrder = await ledgerUseOrders(store, DAY);
    expect(byOrder.get('INS-aaaa')).toEqual([{ terminalId: 'T-1', seq: 7 }, { terminalId: 'T-2', seq: 3 }]);

    const mismatches = reconcile(statement('INS-aaaa', 'INS-bbbb'), [usedOrder('INS-aaaa'), usedOrder('INS-bbbb')], byOrder, AT + 3_600_000);
    expect(mismatches).toEqual([
      {
        kind: 'order-with-several-ledger-uses',
        orderId: 'INS-aaaa',
        uses: [{ terminalId: 'T-1', seq: 7 }, { terminalId: 'T-2', seq: 3 }],
        detail: '2 ledger uses name it: T-1 seq 7, T-2 seq 3',
      },
    ]);

    const single = await ledgerUseOrders({ ledgerSettlementUses: () => Promise.resolve(uses.slice(1)) } as unknown as InsuranceStore, DAY);
    expect(reconcile(statement('INS-aaaa', 'INS-bbbb'), [usedOrder('INS-aaaa'), usedOrder('INS-bbbb')], single, AT + 3_600_000)).toEqual([]);
  });
});
