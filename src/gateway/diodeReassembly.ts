/**
 * The diode receiver's reassembly of messages sent in fragments
 * (firmware-protocol/gateway-diode.md, "Fragments"): fragments are kept by
 * (gateway id, kind, seq) and index, in whatever order they come; a copy of a
 * fragment already held is dropped; a message is handed on only whole, its
 * body checked against the digest every fragment carries. A message still
 * missing fragments when none of its fragments came for timeoutMs is given
 * up and reported with the indexes missing (GW_DIODE_INCOMPLETE); nothing of
 * it is delivered. A fragment that contradicts the others of its message
 * (count, length, digest, or other bytes at the same index) is reported
 * (GW_DIODE_FRAGMENT) and dropped.
 */
import { parseDiodeMessageBody, type DiodeFragment, type DiodeFrame, type DiodeKind, type Sha256 } from '../codecs/gateway/diodeFrame.js';

export type ReassemblyEvent =
  | { readonly kind: 'message'; readonly frame: DiodeFrame; readonly fragments: number }
  | { readonly kind: 'incomplete'; readonly gatewayId: string; readonly messageKind: DiodeKind; readonly seq: number; readonly count: number; readonly missing: readonly number[]; readonly why: 'timeout' | 'buffer full' }
  | { readonly kind: 'mismatch'; readonly gatewayId: string; readonly messageKind: DiodeKind; readonly seq: number; readonly reason: string; readonly datagram: Uint8Array };

interface Pending {
  readonly fragment: DiodeFragment;
  readonly parts: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  lastAt: number;
}

export interface ReassemblyOptions {
  readonly sha256: Sha256;
  readonly now: () => number;
  /** A message none of whose fragments came for this long is given up (default 2,000 ms) */
  readonly timeoutMs?: number;
  /** Bytes held for incomplete messages at most; past it the oldest are given up (default 64 MiB) */
  readonly maxPendingBytes?: number;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export class DiodeReassembler {
  private readonly pending = new Map<string, Pending>();
  /** Messages handed on or given up, kept for a while so that late copies of their fragments are dropped, not started anew */
  private readonly done = new Map<string, { digest: Uint8Array; until: number }>();
  private pendingBytes = 0;
  readonly counts = { fragments: 0, duplicateFragments: 0, lateFragments: 0, messages: 0, incomplete: 0, mismatched: 0 };
  private readonly timeoutMs: number;
  private readonly maxPendingBytes: number;

  constructor(private readonly options: ReassemblyOptions) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.maxPendingBytes = options.maxPendingBytes ?? 64 * 1024 * 1024;
  }

  get pendingMessages(): number {
    return this.pending.size;
  }

  push(f: DiodeFragment, datagram: Uint8Array): ReassemblyEvent[] {
    this.counts.fragments += 1;
    const key = `${f.gatewayId}|${f.kind}|${f.seq}`;
    const now = this.options.now();
    const done = this.done.get(key);
    if (done) {
      if (sameBytes(done.digest, f.digest)) {
        this.counts.lateFragments += 1;
        return [];
      }
      return [this.mismatch(f, datagram, 'digest differs from the message already taken under this seq')];
    }
    let p = this.pending.get(key);
    if (!p) {
      p = { fragment: f, parts: new Array<Uint8Array | undefined>(f.count), received: 0, bytes: 0, lastAt: now };
      this.pending.set(key, p);
    }
    const first = p.fragment;
    if (first.count !== f.count || first.messageLength !== f.messageLength || !sameBytes(first.digest, f.digest)) {
      return [this.mismatch(f, datagram, `count, length or digest differs from the message's first fragment (${first.count} fragments, ${first.messageLength} bytes)`)];
    }
    const held = p.parts[f.index];
    if (held) {
      if (sameBytes(held, f.data)) {
        this.counts.duplicateFragments += 1;
        return [];
      }
      return [this.mismatch(f, datagram, `other bytes at fragment ${f.index}`)];
    }
    p.parts[f.index] = f.data;
    p.received += 1;
    p.bytes += f.data.length;
    p.lastAt = now;
    this.pendingBytes += f.data.length;
    const events: ReassemblyEvent[] = [];
    if (p.received === f.count) {
      this.forget(key, p, now);
      events.push(this.complete(p));
    }
    while (this.pendingBytes > this.maxPendingBytes && this.pending.size > 0) {
      const [oldestKey, oldest] = this.pending.entries().next().value as [string, Pending];
      this.forget(oldestKey, oldest, now);
      events.push(this.incomplete(oldest, 'buffer full'));
    }
    return events;
  }

  /** Gives up messages none of whose fragments came for timeoutMs */
  expire(): ReassemblyEvent[] {
    const now = this.options.now();
    const events: ReassemblyEvent[] = [];
    for (const [key, p] of this.pending) {
      if (now - p.lastAt < this.timeoutMs) continue;
      this.forget(key, p, now);
      events.push(this.incomplete(p, 'timeout'));
    }
    for (const [key, d] of this.done) if (d.until <= now) this.done.delete(key);
    return events;
  }

  private forget(key: string, p: Pending, now: number): void {
    this.pending.delete(key);
    this.pendingBytes -= p.bytes;
    this.done.set(key, { digest: p.fragment.digest, until: now + 4 * this.timeoutMs });
  }

  private complete(p: Pending): ReassemblyEvent {
    const f = p.fragment;
    const parts = p.parts as Uint8Array[];
    const size = parts[0]!.length;
    const problem =
      p.bytes !== f.messageLength
        ? `fragments hold ${p.bytes} bytes, the message ${f.messageLength}`
        : parts.slice(0, -1).some((x) => x.length !== size)
          ? 'fragments before the last differ in length'
          : undefined;
    const body = new Uint8Array(p.bytes);
    let o = 0;
    for (const x of parts) {
      body.set(x, o);
      o += x.length;
    }
    const why = problem ?? (sameBytes(this.options.sha256(body).subarray(0, 8), f.digest) ? undefined : 'reassembled message does not match its digest');
    if (why) {
      this.counts.mismatched += 1;
      return { kind: 'mismatch', gatewayId: f.gatewayId, messageKind: f.kind, seq: f.seq, reason: why, datagram: body.subarray(0, 256) };
    }
    let message;
    try {
      message = parseDiodeMessageBody(body);
    } catch (err) {
      this.counts.mismatched += 1;
      return { kind: 'mismatch', gatewayId: f.gatewayId, messageKind: f.kind, seq: f.seq, reason: (err as Error).message, datagram: body.subarray(0, 256) };
    }
    this.counts.messages += 1;
    return { kind: 'message', frame: { kind: f.kind, gatewayId: f.gatewayId, seq: f.seq, topic: message.topic, payload: message.payload }, fragments: f.count };
  }

  private incomplete(p: Pending, why: 'timeout' | 'buffer full'): ReassemblyEvent {
    this.counts.incomplete += 1;
    const f = p.fragment;
    const missing: number[] = [];
    for (let i = 0; i < p.parts.length; i++) if (!p.parts[i]) missing.push(i);
    return { kind: 'incomplete', gatewayId: f.gatewayId, messageKind: f.kind, seq: f.seq, count: f.count, missing, why };
  }

  private mismatch(f: DiodeFragment, datagram: Uint8Array, reason: string): ReassemblyEvent {
    this.counts.mismatched += 1;
    return { kind: 'mismatch', gatewayId: f.gatewayId, messageKind: f.kind, seq: f.seq, reason, datagram: datagram.subarray(0, 256) };
  }
}
