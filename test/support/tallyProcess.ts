/**
 * A `tally` command run as a child process (the built CLI, dist/src/cli/tally.js) that a test can kill with SIGKILL
 * and start again with the same arguments: every line it prints (stdout and stderr, across its runs) is kept, and
 * the test waits for lines (`waitForLine`), never for time. Stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopChild } from './process.js';

export const TALLY_CLI = fileURLToPath(new URL('../../dist/src/cli/tally.js', import.meta.url));

export interface ProcessLine {
  /** Which run of the command printed it (1 for the first start) */
  readonly run: number;
  readonly text: string;
  /** The line as JSON (the daemon's and the server's pino log), when it is */
  readonly json?: Record<string, unknown>;
}

type Match = RegExp | ((line: ProcessLine) => boolean);

const matches = (m: Match, line: ProcessLine): boolean => (m instanceof RegExp ? m.test(line.text) : m(line));

export class TallyProcess {
  readonly lines: ProcessLine[] = [];
  private child: ChildProcess | undefined;
  private runs = 0;
  private readonly waiters = new Set<{ match: Match; from: number; resolve: (line: ProcessLine) => void }>();
  private readonly exitWaiters = new Set<() => void>();

  constructor(
    readonly name: string,
    private args: readonly string[],
    private readonly env: NodeJS.ProcessEnv = {},
  ) {
    if (!existsSync(TALLY_CLI)) throw new Error(`${TALLY_CLI} is missing: build first (npx tsc -p tsconfig.build.json)`);
  }

  get run(): number {
    return this.runs;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the command (again: args replaces the arguments) and resolves with the first line of this run that matches ready */
  async start(ready: Match, options: { args?: readonly string[]; timeoutMs?: number } = {}): Promise<ProcessLine> {
    if (this.alive()) throw new Error(`${this.name} is running`);
    if (options.args) this.args = options.args;
    const run = ++this.runs;
    const from = this.lines.length;
    const child = spawn(process.execPath, [TALLY_CLI, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        partial += chunk;
        let at: number;
        while ((at = partial.indexOf('\n')) >= 0) {
          this.push(run, partial.slice(0, at));
          partial = partial.slice(at + 1);
        }
      });
    }
    child.once('exit', () => {
      for (const w of this.exitWaiters) w();
      this.exitWaiters.clear();
    });
    const exited = new Promise<never>((_r, reject) => this.exitWaiters.add(() => reject(new Error(`${this.name} exited before it was ready:\n${this.tail(20, run)}`))));
    return Promise.race([this.waitForLine((l) => l.run === run && matches(ready, l), { from, timeoutMs: options.timeoutMs ?? 60_000 }), exited]);
  }

  private push(run: number, text: string): void {
    let json: Record<string, unknown> | undefined;
    if (text.startsWith('{')) {
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // a line that only looks like JSON
      }
    }
    const line: ProcessLine = { run, text, ...(json ? { json } : {}) };
    this.lines.push(line);
    const index = this.lines.length - 1;
    for (const w of [...this.waiters]) {
      if (index >= w.from && matches(w.match, line)) {
        this.waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  /** Where the next line will be: give it as `from` to wait only for lines printed after now */
  mark(): number {
    return this.lines.length;
  }

  /** The first line at or after from (default: the first line ever) that matches; any run of the command */
  waitForLine(match: Match, options: { from?: number; timeoutMs?: number } = {}): Promise<ProcessLine> {
    const from = options.from ?? 0;
    const found = this.lines.slice(from).find((l) => matches(match, l));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = { match, from, resolve: (line: ProcessLine) => (clearTimeout(timer), resolve(line)) };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.name}: no line ${String(match)} within ${options.timeoutMs ?? 30_000} ms; last lines:\n${this.tail(15)}`));
      }, options.timeoutMs ?? 30_000);
      this.waiters.add(waiter);
    });
  }

  /** Like waitForLine, but resolves undefined instead of failing */
  seen(match: Match, options: { from?: number; timeoutMs?: number } = {}): Promise<ProcessLine | undefined> {
    return this.waitForLine(match, options).catch(() => undefined);
  }

  tail(n: number, run?: number): string {
    return this.lines
      .filter((l) => run === undefined || l.run === run)
      .slice(-n)
      .map((l) => `  [${this.name} ${l.run}] ${l.text}`)
      .join('\n');
  }

  /** SIGKILL, and wait for the process to be gone */
  async kill(): Promise<void> {
    if (this.child && this.alive()) await stopChild(this.child, 'SIGKILL');
  }

  /** SIGTERM (SIGKILL after graceMs), and wait for the process to be gone */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child && this.alive()) await stopChild(this.child, 'SIGTERM', graceMs);
  }
}
