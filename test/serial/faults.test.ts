/**
 * The serial backend against a misbehaving line and board, in memory:
 * dropped ACKs, corrupted CRCs both ways, split writes, garbage, truncated and
 * oversized frames, a reboot mid-session, an unplugged port. Each test counts
 * what it tried.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommandApdu } from '../../src/codecs/apdu.js';
import { APPLET_AID } from '../../src/codecs/applet.js';
import { encodeFrame } from '../../src/codecs/firmware/frame.js';
import { encodeMessage } from '../../src/codecs/firmware/messages.js';
import { isTallyError } from '../../src/errors.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { drain, startMemoryRig, waitFor, type Rig } from './rig.js';

const SELECT = encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: APPLET_AID, le: 256 });
const sw = (response: Uint8Array): number => (response[response.length - 2]! << 8) | response[response.length - 1]!;

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function rigWithCard(heartbeatMs = 0): Promise<Rig> {
  rig = await startMemoryRig({}, { heartbeatMs });
  rig.firmware.insertCard(SimulatedCard.blank());
  await waitFor(() => rig!.reader.currentSession() !== undefined, 'card session');
  return rig;
}

describe('serial line faults', () => {
  it('survives dropped ACKs: each request runs once and succeeds (40 tried)', async () => {
    const r = await rigWithCard();
    const session = r.session();
    // a slow answer, so the host gives up on the ACK and resends
    r.firmware.faults.responseDelayMs = 70;
    let tried = 0;
    for (let i = 0; i < 40; i++) {
      r.firmware.faults.dropAcks = 1 + (i % 2);
      expect(sw(await session.transmit(SELECT))).toBe(0x9000);
      tried++;
    }
    expect(tried).toBe(40);
    expect(r.firmware.stats.acksDropped).toBeGreaterThanOrEqual(40);
    expect(r.reader.stats.resends).toBeGreaterThanOrEqual(40);
    expect(r.firmware.stats.duplicateRequests).toBeGreaterThanOrEqual(40);
    // the card saw each APDU exactly once, however many times it was sent
    expect(r.firmware.stats.apdus).toBe(40);
  });

  it('frames lost on the way to the board are resent after the ACK timeout (30 APDUs, 45 losses)', async () => {
    const r = await rigWithCard();
    const session = r.session();
    for (let i = 0; i < 30; i++) {
      r.firmware.faults.loseIncoming = 1 + (i % 2);
      expect(sw(await session.transmit(SELECT))).toBe(0x9000);
    }
    expect(r.firmware.stats.incomingLost).toBe(15 * 1 + 15 * 2);
    // a lost request is resent by the host; a lost ACK of ours makes the board resend its response
    expect(r.reader.stats.resends + r.firmware.stats.resends).toBeGreaterThanOrEqual(45);
    expect(r.reader.stats.resends).toBeGreaterThan(0);
    expect(r.firmware.stats.apdus).toBe(30);
  });

  it('a board that hears nothing: READER_TIMEOUT after 4 sends, and the line works again afterwards', async () => {
    const r = await rigWithCard();
    const session = r.session();
    r.firmware.faults.loseIncoming = 4;
    await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'READER_TIMEOUT', context: { failure: 'ack-timeout', attempts: 4 } });
    expect(r.firmware.stats.incomingLost).toBe(4);
    expect(sw(await session.transmit(SELECT))).toBe(0x9000);
  });

  it('a card slower than the APDU timeout: READER_TIMEOUT; its late answer is ignored and the next APDU gets its own', async () => {
    const r = await rigWithCard();
    const session = r.session();
    r.firmware.faults.responseDelayMs = 1200;
    await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'READER_TIMEOUT', context: { failure: 'response-timeout' } });
    r.firmware.faults.responseDelayMs = 0;
    await new Promise((res) => setTimeout(res, 400));
    const getData = encodeCommandApdu({ cla: 0x80, ins: 0xca, p1: 0, p2: 1, le: 256 });
    const answer = await session.transmit(getData);
    // not the FCI of the late SELECT answer
    expect(Buffer.from(answer).equals(Buffer.from(await session.transmit(getData)))).toBe(true);
    expect(r.firmware.stats.apdus).toBe(3);
  });

  it('survives corrupted CRCs from the board: the host NAKs and the board resends (100 tried)', async () => {
    const r = await rigWithCard();
    const session = r.session();
    for (let i = 0; i < 100; i++) {
      r.firmware.faults.corruptFrames = 1 + (i % 2);
      expect(sw(await session.transmit(SELECT))).toBe(0x9000);
    }
    expect(r.firmware.stats.framesCorrupted).toBeGreaterThanOrEqual(100);
    expect(r.reader.stats.naksSent).toBeGreaterThan(0);
    expect(r.reader.stats.discardedBytes).toBeGreaterThan(0);
    expect(r.firmware.stats.apdus).toBe(100);
  });

  it('survives frames split into random pieces (200 APDUs)', async () => {
    const r = await rigWithCard();
    r.firmware.faults.splitWrites = true;
    const session = r.session();
    for (let i = 0; i < 200; i++) expect(sw(await session.transmit(SELECT))).toBe(0x9000);
    expect(r.firmware.stats.apdus).toBe(200);
  });

  it('skips garbage, truncated, corrupted and oversized frames on the wire and keeps working (300 injected)', async () => {
    const r = await rigWithCard();
    const session = r.session();
    const injected = { garbage: 0, truncated: 0, corrupted: 0, oversized: 0 };
    const fakeEvent = encodeFrame({ seq: 200, command: 0x52, payload: new Uint8Array(0) });
    for (let i = 0; i < 300; i++) {
      const end = r.firmwareEnd()!;
      switch (i % 4) {
        case 0:
          await end.write(Uint8Array.from({ length: 20 }, (_, k) => (k * 37 + i) & 0x7f));
          injected.garbage++;
          break;
        case 1:
          await end.write(fakeEvent.subarray(0, 4));
          injected.truncated++;
          break;
        case 2: {
          const bad = fakeEvent.slice();
          bad[bad.length - 1]! ^= 0x10;
          await end.write(bad);
          injected.corrupted++;
          break;
        }
        case 3:
          await end.write(Uint8Array.of(0xa5, 0xff, 0xff, 0x01, 0x21));
          injected.oversized++;
          break;
      }
      if (i % 10 === 0) expect(sw(await session.transmit(SELECT))).toBe(0x9000);
    }
    // the last junk written reaches the reader
    await drain();
    expect(injected).toEqual({ garbage: 75, truncated: 75, corrupted: 75, oversized: 75 });
    expect(r.reader.stats.discardedBytes).toBeGreaterThan(75 * 20);
    // no corrupted card-removed event got through
    expect(r.readerEvents.filter((e) => e.type === 'card-removed')).toHaveLength(0);
    expect(sw(await session.transmit(SELECT))).toBe(0x9000);
    expect(r.reader.state).toBe('ready');
  });

  it('a reboot mid-session ends the session, faults the use in progress, re-syncs and gives a new session (20 reboots)', async () => {
    const r = await rigWithCard();
    const bootsBefore = r.reader.stats.boots;
    let reboots = 0;
    for (let i = 0; i < 20; i++) {
      const session = r.session();
      await session.transmit(SELECT);
      await r.reader.device.enable(100 + i, 0, { seq: 100 + i, hash: new Uint8Array(32) });
      const removedBefore = r.readerEvents.filter((e) => e.type === 'card-removed').length;
      r.firmware.reboot();
      reboots++;
      await waitFor(() => r.readerEvents.filter((e) => e.type === 'card-removed').length === removedBefore + 1, 'session end');
      await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
      await waitFor(() => r.reader.state === 'ready' && r.reader.currentSession() !== undefined && r.reader.currentSession() !== session, 'new session');
      expect(r.deviceEvents.some((e) => e.type === 'fault' && e.useSeq === 100 + i && /restarted/.test(e.detail))).toBe(true);
      expect(r.firmware.relay.closed).toBe(false);
    }
    expect(reboots).toBe(20);
    expect(r.reader.stats.boots - bootsBefore).toBe(20);
    const states = r.readerEvents.filter((e) => e.type === 'reader-state').map((e) => e.type === 'reader-state' && e.state);
    expect(states.filter((s) => s === 'starting').length).toBeGreaterThanOrEqual(21);
    expect(sw(await r.session().transmit(SELECT))).toBe(0x9000);
  });

  it('an APDU in flight when the board reboots fails with CARD_REMOVED', async () => {
    const r = await rigWithCard();
    const session = r.session();
    const pending = session.transmit(SELECT);
    r.firmware.reboot();
    const result = await pending.then(
      () => 'answered',
      (e: unknown) => e,
    );
    // the board either answered before the reset or the card is gone: never a reader error
    if (result !== 'answered') expect(isTallyError(result, 'CARD_REMOVED')).toBe(true);
    await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
  });

  it('an unplugged port makes the reader unavailable, then ready again when it is back (10 times)', async () => {
    const r = await rigWithCard();
    for (let i = 0; i < 10; i++) {
      const session = r.session();
      await r.unplug();
      await waitFor(() => r.reader.state === 'unavailable', 'unavailable');
      await expect(session.transmit(SELECT)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
      await expect(r.reader.show({ lines: ['x'] })).rejects.toMatchObject({ code: 'READER_UNAVAILABLE' });
      await r.replug();
      await waitFor(() => r.reader.state === 'ready' && r.reader.currentSession() !== undefined, 'ready with the card');
      expect(sw(await r.session().transmit(SELECT))).toBe(0x9000);
    }
    expect(r.reader.stats.connects).toBe(11);
  });

  it('a device event raised while the port is unplugged arrives after the replug, once', async () => {
    const r = await rigWithCard();
    await r.reader.device.enable(9, 0, { seq: 9, hash: new Uint8Array(32) });
    await waitFor(() => r.deviceEvents.some((e) => e.type === 'started'), 'started');
    await r.unplug();
    await waitFor(() => r.reader.state === 'unavailable', 'unavailable');
    r.firmware.finishDevice();
    await r.replug();
    await waitFor(() => r.deviceEvents.some((e) => e.type === 'finished' && e.useSeq === 9), 'finished after replug');
    await new Promise((res) => setTimeout(res, 150));
    expect(r.deviceEvents).toEqual([
      { type: 'started', useSeq: 9 },
      { type: 'finished', useSeq: 9 },
    ]);
  });

  it('a resent event (its ACK was lost) is acknowledged again and reported once', async () => {
    const r = await rigWithCard();
    const started = encodeFrame({ seq: 77, command: 0x53, payload: Uint8Array.of(0, 0, 0, 77) });
    await r.firmwareEnd()!.write(started);
    await r.firmwareEnd()!.write(started);
    await waitFor(() => r.reader.stats.duplicateEvents === 1, 'duplicate seen');
    expect(r.deviceEvents).toEqual([{ type: 'started', useSeq: 77 }]);
  });

  it('two reboots in a row count as two; a resent BOOT (same boot id) counts once', async () => {
    rig = await startMemoryRig();
    const r = rig;
    const before = r.reader.stats.boots;
    r.firmware.reboot();
    await waitFor(() => r.reader.stats.boots === before + 1, 'first boot');
    r.firmware.reboot();
    await waitFor(() => r.reader.stats.boots === before + 2, 'second boot');
    const boot = encodeFrame(encodeMessage({ kind: 'event', seq: 0, name: 'boot', body: { reason: 2, protocolVersion: 1, bootId: 999 } }));
    await r.firmwareEnd()!.write(boot);
    await r.firmwareEnd()!.write(boot);
    await waitFor(() => r.reader.stats.duplicateEvents === 1, 'duplicate BOOT dropped');
    expect(r.reader.stats.boots).toBe(before + 3);
    await waitFor(() => r.reader.state === 'ready', 'ready');
  });

  it('a board that stops answering is detected by the heartbeat and reconnected', async () => {
    const r = await rigWithCard(50);
    r.firmware.powerOff();
    await waitFor(() => r.reader.state === 'unavailable', 'unavailable after silence', 3000);
    expect(r.reader.currentSession()).toBeUndefined();
    r.firmware.powerOn();
    await waitFor(() => r.reader.state === 'ready' && r.reader.currentSession() !== undefined, 'ready again', 3000);
  });
});
