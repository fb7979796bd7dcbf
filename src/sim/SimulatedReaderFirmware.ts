/**
 * The terminal's microcontroller, simulated: it speaks the real bytes of
 * firmware-protocol/serial-protocol.md over any ByteTransport (a socat pty, a
 * real UART, the in-memory pair). It has a card slot, a display, a buzzer,
 * three LEDs and the relay of a simulated medical device, all readable back,
 * and fault switches: drop ACKs, corrupt CRCs, split writes, pull the card
 * mid-APDU, reboot, unplug.
 */
import { TallyError } from '../errors.js';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cardTimeMs, type CardTimingModel } from './cardTiming.js';
import { dirname } from 'node:path';
import { bytesEqual } from '../codecs/bytes.js';
import type { SmartCard } from '../card/ApduChannel.js';
import { Command, HEAD_WITNESS_VERSION, NakReason, PROTOCOL_VERSION, RESPONSE_FLAG, type NakReasonCode } from '../codecs/firmware/commands.js';
import { HEAD_IMAGE_LENGTH, HeadStatus, headAccepted, readHeadImage, writeHeadImage, type ChainHead } from '../codecs/firmware/head.js';
import { ApduStatus } from '../codecs/firmware/card.js';
import { FrameDecoder, MAX_PAYLOAD, encodeFrame, type Frame } from '../codecs/firmware/frame.js';
import {
  UnknownCommandError,
  encodeMessage,
  eventCommand,
  needsAck,
  parseMessage,
  requestCommand,
  type EventBodies,
  type EventName,
  type FirmwareMessage,
  type RequestMessage,
  type ResponseBodies,
  type RequestName,
} from '../codecs/firmware/messages.js';
import { renderQr, type QrShown } from './qrDisplay.js';
import { Led, LedMode, type BuzzerStep, type LedModeCode } from '../codecs/firmware/panel.js';
import { FaultCode, FinishReason, SessionState, type FaultCodeValue, type FinishReasonCode } from '../codecs/firmware/relay.js';
import { BootReason, type BootReasonCode } from '../codecs/firmware/system.js';
import { SerialReaderBackend, type SerialReaderOptions } from '../readers/serial/SerialReaderBackend.js';
import type { ByteTransport } from '../transports/ByteTransport.js';
import { createInMemoryPair, type InMemoryPair } from '../transports/InMemoryDuplex.js';

export type SimulatedDeviceBehaviour = 'normal' | 'fault-before-start' | 'fault-while-running' | 'never-starts';

export interface FirmwareFaults {
  /** Line noise towards the board: the next N chunks of bytes from the host never arrive */
  loseIncoming: number;
  /** Do not ACK the next N frames from the host (they are still executed once) */
  dropAcks: number;
  /** Flip a bit of the CRC in the next N frames sent (ACKs included) */
  corruptFrames: number;
  /** Write each frame in random pieces, each on its own write */
  splitWrites: boolean;
  /** Hold each response this long before sending it (a slow card); with dropAcks it makes the host resend */
  responseDelayMs: number;
  /** Pull the card just before or just after the card executes the Nth APDU from now (1-based) */
  pullCard: { atApdu: number; when: 'before' | 'after' } | undefined;
}

export interface FirmwareStats {
  framesIn: number;
  framesOut: number;
  requests: number;
  duplicateRequests: number;
  acksDropped: number;
  framesCorrupted: number;
  resends: number;
  naksSent: number;
  discardedBytes: number;
  apdus: number;
  boots: number;
  eventsDropped: number;
  incomingLost: number;
  /** RELAY_ENABLE_HEAD refused: the head was not above the one in NVM */
  headsRefused: number;
}

export interface PanelState {
  lines: string[];
  /** The last pattern played, and how many patterns so far */
  lastBuzzer: BuzzerStep[];
  buzzerCount: number;
  leds: { green: LedModeCode; red: LedModeCode; amber: LedModeCode };
  /** The QR code on the display (DISPLAY_QR) until a DISPLAY replaces it */
  qr?: QrShown;
  /** QR codes shown since the last reset */
  qrCount: number;
}

export interface RelayState {
  closed: boolean;
  useSeq: number | undefined;
  /** The device reported started for the current use */
  running: boolean;
}

