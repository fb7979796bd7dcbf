/**
 * A ByteTransport on a serial device (a UART, a USB serial adapter or a pty), via `serialport`,
 * which is loaded at the first open: a daemon on another backend never holds it in memory.
 */
import type { SerialPort } from 'serialport';
import { type ByteTransport, TransportListeners } from './ByteTransport.js';

export interface SerialPortOptions {
  readonly baudRate?: number;
}

/** The protocol's line settings: 115200 8N1, no flow control */
export const DEFAULT_BAUD_RATE = 115200;

class SerialPortTransport implements ByteTransport {
  private readonly listeners = new TransportListeners();

  constructor(private readonly port: SerialPort) {
    port.on('data', (chunk: Buffer) => this.listeners.emitData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    port.on('close', (err?: Error | null) => this.listeners.emitClose(err ?? undefined));
    // an error on an open port (EIO when the device vanishes) is followed by close; make sure it is
    port.on('error', (err: Error) => {
      if (port.isOpen) port.close(() => this.listeners.emitClose(err));
      else this.listeners.emitClose(err);
    });
  }

  get name(): string {
    return this.port.path;
  }

  get isOpen(): boolean {
    return this.port.isOpen;
  }

  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.port.isOpen) {
        reject(new Error(`${this.port.path}: port closed`));
        return;
      }
      this.port.write(Buffer.from(bytes), (err) => (err ? reject(err) : resolve()));
    });
  }

  onData(listener: (bytes: Uint8Array) => void): () => void {
    return this.listeners.onData(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    return this.listeners.onClose(listener);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.port.isOpen) {
        this.listeners.emitClose();
        resolve();
        return;
      }
      this.port.close(() => {
        this.listeners.emitClose();
        resolve();
      });
    });
  }
}

/** Opens the device at path; rejects when it does not exist or cannot be opened */
export async function openSerialTransport(path: string, options: SerialPortOptions = {}): Promise<ByteTransport> {
  const { SerialPort } = await import('serialport');
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate: options.baudRate ?? DEFAULT_BAUD_RATE, autoOpen: false });
    port.open((err) => {
      if (err) reject(err);
      else resolve(new SerialPortTransport(port));
    });
  });
}
