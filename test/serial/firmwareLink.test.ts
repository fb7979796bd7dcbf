/**
 * FirmwareLink against a scripted peer on the in-memory wire: each typed
 * failure (NAK, no ACK, no response, closed port) and the NAK it sends for a
 * corrupted frame. The peer is written with the codec, frame by frame.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Command, NakReason } from '../../src/codecs/firmware/commands.js';
import { FrameDecoder, encodeFrame, type Frame } from '../../src/codecs/firmware/frame.js';
import { encodeMessage, parseMessage, type FirmwareMessage } from '../../src/codecs/firmware/messages.js';
import { FirmwareLink } from '../../src/readers/serial/FirmwareLink.js';
import type { ByteTransport } from '../../src/transports/ByteTransport.js';
import { createInMemoryPair } from '../../src/transports/InMemoryDuplex.js';
import { ManualScheduler } from '../../src/util/scheduler.js';
import { drain } from './rig.js';

const TIMING = { ackTimeoutMs: 30, responseTimeoutMs: 80, apduResponseTimeoutMs: 80, maxAttempts: 3, staleFrameMs: 30 };

/** The board's side of the wire, scripted: onFrame decides what to answer */
function scriptedPeer(end: ByteTransport, onFrame: (message: FirmwareMessage, frame: Frame) => FirmwareMessage[] | Uint8Array[]) {
  const decoder = new FrameDecoder();
  const received: FirmwareMessage[] = [];
  end.onData((bytes) => {
    for (const result of decoder.push(bytes)) {
      if (result.type !== 'frame') continue;
      const message = parseMessage(result.frame);
      received.push(message);
      for (const reply of onFrame(message, result.frame)) void end.write(reply instanceof Uint8Array ? reply : encodeFrame(encodeMessage(reply)));
    }
  });
  return { received };
}

let link: FirmwareLink | undefined;
afterEach(async () => {
  await link?.close();
  link = undefined;
});

describe('FirmwareLink typed failures', () => {
  it('resolves with the typed response after ACK and response', async () => {
    const { a, b } = createInMemoryPair();
    scriptedPeer(b, (m) => (m.kind === 'request' ? [{ kind: 'ack', seq: m.seq, body: { ackedCommand: Command.PING } }, { kind: 'response', seq: m.seq, name: 'ping', body: { nonce: Uint8Array.of(1, 2) } }] : []));
    link = new FirmwareLink(a, { timing: TIMING });
    await expect(link.request('ping', { nonce: Uint8Array.of(1, 2) })).resolves.toEqual({ nonce: Uint8Array.of(1, 2) });
    expect(link.stats.framesOut).toBe(2); // the request and our ACK of the response
  });

  it('no ACK at all: READER_TIMEOUT after maxAttempts sends', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    await expect(link.request('get-info', {})).rejects.toMatchObject({ code: 'READER_TIMEOUT', context: { failure: 'ack-timeout', attempts: 3 } });
    expect(peer.received.filter((m) => m.kind === 'request')).toHaveLength(3);
    expect(link.stats.resends).toBe(2);
  });

  it('ACK but no response: READER_TIMEOUT (response-timeout), sent once', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, (m) => (m.kind === 'request' ? [{ kind: 'ack', seq: m.seq, body: { ackedCommand: Command.APDU } }] : []));
    link = new FirmwareLink(a, { timing: TIMING });
    await expect(link.request('apdu', { apdu: Uint8Array.of(0, 0xa4, 4, 0) })).rejects.toMatchObject({ code: 'READER_TIMEOUT', context: { failure: 'response-timeout' } });
    expect(peer.received.filter((m) => m.kind === 'request')).toHaveLength(1);
  });

  it('NAK bad-payload: FRAME_REJECTED at once; NAK bad-crc: resent', async () => {
    const { a, b } = createInMemoryPair();
    let crcNaks = 1;
    const peer = scriptedPeer(b, (m) => {
      if (m.kind !== 'request') return [];
      if (m.name === 'display') return [{ kind: 'nak', seq: m.seq, body: { nakedCommand: Command.DISPLAY, reason: NakReason.BAD_PAYLOAD } }];
      if (crcNaks-- > 0) return [{ kind: 'nak', seq: m.seq, body: { nakedCommand: Command.LEDS, reason: NakReason.BAD_CRC } }];
      return [{ kind: 'response', seq: m.seq, name: 'leds', body: {} }];
    });
    link = new FirmwareLink(a, { timing: TIMING });
    await expect(link.request('display', { lines: ['x'] })).rejects.toMatchObject({ code: 'FRAME_REJECTED', context: { reason: 'bad-payload' } });
    await expect(link.request('leds', { leds: [{ led: 0, mode: 1 }] })).resolves.toEqual({});
    expect(peer.received.filter((m) => m.kind === 'request' && m.name === 'leds')).toHaveLength(2);
  });

  it('NAKs a corrupted event with its SEQ and CMD, and takes the resent one', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    const events: string[] = [];
    link.onEvent((e) => {
      events.push(e.name);
    });
    const frame = encodeFrame(encodeMessage({ kind: 'event', seq: 5, name: 'card-removed', body: {} }));
    const bad = frame.slice();
    bad[bad.length - 1]! ^= 0x40;
    await b.write(bad);
    await vi.waitFor(() => expect(peer.received).toHaveLength(1));
    expect(peer.received).toEqual([{ kind: 'nak', seq: 5, body: { nakedCommand: Command.CARD_REMOVED, reason: NakReason.BAD_CRC } }]);
    await b.write(frame);
    await vi.waitFor(() => expect(peer.received).toHaveLength(2));
    expect(events).toEqual(['card-removed']);
    expect(peer.received[1]).toEqual({ kind: 'ack', seq: 5, body: { ackedCommand: Command.CARD_REMOVED } });
  });

  it('NAKs an unknown command and a malformed payload, and keeps going', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    await b.write(encodeFrame({ seq: 1, command: 0x7e, payload: new Uint8Array(0) }));
    await b.write(encodeFrame({ seq: 2, command: Command.CARD_INSERTED, payload: Uint8Array.of(0x3b) }));
    await vi.waitFor(() => expect(peer.received).toHaveLength(2));
    expect(peer.received).toEqual([
      { kind: 'nak', seq: 1, body: { nakedCommand: 0x7e, reason: NakReason.UNKNOWN_COMMAND } },
      { kind: 'nak', seq: 2, body: { nakedCommand: Command.CARD_INSERTED, reason: NakReason.BAD_PAYLOAD } },
    ]);
    expect(link.stats.naksSent).toBe(2);
  });

  it('a closed port fails the request in flight and every later one with TRANSPORT_CLOSED', async () => {
    const { a, b } = createInMemoryPair();
    scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: { ...TIMING, ackTimeoutMs: 1000 } });
    const closed = new Promise<void>((resolve) => link!.onClose(() => resolve()));
    const pending = link.request('get-info', {});
    await b.close();
    await expect(pending).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' });
    await closed;
    await expect(link.request('ping', { nonce: new Uint8Array(0) })).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' });
  });

  it('runs on an injected clock: resends and the timeout happen when the clock says, not the wall', async () => {
    const clock = new ManualScheduler();
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { clock, timing: { ...TIMING, ackTimeoutMs: 200, maxAttempts: 3 } });
    let settled: unknown;
    link.request('get-info', {}).then(
      () => (settled = 'resolved'),
      (err: unknown) => (settled = err),
    );
    await drain();
    expect(peer.received).toHaveLength(1);
    clock.advance(199);
    await drain();
    expect(peer.received).toHaveLength(1);
    clock.advance(1);
    await drain();
    expect(peer.received).toHaveLength(2);
    clock.advance(200);
    await drain();
    expect(peer.received).toHaveLength(3);
    expect(settled).toBeUndefined();
    clock.advance(200);
    await drain();
    expect(settled).toMatchObject({ code: 'READER_TIMEOUT', context: { attempts: 3 } });
  });
});

