/**
 * The status words the tallystick applet answers with, and their mapping to the
 * project's error codes. The one place that interprets a status word. Pure.
 */
import type { ErrorName } from '../errors.js';

export const SW = {
  OK: 0x9000,
  /** 61xx: more response bytes; fetch with GET RESPONSE */
  BYTES_REMAINING: 0x6100,
  /** 63Cx: verification failed, x tries left */
  PIN_TRIES_LEFT: 0x63c0,
  MEMORY_FAILURE: 0x6581,
  WRONG_LENGTH: 0x6700,
  SECURITY_NOT_SATISFIED: 0x6982,
  AUTH_BLOCKED: 0x6983,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  COMMAND_NOT_ALLOWED: 0x6986,
  WRONG_DATA: 0x6a80,
  FILE_NOT_FOUND: 0x6a82,
  NOT_ENOUGH_MEMORY: 0x6a84,
  WRONG_P1P2: 0x6a86,
  REFERENCE_NOT_FOUND: 0x6a88,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  UNKNOWN: 0x6f00,
} as const;

export function isOk(sw: number): boolean {
  return sw === SW.OK;
}

export function pinTriesLeft(sw: number): number | undefined {
  return (sw & 0xfff0) === SW.PIN_TRIES_LEFT ? sw & 0x0f : undefined;
}

export function bytesRemaining(sw: number): number | undefined {
  if ((sw & 0xff00) !== SW.BYTES_REMAINING) return undefined;
  const n = sw & 0xff;
  return n === 0 ? 256 : n;
}

export function swHex(sw: number): string {
  return sw.toString(16).padStart(4, '0').toUpperCase();
}

/** Maps a failing status word to the project's error code */
export function errorForStatusWord(sw: number): ErrorName {
  if (pinTriesLeft(sw) !== undefined) return 'PIN_WRONG';
  switch (sw) {
    case SW.AUTH_BLOCKED:
      return 'PIN_BLOCKED';
    case SW.SECURITY_NOT_SATISFIED:
      return 'PIN_REQUIRED';
    case SW.CONDITIONS_NOT_SATISFIED:
      return 'CARD_STATE';
    case SW.COMMAND_NOT_ALLOWED:
      return 'CARD_ALREADY_WRITTEN';
    case SW.NOT_ENOUGH_MEMORY:
      return 'QUOTA_EXHAUSTED';
    case SW.FILE_NOT_FOUND:
      return 'APPLET_NOT_FOUND';
    case SW.MEMORY_FAILURE:
      return 'CARD_MEMORY';
    case SW.WRONG_DATA:
    case SW.WRONG_LENGTH:
    case SW.WRONG_P1P2:
      return 'MALFORMED_APDU';
    default:
      return 'APDU_REJECTED';
  }
}
