/**
 * The frame of the serial firmware protocol (firmware-protocol/serial-protocol.md):
 *
 *   SOF 0xA5 | LEN (u16 BE) | SEQ | CMD | PAYLOAD (LEN bytes) | CRC-16 (BE)
 *
 * LEN counts payload bytes only. The CRC covers LEN, SEQ, CMD and PAYLOAD.
 * Pure: bytes in, values out.
 */
import { CodecError } from '../../errors.js';
import { crc16 } from './crc16.js';

export const START_OF_FRAME = 0xa5;
export const MAX_PAYLOAD = 512;
/** SOF + LEN(2) + SEQ + CMD */
export const HEADER_LENGTH = 5;
export const CRC_LENGTH = 2;
export const FRAME_OVERHEAD = HEADER_LENGTH + CRC_LENGTH;
export const MIN_FRAME = FRAME_OVERHEAD;
export const MAX_FRAME = MAX_PAYLOAD + FRAME_OVERHEAD;

export interface Frame {
  readonly seq: number;
  readonly command: number;
  readonly payload: Uint8Array;
}

export class FrameError extends CodecError {
  override readonly name: string = 'FrameError';
  constructor(detail: string, path = '') {
    super('BAD_FRAME', detail, path);
  }
}

function checkByte(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new FrameError(`${name} out of range: ${value}`);
}

export function encodeFrame(frame: Frame): Uint8Array {
  checkByte('seq', frame.seq);
  checkByte('command', frame.command);
  const length = frame.payload.length;
  if (length > MAX_PAYLOAD) throw new FrameError(`payload too long: ${length} > ${MAX_PAYLOAD}`);
  const out = new Uint8Array(length + FRAME_OVERHEAD);
  out[0] = START_OF_FRAME;
  out[1] = length >>> 8;
  out[2] = length & 0xff;
  out[3] = frame.seq;
  out[4] = frame.command;
  out.set(frame.payload, HEADER_LENGTH);
  const crc = crc16(out, 1, HEADER_LENGTH + length);
  out[HEADER_LENGTH + length] = crc >>> 8;
  out[HEADER_LENGTH + length + 1] = crc & 0xff;
  return out;
}

/** Strictly decodes exactly one frame; throws FrameError on anything else. The stream parser is FrameParser. */
export function parseFrame(bytes: Uint8Array): Frame {
  if (bytes.length < MIN_FRAME) throw new FrameError(`too short: ${bytes.length} bytes`);
  if (bytes[0] !== START_OF_FRAME) throw new FrameError(`bad start byte 0x${bytes[0]!.toString(16)}`);
  const length = (bytes[1]! << 8) | bytes[2]!;
  if (length > MAX_PAYLOAD) throw new FrameError(`declared payload too long: ${length}`);
  if (bytes.length !== length + FRAME_OVERHEAD) throw new FrameError(`length mismatch: declared ${length}, frame holds ${bytes.length - FRAME_OVERHEAD}`);
  const expected = crc16(bytes, 1, HEADER_LENGTH + length);
  const actual = (bytes[HEADER_LENGTH + length]! << 8) | bytes[HEADER_LENGTH + length + 1]!;
  if (expected !== actual) throw new FrameError(`bad CRC: 0x${actual.toString(16).padStart(4, '0')}, expected 0x${expected.toString(16).padStart(4, '0')}`);
  return { seq: bytes[3]!, command: bytes[4]!, payload: bytes.slice(HEADER_LENGTH, HEADER_LENGTH + length) };
}

export type DiscardReason = 'no-start' | 'bad-length' | 'bad-crc' | 'stale';

export type DecodeResult =
  | { readonly type: 'frame'; readonly frame: Frame; readonly raw: Uint8Array }
  | {
      readonly type: 'discarded';
      readonly bytes: Uint8Array;
      readonly reason: DiscardReason;
      /** For bad-crc: the frame's header as received (untrusted), so a receiver can NAK it */
      readonly header?: { readonly seq: number; readonly command: number };
    };

