/**
 * One datagram over the one-way diode (firmware-protocol/gateway-diode.md):
 *   "TD" | version 1 | kind (1 crossing, 2 department delivery)
 *   | gateway id length u8 | gateway id (ASCII)
 *   | seq u48 big-endian (the gateway's archive seq, or the delivery id)
 *   | topic length u16 | topic (UTF-8) | payload length u32 | payload
 * Nothing comes back, so the receiver dedupes on (gateway id, kind, seq).
 * Pure.
 */
export const DIODE_MAGIC = [0x54, 0x44] as const;
export const DIODE_VERSION = 1;
/** What fits one UDP datagram over IPv4 with room for the header */
export const DIODE_MAX_PAYLOAD = 65_000;

export type DiodeKind = 'crossing' | 'delivery';

export interface DiodeFrame {
  readonly kind: DiodeKind;
  readonly gatewayId: string;
  readonly seq: number;
  readonly topic: string;
  readonly payload: Uint8Array;
}

export class DiodeFrameError extends Error {
  override readonly name = 'DiodeFrameError';
}

const KIND_BYTE: Record<DiodeKind, number> = { crossing: 1, delivery: 2 };

export function encodeDiodeFrame(f: DiodeFrame): Uint8Array {
  const id = new TextEncoder().encode(f.gatewayId);
  const topic = new TextEncoder().encode(f.topic);
  if (id.length === 0 || id.length > 32 || !/^[A-Za-z0-9._-]+$/.test(f.gatewayId)) throw new DiodeFrameError('gateway id: 1-32 of A-Z a-z 0-9 . _ -');
  if (topic.length === 0 || topic.length > 256) throw new DiodeFrameError('topic: 1-256 bytes');
  if (f.payload.length > DIODE_MAX_PAYLOAD) throw new DiodeFrameError(`payload over ${DIODE_MAX_PAYLOAD} bytes`);
  if (!Number.isSafeInteger(f.seq) || f.seq < 1 || f.seq > 2 ** 48 - 1) throw new DiodeFrameError('seq: 1..2^48-1');
  const out = new Uint8Array(5 + id.length + 6 + 2 + topic.length + 4 + f.payload.length);
  const view = new DataView(out.buffer);
  let o = 0;
  out[o++] = DIODE_MAGIC[0];
  out[o++] = DIODE_MAGIC[1];
  out[o++] = DIODE_VERSION;
  out[o++] = KIND_BYTE[f.kind];
  out[o++] = id.length;
  out.set(id, o);
  o += id.length;
  view.setUint16(o, Math.floor(f.seq / 2 ** 32));
  view.setUint32(o + 2, f.seq >>> 0);
  o += 6;
  view.setUint16(o, topic.length);
  o += 2;
  out.set(topic, o);
  o += topic.length;
  view.setUint32(o, f.payload.length);
  o += 4;
  out.set(f.payload, o);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseDiodeFrame(bytes: Uint8Array): DiodeFrame {
  const fail = (why: string): never => {
    throw new DiodeFrameError(why);
  };
  if (bytes.length < 4 + 1 + 6 + 2 + 4) fail('datagram too short');
  if (bytes[0] !== DIODE_MAGIC[0] || bytes[1] !== DIODE_MAGIC[1]) fail('bad magic');
  if (bytes[2] !== DIODE_VERSION) fail(`unknown version ${bytes[2]}`);
  const kind: DiodeKind = bytes[3] === 1 ? 'crossing' : bytes[3] === 2 ? 'delivery' : fail(`unknown kind ${bytes[3]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 4;
  const idLength = bytes[o++]!;
  if (idLength === 0 || idLength > 32 || o + idLength + 12 > bytes.length) fail('bad gateway id length');
  let gatewayId = '';
  try {
    gatewayId = utf8.decode(bytes.subarray(o, o + idLength));
  } catch {
    fail('gateway id not UTF-8');
  }
  if (!/^[A-Za-z0-9._-]+$/.test(gatewayId)) fail('bad gateway id');
  o += idLength;
  const seq = view.getUint16(o) * 2 ** 32 + view.getUint32(o + 2);
  if (seq < 1) fail('seq 0');
  o += 6;
  const topicLength = view.getUint16(o);
  o += 2;
  if (topicLength === 0 || topicLength > 256 || o + topicLength + 4 > bytes.length) fail('bad topic length');
  let topic = '';
  try {
    topic = utf8.decode(bytes.subarray(o, o + topicLength));
  } catch {
    fail('topic not UTF-8');
  }
  o += topicLength;
  const payloadLength = view.getUint32(o);
  o += 4;
  if (payloadLength > DIODE_MAX_PAYLOAD || o + payloadLength !== bytes.length) fail('payload length does not match the datagram');
  return { kind, gatewayId, seq, topic, payload: bytes.slice(o, o + payloadLength) };
}
