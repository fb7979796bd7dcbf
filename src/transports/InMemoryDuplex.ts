/**
 * Two connected in-memory transports: bytes written on one arrive at the other
 * on a later macrotask, as they would from a port. For the demo and in-process
 * tests; no socat needed.
 */
import { TallyError } from '../errors.js';
import { type ByteTransport, TransportListeners } from './ByteTransport.js';

class InMemoryEnd implements ByteTransport {
  readonly listeners = new TransportListeners();
  peer: InMemoryEnd | undefined;
  private open = true;

  constructor(readonly name: string) {}

  get isOpen(): boolean {
    return this.open;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.open) throw new TallyError('TRANSPORT_CLOSED', `${this.name}: transport closed`);
    const peer = this.peer;
    const copy = bytes.slice();
    setImmediate(() => {
      if (peer?.open) peer.listeners.emitData(copy);
    });
  }

  onData(listener: (bytes: Uint8Array) => void): () => void {
    return this.listeners.onData(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    return this.listeners.onClose(listener);
  }

  async close(): Promise<void> {
    this.shut();
    // like a cable pulled: the other end sees it too
    this.peer?.shut(new Error('peer closed'));
  }

  shut(error?: Error): void {
    if (!this.open) return;
    this.open = false;
    setImmediate(() => this.listeners.emitClose(error));
  }
}

export interface InMemoryPair {
  readonly a: ByteTransport;
  readonly b: ByteTransport;
}

export function createInMemoryPair(names: { a?: string; b?: string } = {}): InMemoryPair {
  const a = new InMemoryEnd(names.a ?? 'memory-a');
  const b = new InMemoryEnd(names.b ?? 'memory-b');
  a.peer = b;
  b.peer = a;
  return { a, b };
}
