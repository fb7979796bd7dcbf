/**
 * A voucher use's outcome reaches the back office from the terminal's ledger
 * (seed 004: the hospital module confirms the exam and tells the back office),
 * on SQLite and PostgreSQL: use.completed marks the exam complete (counted in
 * the statistics); use.released (the device never started) gives the voucher
 * back: booked again with its seat, in the wallet again, and the next scan
 * writes it off once more; a voucher is charged in the income report once,
 * at the card price, even when two offline terminals wrote it off.
 */
import { describe, expect, it } from 'vitest';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { storeIncome } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { SimulatedDevice } from '../../src/sim/SimulatedDevice.js';
import type { Terminal } from '../../src/terminal/Terminal.js';
import { ManualClock } from '../../src/util/clock.js';
import { useScratch } from '../support/scratch.js';
import { storeBackends } from '../support/storeBackends.js';

const { cleanups } = useScratch();
const backends = storeBackends('tally-voucher-outcomes');
const PRICING = { default: { pricePerUse: 5_000, investorShare: 0.6 } };

let transaction = 0;
async function sync(ingest: Ingest, terminal: Terminal): Promise<void> {
  const pending = terminal.ledger.pending(1000);
  const outcome = await ingest.handle(terminalTopic(terminal.ledger.terminalId, 'report'), encodeReport({ transaction: ++transaction, certificate: terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) }));
  expect(outcome.rejectedEntries).toEqual([]);
  terminal.ledger.acknowledge(pending.map((p) => p.seq));
}

