/** Panel family: display text, buzzer pattern, LEDs. Pure. */
import { FirmwarePayloadError, PayloadReader, PayloadWriter } from './payload.js';

export const MAX_DISPLAY_LINES = 4;
/** Bytes of UTF-8 per line (a 20-column display with CJK needs up to 60) */
export const MAX_LINE_BYTES = 64;
export const MAX_BUZZER_STEPS = 16;

export interface DisplayBody {
  readonly lines: readonly string[];
}

export function encodeDisplay(body: DisplayBody): Uint8Array {
  if (body.lines.length > MAX_DISPLAY_LINES) throw new FirmwarePayloadError(`display: at most ${MAX_DISPLAY_LINES} lines`);
  const w = new PayloadWriter('display').u8(body.lines.length, 'lineCount');
  body.lines.forEach((line, i) => w.shortString(line, `line ${i}`, MAX_LINE_BYTES));
  return w.done();
}

export function parseDisplay(payload: Uint8Array): DisplayBody {
  const r = new PayloadReader(payload, 'display');
  const count = r.u8('lineCount');
  if (count > MAX_DISPLAY_LINES) throw new FirmwarePayloadError(`display: at most ${MAX_DISPLAY_LINES} lines, got ${count}`);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(r.shortString(`line ${i}`, MAX_LINE_BYTES));
  r.end();
  return { lines };
}

/** One beep: sound for onMs, then silence for offMs */
export interface BuzzerStep {
  readonly onMs: number;
  readonly offMs: number;
}

export interface BuzzerBody {
  /** Empty: silence now */
  readonly steps: readonly BuzzerStep[];
}

export function encodeBuzzer(body: BuzzerBody): Uint8Array {
  if (body.steps.length > MAX_BUZZER_STEPS) throw new FirmwarePayloadError(`buzzer: at most ${MAX_BUZZER_STEPS} steps`);
  const w = new PayloadWriter('buzzer').u8(body.steps.length, 'stepCount');
  for (const step of body.steps) w.u16(step.onMs, 'onMs').u16(step.offMs, 'offMs');
  return w.done();
}

export function parseBuzzer(payload: Uint8Array): BuzzerBody {
  const r = new PayloadReader(payload, 'buzzer');
  const count = r.u8('stepCount');
  if (count > MAX_BUZZER_STEPS) throw new FirmwarePayloadError(`buzzer: at most ${MAX_BUZZER_STEPS} steps, got ${count}`);
  const steps: BuzzerStep[] = [];
  for (let i = 0; i < count; i++) steps.push({ onMs: r.u16('onMs'), offMs: r.u16('offMs') });
  r.end();
  return { steps };
}

export const Led = { GREEN: 0, RED: 1, AMBER: 2 } as const;
export type LedIndex = (typeof Led)[keyof typeof Led];
export const LedMode = { OFF: 0, ON: 1, BLINK_SLOW: 2, BLINK_FAST: 3 } as const;
export type LedModeCode = (typeof LedMode)[keyof typeof LedMode];

export interface LedSetting {
  readonly led: LedIndex;
  readonly mode: LedModeCode;
}

export interface LedsBody {
  /** Each LED at most once; LEDs not listed keep their state */
  readonly leds: readonly LedSetting[];
}

const LED_COUNT = 3;

export function encodeLeds(body: LedsBody): Uint8Array {
  checkLeds(body.leds);
  const w = new PayloadWriter('leds').u8(body.leds.length, 'count');
  for (const s of body.leds) w.u8(s.led, 'led').u8(s.mode, 'mode');
  return w.done();
}

export function parseLeds(payload: Uint8Array): LedsBody {
  const r = new PayloadReader(payload, 'leds');
  const count = r.u8('count');
  if (count > LED_COUNT) throw new FirmwarePayloadError(`leds: at most ${LED_COUNT} settings, got ${count}`);
  const leds: LedSetting[] = [];
  for (let i = 0; i < count; i++) leds.push({ led: r.u8('led') as LedIndex, mode: r.u8('mode') as LedModeCode });
  r.end();
  checkLeds(leds);
  return { leds };
}

function checkLeds(leds: readonly LedSetting[]): void {
  if (leds.length < 1 || leds.length > LED_COUNT) throw new FirmwarePayloadError(`leds: 1..${LED_COUNT} settings`);
  const seen = new Set<number>();
  for (const s of leds) {
    if (!Number.isInteger(s.led) || s.led < 0 || s.led >= LED_COUNT) throw new FirmwarePayloadError(`leds: unknown LED ${s.led}`);
    if (!Number.isInteger(s.mode) || s.mode < 0 || s.mode > LedMode.BLINK_FAST) throw new FirmwarePayloadError(`leds: unknown mode ${s.mode}`);
    if (seen.has(s.led)) throw new FirmwarePayloadError(`leds: LED ${s.led} listed twice`);
    seen.add(s.led);
  }
}
