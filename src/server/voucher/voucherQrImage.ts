/**
 * A voucher's QR text (voucher-format.md §5) as an image, with the `qrcode` package: alphanumeric mode (the
 * TV1: prefix and Base45 use only its 45 characters), error correction level Q. PNG for files and the CLI,
 * SVG for the wallet page (no image request, no inline script: it fits the console's CSP).
 */
import QRCode from 'qrcode';

const SEGMENTS = (text: string): QRCode.QRCodeSegment[] => [{ data: text, mode: 'alphanumeric' }];

export function voucherQrPng(text: string, options: { scale?: number } = {}): Promise<Buffer> {
  return QRCode.toBuffer(SEGMENTS(text), { type: 'png', errorCorrectionLevel: 'Q', margin: 4, scale: options.scale ?? 6 });
}

export function voucherQrSvg(text: string): Promise<string> {
  return QRCode.toString(SEGMENTS(text), { type: 'svg', errorCorrectionLevel: 'Q', margin: 4 });
}
