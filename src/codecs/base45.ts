/**
 * Base45 (RFC 9285): bytes as the 45 characters of a QR code's alphanumeric
 * mode (0-9 A-Z space $ % * + - . / :), 3 characters per 2 bytes, so a QR
 * code holds about 40% more than Base64 in byte mode would. Strict: a
 * character outside the alphabet, a dangling single character or a triple
 * above 65535 is refused. Pure.
 */
import { CodecError } from '../errors.js';

export const BASE45_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
const VALUE = new Map([...BASE45_ALPHABET].map((c, i) => [c, i]));

export function encodeBase45(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i]! * 256 + bytes[i + 1]!;
    const c = n % 45;
    n = (n - c) / 45;
    const d = n % 45;
    const e = (n - d) / 45;
    out += BASE45_ALPHABET[c]! + BASE45_ALPHABET[d]! + BASE45_ALPHABET[e]!;
  }
  if (bytes.length % 2 === 1) {
    const n = bytes[bytes.length - 1]!;
    out += BASE45_ALPHABET[n % 45]! + BASE45_ALPHABET[Math.floor(n / 45)]!;
  }
  return out;
}

export function decodeBase45(text: string, code: 'VOUCHER_MALFORMED' | 'TRUST_LIST_INVALID' | 'BAD_WALLET_QR' = 'VOUCHER_MALFORMED'): Uint8Array {
  if (text.length % 3 === 1) throw new CodecError(code, `Base45 text of length ${text.length} (3n+1) is not valid`);
  const out = new Uint8Array(Math.floor(text.length / 3) * 2 + (text.length % 3 === 2 ? 1 : 0));
  const digit = (i: number): number => {
    const v = VALUE.get(text[i]!);
    if (v === undefined) throw new CodecError(code, `character ${JSON.stringify(text[i])} at ${i} is not Base45`);
    return v;
  };
  let o = 0;
  for (let i = 0; i < text.length; i += 3) {
    if (i + 2 < text.length) {
      const n = digit(i) + digit(i + 1) * 45 + digit(i + 2) * 2025;
      if (n > 0xffff) throw new CodecError(code, `Base45 triple at ${i} is above 65535`);
      out[o++] = n >> 8;
      out[o++] = n & 0xff;
    } else {
      const n = digit(i) + digit(i + 1) * 45;
      if (n > 0xff) throw new CodecError(code, `Base45 pair at ${i} is above 255`);
      out[o++] = n;
    }
  }
  return out;
}
