/**
 * Rollback witnesses (ledger-format.md): a database restored from an old copy
 * is a valid, shorter chain, so witnesses outside it catch it. The relay
 * board's chain head (serial-protocol.md §6.5), a card's consumed marker and
 * the server's signed checkpoint (kept in <dataDir>/checkpoint.json) each
 * name a seq and hash the ledger must hold. A finding is logged and recorded
 * in the ledger once; the board and checkpoints latch it, and every deduction
 * and batch load is refused from then on (LEDGER_ROLLBACK).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER_LENGTH, type CardFci } from '../codecs/applet.js';
import { bytesEqual, concatBytes, readU64be, toHex, u64be, utf8 } from '../codecs/bytes.js';
import type { SignedRecord } from '../codecs/cardRecord.js';
import { encodeCheckpointFile, parseCheckpoint, type Checkpoint } from '../codecs/checkpoint.js';
import { parseLedgerEntry, type EntryTypeValue } from '../codecs/ledgerEntry.js';
import { sha256 } from '../crypto/ed25519.js';
import { codeOf, TallyError } from '../errors.js';
import type { Ledger, TerminalIdentity } from '../ledger/Ledger.js';
import type { BoardWitness } from '../readers/CardReader.js';
import type { Logger } from '../util/logger.js';

/** A witness outside the database that proved the ledger lost entries (ledger-format.md, rollback witnesses) */
export interface RollbackEvidence {
  readonly witness: 'board' | 'card' | 'checkpoint';
  /** The seq the witness says the ledger reached */
  readonly witnessSeq: number;
  /** The ledger's last seq when it was found */
  readonly ledgerSeq: number;
  readonly detail: string;
}

/** Where a terminal keeps the latest server checkpoint */
export const CHECKPOINT_FILE = 'checkpoint.json';

