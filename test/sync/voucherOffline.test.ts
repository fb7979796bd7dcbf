/**
 * The offline double write-off (voucher-format.md §6): two terminals, both
 * offline, write the same voucher off; their type-12 entries reach the server
 * later, in either order. The ingest writes the voucher off in the back office
 * with the first to arrive and raises voucher-written-off-twice naming the
 * first use (by the terminals' clocks) and the double, whichever arrives last.
 * A voucher the back office never knew is still caught by the entries alone.
 */
import { describe, expect, it } from 'vitest';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import type { Terminal } from '../../src/terminal/Terminal.js';
import { ManualClock } from '../../src/util/clock.js';
import { useScratch } from '../support/scratch.js';

const { cleanups } = useScratch();

let transaction = 0;
async function sync(ingest: Ingest, terminal: Terminal): Promise<number> {
  const pending = terminal.ledger.pending(1000);
  const outcome = await ingest.handle(terminalTopic(terminal.ledger.terminalId, 'report'), encodeReport({ transaction: ++transaction, certificate: terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) }));
  expect(outcome.rejectedEntries).toEqual([]);
  terminal.ledger.acknowledge(pending.map((p) => p.seq));
  return outcome.inserted;
}

async function world(): Promise<{ issuer: Issuer; authority: VoucherAuthority; store: ServerStore; ingest: Ingest; clock: ManualClock; terminals: Terminal[] }> {
  const dir = tempDir('tally-voucher-offline-');
  const issuer = await new Issuer(dir).init();
  cleanups.push(() => issuer.close());
  const clock = new ManualClock(Date.now());
  const store = await createServerStore({ kind: 'sqlite', path: `${dir}/server.db` });
  cleanups.push(() => store.close());
  const ingest = new Ingest({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, clock });
  const authority = await VoucherAuthority.create(issuer);
  const terminals: Terminal[] = [];
  for (const id of ['T-EAST', 'T-WEST']) {
    // no claimVoucher: the link is down, the write-off is offline
    const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: id, clinicCode: 'C1', clock });
    cleanups.push(() => rig.terminal.close());
    rig.terminal.adoptTrustList(authority.trustList());
    terminals.push(rig.terminal);
  }
  return { issuer, authority, store, ingest, clock, terminals };
}

describe('a voucher written off on two offline terminals', () => {
  it('is written off in the back office by the first report and alerted as a double naming the later use, in either arrival order', async () => {
    const { authority, store, ingest, clock, terminals } = await world();
    const [east, west] = terminals as [Terminal, Terminal];
    const now = Math.floor(clock.now() / 1000);
    const v = authority.voucher({ scope: 'C1' });
    await store.vouchers.generateBatch({ batchId: 'VB-OFF', examType: 'OCT', scopeKind: 1, scope: 'C1', count: 1, validFrom: now - 86_400, validUntil: now + 86_400, bookingRequired: false, firstSerial: v.fields.serial }, now);
    await store.vouchers.sendToCentre('VB-OFF', 'CC-1', 'Xuanwu', 1, now);
    expect(await store.vouchers.issueToWallet(v.fields.serial, 'CC-1', 'W-1', now)).toBe(true);

    // the east terminal first by its clock, the west one a minute later; both offline
    expect(await east.handleVoucher(v.qr)).toMatchObject({ ok: true, claimed: 'offline' });
    const eastSeq = east.ledger.voucherUse(v.fields.serial)!.reserveSeq;
    clock.advance(60_000);
    expect(await west.handleVoucher(v.qr)).toMatchObject({ ok: true, claimed: 'offline' });
    const westSeq = west.ledger.voucherUse(v.fields.serial)!.reserveSeq;

    // the later use arrives first: the back office gives the voucher to it, and nothing is alerted yet
    expect(await sync(ingest, west)).toBeGreaterThan(0);
    expect(await store.vouchers.voucher(v.fields.serial)).toMatchObject({ state: 'written_off', terminalId: 'T-WEST' });
    expect((await store.alerts()).filter((a) => a.kind === 'voucher-written-off-twice')).toEqual([]);

    // the earlier use arrives: the double is the west one, by the clocks
    expect(await sync(ingest, east)).toBeGreaterThan(0);
    const alerts = (await store.alerts()).filter((a) => a.kind === 'voucher-written-off-twice');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.terminalId).toBe('T-WEST');
    expect(alerts[0]!.detail).toContain(`first at T-EAST seq ${eastSeq}`);
    expect(alerts[0]!.detail).toContain(`the double at T-WEST seq ${westSeq}`);
    expect(await store.voucherUsesOf([v.fields.serial])).toMatchObject([
      { terminalId: 'T-EAST', seq: eastSeq },
      { terminalId: 'T-WEST', seq: westSeq },
    ]);

    // the same reports again (a resend) raise nothing new
    for (const t of terminals) {
      const again = t.ledger.entriesFrom(1, 1000);
      await ingest.handle(terminalTopic(t.ledger.terminalId, 'report'), encodeReport({ transaction: ++transaction, certificate: t.ledger.terminalCertificate(), entries: again.map((p) => p.raw) }));
    }
    expect((await store.alerts()).filter((a) => a.kind === 'voucher-written-off-twice')).toHaveLength(1);
  }, 60_000);

  it('is caught for a voucher the back office never knew, by the entries alone; one use on each of two vouchers is none', async () => {
    const { authority, store, ingest, clock, terminals } = await world();
    const [east, west] = terminals as [Terminal, Terminal];
    const unknown = authority.voucher({ scope: 'C1' });
    const once = [authority.voucher({ scope: 'C1' }), authority.voucher({ scope: 'C1' })];

    expect(await east.handleVoucher(unknown.qr)).toMatchObject({ ok: true });
    expect(await east.handleVoucher(once[0]!.qr)).toMatchObject({ ok: true });
    clock.advance(1_000);
    expect(await west.handleVoucher(unknown.qr)).toMatchObject({ ok: true });
    expect(await west.handleVoucher(once[1]!.qr)).toMatchObject({ ok: true });
    await sync(ingest, east);
    await sync(ingest, west);

    const alerts = (await store.alerts()).filter((a) => a.kind === 'voucher-written-off-twice');
    expect(alerts.map((a) => a.detail)).toEqual([expect.stringContaining(`voucher ${unknown.fields.serial} written off twice: first at T-EAST`)]);
    expect(alerts[0]!.terminalId).toBe('T-WEST');
    expect(await store.vouchers.voucher(unknown.fields.serial)).toBeUndefined();
  }, 60_000);
});
