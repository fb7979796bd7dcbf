/**
 * The outbox drain: sends the ledger's entries as reports, several a message,
 * and lets an entry go only when the server's application ack names it
 * committed. Reports awaiting an ack stay within the window (the broker's
 * receive maximum); a report unanswered in time goes again from its first
 * entry (the server dedupes), less and less often while the server is silent.
 * A backlog drains at a limited rate.
 */
import { rangesToSeqs, type AckPayload } from '../codecs/mqtt/messages.js';
import { MAX_REPORT_BYTES } from '../codecs/mqtt/limits.js';
import { encodeReport, reportSize } from '../codecs/mqtt/report.js';
import type { Clock } from '../util/clock.js';
import type { Scheduler, TimerHandle } from '../util/scheduler.js';
import type { Logger } from '../util/logger.js';
import { TokenBucket } from '../util/TokenBucket.js';
import type { OutboxEntry, OutboxSource } from './OutboxSource.js';

export interface DrainPolicy {
  readonly reportBatchSize: number;
  readonly maxReportsPerSecond: number;
  readonly ackTimeoutMs: number;
  readonly maxInflightReports: number;
}

export interface DrainStats {
  reportsSent: number;
  entriesSent: number;
  entriesAcknowledged: number;
  acks: number;
  ackTimeouts: number;
  resendRequests: number;
  /** The most reports awaiting an ack at once */
  maxInflightReports: number;
}

export interface ReportDrainOptions {
  readonly outbox: OutboxSource;
  readonly stats: DrainStats;
  readonly policy: () => DrainPolicy;
  /** The broker's receive maximum as last advertised */
  readonly receiveMaximum: () => number;
  readonly connected: () => boolean;
  /** Publishes one report (QoS 1); a rejection only logs, the ack timeout sends it again */
  readonly publishReport: (payload: Uint8Array) => Promise<void>;
  readonly nextTransaction: () => number;
  /** How often the outbox is polled for new entries besides pump() */
  readonly pollMs: number;
  readonly clock: Clock;
  readonly timers: Scheduler;
  readonly logger: Logger;
}

export interface ReportDrain {
  /** Sends what the window and the rate allow now */
  pump(): void;
  /** A new connection: start again from the lowest un-acknowledged entry */
  restart(): void;
  /** The server's ack for one report */
  acknowledged(ack: AckPayload): void;
  /** The server asks for entries again (acknowledged or not); the number of entries sent */
  resend(fromSeq: number, toSeq: number | undefined): number;
  /** The reports-a-second limit changed (a new config) */
  setRate(reportsPerSecond: number): void;
  /** Resolves when the outbox is empty (every entry acknowledged) */
  drained(timeoutMs: number): Promise<void>;
  stop(): void;
}

interface InflightReport {
  readonly seqs: readonly number[];
  readonly sentAt: number;
}