export interface SimulatedReaderFirmwareOptions {
  readonly firmwareVersion?: string;
  readonly hardwareId?: string;
  readonly ackTimeoutMs?: number;
  readonly maxAttempts?: number;
  /** The device behind the relay */
  readonly device?: { startDelayMs?: number; runMs?: number; startTimeoutMs?: number };
  /** After its attempts, an unacknowledged event is tried again this often (it is never dropped) */
  readonly eventRetryMs?: number;
  /** Time the MCU is deaf after a reset */
  readonly bootDelayMs?: number;
  /** For split writes; Math.random by default */
  readonly random?: () => number;
  /** Every frame in and out, for `tally sim reader --trace` */
  readonly trace?: (direction: 'in' | 'out', raw: Uint8Array) => void;
  /** The protocol the board speaks: 2 (default) keeps the chain head, 1 is a board from before the head witness */
  readonly protocolVersion?: 1 | 2;
  /**
   * The board's non-volatile memory for the chain head (the two-slot image of serial-protocol.md §6.5),
   * kept in this file so the head survives the process as NVM survives a power cut; without it, in memory
   * (it still survives reboot() and powerOff()).
   */
  readonly headFile?: string;
  /** A real chip's time per APDU in the card slot (bit rate, signing: sim/cardTiming.ts); default none, the card answers at once */
  readonly cardTiming?: CardTimingModel;
}

interface Outbound {
  readonly kind: 'response' | 'event';
  readonly seq: number;
  readonly command: number;
  readonly frame: Uint8Array;
  attempts: number;
}

/** Events kept while the host does not acknowledge them (a pulled cable) */
export const MAX_QUEUED_EVENTS = 32;

const LED_NAMES = { [Led.GREEN]: 'green', [Led.RED]: 'red', [Led.AMBER]: 'amber' } as const;

export class SimulatedReaderFirmware {
  readonly faults: FirmwareFaults = { loseIncoming: 0, dropAcks: 0, corruptFrames: 0, splitWrites: false, responseDelayMs: 0, pullCard: undefined };
  readonly stats: FirmwareStats = {
    framesIn: 0,
    framesOut: 0,
    requests: 0,
    duplicateRequests: 0,
    acksDropped: 0,
    framesCorrupted: 0,
    resends: 0,
    naksSent: 0,
    discardedBytes: 0,
    apdus: 0,
    boots: 0,
    eventsDropped: 0,
    incomingLost: 0,
    headsRefused: 0,
  };
  panel: PanelState = emptyPanel();
  relay: RelayState = { closed: false, useSeq: undefined, running: false };
  deviceBehaviour: SimulatedDeviceBehaviour = 'normal';

  private transport: ByteTransport | undefined;
  private detachTransport: (() => void)[] = [];
  private decoder = new FrameDecoder();
  private slot: SmartCard | undefined;
  private atr: Uint8Array | undefined;
  private outbound: Outbound[] = [];
  private ackTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private deviceTimers: NodeJS.Timeout[] = [];
  private nextSeq = 0;
  private lastRequestRaw: Uint8Array | undefined;
  private booting = false;
  /** Waiting for the boot in progress to end (booted()) */
  private bootWaiters: (() => void)[] = [];
  private bootId = Math.floor(Math.random() * 0x10000);
  private powered = false;
  private writeChain: Promise<void> = Promise.resolve();
  private relayClosedAt = 0;
  /** The NVM image holding the chain head: survives reboots, never touched by resetVolatile() */
  private headImage: Uint8Array;
  private readonly options: Required<Omit<SimulatedReaderFirmwareOptions, 'trace' | 'device' | 'headFile' | 'cardTiming'>> & {
    headFile: string | undefined;
    cardTiming: CardTimingModel | undefined;
    device: { startDelayMs: number; runMs: number | undefined; startTimeoutMs: number };
    trace: SimulatedReaderFirmwareOptions['trace'];
  };

  constructor(options: SimulatedReaderFirmwareOptions = {}) {
    this.options = {
      firmwareVersion: options.firmwareVersion ?? 'sim-1.0.0',
      hardwareId: options.hardwareId ?? 'TS-MCU-SIM',
      ackTimeoutMs: options.ackTimeoutMs ?? 200,
      maxAttempts: options.maxAttempts ?? 4,
      eventRetryMs: options.eventRetryMs ?? 1000,
      bootDelayMs: options.bootDelayMs ?? 5,
      random: options.random ?? Math.random,
      device: { startDelayMs: options.device?.startDelayMs ?? 10, runMs: options.device?.runMs, startTimeoutMs: options.device?.startTimeoutMs ?? 5000 },
      trace: options.trace,
      protocolVersion: options.protocolVersion ?? (PROTOCOL_VERSION as 2),
      headFile: options.headFile,
      cardTiming: options.cardTiming,
    };
    this.headImage = this.loadHeadImage();
  }

