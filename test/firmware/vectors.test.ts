import { describe, expect, it } from 'vitest';
import { commandName } from '../../src/codecs/firmware/commands.js';
import { crc16 } from '../../src/codecs/firmware/crc16.js';
import { FrameDecoder, encodeFrame, parseFrame, type Frame } from '../../src/codecs/firmware/frame.js';
import { encodeMessage, parseMessage } from '../../src/codecs/firmware/messages.js';
import { MESSAGE_FAMILIES, hexBytes, loadFramingVectors, loadMessageVectors, messageOf } from './vectorFiles.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe.each(MESSAGE_FAMILIES)('golden vectors: %s', (family) => {
  const vectors = loadMessageVectors(family);

  it('has vectors', () => {
    expect(vectors.length).toBeGreaterThan(0);
  });

  it.each(vectors.map((v) => [v.description, v] as const))('%s: encode == hex', (_d, vector) => {
    const frame = encodeMessage(messageOf(vector));
    expect(frame.command).toBe(vector.frame.command);
    expect(commandName(frame.command)).toBe(vector.frame.commandName);
    expect(hex(frame.payload)).toBe(vector.frame.payload);
    expect(hex(encodeFrame(frame))).toBe(vector.hex);
  });

  it.each(vectors.map((v) => [v.description, v] as const))('%s: parse(hex) == fields', (_d, vector) => {
    const frame = parseFrame(hexBytes(vector.hex));
    expect({ seq: frame.seq, command: frame.command, payload: hex(frame.payload) }).toEqual({
      seq: vector.frame.seq,
      command: vector.frame.command,
      payload: vector.frame.payload,
    });
    expect(parseMessage(frame)).toEqual(messageOf(vector));
  });
});

describe('every request, response and event has a vector', () => {
  it('covers each command code both ways', () => {
    const covered = new Set<number>();
    for (const family of MESSAGE_FAMILIES) for (const v of loadMessageVectors(family)) covered.add(v.frame.command);
    const expected = [0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21, 0x30, 0x31, 0x32, 0x33, 0x40, 0x41, 0x42, 0x43, 0x44];
    for (const code of expected.slice(2)) expected.push(code | 0x80);
    expected.push(0x50, 0x51, 0x52, 0x53, 0x54, 0x55);
    expect([...covered].sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
  });
});

describe('framing vectors', () => {
  const framing = loadFramingVectors();

  it.each(framing.crc.map((v) => [v.description, v] as const))('CRC: %s', (_d, v) => {
    expect(crc16(hexBytes(v.hex))).toBe(v.crc);
  });

  it.each(framing.frames.map((v) => [v.description, v] as const))('frame both ways: %s', (_d, v) => {
    const frame: Frame = { seq: v.frame.seq, command: v.frame.command, payload: hexBytes(v.frame.payload) };
    expect(hex(encodeFrame(frame))).toBe(v.hex);
    const parsed = parseFrame(hexBytes(v.hex));
    expect({ ...parsed, payload: hex(parsed.payload) }).toEqual(v.frame);
  });

  it.each(framing.invalid.map((v) => [v.description, v] as const))('rejects: %s', (_d, v) => {
    expect(() => parseFrame(hexBytes(v.hex))).toThrow();
  });

  it.each(framing.streams.map((v) => [v.description, v] as const))('stream: %s', (_d, v) => {
    const decoder = new FrameDecoder();
    const frames: string[] = [];
    let discarded = 0;
    for (const chunk of v.chunks) {
      for (const result of decoder.push(hexBytes(chunk))) {
        if (result.type === 'frame') frames.push(hex(result.raw));
        else discarded += result.bytes.length;
      }
    }
    expect(frames).toEqual(v.frames);
    expect(discarded).toBe(v.discardedBytes);
    expect(decoder.pending).toBe(0);
  });
});
