/** Command codes of the serial firmware protocol. Pure constants. */

/** Set in CMD on the device's answer to a request: response CMD = request CMD | 0x80 */
export const RESPONSE_FLAG = 0x80;

export const Command = {
  // link control: never acknowledged themselves
  ACK: 0x01,
  NAK: 0x02,
  // host -> device requests
  GET_INFO: 0x10,
  PING: 0x11,
  RESET: 0x12,
  GET_SLOT: 0x20,
  APDU: 0x21,
  DISPLAY: 0x30,
  BUZZER: 0x31,
  LEDS: 0x32,
  /** Show a QR code the board renders from its text, with caption lines under it */
  DISPLAY_QR: 0x33,
  RELAY_ENABLE: 0x40,
  RELAY_DISABLE: 0x41,
  /** Protocol 2: the chain head the board holds */
  GET_HEAD: 0x42,
  /** Protocol 2: RELAY_ENABLE carrying the ledger's new head; the board refuses a head not above its own */
  RELAY_ENABLE_HEAD: 0x43,
  /** Protocol 2: the relay's session now (idle / enabled / running, the use, ms since the relay closed) */
  GET_SESSION: 0x44,
  // device -> host events
  BOOT: 0x50,
  CARD_INSERTED: 0x51,
  CARD_REMOVED: 0x52,
  DEVICE_STARTED: 0x53,
  DEVICE_FINISHED: 0x54,
  DEVICE_FAULT: 0x55,
} as const;

export type CommandCode = (typeof Command)[keyof typeof Command];

export const NakReason = {
  BAD_CRC: 1,
  UNKNOWN_COMMAND: 2,
  BAD_PAYLOAD: 3,
  BUSY: 4,
} as const;

export type NakReasonCode = (typeof NakReason)[keyof typeof NakReason];

export const NAK_REASON_NAMES: Record<number, string> = {
  1: 'bad-crc',
  2: 'unknown-command',
  3: 'bad-payload',
  4: 'busy',
};

/** What this codec speaks: 2 adds the chain-head witness (GET_HEAD, RELAY_ENABLE_HEAD; RELAY_ENABLE is refused) */
export const PROTOCOL_VERSION = 2;
/** The board's protocol from which it keeps the chain head */
export const HEAD_WITNESS_VERSION = 2;
/** Boards the host works with: a protocol 1 board has no head witness (serial-protocol.md §6.5) */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2];

const NAMES = new Map<number, string>(Object.entries(Command).map(([name, code]) => [code, name]));

/** A readable name for any CMD byte, for logs and traces */
export function commandName(code: number): string {
  const base = NAMES.get(code & ~RESPONSE_FLAG);
  if (base === undefined) return `0x${code.toString(16).padStart(2, '0')}`;
  return code & RESPONSE_FLAG ? `${base}_RESPONSE` : base;
}
