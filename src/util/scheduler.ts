/**
 * Timers are injected like time: every component that waits (a start timeout,
 * a retry, a poll, a heartbeat) takes a Scheduler, so a test moves time by
 * hand instead of sleeping. The system scheduler unrefs its timers where asked,
 * so a pending retry never keeps a process alive.
 */
import type { Clock } from './clock.js';

export type TimerHandle = unknown;

export interface TimerOptions {
  /** The timer alone does not keep the process running (Node's unref) */
  readonly unref?: boolean;
}

export interface Scheduler {
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(callback: () => void, ms: number, options?: TimerOptions): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

/** A clock that can also schedule: what a component with timeouts takes */
export interface SchedulingClock extends Clock, Scheduler {}

export const systemScheduler: Scheduler = {
  setTimeout: (callback, ms, options) => {
    const timer = setTimeout(callback, ms);
    if (options?.unref) timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (callback, ms, options) => {
    const timer = setInterval(callback, ms);
    if (options?.unref) timer.unref();
    return timer;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export const systemSchedulingClock: SchedulingClock = { now: () => Date.now(), ...systemScheduler };

interface ManualTimer {
  readonly id: number;
  at: number;
  readonly every?: number;
  readonly callback: () => void;
}

/** Time and timers a test or simulator moves by hand: advance() runs every timer that falls due, in order */
export class ManualScheduler implements SchedulingClock {
  private timers: ManualTimer[] = [];
  private nextId = 1;

  constructor(private time = 0) {}

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, Math.max(1, ms));
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  clearInterval(handle: TimerHandle): void {
    this.clearTimeout(handle);
  }

  /** Timers waiting to run */
  pending(): number {
    return this.timers.length;
  }

  /** Moves time on by ms, running each timer due on the way at its own instant */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((x, y) => x.at - y.at || x.id - y.id)[0];
      if (!due) break;
      this.time = Math.max(this.time, due.at);
      if (due.every !== undefined) due.at += due.every;
      else this.timers = this.timers.filter((t) => t !== due);
      due.callback();
    }
    this.time = until;
  }

  private add(callback: () => void, ms: number, every?: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, at: this.time + Math.max(0, ms), callback, ...(every !== undefined ? { every } : {}) });
    return id;
  }
}
