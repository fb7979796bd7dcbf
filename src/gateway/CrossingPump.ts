/**
 * Moves accepted crossings from the outbox table to the payment side, in seq
 * order, a bounded number in flight. A crossing leaves the table only when
 * the payment side has taken it for good (the MQTT store or the diode).
 *
 * The crossings each commit put in the outbox are offered to the pump from
 * the commit's reply, so the outbox is read back only at start, and when the
 * payment side fell so far behind that more than MEMORY_LIMIT waited (then
 * the pump reads the table until it has caught up).
 */
import type { GatewayStore, PendingCrossing } from './GatewayStore.js';
import type { PaymentSide } from './PaymentLink.js';

const MEMORY_LIMIT = 10_000;

export class CrossingPump {
  private lastSubmitted = 0;
  private inflight = 0;
  private pumping = false;
  private stopped = false;
  /** Offered crossings not yet submitted, in seq order */
  private queue: PendingCrossing[] = [];
  private head = 0;
  /** True while the table may hold crossings the queue does not (at start, after an overflow) */
  private fromTable = true;
  published = 0;

  constructor(
    private readonly store: GatewayStore,
    private readonly payment: PaymentSide,
    private readonly maxInflight = 32,
  ) {}

  get inFlight(): number {
    return this.inflight;
  }

  /** Crossings a commit has just put in the outbox (committed: the table has them too) */
  offer(rows: readonly PendingCrossing[]): void {
    if (this.fromTable || rows.length === 0) return;
    if (this.queue.length - this.head + rows.length > MEMORY_LIMIT) {
      this.queue = [];
      this.head = 0;
      this.fromTable = true;
      return;
    }
    for (const row of rows) this.queue.push(row);
  }

  private next(limit: number): PendingCrossing[] {
    if (this.head < this.queue.length) {
      const rows = this.queue.slice(this.head, this.head + limit);
      this.head += rows.length;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return rows;
    }
    if (!this.fromTable) return [];
    const rows = this.store.pendingCrossings(limit, this.lastSubmitted);
    // caught up with the table: from now on every crossing is offered after its commit
    if (rows.length < limit) this.fromTable = false;
    return rows;
  }

  kick(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      while (this.inflight < this.maxInflight) {
        const rows = this.next(this.maxInflight - this.inflight);
        if (rows.length === 0) break;
        for (const row of rows) {
          if (row.gatewaySeq <= this.lastSubmitted) continue;
          this.lastSubmitted = row.gatewaySeq;
          this.inflight += 1;
          this.payment.publishCrossing(row.gatewaySeq, row.topic, row.payload).then(
            () => {
              this.inflight -= 1;
              this.published += 1;
              this.kick();
            },
            () => {
              // the link closed under it: it stays stored for the next start
              this.inflight -= 1;
            },
          );
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  stop(): void {
    this.stopped = true;
  }
}
