/**
 * Our virtual card program for vpcd (Debian's vsmartcard-vpcd driver in
 * pcscd): it puts a SmartCard (usually a SimulatedCard) into a vpcd slot, so
 * that pcscd and every PC/SC program see a real card. Inserting connects to the
 * slot; removing disconnects, which vpcd reports to pcscd as a card removal.
 *
 * The slot endpoint is the Unix socket that scripts/pcscd-start.sh bridges to
 * vpcd inside pcscd's private network namespace (nothing listens on a host TCP
 * port), or, for a vpcd set up by hand, its TCP host and port.
 */
import { connect, type Socket } from 'node:net';
import { cardTimeMs, type CardTimingModel } from './cardTiming.js';
import type { SmartCard } from '../card/ApduChannel.js';
import { TallyError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { encodeVpcdMessage, VpcdControl, VpcdMessageParser, type VpcdMessage } from './VirtualCardProtocol.js';

export type VpcdEndpoint = { readonly path: string } | { readonly host: string; readonly port: number };

/** Where scripts/pcscd-start.sh puts its sockets, logs and process ids */
export const DEFAULT_PCSCD_RUN_DIR = '/run/tallystick-pcscd';

/** The Unix socket of vpcd slot `slot` (0 or 1) made by scripts/pcscd-start.sh */
export function vpcdSlotSocket(slot = 0, runDir = DEFAULT_PCSCD_RUN_DIR): string {
  return `${runDir}/vpcd-slot${slot}.sock`;
}

export interface VirtualCardOptions {
  readonly endpoint: VpcdEndpoint;
  /** Delay before connecting again when the slot went away while a card is inserted (pcscd restarting) */
  readonly reconnectMs?: number;
  /**
   * Delay before each APDU answer, to behave like a real contact card (tens of
   * ms) in benchmarks; default 0, the simulated card answers at once.
   */
  readonly answerDelayMs?: number;
  /** A real chip's time per APDU (bit rate, signing: sim/cardTiming.ts), added to answerDelayMs */
  readonly cardTiming?: CardTimingModel;
  /** Sees every APDU in and every response out (CLI --trace) */
  readonly trace?: (direction: 'apdu' | 'response', bytes: Uint8Array) => void;
  readonly logger?: Logger;
}

export interface VirtualCardStats {
  /** Connections vpcd answered (one per insertion, plus one per reconnect) */
  connections: number;
  apdus: number;
  powerOns: number;
  powerOffs: number;
  resets: number;
  atrRequests: number;
}

/** An APDU answer when the card itself throws: "no precise diagnosis" */
const SW_UNKNOWN = Uint8Array.of(0x6f, 0x00);

export class VirtualCard {
  private smartCard: SmartCard | undefined;
  private atr: Uint8Array = new Uint8Array(0);
  private socket: Socket | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly reconnectMs: number;
  private readonly log: Logger;
  /** Waiters for "vpcd has talked to the inserted card" */
  private polledWaiters: (() => void)[] = [];
  private polled = false;
  private pullOnNextApdu = false;
  readonly stats: VirtualCardStats = { connections: 0, apdus: 0, powerOns: 0, powerOffs: 0, resets: 0, atrRequests: 0 };

  constructor(private readonly options: VirtualCardOptions) {
    this.reconnectMs = options.reconnectMs ?? 50;
    this.log = (options.logger ?? silentLogger).child({ module: 'sim/virtual-card' });
  }

  get card(): SmartCard | undefined {
    return this.smartCard;
  }

  get isInserted(): boolean {
    return this.smartCard !== undefined;
  }

  /** vpcd is talking to the inserted card now */
  get isPolled(): boolean {
    return this.polled;
  }

  /**
   * Puts `card` into the slot. Resolves once vpcd has polled it (pcscd sees it
   * within its polling period, about 0.4 s). If vpcd does not answer within
   * `timeoutMs` the promise rejects with READER_TIMEOUT, but the card stays
   * inserted and keeps trying, as a real card in an unpowered reader would.
   */
  async insert(card: SmartCard, { timeoutMs = 5000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.smartCard) throw new TallyError('USAGE', 'a card is already inserted; remove it first');
    // the contacts touch: learn the ATR without leaving the card powered
    this.atr = card.powerOn();
    card.powerOff();
    this.smartCard = card;
    this.polled = false;
    this.pullOnNextApdu = false;
    this.connectSlot();
    await this.waitPolled(timeoutMs);
  }

  /** Pulls the card out: vpcd sees the connection close and pcscd reports the removal */
  async remove(): Promise<void> {
    const card = this.smartCard;
    this.smartCard = undefined;
    this.polled = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.destroy();
      });
    }
    if (card) safePowerOff(card);
  }

  /** Fault switch: the card is pulled out when the next APDU reaches it, before it answers */
  removeDuringNextApdu(): void {
    this.pullOnNextApdu = true;
  }

  async close(): Promise<void> {
    await this.remove();
  }

  private waitPolled(timeoutMs: number): Promise<void> {
    if (this.polled) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.polledWaiters = this.polledWaiters.filter((w) => w !== done);
        reject(new TallyError('READER_TIMEOUT', `vpcd did not poll the virtual card within ${timeoutMs} ms (is pcscd running? scripts/pcscd-start.sh)`, { endpoint: this.options.endpoint }));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.polledWaiters.push(done);
    });
  }

  private connectSlot(): void {
    if (!this.smartCard || this.socket) return;
    const socket = connect(this.options.endpoint);
    this.socket = socket;
    const parser = new VpcdMessageParser();
    let answered = false;
    socket.on('connect', () => {
      if ('host' in this.options.endpoint) socket.setNoDelay(true);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      if (!answered) {
        answered = true;
        this.stats.connections++;
        this.polled = true;
        const waiters = this.polledWaiters;
        this.polledWaiters = [];
        for (const waiter of waiters) waiter();
      }
      for (const message of parser.push(chunk)) {
        if (this.socket !== socket) return;
        this.answer(socket, message);
      }
    });
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'vpcd slot connection failed'));
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.polled = false;
      // still inserted: the slot went away (pcscd restarting); come back when it does
      if (this.smartCard) {
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = undefined;
          this.connectSlot();
        }, this.reconnectMs);
      }
    });
  }

  private answer(socket: Socket, message: VpcdMessage): void {
    const card = this.smartCard;
    if (!card) return;
    if (message.type === 'apdu') {
      if (this.pullOnNextApdu) {
        this.pullOnNextApdu = false;
        void this.remove();
        return;
      }
      this.stats.apdus++;
      let response: Uint8Array;
      try {
        response = card.transmit(message.apdu);
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'card threw on an APDU');
        response = SW_UNKNOWN;
      }
      this.options.trace?.('apdu', message.apdu);
      this.options.trace?.('response', response);
      const frame = encodeVpcdMessage(response);
      const timing = this.options.cardTiming;
      const delay = (this.options.answerDelayMs ?? 0) + (timing ? cardTimeMs(timing, message.apdu, response) : 0);
      if (delay > 0) setTimeout(() => socket.destroyed || socket.write(frame), delay);
      else socket.write(frame);
      return;
    }
    switch (message.code) {
      case VpcdControl.GET_ATR:
        this.stats.atrRequests++;
        socket.write(encodeVpcdMessage(this.atr));
        return;
      case VpcdControl.POWER_ON:
        this.stats.powerOns++;
        this.atr = card.powerOn();
        return;
      case VpcdControl.POWER_OFF:
        this.stats.powerOffs++;
        safePowerOff(card);
        return;
      case VpcdControl.RESET:
        this.stats.resets++;
        safePowerOff(card);
        this.atr = card.powerOn();
        return;
      default:
        this.log.warn({ code: message.code }, 'unknown vpcd control code');
    }
  }
}

function safePowerOff(card: SmartCard): void {
  try {
    card.powerOff();
  } catch {
    // a card that fails to power off is off anyway
  }
}
