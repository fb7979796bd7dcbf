/**
 * PcscCardReader's own logic over a fake PC/SC context: readers that come and
 * go (a USB reader unplugged and plugged back, which vpcd cannot do), card
 * events, a context that dies, and pcscd that stays away for a while.
 */
import { describe, expect, it } from 'vitest';
import { TallyError, isTallyError } from '../../src/errors.js';
import type { ReaderEvent } from '../../src/readers/CardReader.js';
import { ManualScheduler } from '../../src/util/scheduler.js';
import { PcscCardReader } from '../../src/readers/pcsc/PcscCardReader.js';
import type { PcscContextHandle, PcscReaderHandle, PcscReaderStatus } from '../../src/readers/pcsc/pcscLite.js';

const ATR = Uint8Array.of(0x3b, 0x00);

class FakeReader implements PcscReaderHandle {
  private statusListeners: ((s: PcscReaderStatus) => void)[] = [];
  private endListeners: (() => void)[] = [];
  connected = false;
  closed = false;
  connects = 0;
  busyConnects = 0;
  answer: (apdu: Uint8Array) => Uint8Array = () => Uint8Array.of(0x90, 0x00);
  constructor(readonly name: string) {}
  onStatus(l: (s: PcscReaderStatus) => void): void {
    this.statusListeners.push(l);
  }
  onEnd(l: () => void): void {
    this.endListeners.push(l);
  }
  onError(): void {}
  async connect(): Promise<number> {
    this.connects++;
    if (this.busyConnects > 0) {
      this.busyConnects--;
      throw new TallyError('READER_IN_USE', 'SCardConnect: Sharing violation (0x8010000b)');
    }
    this.connected = true;
    return 2;
  }
  async disconnect(): Promise<void> {
    this.connected = false;
  }
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.connected) throw new TallyError('CARD_REMOVED', 'not connected');
    return this.answer(apdu);
  }
  close(): void {
    this.closed = true;
  }
  status(present: boolean, eventCount: number): void {
    for (const l of this.statusListeners) l({ present, mute: false, eventCount, atr: present ? ATR : new Uint8Array(0) });
  }
  end(): void {
    for (const l of this.endListeners) l();
  }
}

class FakeContext implements PcscContextHandle {
  private readerListeners: ((r: PcscReaderHandle) => void)[] = [];
  private errorListeners: ((e: TallyError) => void)[] = [];
  closed = false;
  onReader(l: (r: PcscReaderHandle) => void): void {
    this.readerListeners.push(l);
  }
  onError(l: (e: TallyError) => void): void {
    this.errorListeners.push(l);
  }
  close(): void {
    this.closed = true;
  }
  add(reader: FakeReader): void {
    for (const l of this.readerListeners) l(reader);
  }
  die(): void {
    for (const l of this.errorListeners) l(new TallyError('READER_UNAVAILABLE', 'SCardGetStatusChange: Service not available (0x8010001d)'));
  }
}

/** Lets the reader's promise callbacks run; time itself moves only through the scheduler */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Moves the reader's time on in 5 ms steps until the condition holds (3 s of its time at most) */
async function until(timers: ManualScheduler, condition: () => boolean): Promise<void> {
  for (let moved = 0; !condition(); moved += 5) {
    if (moved > 3000) throw new Error('condition not met in 3 s of the reader\'s time');
    timers.advance(5);
    await tick();
  }
}

function setup(options: { failFirst?: number; readerName?: string } = {}) {
  const contexts: FakeContext[] = [];
  let failures = options.failFirst ?? 0;
  const timers = new ManualScheduler(Date.UTC(2026, 11, 1));
  const reader = new PcscCardReader({
    scheduler: timers,
    clock: timers,
    retry: { initialMs: 5, maxMs: 20 },
    ...(options.readerName ? { readerName: options.readerName } : {}),
    contextFactory: () => {
      if (failures > 0) {
        failures--;
        throw new TallyError('READER_UNAVAILABLE', 'no pcscd');
      }
      const context = new FakeContext();
      contexts.push(context);
      return context;
    },
  });
  const events: ReaderEvent[] = [];
  reader.onEvent((e) => events.push(e));
  return { reader, contexts, events, timers };
}

