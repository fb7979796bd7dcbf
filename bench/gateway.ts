/**
 * `npm run bench -- gateway`: messages a second through the isolation gateway
 * (HL7 v2 over MLLP in, canonical JSON over MQTT out, every message parsed,
 * checked, archived with an fsync'd group commit and published QoS 2 through
 * the SQLite MQTT store) and the latency it adds, beside the same traffic
 * published straight to the same broker with no gateway, in the same run.
 * The gateway runs as its own process (`tally gateway run`); the senders and
 * the subscriber share the bench's process. Same concurrency both ways: 64
 * messages in flight (4 connections x 16 for the HIS; 64 QoS 2 publishes in
 * flight direct). Figures: rates, p50/p99 latency send -> subscriber, the
 * ratio (goal >= 0.5), with load, CPU steal and the disk's fsync floor beside.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeCanonical } from '../src/codecs/gateway/declared.js';
import { MllpClient } from '../src/sim/his/MllpClient.js';
import { hisTraffic } from '../src/sim/his/HisSimulator.js';
import { startMosquitto } from '../test/support/mosquitto.js';
import { measureSteal } from './cpuSteal.js';
import { fsyncFloor } from './swipe.js';

const TALLY = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'tally.js');
const IN_FLIGHT = 64;
/** The gateway's QoS 2 window to the payment broker (the broker below allows 100 in flight) */
const PAYMENT_INFLIGHT = Number(process.env.BENCH_GATEWAY_PAYMENT_INFLIGHT ?? 96);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface RunFigures {
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  /** The gateway process's CPU time (user + system, all its threads) per message, us: less dependent on the machine's load than the rates */
  readonly cpuUsPerMsg?: number;
  /** The gateway's group commits (fsyncs) per message over its life (from its stop line) */
  readonly commitsPerMsg?: number;
}

/** User + system CPU time of a process so far (all its threads), ms, from /proc */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command name), in clock ticks (100 a second)
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Receive times by message key on the payment broker */
async function subscriber(url: string): Promise<{ client: MqttClient; received: Map<string, number>; waitFor: (n: number) => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-sub-${process.pid}`, clean: true });
  const received = new Map<string, number>();
  let waiting: { n: number; resolve: () => void } | undefined;
  client.on('message', (_topic, payload) => {
    const now = performance.now();
    const m = JSON.parse(payload.toString()) as { source?: { controlId?: string } };
    const key = m.source?.controlId;
    if (key && !received.has(key)) received.set(key, now);
    if (waiting && received.size >= waiting.n) waiting.resolve();
  });
  await client.subscribeAsync(['tally/gw/v1/registration', 'tally/gw/v1/order', 'tally/gw/v1/charge'], { qos: 2 });
  return {
    client,
    received,
    waitFor: (n) =>
      new Promise<void>((resolve) => {
        if (received.size >= n) return resolve();
        waiting = { n, resolve };
      }),
  };
}

function figures(sent: Map<string, number>, received: Map<string, number>, started: number): RunFigures {
  const latencies: number[] = [];
  let last = started;
  for (const [key, t] of received) {
    const s = sent.get(key);
    if (s !== undefined) latencies.push(t - s);
    last = Math.max(last, t);
  }
  latencies.sort((a, b) => a - b);
  return { rate: Math.round((received.size / (last - started)) * 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** The canonical messages the gateway would publish, straight to the broker, QoS 2, IN_FLIGHT at a time */
async function direct(url: string, count: number, prefix: string): Promise<RunFigures> {
  const sub = await subscriber(url);
  const pub = await mqtt.connectAsync(url, { clientId: `bench-pub-${process.pid}`, clean: true });
  const sent = new Map<string, number>();
  const started = performance.now();
  let next = 0;
  await new Promise<void>((resolve) => {
    let inflight = 0;
    const pump = (): void => {
      while (inflight < IN_FLIGHT && next < count) {
        const n = next++;
        const controlId = `${prefix}${n}`;
        const message = {
          v: 1,
          type: 'patient.registration',
          gatewaySeq: n + 1,
          gatewayId: 'gw1',
          acceptedAt: new Date().toISOString(),
          source: { application: 'REG', facility: 'HOSP1', controlId },
          body: { channel: 'registration', event: 'A04', patient: { id: `P${n}`, familyName: 'Wang', givenName: 'Wei', birthDate: '1980-01-01', sex: 'M' }, department: 'OPH', visitDate: '2026-12-02' },
        };
        sent.set(controlId, performance.now());
        inflight += 1;
        pub.publish('tally/gw/v1/registration', Buffer.from(encodeCanonical(message)), { qos: 2 }, () => {
          inflight -= 1;
          if (next >= count && inflight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  await sub.waitFor(count);
  const result = figures(sent, sub.received, started);
  await Promise.all([pub.endAsync(), sub.client.endAsync()]);
  return result;
}

/** HL7 through a `tally gateway run` process: 4 MLLP connections, 16 in flight each */
async function throughGateway(url: string, dir: string, count: number, prefix: string): Promise<RunFigures> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const gateway = spawn(process.execPath, [...(process.env.BENCH_GATEWAY_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_GATEWAY_PROFILE}`] : []), TALLY, 'gateway', 'run', '--db', join(dir, `${prefix}.db`), '--mllp', `127.0.0.1:${port}`, '--payment', url, '--rate', 'patient.registration=1000000/1000000,order.placed=1000000/1000000,charge.posted=1000000/1000000', '--max-attempts', '1', '--payment-inflight', String(PAYMENT_INFLIGHT)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TALLY_LOG_LEVEL: 'error' },
  });
  let output = '';
  let result: RunFigures | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      gateway.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        if (output.includes('gateway listening')) resolve();
      });
      gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    const sub = await subscriber(url);
    const messages = [...hisTraffic({ count, departments: ['OPH', 'ENT', 'RAD'], prefix })];
    const cpuBefore = processCpuMs(gateway.pid!);
    const sent = new Map<string, number>();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const client = await MllpClient.connect('127.0.0.1', port, { timeoutMs: 60_000 });
        const inflight = new Set<Promise<unknown>>();
        while (next < messages.length || inflight.size > 0) {
          while (inflight.size < IN_FLIGHT / 4 && next < messages.length) {
            const m = messages[next++]!;
            sent.set(m.controlId, performance.now());
            const p = client.sendRaw(m.wire, 1).finally(() => inflight.delete(p));
            inflight.add(p);
          }
          await Promise.race(inflight);
        }
        client.close();
      }),
    );
    await sub.waitFor(messages.length);
    const cpuUsPerMsg = ((processCpuMs(gateway.pid!) - cpuBefore) * 1000) / messages.length;
    result = { ...figures(sent, sub.received, started), cpuUsPerMsg };
    await sub.client.endAsync();
  } finally {
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
  }
  const stopped = /gateway stopped: (\{.*\})/.exec(output);
  const commits = stopped ? (JSON.parse(stopped[1]!) as { commits?: number }).commits : undefined;
  return { ...result, commitsPerMsg: commits === undefined ? undefined : commits / count };
}

