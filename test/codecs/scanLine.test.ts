import { describe, expect, it } from 'vitest';
import { encodeScanLine, MAX_SCAN_LINE, ScanLineDecoder } from '../../src/codecs/scanLine.js';

const bytes = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));

describe('scanner lines (AIM identifier, text, CR LF)', () => {
  it('splits lines at CR, LF or CR LF, keeps spaces, and takes lines cut into pieces', () => {
    const d = new ScanLineDecoder();
    const line = encodeScanLine('TV1:AB  C$%');
    expect(d.push(line.subarray(0, 5))).toEqual([]);
    expect(d.push(line.subarray(5))).toEqual([{ type: 'scan', symbology: ']Q1', text: 'TV1:AB  C$%' }]);
    expect(d.push(bytes(']Q1one\r]Q1two\n\n'))).toEqual([
      { type: 'scan', symbology: ']Q1', text: 'one' },
      { type: 'scan', symbology: ']Q1', text: 'two' },
    ]);
  });

  it('refuses another symbology and a line without an identifier; discards an overlong line and resyncs', () => {
    const d = new ScanLineDecoder();
    expect(d.push(bytes(']C04006381333931\r\n'))).toEqual([{ type: 'refused', code: 'SCAN_NOT_QR', symbology: ']C0', line: ']C04006381333931' }]);
    expect(d.push(bytes('TV1:ABC\r\n'))).toMatchObject([{ type: 'refused', code: 'SCAN_NOT_QR', symbology: undefined }]);
    expect(d.push(new Uint8Array(MAX_SCAN_LINE + 10).fill(0x41))).toEqual([]);
    expect(d.push(bytes('\r\n]Q1ok\r\n'))).toEqual([
      { type: 'discarded', bytes: MAX_SCAN_LINE + 10, reason: `line longer than ${MAX_SCAN_LINE} bytes` },
      { type: 'scan', symbology: ']Q1', text: 'ok' },
    ]);
  });
});