describe('PcscCardReader over a fake PC/SC context', () => {
  it('binds the reader, opens one session per insertion, ends it on removal', async () => {
    const { reader, contexts, events } = setup();
    await reader.start();
    const usb = new FakeReader('ACS ACR39U 00 00');
    contexts[0]!.add(usb);
    expect(reader.state).toBe('ready');
    usb.status(true, 1);
    await tick();
    const session = reader.currentSession();
    expect(session?.id).toBe(1);
    expect(await session!.transmit(Uint8Array.of(0, 0xa4, 4, 0))).toEqual(Uint8Array.of(0x90, 0x00));
    usb.status(false, 2);
    await tick();
    expect(reader.currentSession()).toBeUndefined();
    expect(events.filter((e) => e.type === 'card-removed')).toEqual([{ type: 'card-removed', sessionId: 1 }]);
    await expect(session!.transmit(Uint8Array.of(0, 0xa4, 4, 0))).rejects.toSatisfy((e: unknown) => isTallyError(e, 'CARD_REMOVED'));
    await reader.stop();
  });

  it('a card swapped faster than the status poll (event counter moved, still present) is a new session', async () => {
    const { reader, contexts } = setup();
    await reader.start();
    const usb = new FakeReader('R');
    contexts[0]!.add(usb);
    usb.status(true, 1);
    await tick();
    const first = reader.currentSession();
    usb.status(true, 3);
    await tick();
    expect(reader.currentSession()?.id).toBe((first?.id ?? 0) + 1);
    expect(usb.connects).toBe(2);
    await reader.stop();
  });

  it('a card another program holds is connected again once it lets go', async () => {
    const { reader, contexts, events, timers } = setup();
    await reader.start();
    const usb = new FakeReader('R');
    usb.busyConnects = 2;
    contexts[0]!.add(usb);
    usb.status(true, 1);
    await until(timers, () => reader.currentSession() !== undefined);
    expect(usb.connects).toBe(3);
    expect(reader.stats.connectFailures).toBe(2);
    expect(events.filter((e) => e.type === 'card-inserted')).toHaveLength(1);
    await reader.stop();
  });

  it('a response without a status word rejects CARD_REMOVED and leaves the verdict to the next status', async () => {
    const { reader, contexts } = setup();
    await reader.start();
    const usb = new FakeReader('R');
    contexts[0]!.add(usb);
    usb.status(true, 1);
    await tick();
    usb.answer = () => new Uint8Array(0);
    const session = reader.currentSession()!;
    await expect(session.transmit(Uint8Array.of(0, 0xb0, 0, 0))).rejects.toSatisfy((e: unknown) => isTallyError(e, 'CARD_REMOVED'));
    expect(reader.currentSession()).toBe(session);
    await reader.stop();
  });

  it('a USB reader unplugged and plugged back: unavailable, then ready with a new session', async () => {
    const { reader, contexts, events } = setup();
    await reader.start();
    const usb = new FakeReader('ACS ACR39U 00 00');
    contexts[0]!.add(usb);
    usb.status(true, 1);
    await tick();
    usb.end();
    expect(reader.state).toBe('unavailable');
    expect(events).toContainEqual({ type: 'card-removed', sessionId: 1 });
    const again = new FakeReader('ACS ACR39U 00 00');
    contexts[0]!.add(again);
    again.status(true, 1);
    await tick();
    expect(reader.state).toBe('ready');
    expect(reader.currentSession()?.id).toBe(2);
    await reader.stop();
  });

  it('keeps to its reader-name filter and fails over to another matching reader', async () => {
    const { reader, contexts } = setup({ readerName: 'ACR39U' });
    await reader.start();
    contexts[0]!.add(new FakeReader('Yubikey CCID 00 00'));
    expect(reader.state).toBe('starting');
    const a = new FakeReader('ACS ACR39U 00 00');
    const b = new FakeReader('ACS ACR39U 01 00');
    contexts[0]!.add(a);
    contexts[0]!.add(b);
    expect(reader.name).toBe(a.name);
    a.end();
    expect(reader.name).toBe(b.name);
    expect(reader.state).toBe('ready');
    await reader.stop();
  });

  it('pcscd down at start: retries with backoff, counts the failures, binds when it answers', async () => {
    const { reader, contexts, timers } = setup({ failFirst: 4 });
    await reader.start();
    expect(reader.state).toBe('unavailable');
    await until(timers, () => contexts.length === 1);
    expect(reader.stats.contextFailures).toBe(4);
    expect(contexts).toHaveLength(1);
    contexts[0]!.add(new FakeReader('R'));
    expect(reader.state).toBe('ready');
    await reader.stop();
  });

  it('a context that dies is closed with its readers and replaced; the card is seen again', async () => {
    const { reader, contexts, events, timers } = setup();
    await reader.start();
    const first = new FakeReader('R');
    contexts[0]!.add(first);
    first.status(true, 1);
    await tick();
    contexts[0]!.die();
    await tick();
    expect(reader.state).toBe('unavailable');
    expect(contexts[0]!.closed).toBe(true);
    expect(first.closed).toBe(true);
    expect(events).toContainEqual({ type: 'card-removed', sessionId: 1 });
    await until(timers, () => contexts.length === 2);
    // a late event from the dead context changes nothing
    first.status(false, 2);
    const second = new FakeReader('R');
    contexts[1]!.add(second);
    second.status(true, 1);
    await tick();
    expect(reader.currentSession()?.id).toBe(2);
    expect(reader.stats).toMatchObject({ contextsOpened: 2, contextsLost: 1, sessionsOpened: 2 });
    await reader.stop();
    expect(reader.state).toBe('stopped');
    expect(contexts[1]!.closed).toBe(true);
  });
});
