/**
 * The two-phase device session of a use (reserved -> started -> completed, or
 * released / failed): the relay enabled for a use the ledger has reserved, the
 * board's started / finished / fault reports, and the releases the terminal
 * decides (no start in time, a relay that would not close, a stop), each
 * recorded in the ledger. An event the ledger cannot record (a storage fault)
 * is kept and retried with a back-off until it is. After a restart the uses
 * the last run left open are settled by the board's own report of its
 * session, or bounded by the start timeout and the longest session.
 * Its timers run on the injected Scheduler.
 */
import { EntryType } from '../codecs/ledgerEntry.js';
import { codeOf, TallyError } from '../errors.js';
import type { Ledger } from '../ledger/Ledger.js';
import type { DeviceControl, DeviceEvent } from '../readers/CardReader.js';
import type { Logger } from '../util/logger.js';
import type { Scheduler, TimerHandle } from '../util/scheduler.js';

/** A session outcome the ledger must record: what the device reported, or a release the terminal decided */
type SessionEvent = DeviceEvent | { readonly type: 'release'; readonly useSeq: number; readonly reason: string };

/** Back-off of the retries of a session event the ledger could not record */
const RECORD_RETRY_MIN_MS = 500;
const RECORD_RETRY_MAX_MS = 30_000;

export interface DeviceSessionOptions {
  readonly ledger: Ledger;
  /** The relay; without one a use is recorded as started and completed when it is reserved */
  readonly device: DeviceControl | undefined;
  readonly scheduler: Scheduler;
  readonly log: Logger;
  /** Longest a device session may run (the relay opens after it) */
  readonly maxSessionMs: number;
  /** The device must report "started" within this time, or the use is released */
  readonly startTimeoutMs: number;
}

export class DeviceSession {
  private readonly ledger: Ledger;
  private readonly device: DeviceControl | undefined;
  private readonly scheduler: Scheduler;
  private readonly log: Logger;
  private readonly maxSessionMs: number;
  private readonly startTimeoutMs: number;
  private readonly startTimers = new Map<number, TimerHandle>();
  /** Uses left open by the last run, waiting for the board's own report of its session (settleFromBoard) */
  private readonly recovered = new Set<number>();
  /** The last board session report settled (BoardSession.id) */
  private settledReport = 0;
  /** Session events the ledger could not record yet (storage fault), by use */
  private readonly unrecorded = new Map<number, { readonly event: SessionEvent; tries: number }>();
  /** Uses whose device reported its start, until the use ends in the ledger */
  private readonly startReported = new Set<number>();
  private retryTimer: TimerHandle | undefined;
  private retryDelayMs = RECORD_RETRY_MIN_MS;
  private readonly useEndListeners = new Set<() => void>();
  private readonly unsubscribe: (() => void) | undefined;

  constructor(options: DeviceSessionOptions) {
    this.ledger = options.ledger;
    this.device = options.device;
    this.scheduler = options.scheduler;
    this.log = options.log;
    this.maxSessionMs = options.maxSessionMs;
    this.startTimeoutMs = options.startTimeoutMs;
    this.unsubscribe = this.device?.onEvent((event) => this.onDeviceEvent(event));
  }

  close(): void {
    for (const timer of this.startTimers.values()) this.scheduler.clearTimeout(timer);
    if (this.retryTimer !== undefined) this.scheduler.clearTimeout(this.retryTimer);
    this.unsubscribe?.();
  }

  /** Session events the ledger could not record yet */
  get unrecordedEvents(): number {
    return this.unrecorded.size;
  }

  /**
   * Before a use is reserved: fails closed while the ledger still owes a device event (a storage
   * fault), after trying it once more, and refuses while the device is still in a session.
   */
  checkReadyForUse(): void {
    if (this.unrecorded.size > 0 && !this.recordPending()) {
      throw new TallyError('STORAGE_FAULT', `${this.unrecorded.size} device session event(s) not yet recorded in the ledger`);
    }
    if (this.device && this.ledger.openUses().length > 0) throw new TallyError('BUSY', 'the device is still in a session');
  }

