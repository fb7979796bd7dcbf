/**
 * The serial backend and the simulated microcontroller on a real pty pair made
 * by socat (started here, stopped by PID): APDUs, split writes, corrupted
 * frames, a reboot, and the port unplugged (socat stopped) and plugged back.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommandApdu } from '../../src/codecs/apdu.js';
import { APPLET_AID } from '../../src/codecs/applet.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { startPtyRig, waitFor, type Rig } from './rig.js';
import type { PtyPair } from '../../src/transports/PtyPair.js';

const SELECT = encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: APPLET_AID, le: 256 });
const sw = (response: Uint8Array): number => (response[response.length - 2]! << 8) | response[response.length - 1]!;

let rig: (Rig & { pty(): PtyPair }) | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('serial backend over a socat pty pair', () => {
  it('socat is installed (tests never skip for want of it)', () => {
    expect(execFileSync('socat', ['-V'], { encoding: 'utf8' })).toMatch(/socat version/);
  });

  it('runs APDUs, panel and relay over real ptys, with split writes and corrupted frames (200 APDUs)', async () => {
    rig = await startPtyRig();
    const r = rig;
    expect(r.reader.state).toBe('ready');
    r.firmware.insertCard(SimulatedCard.blank());
    await waitFor(() => r.reader.currentSession() !== undefined, 'session');
    const session = r.session();
    const tried = { plain: 0, split: 0, corrupted: 0 };
    for (let i = 0; i < 200; i++) {
      r.firmware.faults.splitWrites = i % 3 === 1;
      if (i % 3 === 2) r.firmware.faults.corruptFrames = 1;
      expect(sw(await session.transmit(SELECT))).toBe(0x9000);
      tried[(['plain', 'split', 'corrupted'] as const)[i % 3]!]++;
    }
    expect(tried).toEqual({ plain: 67, split: 67, corrupted: 66 });
    expect(r.firmware.stats.apdus).toBe(200);
    expect(r.firmware.stats.framesCorrupted).toBe(66);
    await r.reader.show({ lines: ['Card accepted'], tone: 'ok', led: 'ok' });
    expect(r.firmware.panel.lines).toEqual(['Card accepted']);
    await r.reader.device.enable(7, 0, { seq: 7, hash: new Uint8Array(32) });
    await waitFor(() => r.deviceEvents.some((e) => e.type === 'started'), 'device started');
  });

  it('a reboot mid-session over the pty ends the session and re-syncs', async () => {
    rig = await startPtyRig();
    const r = rig;
    r.firmware.insertCard(SimulatedCard.blank());
    await waitFor(() => r.reader.currentSession() !== undefined, 'session');
    // the power-on BOOT may still sit in the pty buffer when the daemon opens it
    const bootsBefore = r.reader.stats.boots;
    let reboots = 0;
    for (let i = 0; i < 5; i++) {
      const session = r.session();
      await session.transmit(SELECT);
      r.firmware.reboot();
      reboots++;
      await waitFor(() => r.reader.state === 'ready' && r.reader.currentSession() !== undefined && r.reader.currentSession() !== session, 'new session');
      await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
      expect(sw(await r.session().transmit(SELECT))).toBe(0x9000);
    }
    expect(reboots).toBe(5);
    expect(r.reader.stats.boots - bootsBefore).toBe(5);
  });

  it('port unplugged (socat stopped by PID) and back: unavailable, then ready, no restart (3 times)', async () => {
    rig = await startPtyRig();
    const r = rig;
    r.firmware.insertCard(SimulatedCard.blank());
    await waitFor(() => r.reader.currentSession() !== undefined, 'session');
    const states: string[] = [];
    r.reader.onEvent((e) => e.type === 'reader-state' && states.push(e.state));
    for (let i = 0; i < 3; i++) {
      const session = r.session();
      const pid = r.pty().pid;
      await r.unplug();
      expect(alive(pid)).toBe(false);
      expect(existsSync(r.pty().daemonPath)).toBe(false);
      await waitFor(() => r.reader.state === 'unavailable', 'unavailable');
      await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
      await r.replug();
      await waitFor(() => r.reader.state === 'ready' && r.reader.currentSession() !== undefined, 'ready with the card', 10_000);
      expect(sw(await r.session().transmit(SELECT))).toBe(0x9000);
    }
    expect(states.filter((s) => s === 'unavailable').length).toBeGreaterThanOrEqual(3);
    expect(states.filter((s) => s === 'ready').length).toBeGreaterThanOrEqual(3);
    expect(r.reader.stats.connects).toBeGreaterThanOrEqual(4);
  });
});
