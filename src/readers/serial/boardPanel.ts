/**
 * The operator panel of the board: what a PanelMessage becomes on its display,
 * buzzer and LEDs, and a QR code on a board with DISPLAY_QR.
 */
import { Led, LedMode, MAX_DISPLAY_LINES, MAX_LINE_BYTES, MAX_QR_CAPTION_LINES, QrEcc, type BuzzerStep, type LedSetting } from '../../codecs/firmware/panel.js';
import { isTallyError } from '../../errors.js';
import type { LedState, PanelMessage, PanelQr, Tone } from '../CardReader.js';
import type { FirmwareLink } from './FirmwareLink.js';

/** Buzzer patterns by tone: what the operator hears */
export const TONE_PATTERNS: Record<Tone, BuzzerStep[]> = {
  ok: [{ onMs: 80, offMs: 0 }],
  refused: [
    { onMs: 150, offMs: 100 },
    { onMs: 150, offMs: 100 },
    { onMs: 150, offMs: 0 },
  ],
  attention: [
    { onMs: 60, offMs: 60 },
    { onMs: 60, offMs: 0 },
  ],
  fault: [{ onMs: 800, offMs: 0 }],
};

/** LEDs by state: green, red, amber */
export const LED_PATTERNS: Record<LedState, LedSetting[]> = {
  idle: leds(LedMode.ON, LedMode.OFF, LedMode.OFF),
  busy: leds(LedMode.OFF, LedMode.OFF, LedMode.BLINK_FAST),
  ok: leds(LedMode.ON, LedMode.OFF, LedMode.OFF),
  refused: leds(LedMode.OFF, LedMode.ON, LedMode.OFF),
  fault: leds(LedMode.OFF, LedMode.BLINK_FAST, LedMode.OFF),
  off: leds(LedMode.OFF, LedMode.OFF, LedMode.OFF),
};

function leds(green: number, red: number, amber: number): LedSetting[] {
  return [
    { led: Led.GREEN, mode: green as LedSetting['mode'] },
    { led: Led.RED, mode: red as LedSetting['mode'] },
    { led: Led.AMBER, mode: amber as LedSetting['mode'] },
  ];
}

/** The lines on the display, then the tone and the LEDs the message asks for */
export async function showOnBoard(link: FirmwareLink, message: PanelMessage): Promise<void> {
  await link.request('display', { lines: fitLines(message.lines) });
  if (message.tone) await link.request('buzzer', { steps: TONE_PATTERNS[message.tone] });
  if (message.led) await link.request('leds', { leds: LED_PATTERNS[message.led] });
}

/** DISPLAY_QR: the board renders the code from its text; a board that does not know the command shows the text */
export async function showQrOnBoard(link: FirmwareLink, qr: PanelQr): Promise<void> {
  try {
    await link.request('display-qr', { ecc: QrEcc.M, text: qr.text, caption: fitLines(qr.caption).slice(0, MAX_QR_CAPTION_LINES) });
  } catch (err) {
    if (!isTallyError(err, 'FRAME_REJECTED') || err.context.reason !== 'unknown-command') throw err;
    await link.request('display', { lines: fitLines([...qr.caption, qr.text]) });
  }
}

/** Trims text to what the display takes: 4 lines of at most 64 bytes of UTF-8, cut on a character boundary */
export function fitLines(lines: readonly string[]): string[] {
  const encoder = new TextEncoder();
  return lines.slice(0, MAX_DISPLAY_LINES).map((line) => {
    let out = line;
    while (encoder.encode(out).length > MAX_LINE_BYTES) out = [...out].slice(0, -1).join('');
    return out;
  });
}