describe('FirmwareLink: a device event is ACKed once it is taken (recorded)', () => {
  const started = encodeFrame(encodeMessage({ kind: 'event', seq: 7, name: 'device-started', body: { useSeq: 42 } }));
  const ackOf7: FirmwareMessage = { kind: 'ack', seq: 7, body: { ackedCommand: Command.DEVICE_STARTED } };

  it('holds the ACK while the listener records, sends it when it is recorded, drops a resend meanwhile, and ACKs a later resend again without delivering it', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    let finish: (recorded: boolean) => void = () => undefined;
    let deliveries = 0;
    link.onEvent(() => {
      deliveries++;
      return new Promise<boolean>((r) => (finish = r));
    });
    await b.write(started);
    await drain();
    expect(peer.received).toEqual([]);
    await b.write(started); // the device's resend while the ledger writes
    await drain();
    expect(deliveries).toBe(1);
    expect(peer.received).toEqual([]);
    finish(true);
    await drain();
    expect(peer.received).toEqual([ackOf7]);
    await b.write(started); // our ACK was lost: ACKed again, not delivered again
    await drain();
    expect(deliveries).toBe(1);
    expect(peer.received).toEqual([ackOf7, ackOf7]);
  });

  it('does not ACK an event a listener could not record (false, a rejection, a throw); its resend is delivered again', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    const answers: (() => boolean | Promise<boolean>)[] = [
      () => false,
      () => Promise.reject(new Error('disk I/O error')),
      () => {
        throw new Error('bug');
      },
      () => Promise.resolve(false),
      () => true,
    ];
    let deliveries = 0;
    link.onEvent(() => answers[deliveries++]!());
    for (let i = 0; i < 4; i++) {
      await b.write(started);
      await drain();
      expect(peer.received).toEqual([]);
    }
    expect(link.stats.eventsNotAccepted).toBe(4);
    await b.write(started);
    await drain();
    expect(deliveries).toBe(5);
    expect(peer.received).toEqual([ackOf7]);
  });

  it('ACKs only when every listener has taken the event', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    let answer: (recorded: boolean) => void = () => undefined;
    link.onEvent(() => undefined);
    link.onEvent(() => new Promise<boolean>((r) => (answer = r)));
    await b.write(started);
    await drain();
    expect(peer.received).toEqual([]);
    answer(false);
    await drain();
    expect(peer.received).toEqual([]);
  });

  it('sends no ACK when the link closed while the event was being recorded', async () => {
    const { a, b } = createInMemoryPair();
    const peer = scriptedPeer(b, () => []);
    link = new FirmwareLink(a, { timing: TIMING });
    let finish: (recorded: boolean) => void = () => undefined;
    link.onEvent(() => new Promise<boolean>((r) => (finish = r)));
    await b.write(started);
    await drain();
    await link.close();
    finish(true);
    await drain();
    expect(peer.received).toEqual([]);
  });
});
