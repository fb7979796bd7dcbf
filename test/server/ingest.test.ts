/** The ingest against real signed ledgers and a real SQLite store: every bad input refused with a reason, nothing counted twice. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parseJsonPayload, rangesToSeqs } from '../../src/codecs/mqtt/messages.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { EntryType } from '../../src/codecs/ledgerEntry.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest, type IngestOutcome } from '../../src/server/ingest/Ingest.js';
import type { SignatureCheck } from '../../src/server/ingest/verifyReport.js';
import { createIngestWorkerPool } from '../../src/server/ingest/ingestWorkerPool.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { ManualClock } from '../../src/util/clock.js';
import { makeBatch, makeInvestor, SignedLedger, type Investor } from '../support/signedLedger.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-ingest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let investor: Investor;
let store: ServerStore;
let ingest: Ingest;
let clock: ManualClock;
let dbCounter = 0;

function report(ledger: SignedLedger, seqs: number[], transaction = 1, certificate = ledger.certificate): Uint8Array {
  return encodeReport({ transaction, certificate, entries: seqs.map((s) => ledger.entry(s)) });
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function ackOf(outcome: IngestOutcome) {
  const reply = outcome.replies.find((r) => r.topic.endsWith('/ack'));
  if (!reply) throw new Error('no ack');
  return parseJsonPayload('ack', reply.payload);
}

function send(ledger: SignedLedger, seqs: number[], topicTerminal = ledger.terminalId): Promise<IngestOutcome> {
  return ingest.handle(terminalTopic(topicTerminal, 'report'), report(ledger, seqs));
}

function ledgerWithUses(terminalId = 'T-0001'): { ledger: SignedLedger; batch: ReturnType<typeof makeBatch> } {
  const ledger = new SignedLedger(investor, terminalId, 'CL-1');
  const batch = makeBatch(investor, 'CL-1', 1, 20);
  ledger.loadBatch(batch);
  ledger.use(batch, 1);
  ledger.use(batch, 2);
  ledger.releasedUse(batch, 3);
  ledger.use(batch, 3);
  return { ledger, batch };
}

/** Another ledger of the same device (a restored or cloned database): from seq 2 on it differs */
function forkOf(ledger: SignedLedger): SignedLedger {
  const fork = new SignedLedger(investor, ledger.terminalId, ledger.clinicCode, ledger.device);
  const batch = makeBatch(investor, ledger.clinicCode, 2, 5);
  fork.loadBatch(batch);
  fork.use(batch, 1);
  return fork;
}

const workerPool = createIngestWorkerPool(2);
afterAll(() => workerPool.close());

