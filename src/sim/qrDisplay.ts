/**
 * What the simulated board's display shows for DISPLAY_QR (serial-protocol.md §6, panel): the symbol rendered
 * from the text the host sent, as a real board's firmware would, and the same as an RGBA image (a quiet zone of
 * four modules, `scale` pixels a module) for a camera-side decoder such as jsQR.
 */
import QRCode from 'qrcode';
import { QrEcc, type DisplayQrBody } from '../codecs/firmware/panel.js';

export interface QrShown {
  readonly text: string;
  readonly ecc: DisplayQrBody['ecc'];
  readonly caption: readonly string[];
  /** Modules per side */
  readonly size: number;
  /** size * size, 1 = dark, row by row */
  readonly modules: Uint8Array;
}

const LEVEL = { [QrEcc.L]: 'L', [QrEcc.M]: 'M', [QrEcc.Q]: 'Q', [QrEcc.H]: 'H' } as const;

export function renderQr(body: DisplayQrBody): QrShown {
  const symbol = QRCode.create(body.text, { errorCorrectionLevel: LEVEL[body.ecc] });
  return { text: body.text, ecc: body.ecc, caption: [...body.caption], size: symbol.modules.size, modules: Uint8Array.from(symbol.modules.data) };
}

/** The symbol as an RGBA bitmap: what the display's pixels hold */
export function qrImage(shown: QrShown, scale = 4): { width: number; height: number; data: Uint8ClampedArray } {
  const quiet = 4;
  const side = (shown.size + 2 * quiet) * scale;
  const data = new Uint8ClampedArray(side * side * 4).fill(255);
  for (let y = 0; y < shown.size; y++) {
    for (let x = 0; x < shown.size; x++) {
      if (!shown.modules[y * shown.size + x]) continue;
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const i = (((y + quiet) * scale + dy) * side + (x + quiet) * scale + dx) * 4;
          data[i] = data[i + 1] = data[i + 2] = 0;
        }
      }
    }
  }
  return { width: side, height: side, data };
}

/** The symbol as text (two characters a module) for a log or a console without a display */
export function qrText(shown: QrShown): string {
  const rows: string[] = [];
  for (let y = -1; y <= shown.size; y++) {
    let row = '';
    for (let x = -1; x <= shown.size; x++) row += y >= 0 && y < shown.size && x >= 0 && x < shown.size && shown.modules[y * shown.size + x] ? '██' : '  ';
    rows.push(row);
  }
  return rows.join('\n');
}
