/**
 * The terminal daemon as a process: time from `node tally terminal run` to the
 * status socket answering (ready: reader, ledger, sync connected), and its
 * resident memory once idle, with sync to a broker enabled. It runs Node with
 * the systemd unit's flags, on the simulated board (a serial board also loads
 * the serialport package).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { queryStatus } from '../src/daemon/StatusServer.js';
import { Issuer, provisionTerminal, tempDir } from '../src/scenario/CardWorld.js';
import { startEmbeddedBroker } from '../src/scenario/embeddedServer.js';

const TALLY = resolve(fileURLToPath(import.meta.url), '../../src/cli/tally.js');

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** config/systemd's unit, found upwards from this file (it runs compiled from dist/bench/, and from bench/ in tests) */
function unitFile(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'config', 'systemd', 'tallystick-terminal.service');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error('config/systemd/tallystick-terminal.service not found');
  }
}

/**
 * The Node flags the product runs the daemon with: those of the systemd unit's
 * ExecStart (between the node binary and the script), so the bench measures
 * what a terminal runs and cannot drift from it.
 */
export function daemonNodeFlags(unitPath = unitFile()): string[] {
  const line = readFileSync(unitPath, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ExecStart='));
  if (!line) throw new Error(`${unitPath}: no ExecStart line`);
  const words = line.slice('ExecStart='.length).trim().split(/\s+/);
  const script = words.findIndex((w, i) => i > 0 && !w.startsWith('-'));
  return words.slice(1, script);
}

export async function benchDaemon(options: { runs?: number; idleMs?: number; nodeFlags?: string[] } = {}): Promise<Record<string, number>> {
  const runs = options.runs ?? 5;
  const idleMs = options.idleMs ?? 3000;
  const nodeFlags = options.nodeFlags ?? daemonNodeFlags();
  console.log(`daemon: node ${nodeFlags.join(' ')} tally.js terminal run (the systemd unit's flags)`);
  const dir = tempDir('tally-bench-daemon-');
  const issuer = await new Issuer(dir).init();
  const batch = await issuer.makeBatch('C1', 5);
  const dataDir = join(dir, 'data');
  const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-BENCH', clinicCode: 'C1' });
  await rig.swipe(batch.batchCard);
  rig.terminal.close();
  const broker = await startEmbeddedBroker();
  const config = join(dir, 'terminal.yaml');
  writeFileSync(config, `terminal: {dataDir: ${dataDir}}\nreader: {backend: simulated}\nsync: {enabled: true, brokerUrl: '${broker.url}', protocolVersion: 4}\nlog: {level: warn}\n`);
  const ready: number[] = [];
  const rss: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const child = spawn(process.execPath, [...nodeFlags, TALLY, 'terminal', 'run', '--config', config], { stdio: 'ignore' });
      const socket = join(dataDir, 'status.sock');
      for (;;) {
        const status = (await queryStatus(socket, 200)) as { sync?: { connected?: boolean } } | undefined;
        if (status?.sync?.connected) break;
        if (performance.now() - t0 > 15_000) throw new Error('daemon not ready in 15 s');
        await new Promise((r) => setTimeout(r, 5));
      }
      ready.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, idleMs));
      rss.push(rssMiB(child.pid!));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  } finally {
    await broker.close();
    issuer.close();
  }
  const sorted = [...ready].sort((a, b) => a - b);
  return {
    runs,
    ready_p50_ms: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(1)),
    ready_max_ms: Number(sorted[sorted.length - 1]!.toFixed(1)),
    idle_rss_max_mib: Number(Math.max(...rss).toFixed(1)),
    idle_rss_min_mib: Number(Math.min(...rss).toFixed(1)),
  };
}
