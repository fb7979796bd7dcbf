/**
 * The systemd unit's Node flags: the daemon benchmark measures with exactly
 * them, and this Node accepts them (a flag it does not know would stop the
 * service from starting at all).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { daemonNodeFlags } from '../../bench/daemon.js';

describe('config/systemd/tallystick-terminal.service', () => {
  it('starts Node with the memory flag, which this Node accepts', () => {
    const flags = daemonNodeFlags();
    expect(flags).toEqual(['--max-semi-space-size=1']);
    const run = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('ok');
  });
});
