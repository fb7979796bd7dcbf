/**
 * Measures the serial backend: card detection delay (board sees the card ->
 * backend reports card-inserted), a swipe-like exchange (card reported ->
 * SELECT, GET DATA, relay enabled) over the in-memory wire and over a socat
 * pty pair, and the daemon's own codec cost per APDU exchange. 500 swipes each.
 */
import { describe, expect, it } from 'vitest';
import { encodeCommandApdu } from '../../src/codecs/apdu.js';
import { APPLET_AID } from '../../src/codecs/applet.js';
import { ApduStatus } from '../../src/codecs/firmware/card.js';
import { FrameDecoder, encodeFrame } from '../../src/codecs/firmware/frame.js';
import { encodeMessage, parseMessage } from '../../src/codecs/firmware/messages.js';
import type { CardSession } from '../../src/readers/CardReader.js';
import type { SerialReaderBackend } from '../../src/readers/serial/SerialReaderBackend.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { createInMemorySerialReader, type SimulatedReaderFirmware } from '../../src/sim/SimulatedReaderFirmware.js';
import { startPtyRig } from './rig.js';

const SWIPES = 500;
const SELECT = encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: APPLET_AID, le: 256 });
const GET_DATA = encodeCommandApdu({ cla: 0x80, ins: 0xca, p1: 0, p2: 1, le: 256 });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(values: number[]): { p50: number; p95: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 100) / 100;
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)) };
}

async function swipes(reader: SerialReaderBackend, firmware: SimulatedReaderFirmware): Promise<{ detection: number[]; swipe: number[]; apdusPerSwipe: number }> {
  const detection: number[] = [];
  const swipe: number[] = [];
  const card = SimulatedCard.blank();
  const apdusBefore = firmware.stats.apdus;
  for (let i = 0; i < SWIPES; i++) {
    const inserted = new Promise<CardSession>((resolve) => {
      const off = reader.onEvent((e) => {
        if (e.type === 'card-inserted') {
          off();
          resolve(e.session);
        }
      });
    });
    const insertedAt = performance.now();
    firmware.insertCard(card);
    const session = await inserted;
    const presentAt = performance.now();
    detection.push(presentAt - insertedAt);
    await session.transmit(SELECT);
    await session.transmit(GET_DATA);
    await reader.device.enable(i + 1, 0, { seq: i + 1, hash: new Uint8Array(32) });
    swipe.push(performance.now() - presentAt);
    await reader.device.disable();
    const removed = new Promise<void>((resolve) => {
      const off = reader.onEvent((e) => {
        if (e.type === 'card-removed') {
          off();
          resolve();
        }
      });
    });
    firmware.removeCard();
    await removed;
  }
  return { detection, swipe, apdusPerSwipe: (firmware.stats.apdus - apdusBefore) / SWIPES };
}

describe('serial backend latency', () => {
  it(`in memory: ${SWIPES} swipes`, async () => {
    const { reader, firmware } = createInMemorySerialReader({ firmware: { bootDelayMs: 1, device: { startDelayMs: 1 } }, reader: { heartbeatMs: 0 } });
    await reader.start();
    const result = await swipes(reader, firmware);
    await reader.stop();
    console.log(`serial/in-memory: detection ${JSON.stringify(summary(result.detection))} ms, swipe ${JSON.stringify(summary(result.swipe))} ms, ${result.apdusPerSwipe} APDUs per swipe`);
    expect(result.swipe).toHaveLength(SWIPES);
    expect(result.apdusPerSwipe).toBe(2);
    expect(summary(result.swipe).p95).toBeLessThan(200);
  });

  it(`over a socat pty pair: ${SWIPES} swipes`, async () => {
    const rig = await startPtyRig({ device: { startDelayMs: 1 } });
    try {
      const result = await swipes(rig.reader, rig.firmware);
      console.log(`serial/pty: detection ${JSON.stringify(summary(result.detection))} ms, swipe ${JSON.stringify(summary(result.swipe))} ms, ${result.apdusPerSwipe} APDUs per swipe`);
      expect(result.swipe).toHaveLength(SWIPES);
      expect(summary(result.swipe).p95).toBeLessThan(200);
    } finally {
      await rig.close();
    }
  });

  it("the daemon's own codec work per APDU exchange is a few microseconds", () => {
    const response = new Uint8Array(120).fill(0x42);
    response[118] = 0x90;
    response[119] = 0x00;
    const responseFrame = encodeFrame(encodeMessage({ kind: 'response', seq: 1, name: 'apdu', body: { status: ApduStatus.OK, response } }));
    const ack = encodeFrame(encodeMessage({ kind: 'ack', seq: 1, body: { ackedCommand: 0x21 } }));
    const decoder = new FrameDecoder();
    const rounds = 50_000;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      encodeFrame(encodeMessage({ kind: 'request', seq: i & 0xff, name: 'apdu', body: { apdu: SELECT } }));
      for (const result of decoder.push(ack)) if (result.type === 'frame') parseMessage(result.frame);
      for (const result of decoder.push(responseFrame)) if (result.type === 'frame') parseMessage(result.frame);
      encodeFrame(encodeMessage({ kind: 'ack', seq: 1, body: { ackedCommand: 0xa1 } }));
    }
    const perExchangeUs = ((performance.now() - started) * 1000) / rounds;
    console.log(`serial codec: ${perExchangeUs.toFixed(2)} µs of daemon CPU per APDU exchange (request, ACK, response, ACK)`);
    expect(perExchangeUs).toBeLessThan(200);
  });
});
