/**
 * The daemon's end of the serial firmware protocol: frames bytes through the
 * FrameParser, runs one ExchangeMachine per request (one request in flight at
 * a time), acknowledges and de-duplicates the device's events, and NAKs what
 * it cannot use. A device event is ACKed only once every listener has taken
 * it (a listener returns false, or a promise of false, for an event it could
 * not record): the device keeps an unacknowledged event and sends it again,
 * also to the next daemon after a crash (serial-protocol.md §5). Failures
 * become TallyErrors: READER_TIMEOUT (no ACK or no response), FRAME_REJECTED
 * (NAK), TRANSPORT_CLOSED.
 */
import { bytesEqual } from '../../codecs/bytes.js';
import { NakReason, commandName, type NakReasonCode } from '../../codecs/firmware/commands.js';
import { askListeners, type EventAnswer } from '../eventAnswers.js';
import { encodeFrame } from '../../codecs/firmware/frame.js';
import {
  UnknownCommandError,
  encodeMessage,
  needsAck,
  parseMessage,
  requestCommand,
  type EventMessage,
  type FirmwareMessage,
  type RequestBodies,
  type RequestName,
  type ResponseBodies,
} from '../../codecs/firmware/messages.js';
import { TallyError } from '../../errors.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { INITIAL_EXCHANGE, stepExchange, type ExchangeAction, type ExchangeFailure, type ExchangeInput, type ExchangeState } from './ExchangeMachine.js';
import { FrameParser, type DiscardedBytes, type ParsedFrame } from './FrameParser.js';
import { systemSchedulingClock, type SchedulingClock } from '../../util/scheduler.js';

export interface LinkTiming {
  readonly ackTimeoutMs: number;
  readonly responseTimeoutMs: number;
  /** Cards can take long (a signature on a slow chip) */
  readonly apduResponseTimeoutMs: number;
  /** Sends of one request in all */
  readonly maxAttempts: number;
  /** A partial frame with no new byte for this long is dropped */
  readonly staleFrameMs: number;
}

/** The protocol's defaults (serial-protocol.md, "Timing") */
export const DEFAULT_LINK_TIMING: LinkTiming = {
  ackTimeoutMs: 200,
  responseTimeoutMs: 1000,
  apduResponseTimeoutMs: 5000,
  maxAttempts: 4,
  staleFrameMs: 100,
};

export type TraceDirection = 'in' | 'out';
export type FrameTrace = (direction: TraceDirection, raw: Uint8Array, summary: string) => void;

export interface LinkStats {
  framesIn: number;
  framesOut: number;
  resends: number;
  naksSent: number;
  naksReceived: number;
  duplicateEvents: number;
  /** Events a listener could not take: not ACKed, so the device sends them again */
  eventsNotAccepted: number;
  discardedBytes: number;
}

interface PendingExchange {
  readonly name: RequestName;
  readonly seq: number;
  readonly command: number;
  readonly frame: Uint8Array;
  readonly responseTimeoutMs: number;
  state: ExchangeState;
  timer: unknown;
  response: unknown;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export type EventListener = (event: EventMessage) => EventAnswer;

export interface FirmwareLinkOptions {
  readonly clock?: SchedulingClock;
  readonly timing?: Partial<LinkTiming>;
  readonly trace?: FrameTrace;
}

export class FirmwareLink {
  readonly timing: LinkTiming;
  readonly stats: LinkStats = { framesIn: 0, framesOut: 0, resends: 0, naksSent: 0, naksReceived: 0, duplicateEvents: 0, eventsNotAccepted: 0, discardedBytes: 0 };
  private readonly clock: SchedulingClock;
  private readonly trace: FrameTrace | undefined;
  private readonly parser = new FrameParser();
  private readonly eventListeners = new Set<EventListener>();
  private readonly discardListeners = new Set<(discarded: DiscardedBytes) => void>();
  private readonly closeListeners = new Set<(error?: Error) => void>();
  private readonly detach: (() => void)[] = [];
  private nextSeq = 0;
  private pending: PendingExchange | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** The last event every listener took (and we ACKed): a resend of it is ACKed again and dropped */
  private lastEventRaw: Uint8Array | undefined;
  /** Events handed to the listeners whose answer is not in yet: a resend meanwhile is dropped unanswered */
  private readonly delivering: Uint8Array[] = [];
  private staleTimer: unknown;
  private closed = false;

