import { CodecError } from '../../errors.js';
/** Cursor helpers shared by the firmware payload codecs. Pure. */

/** A firmware message whose payload does not parse (the frame around it was sound) */
export class FirmwarePayloadError extends CodecError {
  override readonly name: string = 'FirmwarePayloadError';
  constructor(detail: string, path = '') {
    super('BAD_FIRMWARE_PAYLOAD', detail, path);
  }
}

const utf8Encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeUtf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new FirmwarePayloadError(`${what}: invalid UTF-8`);
  }
}

/** Reads a payload front to back; every read checks bounds and throws FirmwarePayloadError */
export class PayloadReader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array, private readonly what: string) {}

  u8(field: string): number {
    if (this.offset + 1 > this.bytes.length) throw new FirmwarePayloadError(`${this.what}: truncated at ${field}`);
    return this.bytes[this.offset++]!;
  }

  u16(field: string): number {
    return (this.u8(field) << 8) | this.u8(field);
  }

  u32(field: string): number {
    return ((this.u16(field) << 16) >>> 0) + this.u16(field);
  }

  take(count: number, field: string): Uint8Array {
    if (this.offset + count > this.bytes.length) throw new FirmwarePayloadError(`${this.what}: truncated at ${field}`);
    const out = this.bytes.slice(this.offset, this.offset + count);
    this.offset += count;
    return out;
  }

  rest(): Uint8Array {
    const out = this.bytes.slice(this.offset);
    this.offset = this.bytes.length;
    return out;
  }

  /** u8 length then that many bytes of UTF-8 */
  shortString(field: string, max: number): string {
    const length = this.u8(field);
    if (length > max) throw new FirmwarePayloadError(`${this.what}: ${field} longer than ${max} bytes`);
    return decodeUtf8(this.take(length, field), `${this.what}: ${field}`);
  }

  end(): void {
    if (this.offset !== this.bytes.length) throw new FirmwarePayloadError(`${this.what}: ${this.bytes.length - this.offset} unexpected trailing bytes`);
  }
}

/** Builds a payload; every write checks its range and throws FirmwarePayloadError */
export class PayloadWriter {
  private readonly parts: number[] = [];
  constructor(private readonly what: string) {}

  u8(value: number, field: string): this {
    this.check(value, 0xff, field);
    this.parts.push(value);
    return this;
  }

  u16(value: number, field: string): this {
    this.check(value, 0xffff, field);
    this.parts.push(value >>> 8, value & 0xff);
    return this;
  }

  u32(value: number, field: string): this {
    this.check(value, 0xffffffff, field);
    this.parts.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    return this;
  }

  bytes(value: Uint8Array): this {
    for (const b of value) this.parts.push(b);
    return this;
  }

  shortString(text: string, field: string, max: number): this {
    const encoded = encodeUtf8(text);
    if (encoded.length > max) throw new FirmwarePayloadError(`${this.what}: ${field} longer than ${max} bytes`);
    return this.u8(encoded.length, field).bytes(encoded);
  }

  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }

  private check(value: number, max: number, field: string): void {
    if (!Number.isInteger(value) || value < 0 || value > max) throw new FirmwarePayloadError(`${this.what}: ${field} out of range: ${value}`);
  }
}

export function expectEmpty(payload: Uint8Array, what: string): Record<string, never> {
  if (payload.length !== 0) throw new FirmwarePayloadError(`${what}: expected an empty payload, got ${payload.length} bytes`);
  return {};
}
