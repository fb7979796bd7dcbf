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

// the floor is part of the ledger format (a verifier checks the clock-trust byte against it)
export { CLOCK_FLOOR_MS } from '../codecs/ledgerEntry.js';