/** The checkpoint kept in a data folder (parsed, not verified), or undefined */
export function readCheckpointFile(dataDir: string): Checkpoint | undefined {
  const path = join(dataDir, CHECKPOINT_FILE);
  if (!existsSync(path)) return undefined;
  try {
    return parseCheckpoint(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Keeps the checkpoint as the latest (written whole, then renamed); a failure is logged, not fatal */
export function saveCheckpointFile(dataDir: string, checkpoint: Checkpoint, log: Logger): void {
const path = join(dataDir, CHECKPOINT_FILE);
  try {
    writeFileSync(`${path}.tmp`, encodeCheckpointFile(checkpoint), { mode: 0o644 });
    renameSync(`${path}.tmp`, path);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'checkpoint not saved');
  }
}

/** The refusal a rollback gives every deduction and batch load */
export function rollbackError(evidence: RollbackEvidence): TallyError {
  return new TallyError('LEDGER_ROLLBACK', `${evidence.witness}: ${evidence.detail}`, { ...evidence });
}

/** The consumed marker this terminal writes on a card for the entry at seq: its terminal tag, then the seq */
export function consumedMarker(seq: number, identity: TerminalIdentity): Uint8Array {
  const marker = concatBytes([sha256(utf8(identity.terminalId)).subarray(0, 8), u64be(seq)]);
  return marker.length === MARKER_LENGTH ? marker : marker.subarray(0, MARKER_LENGTH);
}

export class RollbackWitnesses {
  /** Latched by the board or a checkpoint: every deduction and batch load is refused from then on */
  evidence: RollbackEvidence | undefined;
  /** Witness findings already written to the ledger by this process (one entry each) */
  private readonly witnessRecorded = new Set<string>();

  constructor(
    private readonly ledger: Ledger,
    private readonly log: Logger,
  ) {}

  /**
   * Compares the ledger with the head the relay board keeps (serial-protocol.md §6.5).
   * Returns the refusal when the ledger lacks the board's head (a rollback: latched, recorded,
   * reported), when a rollback was found before, or when a required board witness is missing.
   */
  checkBoard(witness: BoardWitness | undefined, requireBoardWitness: boolean): TallyError | undefined {
    if (this.evidence) return rollbackError(this.evidence);
    if (!witness || witness.kind === 'unknown' || !this.ledger.identity()) return undefined;
    if (witness.kind === 'none') {
      if (requireBoardWitness) {
        this.log.error({ event: 'board-witness-missing', protocolVersion: witness.protocolVersion }, 'relay board keeps no chain head: service refused');
        return new TallyError('BOARD_WITNESS_MISSING', `board speaks protocol ${witness.protocolVersion}`);
      }
      if (!this.witnessRecorded.has('board-none')) {
        this.witnessRecorded.add('board-none');
        this.log.warn({ event: 'board-witness-missing', protocolVersion: witness.protocolVersion }, 'relay board keeps no chain head (protocol 1): a restored ledger is caught only by the server and the cards');
      }
      return undefined;
    }
    if (witness.seq === 0) return undefined;
    const hash = this.ledger.entryHashAt(witness.seq);
    const prefix = toHex(witness.hashPrefix);
    if (hash && bytesEqual(hash.subarray(0, witness.hashPrefix.length), witness.hashPrefix)) return undefined;
    const ledgerSeq = this.ledger.lastSeq();
    const detail = hash
      ? `relay board holds seq ${witness.seq} (${prefix}); the ledger's entry ${witness.seq} is another`
      : `relay board holds seq ${witness.seq} (${prefix}); the ledger ends at seq ${ledgerSeq}`;
    return this.found({ witness: 'board', witnessSeq: witness.seq, ledgerSeq, detail }, true);
  }

  /**
   * A card's consumed marker names a terminal and the seq that consumed it. One naming this
   * terminal must point at this card's own entry; a seq past the head or another entry there
   * proves the ledger lost it. The card is refused as a rollback and the finding recorded and
   * reported; markers are not signed, so a card alone does not put the terminal out of service.
   */
  checkCardMarker(fci: CardFci, record: SignedRecord, identity: TerminalIdentity, expected: EntryTypeValue): void {
    const marker = fci.marker;
    if (!marker || marker.length !== MARKER_LENGTH) return;
    if (!bytesEqual(marker.subarray(0, 8), consumedMarker(0, identity).subarray(0, 8))) return;
    const seq = readU64be(marker, 8);
    const raw = this.ledger.entryAt(seq);
    if (raw) {
      const entry = parseLedgerEntry(raw);
      if (entry.type === expected && entry.card && bytesEqual(entry.card, record.raw)) return;
    }
    const ledgerSeq = this.ledger.lastSeq();
    const detail = raw
      ? `card ${toHex(record.cardId)} marked consumed here at seq ${seq}, which the ledger holds for another entry`
      : `card ${toHex(record.cardId)} marked consumed here at seq ${seq}, past the ledger's head ${ledgerSeq}`;
    throw this.found({ witness: 'card', witnessSeq: seq, ledgerSeq, detail }, false, record.raw);
  }

  /** Logs, records (once per finding) and, for the board and checkpoints, latches a rollback; returns the refusal */
  found(evidence: RollbackEvidence, latch: boolean, card?: Uint8Array): TallyError {
    this.log.error({ event: 'ledger-rollback', ...evidence }, 'rollback detected: a witness holds a later ledger than this database');
    if (latch) this.evidence ??= evidence;
    const key = `${evidence.witness}:${evidence.witnessSeq}:${card ? toHex(sha256(card)) : ''}`;
    if (!this.witnessRecorded.has(key)) {
      try {
        const seq = this.ledger.recordRollbackWitness(evidence.witnessSeq, `${evidence.witness}: ${evidence.detail}`, card);
        this.witnessRecorded.add(key);
        this.log.warn({ seq, witness: evidence.witness }, 'rollback recorded in the ledger: it goes to the server with the next report');
      } catch (err) {
        this.log.error({ code: codeOf(err) }, 'rollback could not be recorded');
      }
    }
    return rollbackError(evidence);
  }
}
