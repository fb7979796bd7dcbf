/**
 * `npm run bench -- sms`: the SMS path's figures.
 *   - bytes per report: signed reports with 0, 1 and 5 batches (one SMS holds 140);
 *   - SMS per day over a simulated week with the data link down, at the default
 *     settings (first after 2 h, then every 8 h, at most 3 a day), the terminal's
 *     SmsReporter driving a simulated modem with real AT commands, time moved by hand;
 *   - end-to-end delay from the terminal's send to the server's record over the
 *     deployment's path: `tally sim modem` (network delay BENCH_SMS_NETWORK_MS,
 *     default 0, so the figure is the gateway's and ours), Debian's gammu-smsd on
 *     the server modem, RUNONRECEIVE = `tally server sms receive` into SQLite.
 * Load and CPU steal beside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeReport } from '../src/codecs/mqtt/report.js';
import { terminalTopic } from '../src/codecs/mqtt/topics.js';
import { parseSmsReport } from '../src/codecs/sms/smsReport.js';
import { generateSigningKey } from '../src/crypto/ed25519.js';
import { signSmsReport } from '../src/crypto/smsSignature.js';
import { Issuer, provisionTerminal, tempDir } from '../src/scenario/CardWorld.js';
import { createServerStore } from '../src/server/createServerStore.js';
import { Ingest } from '../src/server/ingest/Ingest.js';
import { SERVER_MODEM_NUMBER } from '../src/sim/modem/ModemRig.js';
import { SimulatedSmsNetwork } from '../src/sim/modem/SimulatedSmsNetwork.js';
import { memoryStateStore, SmsReporter } from '../src/sync/sms/SmsReporter.js';
import { loadDeviceKey } from '../src/terminal/deviceKey.js';
import { GsmModem } from '../src/transports/modem/GsmModem.js';
import { openSerialTransport } from '../src/transports/SerialPortTransport.js';
import { systemClock } from '../src/util/clock.js';
import { startInMemoryModems } from '../test/support/inMemoryModems.js';
import { ManualScheduler, systemScheduler } from '../src/util/scheduler.js';
import { measureSteal } from './cpuSteal.js';

const TALLY = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'tally.js');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

async function until(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function reportBytes(): { none: number; one: number; five: number } {
  const key = generateSigningKey().privateKey;
  const fields = (n: number) => ({ counter: 1, time: 1_800_000_000, headSeq: 1234, headHashPrefix: new Uint8Array(8), outboxDepth: 77, alerts: 0, batches: Array.from({ length: n }, (_, i) => ({ batchNo: i + 1, usesSince: 3, usesTotal: 40 })) });
  return { none: signSmsReport(key, 'T-0001', fields(0)).length, one: signSmsReport(key, 'T-0001', fields(1)).length, five: signSmsReport(key, 'T-0001', fields(5)).length };
}

/** A week with the data link down at the default settings: how many SMS each UTC day */
async function simulatedWeek(): Promise<{ perDay: number[]; received: number }> {
  const start = Date.UTC(2026, 11, 7);
  const scheduler = new ManualScheduler(start);
  const network = new SimulatedSmsNetwork(scheduler, { faults: { delayMs: 5000, jitterMs: 20_000 } });
  const { terminalModem, terminal, server } = await startInMemoryModems(scheduler, network);
  let received = 0;
  server.onMessage((m) => {
    if (m.sms) parseSmsReport(m.sms.userData);
    received++;
  });
  const sentAt: number[] = [];
  terminalModem.onSent(() => sentAt.push(scheduler.now()));
  let uses = 0;
  const key = generateSigningKey().privateKey;
  const reporter = new SmsReporter({
    terminalId: 'T-WEEK',
    signingKey: key,
    serverNumber: SERVER_MODEM_NUMBER,
    afterDownMs: 2 * HOUR,
    everyMs: 8 * HOUR,
    maxPerDay: 3,
    clock: scheduler,
    sender: terminal,
    state: memoryStateStore(),
    source: { head: () => ({ seq: 3 + uses * 3, hash: new Uint8Array(32) }), outboxDepth: () => uses * 3, alerts: () => 0, batchUses: () => [{ batchNo: 1, usesTotal: uses }] },
  });
  reporter.dataLinkDown();
  for (let minute = 0; minute < 7 * 24 * 60; minute++) {
    const hour = Math.floor(minute / 60) % 24;
    if (hour >= 8 && hour < 17 && minute % 90 === 0) uses++;
    scheduler.advance(60_000);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  reporter.stop();
  const perDay = Array.from({ length: 7 }, (_, d) => sentAt.filter((at) => at >= start + d * DAY && at < start + (d + 1) * DAY).length);
  return { perDay, received };
}

function lines(child: ChildProcess): string[] {
  const out: string[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    out.push(...parts);
  });
  return out;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Reports sent by a terminal's modem, recorded by tally server through gammu-smsd: send -> record in ms */
async function throughGammuSmsd(reports: number, networkMs: number): Promise<number[]> {
  const dir = tempDir('tally-bench-sms-');
  let sim: ChildProcess | undefined;
  let smsd: ChildProcess | undefined;
  const issuer = await new Issuer(dir).init();
  try {
    const dataDir = join(dir, 'terminal');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-BENCH', clinicCode: 'C1' });
    const storePath = join(dir, 'server.db');
    const store = await createServerStore({ kind: 'sqlite', path: storePath });
    const ledger = rig.terminal.ledger;
    await new Ingest({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, clock: systemClock, signatureCheck: 'every-entry' }).handle(
      terminalTopic('T-BENCH', 'report'),
      encodeReport({ transaction: 1, certificate: ledger.terminalCertificate(), entries: ledger.entriesFrom(1, 100).map((e) => e.raw) }),
    );
    const head = { seq: ledger.lastSeq(), hash: ledger.entryHashAt(ledger.lastSeq())! };
    rig.terminal.close();
    const key = loadDeviceKey(dataDir)!;

    sim = spawn(process.execPath, [TALLY, 'sim', 'modem', '--delay-ms', String(networkMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const simOut = lines(sim);
    await until(() => simOut.some((l) => l.startsWith('server modem')), 30_000, 'sim modem');
    const path = (who: string) => simOut.find((l) => l.startsWith(`${who} modem`))!.split(': ')[1]!;
    const spool = join(dir, 'spool');
    for (const sub of ['inbox', 'outbox', 'sent', 'error']) mkdirSync(join(spool, sub), { recursive: true });
    writeFileSync(
      join(dir, 'smsdrc'),
      `[gammu]\ndevice = ${path('server')}\nconnection = at\n\n[smsd]\nservice = files\ninboxformat = standard\ninboxpath = ${spool}/inbox/\noutboxpath = ${spool}/outbox/\n` +
        `sentsmspath = ${spool}/sent/\nerrorsmspath = ${spool}/error/\nlogfile = ${spool}/smsd.log\ncommtimeout = 1\nreceivefrequency = 1\nstatusfrequency = 0\ncheckbattery = 0\nchecksignal = 0\n` +
        `runonreceive = ${process.execPath} ${TALLY} server sms receive --store ${storePath} --inbox ${spool}/inbox/ >> ${spool}/receive.log 2>&1\n`,
    );
    smsd = spawn('gammu-smsd', ['-c', join(dir, 'smsdrc')], { stdio: 'ignore' });
    const log = () => {
      try {
        return readFileSync(join(spool, 'smsd.log'), 'utf8');
      } catch {
        return '';
      }
    };
    await until(() => log().includes('Starting phone communication'), 30_000, 'gammu-smsd');
    const transport = await openSerialTransport(path('terminal'));
    const modem = new GsmModem(transport, systemScheduler);
    await modem.initialise();
    const delays: number[] = [];
    for (let counter = 1; counter <= reports; counter++) {
      const octets = signSmsReport(key, 'T-BENCH', { counter, time: Math.floor(Date.now() / 1000), headSeq: head.seq, headHashPrefix: head.hash.subarray(0, 8), outboxDepth: 0, alerts: 0, batches: [] });
      const sentAt = Date.now();
      await modem.send(SERVER_MODEM_NUMBER, octets);
      await until(async () => (await store.smsReports('T-BENCH')).some((r) => r.counter === counter), 60_000, `report ${counter} recorded`);
      delays.push((await store.smsReports('T-BENCH')).find((r) => r.counter === counter)!.receivedAt - sentAt);
    }
    modem.close();
    await transport.close();
    await store.close();
    return delays;
  } finally {
    await stop(smsd);
    if (sim && sim.exitCode === null) sim.stdin!.end('quit\n');
    await stop(sim);
    issuer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchSms(): Promise<Record<string, number>> {
  const steal = measureSteal();
  const load = loadavg()[0] ?? 0;
  const bytes = reportBytes();
  const week = await simulatedWeek();
  const networkMs = Number(process.env.BENCH_SMS_NETWORK_MS ?? 0);
  const delays = (await throughGammuSmsd(Number(process.env.BENCH_SMS_REPORTS ?? 10), networkMs)).sort((a, b) => a - b);
  return {
    report_bytes_no_batch: bytes.none,
    report_bytes_one_batch: bytes.one,
    report_bytes_five_batches: bytes.five,
    week_sms_total: week.perDay.reduce((a, b) => a + b, 0),
    week_sms_per_day_max: Math.max(...week.perDay),
    week_sms_per_day_min: Math.min(...week.perDay),
    week_sms_received: week.received,
    e2e_reports: delays.length,
    e2e_network_delay_ms: networkMs,
    e2e_p50_ms: percentile(delays, 50),
    e2e_max_ms: delays[delays.length - 1] ?? NaN,
    load_1m: Number(load.toFixed(2)),
    cpu_steal_pct: steal() ?? -1,
  };
}

