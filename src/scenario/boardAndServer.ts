/**
 * A terminal board and the investor's server on one machine, for the
 * deployment-guide test: two network namespaces joined by one veth pair,
 *
 *   board ns  10.18.9.2 --veth-- 10.18.9.1  server ns
 *
 * In both, the server's name (reports.example-investor.net by default)
 * resolves to the server's address: ip netns exec binds /etc/netns/NS/hosts
 * over /etc/hosts for the processes it starts. Each side also has its own
 * scratch folder standing for its root file system. close() stops every
 * process started here by its pid, deletes the namespaces (and the veth) and
 * removes the folders. Needs root (ip netns).
 */
import { TallyError } from '../errors.js';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { built, namespaceId, startInNamespace, type RunResult, type StartedProcess } from './twoNetworks.js';

export type Machine = 'board' | 'server';

export const BOARD_SERVER_ADDRESSES = { board: '10.18.9.2', server: '10.18.9.1' } as const;

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Written to standard input, which is then closed */
  readonly stdin?: string;
}

function runCommand(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(options.env ?? {}) }, ...(options.cwd ? { cwd: options.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
    child.on('error', (err) => resolve({ code: -1, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function must(command: string, args: readonly string[]): Promise<void> {
  const r = await runCommand(command, args);
  if (r.code !== 0) throw new TallyError('INTERNAL', `${command} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
}

export class BoardAndServer {
  readonly ns: Record<Machine, string>;
  /** Each machine's root folder: the guide's absolute paths are moved under it */
  readonly root: Record<Machine, string>;
  private readonly veth: [string, string];
  private readonly processes = new Set<StartedProcess>();
  private closed = false;

  private constructor(
    readonly id: string,
    readonly serverName: string,
  ) {
    this.ns = { board: `tally-b-${id}`, server: `tally-s-${id}` };
    this.veth = [`tb${id}b`, `tb${id}s`];
    const base = mkdtempSync(join(tmpdir(), 'tally-deploy-'));
    // Mosquitto drops to its own user and must still reach its files under the server's root
    chmodSync(base, 0o755);
    this.root = { board: join(base, 'board'), server: join(base, 'server') };
    for (const dir of Object.values(this.root)) mkdirSync(dir, { mode: 0o755 });
  }

  static create(serverName = 'reports.example-investor.net'): Promise<BoardAndServer> {
    return built(new BoardAndServer(namespaceId(), serverName), (net) => net.build());
  }

  private async build(): Promise<void> {
    for (const ns of Object.values(this.ns)) {
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const etc = join('/etc/netns', ns);
      mkdirSync(etc, { recursive: true });
      writeFileSync(join(etc, 'hosts'), `127.0.0.1 localhost\n${BOARD_SERVER_ADDRESSES.server} ${this.serverName}\n`, { mode: 0o644 });
    }
    const [b, s] = this.veth;
    await must('ip', ['link', 'add', b, 'netns', this.ns.board, 'type', 'veth', 'peer', 'name', s, 'netns', this.ns.server]);
    await must('ip', ['-n', this.ns.board, 'addr', 'add', `${BOARD_SERVER_ADDRESSES.board}/30`, 'dev', b]);
    await must('ip', ['-n', this.ns.server, 'addr', 'add', `${BOARD_SERVER_ADDRESSES.server}/30`, 'dev', s]);
    await must('ip', ['-n', this.ns.board, 'link', 'set', b, 'up']);
    await must('ip', ['-n', this.ns.server, 'link', 'set', s, 'up']);
  }

  /** Runs a command on a machine to its end */
  run(machine: Machine, command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return runCommand('ip', ['netns', 'exec', this.ns[machine], command, ...args], options);
  }

  /** Starts a long-running process on a machine; stopped by its pid at close() at the latest */
  start(machine: Machine, command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean } = {}): StartedProcess {
    const started = startInNamespace(this.ns[machine], command, args, { ...options, onStop: () => this.processes.delete(started) });
    this.processes.add(started);
    return started;
  }

  /** Resolves once a TCP connection from the machine to host:port opens (retried inside one process until timeoutMs) */
  async waitForPort(machine: Machine, host: string, port: number, timeoutMs = 15_000): Promise<void> {
    const script = `const net=require('net');const end=Date.now()+${timeoutMs};const t=()=>{const s=net.connect({host:${JSON.stringify(host)},port:${port}});s.on('connect',()=>{s.destroy();process.exit(0)});s.on('error',()=>{if(Date.now()>end)process.exit(3);setTimeout(t,50)})};t()`;
    const r = await this.run(machine, process.execPath, ['-e', script]);
    if (r.code !== 0) throw new TallyError('INTERNAL', `${host}:${port} not open from the ${machine} within ${timeoutMs} ms`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.processes].map((p) => p.stop('SIGKILL').catch(() => undefined)));
    for (const ns of Object.values(this.ns)) {
      await runCommand('ip', ['netns', 'del', ns]);
      rmSync(join('/etc/netns', ns), { recursive: true, force: true });
    }
    rmSync(join(this.root.board, '..'), { recursive: true, force: true });
  }
}
