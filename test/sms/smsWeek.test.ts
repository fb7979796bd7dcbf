/**
 * The SMS path end to end in one process, with hand-moved time: the terminal's
 * SmsReporter drives its simulated modem with real AT commands (GsmModem), the
 * simulated network (delay, jitter, loss, duplicates, seeded) carries the SMS
 * to the server's simulated modem, which our driver reads on +CMTI and hands
 * to SmsInbox over a real SQLite store and Ingest.
 *   - a week with the data link down: the server learns each day's uses by SMS
 *     within the daily budget; when the link returns the ledger matches every head;
 *   - a rolled-back terminal is caught, by SMS alone and by the ledger it sends later;
 *   - bad input: garbage, truncated, concatenated, text, forged, replayed; a modem
 *     that answers ERROR, no network, silence: nothing recorded wrongly, nothing counted twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { encodeJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { encodeDeliverPdu } from '../../src/codecs/sms/pdu.js';
import { entryHash } from '../../src/crypto/ledgerChain.js';
import { signSmsReport } from '../../src/crypto/smsSignature.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { SmsInbox, smsStatus, type SmsVerdict } from '../../src/server/sms/SmsInbox.js';
import type { SimulatedModem } from '../../src/sim/modem/SimulatedModem.js';
import { SimulatedSmsNetwork, type NetworkFaults } from '../../src/sim/modem/SimulatedSmsNetwork.js';
import { SERVER_MODEM_NUMBER, TERMINAL_MODEM_NUMBER } from '../../src/sim/modem/ModemRig.js';
import { memoryStateStore, SmsReporter } from '../../src/sync/sms/SmsReporter.js';
import { startInMemoryModems } from '../support/inMemoryModems.js';
import { ManualScheduler } from '../../src/util/scheduler.js';
import { makeBatch, makeInvestor, SignedLedger, type BatchCards, type Investor } from '../support/signedLedger.js';

const HOUR = 3_600_000;
const API_TOKEN = 'sms-week-token-0123456789abcdef';
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 11, 7);
const dir = mkdtempSync(join(tmpdir(), 'tally-sms-week-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let dbs = 0;

/** A ledger that copies another's first n entries and then goes its own way (a restored database) */
function restoredCopy(investor: Investor, original: SignedLedger, n: number): SignedLedger {
  const copy = new SignedLedger(investor, original.terminalId, original.clinicCode, original.device);
  const inner = copy as unknown as { entries: Uint8Array[]; prevHash: Uint8Array };
  inner.entries.length = 0;
  inner.entries.push(...original.entries.slice(0, n));
  inner.prevHash = entryHash(original.entry(n));
  return copy;
}

interface Rig {
  scheduler: ManualScheduler;
  store: ServerStore;
  ingest: Ingest;
  network: SimulatedSmsNetwork;
  terminalModem: SimulatedModem;
  serverModem: SimulatedModem;
  reporter: SmsReporter;
  verdicts: (SmsVerdict & { at: number })[];
  sentAt: number[];
  ledger: { current: SignedLedger };
  uses: Map<number, number>;
  step(ms: number, every?: number): Promise<void>;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 40; i++) await new Promise((r) => setImmediate(r));
}

