/**
 * Starts and stops the pcscd that serves our virtual cards, through
 * scripts/pcscd-start.sh and scripts/pcscd-stop.sh (the one implementation,
 * shared with people who run them by hand). Processes are stopped by the
 * process ids the scripts recorded, never by name.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TallyError } from '../errors.js';
import { DEFAULT_PCSCD_RUN_DIR, vpcdSlotSocket, type VpcdEndpoint } from './VirtualCard.js';

const run = promisify(execFile);

/** FRIENDLYNAME in config/pcscd/reader.conf.d/vpcd; pcscd appends " 00 <slot>" */
export const VIRTUAL_PCD_NAME = 'Tallystick Virtual PCD';

export function virtualPcdReaderName(slot = 0): string {
  return `${VIRTUAL_PCD_NAME} 00 ${String(slot).padStart(2, '0')}`;
}

export interface VirtualCardPcscdOptions {
  /** Sockets, logs and pid files (default /run/tallystick-pcscd) */
  readonly runDir?: string;
  /** pcscd logs at debug level with APDUs */
  readonly debug?: boolean;
  /**
   * Immediate ACKs on pcscd's private loopback (default true). vpcd sends the
   * length and the body of each message in two writes with Nagle on, so with
   * delayed ACKs every APDU waits 40 ms; false keeps that stock behaviour.
   */
  readonly quickAck?: boolean;
}

export interface VirtualCardPcscd {
  readonly runDir: string;
  /** pcscd's process id (changes on each start) */
  readonly pcscdPid: number;
  readonly readerNames: readonly string[];
  slotEndpoint(slot?: number): VpcdEndpoint;
  /** Starts pcscd again after stop() or kill() */
  start(): Promise<void>;
  /** Stops pcscd and the slot bridges (SIGTERM) */
  stop(): Promise<void>;
  /** Kills pcscd alone, as a crash would (SIGKILL by default); the bridges are cleaned up by the next start() */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** pcscd's log of this run */
  log(): Promise<string>;
}

function findScripts(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'scripts');
    if (existsSync(join(candidate, 'pcscd-start.sh'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new TallyError('CONFIG', 'scripts/pcscd-start.sh not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/**
 * pcscd's client socket is fixed (/run/pcscd/pcscd.comm): one pcscd serves the
 * machine. Tests and benchmarks that start one take this lock first, so they
 * never run at the same time.
 */
export const PCSCD_LOCK_FILE = join(tmpdir(), 'tallystick-pcscd.lock');

/** Waits until no other process holds the pcscd lock; resolves with the release function */
export async function acquirePcscdLock(timeoutMs = 300_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(PCSCD_LOCK_FILE, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(PCSCD_LOCK_FILE, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let lines: string[];
    try {
      lines = readFileSync(PCSCD_LOCK_FILE, 'utf8').split('\n');
    } catch {
      continue; // released between our two looks
    }
    const holder = Number(lines[0]) || 0;
    // a holder that died without releasing: stop the pcscd it left behind (by the pids our script
    // recorded in its run dirs), then take the lock
    if (holder > 0 && !running(holder)) {
      for (const runDir of lines.slice(1).filter((line) => line.length > 0)) {
        await run(join(findScripts(), 'pcscd-stop.sh'), ['--quiet'], { env: { ...process.env, TALLY_PCSCD_RUN_DIR: runDir }, timeout: 30_000 }).catch(() => undefined);
      }
      rmSync(PCSCD_LOCK_FILE, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new TallyError('READER_IN_USE', `pcscd lock ${PCSCD_LOCK_FILE} held by pid ${holder} for too long`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Under our own lock, record the run dir so that whoever finds the lock stale can clean up after us */
function noteRunDirInLock(runDir: string): void {
  try {
    const lines = readFileSync(PCSCD_LOCK_FILE, 'utf8').split('\n');
    if (Number(lines[0]) === process.pid && !lines.includes(runDir)) appendFileSync(PCSCD_LOCK_FILE, `\n${runDir}`);
  } catch {
    // no lock taken (a person running the CLI): nothing to note
  }
}

/** Alive and not a zombie: a process we do not reap may stay a zombie for a while */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

/**
 * Starts pcscd for virtual cards and resolves when it is ready. Rejects with
 * READER_UNAVAILABLE when a pcscd we did not start is running (left alone).
 */
export async function startVirtualCardPcscd(options: VirtualCardPcscdOptions = {}): Promise<VirtualCardPcscd> {
  const scripts = findScripts();
  const runDir = options.runDir ?? DEFAULT_PCSCD_RUN_DIR;
  const env = {
    ...process.env,
    TALLY_PCSCD_RUN_DIR: runDir,
    TALLY_PCSCD_DEBUG: options.debug ? '1' : '0',
    TALLY_PCSCD_QUICKACK: options.quickAck === false ? '0' : '1',
  };
  let pcscdPid = 0;

  const start = async (): Promise<void> => {
    noteRunDirInLock(runDir);
    try {
      const { stdout } = await run(join(scripts, 'pcscd-start.sh'), [], { env, timeout: 30_000 });
      const match = /^pcscd (\d+)$/m.exec(stdout);
      if (!match?.[1]) throw new TallyError('INTERNAL', `unexpected output: ${stdout}`);
      pcscdPid = Number(match[1]);
    } catch (err) {
      const failure = err as { code?: number; stderr?: string; message?: string };
      const detail = (failure.stderr ?? failure.message ?? String(err)).trim();
      throw new TallyError(failure.code === 3 ? 'READER_IN_USE' : 'READER_UNAVAILABLE', detail, { runDir }, { cause: err });
    }
  };
  const stop = async (): Promise<void> => {
    await run(join(scripts, 'pcscd-stop.sh'), ['--quiet'], { env, timeout: 30_000 });
  };

  await start();
  return {
    runDir,
    get pcscdPid() {
      return pcscdPid;
    },
    readerNames: [virtualPcdReaderName(0), virtualPcdReaderName(1)],
    slotEndpoint: (slot = 0) => ({ path: vpcdSlotSocket(slot, runDir) }),
    start,
    stop,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      process.kill(pcscdPid, signal);
      if (!(await waitForExit(pcscdPid, 5000))) throw new TallyError('INTERNAL', `pcscd ${pcscdPid} did not exit on ${signal}`);
    },
    log: () => readFile(join(runDir, 'pcscd.log'), 'utf8'),
  };
}
