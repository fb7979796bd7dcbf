/** Time is injected everywhere it is read, so tests and simulators control it. */
export interface Clock {
  /** ms since the epoch */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock a test or simulator moves by hand */
export class ManualClock implements Clock {
  constructor(private time: number) {}
  now(): number {
    return this.time;
  }
  set(time: number): void {
    this.time = time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
}

/**
 * Before this instant a terminal's clock is certainly wrong (a board whose RTC
 * lost power boots in 1970 or 2000). Entries made then are marked untrusted.
 */
export const CLOCK_FLOOR_MS = Date.UTC(2026, 0, 1);
