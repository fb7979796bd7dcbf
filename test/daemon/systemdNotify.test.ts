import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSystemdNotifier, watchdogIntervalMs } from '../../src/daemon/systemdNotify.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { silentLogger } from '../../src/util/logger.js';

describe('systemd notification', () => {
  it('delivers READY and WATCHDOG as datagrams on NOTIFY_SOCKET, as systemd would receive them', async () => {
    const socket = join(tempDir('tally-notify-'), 'notify.sock');
    // stands in for PID 1: a unix datagram socket that prints what it receives
    const receiver = spawn('socat', ['-u', `UNIX-RECV:${socket}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let received = '';
    receiver.stdout!.on('data', (d: Buffer) => (received += d.toString()));
    for (let i = 0; i < 100 && !(await import('node:fs')).existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    const notifier = createSystemdNotifier({ NOTIFY_SOCKET: socket }, silentLogger);
    notifier.notify('READY=1');
    await new Promise((r) => setTimeout(r, 100));
    notifier.notify('WATCHDOG=1');
    for (let i = 0; i < 100 && !received.includes('WATCHDOG=1'); i++) await new Promise((r) => setTimeout(r, 20));
    notifier.close();
    receiver.kill();
    expect(received).toContain('READY=1');
    expect(received).toContain('WATCHDOG=1');
  });

  it('feeds the watchdog at half the interval systemd asked for, and only for our own PID', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' })).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) })).toBeUndefined();
    expect(watchdogIntervalMs({})).toBeUndefined();
  });
});