  /**
   * Closes the relay for a reserved use, the start timeout running. When the relay cannot be
   * enabled the use is released and the device's error thrown again.
   */
  async enable(seq: number): Promise<void> {
    // without a relay the use was recorded complete in the reserving transaction
    if (!this.device) return;
    this.startTimers.set(
      seq,
      this.scheduler.setTimeout(() => this.releaseUse(seq, 'device did not report a start in time'), this.startTimeoutMs, { unref: true }),
    );
    const headSeq = this.ledger.lastSeq();
    const head = { seq: headSeq, hash: this.ledger.entryHashAt(headSeq)! };
    try {
      await this.device.enable(seq, this.maxSessionMs, head);
    } catch (err) {
      this.releaseUse(seq, `relay could not be enabled: ${codeOf(err)}`);
      throw err;
    }
  }

  /** Called whenever a use reaches its end in the ledger (completed, failed, released): settlement outcomes are then due */
  onUseEnded(listener: () => void): () => void {
    this.useEndListeners.add(listener);
    return () => this.useEndListeners.delete(listener);
  }

  notifyUseEnded(): void {
    for (const listener of this.useEndListeners) {
      try {
        listener();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'use-end listener failed');
      }
    }
  }

  /** The terminal gives up waiting for a start: relay open, use released (recorded now or, after a storage fault, as soon as it can be) */
  private releaseUse(seq: number, reason: string): void {
    this.clearStartTimer(seq);
    void this.device?.disable().catch(() => undefined);
    this.record({ type: 'release', useSeq: seq, reason });
  }

  private clearStartTimer(seq: number): void {
    const timer = this.startTimers.get(seq);
    if (timer !== undefined) this.scheduler.clearTimeout(timer);
    this.startTimers.delete(seq);
  }

  /**
   * Device-session events from the relay board complete the two-phase use.
   * Returns whether the ledger has it now: the serial backend ACKs the board's
   * event only then, so an event lost with the process (killed between its
   * arrival and its recording) or refused by the disk is sent again by the
   * board, also to the next daemon, and recorded against its use.
   */
  onDeviceEvent(event: DeviceEvent): boolean {
    // a start (or an end, which proves it) ends the wait for the start, whether or not the ledger can record it now
    if (event.type !== 'fault') this.clearStartTimer(event.useSeq);
    if (event.type === 'started') this.startReported.add(event.useSeq);
    this.record(event);
    return !this.unrecorded.has(event.useSeq);
  }

  /**
   * Records a session event in the ledger. When the ledger cannot write (a
   * storage fault), the event is kept and tried again (with a back-off, and
   * before every deduction) until it is recorded: the use then reaches the
   * state the device reported (a lost "started" never turns a session that
   * ran into a refund), and the terminal serves again without a restart.
   * Meanwhile one-time cards are refused with STORAGE_FAULT.
   */
  private record(event: SessionEvent): void {
    const pending = this.unrecorded.get(event.useSeq);
    // an end replaces an unrecorded start (it records the start too), never the other way round
    if (pending && pending.event.type !== 'started' && event.type === 'started') return;
    this.unrecorded.set(event.useSeq, { event, tries: pending?.tries ?? 0 });
    this.recordPending();
  }

  /** Tries every unrecorded session event, oldest use first; true when none is left */
  private recordPending(): boolean {
    for (const [seq, pending] of [...this.unrecorded].sort(([a], [b]) => a - b)) {
      try {
        this.applySessionEvent(pending.event, pending.tries++ > 0);
        this.unrecorded.delete(seq);
        if (pending.event.type !== 'started') this.notifyUseEnded();
      } catch (err) {
        this.log.error({ seq, event: pending.event.type, code: codeOf(err), retryInMs: this.retryDelayMs }, 'could not record a device event: kept, tried again');
        if (this.retryTimer === undefined) {
          this.retryTimer = this.scheduler.setTimeout(
            () => {
              this.retryTimer = undefined;
              this.recordPending();
            },
            this.retryDelayMs,
            { unref: true },
          );
          this.retryDelayMs = Math.min(this.retryDelayMs * 2, RECORD_RETRY_MAX_MS);
        }
        return false;
      }
    }
    if (this.retryTimer !== undefined) this.scheduler.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryDelayMs = RECORD_RETRY_MIN_MS;
    return true;
  }

  /** One session event into the ledger (each write idempotent, so a retry after a partial success is safe); throws STORAGE_FAULT */
  private applySessionEvent(event: SessionEvent, late: boolean): void {
    const seq = event.useSeq;
    const use = this.ledger.useByReserveSeq(seq);
    if (!use) {
      this.log.warn({ event }, 'device event for an unknown use');
      return;
    }
    const reported = this.startReported.has(seq);
    // a start the device reported but the ledger could not take; or one proven by the session's end
    const recordStart = (): void => {
      if (use.state === 'reserved') this.ledger.recordDeviceEvent(seq, EntryType.USE_STARTED, reported ? 'start reported by the device, recorded late after a storage fault' : 'start inferred from the finish report');
    };
    switch (event.type) {
      case 'started':
        this.ledger.recordDeviceEvent(seq, EntryType.USE_STARTED, ...(late ? ['recorded late after a storage fault'] : []));
        // a repeated start of a use that has already ended is remembered no longer
        if (use.state === 'reserved' || use.state === 'started') return;
        break;
      case 'finished':
        // left "reserved", the use would be released (refunded) at the next restart
        recordStart();
        this.ledger.recordDeviceEvent(seq, EntryType.USE_COMPLETED);
        break;
      case 'fault':
        if (use.state === 'reserved' && !reported) {
          this.clearStartTimer(seq);
          if (this.ledger.recordDeviceEvent(seq, EntryType.USE_RELEASED, `device fault before start: ${event.detail}`) !== undefined) this.log.warn({ seq, detail: event.detail }, 'use released');
          void this.device?.disable().catch(() => undefined);
        } else {
          recordStart();
          this.ledger.recordDeviceEvent(seq, EntryType.USE_FAILED, event.detail);
        }
        break;
      case 'release':
        if (this.ledger.recordDeviceEvent(seq, EntryType.USE_RELEASED, event.reason) !== undefined) this.log.warn({ seq, reason: event.reason }, 'use released');
        break;
    }
    this.startReported.delete(seq);
  }

  /**
   * After a crash or power cut. Without a relay a use left "reserved" never
   * reached a device: it is released. With a relay the board keeps its device
   * events across a lost link and reports them when the daemon is back, so a
   * reserved use waits startTimeoutMs for its "started" (then is released),
   * and a started one waits for its end, bounded by the longest session.
   */
  recoverOpenUses(): void {
    for (const use of this.ledger.openUses()) {
      if (!this.device) {
        if (use.state === 'reserved') this.ledger.recordDeviceEvent(use.reserveSeq, EntryType.USE_RELEASED, 'terminal restarted before the device started');
        else this.ledger.recordDeviceEvent(use.reserveSeq, EntryType.USE_FAILED, 'terminal restarted during the device session');
      } else {
        // until the board reports its session (settleFromBoard), the timers bound the wait
        this.recovered.add(use.reserveSeq);
        if (use.state === 'reserved') this.armStartWait(use.reserveSeq, this.startTimeoutMs);
        else this.armSessionWait(use.reserveSeq, this.maxSessionMs);
      }
    }
  }

  private armStartWait(seq: number, ms: number): void {
    this.clearStartTimer(seq);
    this.startTimers.set(seq, this.scheduler.setTimeout(() => this.releaseUse(seq, 'terminal restarted and the device never reported a start'), ms, { unref: true }));
  }

  private armSessionWait(seq: number, ms: number): void {
    this.clearStartTimer(seq);
    this.startTimers.set(
      seq,
      this.scheduler.setTimeout(
        () => {
          this.clearStartTimer(seq);
          this.record({ type: 'fault', useSeq: seq, detail: 'terminal restarted during the session and no end was reported' });
        },
        ms,
        { unref: true },
      ),
    );
  }

  /**
   * Settles the uses the last run left open with the relay board's own report of its
   * session (GET_SESSION at the reader's sync, serial-protocol.md §6.6), once per report.
   * The board sends any end it still holds before that answer, and it is recorded by then,
   * so a use still open here and not held by the board is over:
   * - never started: released at once (the relay is open, nothing ran);
   * - started: failed at once (the board rebooted, or its relay opened, with no end to report);
   * - held, not started: the start timeout less the time since the relay closed;
   * - held and running: the longest session less the time since the relay closed, so
   *   restarts never restart it.
   * A board that gives no report (protocol 1) leaves the timers of recoverOpenUses.
   */
  settleFromBoard(): void {
    if (this.recovered.size === 0) return;
    const report = this.device?.session?.();
    if (!report || report.id === this.settledReport) return;
    this.settledReport = report.id;
    for (const seq of [...this.recovered]) {
      const use = this.ledger.useByReserveSeq(seq);
      if (!use || (use.state !== 'reserved' && use.state !== 'started')) {
        this.recovered.delete(seq);
        continue;
      }
      const held = report.state !== 'idle' && report.useSeq === seq ? report : undefined;
      const fields = { event: 'use-settled-by-board', useSeq: seq, ledgerState: use.state, board: report.state, boardUse: report.state === 'idle' ? undefined : report.useSeq, elapsedMs: held?.elapsedMs };
      if (!held) {
        this.recovered.delete(seq);
        this.clearStartTimer(seq);
        if (use.state === 'reserved' && !this.startReported.has(seq)) {
          this.log.warn(fields, 'use left open by the last run: the relay board holds no session for it, released');
          this.releaseUse(seq, 'terminal restarted; the relay board holds no session for the use (never started)');
        } else {
          this.log.warn(fields, 'use left open by the last run: the relay board holds no session for it, failed');
          this.record({ type: 'fault', useSeq: seq, detail: 'terminal restarted; the relay board holds no session for the use (it rebooted or its relay opened, no end reported)' });
        }
      } else if (held.state === 'enabled' && use.state === 'reserved') {
        this.log.info(fields, 'use left open by the last run: the relay board is waiting for its start');
        this.armStartWait(seq, Math.max(0, this.startTimeoutMs - held.elapsedMs));
      } else {
        this.log.info(fields, 'use left open by the last run: the relay board runs it');
        this.armSessionWait(seq, Math.max(0, this.maxSessionMs - held.elapsedMs));
      }
    }
  }

  /**
   * A graceful stop (SIGTERM): a use whose device has not started yet is
   * released and its relay opened, so no device runs on a use the ledger will
   * not charge. A started session runs on; the board reports its end later.
   * So does one whose start the device reported but the ledger could not
   * record yet: its start gets a last try here.
   */
  async prepareStop(): Promise<void> {
    for (const use of this.ledger.openUses()) {
      if (use.state !== 'reserved' || this.startReported.has(use.reserveSeq)) continue;
      await this.device?.disable().catch(() => undefined);
      this.clearStartTimer(use.reserveSeq);
      this.unrecorded.delete(use.reserveSeq);
      this.record({ type: 'release', useSeq: use.reserveSeq, reason: 'terminal stopping before the device started' });
    }
    if (!this.recordPending()) this.log.error({ events: this.unrecorded.size }, 'stopping with device events the ledger could not record');
  }
}
