/**
 * The relay board's chain-head witness (protocol 2, serial-protocol.md §6.5):
 * the board keeps the ledger's head (seq and the first 8 bytes of the entry's
 * SHA-256) in its non-volatile memory, the command that closes the relay
 * carries the new head, and the board refuses a head that is not above the
 * one it holds. A ledger restored from an old copy can then not run the
 * device. Payloads, the acceptance rule and the NVM record, all pure.
 */
import { bytesEqual } from '../bytes.js';
import { crc16 } from './crc16.js';
import { FirmwarePayloadError, PayloadReader, PayloadWriter } from './payload.js';

/** Bytes of the entry hash the board keeps: 2^-64 that another entry matches by chance */
export const HEAD_HASH_LENGTH = 8;

export interface ChainHead {
  /** The ledger seq of the head entry; 0 with a zero hash: the board holds no head yet */
  readonly seq: number;
  /** The first HEAD_HASH_LENGTH bytes of the head entry's SHA-256 */
  readonly hash: Uint8Array;
}

export const NO_HEAD: ChainHead = { seq: 0, hash: new Uint8Array(HEAD_HASH_LENGTH) };

/** The board's answer to RELAY_ENABLE_HEAD */
export const HeadStatus = {
  /** The head was above the held one: stored in NVM, then the relay closed */
  CLOSED: 0,
  /** The head was not above the held one: nothing stored, the relay stays open */
  STALE_HEAD: 1,
} as const;
export type HeadStatusCode = (typeof HeadStatus)[keyof typeof HeadStatus];

export interface RelayEnableHeadBody {
  readonly useSeq: number;
  readonly maxMs: number;
  /** The ledger's head after the use was reserved (normally useSeq itself) */
  readonly head: ChainHead;
}

export interface RelayEnableHeadResult {
  readonly status: HeadStatusCode;
  /** The head the board holds after the command: the new one when closed, its own when refused */
  readonly held: ChainHead;
}

/** The rule the board enforces: only a head above the held one closes the relay */
export function headAccepted(held: ChainHead, proposed: ChainHead): boolean {
  return proposed.seq > held.seq;
}

export function headsEqual(a: ChainHead, b: ChainHead): boolean {
  return a.seq === b.seq && bytesEqual(a.hash, b.hash);
}

function writeHead(w: PayloadWriter, head: ChainHead, field: string): PayloadWriter {
  if (head.hash.length !== HEAD_HASH_LENGTH) throw new FirmwarePayloadError(`${field}: hash must be ${HEAD_HASH_LENGTH} bytes`, `${field}.hash`);
  return w.u32(head.seq, `${field}.seq`).bytes(head.hash);
}

function readHead(r: PayloadReader, field: string): ChainHead {
  return { seq: r.u32(`${field}.seq`), hash: r.take(HEAD_HASH_LENGTH, `${field}.hash`) };
}

/** GET_HEAD response: seq u32, hash 8 bytes */
export function encodeHead(head: ChainHead): Uint8Array {
  return writeHead(new PayloadWriter('head'), head, 'head').done();
}

export function parseHead(payload: Uint8Array): ChainHead {
  const r = new PayloadReader(payload, 'head');
  const head = readHead(r, 'head');
  r.end();
  return head;
}

/** RELAY_ENABLE_HEAD request: useSeq u32, maxMs u32, head seq u32, head hash 8 bytes */
export function encodeRelayEnableHead(body: RelayEnableHeadBody): Uint8Array {
  const w = new PayloadWriter('relay enable head').u32(body.useSeq, 'useSeq').u32(body.maxMs, 'maxMs');
  return writeHead(w, body.head, 'head').done();
}

export function parseRelayEnableHead(payload: Uint8Array): RelayEnableHeadBody {
  const r = new PayloadReader(payload, 'relay enable head');
  const body = { useSeq: r.u32('useSeq'), maxMs: r.u32('maxMs'), head: readHead(r, 'head') };
  r.end();
  return body;
}

