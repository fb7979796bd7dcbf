/**
 * Ingest benchmark, all through a real Mosquitto started here on a free
 * loopback port:
 * - raw broker rate, the median of five runs: the same report payloads
 *   published (QoS 1, within the broker's receive maximum) and received by a
 *   bare subscriber;
 * - ingest rate into SQLite and into a throw-away PostgreSQL: the same
 *   payloads through the ingest server (certificate, signature and hash-chain
 *   verification, idempotent store), until every entry is stored;
 * - the time to drain a 100,000-entry backlog from a terminal's outbox to the
 *   server (SQLite) with application acks, with each signature check;
 * - the ingest's own work in two halves, each alone on one core: preparing
 *   the reports (parse and verify, chain-anchored) and the SQLite store (the
 *   same entries, already verified, inserted with durable commits, grouped as
 *   the ingest groups them). With both halves on every core and the broker
 *   and terminals free, an ingest could reach at most cores / (prepare +
 *   store) per entry: ingest_bound, which bounds the ratio to the raw rate.
 * Both signature checks are measured (ingest/verifyReport.ts): chain-anchored
 * (the default) and every entry's own Ed25519 signature. The server prepares
 * reports on its worker threads (ingest/ingestWorkerPool.ts). The publishing
 * terminals run on a thread of their own (publisherWorker.ts), for the raw
 * rate and the ingest alike: they are other machines, not the server's load.
 * Entries/s is the figure; the ratio to the raw rate says what the ingest costs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { encodeReport } from '../src/codecs/mqtt/report.js';
import { terminalTopic } from '../src/codecs/mqtt/topics.js';
import { generateSigningKey, signMessage, verifyMessage } from '../src/crypto/ed25519.js';
import { createServerStore, type ServerStoreOptions } from '../src/server/createServerStore.js';
import { createIngestServer } from '../src/server/IngestServer.js';
import { parseReport } from '../src/codecs/mqtt/report.js';
import { verifyReport, type SignatureCheck } from '../src/server/ingest/verifyReport.js';
import type { EntryRow } from '../src/server/ServerStore.js';
import { createSyncClient } from '../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../test/support/mosquitto.js';
import { startPostgres } from '../test/support/postgres.js';
import { InMemoryOutbox, makeInvestor, type Investor, type SignedLedger } from '../test/support/signedLedger.js';
import { busyLedger } from '../test/support/syncHarness.js';
import { measureSteal } from './cpuSteal.js';
import type { PublisherData } from './publisherWorker.js';

export interface IngestBenchOptions {
  readonly terminals?: number;
  readonly entriesPerTerminal?: number;
  readonly entriesPerReport?: number;
  readonly backlog?: number;
  readonly postgres?: boolean;
}

interface Message {
  readonly topic: string;
  readonly payload: Buffer;
}

function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * The terminals, on a worker thread (bench/publisherWorker.ts), connected and
 * waiting: start() publishes every message, 20 awaiting PUBACK at most, and
 * resolves when the broker has acked them all.
 */
async function readyPublisher(url: string, messages: readonly Message[]): Promise<{ start(): Promise<void> }> {
  const data: PublisherData = { url, messages, window: 20 };
  const worker = new Worker(new URL('./publisherWorker.js', import.meta.url), { workerData: data });
  const replies: Array<(reply: unknown) => void> = [];
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  failed.catch(() => undefined);
  worker.on('message', (reply) => replies.shift()?.(reply));
  const next = (): Promise<unknown> => Promise.race([new Promise((resolve) => replies.push(resolve)), failed]);
  const ready = await next();
  if (ready !== 'ready') throw new Error(`bench publisher: ${JSON.stringify(ready)}`);
  return {
    async start() {
      const done = next();
      worker.postMessage('go');
      const reply = await done.finally(() => worker.terminate());
      if (reply !== 'done') throw new Error(`bench publisher: ${JSON.stringify(reply)}`);
    },
  };
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function rawBrokerRate(broker: RunningMosquitto, messages: readonly Message[], entries: number): Promise<{ entriesPerSecond: number; messagesPerSecond: number }> {
  const subscriber = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  let received = 0;
  subscriber.on('message', () => received++);
  await subscriber.subscribeAsync('tally/v1/terminal/+/report', { qos: 1 });
  const publisher = await readyPublisher(broker.url, messages);
  const started = performance.now();
  await publisher.start();
  await waitUntil(() => received >= messages.length, 60_000, 'raw messages');
  const seconds = (performance.now() - started) / 1000;
  await subscriber.endAsync();
  return { entriesPerSecond: entries / seconds, messagesPerSecond: messages.length / seconds };
}

async function ingestRate(
  broker: RunningMosquitto,
  investor: Investor,
  storeOptions: ServerStoreOptions,
  signatureCheck: SignatureCheck,
  messages: readonly Message[],
  entries: number,
): Promise<number> {
  const store = await createServerStore(storeOptions);
  const server = await createIngestServer({ store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 60_000, signatureCheck });
  try {
    const publisher = await readyPublisher(broker.url, messages);
    const started = performance.now();
    await publisher.start();
    await waitUntil(() => server.ingest.stats.entriesInserted >= entries, 600_000, `ingest into ${storeOptions.kind}`);
    const seconds = (performance.now() - started) / 1000;
    if ((await store.entryCount()) !== entries) throw new Error(`bench: ${storeOptions.kind} holds ${await store.entryCount()} entries, expected ${entries}`);
    return entries / seconds;
  } finally {
    await server.stop();
    await store.close();
  }
}

async function drainBacklog(
  broker: RunningMosquitto,
  investor: Investor,
  dir: string,
  ledger: SignedLedger,
  signatureCheck: SignatureCheck,
): Promise<{ seconds: number; entries: number; reports: number }> {
  const outbox = new InMemoryOutbox(ledger);
  const store = await createServerStore({ kind: 'sqlite', path: join(dir, `drain-${signatureCheck}.db`) });
  const server = await createIngestServer({ store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 60_000, signatureCheck });
  const started = performance.now();
  // the link comes back after an outage: the whole outbox is pending
  const sync = createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 10, policy: { reportBatchSize: 250, maxReportsPerSecond: 1000, ackTimeoutMs: 30_000 } });
  try {
    await sync.drained(600_000);
    const seconds = (performance.now() - started) / 1000;
    if ((await store.entryCount()) !== ledger.lastSeq) throw new Error('bench: backlog not stored completely');
    return { seconds, entries: ledger.lastSeq, reports: sync.stats.reportsSent };
  } finally {
    await sync.stop();
    await server.stop();
    await store.close();
  }
}