  /** The chain head in the board's NVM (seq 0: none yet) */
  get head(): ChainHead {
    return readHeadImage(this.headImage).head;
  }

  /**
   * The service procedure (a jumper held at power-on on the real board): the held head is erased,
   * so the board accepts any head again, e.g. after the investor re-provisioned the terminal.
   */
  clearHead(): void {
    this.storeHeadImage(new Uint8Array(HEAD_IMAGE_LENGTH));
  }

  private loadHeadImage(): Uint8Array {
    const file = this.options.headFile;
    if (!file || !existsSync(file)) return new Uint8Array(HEAD_IMAGE_LENGTH);
    const bytes = readFileSync(file);
    const image = new Uint8Array(HEAD_IMAGE_LENGTH);
    image.set(bytes.subarray(0, HEAD_IMAGE_LENGTH));
    return image;
  }

  private storeHeadImage(image: Uint8Array): void {
    const file = this.options.headFile;
    if (file) {
      // the real board writes one slot; the file is replaced whole, atomically, before the relay closes
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, image);
      renameSync(`${file}.tmp`, file);
    }
    this.headImage = image;
  }

  /** The card in the slot, if any */
  get card(): SmartCard | undefined {
    return this.slot;
  }

  get isAttached(): boolean {
    return this.transport !== undefined;
  }

  /** Connects the MCU's UART to a transport. Closing the transport detaches it (an unplugged cable). */
  attach(transport: ByteTransport): void {
    this.detach();
    this.transport = transport;
    this.detachTransport = [
      transport.onData((bytes) => this.onBytes(bytes)),
      transport.onClose(() => {
        if (this.transport === transport) this.detach();
      }),
    ];
    // events that waited for the cable go out now
    this.pump();
  }

  /** Disconnects the UART. The MCU keeps running; its unacknowledged events wait for the next attach. */
  detach(): void {
    for (const off of this.detachTransport) off();
    this.detachTransport = [];
    this.transport = undefined;
    this.stopAckTimer();
    this.outbound = this.outbound.filter((item) => item.kind === 'event');
    for (const item of this.outbound) item.attempts = 0;
  }

  /** Power on: the MCU boots and reports BOOT, then the card already in the slot */
  powerOn(): void {
    this.boot(BootReason.POWER_ON);
  }

  /** A watchdog or brown-out reset: relay opens, all volatile state is lost, BOOT follows */
  reboot(reason: BootReasonCode = BootReason.WATCHDOG): void {
    this.boot(reason);
  }

  powerOff(): void {
    this.powered = false;
    this.resetVolatile();
  }

  /** Resolves once the board is powered and has booted (its BOOT event sent): what "the board is ready" means */
  booted(): Promise<void> {
    if (this.powered && !this.booting) return Promise.resolve();
    return new Promise((resolve) => this.bootWaiters.push(resolve));
  }

  insertCard(card: SmartCard): void {
    if (this.slot) this.removeCard();
    this.slot = card;
    this.atr = card.powerOn();
    if (this.powered && !this.booting) this.sendEvent('card-inserted', { atr: this.atr });
  }

  removeCard(): SmartCard | undefined {
    const card = this.slot;
    if (!card) return undefined;
    this.slot = undefined;
    this.atr = undefined;
    card.powerOff();
    if (this.powered && !this.booting) this.sendEvent('card-removed', {});
    return card;
  }

  /** The device signals the end of its session */
  finishDevice(): void {
    if (!this.relay.closed || this.relay.useSeq === undefined) return;
    this.endUse(FinishReason.COMPLETED);
  }

  /** The device reports a fault while running */
  faultDevice(detail: string): void {
    if (!this.relay.closed || this.relay.useSeq === undefined) return;
    this.failUse(FaultCode.RUN_FAULT, detail);
  }

  private boot(reason: BootReasonCode): void {
    this.bootId = (this.bootId + 1) & 0xffff;
    const bootId = this.bootId;
    this.resetVolatile();
    this.powered = true;
    this.booting = true;
    this.stats.boots++;
    setTimeout(() => {
      if (!this.powered) return;
      this.booting = false;
      this.sendEvent('boot', { reason, protocolVersion: this.options.protocolVersion, bootId });
      if (this.slot) {
        this.atr = this.slot.powerOn();
        this.sendEvent('card-inserted', { atr: this.atr });
      }
      const waiters = this.bootWaiters;
      this.bootWaiters = [];
      for (const resolve of waiters) resolve();
    }, this.options.bootDelayMs);
  }

  private resetVolatile(): void {
    this.outbound = [];
    this.stopAckTimer();
    this.clearDeviceTimers();
    if (this.staleTimer) clearTimeout(this.staleTimer);
    this.decoder = new FrameDecoder();
    this.nextSeq = 0;
    this.lastRequestRaw = undefined;
    this.panel = emptyPanel();
    this.relay = { closed: false, useSeq: undefined, running: false };
    this.slot?.powerOff();
  }

  // ---- receiving

  private onBytes(bytes: Uint8Array): void {
    if (!this.powered || this.booting) return;
    if (this.faults.loseIncoming > 0) {
      this.faults.loseIncoming--;
      this.stats.incomingLost++;
      return;
    }
    this.options.trace?.('in', bytes);
    for (const result of this.decoder.push(bytes)) {
      if (result.type === 'frame') this.onFrame(result.frame, result.raw);
      else {
        this.stats.discardedBytes += result.bytes.length;
        if (result.reason === 'bad-crc' && result.header && needsAck(result.header.command)) this.nak(result.header.seq, result.header.command, NakReason.BAD_CRC);
      }
    }
    if (this.staleTimer) clearTimeout(this.staleTimer);
    if (this.decoder.pending > 0) this.staleTimer = setTimeout(() => this.decoder.expire(), 100);
  }

  private onFrame(frame: Frame, raw: Uint8Array): void {
    this.stats.framesIn++;
    let message: FirmwareMessage;
    try {
      message = parseMessage(frame);
    } catch (err) {
      if (needsAck(frame.command)) this.nak(frame.seq, frame.command, err instanceof UnknownCommandError ? NakReason.UNKNOWN_COMMAND : NakReason.BAD_PAYLOAD);
      return;
    }
    switch (message.kind) {
      case 'ack': {
        const head = this.outbound[0];
        if (head && head.seq === message.seq && head.command === message.body.ackedCommand) {
          this.outbound.shift();
          this.stopAckTimer();
          this.pump();
        }
        return;
      }
      case 'nak': {
        const head = this.outbound[0];
        if (head && head.seq === message.seq && head.command === message.body.nakedCommand) {
          if (message.body.reason === NakReason.BAD_CRC || message.body.reason === NakReason.BUSY) this.resendHead();
          else {
            this.outbound.shift();
            this.stopAckTimer();
            this.pump();
          }
        }
        return;
      }
      case 'request':
        if (!this.speaks(frame.command)) {
          this.nak(message.seq, frame.command, NakReason.UNKNOWN_COMMAND);
          return;
        }
        this.onRequest(message, raw);
        return;
      default:
        // the host sends neither responses nor events
        this.nak(message.seq, frame.command, NakReason.UNKNOWN_COMMAND);
    }
  }

  private onRequest(message: RequestMessage, raw: Uint8Array): void {
    const duplicate = this.lastRequestRaw !== undefined && bytesEqual(raw, this.lastRequestRaw);
    if (this.faults.dropAcks > 0) {
      this.faults.dropAcks--;
      this.stats.acksDropped++;
    } else {
      this.writeFrame(encodeFrame(encodeMessage({ kind: 'ack', seq: message.seq, body: { ackedCommand: requestCommand(message.name) } })));
    }
    // the host is listening again: an event waiting in its slow retries goes now
    const head = this.outbound[0];
    if (head && head.kind === 'event' && head.attempts >= this.options.maxAttempts) {
      this.stopAckTimer();
      head.attempts = 0;
      this.pump();
    }
    if (duplicate) {
      // the host resent because our ACK was lost: ACK again, never execute twice
      this.stats.duplicateRequests++;
      return;
    }
    this.lastRequestRaw = raw;
    this.stats.requests++;
    this.execute(message);
  }

  /** Protocol 1 boards know no head commands; protocol 2 boards no longer close the relay without a head */
  private speaks(command: number): boolean {
    const withHead = this.options.protocolVersion >= HEAD_WITNESS_VERSION;
    if (command === Command.GET_HEAD || command === Command.RELAY_ENABLE_HEAD || command === Command.GET_SESSION) return withHead;
    if (command === Command.RELAY_ENABLE) return !withHead;
    return true;
  }

  private execute(message: RequestMessage): void {
    const respond = <N extends RequestName>(name: N, body: ResponseBodies[N]): void => this.sendResponse(message.seq, name, body);
    switch (message.name) {
      case 'get-info':
        return respond('get-info', { protocolVersion: this.options.protocolVersion, maxPayload: MAX_PAYLOAD, firmwareVersion: this.options.firmwareVersion, hardwareId: this.options.hardwareId });
      case 'ping':
        return respond('ping', { nonce: message.body.nonce });
      case 'reset':
        respond('reset', {});
        // give the response time to leave the UART before the reset
        setTimeout(() => this.boot(BootReason.RESET_COMMAND), 20);
        return;
      case 'get-slot':
        return respond('get-slot', this.slot && this.atr ? { present: true, atr: this.atr } : { present: false, atr: new Uint8Array(0) });
      case 'apdu':
      {
        const answer = this.transmitToCard(message.body.apdu);
        const timing = this.options.cardTiming;
        if (!timing || answer.status !== ApduStatus.OK) return respond('apdu', answer);
        // the board waits on the card as on a real chip: its answer comes when the chip's time is up
        setTimeout(() => respond('apdu', answer), cardTimeMs(timing, message.body.apdu, answer.response));
        return;
      }
      case 'display':
        this.panel.lines = [...message.body.lines];
        delete this.panel.qr;
        return respond('display', {});
      case 'display-qr':
        this.panel.qr = renderQr(message.body);
        this.panel.lines = [...message.body.caption];
        this.panel.qrCount++;
        return respond('display-qr', {});
      case 'buzzer':
        this.panel.lastBuzzer = message.body.steps.map((s) => ({ ...s }));
        this.panel.buzzerCount++;
        return respond('buzzer', {});
      case 'leds':
        for (const { led, mode } of message.body.leds) this.panel.leds[LED_NAMES[led]] = mode;
        return respond('leds', {});
      case 'relay-enable':
        this.enableRelay(message.body.useSeq, message.body.maxMs);
        return respond('relay-enable', {});
      case 'relay-disable':
        if (this.relay.closed) this.endUse(FinishReason.DISABLED);
        return respond('relay-disable', {});
      case 'get-head':
        return respond('get-head', this.head);
      case 'relay-enable-head': {
        const held = this.head;
        const proposed = message.body.head;
        if (!headAccepted(held, proposed)) {
          this.stats.headsRefused++;
          return respond('relay-enable-head', { status: HeadStatus.STALE_HEAD, held });
        }
        // NVM first: a power cut between the write and the relay leaves the new head and an open relay, never the reverse
        this.storeHeadImage(writeHeadImage(this.headImage, proposed).image);
        this.enableRelay(message.body.useSeq, message.body.maxMs);
        return respond('relay-enable-head', { status: HeadStatus.CLOSED, held: proposed });
      }
      case 'get-session':
        return respond('get-session', this.sessionNow());
    }
  }

  private transmitToCard(apdu: Uint8Array): ResponseBodies['apdu'] {
    const card = this.slot;
    if (!card) return { status: ApduStatus.NO_CARD, response: new Uint8Array(0) };
    this.stats.apdus++;
    const pull = this.faults.pullCard;
    if (pull) pull.atApdu--;
    const pullNow = pull !== undefined && pull.atApdu === 0;
    if (pullNow) this.faults.pullCard = undefined;
    if (pullNow && pull.when === 'before') {
      this.removeCard();
      return { status: ApduStatus.CARD_MUTE, response: new Uint8Array(0) };
    }
    let response: Uint8Array;
    try {
      response = card.transmit(apdu);
    } catch {
      return { status: ApduStatus.CARD_MUTE, response: new Uint8Array(0) };
    }
    if (pullNow) {
      // the card executed the command; its answer is lost with the card
      this.removeCard();
      return { status: ApduStatus.CARD_MUTE, response: new Uint8Array(0) };
    }
    return { status: ApduStatus.OK, response };
  }

  // ---- the relay and the device behind it

  /** GET_SESSION: the relay's use now; a boot left it idle (serial-protocol.md §6.6) */
  private sessionNow(): ResponseBodies['get-session'] {
    const useSeq = this.relay.useSeq;
    if (!this.relay.closed || useSeq === undefined) return { state: SessionState.IDLE, useSeq: 0, elapsedMs: 0 };
    return { state: this.relay.running ? SessionState.RUNNING : SessionState.ENABLED, useSeq, elapsedMs: Math.max(0, Date.now() - this.relayClosedAt) };
  }

  private enableRelay(useSeq: number, maxMs: number): void {
    if (this.relay.closed) this.endUse(FinishReason.DISABLED);
    this.relay = { closed: true, useSeq, running: false };
    this.relayClosedAt = Date.now();
    const { startDelayMs, runMs, startTimeoutMs } = this.options.device;
    const behaviour = this.deviceBehaviour;
    if (maxMs > 0) this.later(maxMs, () => this.endUse(FinishReason.TIME_LIMIT));
    switch (behaviour) {
      case 'never-starts':
        this.later(startTimeoutMs, () => this.failUse(FaultCode.START_FAILED, `no start signal in ${startTimeoutMs} ms`));
        return;
      case 'fault-before-start':
        this.later(startDelayMs, () => this.failUse(FaultCode.START_FAILED, 'device refused to start'));
        return;
      default:
        this.later(startDelayMs, () => {
          this.relay.running = true;
          this.sendEvent('device-started', { useSeq });
          if (behaviour === 'fault-while-running') this.later(startDelayMs, () => this.failUse(FaultCode.RUN_FAULT, 'device fault while running'));
          else if (runMs !== undefined) this.later(runMs, () => this.endUse(FinishReason.COMPLETED));
        });
    }
  }

  private endUse(reason: FinishReasonCode): void {
    const useSeq = this.relay.useSeq;
    if (!this.relay.closed || useSeq === undefined) return;
    this.clearDeviceTimers();
    const runMs = Math.max(0, Date.now() - this.relayClosedAt);
    this.relay = { closed: false, useSeq: undefined, running: false };
    this.sendEvent('device-finished', { useSeq, reason, runMs });
  }

  private failUse(code: FaultCodeValue, detail: string): void {
    const useSeq = this.relay.useSeq;
    if (!this.relay.closed || useSeq === undefined) return;
    this.clearDeviceTimers();
    this.relay = { closed: false, useSeq: undefined, running: false };
    this.sendEvent('device-fault', { useSeq, code, detail });
  }

  private later(ms: number, fn: () => void): void {
    this.deviceTimers.push(setTimeout(fn, ms));
  }

  private clearDeviceTimers(): void {
    for (const t of this.deviceTimers) clearTimeout(t);
    this.deviceTimers = [];
  }

  // ---- sending: responses and events wait in one queue, one unacknowledged frame at a time

  private sendResponse<N extends RequestName>(seq: number, name: N, body: ResponseBodies[N]): void {
    const delay = this.faults.responseDelayMs;
    if (delay > 0) {
      const bootsBefore = this.stats.boots;
      // a response held across a reset is lost with the reset
      setTimeout(() => this.stats.boots === bootsBefore && this.queueResponse(seq, name, body), delay);
      return;
    }
    this.queueResponse(seq, name, body);
  }

  private queueResponse<N extends RequestName>(seq: number, name: N, body: ResponseBodies[N]): void {
    const frame = encodeFrame(encodeMessage({ kind: 'response', seq, name, body } as FirmwareMessage));
    this.enqueue({ kind: 'response', seq, command: requestCommand(name) | RESPONSE_FLAG, frame, attempts: 0 });
  }

  private sendEvent<N extends EventName>(name: N, body: EventBodies[N]): void {
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) & 0xff;
    const frame = encodeFrame(encodeMessage({ kind: 'event', seq, name, body } as FirmwareMessage));
    this.enqueue({ kind: 'event', seq, command: eventCommand(name), frame, attempts: 0 });
  }

  private enqueue(item: Outbound): void {
    // a response with no cable goes nowhere; an event waits for the cable (bounded: the oldest goes first)
    if (!this.transport && item.kind === 'response') return;
    this.outbound.push(item);
    const events = this.outbound.filter((o) => o.kind === 'event');
    if (events.length > MAX_QUEUED_EVENTS) {
      this.outbound.splice(this.outbound.indexOf(events[0]!), 1);
      this.stats.eventsDropped++;
    }
    if (this.outbound.length === 1) this.pump();
  }

  private pump(): void {
    const head = this.outbound[0];
    if (!head || this.ackTimer || !this.transport) return;
    head.attempts++;
    if (head.attempts > 1) this.stats.resends++;
    this.writeFrame(head.frame);
    const outOfAttempts = head.attempts >= this.options.maxAttempts;
    // a response nobody acknowledges is dropped; an event is tried again, ever slower (up to 8x), until it is acknowledged
    const backoff = Math.min(2 ** (head.attempts - this.options.maxAttempts), 8);
    const wait = outOfAttempts && head.kind === 'event' ? this.options.eventRetryMs * backoff : this.options.ackTimeoutMs;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.outbound[0] !== head) return;
      if (outOfAttempts && head.kind === 'response') this.outbound.shift();
      this.pump();
    }, wait);
  }

  private resendHead(): void {
    this.stopAckTimer();
    const head = this.outbound[0];
    if (head && head.kind === 'response' && head.attempts >= this.options.maxAttempts) this.outbound.shift();
    this.pump();
  }

  private stopAckTimer(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private nak(seq: number, command: number, reason: NakReasonCode): void {
    this.stats.naksSent++;
    this.writeFrame(encodeFrame(encodeMessage({ kind: 'nak', seq, body: { nakedCommand: command, reason } })));
  }

  private writeFrame(frame: Uint8Array): void {
    const transport = this.transport;
    if (!transport) return;
    let bytes = frame;
    if (this.faults.corruptFrames > 0) {
      this.faults.corruptFrames--;
      this.stats.framesCorrupted++;
      bytes = frame.slice();
      bytes[bytes.length - 1]! ^= 0x01;
    }
    this.stats.framesOut++;
    this.options.trace?.('out', bytes);
    const pieces = this.faults.splitWrites ? splitRandomly(bytes, this.options.random) : [bytes];
    // keep frames in order even when a split write is still going out
    this.writeChain = this.writeChain.then(async () => {
      for (const piece of pieces) {
        if (!transport.isOpen) return;
        await transport.write(piece).catch(() => undefined);
        if (pieces.length > 1) await new Promise((r) => setImmediate(r));
      }
    });
  }
}

