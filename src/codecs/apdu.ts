/**
 * ISO 7816-4 command and response APDUs, short form only (Lc <= 255, Le <= 256),
 * which is what every contact reader and our serial firmware carry. Pure.
 */
import { CodecError } from '../errors.js';
import { concatBytes } from './bytes.js';

export interface CommandApdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data?: Uint8Array;
  /** Expected response length; 256 is coded as 0x00. Absent: no Le byte. */
  readonly le?: number;
}

export interface ResponseApdu {
  readonly data: Uint8Array;
  readonly sw: number;
}

export class ApduError extends CodecError {
  override readonly name: string = 'ApduError';
  constructor(detail: string, path = '') {
    super('MALFORMED_APDU', detail, path);
  }
}

export const MAX_SHORT_LC = 255;
export const MAX_SHORT_LE = 256;

export function encodeCommandApdu(cmd: CommandApdu): Uint8Array {
  for (const [name, value] of [['cla', cmd.cla], ['ins', cmd.ins], ['p1', cmd.p1], ['p2', cmd.p2]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new ApduError(`${name} out of range`);
  }
  const header = Uint8Array.of(cmd.cla, cmd.ins, cmd.p1, cmd.p2);
  const parts: Uint8Array[] = [header];
  if (cmd.data && cmd.data.length > 0) {
    if (cmd.data.length > MAX_SHORT_LC) throw new ApduError(`data too long for a short APDU: ${cmd.data.length}`);
    parts.push(Uint8Array.of(cmd.data.length), cmd.data);
  }
  if (cmd.le !== undefined) {
    if (!Number.isInteger(cmd.le) || cmd.le < 1 || cmd.le > MAX_SHORT_LE) throw new ApduError(`le out of range: ${cmd.le}`);
    parts.push(Uint8Array.of(cmd.le === 256 ? 0 : cmd.le));
  }
  return concatBytes(parts);
}

/** Parses the four short-APDU cases of ISO 7816-3 12.1.3 */
export function parseCommandApdu(bytes: Uint8Array): CommandApdu {
  if (bytes.length < 4) throw new ApduError(`APDU shorter than its header: ${bytes.length} bytes`);
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  if (bytes.length === 4) return { cla, ins, p1, p2 };
  const b5 = bytes[4]!;
  if (bytes.length === 5) return { cla, ins, p1, p2, le: b5 === 0 ? 256 : b5 };
  if (b5 === 0) throw new ApduError('extended APDUs are not supported');
  if (bytes.length === 5 + b5) return { cla, ins, p1, p2, data: bytes.subarray(5, 5 + b5) };
  if (bytes.length === 6 + b5) {
    const le = bytes[5 + b5]!;
    return { cla, ins, p1, p2, data: bytes.subarray(5, 5 + b5), le: le === 0 ? 256 : le };
  }
  throw new ApduError(`APDU length ${bytes.length} does not match Lc ${b5}`);
}

export function encodeResponseApdu(res: ResponseApdu): Uint8Array {
  if (res.data.length > MAX_SHORT_LE) throw new ApduError(`response data too long: ${res.data.length}`);
  return concatBytes([res.data, Uint8Array.of((res.sw >>> 8) & 0xff, res.sw & 0xff)]);
}

export function parseResponseApdu(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new ApduError(`response shorter than a status word: ${bytes.length} bytes`);
  if (bytes.length > MAX_SHORT_LE + 2) throw new ApduError(`response too long: ${bytes.length} bytes`);
  const sw = (bytes[bytes.length - 2]! << 8) | bytes[bytes.length - 1]!;
  return { data: bytes.subarray(0, bytes.length - 2), sw };
}
