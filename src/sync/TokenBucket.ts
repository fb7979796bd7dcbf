/** Rate limit for draining a backlog: `rate` tokens a second, bursts up to one second's worth. Time is injected. */
import type { Clock } from '../util/clock.js';

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private rate: number,
    private readonly clock: Clock,
  ) {
    this.tokens = rate;
    this.last = clock.now();
  }

  setRate(rate: number): void {
    this.rate = rate;
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
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }
}
