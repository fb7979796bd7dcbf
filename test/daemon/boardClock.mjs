/**
 * Preload for daemon tests (node --import): the process's wall clock reads as
 * a board whose clock is wrong, e.g. reset to 1970 by a power loss. Date.now()
 * and new Date() start at TALLY_TEST_CLOCK_START_MS (default 0, 1970-01-01)
 * and run on from there; the monotonic clock (performance.now) is untouched,
 * as on a real board. The machine's clock is not changed.
 */
import { performance } from 'node:perf_hooks';

const start = Number(process.env.TALLY_TEST_CLOCK_START_MS ?? 0);
const RealDate = Date;
const loadedAt = performance.now();
const boardNow = () => Math.round(start + (performance.now() - loadedAt));

class BoardDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(boardNow());
    else super(...args);
  }

  static now() {
    return boardNow();
  }
}

globalThis.Date = BoardDate;
