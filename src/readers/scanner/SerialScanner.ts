/**
 * A 2D scanner in serial mode (USB CDC ACM, `reader.scanner.path`): its lines
 * come in over a ByteTransport and go out as scans (a QR code's text) or
 * refusals (another symbology, no AIM identifier). Keyboard-wedge mode is not
 * supported on purpose: it loses characters with the host's keyboard layout.
 */
import { ScanLineDecoder, type ScanEvent } from '../../codecs/scanLine.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { silentLogger, type Logger } from '../../util/logger.js';

export interface Scan {
  readonly text: string;
  readonly symbology: string;
  /** Clock ms when the line's last byte arrived */
  readonly at: number;
}

export class SerialScanner {
  private readonly decoder = new ScanLineDecoder();
  private readonly scanListeners = new Set<(scan: Scan) => void>();
  private readonly refusalListeners = new Set<(event: Extract<ScanEvent, { type: 'refused' }>) => void>();
  private readonly unsubscribe: () => void;
  private readonly log: Logger;

  constructor(
    private readonly transport: ByteTransport,
    options: { log?: Logger; now?: () => number } = {},
  ) {
    this.log = (options.log ?? silentLogger).child({ ns: 'scanner' });
    const now = options.now ?? (() => performance.now());
    this.unsubscribe = transport.onData((bytes) => {
      const at = now();
      for (const event of this.decoder.push(bytes)) {
        if (event.type === 'scan') for (const l of this.scanListeners) l({ text: event.text, symbology: event.symbology, at });
        else if (event.type === 'refused') {
          this.log.info({ event: 'scan-refused', code: event.code, symbology: event.symbology ?? '(none)' }, 'scanner sent a code that is not a QR code');
          for (const l of this.refusalListeners) l(event);
        } else this.log.warn({ event: 'scan-discarded', bytes: event.bytes, reason: event.reason }, 'scanner line discarded');
      }
    });
    transport.onClose((err) => this.log.warn({ err: err?.message }, 'scanner line closed'));
  }

  get name(): string {
    return this.transport.name;
  }

  onScan(listener: (scan: Scan) => void): () => void {
    this.scanListeners.add(listener);
    return () => this.scanListeners.delete(listener);
  }

  onRefused(listener: (event: Extract<ScanEvent, { type: 'refused' }>) => void): () => void {
    this.refusalListeners.add(listener);
    return () => this.refusalListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.transport.close().catch(() => undefined);
  }
}
