/** A clock that can also schedule, for the link's timeouts. Tests inject their own. */
import type { Clock } from '../../util/clock.js';

export interface SchedulingClock extends Clock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemSchedulingClock: SchedulingClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