  constructor(private readonly transport: ByteTransport, options: FirmwareLinkOptions = {}) {
    this.clock = options.clock ?? systemSchedulingClock;
    this.timing = { ...DEFAULT_LINK_TIMING, ...options.timing };
    this.trace = options.trace;
    this.parser.on('data', (parsed: ParsedFrame) => this.onFrame(parsed));
    this.parser.on('discarded', (discarded: DiscardedBytes) => this.handleDiscarded(discarded));
    this.detach.push(
      transport.onData((bytes) => this.onBytes(bytes)),
      transport.onClose((error) => this.onTransportClosed(error)),
    );
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Sends one request and resolves with the device's typed response */
  request<N extends RequestName>(name: N, body: RequestBodies[N], options: { responseTimeoutMs?: number } = {}): Promise<ResponseBodies[N]> {
    const run = () => this.exchange(name, body, options.responseTimeoutMs);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result as Promise<ResponseBodies[N]>;
  }

  /** The event is ACKed once every listener has taken it (see readers/eventAnswers.ts); until then, not at all */
  onEvent(listener: EventListener): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onDiscarded(listener: (discarded: DiscardedBytes) => void): () => void {
    this.discardListeners.add(listener);
    return () => this.discardListeners.delete(listener);
  }

  /** Called once when the transport goes away (unplug) or close() is called */
  onClose(listener: (error?: Error) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.shutDown();
    await this.transport.close().catch(() => undefined);
  }

  private exchange(name: RequestName, body: unknown, responseTimeoutMs: number | undefined): Promise<unknown> {
    if (this.closed) return Promise.reject(new TallyError('TRANSPORT_CLOSED', `${name}: link closed`, { request: name }));
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) & 0xff;
    let frame: Uint8Array;
    try {
      frame = encodeFrame(encodeMessage({ kind: 'request', seq, name, body } as FirmwareMessage));
    } catch (err) {
      return Promise.reject(new TallyError('INTERNAL', `${name}: cannot encode request: ${(err as Error).message}`, { request: name }, { cause: err }));
    }
    return new Promise((resolve, reject) => {
      this.pending = {
        name,
        seq,
        command: requestCommand(name),
        frame,
        responseTimeoutMs: responseTimeoutMs ?? (name === 'apdu' ? this.timing.apduResponseTimeoutMs : this.timing.responseTimeoutMs),
        state: INITIAL_EXCHANGE,
        timer: undefined,
        response: undefined,
        resolve,
        reject,
      };
      this.feed({ type: 'start' });
    });
  }

  private feed(input: ExchangeInput): void {
    const exchange = this.pending;
    if (!exchange) return;
    const { state, actions } = stepExchange(exchange.state, input, { ...this.timing, responseTimeoutMs: exchange.responseTimeoutMs });
    exchange.state = state;
    for (const action of actions) this.perform(exchange, action);
  }

  private perform(exchange: PendingExchange, action: ExchangeAction): void {
    switch (action.type) {
      case 'send':
        if (action.attempt > 1) this.stats.resends++;
        this.send(exchange.frame, `${exchange.name} seq ${exchange.seq}${action.attempt > 1 ? ` (attempt ${action.attempt})` : ''}`);
        return;
      case 'start-timer':
        this.stopTimer(exchange);
        exchange.timer = this.clock.setTimeout(() => {
          exchange.timer = undefined;
          if (this.pending === exchange) this.feed({ type: 'timeout' });
        }, action.ms);
        return;
      case 'stop-timer':
        this.stopTimer(exchange);
        return;
      case 'succeed':
        this.pending = undefined;
        exchange.resolve(exchange.response);
        return;
      case 'fail':
        this.pending = undefined;
        exchange.reject(failureError(exchange.name, action.failure));
        return;
    }
  }

  private stopTimer(exchange: PendingExchange): void {
    if (exchange.timer !== undefined) this.clock.clearTimeout(exchange.timer);
    exchange.timer = undefined;
  }

  private send(frame: Uint8Array, summary: string): void {
    if (this.closed) return;
    this.stats.framesOut++;
    this.trace?.('out', frame, summary);
    // a failed write means the port is going away; its close event follows
    this.transport.write(frame).catch(() => undefined);
  }

  private sendLinkControl(message: FirmwareMessage): void {
    const frame = encodeFrame(encodeMessage(message));
    const summary = message.kind === 'ack' ? `ACK ${commandName(message.body.ackedCommand)} seq ${message.seq}` : `NAK seq ${message.seq}`;
    this.send(frame, summary);
  }

  private nak(seq: number, command: number, reason: NakReasonCode): void {
    this.stats.naksSent++;
    this.sendLinkControl({ kind: 'nak', seq, body: { nakedCommand: command, reason } });
  }

  private onBytes(bytes: Uint8Array): void {
    if (this.closed) return;
    this.parser.write(bytes);
    if (this.staleTimer !== undefined) this.clock.clearTimeout(this.staleTimer);
    this.staleTimer = undefined;
    if (this.parser.pending > 0) {
      this.staleTimer = this.clock.setTimeout(() => {
        this.staleTimer = undefined;
        this.parser.expire();
      }, this.timing.staleFrameMs);
    }
  }

