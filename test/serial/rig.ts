/** A serial backend wired to a simulated microcontroller, in memory or over a socat pty pair */
import { expect } from 'vitest';
import type { CardSession, DeviceEvent, ReaderEvent } from '../../src/readers/CardReader.js';
import { createSerialReader, createSerialReaderOver, type SerialReaderBackend } from '../../src/readers/serial/SerialReaderBackend.js';
import { SimulatedReaderFirmware, type SimulatedReaderFirmwareOptions } from '../../src/sim/SimulatedReaderFirmware.js';
import type { ByteTransport } from '../../src/transports/ByteTransport.js';
import { createInMemoryPair } from '../../src/transports/InMemoryDuplex.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { startPtyPair, type PtyPair } from '../../src/transports/PtyPair.js';

export const FAST_TIMING = { ackTimeoutMs: 60, responseTimeoutMs: 500, apduResponseTimeoutMs: 1000, maxAttempts: 4, staleFrameMs: 50 };

export interface Rig {
  readonly reader: SerialReaderBackend;
  readonly firmware: SimulatedReaderFirmware;
  readonly readerEvents: ReaderEvent[];
  readonly deviceEvents: DeviceEvent[];
  /** The firmware's end of the wire, to inject raw bytes */
  firmwareEnd(): ByteTransport | undefined;
  unplug(): Promise<void>;
  replug(): Promise<void>;
  session(): CardSession;
  close(): Promise<void>;
}

/** Lets an in-memory pair (it delivers on setImmediate) and the promise chains behind it run to the end: a few turns of the event loop, no time */
export async function drain(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function record(reader: SerialReaderBackend) {
  const readerEvents: ReaderEvent[] = [];
  const deviceEvents: DeviceEvent[] = [];
  reader.onEvent((e) => readerEvents.push(e));
  reader.device.onEvent((e) => {
    deviceEvents.push(e);
  });
  return { readerEvents, deviceEvents };
}

function sessionOf(reader: SerialReaderBackend): CardSession {
  const session = reader.currentSession();
  expect(session, 'a card session').toBeDefined();
  return session!;
}

/** In memory: each (re)open makes a fresh pair and plugs the firmware into its other end */
export async function startMemoryRig(firmwareOptions: SimulatedReaderFirmwareOptions = {}, readerOptions: { heartbeatMs?: number } = {}): Promise<Rig> {
  const firmware = new SimulatedReaderFirmware({ ackTimeoutMs: 60, bootDelayMs: 1, ...firmwareOptions });
  firmware.powerOn();
  let plugged = true;
  let ends: { a: ByteTransport; b: ByteTransport } | undefined;
  const reader = createSerialReaderOver(
    async () => {
      if (!plugged) throw new Error('no such device');
      ends = createInMemoryPair({ a: 'daemon', b: 'firmware' });
      firmware.attach(ends.b);
      return ends.a;
    },
    { timing: FAST_TIMING, heartbeatMs: readerOptions.heartbeatMs ?? 0, reopenDelayMs: 20 },
  );
  const { readerEvents, deviceEvents } = record(reader);
  await firmware.booted();
  await reader.start();
  return {
    reader,
    firmware,
    readerEvents,
    deviceEvents,
    firmwareEnd: () => ends?.b,
    async unplug() {
      plugged = false;
      await ends?.a.close();
    },
    async replug() {
      plugged = true;
    },
    session: () => sessionOf(reader),
    async close() {
      await reader.stop();
      firmware.powerOff();
    },
  };
}

/** Over a real pty pair made by socat; unplug stops socat, replug starts it again on the same paths */
export async function startPtyRig(firmwareOptions: SimulatedReaderFirmwareOptions = {}): Promise<Rig & { pty(): PtyPair }> {
  let pty = await startPtyPair();
  const dir = pty.daemonPath.slice(0, pty.daemonPath.lastIndexOf('/'));
  const firmware = new SimulatedReaderFirmware({ ackTimeoutMs: 60, bootDelayMs: 1, ...firmwareOptions });
  let firmwareEnd: ByteTransport | undefined = await openSerialTransport(pty.firmwarePath);
  firmware.attach(firmwareEnd);
  firmware.powerOn();
  await firmware.booted();
  const reader = createSerialReader(pty.daemonPath, { timing: FAST_TIMING, heartbeatMs: 200, reopenDelayMs: 50 });
  const { readerEvents, deviceEvents } = record(reader);
  await reader.start();
  return {
    reader,
    firmware,
    readerEvents,
    deviceEvents,
    firmwareEnd: () => firmwareEnd,
    pty: () => pty,
    async unplug() {
      await pty.stop();
      await firmwareEnd?.close().catch(() => undefined);
      firmwareEnd = undefined;
    },
    async replug() {
      pty = await startPtyPair({ dir });
      firmwareEnd = await openSerialTransport(pty.firmwarePath);
      firmware.attach(firmwareEnd);
    },
    session: () => sessionOf(reader),
    async close() {
      await reader.stop();
      firmware.powerOff();
      await firmwareEnd?.close().catch(() => undefined);
      await pty.stop();
    },
  };
}
