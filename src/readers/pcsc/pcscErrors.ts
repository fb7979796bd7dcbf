/**
 * PC/SC return codes and their mapping to the project's error codes. The
 * pcsclite addon reports failures as Error messages such as
 * "SCardTransmit error: Card was removed.(0x80100069)"; this is the one place
 * that reads them.
 */
import { TallyError, type ErrorName } from '../../errors.js';

/** The winscard codes we act on (pcsclite.h) */
export const PcscCode = {
  INVALID_HANDLE: 0x80100003,
  INSUFFICIENT_BUFFER: 0x80100008,
  UNKNOWN_READER: 0x80100009,
  TIMEOUT: 0x8010000a,
  SHARING_VIOLATION: 0x8010000b,
  NO_SMARTCARD: 0x8010000c,
  PROTO_MISMATCH: 0x8010000f,
  NOT_READY: 0x80100010,
  SYSTEM_CANCELLED: 0x80100012,
  COMM_ERROR: 0x80100013,
  READER_UNAVAILABLE: 0x80100017,
  NO_SERVICE: 0x8010001d,
  SERVICE_STOPPED: 0x8010001e,
  NO_READERS_AVAILABLE: 0x8010002e,
  UNSUPPORTED_CARD: 0x80100065,
  UNRESPONSIVE_CARD: 0x80100066,
  UNPOWERED_CARD: 0x80100067,
  RESET_CARD: 0x80100068,
  REMOVED_CARD: 0x80100069,
} as const;

const CARD_GONE = new Set<number>([
  PcscCode.NO_SMARTCARD,
  PcscCode.REMOVED_CARD,
  // another program reset or unpowered the card: our session state on it is lost
  PcscCode.RESET_CARD,
  PcscCode.UNPOWERED_CARD,
]);

const READER_GONE = new Set<number>([
  PcscCode.INVALID_HANDLE,
  PcscCode.UNKNOWN_READER,
  PcscCode.NOT_READY,
  PcscCode.SYSTEM_CANCELLED,
  PcscCode.COMM_ERROR,
  PcscCode.READER_UNAVAILABLE,
  PcscCode.NO_SERVICE,
  PcscCode.SERVICE_STOPPED,
  PcscCode.NO_READERS_AVAILABLE,
]);

/** The PC/SC return code in an addon error message, if there is one */
export function pcscCodeOf(err: unknown): number | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const match = /\(0x([0-9a-f]{8})\)/i.exec(message);
  return match?.[1] === undefined ? undefined : Number.parseInt(match[1], 16);
}

export function errorNameForPcscCode(code: number | undefined): ErrorName {
  if (code === undefined) return 'READER_UNAVAILABLE';
  if (CARD_GONE.has(code)) return 'CARD_REMOVED';
  if (READER_GONE.has(code)) return 'READER_UNAVAILABLE';
  switch (code) {
    case PcscCode.TIMEOUT:
      return 'READER_TIMEOUT';
    case PcscCode.SHARING_VIOLATION:
      return 'READER_IN_USE';
    case PcscCode.UNRESPONSIVE_CARD:
    case PcscCode.UNSUPPORTED_CARD:
    case PcscCode.PROTO_MISMATCH:
      return 'UNKNOWN_CARD';
    default:
      return 'READER_UNAVAILABLE';
  }
}

/** Wraps an addon failure in a TallyError with the operation, the PC/SC code and the reader */
export function toTallyError(err: unknown, operation: string, context: Record<string, unknown> = {}): TallyError {
  if (err instanceof TallyError) return err;
  const code = pcscCodeOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  return new TallyError(
    errorNameForPcscCode(code),
    `${operation}: ${detail}`,
    { ...context, operation, ...(code === undefined ? {} : { pcscCode: `0x${code.toString(16).padStart(8, '0')}` }) },
    { cause: err },
  );
}
