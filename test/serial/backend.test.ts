import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommandApdu } from '../../src/codecs/apdu.js';
import { APPLET_AID } from '../../src/codecs/applet.js';
import { LedMode } from '../../src/codecs/firmware/panel.js';
import { isTallyError } from '../../src/errors.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { startMemoryRig, waitFor, type Rig } from './rig.js';

const SELECT = encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: APPLET_AID, le: 256 });
const sw = (response: Uint8Array): number => (response[response.length - 2]! << 8) | response[response.length - 1]!;

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function rigWithCard(): Promise<Rig> {
  rig = await startMemoryRig();
  expect(rig.reader.state).toBe('ready');
  rig.firmware.insertCard(SimulatedCard.blank());
  await waitFor(() => rig!.reader.currentSession() !== undefined, 'card session');
  return rig;
}

describe('serial backend over the in-memory pair', () => {
  it('reports a card and passes its APDUs through', async () => {
    const r = await rigWithCard();
    const session = r.session();
    expect(Buffer.from(session.atr).toString('latin1')).toContain('TALLYSTK01');
    const response = await session.transmit(SELECT);
    expect(sw(response)).toBe(0x9000);
    expect(r.firmware.stats.apdus).toBe(1);
    r.firmware.removeCard();
    await waitFor(() => r.readerEvents.some((e) => e.type === 'card-removed'), 'card-removed');
    await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
  });

  it.each(['before', 'after'] as const)('a card pulled %s the card executes an APDU gives CARD_REMOVED', async (when) => {
    const r = await rigWithCard();
    const session = r.session();
    await session.transmit(SELECT);
    r.firmware.faults.pullCard = { atApdu: 1, when };
    const err = await session.transmit(SELECT).catch((e: unknown) => e);
    expect(isTallyError(err, 'CARD_REMOVED')).toBe(true);
    expect(r.reader.currentSession()).toBeUndefined();
    expect(r.readerEvents.filter((e) => e.type === 'card-removed')).toHaveLength(1);
  });

  it('drives the display, buzzer and LEDs', async () => {
    const r = await rigWithCard();
    await r.reader.show({ lines: ['拒绝：卡片已使用', 'Card already used'], tone: 'refused', led: 'refused' });
    expect(r.firmware.panel.lines).toEqual(['拒绝：卡片已使用', 'Card already used']);
    expect(r.firmware.panel.lastBuzzer).toHaveLength(3);
    expect(r.firmware.panel.leds).toEqual({ green: LedMode.OFF, red: LedMode.ON, amber: LedMode.OFF });
    await r.reader.show({ lines: ['x'.repeat(100), 'b', 'c', 'd', 'e'], led: 'busy' });
    expect(r.firmware.panel.lines).toEqual(['x'.repeat(64), 'b', 'c', 'd']);
    expect(r.firmware.panel.leds.amber).toBe(LedMode.BLINK_FAST);
    expect(r.firmware.panel.buzzerCount).toBe(1);
  });

  it('enables the relay and reports the device session: started, finished', async () => {
    const r = await rigWithCard();
    await r.reader.device.enable(42, 0, { seq: 42, hash: new Uint8Array(32) });
    expect(r.firmware.relay).toMatchObject({ closed: true, useSeq: 42 });
    await waitFor(() => r.deviceEvents.length === 1, 'started');
    r.firmware.finishDevice();
    await waitFor(() => r.deviceEvents.length === 2, 'finished');
    expect(r.deviceEvents).toEqual([
      { type: 'started', useSeq: 42 },
      { type: 'finished', useSeq: 42 },
    ]);
    expect(r.firmware.relay.closed).toBe(false);
  });

  it('reports a device that fails to start, and one stopped by the host', async () => {
    const r = await rigWithCard();
    r.firmware.deviceBehaviour = 'fault-before-start';
    await r.reader.device.enable(1, 0, { seq: 1, hash: new Uint8Array(32) });
    await waitFor(() => r.deviceEvents.length === 1, 'fault');
    expect(r.deviceEvents[0]).toMatchObject({ type: 'fault', useSeq: 1 });
    r.firmware.deviceBehaviour = 'normal';
    await r.reader.device.enable(2, 0, { seq: 2, hash: new Uint8Array(32) });
    await waitFor(() => r.deviceEvents.length === 2, 'started');
    await r.reader.device.disable();
    await waitFor(() => r.deviceEvents.length === 3, 'finished');
    expect(r.deviceEvents[2]).toEqual({ type: 'finished', useSeq: 2 });
  });

  it('opens the relay by itself after maxMs', async () => {
    const r = await rigWithCard();
    await r.reader.device.enable(5, 30, { seq: 5, hash: new Uint8Array(32) });
    await waitFor(() => r.deviceEvents.some((e) => e.type === 'finished'), 'finished by time limit');
    expect(r.firmware.relay.closed).toBe(false);
  });
});
