/**
 * The terminal's time: its local clock until the server tells it the time,
 * then the server's time, carried forward by a monotonic clock (a local clock
 * reset to 1970, stepped by hand or drifting does not move it). The system
 * clock is never set.
 *
 * A server time only counts for the process that received it: the offset to
 * the local clock is kept in the sync state for status, but never applied at
 * the next start (the local clock may have been reset, or corrected, since;
 * a board coming online gets a fresh time from the server anyway).
 *
 * Server time never takes the clock back past the ledger's high-water mark
 * (the latest time the terminal has recorded or trusted): a time a little
 * behind it holds the clock at the mark until the server's time passes it; a
 * time far behind it (a stale message, a server with a wrong clock) is refused.
 */
import { TallyError } from '../errors.js';
import type { Clock } from '../util/clock.js';

/** A server time at most this far behind the high-water mark holds the clock at the mark; further behind is refused */
export const MAX_SERVER_TIME_BEHIND_MS = 5 * 60_000;

export interface ServerTimeReading {
  /** The server's time when it arrived */
  readonly serverTime: number;
  /** The local clock when it arrived */
  readonly localTime: number;
}

export interface ClockStatus {
  /** What now() follows: the local clock, or the server's time received since start */
  readonly source: 'local' | 'server';
  /** The terminal's time now (ms) */
  readonly now: number;
  /** The local (system) clock now (ms) */
  readonly localNow: number;
  /** Server time minus local clock at the last server time (ms) */
  readonly offsetMs?: number;
  /** When the last server time arrived, in terminal time (ms) */
  readonly serverTimeAt?: number;
}

export class TerminalClock implements Clock {
  private anchor: { serverTime: number; monotonic: number; localTime: number } | undefined;
  private floor: () => number = () => 0;

  constructor(
    private readonly local: Clock,
    private readonly monotonicMs: () => number = () => performance.now(),
  ) {}

  /** The time the clock must not go back past (the ledger's high-water mark) */
  setFloor(floor: () => number): void {
    this.floor = floor;
  }

  now(): number {
    if (!this.anchor) return this.local.now();
    // whole milliseconds, as Date.now(): entries store integer times
    return Math.max(this.anchor.serverTime + Math.floor(this.monotonicMs() - this.anchor.monotonic), this.floor());
  }

  /** The local clock, whatever the server said */
  localNow(): number {
    return this.local.now();
  }

  /**
   * Follows the server's time from now on. Throws (and changes nothing) when
   * the time is further behind the floor than MAX_SERVER_TIME_BEHIND_MS.
   */
  adopt(serverTime: number): ServerTimeReading {
    const floor = this.floor();
    if (serverTime < floor - MAX_SERVER_TIME_BEHIND_MS) {
      throw new TallyError('SERVER_TIME_BEHIND', 
        `server time ${new Date(serverTime).toISOString()} is ${Math.round((floor - serverTime) / 1000)} s behind the time this terminal has already recorded (${new Date(floor).toISOString()}): not taken`,
      );
    }
    const localTime = this.local.now();
    this.anchor = { serverTime: Math.floor(serverTime), monotonic: this.monotonicMs(), localTime };
    return { serverTime, localTime };
  }

  status(): ClockStatus {
    const now = this.now();
    const localNow = this.local.now();
    if (!this.anchor) return { source: 'local', now, localNow };
    return {
      source: 'server',
      now,
      localNow,
      offsetMs: this.anchor.serverTime - this.anchor.localTime,
      serverTimeAt: this.anchor.serverTime,
    };
  }
}