for (const backend of backends) {
  describe(`voucher outcomes at the back office (${backend.name})`, () => {
    async function world(name: string) {
      const dir = tempDir('tally-voucher-outcomes-');
      const issuer = await new Issuer(dir).init();
      cleanups.push(() => issuer.close());
      const clock = new ManualClock(Date.now());
      const store: ServerStore = await createServerStore(await backend.place(name));
      cleanups.push(() => store.close());
      const ingest = new Ingest({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, clock });
      const authority = await VoucherAuthority.create(issuer);
      const devices: SimulatedDevice[] = [];
      const terminals: Terminal[] = [];
      for (const id of ['T-EAST', 'T-WEST']) {
        const device = new SimulatedDevice();
        const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: id, clinicCode: 'C1', clock, device });
        cleanups.push(() => rig.terminal.close());
        rig.terminal.adoptTrustList(authority.trustList());
        devices.push(device);
        terminals.push(rig.terminal);
      }
      const now = Math.floor(clock.now() / 1000);
      const voucher = async (batchId: string, bookingRequired: boolean) => {
        const v = authority.voucher({ scope: 'C1', bookingRequired });
        await store.vouchers.generateBatch({ batchId, examType: 'OCT', scopeKind: 1, scope: 'C1', count: 1, validFrom: now - 86_400, validUntil: now + 86_400, bookingRequired, firstSerial: v.fields.serial }, now);
        await store.vouchers.sendToCentre(batchId, 'CC-1', 'Xuanwu', 1, now);
        expect(await store.vouchers.issueToWallet(v.fields.serial, 'CC-1', 'W-1', now)).toBe(true);
        return v;
      };
      return { store, ingest, clock, devices, terminals, now, voucher, authority };
    }

    it('use.completed marks the exam complete; use.released gives the voucher back, booked with its seat, and the next scan writes it off again', async () => {
      const { store, ingest, devices, terminals, now, voucher, authority } = await world('lifecycle');
      const [east] = terminals as [Terminal];
      const [eastDevice] = devices as [SimulatedDevice];
      const booked = await voucher('VB-BOOK', true);
      await store.vouchers.addSlot({ slotId: 3, clinicCode: 'C1', department: 'Ophthalmology', doctor: 'Dr Zhao', start: now - 600, end: now + 1800, capacity: 1 });
      expect(await store.vouchers.book(booked.fields.serial, 'W-1', 3, now)).toBe('booked');
      const signedBooked = authority.voucher({ ...booked.fields, booking: { slotId: 3, start: now - 600, end: now + 1800 } });
      expect(signedBooked.fields.serial).toBe(booked.fields.serial);

      // the device never starts: the terminal releases the use; the back office gives the write-off back
      eastDevice.behaviour = 'fault-before-start';
      expect(await east.handleVoucher(signedBooked.qr)).toMatchObject({ ok: true });
      expect(east.ledger.voucherUse(booked.fields.serial)).toMatchObject({ state: 'released' });
      await sync(ingest, east);
      expect(await store.vouchers.voucher(booked.fields.serial)).toMatchObject({ state: 'booked', slotId: 3, releases: 1 });
      expect((await store.vouchers.voucher(booked.fields.serial))!.terminalId).toBeUndefined();
      expect((await store.vouchers.walletVouchers('W-1')).map((r) => r.serial)).toContain(booked.fields.serial);
      expect((await store.vouchers.slot(3))!.booked).toBe(1); // its seat is kept
      expect(await storeIncome(store, PRICING)).toEqual([]);

      // scanned again, the device runs and completes: written off, the exam complete, counted, charged once
      eastDevice.behaviour = 'normal';
      expect(await east.handleVoucher(signedBooked.qr)).toMatchObject({ ok: true });
      expect(east.ledger.voucherUse(booked.fields.serial)).toMatchObject({ state: 'completed' });
      await sync(ingest, east);
      const done = await store.vouchers.voucher(booked.fields.serial);
      expect(done).toMatchObject({ state: 'written_off', terminalId: 'T-EAST', clinicCode: 'C1', releases: 1 });
      expect(done!.completedAt).toBeGreaterThanOrEqual(now);
      expect((await store.vouchers.walletVouchers('W-1')).map((r) => r.serial)).not.toContain(booked.fields.serial);
      const stats = await store.vouchers.periodStatistics({ by: 'clinic', period: 'month', from: 0, until: now + 86_400 });
      expect(stats.find((r) => r.key === 'C1')).toMatchObject({ writtenOff: 1, completed: 1 });
      expect(await storeIncome(store, PRICING)).toEqual([{ clinicCode: 'C1', uses: 1, voucherUses: 1, gross: 5_000, investor: 3_000, clinic: 2_000 }]);

      // the same report again changes nothing
      const again = east.ledger.entriesFrom(1, 1000);
      await ingest.handle(terminalTopic('T-EAST', 'report'), encodeReport({ transaction: ++transaction, certificate: east.ledger.terminalCertificate(), entries: again.map((p) => p.raw) }));
      expect(await store.vouchers.voucher(booked.fields.serial)).toMatchObject({ state: 'written_off', terminalId: 'T-EAST', releases: 1 });
    }, 60_000);

    it('a reservation released in the same report as it is written off leaves the voucher usable', async () => {
      const { store, ingest, devices, terminals, voucher } = await world('same_report');
      const [east] = terminals as [Terminal];
      const v = await voucher('VB-SAME', false);
      (devices[0] as SimulatedDevice).behaviour = 'fault-before-start';
      expect(await east.handleVoucher(v.qr)).toMatchObject({ ok: true });
      await sync(ingest, east);
      expect(await store.vouchers.voucher(v.fields.serial)).toMatchObject({ state: 'issued', walletId: 'W-1', releases: 1 });
      expect(await store.vouchers.writeOff(v.fields.serial, 'T-WEST', 'C1', 1)).toEqual({ granted: true });
    }, 60_000);

    it('two offline terminals wrote one voucher off: charged once; the holder releasing hands the write-off to the other', async () => {
      const { store, ingest, clock, devices, terminals, voucher } = await world('double');
      const [east, west] = terminals as [Terminal, Terminal];
      const v = await voucher('VB-TWICE', false);
      const card = PRICING.default;
      // one voucher on one terminal: one charge
      expect(await west.handleVoucher(v.qr)).toMatchObject({ ok: true });
      clock.advance(1_000);
      await sync(ingest, west);
      expect(await storeIncome(store, PRICING)).toMatchObject([{ clinicCode: 'C1', uses: 1, voucherUses: 1, gross: card.pricePerUse }]);
      // a second voucher written off on both, both running: one charge
      const both = await voucher('VB-BOTH', false);
      expect(await east.handleVoucher(both.qr)).toMatchObject({ ok: true });
      expect(await west.handleVoucher(both.qr)).toMatchObject({ ok: true });
      await sync(ingest, east);
      await sync(ingest, west);
      expect((await store.alerts()).filter((a) => a.kind === 'voucher-written-off-twice')).toHaveLength(1);
      expect(await storeIncome(store, PRICING)).toMatchObject([{ clinicCode: 'C1', uses: 2, voucherUses: 2, gross: 2 * card.pricePerUse }]);

      // a third: east wrote it off first, offline, and its device did not start; west's use ran
      const third = await voucher('VB-HAND', false);
      (devices[0] as SimulatedDevice).behaviour = 'fault-before-start';
      expect(await east.handleVoucher(third.qr)).toMatchObject({ ok: true });
      expect(await west.handleVoucher(third.qr)).toMatchObject({ ok: true });
      // east's reservation arrives alone first (its release still on the terminal): the back office gives it to east
      const eastPending = east.ledger.pending(1000);
      const reserve = eastPending.filter((p) => p.seq === east.ledger.voucherUse(third.fields.serial)!.reserveSeq);
      await ingest.handle(terminalTopic('T-EAST', 'report'), encodeReport({ transaction: ++transaction, certificate: east.ledger.terminalCertificate(), entries: reserve.map((p) => p.raw) }));
      await sync(ingest, west);
      expect(await store.vouchers.voucher(third.fields.serial)).toMatchObject({ state: 'written_off', terminalId: 'T-EAST' });
      // east's release arrives: the write-off goes to west, whose use stands
      await sync(ingest, east);
      expect(await store.vouchers.voucher(third.fields.serial)).toMatchObject({ state: 'written_off', terminalId: 'T-WEST', releases: 1 });
      expect(await storeIncome(store, PRICING)).toMatchObject([{ clinicCode: 'C1', uses: 3, voucherUses: 3 }]);
    }, 90_000);
  });
}
