/**
 * mqtt.js's outgoing Store kept in the gateway's SQLite database, so QoS 2
 * publishes in flight survive a kill: after a restart mqtt.js sends them
 * again with their packet ids (DUP), and the broker, which kept the session
 * (clean: false), drops those it already has. Writes are group-committed: a
 * packet goes on the wire only after the transaction that holds it (and that
 * takes its crossing out of the outbox) has committed.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { GatewayStore } from './GatewayStore.js';

interface StoredPacket {
  readonly cmd: string;
  readonly messageId?: number;
  readonly payload?: Buffer | Uint8Array | string;
  readonly [key: string]: unknown;
}

function serialize(packet: StoredPacket): string {
  const payload = packet.payload;
  const copy: Record<string, unknown> = { ...packet };
  if (payload !== undefined) copy.payload = Buffer.from(payload as Uint8Array).toString('base64');
  return JSON.stringify(copy);
}

function deserialize(text: string): StoredPacket {
  const raw = JSON.parse(text) as Record<string, unknown>;
  if (typeof raw.payload === 'string') raw.payload = Buffer.from(raw.payload, 'base64');
  return raw as StoredPacket;
}

export function payloadDigest(payload: Uint8Array | string): string {
  return createHash('sha1').update(typeof payload === 'string' ? Buffer.from(payload) : payload).digest('hex');
}

type Op = { kind: 'put'; packet: StoredPacket; cb: (err?: Error) => void } | { kind: 'del'; messageId: number };

export class SqliteMqttStore {
  private ops: Op[] = [];
  private scheduled = false;
  /** payload digest -> gateway seq of the crossing it carries */
  private readonly crossings = new Map<string, number>();
  private closed = false;

  constructor(private readonly store: GatewayStore) {}

  /** The next publish with this payload carries this crossing: its put removes it from the outbox */
  expectCrossing(payload: Uint8Array, gatewaySeq: number): void {
    this.crossings.set(payloadDigest(payload), gatewaySeq);
  }

  put(packet: StoredPacket, cb: (err?: Error) => void): this {
    this.ops.push({ kind: 'put', packet, cb });
    this.schedule();
    return this;
  }

  get(packet: { messageId?: number }, cb: (err?: Error, packet?: StoredPacket) => void): this {
    const found = packet.messageId === undefined ? undefined : this.store.packet(packet.messageId);
    if (found) cb(undefined, deserialize(found));
    else cb(new Error('missing packet'));
    return this;
  }

  del(packet: { messageId?: number }, cb: (err?: Error, packet?: StoredPacket) => void): this {
    if (packet.messageId !== undefined) {
      this.ops.push({ kind: 'del', messageId: packet.messageId });
      this.schedule();
    }
    cb(undefined, packet as StoredPacket);
    return this;
  }

  createStream(): Readable {
    this.flush();
    const packets = this.store.packets().map(deserialize);
    return Readable.from(packets, { objectMode: true });
  }

  close(cb: (err?: Error) => void): void {
    this.flush();
    this.closed = true;
    cb();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.store.commitSoon(this.participant);
  }

  private writing: Op[] = [];
  private writeFailure?: Error;
  private readonly participant = {
    write: (): void => {
      this.scheduled = false;
      this.writing = this.closed ? [] : this.ops;
      this.ops = [];
      this.writeFailure = undefined;
      try {
        this.writeOps(this.writing);
      } catch (err) {
        this.writeFailure = err as Error;
      }
    },
    after: (failure?: Error): void => {
      const ops = this.writing;
      this.writing = [];
      const err = failure ?? this.writeFailure;
      for (const op of ops) if (op.kind === 'put') op.cb(err);
    },
  };

  /** Every packet queued so far, committed now (in the group commit), then their callbacks */
  flush(): void {
    if (this.ops.length === 0 || this.closed) return;
    this.store.commitSoon(this.participant);
    this.store.commitNow();
  }

  /** The queued operations in one savepoint: a crossing leaves the outbox with its packet */
  private writeOps(ops: readonly Op[]): void {
    if (ops.length === 0) return;
    this.store.db.transaction(() => {
      for (const op of ops) {
        if (op.kind === 'del') {
          this.store.deletePacket(op.messageId);
          continue;
        }
        const { packet } = op;
        let crossingSeq: number | undefined;
        if (packet.cmd === 'publish' && packet.payload !== undefined) {
          const digest = payloadDigest(packet.payload as Uint8Array);
          crossingSeq = this.crossings.get(digest);
          if (crossingSeq !== undefined) this.crossings.delete(digest);
        }
        this.store.storePacket(packet.messageId ?? 0, serialize(packet), crossingSeq);
      }
    })();
  }
}
