/**
 * The report frame: the terminal certificate and several signed ledger entries
 * in one MQTT message. Binary, not JSON with base64: the entries are already
 * binary TLV, base64 would add a third to every byte on a slow GPRS link, and
 * the server would decode it again for every entry. Each report carries the
 * certificate so any ingest worker (shared subscription) can verify it alone.
 *
 *   'T' 'R' | version 1 | flags 0 | transaction u32 | certLen u16 | cert
 *   | count u16 | count x (entryLen u16 | entry)
 *
 * Big-endian. Strict: wrong magic, trailing bytes, empty entries or a count
 * past the limits are refused. Pure.
 */
import { MAX_CERTIFICATE_BYTES, MAX_ENTRIES_PER_REPORT, MAX_ENTRY_BYTES, MAX_REPORT_BYTES } from './limits.js';
import { PayloadError } from './PayloadError.js';

export const REPORT_MAGIC = [0x54, 0x52] as const;
export const REPORT_VERSION = 1;
const HEADER_BYTES = 2 + 1 + 1 + 4;

export interface ReportFrame {
  /** Chosen by the terminal; the server's ack carries it back */
  readonly transaction: number;
  /** The terminal certificate (a signed card record of kind TERMINAL) */
  readonly certificate: Uint8Array;
  /** Encoded ledger entries, in the order sent (normally ascending seq) */
  readonly entries: readonly Uint8Array[];
}

/** Bytes a frame with this certificate and these entry sizes takes */
export function reportSize(certificateLength: number, entryLengths: readonly number[]): number {
  let size = HEADER_BYTES + 2 + certificateLength + 2;
  for (const length of entryLengths) size += 2 + length;
  return size;
}

export function encodeReport(frame: ReportFrame): Uint8Array {
  const { transaction, certificate, entries } = frame;
  if (!Number.isInteger(transaction) || transaction < 0 || transaction > 0xffffffff) throw new PayloadError('schema', 'transaction must be a u32');
  if (certificate.length === 0 || certificate.length > MAX_CERTIFICATE_BYTES) throw new PayloadError('schema', `certificate length ${certificate.length} outside 1..${MAX_CERTIFICATE_BYTES}`);
  if (entries.length === 0 || entries.length > MAX_ENTRIES_PER_REPORT) throw new PayloadError('schema', `entry count ${entries.length} outside 1..${MAX_ENTRIES_PER_REPORT}`);
  const size = reportSize(
    certificate.length,
    entries.map((e) => e.length),
  );
  if (size > MAX_REPORT_BYTES) throw new PayloadError('oversized', `report of ${size} bytes exceeds ${MAX_REPORT_BYTES}`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = REPORT_MAGIC[0];
  out[1] = REPORT_MAGIC[1];
  out[2] = REPORT_VERSION;
  out[3] = 0;
  view.setUint32(4, transaction);
  let offset = HEADER_BYTES;
  view.setUint16(offset, certificate.length);
  out.set(certificate, offset + 2);
  offset += 2 + certificate.length;
  view.setUint16(offset, entries.length);
  offset += 2;
  for (const entry of entries) {
    if (entry.length === 0 || entry.length > MAX_ENTRY_BYTES) throw new PayloadError('schema', `entry length ${entry.length} outside 1..${MAX_ENTRY_BYTES}`);
    view.setUint16(offset, entry.length);
    out.set(entry, offset + 2);
    offset += 2 + entry.length;
  }
  return out;
}

export function parseReport(payload: Uint8Array): ReportFrame {
  if (payload.length > MAX_REPORT_BYTES) throw new PayloadError('oversized', `report of ${payload.length} bytes exceeds ${MAX_REPORT_BYTES}`);
  if (payload.length < HEADER_BYTES + 4) throw new PayloadError('malformed', `report of ${payload.length} bytes is too short`);
  if (payload[0] !== REPORT_MAGIC[0] || payload[1] !== REPORT_MAGIC[1]) throw new PayloadError('malformed', 'not a report frame (bad magic)');
  if (payload[2] !== REPORT_VERSION) throw new PayloadError('unsupported-version', `report version ${payload[2]}`);
  if (payload[3] !== 0) throw new PayloadError('malformed', `unknown flags 0x${payload[3]!.toString(16)}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const transaction = view.getUint32(4);
  let offset = HEADER_BYTES;
  const take = (what: string): Uint8Array => {
    if (offset + 2 > payload.length) throw new PayloadError('malformed', `truncated before the length of ${what}`);
    const length = view.getUint16(offset);
    const limit = what === 'certificate' ? MAX_CERTIFICATE_BYTES : MAX_ENTRY_BYTES;
    if (length === 0 || length > limit) throw new PayloadError('malformed', `${what} length ${length} outside 1..${limit}`);
    if (offset + 2 + length > payload.length) throw new PayloadError('malformed', `${what} truncated`);
    const value = payload.slice(offset + 2, offset + 2 + length);
    offset += 2 + length;
    return value;
  };
  const certificate = take('certificate');
  if (offset + 2 > payload.length) throw new PayloadError('malformed', 'truncated before the entry count');
  const count = view.getUint16(offset);
  offset += 2;
  if (count === 0 || count > MAX_ENTRIES_PER_REPORT) throw new PayloadError('malformed', `entry count ${count} outside 1..${MAX_ENTRIES_PER_REPORT}`);
  const entries: Uint8Array[] = [];
  for (let i = 0; i < count; i++) entries.push(take(`entry ${i}`));
  if (offset !== payload.length) throw new PayloadError('malformed', `${payload.length - offset} bytes after the last entry`);
  return { transaction, certificate, entries };
}
