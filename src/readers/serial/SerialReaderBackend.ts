/**
 * The serial reader backend: the terminal's own microcontroller board, reached
 * over a serial line with the protocol of firmware-protocol/serial-protocol.md.
 * One object owns the link and is the CardReader (card sessions) and the
 * OperatorPanel (display, buzzer, LEDs: boardPanel.ts); its `device` property
 * is the DeviceControl (relay and device-session events: BoardDevice.ts).
 *
 * It survives what a serial line does: a microcontroller that reboots (BOOT:
 * the session ends, a use in progress is reported as a fault, it re-syncs) and
 * a port that goes away (reader-state unavailable, reopened every
 * reopenDelayMs until it is back, no restart needed).
 */
import { bytesEqual } from '../../codecs/bytes.js';
import { ApduStatus } from '../../codecs/firmware/card.js';
import { HEAD_WITNESS_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '../../codecs/firmware/commands.js';
import type { EventMessage } from '../../codecs/firmware/messages.js';
import { TallyError } from '../../errors.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { openSerialTransport } from '../../transports/SerialPortTransport.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { BoardWitness, CardReader, CardSession, DeviceControl, LedgerHead, OperatorPanel, PanelMessage, PanelQr, ReaderEvent, ReaderState } from '../CardReader.js';
import type { EventAnswer } from '../eventAnswers.js';
import { ReaderSlot } from '../ReaderSlot.js';
import { BoardDevice } from './BoardDevice.js';
import { showOnBoard, showQrOnBoard } from './boardPanel.js';
import { FirmwareLink, type FrameTrace, type LinkStats, type LinkTiming } from './FirmwareLink.js';
import { systemSchedulingClock, type SchedulingClock } from '../../util/scheduler.js';

export { fitLines, LED_PATTERNS, TONE_PATTERNS } from './boardPanel.js';

export interface SerialReaderOptions {
  /** Opens the port; called again whenever the port went away */
  readonly openTransport: () => Promise<ByteTransport>;
  readonly name?: string;
  readonly clock?: SchedulingClock;
  readonly timing?: Partial<LinkTiming>;
  /** Wait between attempts to (re)open the port */
  readonly reopenDelayMs?: number;
  /** Ping the board this often; a ping that fails drops the link and reopens the port. 0: never. */
  readonly heartbeatMs?: number;
  /** Every frame in and out, and every discarded byte run */
  readonly trace?: FrameTrace;
  readonly logger?: Logger;
}

export interface SerialReaderStats extends LinkStats {
  connects: number;
  boots: number;
  sessions: number;
}

interface SerialSession extends CardSession {
  present: boolean;
  apdus: number;
}

export class SerialReaderBackend implements CardReader, OperatorPanel {
  readonly name: string;
  private readonly clock: SchedulingClock;
  private readonly logger: Logger;
  private readonly slot: ReaderSlot<SerialSession>;
  private readonly board: BoardDevice;
  private readonly reopenDelayMs: number;
  private readonly heartbeatMs: number;
  private link: FirmwareLink | undefined;
  private running = false;
  private reopenTimer: unknown;
  private heartbeatTimer: unknown;
  private syncing: Promise<void> | undefined;
  private readonly totals = { connects: 0, boots: 0, sessions: 0 };
  private finishedLinkStats: LinkStats = emptyLinkStats();
  constructor(private readonly options: SerialReaderOptions) {
    this.name = options.name ?? 'Serial reader';
    this.clock = options.clock ?? systemSchedulingClock;
    this.logger = (options.logger ?? silentLogger).child({ module: 'serial-reader' });
    this.slot = new ReaderSlot((err) => this.logger.error({ err: String(err) }, 'reader listener failed'));
    this.board = new BoardDevice(() => this.requireLink(), this.logger);
    this.reopenDelayMs = options.reopenDelayMs ?? 250;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
  }

  get stats(): SerialReaderStats {
    const live = this.link?.stats ?? emptyLinkStats();
    const sum = { ...this.finishedLinkStats };
    for (const key of Object.keys(sum) as (keyof LinkStats)[]) sum[key] += live[key];
    return { ...sum, ...this.totals };
  }

  // ---- CardReader

  /** Resolves after the first attempt: the state is then ready or unavailable (and retrying) */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.setState('starting');
    await this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.reopenTimer !== undefined) this.clock.clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.stopHeartbeat();
    this.endSession();
    const link = this.link;
    this.link = undefined;
    if (link) {
      this.retire(link);
      await link.close();
    }
    this.setState('stopped');
  }

  get state(): ReaderState {
    return this.slot.state;
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    return this.slot.onEvent(listener);
  }

  currentSession(): CardSession | undefined {
    return this.slot.session();
  }

  // ---- OperatorPanel

  async show(message: PanelMessage): Promise<void> {
    await showOnBoard(this.requireLink(), message);
  }

  async showQr(qr: PanelQr): Promise<void> {
    await showQrOnBoard(this.requireLink(), qr);
  }

  // ---- DeviceControl: CardReader already owns onEvent, so the device face is `device`

  /** The DeviceControl face of this backend (its onEvent carries device events) */
  get device(): DeviceControl {
    return this.board;
  }

  enable(useSeq: number, maxMs: number, head?: LedgerHead): Promise<void> {
    return this.board.enable(useSeq, maxMs, head);
  }

  witness(): BoardWitness {
    return this.board.witness();
  }

  disable(): Promise<void> {
    return this.board.disable();
  }

  /** Pings the board; for health checks and the CLI */
  async ping(): Promise<number> {
    const started = this.clock.now();
    const nonce = Uint8Array.of(started & 0xff, (started >>> 8) & 0xff);
    await this.requireLink().request('ping', { nonce });
    return this.clock.now() - started;
  }

  // ---- connection

  private async connect(): Promise<void> {
    if (!this.running) return;
    let transport: ByteTransport;
    try {
      transport = await this.options.openTransport();
    } catch (err) {
      this.lost(`cannot open port: ${(err as Error).message}`);
      return;
    }
    if (!this.running) {
      await transport.close().catch(() => undefined);
      return;
    }
    this.totals.connects++;
    const link = new FirmwareLink(transport, { clock: this.clock, timing: this.options.timing, trace: this.options.trace });
    this.link = link;
    link.onEvent((event) => this.onFirmwareEvent(link, event));
    link.onClose((error) => {
      if (this.link !== link) return;
      this.link = undefined;
      this.retire(link);
      this.lost(`port closed${error ? `: ${error.message}` : ''}`);
    });
    await this.sync(link);
  }

  /** Brings our view in line with the board: protocol version, card in the slot */
  private sync(link: FirmwareLink): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        const info = await link.request('get-info', {});
        if (!SUPPORTED_PROTOCOL_VERSIONS.includes(info.protocolVersion)) {
          throw new TallyError('READER_UNAVAILABLE', `board speaks protocol ${info.protocolVersion}, expected ${SUPPORTED_PROTOCOL_VERSIONS.join(' or ')}`);
        }
        await this.board.learn(link, info.protocolVersion, info.protocolVersion >= HEAD_WITNESS_VERSION);
        const slot = await link.request('get-slot', {});
        if (this.link !== link) return;
        const session = this.slot.session();
        if (!slot.present) this.endSession();
        else if (!session || !bytesEqual(session.atr, slot.atr)) this.beginSession(link, slot.atr);
        this.logger.info({ firmware: info.firmwareVersion, hardware: info.hardwareId, protocol: info.protocolVersion, card: slot.present, ...this.board.witnessLog() }, 'reader ready');
        this.setState('ready');
        this.armHeartbeat(link);
      } catch (err) {
        if (this.link !== link) return;
        this.link = undefined;
        this.retire(link);
        await link.close();
        this.lost(`board did not answer: ${(err as Error).message}`);
      }
    };
    const syncing = run().finally(() => {
      if (this.syncing === syncing) this.syncing = undefined;
    });
    this.syncing = syncing;
    return syncing;
  }

  private lost(detail: string): void {
    this.stopHeartbeat();
    this.endSession();
    if (!this.running) return;
    this.logger.warn({ detail }, 'reader unavailable');
    this.setState('unavailable', detail);
    if (this.reopenTimer === undefined) {
      this.reopenTimer = this.clock.setTimeout(() => {
        this.reopenTimer = undefined;
        void this.connect();
      }, this.reopenDelayMs);
    }
  }

  private retire(link: FirmwareLink): void {
    const sum = this.finishedLinkStats;
    for (const key of Object.keys(sum) as (keyof LinkStats)[]) sum[key] += link.stats[key];
  }

  private requireLink(): FirmwareLink {
    const link = this.link;
    if (!link || !link.isOpen) throw new TallyError('READER_UNAVAILABLE', this.name);
    return link;
  }

  private armHeartbeat(link: FirmwareLink): void {
    this.stopHeartbeat();
    if (this.heartbeatMs <= 0) return;
    this.heartbeatTimer = this.clock.setTimeout(() => {
      this.heartbeatTimer = undefined;
      if (this.link !== link || !this.running) return;
      link.request('ping', { nonce: new Uint8Array(0) }).then(
        () => this.armHeartbeat(link),
        async (err: unknown) => {
          if (this.link !== link) return;
          this.link = undefined;
          this.retire(link);
          await link.close();
          this.lost(`board stopped answering: ${(err as Error).message}`);
        },
      );
    }, this.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) this.clock.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  // ---- events from the board

  /** What the board's event frame is answered with: the device session events are ACKed once recorded */
  private onFirmwareEvent(link: FirmwareLink, event: EventMessage): EventAnswer {
    // a link being replaced: not taken, so the board sends the event again on the new one
    if (this.link !== link) return false;
    switch (event.name) {
      case 'boot': {
        // the board restarted: its relay is open, the card was power-cycled
        this.totals.boots++;
        this.logger.warn({ reason: event.body.reason }, 'microcontroller restarted');
        this.endSession();
        this.board.boardRestarted();
        this.setState('starting', 'microcontroller restarted');
        void this.sync(link);
        return;
      }
      case 'card-inserted': {
        const session = this.slot.session();
        // already known from a sync right after the board's boot
        if (session && session.apdus === 0 && bytesEqual(session.atr, event.body.atr)) return;
        this.beginSession(link, event.body.atr);
        return;
      }
      case 'card-removed':
        this.endSession();
        return;
      default:
        return this.board.onBoardEvent(event) ?? true;
    }
  }

  private beginSession(link: FirmwareLink, atr: Uint8Array): void {
    this.endSession();
    const id = this.slot.nextSessionId();
    this.totals.sessions++;
    const session: SerialSession = {
      id,
      atr: atr.slice(),
      presentAt: this.clock.now(),
      present: true,
      apdus: 0,
      transmit: async (apdu: Uint8Array): Promise<Uint8Array> => {
        if (!session.present) throw new TallyError('CARD_REMOVED', undefined, { sessionId: id });
        session.apdus++;
        let result;
        try {
          result = await link.request('apdu', { apdu });
        } catch (err) {
          // the card went while we waited (a removal event, a reboot, an unplugged port)
          if (!session.present) throw new TallyError('CARD_REMOVED', undefined, { sessionId: id }, { cause: err });
          throw err;
        }
        if (result.status !== ApduStatus.OK) {
          if (this.slot.session() === session) this.endSession();
          session.present = false;
          throw new TallyError('CARD_REMOVED', result.status === ApduStatus.NO_CARD ? 'no card in the slot' : 'card stopped answering', { sessionId: id });
        }
        return result.response;
      },
    };
    this.slot.begin(session);
  }

  private endSession(): void {
    this.slot.end((session) => {
      session.present = false;
    });
  }

  private setState(state: ReaderState, detail?: string): void {
    this.slot.setState(state, detail);
  }
}

export interface SerialReaderOnPathOptions extends Omit<SerialReaderOptions, 'openTransport'> {
  readonly baudRate?: number;
}

/** The backend on a serial device path (a UART, a USB adapter, a pty); reopens the same path after an unplug */
export function createSerialReader(path: string, options: SerialReaderOnPathOptions = {}): SerialReaderBackend {
  const { baudRate, ...rest } = options;
  return new SerialReaderBackend({
    name: `Serial reader on ${path}`,
    ...rest,
    openTransport: () => openSerialTransport(path, baudRate === undefined ? {} : { baudRate }),
  });
}

/** The backend over any transport factory (the in-memory pair for the demo) */
export function createSerialReaderOver(openTransport: () => Promise<ByteTransport>, options: Omit<SerialReaderOptions, 'openTransport'> = {}): SerialReaderBackend {
  return new SerialReaderBackend({ ...options, openTransport });
}

function emptyLinkStats(): LinkStats {
  return { framesIn: 0, framesOut: 0, resends: 0, naksSent: 0, naksReceived: 0, duplicateEvents: 0, eventsNotAccepted: 0, discardedBytes: 0 };
}