function emptyPanel(): PanelState {
  return { lines: [], lastBuzzer: [], buzzerCount: 0, qrCount: 0, leds: { green: LedMode.OFF, red: LedMode.OFF, amber: LedMode.OFF } };
}

function splitRandomly(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = 1 + Math.floor(random() * Math.min(8, bytes.length - offset));
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}


export interface InMemorySerialReader {
  /** The daemon's serial backend; call reader.start() */
  readonly reader: SerialReaderBackend;
  /** The board at the other end of the wire */
  readonly firmware: SimulatedReaderFirmware;
  /** Pulls the cable: the reader becomes unavailable until plug() */
  unplug(): Promise<void>;
  plug(): void;
}

/**
 * The serial backend and a powered simulated board joined by an in-memory
 * wire: the real protocol bytes with nothing to install (the demo). Each
 * (re)open of the port makes a fresh wire.
 */
export function createInMemorySerialReader(
  options: { firmware?: SimulatedReaderFirmwareOptions; reader?: Omit<SerialReaderOptions, 'openTransport'> } = {},
): InMemorySerialReader {
  const firmware = new SimulatedReaderFirmware(options.firmware);
  firmware.powerOn();
  let plugged = true;
  let wire: InMemoryPair | undefined;
  const reader = new SerialReaderBackend({
    name: 'Simulated serial reader (in memory)',
    ...options.reader,
    openTransport: async () => {
      if (!plugged) throw new TallyError('READER_UNAVAILABLE', 'serial device not present');
      wire = createInMemoryPair({ a: 'daemon', b: 'board' });
      firmware.attach(wire.b);
      return wire.a;
    },
  });
  return {
    reader,
    firmware,
    async unplug() {
      plugged = false;
      await wire?.a.close();
    },
    plug() {
      plugged = true;
    },
  };
}
