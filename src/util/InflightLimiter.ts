/**
 * At most `limit` QoS 1 publishes waiting for their PUBACK. mqtt.js ignores the
 * broker's receive maximum, and a broker past it drops or refuses publishes,
 * so the limit is enforced here. Shared by the terminal's sync and the server.
 */
export class InflightLimiter {
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private limit: number) {}

  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    this.wake();
  }

  get current(): number {
    return this.inFlight;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.inFlight >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
      this.wake();
    }
  }

  private wake(): void {
    // every waiter re-checks the limit when it wakes
    for (const resume of this.waiting.splice(0)) resume();
  }
}
