/**
 * A simulated SMS network joining simulated modems by their numbers: an
 * SMS-SUBMIT from one becomes an SMS-DELIVER at the other (the originator and
 * the service centre time stamp set by the network), after a delay, and as a
 * real network may do, lost, delivered twice or out of order. Store and
 * forward: a message for a modem that is off or whose memory is full waits and
 * is offered again. Seeded, so a run can be repeated; timers are injected.
 */
import { encodeDeliverPdu, type SmsSubmit } from '../../codecs/sms/pdu.js';
import type { SchedulingClock } from '../../util/scheduler.js';

export interface NetworkFaults {
  /** Delivery delay in ms: base plus up to jitter (jitter also reorders) */
  delayMs: number;
  jitterMs: number;
  /** Probabilities 0..1 */
  loss: number;
  duplicate: number;
}

/** What the network needs of a modem: take a DELIVER PDU, or say it cannot now */
export interface SmsEndpoint {
  readonly number: string;
  /** False when the modem is off, has no network or its memory is full: the network tries again */
  accept(deliverPdu: string): boolean;
}

export interface NetworkStats {
  submitted: number;
  delivered: number;
  lost: number;
  duplicated: number;
  retried: number;
}

export const SIMULATED_SMSC = '+8613800200500';

/** mulberry32: a small seeded generator, enough to make faults repeatable */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class SimulatedSmsNetwork {
  readonly faults: NetworkFaults;
  readonly stats: NetworkStats = { submitted: 0, delivered: 0, lost: 0, duplicated: 0, retried: 0 };
  private readonly endpoints = new Map<string, SmsEndpoint>();
  private readonly random: () => number;
  private readonly listeners = new Set<(event: { from: string; to: string; at: number; pdu: string }) => void>();
  /** How long a message waits before it is offered again to a modem that refused it */
  retryMs = 30_000;

  constructor(
    private readonly clock: SchedulingClock,
    options: { seed?: number; faults?: Partial<NetworkFaults> } = {},
  ) {
    this.random = seededRandom(options.seed ?? 1);
    this.faults = { delayMs: 2000, jitterMs: 0, loss: 0, duplicate: 0, ...options.faults };
  }

  attach(endpoint: SmsEndpoint): () => void {
    this.endpoints.set(endpoint.number, endpoint);
    return () => {
      if (this.endpoints.get(endpoint.number) === endpoint) this.endpoints.delete(endpoint.number);
    };
  }

  /** Called once a message reaches a modem's memory */
  onDelivered(listener: (event: { from: string; to: string; at: number; pdu: string }) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A modem sent a message: the network takes it (the sender gets its +CMGS) and delivers it later */
  submit(from: string, submit: SmsSubmit): void {
    this.stats.submitted++;
    if (this.random() < this.faults.loss) {
      this.stats.lost++;
      return;
    }
    const copies = this.random() < this.faults.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = this.faults.delayMs + Math.floor(this.random() * (this.faults.jitterMs + 1));
      this.clock.setTimeout(() => this.offer(from, submit), delay, { unref: true });
    }
  }

  private offer(from: string, submit: SmsSubmit): void {
    const endpoint = this.endpoints.get(submit.destination);
    const header = submit.header ? encodeHeader(submit.header.elements) : undefined;
    const pdu = encodeDeliverPdu({
      originator: from,
      timestamp: Math.floor(this.clock.now() / 1000) * 1000,
      smsc: SIMULATED_SMSC,
      dataCoding: submit.dataCoding,
      ...(submit.alphabet === 'gsm7' ? { text: submit.text ?? '' } : { userData: submit.userData }),
      ...(header ? { header } : {}),
    }).hex;
    if (endpoint?.accept(pdu)) {
      this.stats.delivered++;
      for (const listener of [...this.listeners]) listener({ from, to: submit.destination, at: this.clock.now(), pdu });
      return;
    }
    this.stats.retried++;
    this.clock.setTimeout(() => this.offer(from, submit), this.retryMs, { unref: true });
  }
}

function encodeHeader(elements: readonly { iei: number; data: Uint8Array }[]): Uint8Array {
  const out: number[] = [];
  for (const e of elements) out.push(e.iei, e.data.length, ...e.data);
  return Uint8Array.from(out);
}