export async function benchGateway(options: { messages?: number } = {}): Promise<Record<string, number>> {
  const count = options.messages ?? Number(process.env.BENCH_GATEWAY_MESSAGES ?? 20_000);
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-gateway-'));
  const broker = await startMosquitto({ maxInflight: 100 });
  const steal = measureSteal();
  const load = loadavg()[0] ?? 0;
  try {
    // warm-up of both paths (JIT, broker), not counted
    await direct(broker.url, 2_000, 'WD');
    await throughGateway(broker.url, dir, 2_000, 'WG');
    const runs: { direct: RunFigures; gateway: RunFigures }[] = [];
    for (let i = 0; i < 2; i++) {
      const d = await direct(broker.url, count, `D${i}-`);
      const g = await throughGateway(broker.url, dir, count, `G${i}-`);
      runs.push({ direct: d, gateway: g });
    }
    const best = <K extends keyof RunFigures>(side: 'direct' | 'gateway', key: K, pick: (a: number, b: number) => number): number => runs.map((r) => r[side][key] ?? NaN).reduce((a, b) => pick(a, b));
    const directRate = best('direct', 'rate', Math.max);
    const gatewayRate = best('gateway', 'rate', Math.max);
    const fsync = fsyncFloor(dir, 200);
    const round = (x: number, d = 2): number => Number(x.toFixed(d));
    return {
      messages: count,
      direct_msgs_per_s: directRate,
      gateway_msgs_per_s: gatewayRate,
      ratio: round(gatewayRate / directRate, 3),
      direct_p50_ms: round(best('direct', 'p50', Math.min)),
      direct_p99_ms: round(best('direct', 'p99', Math.min)),
      gateway_p50_ms: round(best('gateway', 'p50', Math.min)),
      gateway_p99_ms: round(best('gateway', 'p99', Math.min)),
      added_p99_ms: round(best('gateway', 'p99', Math.min) - best('direct', 'p99', Math.min)),
      gateway_cpu_us_per_msg: Math.round(best('gateway', 'cpuUsPerMsg', Math.min)),
      gateway_commits_per_msg: round(best('gateway', 'commitsPerMsg', Math.min), 3),
      run1_direct: runs[0]!.direct.rate,
      run1_gateway: runs[0]!.gateway.rate,
      run2_direct: runs[1]!.direct.rate,
      run2_gateway: runs[1]!.gateway.rate,
      fsync_p50_ms: round(percentile(fsync, 50), 3),
      fsync_p99_ms: round(percentile(fsync, 99), 3),
      load_1m_at_start: round(load),
      load_1m_at_end: round(loadavg()[0] ?? 0),
      cpu_steal_pct: steal() ?? -1,
    };
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
