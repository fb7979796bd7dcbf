/**
 * Tag-length-value coding used by every record on a card and in the ledger.
 * One-byte tags; BER-style lengths (< 0x80 in one byte, 0x81 nn, 0x82 nnnn).
 * Decoding is strict: truncated or overlong input is an error, never a guess.
 * Pure.
 */
import { CodecError } from '../errors.js';
import { concatBytes } from './bytes.js';

export interface TlvItem {
  readonly tag: number;
  readonly value: Uint8Array;
}

export class TlvError extends CodecError {
  override readonly name: string = 'TlvError';
  constructor(detail: string, path = '') {
    super('BAD_TLV', detail, path);
  }
}

export const MAX_TLV_LENGTH = 0xffff;

export function encodeLength(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > MAX_TLV_LENGTH) throw new TlvError(`length out of range: ${length}`);
  if (length < 0x80) return Uint8Array.of(length);
  if (length <= 0xff) return Uint8Array.of(0x81, length);
  return Uint8Array.of(0x82, length >>> 8, length & 0xff);
}

export function encodeTlv(tag: number, value: Uint8Array): Uint8Array {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff) throw new TlvError(`tag out of range: ${tag}`);
  return concatBytes([Uint8Array.of(tag), encodeLength(value.length), value]);
}

export function encodeTlvs(items: readonly TlvItem[]): Uint8Array {
  return concatBytes(items.map((item) => encodeTlv(item.tag, item.value)));
}

/** Decodes a whole buffer as a sequence of TLVs; throws TlvError on any malformation */
export function decodeTlvs(bytes: Uint8Array): TlvItem[] {
  const items: TlvItem[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const tag = bytes[offset]!;
    offset += 1;
    if (offset >= bytes.length) throw new TlvError(`truncated length after tag 0x${tag.toString(16)}`);
    let length = bytes[offset]!;
    offset += 1;
    if (length === 0x81) {
      if (offset + 1 > bytes.length) throw new TlvError('truncated long length');
      length = bytes[offset]!;
      if (length < 0x80) throw new TlvError('non-minimal length');
      offset += 1;
    } else if (length === 0x82) {
      if (offset + 2 > bytes.length) throw new TlvError('truncated long length');
      length = (bytes[offset]! << 8) | bytes[offset + 1]!;
      if (length <= 0xff) throw new TlvError('non-minimal length');
      offset += 2;
    } else if (length >= 0x80) {
      throw new TlvError(`unsupported length form 0x${length.toString(16)}`);
    }
    if (offset + length > bytes.length) throw new TlvError(`value of tag 0x${tag.toString(16)} truncated`);
    items.push({ tag, value: bytes.subarray(offset, offset + length) });
    offset += length;
  }
  return items;
}
