/**
 * The serial reader backend: the terminal's own microcontroller board, reached
 * over a serial line with the protocol of firmware-protocol/serial-protocol.md.
 * One object is the CardReader (card sessions) and the OperatorPanel (display,
 * buzzer, LEDs); its `device` property is the DeviceControl (relay and
 * device-session events).
 *
 * It survives what a serial line does: a microcontroller that reboots (BOOT:
 * the session ends, a use in progress is reported as a fault, it re-syncs) and
 * a port that goes away (reader-state unavailable, reopened every
 * reopenDelayMs until it is back, no restart needed).
 */
import { bytesEqual } from '../../codecs/bytes.js';
import { ApduStatus } from '../../codecs/firmware/card.js';
import { HEAD_WITNESS_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '../../codecs/firmware/commands.js';
import { HEAD_HASH_LENGTH, HeadStatus } from '../../codecs/firmware/head.js';
import type { EventMessage } from '../../codecs/firmware/messages.js';
import { Led, LedMode, MAX_DISPLAY_LINES, MAX_LINE_BYTES, MAX_QR_CAPTION_LINES, QrEcc, type BuzzerStep, type LedSetting } from '../../codecs/firmware/panel.js';
import { FaultCode, SessionState } from '../../codecs/firmware/relay.js';
import { isTallyError, TallyError } from '../../errors.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { openSerialTransport } from '../../transports/SerialPortTransport.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type {
  BoardSession,
  BoardWitness,
  CardReader,
  CardSession,
  DeviceControl,
  DeviceEvent,
  DeviceEventAnswer,
  LedgerHead,
  LedState,
  OperatorPanel,
  PanelMessage,
  PanelQr,
  ReaderEvent,
  ReaderState,
  Tone,
} from '../CardReader.js';
import { askListeners, type EventAnswer } from '../eventAnswers.js';
import { ReaderSlot } from '../ReaderSlot.js';
import { FirmwareLink, type FrameTrace, type LinkStats, type LinkTiming } from './FirmwareLink.js';
import { systemSchedulingClock, type SchedulingClock } from '../../util/scheduler.js';

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

interface SerialSession extends CardSession {
  present: boolean;
  apdus: number;
}

export class SerialReaderBackend implements CardReader, OperatorPanel {
  readonly name: string;
  private readonly clock: SchedulingClock;
  private readonly logger: Logger;
  private readonly slot: ReaderSlot<SerialSession>;
  /**
   * A device listener answers like a link's event listener (readers/eventAnswers.ts):
   * the terminal returns whether the ledger has recorded the event, and the
   * board's frame is ACKed only then (serial-protocol.md §5).
   */
  private readonly deviceListeners = new Set<(event: DeviceEvent) => DeviceEventAnswer>();
  private readonly reopenDelayMs: number;
  private readonly heartbeatMs: number;
  private link: FirmwareLink | undefined;
  private running = false;
  private reopenTimer: unknown;
  private heartbeatTimer: unknown;
  private activeUse: number | undefined;
  /** What the board witnesses of the ledger, learnt at every (re)sync and from each RELAY_ENABLE_HEAD */
  private boardWitness: BoardWitness = { kind: 'unknown' };
  /** The board's answer to GET_SESSION at the last (re)sync (before the reader is ready) */
  private boardSession: BoardSession | undefined;
  private sessionReports = 0;
  private syncing: Promise<void> | undefined;
  private readonly totals = { connects: 0, boots: 0, sessions: 0 };
  private finishedLinkStats: LinkStats = emptyLinkStats();
  /**
   * Device events already reported AND recorded: the board resends an event until it is
   * acknowledged, even across a reconnect; one not recorded is reported again when it comes back
   */
  private readonly reportedDeviceEvents: string[] = [];
  /** Device events handed to the listeners whose answer is not in yet, by key */
  private readonly reportingDeviceEvents = new Map<string, Promise<boolean>>();

  constructor(private readonly options: SerialReaderOptions) {
    this.name = options.name ?? 'Serial reader';
    this.clock = options.clock ?? systemSchedulingClock;
    this.logger = (options.logger ?? silentLogger).child({ module: 'serial-reader' });
    this.slot = new ReaderSlot((err) => this.logger.error({ err: String(err) }, 'reader listener failed'));
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
    const link = this.requireLink();
    await link.request('display', { lines: fitLines(message.lines) });
    if (message.tone) await link.request('buzzer', { steps: TONE_PATTERNS[message.tone] });
    if (message.led) await link.request('leds', { leds: LED_PATTERNS[message.led] });
  }

  /** DISPLAY_QR: the board renders the code from its text; a board that does not know the command shows the text */
  async showQr(qr: PanelQr): Promise<void> {
    const link = this.requireLink();
    try {
      await link.request('display-qr', { ecc: QrEcc.M, text: qr.text, caption: fitLines(qr.caption).slice(0, MAX_QR_CAPTION_LINES) });
    } catch (err) {
      if (!isTallyError(err, 'FRAME_REJECTED') || err.context.reason !== 'unknown-command') throw err;
      await link.request('display', { lines: fitLines([...qr.caption, qr.text]) });
    }
  }

  // ---- DeviceControl: CardReader already owns onEvent, so the device face is `device`

  async enable(useSeq: number, maxMs: number, head?: LedgerHead): Promise<void> {
    const link = this.requireLink();
    this.forgetDeviceEvents(useSeq);
    if (this.boardWitness.kind !== 'head') {
      // a protocol 1 board keeps no head (serial-protocol.md §6.5)
      await link.request('relay-enable', { useSeq, maxMs });
      this.activeUse = useSeq;
      return;
    }
    if (!head) throw new TallyError('INTERNAL', 'a board with the head witness needs the ledger head to close the relay');
    const proposed = { seq: head.seq, hash: head.hash.slice(0, HEAD_HASH_LENGTH) };
    const result = await link.request('relay-enable-head', { useSeq, maxMs, head: proposed });
    this.boardWitness = { kind: 'head', seq: result.held.seq, hashPrefix: result.held.hash };
    if (result.status !== HeadStatus.CLOSED) {
      this.logger.error({ useSeq, sent: head.seq, held: result.held.seq }, 'relay board refused the head: the ledger is behind the board');
      throw new TallyError('BOARD_HEAD_REFUSED', `board holds seq ${result.held.seq}, refused seq ${head.seq}`, {
        held: { seq: result.held.seq, hashPrefix: Buffer.from(result.held.hash).toString('hex') },
        sent: head.seq,
      });
    }
    this.activeUse = useSeq;
  }

  /** What the board witnesses of the ledger (unknown until it answered GET_INFO and GET_HEAD) */
  witness(): BoardWitness {
    return this.boardWitness;
  }

  async disable(): Promise<void> {
    const link = this.requireLink();
    await link.request('relay-disable', {});
  }

  /**
   * The DeviceControl face of this backend (its onEvent carries device events).
   * A listener may return whether it recorded the event (false, or a promise
   * of false: not recorded); the board's frame is ACKed only once every
   * listener has, so an event not recorded comes again, also after a restart.
   */
  get device(): DeviceControl {
    return {
      enable: (useSeq, maxMs, head) => this.enable(useSeq, maxMs, head),
      disable: () => this.disable(),
      witness: () => this.witness(),
      session: () => this.boardSession,
      onEvent: (listener) => {
        this.deviceListeners.add(listener);
        return () => this.deviceListeners.delete(listener);
      },
    };
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
        if (info.protocolVersion >= HEAD_WITNESS_VERSION) {
          const held = await link.request('get-head', {});
          this.boardWitness = { kind: 'head', seq: held.seq, hashPrefix: held.hash };
          this.boardSession = await this.askSession(link);
        } else {
          this.boardWitness = { kind: 'none', protocolVersion: info.protocolVersion };
          this.boardSession = undefined;
        }
        const slot = await link.request('get-slot', {});
        if (this.link !== link) return;
        const session = this.slot.session();
        if (!slot.present) this.endSession();
        else if (!session || !bytesEqual(session.atr, slot.atr)) this.beginSession(link, slot.atr);
        this.logger.info({ firmware: info.firmwareVersion, hardware: info.hardwareId, protocol: info.protocolVersion, card: slot.present, ...this.witnessLog() }, 'reader ready');
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

  /**
   * GET_SESSION (serial-protocol.md §6.6). The board answers from its one queue, after
   * any device event still waiting for our ACK, so an end it had to report is recorded
   * before the answer says idle. A board that does not know the command (NAK) says nothing.
   */
  private async askSession(link: FirmwareLink): Promise<BoardSession | undefined> {
    let answer;
    try {
      answer = await link.request('get-session', {});
    } catch (err) {
      if (isTallyError(err, 'FRAME_REJECTED')) return undefined;
      throw err;
    }
    const id = ++this.sessionReports;
    if (answer.state === SessionState.IDLE) return { id, state: 'idle' };
    return { id, state: answer.state === SessionState.RUNNING ? 'running' : 'enabled', useSeq: answer.useSeq, elapsedMs: answer.elapsedMs };
  }

  private witnessLog(): Record<string, unknown> {
    const w = this.boardWitness;
    return w.kind === 'head' ? { boardHeadSeq: w.seq, boardHeadHash: Buffer.from(w.hashPrefix).toString('hex') } : { boardHead: w.kind };
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
        const use = this.activeUse;
        this.activeUse = undefined;
        // the board has forgotten the use: this fault is ours to keep (the terminal retries it until recorded)
        if (use !== undefined) void this.report(`ended ${use}`, { type: 'fault', useSeq: use, detail: 'reader board restarted during the use' });
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
      case 'device-started':
        return this.report(`started ${event.body.useSeq}`, { type: 'started', useSeq: event.body.useSeq });
      case 'device-finished':
        if (this.activeUse === event.body.useSeq) this.activeUse = undefined;
        return this.report(`ended ${event.body.useSeq}`, { type: 'finished', useSeq: event.body.useSeq });
      case 'device-fault':
        if (this.activeUse === event.body.useSeq) this.activeUse = undefined;
        return this.report(`ended ${event.body.useSeq}`, { type: 'fault', useSeq: event.body.useSeq, detail: `${faultName(event.body.code)}${event.body.detail ? `: ${event.body.detail}` : ''}` });
    }
    return true;
  }

  /**
   * Reports a device session event once it is recorded: an event already
   * recorded is taken again at once (our ACK was lost), one being recorded
   * waits for that answer, and one a listener could not record is forgotten,
   * so its resend is reported again.
   */
  private report(key: string, event: DeviceEvent): boolean | Promise<boolean> {
    if (this.reportedDeviceEvents.includes(key)) return true;
    const inFlight = this.reportingDeviceEvents.get(key);
    if (inFlight) return inFlight;
    const settle = (recorded: boolean): boolean => {
      this.reportingDeviceEvents.delete(key);
      if (recorded) {
        this.reportedDeviceEvents.push(key);
        if (this.reportedDeviceEvents.length > 64) this.reportedDeviceEvents.shift();
      } else {
        this.logger.warn({ event }, 'device event not recorded: not acknowledged, the board sends it again');
      }
      return recorded;
    };
    const answer = this.emitDevice(event);
    if (typeof answer === 'boolean') return settle(answer);
    const pending = answer.then(settle);
    this.reportingDeviceEvents.set(key, pending);
    return pending;
  }

  private forgetDeviceEvents(useSeq: number): void {
    for (const key of [`started ${useSeq}`, `ended ${useSeq}`]) {
      const at = this.reportedDeviceEvents.indexOf(key);
      if (at >= 0) this.reportedDeviceEvents.splice(at, 1);
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

  /** true when every listener took the event (true or nothing), false when one did not (false, a throw, a rejection) */
  private emitDevice(event: DeviceEvent): boolean | Promise<boolean> {
    return askListeners(this.deviceListeners, event, (err) => this.logger.error({ err: String(err) }, 'device listener failed'));
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

/** Trims text to what the display takes: 4 lines of at most 64 bytes of UTF-8, cut on a character boundary */
export function fitLines(lines: readonly string[]): string[] {
  const encoder = new TextEncoder();
  return lines.slice(0, MAX_DISPLAY_LINES).map((line) => {
    let out = line;
    while (encoder.encode(out).length > MAX_LINE_BYTES) out = [...out].slice(0, -1).join('');
    return out;
  });
}

function faultName(code: number): string {
  switch (code) {
    case FaultCode.START_FAILED:
      return 'device failed to start';
    case FaultCode.RUN_FAULT:
      return 'device fault';
    case FaultCode.RELAY_FAULT:
      return 'relay fault';
    default:
      return `fault ${code}`;
  }
}


function emptyLinkStats(): LinkStats {
  return { framesIn: 0, framesOut: 0, resends: 0, naksSent: 0, naksReceived: 0, duplicateEvents: 0, eventsNotAccepted: 0, discardedBytes: 0 };
}