/**
 * The two halves of the ingest's own work, each alone on one core: preparing
 * the reports (parse, certificate, hash links, chain-anchored signatures: what
 * the worker threads do) and the SQLite store (verified rows, durable commits,
 * 20 reports at a time as the publisher sends them). No ingest beats their sum.
 */
async function ingestCeiling(investor: Investor, path: string, messages: readonly Message[], entries: number): Promise<{ prepareUsPerEntry: number; storeEntriesPerSecond: number }> {
  const prepareAll = async (): Promise<EntryRow[][]> => {
    const out: EntryRow[][] = [];
    for (const message of messages) {
      const terminalId = message.topic.split('/')[3]!;
      const payload = new Uint8Array(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
      const verified = await verifyReport(parseReport(payload), terminalId, investor.rootPublicKey, 'chain-anchored');
      out.push(verified.entries.map((e) => e.row));
    }
    return out;
  };
  await prepareAll(); // the JIT's warm-up
  const prepareStarted = performance.now();
  const reports = await prepareAll();
  const prepareUsPerEntry = ((performance.now() - prepareStarted) * 1000) / entries;
  const store = await createServerStore({ kind: 'sqlite', path });
  try {
    for (const report of reports) await store.registerTerminal({ terminalId: report[0]!.terminalId, clinicCode: report[0]!.clinicCode, devicePublicKey: new Uint8Array(32), certificate: new Uint8Array(1) }, 0);
    const started = performance.now();
    for (let i = 0; i < reports.length; i += 20) await Promise.all(reports.slice(i, i + 20).map((rows) => store.insertEntries(rows, Date.now())));
    const seconds = (performance.now() - started) / 1000;
    if ((await store.entryCount()) !== entries) throw new Error('bench: the store ceiling run did not store every entry');
    return { prepareUsPerEntry, storeEntriesPerSecond: entries / seconds };
  } finally {
    await store.close();
  }
}

function verifyRate(): number {
  const key = generateSigningKey();
  const message = new Uint8Array(300).fill(7);
  const signature = signMessage(key.privateKey, message);
  const n = 5000;
  const started = performance.now();
  for (let i = 0; i < n; i++) verifyMessage(key.publicKey, message, signature);
  return n / ((performance.now() - started) / 1000);
}

export async function benchIngest(options: IngestBenchOptions = {}): Promise<Record<string, number>> {
  const terminals = options.terminals ?? 8;
  // 80,000 entries in 800 reports: long enough to leave the JIT's warm-up behind
  const perTerminal = options.entriesPerTerminal ?? 10_000;
  const perReport = options.entriesPerReport ?? 100;
  const backlog = options.backlog ?? 100_000;
  const investor = makeInvestor();
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-ingest-'));
  const broker = await startMosquitto();
  const postgres = options.postgres === false ? undefined : await startPostgres();
  try {
    const messages: Message[] = [];
    let entries = 0;
    for (let t = 0; t < terminals; t++) {
      const ledger = busyLedger(investor, `T-BENCH-${t}`, perTerminal);
      entries += ledger.lastSeq;
      for (let i = 0; i < ledger.entries.length; i += perReport) {
        const payload = encodeReport({ transaction: i, certificate: ledger.certificate, entries: ledger.entries.slice(i, i + perReport) });
        messages.push({ topic: terminalTopic(ledger.terminalId, 'report'), payload: Buffer.from(payload) });
      }
    }
    const payloadBytes = messages.reduce((n, m) => n + m.payload.length, 0) / messages.length;
    const stealSince = measureSteal();
    // the raw run takes a fifth of a second: the median of five, so one noisy moment does not make the ratio
    const rawRuns: Array<{ entriesPerSecond: number; messagesPerSecond: number }> = [];
    for (let i = 0; i < 5; i++) rawRuns.push(await rawBrokerRate(broker, messages, entries));
    rawRuns.sort((a, b) => a.entriesPerSecond - b.entriesPerSecond);
    const raw = rawRuns[2]!;
    const sqlite = await ingestRate(broker, investor, { kind: 'sqlite', path: join(dir, 'anchored.db') }, 'chain-anchored', messages, entries);
    const sqliteEvery = await ingestRate(broker, investor, { kind: 'sqlite', path: join(dir, 'every.db') }, 'every-entry', messages, entries);
    const halves = await ingestCeiling(investor, join(dir, 'ceiling.db'), messages, entries);
    const ceiling = halves.storeEntriesPerSecond;
    // both halves on every core at once, the broker and the terminals costing nothing: an upper bound on this machine
    const bound = (cpus().length * 1e6) / (halves.prepareUsPerEntry + 1e6 / ceiling);
    const pgEvery = postgres ? await ingestRate(broker, investor, { kind: 'postgres', connectionString: postgres.createDatabase('bench_every') }, 'every-entry', messages, entries) : Number.NaN;
    const pg = postgres ? await ingestRate(broker, investor, { kind: 'postgres', connectionString: postgres.createDatabase('bench_anchored') }, 'chain-anchored', messages, entries) : Number.NaN;
    const backlogLedger = busyLedger(investor, 'T-BACKLOG', backlog);
    const drainEvery = await drainBacklog(broker, investor, dir, backlogLedger, 'every-entry');
    const drain = await drainBacklog(broker, investor, dir, backlogLedger, 'chain-anchored');
    const steal = stealSince();
    return {
      cpus: cpus().length,
      ...(steal !== undefined ? { cpu_steal_pct: steal } : {}),
      entries,
      entries_per_report: perReport,
      report_bytes_avg: round(payloadBytes),
      ed25519_verifies_per_s_one_core: round(verifyRate()),
      raw_broker_entries_per_s: round(raw.entriesPerSecond),
      raw_broker_messages_per_s: round(raw.messagesPerSecond),
      raw_broker_entries_per_s_min_of_5: round(rawRuns[0]!.entriesPerSecond),
      raw_broker_entries_per_s_max_of_5: round(rawRuns[4]!.entriesPerSecond),
      sqlite_store_alone_entries_per_s: round(ceiling),
      sqlite_store_alone_ratio_to_raw: round(ceiling / raw.entriesPerSecond, 3),
      prepare_alone_us_per_entry_one_core: round(halves.prepareUsPerEntry, 2),
      ingest_bound_entries_per_s_all_cores: round(bound),
      ingest_bound_ratio_to_raw: round(bound / raw.entriesPerSecond, 3),
      ingest_sqlite_every_entry_sig_entries_per_s: round(sqliteEvery),
      ingest_sqlite_every_entry_sig_ratio_to_raw: round(sqliteEvery / raw.entriesPerSecond, 3),
      ingest_sqlite_chain_anchored_entries_per_s: round(sqlite),
      ingest_sqlite_chain_anchored_ratio_to_raw: round(sqlite / raw.entriesPerSecond, 3),
      ingest_postgres_every_entry_sig_entries_per_s: round(pgEvery),
      ingest_postgres_every_entry_sig_ratio_to_raw: round(pgEvery / raw.entriesPerSecond, 3),
      ingest_postgres_chain_anchored_entries_per_s: round(pg),
      ingest_postgres_chain_anchored_ratio_to_raw: round(pg / raw.entriesPerSecond, 3),
      drain_backlog_entries: drain.entries,
      drain_backlog_every_entry_sig_seconds: round(drainEvery.seconds, 2),
      drain_backlog_chain_anchored_seconds: round(drain.seconds, 2),
      drain_backlog_chain_anchored_entries_per_s: round(drain.entries / drain.seconds),
    };
  } finally {
    await broker.close();
    await postgres?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node dist/bench/ingest.js` runs it alone
if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  benchIngest({ backlog: Number(process.env.BACKLOG ?? 100_000) }).then(
    (figures) => {
      console.log(JSON.stringify({ ...figures, bench_seconds: round((Date.now() - started) / 1000, 1) }, null, 2));
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
