/**
 * A terminal's state as `tally terminal status` and the daemon's status socket
 * show it: identity, batches, open uses, the outbox, the clock and refusals,
 * read from its ledger (the running daemon's, with its clock, or a stopped
 * terminal's, read-only).
 */
import { toHex } from '../codecs/bytes.js';
import { sha256 } from '../crypto/ed25519.js';
import type { BatchRow, ClockEvent, ClockState, Ledger } from '../ledger/Ledger.js';
import { systemClock } from '../util/clock.js';
import type { RollbackEvidence } from './RollbackWitnesses.js';
import { TerminalClock } from './TerminalClock.js';

export interface TerminalStatus {
  readonly provisioned: boolean;
  readonly terminalId?: string;
  readonly clinicCode?: string;
  readonly rootFingerprint?: string;
  readonly lastSeq: number;
  readonly batches: readonly { batchNo: number; batchId: string; count: number; used: number; remaining: number; validUntil: number }[];
  readonly openUses: number;
  readonly outboxDepth: number;
  readonly clockTrusted: boolean;
  readonly clock: TerminalClockStatus;
  readonly refusals: Record<string, number>;
  /** Device session events the ledger could not record yet (storage fault); deductions are refused until it has */
  readonly unrecordedDeviceEvents?: number;
  /** Set once a witness proved a rollback: the terminal refuses service (LEDGER_ROLLBACK) */
  readonly rollback?: RollbackEvidence;
}

/** The clock as `tally terminal status` shows it (times in ISO 8601) */
export interface TerminalClockStatus {
  /** local: the board's own clock; server: the server's time received since the daemon started */
  readonly source: 'local' | 'server';
  readonly now: string;
  /** The board's own (system) clock, which the terminal never sets */
  readonly localClock: string;
  /** The latest time the terminal has recorded or trusted; its time never goes back past it */
  readonly highWaterMark: string;
  /** trusted; before-floor (1970); behind the mark; ahead: jumped further ahead than the mark allows (not taken) */
  readonly state: ClockState;
  /** The latest local time that is not a jump (the mark plus 7 days plus the time measured since) */
  readonly trustedUntil: string;
  /** The latest clock.reset or clock.refused ledger entry */
  readonly lastEvent?: { readonly seq: number; readonly type: ClockEvent['type']; readonly time: string; readonly detail: string };
  /** Server time minus the local clock when the server's time last arrived */
  readonly offsetMs?: number;
  readonly serverTimeAt?: string;
}

export function rootFingerprint(rootPublicKey: Uint8Array): string {
  return toHex(sha256(rootPublicKey));
}

/** A terminal's state from its ledger (the daemon's status with its clock, or a stopped terminal's, read-only) */
export function terminalStatus(ledger: Ledger, clock: TerminalClock = new TerminalClock(systemClock)): TerminalStatus {
  const identity = ledger.identity();
  const time = clock.status();
  const iso = (ms: number): string => new Date(ms).toISOString();
  const lastEvent = ledger.lastClockEvent();
  return {
    provisioned: identity !== undefined,
    ...(identity ? { terminalId: identity.terminalId, clinicCode: identity.clinicCode, rootFingerprint: rootFingerprint(identity.rootPublicKey) } : {}),
    lastSeq: ledger.lastSeq(),
    batches: ledger.batches().map((b: BatchRow) => ({
      batchNo: b.batchNo,
      batchId: toHex(b.batchId),
      count: b.count,
      used: b.used,
      remaining: b.count - b.used,
      validUntil: b.validUntil,
    })),
    openUses: ledger.openUses().length,
    outboxDepth: ledger.pendingCount(),
    clockTrusted: ledger.clockTrusted(time.now),
    clock: {
      source: time.source,
      now: iso(time.now),
      localClock: iso(time.localNow),
      highWaterMark: iso(ledger.highWaterMark()),
      state: ledger.clockState(time.now),
      trustedUntil: iso(ledger.markLimit()),
      ...(lastEvent ? { lastEvent: { seq: lastEvent.seq, type: lastEvent.type, time: iso(lastEvent.time), detail: lastEvent.detail } } : {}),
      ...(time.offsetMs !== undefined ? { offsetMs: time.offsetMs } : {}),
      ...(time.serverTimeAt !== undefined ? { serverTimeAt: iso(time.serverTimeAt) } : {}),
    },
    refusals: ledger.refusalCounts(),
  };
}
