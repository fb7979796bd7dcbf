/**
 * mqtt.js's outgoing Store kept in the gateway's SQLite database, so QoS 2
 * publishes in flight survive a kill: after a restart mqtt.js sends them
 * again with their packet ids (DUP), and the broker, which kept the session
 * (clean: false), drops those it already has. Writes are group-committed by
 * the store thread (StoreThread.ts): a packet goes on the wire only after the
 * transaction that holds it (and that takes its crossing out of the outbox)
 * has committed. Reads use the read connection, which sees those commits.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { PacketOp } from './storeCommit.js';
import type { CommitParticipant, CommitParts, StoreThread } from './StoreThread.js';

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

export class SqliteMqttStore {
  private ops: PacketOp[] = [];
  private callbacks: ((err?: Error) => void)[] = [];
  private joined = false;
  /** payload digest -> gateway seq of the crossing it carries */
  private readonly crossings = new Map<string, number>();
  private closed = false;

  constructor(private readonly thread: StoreThread) {}

  /** The next publish with this payload carries this crossing: its put removes it from the outbox */
  expectCrossing(payload: Uint8Array, gatewaySeq: number): void {
    this.crossings.set(payloadDigest(payload), gatewaySeq);
  }

  put(packet: StoredPacket, cb: (err?: Error) => void): this {
    let crossingSeq: number | undefined;
    if (packet.cmd === 'publish' && packet.payload !== undefined) {
      const digest = payloadDigest(packet.payload as Uint8Array);
      crossingSeq = this.crossings.get(digest);
      if (crossingSeq !== undefined) this.crossings.delete(digest);
    }
    this.ops.push({ kind: 'put', messageId: packet.messageId ?? 0, packet: serialize(packet), ...(crossingSeq !== undefined ? { crossingSeq } : {}) });
    this.callbacks.push(cb);
    this.join();
    return this;
  }

  get(packet: { messageId?: number }, cb: (err?: Error, packet?: StoredPacket) => void): this {
    const found = packet.messageId === undefined ? undefined : this.thread.reader.packet(packet.messageId);
    if (found) cb(undefined, deserialize(found));
    else cb(new Error('missing packet'));
    return this;
  }

  del(packet: { messageId?: number }, cb: (err?: Error, packet?: StoredPacket) => void): this {
    if (packet.messageId !== undefined) {
      this.ops.push({ kind: 'del', messageId: packet.messageId });
      this.join();
    }
    cb(undefined, packet as StoredPacket);
    return this;
  }

  /** The stored packets, once every operation queued before has committed */
  createStream(): Readable {
    const thread = this.thread;
    return Readable.from(
      (async function* () {
        await thread.idle();
        for (const p of thread.reader.packets()) yield deserialize(p);
      })(),
      { objectMode: true },
    );
  }

  close(cb: (err?: Error) => void): void {
    void this.thread.idle().then(() => {
      this.closed = true;
      cb();
    });
  }

  private join(): void {
    if (this.joined || this.closed) return;
    this.joined = true;
    this.thread.commitSoon(this.participant);
  }

  private writing: ((err?: Error) => void)[] = [];
  private readonly participant: CommitParticipant = {
    write: (parts: CommitParts): void => {
      this.joined = false;
      (parts.packets ??= []).push(...this.ops);
      this.writing = this.callbacks;
      this.ops = [];
      this.callbacks = [];
    },
    after: (reply, failure): void => {
      const callbacks = this.writing;
      this.writing = [];
      const fault = failure ?? (reply?.packets?.fault ? new Error(reply.packets.fault.message) : undefined);
      for (const cb of callbacks) cb(fault);
    },
  };
}