  private handleDiscarded(discarded: DiscardedBytes): void {
    this.stats.discardedBytes += discarded.bytes.length;
    this.trace?.('in', discarded.bytes, `discarded ${discarded.bytes.length} bytes (${discarded.reason})`);
    for (const listener of this.discardListeners) listener(discarded);
    // a complete frame with a bad CRC: ask for it again, unless it claims to be link control
    if (discarded.reason === 'bad-crc' && discarded.header && needsAck(discarded.header.command)) {
      this.nak(discarded.header.seq, discarded.header.command, NakReason.BAD_CRC);
    }
  }

  private onFrame({ frame, raw }: ParsedFrame): void {
    this.stats.framesIn++;
    let message: FirmwareMessage;
    try {
      message = parseMessage(frame);
    } catch (err) {
      // whatever the payload codec says (PayloadError, or a bug), the frame is refused and the line goes on
      this.trace?.('in', raw, `${commandName(frame.command)} seq ${frame.seq}: ${(err as Error).message}`);
      if (needsAck(frame.command)) this.nak(frame.seq, frame.command, err instanceof UnknownCommandError ? NakReason.UNKNOWN_COMMAND : NakReason.BAD_PAYLOAD);
      return;
    }
    this.trace?.('in', raw, describe(message));
    const exchange = this.pending;
    switch (message.kind) {
      case 'ack':
        if (exchange && message.seq === exchange.seq && message.body.ackedCommand === exchange.command) this.feed({ type: 'ack' });
        return;
      case 'nak':
        this.stats.naksReceived++;
        if (exchange && message.seq === exchange.seq && message.body.nakedCommand === exchange.command) this.feed({ type: 'nak', reason: message.body.reason });
        return;
      case 'response':
        this.sendLinkControl({ kind: 'ack', seq: message.seq, body: { ackedCommand: frame.command } });
        if (exchange && message.seq === exchange.seq && message.name === exchange.name) {
          exchange.response = message.body;
          this.feed({ type: 'response' });
        }
        return;
      case 'event': {
        const ack = (): void => this.sendLinkControl({ kind: 'ack', seq: message.seq, body: { ackedCommand: frame.command } });
        // a resent event is byte-identical (two reboots are not: BOOT carries a boot id)
        if (this.lastEventRaw && bytesEqual(raw, this.lastEventRaw)) {
          // taken already: our ACK was lost
          this.stats.duplicateEvents++;
          ack();
          return;
        }
        if (this.delivering.some((d) => bytesEqual(raw, d))) {
          // still being recorded: its ACK follows when the listeners have it
          this.stats.duplicateEvents++;
          return;
        }
        this.deliver(message, raw, ack);
        return;
      }
      case 'request':
        // the device never sends requests
        this.nak(message.seq, frame.command, NakReason.UNKNOWN_COMMAND);
        return;
    }
  }

  /** Hands an event to every listener; ACKs it only when all of them took it, so an event not recorded comes again */
  private deliver(message: EventMessage, raw: Uint8Array, ack: () => void): void {
    // a listener's fault must not stop the line (the backend logs its own); the event is then not taken
    const answer = askListeners(this.eventListeners, message);
    const settle = (taken: boolean): void => {
      if (!taken) {
        this.stats.eventsNotAccepted++;
        return;
      }
      this.lastEventRaw = raw;
      ack();
    };
    if (typeof answer === 'boolean') {
      settle(answer);
      return;
    }
    this.delivering.push(raw);
    void answer.then((taken) => {
      this.delivering.splice(this.delivering.indexOf(raw), 1);
      // a link closed meanwhile sends nothing: the device sends the event again on the next one
      if (!this.closed) settle(taken);
    });
  }

  private onTransportClosed(error?: Error): void {
    if (this.closed) return;
    this.shutDown(error);
  }

  private shutDown(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.detach) off();
    if (this.staleTimer !== undefined) this.clock.clearTimeout(this.staleTimer);
    this.feed({ type: 'closed' });
    for (const listener of [...this.closeListeners]) listener(error);
  }
}

function failureError(request: RequestName, failure: ExchangeFailure): TallyError {
  const context = { request, failure: failure.type, attempts: failure.attempts };
  switch (failure.type) {
    case 'ack-timeout':
      return new TallyError('READER_TIMEOUT', `${request}: no ACK after ${failure.attempts} attempts`, context);
    case 'response-timeout':
      return new TallyError('READER_TIMEOUT', `${request}: no response`, context);
    case 'nak':
      return new TallyError('FRAME_REJECTED', `${request}: NAK (${failure.reasonName})`, { ...context, reason: failure.reasonName });
    case 'closed':
      return new TallyError('TRANSPORT_CLOSED', `${request}: link closed`, context);
  }
}

/** One line per message for traces */
export function describe(message: FirmwareMessage): string {
  switch (message.kind) {
    case 'ack':
      return `ACK ${commandName(message.body.ackedCommand)} seq ${message.seq}`;
    case 'nak':
      return `NAK ${commandName(message.body.nakedCommand)} seq ${message.seq} reason ${message.body.reason}`;
    default:
      return `${message.kind} ${message.name} seq ${message.seq}`;
  }
}
