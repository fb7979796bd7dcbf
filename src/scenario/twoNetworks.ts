/**
 * Two networks on one machine for the isolation gateway (tests and the
 * demo): three network namespaces joined by two veth pairs,
 *
 *   hospital ns  10.18.1.2 --veth-- 10.18.1.1  gateway ns  10.18.2.1 --veth-- 10.18.2.2  payment ns
 *
 * The gateway's namespace has both legs and IP forwarding off (set in that
 * namespace only, never the machine's); the hospital and payment namespaces
 * know only their own link, so nothing routes between them but through the
 * gateway's process. Names carry the pid and a random suffix; close() deletes
 * the namespaces (and with them the veths) and stops every process started
 * here by its pid. Needs root (ip netns).
 */
import { TallyError } from '../errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Side = 'hospital' | 'payment' | 'gateway';

export const ADDRESSES = {
  hospital: '10.18.1.2',
  gatewayHospitalLeg: '10.18.1.1',
  payment: '10.18.2.2',
  gatewayPaymentLeg: '10.18.2.1',
} as const;

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface StartedProcess {
  readonly child: ChildProcess;
  /** stdout so far */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout/stderr line matching, rejects if the process exits first or after timeoutMs; with from (a stdout().length taken before), only stdout printed since */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  exited(): Promise<number | null>;
  /** Writes to its standard input (started with stdin: true) */
  write(text: string): void;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function run(command: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: -1, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function must(command: string, args: readonly string[]): Promise<void> {
  const r = await run(command, args);
  if (r.code !== 0) throw new TallyError('INTERNAL', `${command} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
}

/** The project root, found upwards from this file (it also runs compiled from dist/) */
export function projectRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'config', 'mosquitto', 'plain.conf')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new TallyError('INTERNAL', `project root not found above ${start}`);
  }
}

/** A short id for namespace and interface names: the pid and a random suffix */
export function namespaceId(): string {
  return `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`.slice(-9);
}

/** Builds the namespaces; what a failed build made is deleted again */
export async function built<T extends { close(): Promise<void> }>(net: T, build: (net: T) => Promise<void>): Promise<T> {
  try {
    await build(net);
  } catch (err) {
    await net.close();
    throw err;
  }
  return net;
}

export class TwoNetworks {
  readonly ns: Record<Side, string>;
  private readonly veth: { hospital: [string, string]; payment: [string, string] };
  private readonly processes = new Set<StartedProcess>();
  private readonly dirs: string[] = [];
  private closed = false;

  private constructor(readonly id: string) {
    this.ns = { hospital: `tally-h-${id}`, payment: `tally-p-${id}`, gateway: `tally-g-${id}` };
    // interface names: at most 15 characters
    this.veth = { hospital: [`th${id}g`, `th${id}h`], payment: [`tp${id}g`, `tp${id}p`] };
  }

  static create(): Promise<TwoNetworks> {
    return built(new TwoNetworks(namespaceId()), (net) => net.build());
  }

  /** The veth end inside a side's namespace */
  interfaceOf(side: 'hospital' | 'payment'): string {
    return this.veth[side][1];
  }

  /** The gateway's end of a side's veth */
  gatewayInterfaceOf(side: 'hospital' | 'payment'): string {
    return this.veth[side][0];
  }

  private async build(): Promise<void> {
    for (const ns of Object.values(this.ns)) {
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must('ip', ['netns', 'exec', this.ns.gateway, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    const legs: ['hospital' | 'payment', string, string][] = [
      ['hospital', ADDRESSES.gatewayHospitalLeg, ADDRESSES.hospital],
      ['payment', ADDRESSES.gatewayPaymentLeg, ADDRESSES.payment],
    ];
    for (const [side, gatewayAddress, sideAddress] of legs) {
      const [g, s] = this.veth[side];
      await must('ip', ['link', 'add', g, 'netns', this.ns.gateway, 'type', 'veth', 'peer', 'name', s, 'netns', this.ns[side]]);
      await must('ip', ['-n', this.ns.gateway, 'addr', 'add', `${gatewayAddress}/30`, 'dev', g]);
      await must('ip', ['-n', this.ns[side], 'addr', 'add', `${sideAddress}/30`, 'dev', s]);
      await must('ip', ['-n', this.ns.gateway, 'link', 'set', g, 'up']);
      await must('ip', ['-n', this.ns[side], 'link', 'set', s, 'up']);
    }
  }

  /** Runs a command in a namespace to its end */
  run(side: Side, command: string, args: readonly string[]): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.ns[side], command, ...args]);
  }

  mustRun(side: Side, command: string, args: readonly string[]): Promise<void> {
    return must('ip', ['netns', 'exec', this.ns[side], command, ...args]);
  }

  /** Starts a long-running process in a namespace (ip netns exec execs it: the pid is the process's own) */
  start(side: Side, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): StartedProcess {
    const started = startInNamespace(this.ns[side], command, args, { env, onStop: () => this.processes.delete(started) });
    this.processes.add(started);
    return started;
  }

  /** A scratch folder removed by close() */
  scratch(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    chmodSync(dir, 0o755);
    this.dirs.push(dir);
    return dir;
  }

  /** The project's Mosquitto (config/mosquitto/plain.conf) on one side's address */
  async startBroker(side: 'hospital' | 'payment', port = 1883): Promise<StartedProcess & { url: string }> {
    const dir = this.scratch('tally-ns-mosquitto-');
    const template = readFileSync(join(projectRoot(), 'config', 'mosquitto', 'plain.conf'), 'utf8');
    const address = ADDRESSES[side];
    const config =
      template
        .replace(/\{\{PORT\}\}/g, String(port))
        .replace(/\{\{BIND_ADDRESS\}\}/g, address)
        .replace(/\{\{MAX_INFLIGHT\}\}/g, '100')
        .replace(/^listener .*$/m, `listener ${port} ${address}`) + '\nlog_type information\n';
    const file = join(dir, 'mosquitto.conf');
    writeFileSync(file, config, { mode: 0o644 });
    const broker = this.start(side, '/usr/sbin/mosquitto', ['-c', file]);
    await broker.waitFor(/mosquitto version .* running/);
    return Object.assign(broker, { url: `mqtt://${address}:${port}` });
  }

  /** Whether a TCP connection from one side to an address opens (within timeoutMs) */
  async canConnect(from: Side, host: string, port: number, timeoutMs = 1_500): Promise<{ connected: boolean; error: string }> {
    const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});const t=setTimeout(()=>{console.log('ETIMEDOUT');process.exit(3)},${timeoutMs});s.on('connect',()=>{console.log('CONNECTED');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(2)})`;
    const r = await this.run(from, process.execPath, ['-e', script]);
    return { connected: r.code === 0, error: r.stdout.trim() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.processes].map((p) => p.stop('SIGKILL').catch(() => undefined)));
    for (const ns of Object.values(this.ns)) await run('ip', ['netns', 'del', ns]);
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts a long-running process in a network namespace (ip netns exec execs it: the pid is the
 * process's own); its output is kept for waitFor, stop() ends it by that pid.
 */
export function startInNamespace(ns: string, command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean; onStop?: () => void } = {}): StartedProcess {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: { ...process.env, ...(options.env ?? {}) }, ...(options.cwd ? { cwd: options.cwd } : {}) });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; from?: number; resolve: (line: string) => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      const line = (w.from !== undefined ? stdout.slice(w.from) : `${stdout}\n${stderr}`).split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.length > 64 * 1024 * 1024) stdout = stdout.slice(-32 * 1024 * 1024);
    if (waiters.length) check();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-1024 * 1024);
    if (waiters.length) check();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const started: StartedProcess = {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (pattern, timeoutMs = 15_000, from) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${command}: no line matching ${pattern} within ${timeoutMs} ms\n${stderr.slice(-2000)}`)), timeoutMs);
        const done = (line: string): void => {
          clearTimeout(timer);
          resolve(line);
        };
        waiters.push({ pattern, ...(from !== undefined ? { from } : {}), resolve: done });
        check();
        void exit.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${command} exited (${code}) before printing ${pattern}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`));
        });
      }),
    exited: () => exit,
    write: (text) => {
      if (!child.stdin) throw new TallyError('INTERNAL', `${command}: started without stdin`);
      child.stdin.write(text);
    },
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const timer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        }, 5_000);
        process.kill(child.pid, signal);
        await exit;
        clearTimeout(timer);
      }
      options.onStop?.();
    },
  };
  return started;
}

/** `node dist/src/cli/tally.js ARGS` as a command for TwoNetworks.start */
export function tallyCommand(args: readonly string[]): [string, string[]] {
  return [process.execPath, [join(projectRoot(), 'dist', 'src', 'cli', 'tally.js'), ...args]];
}
