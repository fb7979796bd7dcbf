/** Card family: slot status, APDU pass-through, card inserted and removed events. Pure. */
import { FirmwarePayloadError, PayloadReader, PayloadWriter } from './payload.js';

/** ISO 7816-3 caps an ATR at 33 bytes */
export const MAX_ATR = 33;
/** A short command APDU: header, Lc, 255 data bytes, Le */
export const MAX_COMMAND_APDU = 261;
export const MIN_COMMAND_APDU = 4;
/** A short response APDU: 256 data bytes and SW1 SW2 */
export const MAX_RESPONSE_APDU = 258;

function checkAtr(atr: Uint8Array, what: string): void {
  if (atr.length < 2 || atr.length > MAX_ATR) throw new FirmwarePayloadError(`${what}: ATR must be 2..${MAX_ATR} bytes, got ${atr.length}`);
}

export interface SlotBody {
  readonly present: boolean;
  /** Empty when no card is present */
  readonly atr: Uint8Array;
}

export function encodeSlot(body: SlotBody): Uint8Array {
  if (body.present) checkAtr(body.atr, 'slot');
  else if (body.atr.length !== 0) throw new FirmwarePayloadError('slot: an empty slot has no ATR');
  return new PayloadWriter('slot').u8(body.present ? 1 : 0, 'present').bytes(body.atr).done();
}

export function parseSlot(payload: Uint8Array): SlotBody {
  const r = new PayloadReader(payload, 'slot');
  const present = r.u8('present');
  if (present > 1) throw new FirmwarePayloadError(`slot: present must be 0 or 1, got ${present}`);
  const atr = r.rest();
  if (present === 1) checkAtr(atr, 'slot');
  else if (atr.length !== 0) throw new FirmwarePayloadError('slot: an empty slot has no ATR');
  return { present: present === 1, atr };
}

export interface ApduRequestBody {
  readonly apdu: Uint8Array;
}

export function encodeApduRequest(body: ApduRequestBody): Uint8Array {
  if (body.apdu.length < MIN_COMMAND_APDU || body.apdu.length > MAX_COMMAND_APDU) {
    throw new FirmwarePayloadError(`apdu: command must be ${MIN_COMMAND_APDU}..${MAX_COMMAND_APDU} bytes, got ${body.apdu.length}`);
  }
  return body.apdu.slice();
}

export function parseApduRequest(payload: Uint8Array): ApduRequestBody {
  if (payload.length < MIN_COMMAND_APDU || payload.length > MAX_COMMAND_APDU) {
    throw new FirmwarePayloadError(`apdu: command must be ${MIN_COMMAND_APDU}..${MAX_COMMAND_APDU} bytes, got ${payload.length}`);
  }
  return { apdu: payload.slice() };
}

export const ApduStatus = {
  OK: 0,
  /** No card in the slot when the command arrived */
  NO_CARD: 1,
  /** The card left or stopped answering during the exchange */
  CARD_MUTE: 2,
} as const;

export type ApduStatusCode = (typeof ApduStatus)[keyof typeof ApduStatus];

export interface ApduResponseBody {
  readonly status: ApduStatusCode;
  /** The card's response APDU (data and SW1 SW2); empty unless status is OK */
  readonly response: Uint8Array;
}

export function encodeApduResponse(body: ApduResponseBody): Uint8Array {
  checkApduResponse(body.status, body.response);
  return new PayloadWriter('apdu response').u8(body.status, 'status').bytes(body.response).done();
}

export function parseApduResponse(payload: Uint8Array): ApduResponseBody {
  const r = new PayloadReader(payload, 'apdu response');
  const status = r.u8('status');
  const response = r.rest();
  checkApduResponse(status, response);
  return { status: status as ApduStatusCode, response };
}

function checkApduResponse(status: number, response: Uint8Array): void {
  if (status > ApduStatus.CARD_MUTE) throw new FirmwarePayloadError(`apdu response: unknown status ${status}`);
  if (status === ApduStatus.OK && (response.length < 2 || response.length > MAX_RESPONSE_APDU)) {
    throw new FirmwarePayloadError(`apdu response: response APDU must be 2..${MAX_RESPONSE_APDU} bytes, got ${response.length}`);
  }
  if (status !== ApduStatus.OK && response.length !== 0) throw new FirmwarePayloadError('apdu response: a failed exchange carries no response');
}

export interface CardInsertedBody {
  readonly atr: Uint8Array;
}

export function encodeCardInserted(body: CardInsertedBody): Uint8Array {
  checkAtr(body.atr, 'card inserted');
  return body.atr.slice();
}

export function parseCardInserted(payload: Uint8Array): CardInsertedBody {
  checkAtr(payload, 'card inserted');
  return { atr: payload.slice() };
}
