/**
 * Verification of one report, before anything is stored: the certificate to
 * the investor root, the topic's terminal against the certificate, each
 * entry's parse, terminal and signature, and the card data the fraud rules
 * need. Pure apart from the CPU: no store, no clock.
 */
import { bytesEqual, toHex } from '../../codecs/bytes.js';
import { parseCardRecord, RecordKind, type SignedRecord, type TerminalFields } from '../../codecs/cardRecord.js';
import { EntryType, GENESIS_HASH, parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import type { ReportFrame } from '../../codecs/mqtt/report.js';
import { verifyBatchChain, verifyTerminalCertificate } from '../../crypto/chain.js';
import { verifyMessage } from '../../crypto/ed25519.js';
import { entryHash } from '../../crypto/ledgerChain.js';
import type { BatchRow, EntryRow } from '../ServerStore.js';

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

export class ReportRejection extends Error {
  override readonly name = 'ReportRejection';
  constructor(
    readonly reason: 'bad-certificate' | 'terminal-mismatch',
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export function verifyReport(frame: ReportFrame, topicTerminalId: string, rootPublicKey: Uint8Array): VerifiedReport {
  let certificate: SignedRecord<TerminalFields>;
  try {
    const record = parseCardRecord(frame.certificate);
    certificate = verifyTerminalCertificate(record, rootPublicKey);
  } catch (err) {
    throw new ReportRejection('bad-certificate', (err as Error).message);
  }
  if (certificate.terminalId !== topicTerminalId) {
    throw new ReportRejection('terminal-mismatch', `certificate of ${certificate.terminalId} published on the topic of ${topicTerminalId}`);
  }
  const rejected: RejectedEntry[] = [];
  const bySeq = new Map<number, VerifiedEntry>();
  for (const raw of frame.entries) {
    let entry;
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
    if (!verifyMessage(certificate.publicKey, entry.body, entry.signature)) {
      reject('bad-signature', 'not signed by the terminal device key');
      continue;
    }
    if (entry.seq === 1 && (entry.type !== EntryType.PROVISIONED || !bytesEqual(entry.prevHash, GENESIS_HASH) || !entry.card || !bytesEqual(entry.card, frame.certificate))) {
      reject('chain-broken', 'seq 1 is not the provisioning entry of this certificate');
      continue;
    }
    const hash = entryHash(raw);
    const existing = bySeq.get(entry.seq);
    if (existing) {
      // the same entry twice in one report is a harmless duplicate; two different ones are a fork
      if (!bytesEqual(existing.row.hash, hash)) reject('ledger-fork', `two different entries with seq ${entry.seq} in one report`);
      continue;
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
        const card = parseCardRecord(entry.card);
        if (card.kind !== RecordKind.ONE_TIME) throw new Error('use of a card that is not a one-time card');
        batchId = toHex(card.batchId);
        serial = card.serial;
      }
    } catch (err) {
      reject('bad-card', (err as Error).message);
      continue;
    }
    bySeq.set(entry.seq, {
      row: {
        terminalId: entry.terminalId,
        seq: entry.seq,
        type: entry.type,
        time: entry.time,
        clockTrusted: entry.clockTrusted,
        clinicCode: certificate.clinicCode,
        ...(batchId !== undefined ? { batchId } : {}),
        ...(serial !== undefined ? { serial } : {}),
        ...(entry.ref !== undefined ? { ref: entry.ref } : {}),
        hash,
        prevHash: entry.prevHash,
        raw,
      },
      ...(batch ? { batch } : {}),
    });
  }
  const entries = [...bySeq.values()].sort((a, b) => a.row.seq - b.row.seq);
  return { certificate, entries, rejected };
}
