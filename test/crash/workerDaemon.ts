/** The crash tests' daemon child processes (deviceEventWorker.ts) and what they leave in the ledger */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { Issuer, provisionTerminal, tempDir, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { SimulatedReaderFirmware, type SimulatedReaderFirmwareOptions } from '../../src/sim/SimulatedReaderFirmware.js';
import type { ByteTransport } from '../../src/transports/ByteTransport.js';
import { startPtyPair, type PtyPair } from '../../src/transports/PtyPair.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { systemClock } from '../../src/util/clock.js';
import { buildWorker } from './buildWorker.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Daemon {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<NodeJS.Signals | null>;
  stderr(): string;
  /** The first line printed that starts with prefix; undefined after timeoutMs or once the child exited */
  waitForLine(prefix: string, timeoutMs: number): Promise<string | undefined>;
}

/** Starts the compiled worker with args; children holds it until it exits (for afterAll) */
export function spawnDaemon(worker: string, args: readonly string[], children: Set<ChildProcess>): Daemon {
  const child = spawn(process.execPath, [worker, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((r) =>
    child.once('exit', (_code, signal) => {
      children.delete(child);
      r(signal);
    }),
  );
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    async waitForLine(prefix, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.find((l) => l.startsWith(prefix));
        if (line !== undefined) return line;
        if (Date.now() > deadline || child.exitCode !== null) return undefined;
        await sleep(5);
      }
    },
  };
}

/** Stops a daemon we started, by its pid */
export async function kill(daemon: Daemon): Promise<void> {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
  await daemon.exited;
}

export interface SessionCounts {
  readonly state: string | undefined;
  readonly started: number;
  readonly completed: number;
  readonly released: number;
  readonly failed: number;
  /** completed + released + failed */
  readonly ends: number;
}

/** The session entries of one use, by type */
export function sessionCounts(dataDir: string, useSeq: number): SessionCounts {
  const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
  try {
    const entries = [...ledger.entries()].map(parseLedgerEntry).filter((e) => e.ref === useSeq);
    const count = (type: number): number => entries.filter((e) => e.type === type).length;
    const completed = count(EntryType.USE_COMPLETED);
    const released = count(EntryType.USE_RELEASED);
    const failed = count(EntryType.USE_FAILED);
    return { state: ledger.useByReserveSeq(useSeq)?.state, started: count(EntryType.USE_STARTED), completed, released, failed, ends: completed + released + failed };
  } finally {
    ledger.close();
  }
}

export async function waitForState(dataDir: string, useSeq: number, states: readonly string[], timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = sessionCounts(dataDir, useSeq).state;
    if ((state && states.includes(state)) || Date.now() > deadline) return state;
    await sleep(20);
  }
}

/** A provisioned terminal's data folder with a loaded batch, and a simulated board on a socat pty pair that outlives every daemon */
export interface BoardRig {
  readonly workDir: string;
  readonly dataDir: string;
  readonly batch: IssuedBatch;
  readonly pty: PtyPair;
  readonly board: SimulatedReaderFirmware;
  /** The daemons started and not exited yet (killed by close) */
  readonly children: Set<ChildProcess>;
  /** Starts deviceEventWorker with these args after the data folder and the pty */
  start(args: readonly string[]): Daemon;
  close(): Promise<void>;
}

export async function startBoardRig(options: { readonly prefix: string; readonly terminalId: string; readonly cards: number; readonly board: SimulatedReaderFirmwareOptions }): Promise<BoardRig> {
  const built = buildWorker('deviceEventWorker');
  const workDir = tempDir(options.prefix);
  const dataDir = join(workDir, 'terminal');
  mkdirSync(dataDir);
  mkdirSync(join(workDir, 'issuer'));
  const issuer = await new Issuer(join(workDir, 'issuer')).init();
  const batch = await issuer.makeBatch('CLINIC-A', options.cards);
  const provisioned = await provisionTerminal(issuer, { dataDir, terminalId: options.terminalId, clinicCode: 'CLINIC-A' });
  const loaded = await provisioned.swipe(batch.batchCard);
  provisioned.terminal.close();
  if (!loaded.ok) throw new Error(`batch not loaded: ${JSON.stringify(loaded)}`);
  const pty = await startPtyPair({ dir: workDir });
  const board = new SimulatedReaderFirmware(options.board);
  const boardEnd: ByteTransport = await openSerialTransport(pty.firmwarePath);
  board.attach(boardEnd);
  board.powerOn();
  const children = new Set<ChildProcess>();
  return {
    workDir,
    dataDir,
    batch,
    pty,
    board,
    children,
    start: (args) => spawnDaemon(built.worker, [dataDir, pty.daemonPath, ...args], children),
    async close() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      board.powerOff();
      await boardEnd.close().catch(() => undefined);
      await pty.stop();
      issuer.close();
      built.remove();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
