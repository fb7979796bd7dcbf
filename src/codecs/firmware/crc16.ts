/**
 * CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection,
 * no final XOR. Check value: crc16("123456789") = 0x29B1. Pure.
 */

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export const CRC16_INIT = 0xffff;

/** CRC of bytes[start, end), continuing from `crc` so a streaming caller can feed pieces */
export function crc16(bytes: Uint8Array, start = 0, end = bytes.length, crc = CRC16_INIT): number {
  let value = crc;
  for (let i = start; i < end; i++) value = ((value << 8) & 0xff00) ^ TABLE[((value >>> 8) ^ bytes[i]!) & 0xff]!;
  return value;
}
