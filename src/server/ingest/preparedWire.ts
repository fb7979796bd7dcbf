/**
 * A verified report as the ingest worker threads hand it to the main thread:
 * the entries' numbers in one Float64Array and all their bytes (raw, prevHash,
 * hash) in one buffer, both moved, not copied; the main thread makes views.
 * Structured clone of the entry objects cost about 3 us an entry on each side,
 * as much as preparing them.
 */
import { TallyError } from '../../errors.js';
import type { BatchRow, EntryRow } from '../ServerStore.js';
import type { VerifiedEntry, VerifiedReport } from './verifyReport.js';

export interface VerifiedReportWire {
  readonly certificate: VerifiedReport['certificate'];
  readonly rejected: VerifiedReport['rejected'];
  /** Every entry's raw, prevHash and hash, one after another */
  readonly bytes: ArrayBuffer;
  /** FIELDS numbers an entry: see encode */
  readonly numbers: Float64Array;
  readonly batchIds: readonly string[];
  /** batch.loaded entries: the batch, by entry index */
  readonly batches: ReadonlyArray<readonly [number, BatchRow]>;
}

const FIELDS = 9;
const HASH = 32;
const NONE = -1;

/** The buffers to move with the wire (postMessage's transfer list) */
export function wireTransfers(wire: VerifiedReportWire): ArrayBuffer[] {
  return [wire.bytes, wire.numbers.buffer as ArrayBuffer];
}

export function encodeVerifiedReport(report: VerifiedReport): VerifiedReportWire {
  const { entries } = report;
  const numbers = new Float64Array(entries.length * FIELDS);
  let size = 0;
  for (const { row } of entries) size += row.raw.length + 2 * HASH;
  const bytes = new Uint8Array(size);
  let offset = 0;
  const batchIds: string[] = [];
  const batchIndex = new Map<string, number>();
  const batches: Array<readonly [number, BatchRow]> = [];
  entries.forEach(({ row, batch }, i) => {
    if (row.prevHash.length !== HASH || row.hash.length !== HASH) throw new TallyError('INTERNAL', 'encodeVerifiedReport: hashes are 32 bytes');
    let batchNumber = NONE;
    if (row.batchId !== undefined) {
      batchNumber = batchIndex.get(row.batchId) ?? batchIds.push(row.batchId) - 1;
      batchIndex.set(row.batchId, batchNumber);
    }
    const at = i * FIELDS;
    numbers[at] = row.seq;
    numbers[at + 1] = row.type;
    numbers[at + 2] = row.time;
    numbers[at + 3] = row.clockTrusted ? 1 : 0;
    numbers[at + 4] = row.ref ?? NONE;
    numbers[at + 5] = row.serial ?? NONE;
    numbers[at + 6] = offset;
    numbers[at + 7] = row.raw.length;
    numbers[at + 8] = batchNumber;
    bytes.set(row.raw, offset);
    bytes.set(row.prevHash, offset + row.raw.length);
    bytes.set(row.hash, offset + row.raw.length + HASH);
    offset += row.raw.length + 2 * HASH;
    if (batch) batches.push([i, batch]);
  });
  return { certificate: report.certificate, rejected: report.rejected, bytes: bytes.buffer, numbers, batchIds, batches };
}

export function decodeVerifiedReport(wire: VerifiedReportWire): VerifiedReport {
  const { numbers, certificate } = wire;
  const count = numbers.length / FIELDS;
  const batches = new Map(wire.batches);
  const entries: VerifiedEntry[] = new Array<VerifiedEntry>(count);
  for (let i = 0; i < count; i++) {
    const at = i * FIELDS;
    const offset = numbers[at + 6]!;
    const length = numbers[at + 7]!;
    const row: { -readonly [K in keyof EntryRow]: EntryRow[K] } = {
      terminalId: certificate.terminalId,
      seq: numbers[at]!,
      type: numbers[at + 1]!,
      time: numbers[at + 2]!,
      clockTrusted: numbers[at + 3] === 1,
      clinicCode: certificate.clinicCode,
      hash: new Uint8Array(wire.bytes, offset + length + HASH, HASH),
      prevHash: new Uint8Array(wire.bytes, offset + length, HASH),
      raw: new Uint8Array(wire.bytes, offset, length),
    };
    if (numbers[at + 4] !== NONE) row.ref = numbers[at + 4]!;
    if (numbers[at + 5] !== NONE) row.serial = numbers[at + 5]!;
    if (numbers[at + 8] !== NONE) row.batchId = wire.batchIds[numbers[at + 8]!]!;
    const batch = batches.get(i);
    entries[i] = batch ? { row, batch } : { row };
  }
  return { certificate, entries, rejected: wire.rejected };
}
