/**
 * What the terminal logic sees of a reader. Backends (simulated, PC/SC, serial)
 * implement it; the terminal never imports a backend.
 */
import type { ApduChannel } from '../card/ApduChannel.js';
import type { EventAnswer } from './eventAnswers.js';

/** One insertion of one card. Its transmit rejects with CARD_REMOVED once the card is gone. */
export interface CardSession extends ApduChannel {
  /** Increases with every insertion on this reader */
  readonly id: number;
  readonly atr: Uint8Array;
  /** Clock time (ms) at which the reader reported the card present */
  readonly presentAt: number;
}

export type ReaderState = 'starting' | 'ready' | 'unavailable' | 'stopped';

export type ReaderEvent =
  | { readonly type: 'card-inserted'; readonly session: CardSession }
  | { readonly type: 'card-removed'; readonly sessionId: number }
  | { readonly type: 'reader-state'; readonly state: ReaderState; readonly detail?: string };

export interface CardReader {
  readonly name: string;
  readonly state: ReaderState;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Returns a function that removes the listener */
  onEvent(listener: (event: ReaderEvent) => void): () => void;
  /** The card present now, if any */
  currentSession(): CardSession | undefined;
}

/** What the operator sees and hears */
export type Tone = 'ok' | 'refused' | 'attention' | 'fault';
export type LedState = 'idle' | 'busy' | 'ok' | 'refused' | 'fault' | 'off';

export interface PanelMessage {
  readonly lines: readonly string[];
  readonly tone?: Tone;
  readonly led?: LedState;
}

/** A QR code for the operator's display: the text it encodes and the lines shown under it */
export interface PanelQr {
  readonly text: string;
  readonly caption: readonly string[];
}

export interface OperatorPanel {
  show(message: PanelMessage): Promise<void>;
  /** Shows a QR code (a board with DISPLAY_QR renders it; without, the panel shows the text) */
  showQr?(qr: PanelQr): Promise<void>;
}

/** Device-session events reported by the relay board */
export type DeviceEvent =
  | { readonly type: 'started'; readonly useSeq: number }
  | { readonly type: 'finished'; readonly useSeq: number }
  | { readonly type: 'fault'; readonly useSeq: number; readonly detail: string };

/** A device-event listener's answer: is the event recorded? (readers/eventAnswers.ts) */
export type DeviceEventAnswer = EventAnswer;

/** The ledger's head as the terminal hands it to the relay board: seq and the entry's SHA-256 */
export interface LedgerHead {
  readonly seq: number;
  readonly hash: Uint8Array;
}

/**
 * What the relay board witnesses of the ledger (serial-protocol.md §6.5):
 * unknown until the board answered, none for a board without the witness
 * (protocol 1), or the head it keeps in its non-volatile memory (seq 0: none yet).
 */
export type BoardWitness =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'none'; readonly protocolVersion: number }
  | { readonly kind: 'head'; readonly seq: number; readonly hashPrefix: Uint8Array };

/**
 * The relay board's session as it answered GET_SESSION at the last (re)sync
 * (serial-protocol.md §6.6): idle (relay open: it rebooted, or its last use
 * ended and that end was sent first), or the relay closed for one use,
 * started or not, elapsedMs after it closed. `id` grows with every answer.
 */
export type BoardSession =
  | { readonly id: number; readonly state: 'idle' }
  | { readonly id: number; readonly state: 'enabled' | 'running'; readonly useSeq: number; readonly elapsedMs: number };

/** The relay that lets the medical device run, and its session events */
export interface DeviceControl {
  /**
   * Closes the relay for one use; the device then reports started, finished or fault.
   * A board with the head witness gets the ledger's new head with it and refuses
   * (BOARD_HEAD_REFUSED, context.held) one that is not above the head it holds.
   */
  enable(useSeq: number, maxMs: number, head?: LedgerHead): Promise<void>;
  /** What the board witnesses; absent: a relay without a board (tests, bare devices) */
  witness?(): BoardWitness;
  /** The board's own report of its session at the last (re)sync; absent or undefined: the board did not say (protocol 1) */
  session?(): BoardSession | undefined;
  disable(): Promise<void>;
  onEvent(listener: (event: DeviceEvent) => DeviceEventAnswer): () => void;
}
