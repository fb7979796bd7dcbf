/**
 * A pcscd we did not start (a system one) is left alone: starting ours fails
 * with a clear message and the other keeps running. The "foreign" pcscd here
 * is one this test starts itself without our script, and stops by its pid.
 */
import { spawn } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isTallyError } from '../../src/errors.js';
import { acquirePcscdLock, PCSCD_LOCK_FILE, startVirtualCardPcscd } from '../../src/sim/VirtualCardPcscd.js';
import { waitUntil } from '../support/pcscd.js';

describe('a pcscd we did not start', () => {
  it('is reported, not killed: startVirtualCardPcscd rejects READER_IN_USE and the other pcscd still runs', async () => {
    const release = await acquirePcscdLock();
    const emptyConfig = mkdtempSync(join(tmpdir(), 'tally-foreign-conf-'));
    const runDir = mkdtempSync(join(tmpdir(), 'tally-foreign-run-'));
    const foreign = spawn('pcscd', ['--foreground', '--config', emptyConfig], { stdio: 'ignore' });
    try {
      await waitUntil(() => existsSync('/run/pcscd/pcscd.comm') && existsSync('/run/pcscd/pcscd.pid'), 10_000, 'the foreign pcscd socket and pid file');
      const error = await startVirtualCardPcscd({ runDir }).then(
        async (ours) => {
          await ours.stop();
          return undefined;
        },
        (err: unknown) => err,
      );
      expect(isTallyError(error, 'READER_IN_USE'), String(error)).toBe(true);
      expect(String(error)).toContain(`a pcscd not started by tallystick is running (pid ${foreign.pid}`);
      expect(foreign.exitCode).toBeNull();
      expect(() => process.kill(foreign.pid!, 0)).not.toThrow();
      // without its pid file it is still found: it answers on the socket
      rmSync('/run/pcscd/pcscd.pid');
      const again = await startVirtualCardPcscd({ runDir }).then(
        async (ours) => {
          await ours.stop();
          return undefined;
        },
        (err: unknown) => err,
      );
      expect(isTallyError(again, 'READER_IN_USE'), String(again)).toBe(true);
      expect(String(again)).toContain('answers on /run/pcscd/pcscd.comm');
      expect(foreign.exitCode).toBeNull();
    } finally {
      if (foreign.exitCode === null && foreign.signalCode === null) {
        const exited = new Promise((resolve) => foreign.once('exit', resolve));
        foreign.kill('SIGTERM');
        const timer = setTimeout(() => foreign.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(emptyConfig, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
      release();
    }
  });
});

describe('the machine-wide pcscd lock', () => {
  it('taken over from a holder that died: the pcscd it left is stopped by its recorded pid first', async () => {
    const release = await acquirePcscdLock();
    const runDir = mkdtempSync(join(tmpdir(), 'tally-stale-run-'));
    let releaseAgain: (() => void) | undefined;
    try {
      const pcscd = await startVirtualCardPcscd({ runDir });
      const orphan = pcscd.pcscdPid;
      expect(readFileSync(PCSCD_LOCK_FILE, 'utf8')).toBe(`${process.pid}\n${runDir}`);
      // the holder "dies": the lock now names a pid that no longer runs
      const dead = spawnSync('true').pid;
      writeFileSync(PCSCD_LOCK_FILE, `${dead}\n${runDir}`);
      releaseAgain = await acquirePcscdLock(20_000);
      expect(readFileSync(PCSCD_LOCK_FILE, 'utf8')).toBe(String(process.pid));
      // gone, or a zombie waiting for PID 1 to reap it
      let state = 'gone';
      try {
        state = readFileSync(`/proc/${orphan}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? 'gone';
      } catch {
        // reaped already
      }
      expect(['gone', 'Z']).toContain(state);
      expect(existsSync(join(runDir, 'pcscd.pid'))).toBe(false);
    } finally {
      (releaseAgain ?? release)();
      rmSync(runDir, { recursive: true, force: true });
    }
  });
});
