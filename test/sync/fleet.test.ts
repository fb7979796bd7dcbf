/**
 * End to end at fleet scale: 50 terminals swiping (20,000 uses in all) while
 * the broker, the ingest server and random terminals restart. Afterwards the
 * server's ledger equals the union of the terminals' ledgers, entry for entry:
 * zero lost, zero doubled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncClient, type SyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeBatch, makeInvestor, SignedLedger, type BatchCards, type Investor } from '../support/signedLedger.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

const TERMINALS = 50;
const USES = 20_000;
const USES_PER_TERMINAL = USES / TERMINALS;

let broker: RunningMosquitto;
let investor: Investor;
let rig: ServerRig;

beforeAll(async () => {
  broker = await startMosquitto();
  investor = makeInvestor();
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 500, signatureCheck: 'chain-anchored' });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
});

describe('fleet', () => {
  it(`${TERMINALS} terminals, ${USES} uses, broker/server/terminal restarts: the server ledger equals the terminals' ledgers`, async () => {
    const fleet = Array.from({ length: TERMINALS }, (_, t) => {
      const ledger = new SignedLedger(investor, `T-FLEET-${String(t).padStart(3, '0')}`, `CL-${t % 7}`);
      const batch = makeBatch(investor, ledger.clinicCode, t, USES_PER_TERMINAL);
      ledger.loadBatch(batch);
      return { ledger, batch, outbox: new InMemoryOutbox(ledger), used: 0 };
    });
    const connect = (outbox: InMemoryOutbox): SyncClient =>
      createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 100, policy: { reportBatchSize: 50, ackTimeoutMs: 3000 } });
    const syncs = fleet.map((t) => connect(t.outbox));
    const swipe = (terminal: { ledger: SignedLedger; batch: BatchCards; used: number }, count: number): void => {
      for (let i = 0; i < count && terminal.used < USES_PER_TERMINAL; i++) {
        terminal.used++;
        // one use in twenty never starts the device: released, not charged, the serial used again
        if (terminal.used % 20 === 0) terminal.ledger.releasedUse(terminal.batch, terminal.used);
        terminal.ledger.use(terminal.batch, terminal.used);
      }
    };
    try {
      const rounds = 8;
      for (let round = 0; round < rounds; round++) {
        for (const terminal of fleet) swipe(terminal, USES_PER_TERMINAL / rounds);
        syncs.forEach((s) => s.notify());
        await new Promise((r) => setTimeout(r, 300));
        if (round === 2) await broker.restart();
        if (round === 4) await rig.restart();
        if (round === 3 || round === 6) {
          // a few terminals power-cycle
          for (const index of [round, round * 7 % TERMINALS, round * 13 % TERMINALS]) {
            await syncs[index]!.stop();
            syncs[index] = connect(fleet[index]!.outbox);
          }
        }
      }
      await Promise.all(syncs.map((s) => s.drained(240_000)));
      await waitFor(async () => (await rig.store.entryCount()) === fleet.reduce((n, t) => n + t.ledger.lastSeq, 0), 30_000, 'every entry stored');

      let uses = 0;
      for (const terminal of fleet) {
        expect(terminal.used).toBe(USES_PER_TERMINAL);
        const stored = await rig.store.entries(terminal.ledger.terminalId, 1, 100_000);
        expect(stored.length).toBe(terminal.ledger.lastSeq);
        expect(stored.every((e, i) => Buffer.compare(Buffer.from(e.raw), Buffer.from(terminal.ledger.entries[i]!)) === 0)).toBe(true);
        expect((await rig.store.terminal(terminal.ledger.terminalId))?.contiguousSeq).toBe(terminal.ledger.lastSeq);
        uses += terminal.used;
      }
      const charged = (await rig.store.usesPerDay()).reduce((n, d) => n + d.uses, 0);
      expect(uses).toBe(USES);
      expect(charged).toBe(USES);
      expect(await rig.store.alerts()).toEqual([]);
      expect(await rig.store.rejections()).toEqual([]);
    } finally {
      await Promise.all(syncs.map((s) => s.stop()));
    }
  }, 300_000);
});
