/**
 * Verification of one report, before anything is stored: the certificate to
 * the investor root, the topic's terminal against the certificate, each
 * entry's parse, terminal and signature, and the card data the fraud rules
 * need. Pure apart from the CPU: no store, no clock.
 */
import { ReasonedError, CodecError } from '../../errors.js';
import { bytesEqual, toHex } from '../../codecs/bytes.js';
import { parseCardRecord, RecordKind, type SignedRecord, type TerminalFields } from '../../codecs/cardRecord.js';
import { EntryType, GENESIS_HASH, parseLedgerEntry, type LedgerEntry } from '../../codecs/ledgerEntry.js';
import type { ReportFrame } from '../../codecs/mqtt/report.js';
import { verifyBatchChain, verifyTerminalCertificate } from '../../crypto/chain.js';
import { verifyMessage } from '../../crypto/ed25519.js';
import { openVoucherUse } from '../../crypto/voucher.js';
import { entryHash } from '../../crypto/ledgerChain.js';
import type { BatchRow, EntryRow } from '../ServerStore.js';
import { inlineVerifier, type SignatureJob, type SignatureVerifier } from './signatureVerifier.js';

export type EntryRejectionReason = 'malformed-entry' | 'entry-terminal-mismatch' | 'bad-signature' | 'chain-broken' | 'bad-card' | 'ledger-fork';

export interface RejectedEntry {
  /** 0 when the entry did not parse far enough to have one */
  readonly seq: number;
  readonly reason: EntryRejectionReason;
  readonly detail: string;
}

export interface VerifiedEntry {
  readonly row: EntryRow;
  /** For batch.loaded entries: the batch the terminal took */
  readonly batch?: BatchRow;
}

export interface VerifiedReport {
  readonly certificate: SignedRecord<TerminalFields>;
  /** Valid entries, deduplicated, in seq order */
  readonly entries: VerifiedEntry[];
  readonly rejected: RejectedEntry[];
}

/** A report the server refuses as a whole (its certificate, or a terminal publishing as another) */
export class ReportRejection extends ReasonedError<'bad-certificate' | 'terminal-mismatch'> {
  override readonly name: string = 'ReportRejection';
  constructor(reason: 'bad-certificate' | 'terminal-mismatch', detail: string) {
    super('SYNC_REJECTED', reason, detail);
  }
}

/**
 * How entry signatures are checked.
 * - every-entry: each entry's own signature (about 0.2-0.4 ms of CPU each).
 * - chain-anchored: within a run of entries that link by hash (entry n+1
 *   carries SHA-256 of entry n, signature included), only the last entry's
 *   signature is checked: it signs the hash of the one before, which commits
 *   to that one's body and signature, and so on down the run. Forging any
 *   entry of the run then needs a SHA-256 collision. Used for throughput; when
 *   the anchor fails, every entry of the run is checked to name the bad one.
 *   What it does not catch at once: a terminal whose database was altered
 *   before it signed the next entry (the device key then vouches for the
 *   altered one). Ingest.auditSignatures checks every entry's own signature in
 *   the background and raises bad-entry-signature for those.
 */
export type SignatureCheck = 'every-entry' | 'chain-anchored';

/**
 * chain-anchored: every-entry is bound by Ed25519 (0.13-0.4 ms a verify), about
 * 10,000 entries/s into SQLite on two cores, half the ingest goal; the
 * anchored check with the background audit refuses every forgery made without
 * the device key at once and names a tampered-then-signed entry within seconds.
 */
export const DEFAULT_SIGNATURE_CHECK: SignatureCheck = 'chain-anchored';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Candidate {
  readonly entry: LedgerEntry;
  readonly hash: Uint8Array;
  readonly batch?: BatchRow;
  readonly batchId?: string;
  readonly serial?: number;
}

/**
 * Certificates that verified, by their bytes and the root: every report carries
 * its terminal's certificate, and checking its signature again each time was an
 * Ed25519 verify per report. Bounded; a certificate is immutable bytes.
 */
const verifiedCertificates = new Map<string, SignedRecord<TerminalFields>>();
const MAX_VERIFIED_CERTIFICATES = 10_000;

function verifiedCertificate(raw: Uint8Array, rootPublicKey: Uint8Array): SignedRecord<TerminalFields> {
  const key = `${toHex(rootPublicKey)}:${toHex(raw)}`;
  const known = verifiedCertificates.get(key);
  if (known) return known;
  let certificate: SignedRecord<TerminalFields>;
  try {
    certificate = verifyTerminalCertificate(parseCardRecord(raw), rootPublicKey);
  } catch (err) {
    throw new ReportRejection('bad-certificate', (err as Error).message);
  }
  if (verifiedCertificates.size >= MAX_VERIFIED_CERTIFICATES) verifiedCertificates.clear();
  verifiedCertificates.set(key, certificate);
  return certificate;
}

