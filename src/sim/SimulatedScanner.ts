/**
 * A 2D scanner in serial mode, simulated: what `tally sim scanner` runs on one
 * end of a socat pty pair. Each code goes out as a real scanner sends it, AIM
 * identifier, text, CR LF; `splitWrites` sends it in small pieces (a USB
 * scanner's packets), `symbology` another identifier (a barcode).
 */
import { encodeScanLine, QR_AIM_PREFIX } from '../codecs/scanLine.js';
import type { ByteTransport } from '../transports/ByteTransport.js';

export class SimulatedScanner {
  splitWrites = false;
  scans = 0;

  constructor(private readonly transport: ByteTransport) {}

  /** Sends one code; resolves when its last byte is written */
  async scan(text: string, options: { symbology?: string | null } = {}): Promise<void> {
    const line = options.symbology === null ? Uint8Array.from(Buffer.from(`${text}\r\n`, 'latin1')) : encodeScanLine(text, options.symbology ?? QR_AIM_PREFIX);
    if (!this.splitWrites) {
      await this.transport.write(line);
    } else {
      for (let i = 0; i < line.length; i += 64) await this.transport.write(line.subarray(i, i + 64));
    }
    this.scans++;
  }
}