async function startRig(faults: Partial<NetworkFaults>, seed: number, reporterOptions: { afterDownMs?: number; everyMs?: number; maxPerDay?: number } = {}): Promise<Rig> {
  const scheduler = new ManualScheduler(START);
  const investor = makeInvestor();
  const ledger = { current: new SignedLedger(investor, 'T-SMS-1', 'CL-1') };
  const batch = makeBatch(investor, 'CL-1', 1, 500);
  ledger.current.loadBatch(batch);
  const store = await createServerStore({ kind: 'sqlite', path: join(dir, `server-${++dbs}.db`) });
  const ingest = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock: scheduler, signatureCheck: 'every-entry' });
  // the server knows the terminal: its provisioning and batch came over the data link before it went down
  await ingest.handle(terminalTopic('T-SMS-1', 'report'), encodeReport({ transaction: 1, certificate: ledger.current.certificate, entries: [...ledger.current.entries] }));

  const network = new SimulatedSmsNetwork(scheduler, { seed, faults });
  const { terminalModem, serverModem, terminal: terminalDriver, server: serverDriver } = await startInMemoryModems(scheduler, network);

  const inbox = new SmsInbox(store, { clock: scheduler });
  const verdicts: (SmsVerdict & { at: number })[] = [];
  serverDriver.onMessage((sms) => {
    if (!sms.sms) {
      verdicts.push({ ok: false, code: sms.error!.code, detail: sms.error!.message, at: scheduler.now() });
      return;
    }
    const binary = sms.sms.alphabet === 'binary' && !sms.sms.header?.concatenation;
    void inbox.receive({ sender: sms.sms.originator, octets: sms.sms.userData, binary }).then((v) => verdicts.push({ ...v, at: scheduler.now() }));
  });
  const uses = new Map<number, number>([[1, 0]]);
  const sentAt: number[] = [];
  terminalModem.onSent(() => sentAt.push(scheduler.now()));
  const reporter = new SmsReporter({
    terminalId: 'T-SMS-1',
    signingKey: ledger.current.device.privateKey,
    serverNumber: SERVER_MODEM_NUMBER,
    afterDownMs: reporterOptions.afterDownMs ?? 2 * HOUR,
    everyMs: reporterOptions.everyMs ?? 8 * HOUR,
    maxPerDay: reporterOptions.maxPerDay ?? 3,
    retryMs: 10 * 60_000,
    clock: scheduler,
    sender: terminalDriver,
    state: memoryStateStore(),
    source: {
      head: () => ({ seq: ledger.current.lastSeq, hash: entryHash(ledger.current.entry(ledger.current.lastSeq)) }),
      outboxDepth: () => ledger.current.lastSeq - 2,
      alerts: () => 0,
      batchUses: () => [...uses].map(([batchNo, usesTotal]) => ({ batchNo, usesTotal })),
    },
  });
  const step = async (ms: number, every = 20_000) => {
    for (let done = 0; done < ms; done += every) {
      scheduler.advance(Math.min(every, ms - done));
      await settle();
    }
  };
  (batch as BatchCards & { next?: number }).next = 1;
  return { scheduler, store, ingest, network, terminalModem, serverModem, reporter, verdicts, sentAt, ledger, uses, step, ...{ batch } } as Rig & { batch: BatchCards };
}

/** Uses during a day, 08:00 to 17:00: n of them */
async function dayOfUses(rig: Rig & { batch: BatchCards }, n: number): Promise<void> {
  await rig.step(8 * HOUR);
  const b = rig.batch as BatchCards & { next: number };
  for (let i = 0; i < n; i++) {
    rig.ledger.current.use(rig.batch, b.next++);
    rig.uses.set(1, rig.uses.get(1)! + 1);
    await rig.step(9 * HOUR / n);
  }
  await rig.step(7 * HOUR);
}