export function createReportDrain(options: ReportDrainOptions): ReportDrain {
  const { outbox, stats, clock, timers, logger } = options;
  const inflight = new Map<number, InflightReport>();
  const drainWaiters = new Set<() => void>();
  const bucket = new TokenBucket(options.policy().maxReportsPerSecond, clock);
  let cursor = 0;
  let stopped = false;
  let pumping = false;
  let pumpAgain = false;
  let pumpTimer: TimerHandle | undefined;
  // while the server stays silent (down for days), resend less and less often: doubling up to 5 minutes
  let silentTimeouts = 0;

  const window = (): number => Math.max(1, Math.min(options.policy().maxInflightReports, options.receiveMaximum()));

  const ackTimeout = (): number => {
    const ackTimeoutMs = options.policy().ackTimeoutMs;
    return Math.min(Math.max(ackTimeoutMs, 300_000), ackTimeoutMs * 2 ** Math.min(silentTimeouts, 10));
  };

  const schedulePump = (delayMs: number): void => {
    if (stopped) return;
    if (pumpTimer) timers.clearTimeout(pumpTimer);
    pumpTimer = timers.setTimeout(() => {
      pumpTimer = undefined;
      pump();
    }, delayMs);
  };

  const checkAckTimeouts = (): void => {
    const now = clock.now();
    let lowestLost: number | undefined;
    const timeout = ackTimeout();
    for (const [tx, report] of inflight) {
      if (now - report.sentAt < timeout) continue;
      inflight.delete(tx);
      stats.ackTimeouts++;
      const low = Math.min(...report.seqs);
      lowestLost = lowestLost === undefined ? low : Math.min(lowestLost, low);
    }
    // send again from the first entry whose ack never came; the server dedupes the rest
    if (lowestLost !== undefined) {
      cursor = Math.min(cursor, lowestLost - 1);
      silentTimeouts++;
    }
  };

  const takeBatch = (): OutboxEntry[] => {
    const entries = outbox.pending(options.policy().reportBatchSize, cursor);
    // keep within the frame size: drop entries from the end until it fits
    const cert = outbox.terminalCertificate();
    while (entries.length > 1 && reportSize(cert.length, entries.map((e) => e.raw.length)) > MAX_REPORT_BYTES) entries.pop();
    return entries;
  };

  const sendReport = (entries: readonly OutboxEntry[]): void => {
    const tx = options.nextTransaction();
    const payload = encodeReport({ transaction: tx, certificate: outbox.terminalCertificate(), entries: entries.map((e) => e.raw) });
    inflight.set(tx, { seqs: entries.map((e) => e.seq), sentAt: clock.now() });
    stats.maxInflightReports = Math.max(stats.maxInflightReports, inflight.size);
    stats.reportsSent++;
    stats.entriesSent += entries.length;
    options.publishReport(payload).catch((err: Error) => {
      // not at the broker: the ack timeout sends it again
      logger.warn({ err: err.message, tx }, 'report publish failed');
    });
  };

  const notifyDrained = (): void => {
    if (drainWaiters.size === 0 || outbox.pendingCount() > 0) return;
    for (const resolve of [...drainWaiters]) resolve();
  };

  function pump(): void {
    if (stopped) return;
    if (pumping) {
      pumpAgain = true;
      return;
    }
    pumping = true;
    try {
      checkAckTimeouts();
      while (options.connected() && inflight.size < window()) {
        if (!bucket.tryTake()) {
          schedulePump(bucket.waitMs());
          return;
        }
        const entries = takeBatch();
        if (entries.length === 0) break;
        cursor = entries[entries.length - 1]!.seq;
        sendReport(entries);
      }
      if (inflight.size > 0) schedulePump(Math.min(ackTimeout(), 1000));
      else schedulePump(options.pollMs);
      notifyDrained();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'drain failed');
      schedulePump(1000);
    } finally {
      pumping = false;
      if (pumpAgain) {
        pumpAgain = false;
        queueMicrotask(pump);
      }
    }
  }

  return {
    pump,
    restart() {
      cursor = 0;
      inflight.clear();
    },
    acknowledged(ack) {
      stats.acks++;
      silentTimeouts = 0;
      const committed = rangesToSeqs(ack.data.committed);
      if (committed.length > 0) {
        outbox.acknowledge(committed);
        stats.entriesAcknowledged += committed.length;
      }
      inflight.delete(ack.transaction);
    },
    resend(fromSeq, toSeq) {
      stats.resendRequests++;
      // everything from fromSeq, acknowledged or not, goes again; inflight reports still count against the window
      let next = fromSeq;
      const last = toSeq ?? Number.MAX_SAFE_INTEGER;
      let sent = 0;
      while (next <= last && sent < 10_000) {
        const entries = outbox.entriesFrom(next, options.policy().reportBatchSize).filter((e) => e.seq <= last);
        if (entries.length === 0) break;
        sendReport(entries);
        sent += entries.length;
        next = entries[entries.length - 1]!.seq + 1;
      }
      return sent;
    },
    setRate: (reportsPerSecond) => bucket.setRate(reportsPerSecond),
    drained(timeoutMs) {
      if (outbox.pendingCount() === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = timers.setTimeout(() => {
          drainWaiters.delete(done);
          reject(new Error(`outbox not drained after ${timeoutMs} ms: ${outbox.pendingCount()} pending`));
        }, timeoutMs);
        const done = (): void => {
          timers.clearTimeout(timer);
          drainWaiters.delete(done);
          resolve();
        };
        drainWaiters.add(done);
      });
    },
    stop() {
      stopped = true;
      if (pumpTimer) timers.clearTimeout(pumpTimer);
    },
  };
}
