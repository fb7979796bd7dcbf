/**
 * Starts and stops the pcscd that serves our virtual cards, through
 * scripts/pcscd-start.sh and scripts/pcscd-stop.sh (the one implementation,
 * shared with people who run them by hand). Processes are stopped by the
 * process ids the scripts recorded, never by name.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TallyError } from '../errors.js';
import { DEFAULT_PCSCD_RUN_DIR, vpcdSlotSocket, type VpcdEndpoint } from './VirtualCard.js';

const run = promisify(execFile);

/** FRIENDLYNAME in config/pcscd/vpcd; pcscd appends " 00 <slot>" */
export const VIRTUAL_PCD_NAME = 'Tallystick Virtual PCD';

export function virtualPcdReaderName(slot = 0): string {
  return `${VIRTUAL_PCD_NAME} 00 ${String(slot).padStart(2, '0')}`;
}

export interface VirtualCardPcscdOptions {
  /** Sockets, logs and pid files (default /run/tallystick-pcscd) */
  readonly runDir?: string;
  /** pcscd logs at debug level with APDUs */
  readonly debug?: boolean;
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

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
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
  const env = { ...process.env, TALLY_PCSCD_RUN_DIR: runDir, TALLY_PCSCD_DEBUG: options.debug ? '1' : '0' };
  let pcscdPid = 0;

  const start = async (): Promise<void> => {
    try {
      const { stdout } = await run(join(scripts, 'pcscd-start.sh'), [], { env, timeout: 30_000 });
      const match = /^pcscd (\d+)$/m.exec(stdout);
      if (!match?.[1]) throw new Error(`unexpected output: ${stdout}`);
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
