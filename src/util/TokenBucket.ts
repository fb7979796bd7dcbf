/**
 * A token bucket: `rate` tokens a second, bursts up to `burst` (one second's
 * worth unless given). Time is injected. Used to drain a backlog (sync) and to
 * rate-limit each declared message type (gateway).
 */
import type { Clock } from './clock.js';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private burst: number;
  constructor(
    private rate: number,
    private readonly clock: Clock,
    burst?: number,
  ) {
    this.burst = burst ?? rate;
    this.tokens = this.burst;
    this.last = clock.now();
  }

  setRate(rate: number): void {
    this.rate = rate;
    this.burst = rate;
    this.tokens = Math.min(this.tokens, rate);
  }

  /** Takes a token if one is there */
  tryTake(): boolean {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** ms until the next token */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }
}
