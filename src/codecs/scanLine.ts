/**
 * What a 2D scanner in serial mode (USB CDC ACM) sends for each code it reads:
 * the AIM symbology identifier (`]` + code character + modifier: `]Q1` for a
 * QR code, model 2), the decoded text, and CR (often CR LF). The decoder
 * splits the byte stream into lines and never throws: a line without an AIM
 * identifier or of another symbology comes out refused (SCAN_NOT_QR), an
 * overlong one is discarded, and it resyncs at the next line end. Pure.
 */
export const QR_AIM_PREFIX = ']Q1';
/** Longest line kept: a QR code holds at most 4,296 alphanumeric characters */
export const MAX_SCAN_LINE = 4400;

export type ScanEvent =
  | { readonly type: 'scan'; readonly symbology: string; readonly text: string }
  | { readonly type: 'refused'; readonly code: 'SCAN_NOT_QR'; readonly symbology: string | undefined; readonly line: string }
  | { readonly type: 'discarded'; readonly bytes: number; readonly reason: string };

export class ScanLineDecoder {
  private line: number[] = [];
  private overflow = 0;

  /** Feeds bytes from the scanner; returns the events of every line they complete */
  push(bytes: Uint8Array): ScanEvent[] {
    const events: ScanEvent[] = [];
    for (const b of bytes) {
      if (b === 0x0d || b === 0x0a) {
        if (this.overflow > 0) {
          events.push({ type: 'discarded', bytes: this.overflow + this.line.length, reason: `line longer than ${MAX_SCAN_LINE} bytes` });
        } else if (this.line.length > 0) {
          events.push(decodeLine(String.fromCharCode(...this.line)));
        }
        this.line = [];
        this.overflow = 0;
      } else if (this.line.length >= MAX_SCAN_LINE) {
        this.overflow++;
      } else {
        this.line.push(b);
      }
    }
    return events;
  }
}

function decodeLine(line: string): ScanEvent {
  const aim = /^\][A-Za-z][0-9A-Za-z]/.exec(line)?.[0];
  // Q: QR code; modifiers 0-6 (1 model 2, the phones' kind). Anything else is not a voucher.
  if (!aim || aim[1] !== 'Q') return { type: 'refused', code: 'SCAN_NOT_QR', symbology: aim, line: line.slice(0, 80) };
  return { type: 'scan', symbology: aim, text: line.slice(aim.length) };
}

/** The bytes a scanner sends for one code */
export function encodeScanLine(text: string, aim = QR_AIM_PREFIX): Uint8Array {
  return Uint8Array.from(Buffer.from(`${aim}${text}\r\n`, 'latin1'));
}
