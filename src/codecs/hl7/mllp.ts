/**
 * MLLP (HL7's Minimal Lower Layer Protocol): a frame is 0x0B, the message, then
 * 0x1C 0x0D. The decoder is a push parser: bytes in, frames and faults out,
 * bounded memory whatever arrives (a frame past maxFrameBytes is dropped as it
 * streams, never buffered whole). Pure.
 */
export const MLLP_START = 0x0b;
export const MLLP_END = 0x1c;
export const MLLP_CR = 0x0d;

export type MllpEvent =
  | { readonly kind: 'frame'; readonly payload: Uint8Array }
  /** Bytes between frames (not starting with 0x0B): skipped up to the next start byte */
  | { readonly kind: 'garbage'; readonly bytes: number }
  /** A frame longer than the limit: dropped; `bytes` is how much of it was seen */
  | { readonly kind: 'oversized'; readonly bytes: number };

export function encodeMllp(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 3);
  out[0] = MLLP_START;
  out.set(payload, 1);
  out[payload.length + 1] = MLLP_END;
  out[payload.length + 2] = MLLP_CR;
  return out;
}

export class MllpDecoder {
  private state: 'between' | 'inside' | 'skipping' = 'between';
  private chunks: Uint8Array[] = [];
  private length = 0;
  private garbage = 0;
  /** A 0x1C seen as the last byte of the previous chunk */
  private pendingEnd = false;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes held for an unfinished frame (bounded by maxFrameBytes) */
  get buffered(): number {
    return this.length;
  }

  push(data: Uint8Array): MllpEvent[] {
    const events: MllpEvent[] = [];
    let i = 0;
    while (i < data.length) {
      if (this.state === 'between') {
        const start = data.indexOf(MLLP_START, i);
        if (start < 0) {
          this.garbage += data.length - i;
          break;
        }
        this.garbage += start - i;
        if (this.garbage > 0) events.push({ kind: 'garbage', bytes: this.garbage });
        this.garbage = 0;
        this.state = 'inside';
        this.chunks = [];
        this.length = 0;
        this.pendingEnd = false;
        i = start + 1;
        continue;
      }
      // inside or skipping: look for 0x1C 0x0D
      if (this.pendingEnd) {
        this.pendingEnd = false;
        if (data[i] === MLLP_CR) {
          this.finish(events);
          i += 1;
          continue;
        }
        this.append(Uint8Array.of(MLLP_END));
      }
      let end = data.indexOf(MLLP_END, i);
      while (end >= 0 && end + 1 < data.length && data[end + 1] !== MLLP_CR) end = data.indexOf(MLLP_END, end + 1);
      if (end < 0) {
        this.append(data.subarray(i));
        break;
      }
      this.append(data.subarray(i, end));
      if (end + 1 >= data.length) {
        this.pendingEnd = true;
        break;
      }
      this.finish(events);
      i = end + 2;
    }
    return events;
  }

  /** Garbage seen since the last frame that no start byte has closed yet */
  flushGarbage(): { readonly kind: 'garbage'; readonly bytes: number }[] {
    if (this.garbage === 0) return [];
    const bytes = this.garbage;
    this.garbage = 0;
    return [{ kind: 'garbage', bytes }];
  }

  private append(part: Uint8Array): void {
    if (part.length === 0) return;
    this.length += part.length;
    if (this.state === 'skipping') return;
    if (this.length > this.maxFrameBytes) {
      this.state = 'skipping';
      this.chunks = [];
      return;
    }
    this.chunks.push(part.slice());
  }

  private finish(events: MllpEvent[]): void {
    if (this.state === 'skipping') {
      events.push({ kind: 'oversized', bytes: this.length });
    } else {
      const payload = new Uint8Array(this.length);
      let offset = 0;
      for (const chunk of this.chunks) {
        payload.set(chunk, offset);
        offset += chunk.length;
      }
      events.push({ kind: 'frame', payload });
    }
    this.state = 'between';
    this.chunks = [];
    this.length = 0;
  }
}