/**
 * Streaming decoder. Pure state machine over a bounded buffer: push() takes any
 * bytes and returns what they completed; it never throws. Bytes before a start
 * byte are discarded; a bad length or CRC discards the start byte only and
 * rescans from the next byte, so a good frame hidden behind a corrupt header
 * is still found.
 */
export class FrameDecoder {
  /** Holds at most MAX_FRAME bytes: a candidate frame beginning with SOF */
  private readonly buffer = new Uint8Array(MAX_FRAME);
  private filled = 0;

  get pending(): number {
    return this.filled;
  }

  push(chunk: Uint8Array): DecodeResult[] {
    const results: DecodeResult[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.filled === 0) {
        // skip to the next start byte
        const start = chunk.indexOf(START_OF_FRAME, offset);
        if (start < 0) {
          results.push({ type: 'discarded', bytes: chunk.slice(offset), reason: 'no-start' });
          break;
        }
        if (start > offset) results.push({ type: 'discarded', bytes: chunk.slice(offset, start), reason: 'no-start' });
        offset = start;
      }
      const room = MAX_FRAME - this.filled;
      const take = Math.min(room, chunk.length - offset);
      this.buffer.set(chunk.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      this.drain(results);
    }
    return results;
  }

  /** Gives up on a partial frame (the link calls this when the line went quiet mid-frame) */
  expire(): DecodeResult[] {
    if (this.filled === 0) return [];
    const results: DecodeResult[] = [{ type: 'discarded', bytes: this.buffer.slice(0, 1), reason: 'stale' }];
    const rest = this.buffer.slice(1, this.filled);
    this.filled = 0;
    // the rest may still hold a complete frame behind its own start byte
    results.push(...this.push(rest));
    if (this.filled > 0) {
      results.push({ type: 'discarded', bytes: this.buffer.slice(0, this.filled), reason: 'stale' });
      this.filled = 0;
    }
    return results;
  }

  /** Takes complete frames (and rejects) from the front of the buffer */
  private drain(results: DecodeResult[]): void {
    for (;;) {
      if (this.filled === 0) return;
      if (this.buffer[0] !== START_OF_FRAME) {
        this.shiftToNextStart(1, 'no-start', results);
        continue;
      }
      if (this.filled < 3) return;
      const length = (this.buffer[1]! << 8) | this.buffer[2]!;
      if (length > MAX_PAYLOAD) {
        this.shiftToNextStart(1, 'bad-length', results);
        continue;
      }
      const total = length + FRAME_OVERHEAD;
      if (this.filled < total) return;
      const expected = crc16(this.buffer, 1, HEADER_LENGTH + length);
      const actual = (this.buffer[HEADER_LENGTH + length]! << 8) | this.buffer[HEADER_LENGTH + length + 1]!;
      if (expected !== actual) {
        const header = { seq: this.buffer[3]!, command: this.buffer[4]! };
        const before = results.length;
        this.shiftToNextStart(1, 'bad-crc', results);
        const entry = results[before];
        if (entry && entry.type === 'discarded') results[before] = { ...entry, header };
        continue;
      }
      const raw = this.buffer.slice(0, total);
      results.push({
        type: 'frame',
        frame: { seq: raw[3]!, command: raw[4]!, payload: raw.subarray(HEADER_LENGTH, HEADER_LENGTH + length) },
        raw,
      });
      this.consume(total);
    }
  }

  /** Drops `count` bytes plus everything up to the next start byte, reporting them as one discard */
  private shiftToNextStart(count: number, reason: DiscardReason, results: DecodeResult[]): void {
    let end = count;
    while (end < this.filled && this.buffer[end] !== START_OF_FRAME) end++;
    results.push({ type: 'discarded', bytes: this.buffer.slice(0, end), reason });
    this.consume(end);
  }

  private consume(count: number): void {
    this.buffer.copyWithin(0, count, this.filled);
    this.filled -= count;
  }
}
