/**
 * The one place that touches the npm `pcsclite` addon: its callbacks become
 * promises, its error strings become TallyErrors, and its events become typed
 * listeners. The addon is loaded on first use, so importing the PC/SC backend
 * costs nothing on a terminal that uses the serial reader.
 *
 * Quirks of pcsclite 1.0.1 handled here or by the caller:
 * - `new PCSCLite()` throws when pcscd is not running (SCardEstablishContext).
 * - When pcscd dies, the context emits 'error' once and stops watching for
 *   readers for good: the caller must close it and create a new context.
 * - A reader emits 'error' when its status thread fails; an EventEmitter
 *   'error' without a listener throws, so a listener is attached at once.
 * - `connect()` is a no-op while the addon thinks it is still connected, so a
 *   removed card must be disconnected before the next card can be connected.
 */
import { createRequire } from 'node:module';
import { TallyError } from '../../errors.js';
import { toTallyError } from './pcscErrors.js';

/** What we use of pcsclite's CardReader (its typings are not exported) */
interface AddonReader {
  readonly name: string;
  readonly connected: boolean;
  readonly SCARD_SHARE_SHARED: number;
  readonly SCARD_SHARE_EXCLUSIVE: number;
  readonly SCARD_PROTOCOL_T0: number;
  readonly SCARD_PROTOCOL_T1: number;
  readonly SCARD_STATE_PRESENT: number;
  readonly SCARD_STATE_MUTE: number;
  readonly SCARD_LEAVE_CARD: number;
  readonly SCARD_RESET_CARD: number;
  on(event: 'status', listener: (status: { state: number; atr?: Buffer }) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  removeAllListeners(event?: string): unknown;
  connect(options: { share_mode: number; protocol: number }, cb: (err: unknown, protocol: number) => void): void;
  disconnect(disposition: number, cb: (err: unknown) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, cb: (err: unknown, response: Buffer) => void): void;
  close(): void;
}

interface AddonContext {
  on(event: 'reader', listener: (reader: AddonReader) => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  removeAllListeners(event?: string): unknown;
  close(): void;
}

export type ShareMode = 'exclusive' | 'shared';

export interface PcscReaderStatus {
  readonly present: boolean;
  /** Present but the card did not answer to reset */
  readonly mute: boolean;
  /** pcscd's card event counter (upper 16 bits of the state): changes on every insertion and removal */
  readonly eventCount: number;
  readonly atr: Uint8Array;
}

/** One PC/SC reader of one context */
export interface PcscReaderHandle {
  readonly name: string;
  onStatus(listener: (status: PcscReaderStatus) => void): void;
  /** The reader went away (unplugged, or its context died) */
  onEnd(listener: () => void): void;
  onError(listener: (err: TallyError) => void): void;
  /** Connects to the card; resolves with the active protocol */
  connect(shareMode: ShareMode): Promise<number>;
  disconnect(reset: boolean): Promise<void>;
  transmit(apdu: Uint8Array, protocol: number, maxResponseLength?: number): Promise<Uint8Array>;
  close(): void;
}

/** A PC/SC context: a connection to pcscd that reports readers as they appear */
export interface PcscContextHandle {
  onReader(listener: (reader: PcscReaderHandle) => void): void;
  /** The context failed (pcscd stopped): it reports nothing more and must be replaced */
  onError(listener: (err: TallyError) => void): void;
  close(): void;
}

/** Creates a context; throws TallyError(READER_UNAVAILABLE) when pcscd is not there */
export type PcscContextFactory = () => PcscContextHandle;

/** Extended APDU response: 65536 data bytes and the status word */
const MAX_RESPONSE = 65538;

type AddonFactory = () => AddonContext;
let addon: AddonFactory | undefined;

function loadAddon(): AddonFactory {
  if (!addon) {
    try {
      addon = createRequire(import.meta.url)('pcsclite') as AddonFactory;
    } catch (err) {
      throw new TallyError('READER_UNAVAILABLE', 'the pcsclite addon cannot be loaded (npm install builds it against libpcsclite-dev)', {}, { cause: err });
    }
  }
  return addon;
}

function wrapReader(reader: AddonReader): PcscReaderHandle {
  const context = { reader: reader.name };
  // attached before any status thread can fail
  const errorListeners: ((err: TallyError) => void)[] = [];
  reader.on('error', (err) => {
    const error = toTallyError(err, 'SCardGetStatusChange', context);
    for (const listener of errorListeners) listener(error);
  });
  return {
    name: reader.name,
    onStatus(listener) {
      reader.on('status', (status) => {
        listener({
          present: (status.state & reader.SCARD_STATE_PRESENT) !== 0,
          mute: (status.state & reader.SCARD_STATE_MUTE) !== 0,
          eventCount: status.state >>> 16,
          atr: new Uint8Array(status.atr ?? new Uint8Array(0)),
        });
      });
    },
    onEnd(listener) {
      reader.on('end', listener);
    },
    onError(listener) {
      errorListeners.push(listener);
    },
    connect(shareMode) {
      const share_mode = shareMode === 'exclusive' ? reader.SCARD_SHARE_EXCLUSIVE : reader.SCARD_SHARE_SHARED;
      const protocol = reader.SCARD_PROTOCOL_T0 | reader.SCARD_PROTOCOL_T1;
      return new Promise((resolve, reject) => {
        reader.connect({ share_mode, protocol }, (err, active) => (err ? reject(toTallyError(err, 'SCardConnect', context)) : resolve(active)));
      });
    },
    disconnect(reset) {
      return new Promise((resolve, reject) => {
        reader.disconnect(reset ? reader.SCARD_RESET_CARD : reader.SCARD_LEAVE_CARD, (err) =>
          err ? reject(toTallyError(err, 'SCardDisconnect', context)) : resolve(),
        );
      });
    },
    transmit(apdu, protocol, maxResponseLength = MAX_RESPONSE) {
      return new Promise((resolve, reject) => {
        if (!reader.connected) {
          reject(new TallyError('CARD_REMOVED', 'not connected to a card', context));
          return;
        }
        reader.transmit(Buffer.from(apdu), maxResponseLength, protocol, (err, response) =>
          err ? reject(toTallyError(err, 'SCardTransmit', context)) : resolve(new Uint8Array(response)),
        );
      });
    },
    close() {
      reader.removeAllListeners('status');
      reader.close();
    },
  };
}

/** The real factory, on pcsclite and a running pcscd */
export const createPcscLiteContext: PcscContextFactory = () => {
  let context: AddonContext;
  try {
    context = loadAddon()();
  } catch (err) {
    throw toTallyError(err, 'SCardEstablishContext');
  }
  const errorListeners: ((err: TallyError) => void)[] = [];
  context.on('error', (err) => {
    const error = toTallyError(err, 'SCardListReaders');
    for (const listener of errorListeners) listener(error);
  });
  return {
    onReader(listener) {
      context.on('reader', (reader) => listener(wrapReader(reader)));
    },
    onError(listener) {
      errorListeners.push(listener);
    },
    close() {
      context.removeAllListeners('reader');
      context.close();
    },
  };
};
