/**
 * The medical device behind the relay, simulated: when enabled it reports
 * "started" after startDelayMs and "finished" after runMs, unless told to
 * fault or to stay silent. Implements DeviceControl for in-process use.
 */
import { TallyError } from '../errors.js';
import type { DeviceControl, DeviceEvent, DeviceEventAnswer } from '../readers/CardReader.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../util/scheduler.js';

export type DeviceBehaviour = 'normal' | 'fault-before-start' | 'fault-while-running' | 'never-starts' | 'relay-broken';

export class SimulatedDevice implements DeviceControl {
  /** In process, nothing to ACK: the answers are not needed */
  private readonly listeners = new Set<(event: DeviceEvent) => DeviceEventAnswer>();
  private timers: TimerHandle[] = [];
  relayClosed = false;
  behaviour: DeviceBehaviour = 'normal';
  sessions = 0;

  constructor(
    private readonly timing: { startDelayMs: number; runMs: number } = { startDelayMs: 0, runMs: 0 },
    /** The device's delays run on it (a test's ManualScheduler moves them with the terminal's timers) */
    private readonly scheduler: Scheduler = systemScheduler,
  ) {}

  onEvent(listener: (event: DeviceEvent) => DeviceEventAnswer): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: DeviceEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Zero delay reports at once, so an in-process swipe ends with its session recorded */
  private later(ms: number, fn: () => void): void {
    if (ms <= 0) fn();
    else this.timers.push(this.scheduler.setTimeout(fn, ms));
  }

  async enable(useSeq: number, maxMs: number): Promise<void> {
    if (this.behaviour === 'relay-broken') throw new TallyError('INTERNAL', 'relay did not close');
    this.relayClosed = true;
    this.sessions++;
    const behaviour = this.behaviour;
    if (behaviour === 'never-starts') return;
    if (behaviour === 'fault-before-start') {
      this.later(this.timing.startDelayMs, () => this.emit({ type: 'fault', useSeq, detail: 'no patient detected' }));
      return;
    }
    this.later(this.timing.startDelayMs, () => {
      this.emit({ type: 'started', useSeq });
      const run = Math.min(this.timing.runMs, maxMs);
      this.later(run, () => {
        this.relayClosed = false;
        this.emit(behaviour === 'fault-while-running' ? { type: 'fault', useSeq, detail: 'scanner fault E42' } : { type: 'finished', useSeq });
      });
    });
  }

  async disable(): Promise<void> {
    this.relayClosed = false;
  }

  stop(): void {
    for (const t of this.timers) this.scheduler.clearTimeout(t);
    this.timers = [];
  }
}
