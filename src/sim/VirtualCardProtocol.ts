/**
 * vpcd's wire protocol between the reader driver and a virtual card: every
 * message is a 2-byte big-endian length and that many bytes. A 1-byte message
 * is a control code; anything longer is a command APDU, answered with the
 * response APDU. Pure: bytes in, messages out.
 */

export const VpcdControl = {
  POWER_OFF: 0,
  POWER_ON: 1,
  RESET: 2,
  GET_ATR: 4,
} as const;

export type VpcdMessage =
  | { readonly type: 'control'; readonly code: number }
  | { readonly type: 'apdu'; readonly apdu: Uint8Array };

export const VPCD_MAX_MESSAGE = 0xffff;

export function encodeVpcdMessage(payload: Uint8Array): Uint8Array {
  if (payload.length > VPCD_MAX_MESSAGE) throw new RangeError(`vpcd message too long: ${payload.length} bytes`);
  const frame = new Uint8Array(2 + payload.length);
  frame[0] = payload.length >>> 8;
  frame[1] = payload.length & 0xff;
  frame.set(payload, 2);
  return frame;
}

/**
 * Splits a byte stream into vpcd messages. Feed it whatever the socket
 * delivers; it keeps a partial message until the rest arrives.
 */
export class VpcdMessageParser {
  private pending = new Uint8Array(0);

  push(chunk: Uint8Array): VpcdMessage[] {
    const data = this.pending.length === 0 ? chunk : concat(this.pending, chunk);
    const messages: VpcdMessage[] = [];
    let offset = 0;
    while (data.length - offset >= 2) {
      const length = ((data[offset] ?? 0) << 8) | (data[offset + 1] ?? 0);
      if (data.length - offset - 2 < length) break;
      const body = data.slice(offset + 2, offset + 2 + length);
      offset += 2 + length;
      messages.push(length === 1 ? { type: 'control', code: body[0] ?? 0 } : { type: 'apdu', apdu: body });
    }
    this.pending = data.slice(offset);
    return messages;
  }

  get buffered(): number {
    return this.pending.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
