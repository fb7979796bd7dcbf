/**
 * pcscd for tests. pcscd's client socket is fixed (/run/pcscd/pcscd.comm), so
 * one pcscd serves the whole machine: a test file that uses it takes the lock
 * (acquirePcscdLock) first, so two test files never run pcscd at once, and it starts and
 * stops its own pcscd by process id (never one it did not start).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquirePcscdLock, startVirtualCardPcscd, type VirtualCardPcscd } from '../../src/sim/VirtualCardPcscd.js';
import type { CardReader, CardSession, ReaderEvent } from '../../src/readers/CardReader.js';

export interface TestPcscd {
  readonly pcscd: VirtualCardPcscd;
  /** Stops pcscd, releases the lock and removes the run dir */
  release(): Promise<void>;
}

/** Takes the lock and starts our own pcscd with the vpcd reader file, in a temp run dir */
export async function startTestPcscd(options: { debug?: boolean } = {}): Promise<TestPcscd> {
  const releaseLock = await acquirePcscdLock();
  const runDir = mkdtempSync(join(tmpdir(), 'tally-pcscd-'));
  try {
    const pcscd = await startVirtualCardPcscd({ runDir, ...(options.debug ? { debug: true } : {}) });
    return {
      pcscd,
      async release() {
        try {
          await pcscd.stop();
        } finally {
          rmSync(runDir, { recursive: true, force: true });
          releaseLock();
        }
      },
    };
  } catch (err) {
    rmSync(runDir, { recursive: true, force: true });
    releaseLock();
    throw err;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves with the next reader event that matches */
export function nextEvent<T extends ReaderEvent>(reader: CardReader, match: (event: ReaderEvent) => event is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const off = reader.onEvent((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

export async function nextCardSession(reader: CardReader, timeoutMs = 5000): Promise<CardSession> {
  const event = await nextEvent(reader, (e): e is Extract<ReaderEvent, { type: 'card-inserted' }> => e.type === 'card-inserted', timeoutMs, 'card-inserted');
  return event.session;
}

export async function nextCardRemoval(reader: CardReader, timeoutMs = 5000): Promise<number> {
  const event = await nextEvent(reader, (e): e is Extract<ReaderEvent, { type: 'card-removed' }> => e.type === 'card-removed', timeoutMs, 'card-removed');
  return event.sessionId;
}
