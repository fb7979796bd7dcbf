/**
 * The daemon's frame parser as a stream: bytes in, checked frames out
 * (object mode). It never throws and never errors the stream: junk comes out
 * as 'discarded' events and parsing resumes at the next start byte.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { FrameDecoder, type DecodeResult, type DiscardReason, type Frame } from '../../codecs/firmware/frame.js';

export interface ParsedFrame {
  readonly frame: Frame;
  /** The frame's bytes as received, for traces */
  readonly raw: Uint8Array;
}

export interface DiscardedBytes {
  readonly bytes: Uint8Array;
  readonly reason: DiscardReason;
  readonly header?: { readonly seq: number; readonly command: number };
}

export class FrameParser extends Transform {
  private readonly decoder = new FrameDecoder();
  framesOut = 0;
  bytesDiscarded = 0;

  constructor() {
    super({ readableObjectMode: true, writableObjectMode: false });
  }

  /** Bytes of a partial frame waiting for the rest */
  get pending(): number {
    return this.decoder.pending;
  }

  override _transform(chunk: Buffer | Uint8Array, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.deliver(this.decoder.push(chunk));
    callback();
  }

  /** Gives up on a partial frame (call after an inter-byte timeout) */
  expire(): void {
    this.deliver(this.decoder.expire());
  }

  private deliver(results: DecodeResult[]): void {
    for (const result of results) {
      if (result.type === 'frame') {
        this.framesOut++;
        this.push({ frame: result.frame, raw: result.raw } satisfies ParsedFrame);
      } else {
        this.bytesDiscarded += result.bytes.length;
        const discarded: DiscardedBytes = result.header
          ? { bytes: result.bytes, reason: result.reason, header: result.header }
          : { bytes: result.bytes, reason: result.reason };
        // a listener's fault must not break parsing
        try {
          this.emit('discarded', discarded);
        } catch {
          /* ignored on purpose */
        }
      }
    }
  }
}
