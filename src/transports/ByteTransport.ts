/**
 * A transport moves bytes and knows nothing of what they mean. The serial
 * port, the in-memory pair and anything else a reader backend talks over
 * implement it.
 */
export interface ByteTransport {
  /** For logs: the device path or a label */
  readonly name: string;
  readonly isOpen: boolean;
  /** Rejects once the transport is closed */
  write(bytes: Uint8Array): Promise<void>;
  /** Returns a function that removes the listener */
  onData(listener: (bytes: Uint8Array) => void): () => void;
  /** Called once, when the transport closes for any reason (close(), unplug, peer gone) */
  onClose(listener: (error?: Error) => void): () => void;
  close(): Promise<void>;
}

/** Listener bookkeeping shared by the transports */
export class TransportListeners {
  private readonly data = new Set<(bytes: Uint8Array) => void>();
  private readonly close = new Set<(error?: Error) => void>();
  private closed = false;

  onData(listener: (bytes: Uint8Array) => void): () => void {
    this.data.add(listener);
    return () => this.data.delete(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    this.close.add(listener);
    return () => this.close.delete(listener);
  }

  emitData(bytes: Uint8Array): void {
    for (const listener of [...this.data]) listener(bytes);
  }

  /** Fires the close listeners once; later calls do nothing */
  emitClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of [...this.close]) listener(error);
  }
}