/** RELAY_ENABLE_HEAD response: status u8, held seq u32, held hash 8 bytes */
export function encodeRelayEnableHeadResult(body: RelayEnableHeadResult): Uint8Array {
  const w = new PayloadWriter('relay enable head response').u8(body.status, 'status');
  return writeHead(w, body.held, 'held').done();
}

export function parseRelayEnableHeadResult(payload: Uint8Array): RelayEnableHeadResult {
  const r = new PayloadReader(payload, 'relay enable head response');
  const status = r.u8('status');
  const held = readHead(r, 'held');
  r.end();
  if (status > HeadStatus.STALE_HEAD) throw new FirmwarePayloadError(`relay enable head response: unknown status ${status}`, 'status');
  return { status: status as HeadStatusCode, held };
}

// ---- the NVM record (§6.5): two slots, written alternately, so a power cut mid-write keeps the old head

export const HEAD_RECORD_LENGTH = 20;
const HEAD_RECORD_MAGIC = [0x54, 0x48] as const; // "TH"

export interface HeadRecord {
  /** +1 at every write; the valid slot with the higher generation holds the head */
  readonly generation: number;
  readonly head: ChainHead;
}

/** "TH", generation u32, seq u32, hash 8 bytes, CRC-16/CCITT-FALSE of the 18 bytes before it */
export function encodeHeadRecord(record: HeadRecord): Uint8Array {
  const w = new PayloadWriter('head record').u8(HEAD_RECORD_MAGIC[0], 'magic').u8(HEAD_RECORD_MAGIC[1], 'magic').u32(record.generation, 'generation');
  const body = writeHead(w, record.head, 'head').done();
  const crc = crc16(body);
  const out = new Uint8Array(HEAD_RECORD_LENGTH);
  out.set(body);
  out[18] = crc >>> 8;
  out[19] = crc & 0xff;
  return out;
}

/** The record in one slot, or undefined when the slot is blank, torn or corrupt */
export function parseHeadRecord(slot: Uint8Array): HeadRecord | undefined {
  if (slot.length !== HEAD_RECORD_LENGTH || slot[0] !== HEAD_RECORD_MAGIC[0] || slot[1] !== HEAD_RECORD_MAGIC[1]) return undefined;
  if (crc16(slot, 0, 18) !== ((slot[18]! << 8) | slot[19]!)) return undefined;
  const r = new PayloadReader(slot.subarray(2, 18), 'head record');
  return { generation: r.u32('generation'), head: readHead(r, 'head') };
}

/** The head an NVM image of two slots holds: the valid slot with the higher generation; none valid: NO_HEAD */
export function readHeadImage(image: Uint8Array): HeadRecord {
  const a = parseHeadRecord(image.subarray(0, HEAD_RECORD_LENGTH));
  const b = parseHeadRecord(image.subarray(HEAD_RECORD_LENGTH, 2 * HEAD_RECORD_LENGTH));
  if (a && b) return b.generation > a.generation ? b : a;
  return a ?? b ?? { generation: 0, head: NO_HEAD };
}

/**
 * The image after storing a new head: the slot that does not hold the
 * current record is overwritten with generation + 1 (an image never written
 * starts in slot 0). Returns the new image and which slot changed.
 */
export function writeHeadImage(image: Uint8Array, head: ChainHead): { image: Uint8Array; slot: 0 | 1 } {
  const current = readHeadImage(image);
  const a = parseHeadRecord(image.subarray(0, HEAD_RECORD_LENGTH));
  const b = parseHeadRecord(image.subarray(HEAD_RECORD_LENGTH, 2 * HEAD_RECORD_LENGTH));
  const currentSlot = a && (!b || a.generation >= b.generation) ? 0 : b ? 1 : undefined;
  const slot: 0 | 1 = currentSlot === 0 ? 1 : 0;
  const out = new Uint8Array(2 * HEAD_RECORD_LENGTH);
  out.set(image.subarray(0, 2 * HEAD_RECORD_LENGTH));
  out.set(encodeHeadRecord({ generation: (current.generation + 1) >>> 0, head }), slot * HEAD_RECORD_LENGTH);
  return { image: out, slot };
}

export const HEAD_IMAGE_LENGTH = 2 * HEAD_RECORD_LENGTH;
