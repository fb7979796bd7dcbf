/**
 * An MLLP client: HL7 messages out, their ACKs back in order. Several may be
 * in flight on one connection (the gateway answers in order). Each waits at
 * most timeoutMs for its ACK.
 */
import { connect, type Socket } from 'node:net';
import { encodeMllp, MllpDecoder } from '../../codecs/hl7/mllp.js';

interface Waiter {
  resolve(ack: Uint8Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class MllpClient {
  private readonly waiters: Waiter[] = [];
  private readonly decoder = new MllpDecoder(1_048_576);
  private closedError?: Error;

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (data: Buffer) => {
      for (const event of this.decoder.push(data)) {
        if (event.kind !== 'frame') continue;
        const waiter = this.waiters.shift();
        if (!waiter) continue;
        clearTimeout(waiter.timer);
        waiter.resolve(event.payload);
      }
    });
    const fail = (err: Error): void => {
      this.closedError = err;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    };
    socket.on('error', (err) => fail(err));
    socket.on('close', () => fail(new Error('MLLP connection closed')));
  }

  static connect(host: string, port: number, options: { timeoutMs?: number; connectTimeoutMs?: number } = {}): Promise<MllpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`MLLP connect to ${host}:${port} timed out`));
      }, options.connectTimeoutMs ?? 5_000);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', reject);
        resolve(new MllpClient(socket, options.timeoutMs ?? 10_000));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get inFlight(): number {
    return this.waiters.length;
  }

  /** Sends one message framed; resolves with its ACK's payload */
  async send(message: Uint8Array): Promise<Uint8Array> {
    const [ack] = await this.sendRaw(encodeMllp(message), 1);
    return ack!;
  }

  /** Sends bytes as they are (a hostile client's framing) and waits for this many answers */
  sendRaw(bytes: Uint8Array, answers: number): Promise<Uint8Array[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const waits: Promise<Uint8Array>[] = [];
    for (let n = 0; n < answers; n++) {
      waits.push(
        new Promise<Uint8Array>((resolve, reject) => {
          const waiter: Waiter = {
            resolve,
            reject,
            timer: setTimeout(() => {
              const i = this.waiters.indexOf(waiter);
              if (i >= 0) this.waiters.splice(i, 1);
              reject(new Error(`no ACK within ${this.timeoutMs} ms`));
            }, this.timeoutMs),
          };
          this.waiters.push(waiter);
        }),
      );
    }
    this.socket.write(bytes);
    return Promise.all(waits);
  }

  close(): void {
    this.socket.destroy();
  }
}
