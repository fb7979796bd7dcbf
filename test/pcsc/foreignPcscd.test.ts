/**
 * A pcscd we did not start (a system one) is left alone: starting ours fails
 * with a clear message and the other keeps running. The "foreign" pcscd here
 * is one this test starts itself without our script, and stops by its pid.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isTallyError } from '../../src/errors.js';
import { acquirePcscdLock, startVirtualCardPcscd } from '../../src/sim/VirtualCardPcscd.js';
import { waitUntil } from '../support/pcscd.js';

describe('a pcscd we did not start', () => {
  it('is reported, not killed: startVirtualCardPcscd rejects READER_IN_USE and the other pcscd still runs', async () => {
    const release = await acquirePcscdLock();
    const emptyConfig = mkdtempSync(join(tmpdir(), 'tally-foreign-conf-'));
    const runDir = mkdtempSync(join(tmpdir(), 'tally-foreign-run-'));
    const foreign = spawn('pcscd', ['--foreground', '--config', emptyConfig], { stdio: 'ignore' });
    try {
      await waitUntil(() => existsSync('/run/pcscd/pcscd.comm'), 10_000, 'the foreign pcscd socket');
      const error = await startVirtualCardPcscd({ runDir }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isTallyError(error, 'READER_IN_USE'), String(error)).toBe(true);
      expect(String(error)).toContain(`a pcscd not started by tallystick is running (pid ${foreign.pid}`);
      expect(foreign.exitCode).toBeNull();
      expect(() => process.kill(foreign.pid!, 0)).not.toThrow();
    } finally {
      if (foreign.exitCode === null && foreign.signalCode === null) {
        const exited = new Promise((resolve) => foreign.once('exit', resolve));
        foreign.kill('SIGTERM');
        await exited;
      }
      rmSync(emptyConfig, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
      release();
    }
  });
});
