/**
 * `tally sim insurance` as the tests run it: its own process (the built CLI) with its own database in a temp
 * folder, on a free loopback port; ready when it prints its URL. Stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from './process.js';

// from test/support (vitest) or from dist/test/support (the built bench)
const TALLY = [new URL('../../dist/src/cli/tally.js', import.meta.url), new URL('../../src/cli/tally.js', import.meta.url)].map((u) => fileURLToPath(u)).find((p) => p.endsWith('.js') && existsSync(p) && !p.includes('/dist/dist/')) ?? fileURLToPath(new URL('../../dist/src/cli/tally.js', import.meta.url));

export interface PlatformProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly dbPath: string;
  /** Restart on the same database (after a kill) */
  restart(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  setFault(mode: 'normal' | 'slow' | 'down' | 'error', delayMs?: number): Promise<void>;
  admin(path: string, body?: unknown): Promise<unknown>;
  close(): Promise<void>;
}

async function spawnPlatform(dbPath: string, port: number, extra: readonly string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [TALLY, 'sim', 'insurance', '--db', dbPath, '--port', String(port), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /insurance platform at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`tally sim insurance exited ${code}: ${err}`)));
  });
  return { child, url };
}

export async function startPlatformProcess(options: { demo?: boolean } = {}): Promise<PlatformProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'ins-platform-'));
  const dbPath = join(dir, 'platform.db');
  const extra = options.demo === false ? [] : ['--demo'];
  let running = await spawnPlatform(dbPath, 0, extra);
  const port = Number(new URL(running.url).port);
  const admin = async (path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${running.url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return ((await res.json()) as { data: unknown }).data;
  };
  const handle: PlatformProcess = {
    get url() {
      return running.url;
    },
    get child() {
      return running.child;
    },
    dbPath,
    restart: async () => {
      running = await spawnPlatform(dbPath, port, []);
    },
    kill: (signal = 'SIGKILL') => stopChild(running.child, signal),
    setFault: async (mode, delayMs = 0) => void (await admin('/admin/faults', { mode, delayMs })),
    admin,
    close: async () => {
      await stopChild(running.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