describe.each([
  ['every-entry', 'on this thread'],
  ['chain-anchored', 'on this thread'],
  ['every-entry', 'in worker threads'],
  ['chain-anchored', 'in worker threads'],
] as const)('signatures checked %s %s', (signatureCheck: SignatureCheck, where) => {
  beforeEach(async () => {
    await store?.close();
    investor = makeInvestor();
    store = await createServerStore({ kind: 'sqlite', path: join(dir, `server-${++dbCounter}.db`) });
    clock = new ManualClock(Date.UTC(2026, 9, 1));
    ingest = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock, signatureCheck, ...(where === 'in worker threads' ? { verifier: workerPool, preparer: workerPool } : {}) });
  });

  describe('Ingest: good reports', () => {
    it('stores a verified report and acks exactly the committed seqs', async () => {
      const { ledger } = ledgerWithUses();
      const outcome = await send(ledger, range(1, ledger.lastSeq));
      expect(outcome.accepted).toBe(true);
      expect(outcome.inserted).toBe(ledger.lastSeq);
      const ack = ackOf(outcome);
      expect(ack.status).toBe('ok');
      expect(ack.transaction).toBe(1);
      expect(rangesToSeqs(ack.data.committed)).toEqual(range(1, ledger.lastSeq));
      expect(ack.data.highestContiguousSeq).toBe(ledger.lastSeq);
      const stored = await store.entries('T-0001', 1, 100);
      expect(stored.map((e) => e.raw)).toEqual(ledger.entries);
      const uses = await store.usesPerDay();
      expect(uses.reduce((n, d) => n + d.uses, 0)).toBe(3);
      const [batch] = await store.batchReconciliation();
      expect(batch).toMatchObject({ used: 3, released: 1, remaining: 17, terminalId: 'T-0001' });
      expect(await store.alerts()).toEqual([]);
    });

    it('dedupes a replayed or duplicated report and acks it again, counting nothing twice', async () => {
      const { ledger } = ledgerWithUses();
      await send(ledger, range(1, ledger.lastSeq));
      const replay = await send(ledger, range(1, ledger.lastSeq));
      expect(replay.inserted).toBe(0);
      expect(replay.duplicates).toBe(ledger.lastSeq);
      expect(rangesToSeqs(ackOf(replay).data.committed)).toEqual(range(1, ledger.lastSeq));
      const doubled = await ingest.handle(terminalTopic(ledger.terminalId, 'report'), encodeReport({ transaction: 3, certificate: ledger.certificate, entries: [ledger.entry(2), ledger.entry(2)] }));
      expect(doubled.inserted + doubled.duplicates).toBe(1);
      expect(await store.entryCount()).toBe(ledger.lastSeq);
      expect((await store.usesPerDay()).reduce((n, d) => n + d.uses, 0)).toBe(3);
    });

    it('comes out right when reports arrive out of order, and asks for a gap that stays open', async () => {
      const { ledger } = ledgerWithUses();
      const last = ledger.lastSeq;
      await send(ledger, range(7, last));
      await send(ledger, [4, 5]);
      let terminal = await store.terminal('T-0001');
      expect(terminal?.contiguousSeq).toBe(0);
      expect(await ingest.checkGaps()).toEqual([]); // first sight of the gap: maybe still in flight
      const [resend] = await ingest.checkGaps();
      expect(resend?.topic).toBe('tally/v1/terminal/T-0001/resend');
      expect(parseJsonPayload('resend', resend!.payload)).toMatchObject({ fromSeq: 1, toSeq: 6 });
      await send(ledger, [3, 2, 1, 6]);
      terminal = await store.terminal('T-0001');
      expect(terminal?.contiguousSeq).toBe(last);
      expect(await ingest.checkGaps()).toEqual([]);
      expect((await store.entries('T-0001', 1, 100)).map((e) => e.raw)).toEqual(ledger.entries);
      expect(await store.alerts()).toEqual([]);
    });

    it('asks a terminal that is ahead of the server for a resend, and sends the time to a terminal coming online', async () => {
      const { ledger } = ledgerWithUses();
      await send(ledger, range(1, 5));
      const heartbeat = (queueDepth: number) =>
        ingest.handle(terminalTopic('T-0001', 'heartbeat'), Buffer.from(JSON.stringify({ time: 1, queueDepth, lastSeq: ledger.lastSeq, uptimeSeconds: 3 })));
      expect((await heartbeat(4)).replies).toEqual([]); // still sending: let it
      const [resend] = (await heartbeat(0)).replies;
      expect(resend?.topic).toBe('tally/v1/terminal/T-0001/resend');
      expect(parseJsonPayload('resend', resend!.payload).fromSeq).toBe(6);
      const [time] = (await ingest.handle(terminalTopic('T-0001', 'status'), Buffer.from('{"state":"online"}'))).replies;
      expect(time?.topic).toBe('tally/v1/terminal/T-0001/time');
      expect(parseJsonPayload('time', time!.payload).serverTime).toBe(clock.now());
    });

    it('records heartbeats, statuses and answers a batch claim online', async () => {
      const { ledger, batch } = ledgerWithUses();
      const hb = await ingest.handle(terminalTopic('T-0001', 'heartbeat'), Buffer.from(JSON.stringify({ time: 1, queueDepth: 2, lastSeq: 9, uptimeSeconds: 3 })));
      expect(hb.accepted).toBe(true);
      await ingest.handle(terminalTopic('T-0001', 'status'), Buffer.from('{"state":"online"}'));
      expect(ingest.terminalStatuses().get('T-0001')?.state).toBe('online');
      const claim = (terminalId: string) =>
        ingest.handle(terminalTopic(terminalId, 'claim'), Buffer.from(JSON.stringify({ transaction: 4, batchId: batch.batchIdHex, batchNo: 1, clinicCode: 'CL-1' })));
      const first = parseJsonPayload('claim-result', (await claim('T-0001')).replies[0]!.payload);
      expect(first.data).toEqual({ batchId: batch.batchIdHex, granted: true });
      const second = parseJsonPayload('claim-result', (await claim('T-0002')).replies[0]!.payload);
      expect(second.data).toEqual({ batchId: batch.batchIdHex, granted: false, holder: 'T-0001' });
      await send(ledger, range(1, ledger.lastSeq));
      expect((await store.batchHolder(batch.batchIdHex))?.seq).toBe(2);
    });
  });

  describe('Ingest: bad input is refused with a recorded reason and nothing is lost', () => {
    it('refuses malformed, truncated and oversized reports and keeps running', async () => {
      const { ledger } = ledgerWithUses();
      const topic = terminalTopic('T-0001', 'report');
      const good = report(ledger, range(1, 3));
      const cases: Array<[Uint8Array, string]> = [
        [Uint8Array.of(1, 2, 3), 'malformed'],
        [good.slice(0, good.length - 5), 'malformed'],
        [new Uint8Array(300 * 1024), 'oversized'],
        [Buffer.from('{"json":"instead"}'), 'malformed'],
      ];
      for (const [payload, reason] of cases) {
        const outcome = await ingest.handle(topic, payload);
        expect(outcome).toMatchObject({ accepted: false, reason });
      }
      expect((await ingest.handle('tally/v1/terminal/T-0001/nonsense', good)).reason).toBe('unknown-topic');
      expect((await ingest.handle('tally/v1/terminal/T-0001/ack', good)).reason).toBe('unknown-topic');
      expect((await ingest.handle(terminalTopic('T-0001', 'heartbeat'), Buffer.from('{"queueDepth":-1}'))).reason).toBe('schema');
      expect((await store.rejections()).map((r) => r.reason)).toEqual(['malformed', 'malformed', 'oversized', 'malformed', 'unknown-topic', 'unknown-topic', 'schema']);
      expect((await send(ledger, range(1, 3))).inserted).toBe(3);
    });

    it('survives random garbage on every topic', async () => {
      for (let i = 0; i < 300; i++) {
        const kind = (['report', 'heartbeat', 'status', 'claim', 'response'] as const)[i % 5]!;
        const payload = i % 3 === 0 ? Uint8Array.from([0x54, 0x52, 0x01, 0x00, ...randomBytes(i)]) : new Uint8Array(randomBytes(i));
        const outcome = await ingest.handle(terminalTopic('T-0009', kind), payload);
        expect(outcome.accepted).toBe(false);
      }
      expect(await store.entryCount()).toBe(0);
      expect(ingest.stats.messagesRejected).toBe(300);
    });

    it('refuses a certificate that does not chain to the investor root', async () => {
      const other = new SignedLedger(makeInvestor(), 'T-0001', 'CL-1');
      const outcome = await send(other, [1]);
      expect(outcome).toMatchObject({ accepted: false, reason: 'bad-certificate' });
      expect(ackOf(outcome).error?.code).toBe('bad-certificate');
      expect(await store.entryCount()).toBe(0);
    });

    it('refuses a terminal publishing as another, and raises an alert', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      const outcome = await send(ledger, range(1, 3), 'T-0002');
      expect(outcome).toMatchObject({ accepted: false, reason: 'terminal-mismatch' });
      expect(await store.entryCount()).toBe(0);
      expect((await store.alerts()).map((a) => a.kind)).toEqual(['terminal-impersonation']);
    });

    it('refuses unsigned, wrongly signed and altered entries, storing the rest', async () => {
      const ledger = new SignedLedger(investor, 'T-0001', 'CL-1');
      ledger.append(EntryType.USE_STARTED, { ref: 1 });
      ledger.append(EntryType.USE_COMPLETED, { ref: 1 }, generateSigningKey().privateKey); // seq 3: someone else's key
      const altered = ledger.entry(2).slice();
      altered[altered.length - 70] = altered[altered.length - 70]! ^ 0x01; // a body byte
      const zeroSig = ledger.entry(1).slice();
      zeroSig.fill(0, zeroSig.length - 64);
      const outcome = await ingest.handle(terminalTopic('T-0001', 'report'), encodeReport({ transaction: 9, certificate: ledger.certificate, entries: [zeroSig, ledger.entry(1), altered, ledger.entry(3)] }));
      expect(outcome.accepted).toBe(true);
      expect(outcome.inserted).toBe(1);
      const ack = ackOf(outcome);
      expect(ack.status).toBe('error');
      expect(rangesToSeqs(ack.data.committed)).toEqual([1]);
      expect(ack.data.rejected?.map((r) => r.reason).sort()).toEqual(['bad-signature', 'bad-signature', 'bad-signature']);
      expect(await store.entryCount()).toBe(1);
      expect((await store.rejections())[0]?.reason).toBe('bad-signature');
    });

    it('names the one wrongly signed entry in a long report', async () => {
      const ledger = new SignedLedger(investor, 'T-0001', 'CL-1');
      for (let i = 2; i <= 40; i++) ledger.append(EntryType.USE_STARTED, { ref: 1 }, i === 17 ? generateSigningKey().privateKey : undefined);
      const outcome = await send(ledger, range(1, 40));
      if (signatureCheck === 'every-entry') {
        expect(ackOf(outcome).data.rejected).toEqual([{ seq: 17, reason: 'bad-signature' }]);
        expect(outcome.inserted).toBe(39);
      } else {
        expect(outcome.inserted).toBe(40); // vouched for by the anchor; the audit names it (below)
      }
    });

    it('refuses a second device claiming a known terminal id', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      await send(ledger, [1, 2]);
      const impostor = new SignedLedger(investor, 'T-0001', 'CL-1'); // a genuine root signature, another device key
      const outcome = await send(impostor, [1]);
      expect(outcome).toMatchObject({ accepted: false, reason: 'certificate-changed' });
      expect((await store.alerts()).map((a) => a.kind)).toEqual(['certificate-changed']);
    });

    it('catches a forked ledger: same seq with other content, and a broken hash chain', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      await send(ledger, range(1, 4));
      const fork = forkOf(ledger);
      const outcome = await send(fork, [3, 5]);
      expect(outcome.inserted).toBe(0);
      expect(ackOf(outcome).data.rejected?.map((r) => [r.seq, r.reason]).sort()).toEqual([
        [3, 'ledger-fork'],
        [5, 'chain-broken'],
      ]);
      expect((await store.alerts()).map((a) => a.kind).sort()).toEqual(['chain-broken', 'ledger-fork']);
      expect((await store.entries('T-0001', 1, 10)).map((e) => e.raw)).toEqual(ledger.entries.slice(0, 4));
    });
  });

  describe('Ingest: reports of one terminal that arrive together are stored together', () => {
    it('acks each report for its own entries, dedupes across them, and out of order still comes out right', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      for (let i = 0; i < 30; i++) ledger.append(EntryType.USE_STARTED, { ref: 1 });
      const last = ledger.lastSeq;
      const insertEntries = store.insertEntries.bind(store);
      let transactions = 0;
      store.insertEntries = (rows, at) => (transactions++, insertEntries(rows, at));
      // all handed over before any is stored: the later ones wait behind the first and are coalesced
      const outcomes = await Promise.all([
        send(ledger, range(1, 10)),
        send(ledger, range(21, last)),
        send(ledger, range(8, 20)), // 8-10 again, inside the same transaction
        send(ledger, range(1, 10)), // the first report replayed
      ]);
      expect(outcomes.map((o) => o.accepted)).toEqual([true, true, true, true]);
      expect(outcomes.map((o) => rangesToSeqs(ackOf(o).data.committed))).toEqual([range(1, 10), range(21, last), range(8, 20), range(1, 10)]);
      expect(outcomes.map((o) => ackOf(o).status)).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(transactions).toBe(1);
      expect(outcomes.reduce((n, o) => n + o.inserted, 0)).toBe(last);
      expect(ingest.stats.entriesInserted).toBe(last);
      expect(ingest.stats.entriesDuplicate).toBe(3 + 10);
      expect(await store.entryCount()).toBe(last);
      expect((await store.terminal('T-0001'))?.contiguousSeq).toBe(last);
      expect((await store.entries('T-0001', 1, 100)).map((e) => e.raw)).toEqual(ledger.entries);
    });

    it('refuses a fork and a broken link between reports stored together, naming the report that carried them', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      const fork = forkOf(ledger);
      const [first, second, third] = await Promise.all([send(ledger, range(1, 3)), send(fork, [3]), send(fork, [5])]);
      expect(rangesToSeqs(ackOf(first!).data.committed)).toEqual([1, 2, 3]);
      expect(ackOf(second!).data.rejected).toEqual([{ seq: 3, reason: 'ledger-fork' }]);
      expect(second!.inserted).toBe(0);
      // the fork's seq 5 does not follow the genuine seq 4 once that arrives
      await send(ledger, [4]);
      expect(ackOf(third!).data.committed).toEqual([[5, 5]]);
      const later = await send(fork, [5]);
      expect(later.duplicates).toBe(1);
      expect((await store.alerts()).map((a) => a.kind)).toContain('ledger-fork');
      expect((await store.entries('T-0001', 1, 3)).map((e) => e.raw)).toEqual(ledger.entries.slice(0, 3));
    });
  });

  describe('Ingest: two workers storing neighbours at the same time', () => {
    it('still catches a broken link between what each stored, after both commit', async () => {
      const { ledger } = ledgerWithUses('T-0001');
      const fork = forkOf(ledger);
      const second = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock, signatureCheck });
      // both check their links before either stores: neither sees the other's entries
      const insertEntries = store.insertEntries.bind(store);
      let arrived = 0;
      let release!: () => void;
      const bothChecked = new Promise<void>((resolve) => (release = resolve));
      store.insertEntries = async (rows, at) => {
        if (++arrived === 2) release();
        await bothChecked;
        return insertEntries(rows, at);
      };
      const [mine, theirs] = await Promise.all([send(ledger, range(1, 3)), second.handle(terminalTopic('T-0001', 'report'), report(fork, [4, 5]))]);
      expect(mine.inserted + theirs.inserted).toBe(5);
      expect((await store.alerts()).filter((a) => a.kind === 'chain-broken').map((a) => a.key)).toEqual(['chain:T-0001:4']);
    });
  });

  describe('Ingest: signature audit', () => {
    it('finds an entry that is chained correctly but not signed by the terminal', async () => {
      const ledger = new SignedLedger(investor, 'T-0001', 'CL-1');
      ledger.append(EntryType.USE_STARTED, { ref: 1 });
      ledger.append(EntryType.USE_COMPLETED, { ref: 1 }, generateSigningKey().privateKey); // seq 3, chained by seq 4
      ledger.append(EntryType.USE_COMPLETED, { ref: 1 });
      const outcome = await send(ledger, range(1, 4));
      if (signatureCheck === 'every-entry') {
        expect(ackOf(outcome).data.rejected?.map((r) => [r.seq, r.reason])).toEqual([[3, 'bad-signature']]);
      } else {
        // the anchor (seq 4) vouches for the run; the audit catches seq 3 afterwards
        expect(outcome.inserted).toBe(4);
        expect(await ingest.auditSignatures()).toBe(4);
        expect((await store.alerts()).map((a) => [a.kind, a.detail])).toEqual([['bad-entry-signature', 'seq 3 is chained but its own signature is invalid']]);
        expect(await store.auditedSeq('T-0001')).toBe(4);
        expect(await ingest.auditSignatures()).toBe(0);
      }
    });
  });

  describe('Ingest: fraud across terminals', () => {
    it('alerts when one batch is loaded on two terminals and a serial is used on both', async () => {
      const batch = makeBatch(investor, 'CL-1', 5, 10);
      const a = new SignedLedger(investor, 'T-000A', 'CL-1');
      const b = new SignedLedger(investor, 'T-000B', 'CL-1');
      for (const ledger of [a, b]) {
        ledger.loadBatch(batch);
        ledger.use(batch, 7);
      }
      await send(a, range(1, a.lastSeq));
      await send(b, range(1, b.lastSeq));
      const alerts = await store.alerts();
      expect(alerts.map((x) => x.kind).sort()).toEqual(['batch-on-two-terminals', 'serial-used-twice']);
      expect(alerts.every((x) => x.terminalId === 'T-000B')).toBe(true);
      // replaying does not raise them again
      await send(b, range(1, b.lastSeq));
      expect(await store.alerts()).toHaveLength(2);
    });

    it('does not call a serial reused after a release a double use', async () => {
      const { ledger } = ledgerWithUses(); // serial 3 reserved, released, reserved again
      await send(ledger, range(1, ledger.lastSeq));
      expect(await store.alerts()).toEqual([]);
    });
  });
});
