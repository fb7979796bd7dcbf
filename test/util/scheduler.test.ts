/** The manual scheduler tests drive time with: timers run in due order, at their own instant, intervals repeat. */
import { describe, expect, it } from 'vitest';
import { ManualScheduler } from '../../src/util/scheduler.js';

describe('ManualScheduler', () => {
  it('runs what falls due in order, each at its own instant, and nothing early', () => {
    const timers = new ManualScheduler(1000);
    const ran: Array<[string, number]> = [];
    timers.setTimeout(() => ran.push(['b', timers.now()]), 20);
    timers.setTimeout(() => ran.push(['a', timers.now()]), 10);
    const cancelled = timers.setTimeout(() => ran.push(['never', timers.now()]), 15);
    timers.clearTimeout(cancelled);
    timers.advance(9);
    expect(ran).toEqual([]);
    timers.advance(11);
    expect(ran).toEqual([['a', 1010], ['b', 1020]]);
    expect(timers.now()).toBe(1020);
    expect(timers.pending()).toBe(0);
  });

  it('repeats an interval until cleared, and runs a timer set by a timer in the same advance', () => {
    const timers = new ManualScheduler();
    let ticks = 0;
    const every = timers.setInterval(() => {
      ticks++;
      if (ticks === 2) timers.setTimeout(() => (ticks += 100), 1);
    }, 10);
    timers.advance(35);
    expect(ticks).toBe(103);
    timers.clearInterval(every);
    timers.advance(100);
    expect(ticks).toBe(103);
  });
});
