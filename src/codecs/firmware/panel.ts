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

/** QR error-correction level the board renders with (ISO/IEC 18004): 0 L, 1 M, 2 Q, 3 H */
export const QrEcc = { L: 0, M: 1, Q: 2, H: 3 } as const;
export type QrEccCode = (typeof QrEcc)[keyof typeof QrEcc];
/** Bytes of text a DISPLAY_QR carries (a link with its code is about 60; version 10 at M holds 213) */
export const MAX_QR_TEXT_BYTES = 200;
/** Caption lines under the code (the user code and the binding code) */
export const MAX_QR_CAPTION_LINES = 2;

export interface DisplayQrBody {
  readonly ecc: QrEccCode;
  /** What the code encodes: printable ASCII (0x21..0x7e), 1..200 bytes; the board renders the symbol itself */
  readonly text: string;
  /** Shown under the code, each at most 64 bytes of UTF-8 */
  readonly caption: readonly string[];
}

const QR_TEXT = /^[\x21-\x7e]{1,200}$/;

function checkQr(body: DisplayQrBody): void {
  if (!Number.isInteger(body.ecc) || body.ecc < QrEcc.L || body.ecc > QrEcc.H) throw new FirmwarePayloadError(`display-qr: unknown error-correction level ${body.ecc}`);
  if (!QR_TEXT.test(body.text)) throw new FirmwarePayloadError('display-qr: text must be 1..200 bytes of printable ASCII');
  if (body.caption.length > MAX_QR_CAPTION_LINES) throw new FirmwarePayloadError(`display-qr: at most ${MAX_QR_CAPTION_LINES} caption lines`);
}

export function encodeDisplayQr(body: DisplayQrBody): Uint8Array {
  checkQr(body);
  const w = new PayloadWriter('display-qr').u8(body.ecc, 'ecc').shortString(body.text, 'text', MAX_QR_TEXT_BYTES).u8(body.caption.length, 'captionCount');
  body.caption.forEach((line, i) => w.shortString(line, `caption ${i}`, MAX_LINE_BYTES));
  return w.done();
}

export function parseDisplayQr(payload: Uint8Array): DisplayQrBody {
  const r = new PayloadReader(payload, 'display-qr');
  const ecc = r.u8('ecc') as QrEccCode;
  const text = r.shortString('text', MAX_QR_TEXT_BYTES);
  const count = r.u8('captionCount');
  if (count > MAX_QR_CAPTION_LINES) throw new FirmwarePayloadError(`display-qr: at most ${MAX_QR_CAPTION_LINES} caption lines, got ${count}`);
  const caption: string[] = [];
  for (let i = 0; i < count; i++) caption.push(r.shortString(`caption ${i}`, MAX_LINE_BYTES));
  r.end();
  const body = { ecc, text, caption };
  checkQr(body);
  return body;
}
