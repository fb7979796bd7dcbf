/**
 * Moves accepted crossings from the outbox table to the payment side, in seq
 * order, a bounded number in flight. A crossing leaves the table only when
 * the payment side has taken it for good (the MQTT store or the diode).
 */
import type { GatewayStore } from './GatewayStore.js';
import type { PaymentSide } from './PaymentLink.js';

export class CrossingPump {
  private lastSubmitted = 0;
  private inflight = 0;
  private pumping = false;
  private stopped = false;
  published = 0;

  constructor(
    private readonly store: GatewayStore,
    private readonly payment: PaymentSide,
    private readonly maxInflight = 32,
  ) {}

  get inFlight(): number {
    return this.inflight;
  }

  kick(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      while (this.inflight < this.maxInflight) {
        const rows = this.store.pendingCrossings(this.maxInflight - this.inflight, this.lastSubmitted);
        if (rows.length === 0) break;
        for (const row of rows) {
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