describe('SMS path, a simulated week with the data link down', () => {
  it('the server learns every day\'s uses and the head by SMS within the budget; the ledger it later receives holds every SMS head', async () => {
    const rig = (await startRig({ delayMs: 4000, jitterMs: 90_000, loss: 0.1, duplicate: 0.1 }, 19)) as Rig & { batch: BatchCards };
    rig.reporter.dataLinkDown();
    const endOfDayTotals: number[] = [];
    for (let day = 0; day < 7; day++) {
      await dayOfUses(rig, 3 + day);
      endOfDayTotals.push(rig.uses.get(1)!);
    }
    await rig.step(6 * HOUR);
    const reports = await rig.store.smsReports('T-SMS-1');
    // within the budget: at most 3 sent each UTC day
    const perDay = new Map<string, number>();
    for (const at of rig.sentAt) perDay.set(new Date(at).toISOString().slice(0, 10), (perDay.get(new Date(at).toISOString().slice(0, 10)) ?? 0) + 1);
    expect(Math.max(...perDay.values())).toBeLessThanOrEqual(3);
    // every day's count reached the server: a report sent after that day's last use and before the next day's first
    for (let day = 0; day < 7; day++) {
      const from = START + day * DAY + 17 * HOUR;
      const to = START + (day + 1) * DAY + 8 * HOUR;
      const learned = reports.filter((r) => r.sentAt >= from && r.sentAt < to).map((r) => r.batches.find((b) => b.batchNo === 1)?.usesTotal);
      expect(learned, `day ${day + 1}`).toContain(endOfDayTotals[day]);
    }
    // the network's duplicates were recognised as replays, never recorded twice
    const replays = rig.verdicts.filter((v) => !v.ok && v.code === 'SMS_REPORT_REPLAYED').length;
    expect(rig.network.stats.duplicated).toBeGreaterThan(0);
    expect(replays).toBeGreaterThan(0);
    expect(new Set(reports.map((r) => r.counter)).size).toBe(reports.length);
    expect(reports.length).toBe(rig.reporter.stats.sent - rig.network.stats.lost);
    const status = await smsStatus(rig.store, (id) => rig.store.lastDataAt(id));
    expect(status[0]).toMatchObject({ terminalId: 'T-SMS-1', smsOnly: true, headSeq: rig.ledger.current.lastSeq });
    const api = await buildHttpApi({ store: rig.store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, adminToken: API_TOKEN, clock: () => rig.scheduler.now() });
    const terminals = async () => ((await api.inject({ method: 'GET', url: '/api/terminals', headers: { authorization: `Bearer ${API_TOKEN}` } })).json() as { data: { reachability?: string; sms?: { headSeq: number; reports: number } }[] }).data;
    expect((await terminals())[0]).toMatchObject({ reachability: 'sms-only', sms: { headSeq: rig.ledger.current.lastSeq, reports: reports.length } });

    // the data link returns: the ledger holds every SMS head
    rig.reporter.dataLinkUp();
    const ledger = rig.ledger.current;
    await rig.ingest.handle(terminalTopic('T-SMS-1', 'report'), encodeReport({ transaction: 2, certificate: ledger.certificate, entries: ledger.entries.slice(2) }));
    const checked = await rig.store.smsReports('T-SMS-1');
    expect(checked.every((r) => r.headCheck === 1)).toBe(true);
    expect((await rig.store.alerts()).filter((a) => a.kind === 'sms-head-contradicted')).toEqual([]);
    expect((await smsStatus(rig.store, (id) => rig.store.lastDataAt(id)))[0]!.smsOnly).toBe(false);
    expect((await terminals())[0]).toMatchObject({ reachability: 'data' });
    await api.close();

    const delays = checked.map((r) => r.receivedAt - r.sentAt).sort((a, b) => a - b);
    const days = [...perDay.values()];
    process.stdout.write(
      `sms week: ${rig.reporter.stats.sent} sent in 7 days (${days.join('/')} per day, budget 3), ${checked.length} recorded, network lost ${rig.network.stats.lost} doubled ${rig.network.stats.duplicated}, ` +
        `${replays} replays refused; delay p50 ${Math.round(delays[Math.floor(delays.length / 2)]! / 1000)} s max ${Math.round(delays[delays.length - 1]! / 1000)} s (simulated network 4-94 s, read in 20 s steps)\n`,
    );
  }, 120_000);

  it('a rolled-back terminal is caught by SMS alone, and by the ledger it sends when the link returns', async () => {
    const rig = (await startRig({ delayMs: 4000 }, 3)) as Rig & { batch: BatchCards };
    rig.reporter.dataLinkDown();
    await dayOfUses(rig, 6);
    await dayOfUses(rig, 6);
    const before = await rig.store.smsReports('T-SMS-1');
    expect(before.length).toBeGreaterThanOrEqual(4);
    // the database is restored from a copy of the first day's morning; the terminal works on from there
    const investor = rig.ledger.current.investor;
    const restored = restoredCopy(investor, rig.ledger.current, 2 + 3 * 3);
    rig.ledger.current = restored;
    restored.use(rig.batch, 400);
    await rig.step(DAY);
    const alerts = (await rig.store.alerts()).filter((a) => a.kind === 'sms-head-contradicted');
    expect(alerts.length).toBeGreaterThan(0);
    expect(alerts[0]!.detail).toMatch(/below or beside the head/);

    // the link returns: the restored ledger's entries contradict the SMS heads at their seqs, and its heartbeat ends before them
    rig.reporter.dataLinkUp();
    await rig.ingest.handle(terminalTopic('T-SMS-1', 'report'), encodeReport({ transaction: 3, certificate: restored.certificate, entries: restored.entries.slice(2) }));
    await rig.ingest.handle(terminalTopic('T-SMS-1', 'heartbeat'), encodeJsonPayload('heartbeat', { time: rig.scheduler.now(), queueDepth: 0, lastSeq: restored.lastSeq, uptimeSeconds: 1 }));
    const checked = await rig.store.smsReports('T-SMS-1');
    expect(checked.filter((r) => r.headSeq > restored.lastSeq).every((r) => r.headCheck === 2)).toBe(true);
    expect(checked.filter((r) => r.headCheck === 2).length).toBeGreaterThan(0);
  }, 120_000);

  it('bad input: garbage, truncated, concatenated, text, forged and replayed SMS are refused by code; a modem that fails, has no network or is silent costs nothing', async () => {
    const rig = (await startRig({ delayMs: 1000 }, 5, { afterDownMs: HOUR, everyMs: HOUR, maxPerDay: 24 })) as Rig & { batch: BatchCards };
    const key = rig.ledger.current.device.privateKey;
    const good = signSmsReport(key, 'T-SMS-1', { counter: 1, time: START / 1000, headSeq: 2, headHashPrefix: entryHash(rig.ledger.current.entry(2)).subarray(0, 8), outboxDepth: 0, alerts: 0, batches: [] });
    const deliver = (octets: Uint8Array, extra: Partial<Parameters<typeof encodeDeliverPdu>[0]> = {}) => rig.serverModem.accept(encodeDeliverPdu({ originator: TERMINAL_MODEM_NUMBER, timestamp: START, userData: octets, ...extra }).hex);
    const forged = good.slice();
    forged[12]! ^= 0x04;
    const other = signSmsReport(key, 'T-OTHER', { counter: 1, time: START / 1000, headSeq: 2, headHashPrefix: new Uint8Array(8), outboxDepth: 0, alerts: 0, batches: [] });
    rig.serverModem.accept('0004DEADBEEF');
    rig.serverModem.accept('07911326040000F0040B911346610089F60000208062917314080CC8329BFD06');
    deliver(good.subarray(0, 90));
    deliver(new Uint8Array([...good.subarray(0, 40), ...good]).subarray(0, 140));
    deliver(good.subarray(0, 100), { header: Uint8Array.of(0, 3, 7, 2, 1) });
    rig.serverModem.accept(encodeDeliverPdu({ originator: '10086', timestamp: START, text: 'Your balance is low' }).hex);
    deliver(forged);
    deliver(other);
    deliver(good);
    deliver(good);
    await rig.step(60_000, 1000);
    const codes = rig.verdicts.map((v) => (v.ok ? 'ok' : v.code)).sort();
    expect(codes).toEqual(['BAD_SMS_PDU', 'BAD_SMS_PDU', 'BAD_SMS_REPORT', 'BAD_SMS_REPORT', 'SMS_NOT_A_REPORT', 'SMS_NOT_A_REPORT', 'SMS_REPORT_FORGED', 'SMS_REPORT_REPLAYED', 'SMS_UNKNOWN_TERMINAL', 'ok'].sort());
    expect(await rig.store.smsReports()).toHaveLength(1);
    expect(rig.serverModem.stored()).toHaveLength(0);

    // the terminal's modem: ERROR on a send, then no network, then silent; each attempt is retried, none costs budget or doubles a report
    rig.terminalModem.faults.failSends = 1;
    rig.reporter.dataLinkDown();
    await rig.step(HOUR + 60_000, 1000);
    expect(rig.reporter.stats.failed).toBe(1);
    await rig.step(10 * 60_000, 1000);
    expect(rig.reporter.stats.sent).toBe(1);
    rig.terminalModem.faults.registered = false;
    await rig.step(HOUR, 1000);
    expect(rig.reporter.stats.failed).toBe(2);
    rig.terminalModem.faults.registered = true;
    rig.terminalModem.faults.silent = true;
    await rig.step(10 * 60_000 + 10_000, 1000);
    expect(rig.reporter.stats.failed).toBe(3);
    rig.terminalModem.faults.silent = false;
    await rig.step(10 * 60_000 + 10_000, 1000);
    const recorded = (await rig.store.smsReports()).filter((r) => r.sender === TERMINAL_MODEM_NUMBER);
    expect(rig.reporter.stats.sent).toBe(2);
    // counters 1 (injected above), then the reporter's: its failed attempts spent counters but none was recorded twice
    expect(new Set(recorded.map((r) => r.counter)).size).toBe(recorded.length);
    expect(recorded.length).toBe(3);
    expect(toHex(fromHex(recorded[0]!.bodyHex).subarray(0, 1))).toBe('a1');
  }, 120_000);
});
