/**
 * How long a real chip takes to answer an APDU, for the simulated card's carriers (the serial board's card
 * slot, the vpcd virtual card) and the swipe bench: the bytes on the contact interface at its bit rate
 * (ISO 7816-3: a character is 12 etu with its guard time, plus two procedure/status bytes), a fixed
 * command time, and the signing time of INTERNAL AUTHENTICATE (ECDSA P-256 on the chip's coprocessor).
 * Pure: the carriers do the waiting.
 */
import { INS } from '../codecs/applet.js';
import { TallyError } from '../errors.js';

export interface CardTimingModel {
  readonly name: string;
  /** INTERNAL AUTHENTICATE: the chip's ECDSA P-256 signature */
  readonly signMs: number;
  /** The interface's bit rate (1/etu), bit/s: 9,600 at ISO 7816's default Fi/Di on a 3.57 MHz clock */
  readonly bitRate: number;
  /** Any command's own time on the chip (applet dispatch, EEPROM reads) */
  readonly commandMs: number;
}

/** A current Java Card (P-256 in hardware, about 25 ms) after PPS to 115,200 bit/s */
export const FAST_CHIP: CardTimingModel = { name: 'fast', signMs: 25, bitRate: 115_200, commandMs: 1 };
/** An older or cheaper chip (about 120 ms a signature) left at the default 9,600 bit/s */
export const SLOW_CHIP: CardTimingModel = { name: 'slow', signMs: 120, bitRate: 9_600, commandMs: 3 };
export const CARD_TIMING_MODELS: readonly CardTimingModel[] = [FAST_CHIP, SLOW_CHIP];

const ETU_PER_BYTE = 12;
const PROCEDURE_BYTES = 2;

/** The chip's own time for one APDU exchange, in ms */
export function cardTimeMs(model: CardTimingModel, command: Uint8Array, response: Uint8Array): number {
  const bytes = command.length + response.length + PROCEDURE_BYTES;
  const wire = (bytes * ETU_PER_BYTE * 1000) / model.bitRate;
  const signing = command[1] === INS.INTERNAL_AUTHENTICATE ? model.signMs : 0;
  return wire + model.commandMs + signing;
}

/** "fast", "slow" or "name:signMs:bitRate[:commandMs]" (TALLY_CARD_TIMING, BENCH_CARD_MODELS) */
export function parseCardTiming(text: string): CardTimingModel {
  const known = CARD_TIMING_MODELS.find((m) => m.name === text);
  if (known) return known;
  const [name, sign, rate, command] = text.split(':');
  const model = { name: name ?? '', signMs: Number(sign), bitRate: Number(rate), commandMs: command === undefined ? 1 : Number(command) };
  if (!model.name || !(model.signMs >= 0) || !(model.bitRate > 0) || !(model.commandMs >= 0)) {
    throw new TallyError('USAGE', `card timing ${JSON.stringify(text)}: fast, slow or name:signMs:bitRate[:commandMs]`);
  }
  return model;
}
