/**
 * Two connected pseudo-terminals made by socat, so the simulated
 * microcontroller and the daemon each open a real serial device. socat is
 * started here and stopped by its PID. Unplugging is stopping socat; plugging
 * back in is starting it again on the same link paths.
 */
import { TallyError } from '../errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ByteTransport } from './ByteTransport.js';
import { openSerialTransport } from './SerialPortTransport.js';

export interface PtyPair {
  /** Symlink to the pty the daemon opens */
  readonly daemonPath: string;
  /** Symlink to the pty the simulated microcontroller opens */
  readonly firmwarePath: string;
  readonly pid: number;
  /** Stops socat (SIGTERM to its PID) and waits for it to exit; the links disappear */
  stop(): Promise<void>;
}

export interface PtyPairOptions {
  /** Where the links go; a fresh temp dir by default */
  readonly dir?: string;
  readonly timeoutMs?: number;
}

export async function startPtyPair(options: PtyPairOptions = {}): Promise<PtyPair> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tally-pty-'));
  const daemonPath = join(dir, 'daemon');
  const firmwarePath = join(dir, 'firmware');
  const child: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${daemonPath}`, `pty,raw,echo=0,link=${firmwarePath}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    if (existsSync(daemonPath) && existsSync(firmwarePath)) break;
    if (child.exitCode !== null) throw new TallyError('INTERNAL', `socat exited: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new TallyError('INTERNAL', `socat did not create ${daemonPath} in time: ${stderr.trim()}`);
    }
    await Promise.race([new Promise((r) => setTimeout(r, 10)), spawnError]);
  }
  const pid = child.pid!;
  return {
    daemonPath,
    firmwarePath,
    pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(pid, 'SIGTERM');
      await exited;
    },
  };
}

/**
 * The simulator's end of a serial line: the device given, or the firmware end of a fresh socat pty pair.
 * daemonPath is what the daemon opens; stop closes the line and removes a pair made here.
 */
export async function openSimulatorLine(device?: string): Promise<{ transport: ByteTransport; daemonPath: string; stop(): Promise<void> }> {
  const pty = device ? undefined : await startPtyPair();
  const transport = await openSerialTransport(device ?? pty!.firmwarePath);
  return {
    transport,
    daemonPath: device ?? pty!.daemonPath,
    async stop() {
      await transport.close().catch(() => undefined);
      await pty?.stop();
    },
  };
}
