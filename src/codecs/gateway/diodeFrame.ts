/**
 * One datagram over the one-way diode (firmware-protocol/gateway-diode.md):
 *   "TD" | version 1 | kind (1 crossing, 2 department delivery)
 *   | gateway id length u8 | gateway id (ASCII)
 *   | seq u48 big-endian (the gateway's archive seq, or the delivery id)
 *   | topic length u16 | topic (UTF-8) | payload length u32 | payload
 * Nothing comes back, so the receiver dedupes on (gateway id, kind, seq).
 * Pure.
 */
import { CodecError } from '../../errors.js';

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

export class DiodeFrameError extends CodecError {
  override readonly name: string = 'DiodeFrameError';
  constructor(detail: string) {
    super('BAD_DIODE_FRAME', detail);
  }
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
  let o = writeHeader(out, view, DIODE_VERSION, f.kind, id, f.seq);
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

const fail = (why: string): never => {
  throw new DiodeFrameError(why);
};

/**
 * Both versions' datagrams start alike: magic, version, kind, gateway id, seq.
 * `shortest` is the least datagram of the version; `afterId` the least it has after the id (seq included).
 */
function readHeader(bytes: Uint8Array, version: number, shortest: number, afterId: number): { kind: DiodeKind; gatewayId: string; seq: number; view: DataView; offset: number } {
  if (bytes.length < shortest) fail('datagram too short');
  if (bytes[0] !== DIODE_MAGIC[0] || bytes[1] !== DIODE_MAGIC[1]) fail('bad magic');
  if (bytes[2] !== version) fail(`unknown version ${bytes[2]}`);
  const kind: DiodeKind = bytes[3] === 1 ? 'crossing' : bytes[3] === 2 ? 'delivery' : fail(`unknown kind ${bytes[3]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 4;
  const idLength = bytes[o++]!;
  if (idLength === 0 || idLength > 32 || o + idLength + afterId > bytes.length) fail('bad gateway id length');
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
  return { kind, gatewayId, seq, view, offset: o + 6 };
}

/** Writes magic, version, kind, gateway id and seq; returns the offset after them */
function writeHeader(out: Uint8Array, view: DataView, version: number, kind: DiodeKind, id: Uint8Array, seq: number): number {
  let o = 0;
  out[o++] = DIODE_MAGIC[0];
  out[o++] = DIODE_MAGIC[1];
  out[o++] = version;
  out[o++] = KIND_BYTE[kind];
  out[o++] = id.length;
  out.set(id, o);
  o += id.length;
  view.setUint16(o, Math.floor(seq / 2 ** 32));
  view.setUint32(o + 2, seq >>> 0);
  return o + 6;
}

export function parseDiodeFrame(bytes: Uint8Array): DiodeFrame {
  const { kind, gatewayId, seq, view, offset } = readHeader(bytes, DIODE_VERSION, 4 + 1 + 6 + 2 + 4, 12);
  let o = offset;
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

/*
 * Version 2: a message in fragments (firmware-protocol/gateway-diode.md,
 * "Fragments"). The message body is topic length u16 | topic | payload; it is
 * cut into fragments of at most fragmentBytes, each a datagram:
 *   "TD" | version 2 | kind | gateway id length u8 | gateway id
 *   | seq u48 | index u16 | count u16 | message length u32 | digest 8 bytes
 *   | fragment bytes
 * The digest (the first 8 bytes of SHA-256 over the body) is the same in every
 * fragment: it tells fragments of one message from those of another with the
 * same seq, and the reassembled body is checked against it.
 */
export const DIODE_FRAGMENTED_VERSION = 2;
/** Fragments small enough to cross an Ethernet MTU of 1,500 without IP fragmentation */
export const DIODE_DEFAULT_FRAGMENT_BYTES = 1_200;
/** The largest message in fragments (body: topic and payload) */
export const DIODE_MAX_MESSAGE = 1_048_576;

export interface DiodeFragment {
  readonly kind: DiodeKind;
  readonly gatewayId: string;
  readonly seq: number;
  readonly index: number;
  readonly count: number;
  readonly messageLength: number;
  readonly digest: Uint8Array;
  readonly data: Uint8Array;
}

/** SHA-256, injected so the codec stays free of node:crypto (the gateway passes createHash's) */
export type Sha256 = (bytes: Uint8Array) => Uint8Array;

function checkHeader(kind: DiodeKind, gatewayId: string, seq: number): Uint8Array {
  const id = new TextEncoder().encode(gatewayId);
  if (id.length === 0 || id.length > 32 || !/^[A-Za-z0-9._-]+$/.test(gatewayId)) throw new DiodeFrameError('gateway id: 1-32 of A-Z a-z 0-9 . _ -');
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > 2 ** 48 - 1) throw new DiodeFrameError('seq: 1..2^48-1');
  if (!(kind in KIND_BYTE)) throw new DiodeFrameError(`unknown kind ${kind}`);
  return id;
}

/** The body a fragmented message carries: topic length u16 | topic | payload */
export function diodeMessageBody(topic: string, payload: Uint8Array): Uint8Array {
  const t = new TextEncoder().encode(topic);
  if (t.length === 0 || t.length > 256) throw new DiodeFrameError('topic: 1-256 bytes');
  const body = new Uint8Array(2 + t.length + payload.length);
  new DataView(body.buffer).setUint16(0, t.length);
  body.set(t, 2);
  body.set(payload, 2 + t.length);
  return body;
}

export function parseDiodeMessageBody(body: Uint8Array): { topic: string; payload: Uint8Array } {
  if (body.length < 2) throw new DiodeFrameError('message body too short');
  const topicLength = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint16(0);
  if (topicLength === 0 || topicLength > 256 || 2 + topicLength > body.length) throw new DiodeFrameError('bad topic length');
  let topic: string;
  try {
    topic = utf8.decode(body.subarray(2, 2 + topicLength));
  } catch {
    throw new DiodeFrameError('topic not UTF-8');
  }
  return { topic, payload: body.slice(2 + topicLength) };
}

/** A message as its fragments (datagrams), in index order */
export function encodeDiodeFragments(f: DiodeFrame, sha256: Sha256, fragmentBytes = DIODE_DEFAULT_FRAGMENT_BYTES): Uint8Array[] {
  const id = checkHeader(f.kind, f.gatewayId, f.seq);
  if (!Number.isInteger(fragmentBytes) || fragmentBytes < 1 || fragmentBytes > 65_000) throw new DiodeFrameError('fragment size: 1..65,000 bytes');
  const body = diodeMessageBody(f.topic, f.payload);
  if (body.length > DIODE_MAX_MESSAGE) throw new DiodeFrameError(`message over ${DIODE_MAX_MESSAGE} bytes`);
  const count = Math.max(1, Math.ceil(body.length / fragmentBytes));
  if (count > 0xffff) throw new DiodeFrameError('more than 65,535 fragments: take larger fragments');
  const digest = sha256(body).subarray(0, 8);
  const fragments: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const data = body.subarray(index * fragmentBytes, Math.min(body.length, (index + 1) * fragmentBytes));
    const out = new Uint8Array(5 + id.length + 6 + 2 + 2 + 4 + 8 + data.length);
    const view = new DataView(out.buffer);
    let o = writeHeader(out, view, DIODE_FRAGMENTED_VERSION, f.kind, id, f.seq);
    view.setUint16(o, index);
    view.setUint16(o + 2, count);
    view.setUint32(o + 4, body.length);
    o += 8;
    out.set(digest, o);
    o += 8;
    out.set(data, o);
    fragments.push(out);
  }
  return fragments;
}

/** One version 2 datagram; a version 1 datagram is read as a message of one fragment by the receiver (parseDiodeFrame) */
export function parseDiodeFragment(bytes: Uint8Array): DiodeFragment {
  const { kind, gatewayId, seq, view, offset } = readHeader(bytes, DIODE_FRAGMENTED_VERSION, 5 + 1 + 6 + 8 + 8, 22);
  let o = offset;
  const index = view.getUint16(o);
  const count = view.getUint16(o + 2);
  const messageLength = view.getUint32(o + 4);
  o += 8;
  if (count === 0 || index >= count) fail(`fragment index ${index} of ${count}`);
  if (messageLength < 3 || messageLength > DIODE_MAX_MESSAGE) fail(`message length ${messageLength}`);
  const digest = bytes.slice(o, o + 8);
  o += 8;
  const data = bytes.slice(o);
  if (data.length === 0 || data.length > messageLength) fail('fragment length');
  // all fragments but the last have the same length, so the last's offset follows from it
  return { kind, gatewayId, seq, index, count, messageLength, digest, data };
}