export async function verifyReport(
  frame: ReportFrame,
  topicTerminalId: string,
  rootPublicKey: Uint8Array,
  signatureCheck: SignatureCheck = DEFAULT_SIGNATURE_CHECK,
  verifier: SignatureVerifier = inlineVerifier,
): Promise<VerifiedReport> {
  const certificate = verifiedCertificate(frame.certificate, rootPublicKey);
  if (certificate.terminalId !== topicTerminalId) {
    throw new ReportRejection('terminal-mismatch', `certificate of ${certificate.terminalId} published on the topic of ${topicTerminalId}`);
  }
  const rejected: RejectedEntry[] = [];
  const bySeq = new Map<number, Candidate>();
  for (const raw of frame.entries) {
    let entry: LedgerEntry;
    try {
      entry = parseLedgerEntry(raw);
    } catch (err) {
      rejected.push({ seq: 0, reason: 'malformed-entry', detail: (err as Error).message });
      continue;
    }
    const reject = (reason: EntryRejectionReason, detail: string): void => {
      rejected.push({ seq: entry.seq, reason, detail });
    };
    if (entry.terminalId !== certificate.terminalId) {
      reject('entry-terminal-mismatch', `entry names ${entry.terminalId}`);
      continue;
    }
    if (entry.seq === 1 && (entry.type !== EntryType.PROVISIONED || !bytesEqual(entry.prevHash, GENESIS_HASH) || !entry.card || !bytesEqual(entry.card, frame.certificate))) {
      reject('chain-broken', 'seq 1 is not the provisioning entry of this certificate');
      continue;
    }
    const hash = entryHash(raw);
    const existing = bySeq.get(entry.seq);
    if (existing) {
      // the same entry twice in one report is a harmless duplicate; of two different ones, a badly signed one is
      // refused as such, and two well signed ones are a fork
      if (bytesEqual(existing.hash, hash)) continue;
      const newSigned = verifyMessage(certificate.publicKey, entry.body, entry.signature);
      const oldSigned = verifyMessage(certificate.publicKey, existing.entry.body, existing.entry.signature);
      if (!newSigned) reject('bad-signature', 'not signed by the terminal device key');
      else if (oldSigned) reject('ledger-fork', `two different entries with seq ${entry.seq} in one report`);
      else {
        reject('bad-signature', 'not signed by the terminal device key');
        bySeq.delete(entry.seq);
      }
      if (bySeq.has(entry.seq)) continue;
    }
    let batch: BatchRow | undefined;
    let batchId: string | undefined;
    let serial: number | undefined;
    try {
      if (entry.type === EntryType.BATCH_LOADED && entry.card) {
        const verified = verifyBatchChain(parseCardRecord(entry.card), rootPublicKey).batch;
        batchId = toHex(verified.cardId);
        batch = { batchId, batchNo: verified.batchNo, clinicCode: verified.clinicCode, count: verified.count };
      } else if (entry.type === EntryType.USE_RESERVED && entry.card) {
        const card = parseCardRecord(entry.card, { views: true });
        if (card.kind !== RecordKind.ONE_TIME) throw new CodecError('WRONG_TIER', 'use of a card that is not a one-time card');
        batchId = toHex(card.batchId);
        serial = card.serial;
      } else if (entry.type === EntryType.VOUCHER_RESERVED && entry.card) {
        // the voucher's serial, from a voucher that verifies with the root alone (voucher-format.md §8)
        serial = openVoucherUse(entry.card, rootPublicKey).voucher.serial;
      }
    } catch (err) {
      reject('bad-card', (err as Error).message);
      continue;
    }
    const candidate: Mutable<Candidate> = { entry, hash };
    if (batch) candidate.batch = batch;
    if (batchId !== undefined) candidate.batchId = batchId;
    if (serial !== undefined) candidate.serial = serial;
    bySeq.set(entry.seq, candidate);
  }

  const sorted = [...bySeq.values()].sort((a, b) => a.entry.seq - b.entry.seq);
  const job = (c: Candidate): SignatureJob => ({ publicKey: certificate.publicKey, message: c.entry.body, signature: c.entry.signature });
  const valid: Candidate[] = [];
  const checkEach = async (candidates: readonly Candidate[]): Promise<void> => {
    const ok = await verifier.verify(candidates.map(job));
    candidates.forEach((c, i) => {
      if (ok[i]) valid.push(c);
      else rejected.push({ seq: c.entry.seq, reason: 'bad-signature', detail: 'not signed by the terminal device key' });
    });
  };
  if (signatureCheck === 'every-entry') await checkEach(sorted);
  else {
    const runs: Candidate[][] = [];
    for (const c of sorted) {
      const run = runs[runs.length - 1];
      const previous = run?.[run.length - 1];
      if (run && previous && c.entry.seq === previous.entry.seq + 1 && bytesEqual(c.entry.prevHash, previous.hash)) run.push(c);
      else runs.push([c]);
    }
    const anchorsOk = await verifier.verify(runs.map((run) => job(run[run.length - 1]!)));
    const failed: Candidate[] = [];
    runs.forEach((run, i) => {
      if (anchorsOk[i]) valid.push(...run);
      else failed.push(...run);
    });
    // a failed anchor: check each entry of its run to name the bad one
    if (failed.length > 0) await checkEach(failed);
  }
  valid.sort((a, b) => a.entry.seq - b.entry.seq);
  // plain assignments, not conditional spreads: this runs for every entry the server ingests
  const entries: VerifiedEntry[] = valid.map(({ entry, hash, batch, batchId, serial }) => {
    const row: Mutable<EntryRow> = {
      terminalId: entry.terminalId,
      seq: entry.seq,
      type: entry.type,
      time: entry.time,
      clockTrusted: entry.clockTrusted,
      clinicCode: certificate.clinicCode,
      hash,
      prevHash: entry.prevHash,
      raw: entry.raw,
    };
    if (batchId !== undefined) row.batchId = batchId;
    if (serial !== undefined) row.serial = serial;
    if (entry.ref !== undefined) row.ref = entry.ref;
    return batch ? { row, batch } : { row };
  });
  return { certificate, entries, rejected };
}
