/**
 * The voucher back office's store on SQLite and PostgreSQL: the lifecycle, and
 * every state change one conditional update: 50 concurrent write-offs of one
 * voucher by 50 terminals, 50 concurrent bookings of one voucher, and 50
 * vouchers booking a slot of capacity 1: exactly one wins each time; 50
 * releases of one write-off give it back once, and the exam completes once.
 */
import { describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { storeBackends } from '../support/storeBackends.js';

const NOW = 1_800_000_000;
const backends = storeBackends('tally-voucher-store');

for (const backend of backends) {
  describe(`voucher store (${backend.name})`, () => {
    async function open(name: string): Promise<ServerStore> {
      return createServerStore(await backend.place(name));
    }
    const batch = (batchId: string, firstSerial: number, count: number, bookingRequired = true) => ({
      batchId, examType: 'OCT', scopeKind: 1 as const, scope: 'CLINIC-7', count, validFrom: NOW - 86_400, validUntil: NOW + 86_400 * 30, bookingRequired, firstSerial,
    });

    it('generates, sends, issues, books, writes off, voids and counts', async () => {
      const store = await open('lifecycle');
      try {
        const v = store.vouchers;
        await v.generateBatch(batch('B1', 1000, 5), NOW);
        expect(await v.sendToCentre('B1', 'CC-1', 'Xuanwu', 3, NOW)).toBe(3);
        expect(await v.issueToWallet(1000, 'CC-1', 'W-1', NOW)).toBe(true);
        expect(await v.issueToWallet(1000, 'CC-1', 'W-2', NOW)).toBe(false);
        expect(await v.issueToWallet(1003, 'CC-1', 'W-2', NOW)).toBe(false); // not sent to this centre
        expect(await v.writeOff(1000, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: false, code: 'VOUCHER_NOT_BOOKED' });
        await v.addSlot({ slotId: 1, clinicCode: 'CLINIC-7', department: 'ophthalmology', doctor: 'Dr Li', start: NOW, end: NOW + 1800, capacity: 2 });
        expect(await v.book(1000, 'W-2', 1, NOW)).toBe('not-bookable'); // another wallet's
        expect(await v.book(1000, 'W-1', 1, NOW)).toBe('booked');
        expect(await v.book(1000, 'W-1', 1, NOW)).toBe('not-bookable'); // no double booking
        expect(await v.writeOff(1000, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: true });
        expect(await v.writeOff(1000, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: true }); // the same terminal again
        expect(await v.writeOff(1000, 'T-2', 'CLINIC-7', NOW)).toEqual({ granted: false, code: 'VOUCHER_WRITTEN_OFF', holder: 'T-1' });
        expect(await v.voidExpired(NOW + 86_400 * 31)).toBe(4);
        expect(await v.writeOff(1001, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: false, code: 'VOUCHER_VOIDED' });
        expect(await v.statistics('community')).toEqual([
          { key: '', generated: 2, sent: 0, voided: 2, writtenOff: 0 },
          { key: 'Xuanwu', generated: 3, sent: 3, voided: 2, writtenOff: 1 },
        ]);
        expect(await v.statistics('clinic')).toEqual([
          { key: '', generated: 4, sent: 2, voided: 4, writtenOff: 0 },
          { key: 'CLINIC-7', generated: 1, sent: 1, voided: 0, writtenOff: 1 },
        ]);
      } finally {
        await store.close();
      }
    });

    it("a release gives back only the releasing terminal's write-off, once of 50 at once; the exam completes once", async () => {
      const store = await open('outcomes');
      try {
        const v = store.vouchers;
        await v.generateBatch(batch('B3', 3000, 2), NOW);
        await v.sendToCentre('B3', 'CC-1', 'Gulou', 2, NOW);
        await v.issueToWallet(3000, 'CC-1', 'W-3', NOW);
        await v.addSlot({ slotId: 30, clinicCode: 'CLINIC-7', department: 'eye', doctor: 'Dr Sun', start: NOW, end: NOW + 1800, capacity: 1 });
        expect(await v.book(3000, 'W-3', 30, NOW)).toBe('booked');
        expect(await v.writeOff(3000, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: true });
        expect(await v.release(3000, 'T-2', NOW)).toBe(false); // not its write-off
        const releases = await Promise.all(Array.from({ length: 50 }, () => v.release(3000, 'T-1', NOW + 5)));
        expect(releases.filter(Boolean)).toHaveLength(1);
        expect(await v.voucher(3000)).toMatchObject({ state: 'booked', slotId: 30, releases: 1 });
        expect((await v.slot(30))!.booked).toBe(1);
        expect(await v.complete(3000, 'T-1', NOW)).toBe(false); // not written off
        expect(await v.writeOff(3000, 'T-2', 'CLINIC-7', NOW + 10)).toEqual({ granted: true });
        const completions = await Promise.all(Array.from({ length: 50 }, (_, i) => v.complete(3000, 'T-2', NOW + 20 + i)));
        expect(completions.filter(Boolean)).toHaveLength(1);
        expect(await v.complete(3000, 'T-1', NOW + 30)).toBe(false);
        expect((await v.voucher(3000))!.completedAt).toBeGreaterThanOrEqual(NOW + 20);
        // never booked: back to issued
        await v.generateBatch(batch('B4', 3100, 1, false), NOW);
        await v.sendToCentre('B4', 'CC-1', 'Gulou', 1, NOW);
        expect(await v.writeOff(3100, 'T-1', 'CLINIC-7', NOW)).toEqual({ granted: true });
        expect(await v.release(3100, 'T-1', NOW)).toBe(true);
        expect(await v.voucher(3100)).toMatchObject({ state: 'sent', releases: 1 });
        const stats = await v.periodStatistics({ by: 'clinic', period: 'day', from: 0, until: NOW + 86_400 });
        expect(stats.find((r) => r.key === 'CLINIC-7')).toMatchObject({ writtenOff: 1, completed: 1 });
      } finally {
        await store.close();
      }
    });

    it('50 concurrent write-offs, bookings of one voucher, and bookings of one seat: exactly one wins each', async () => {
      const store = await open('races');
      try {
        const v = store.vouchers;
        await v.generateBatch(batch('B2', 2000, 60, false), NOW);
        await v.sendToCentre('B2', 'CC-1', 'Qinhuai', 60, NOW);
        for (let i = 0; i < 52; i++) await v.issueToWallet(2000 + i, 'CC-1', 'W-9', NOW);
        const writeOffs = await Promise.all(Array.from({ length: 50 }, (_, i) => v.writeOff(2000, `T-${i}`, 'CLINIC-7', NOW)));
        expect(writeOffs.filter((a) => a.granted)).toHaveLength(1);
        expect(writeOffs.filter((a) => !a.granted && a.code === 'VOUCHER_WRITTEN_OFF')).toHaveLength(49);
        await v.addSlot({ slotId: 7, clinicCode: 'CLINIC-7', department: 'eye', doctor: 'Dr Wang', start: NOW, end: NOW + 1800, capacity: 50 });
        const sameVoucher = await Promise.all(Array.from({ length: 50 }, () => v.book(2001, 'W-9', 7, NOW)));
        expect(sameVoucher.filter((o) => o === 'booked')).toHaveLength(1);
        await v.addSlot({ slotId: 8, clinicCode: 'CLINIC-7', department: 'eye', doctor: 'Dr Wang', start: NOW, end: NOW + 1800, capacity: 1 });
        const oneSeat = await Promise.all(Array.from({ length: 50 }, (_, i) => v.book(2002 + i, 'W-9', 8, NOW)));
        expect(oneSeat.filter((o) => o === 'booked')).toHaveLength(1);
        expect(oneSeat.filter((o) => o === 'slot-full')).toHaveLength(49);
        // the losers' vouchers stayed issued: the failed seat rolled their state back
        const states = await Promise.all(Array.from({ length: 50 }, (_, i) => v.voucher(2002 + i)));
        expect(states.filter((r) => r?.state === 'booked')).toHaveLength(1);
        expect(states.filter((r) => r?.state === 'issued')).toHaveLength(49);
      } finally {
        await store.close();
      }
    });
  });
}
