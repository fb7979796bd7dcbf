/**
 * The PC/SC reader backend: one card slot behind pcscd, seen through the
 * CardReader contract. It follows readers as they appear and disappear, opens a
 * CardSession per card insertion, and survives pcscd being stopped or killed:
 * the PC/SC context is re-created with backoff until pcscd answers again, so a
 * replugged reader or a restarted pcscd is picked up without restarting us.
 */
import { TallyError, isTallyError } from '../../errors.js';
import type { CardReader, CardSession, ReaderEvent, ReaderState } from '../CardReader.js';
import { ReaderSlot } from '../ReaderSlot.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../../util/scheduler.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { createPcscLiteContext, type PcscContextFactory, type PcscContextHandle, type PcscReaderHandle, type PcscReaderStatus, type ShareMode } from './pcscLite.js';

export interface PcscCardReaderOptions {
  /** Use only a reader whose name contains this text or matches this pattern; default: the first reader pcscd lists */
  readonly readerName?: string | RegExp;
  /** 'exclusive' (default) keeps other programs off the card during a session */
  readonly shareMode?: ShareMode;
  /** Backoff for re-creating the PC/SC context while pcscd is away */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  readonly clock?: Clock;
  /** Where reconnect and connect retries wait (tests move it by hand) */
  readonly scheduler?: Scheduler;
  readonly logger?: Logger;
  /** Replaces pcsclite (unit tests) */
  readonly contextFactory?: PcscContextFactory;
}

/** Counters of what the backend went through; a health report and the fault tests read them */
export interface PcscReaderStats {
  /** PC/SC contexts created (1 + recoveries) */
  contextsOpened: number;
  /** Attempts to create a context that failed (pcscd down) */
  contextFailures: number;
  /** Contexts lost after they were open (pcscd stopped or killed) */
  contextsLost: number;
  readersBound: number;
  sessionsOpened: number;
  connectFailures: number;
}

const DEFAULT_RETRY = { initialMs: 100, maxMs: 2000 };
/** Pause before connecting again to a card another program holds */
const CONNECT_RETRY_MS = 250;

class PcscCardSession implements CardSession {
  private removed = false;

  constructor(
    readonly id: number,
    readonly atr: Uint8Array,
    readonly presentAt: number,
    readonly eventCount: number,
    private readonly send: (session: PcscCardSession, apdu: Uint8Array) => Promise<Uint8Array>,
  ) {}

  get isRemoved(): boolean {
    return this.removed;
  }

  markRemoved(): void {
    this.removed = true;
  }

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.removed) return Promise.reject(new TallyError('CARD_REMOVED', 'the card left the reader', { sessionId: this.id }));
    return this.send(this, apdu);
  }
}

interface BoundReader {
  readonly handle: PcscReaderHandle;
  lastStatus: PcscReaderStatus | undefined;
  protocol: number;
  /** Serialises connect, transmit and disconnect on this reader */
  queue: Promise<unknown>;
  connecting: boolean;
}

export class PcscCardReader implements CardReader {
  private readonly slot: ReaderSlot<PcscCardSession>;
  private readonly clock: Clock;
  private readonly timers: Scheduler;
  private readonly log: Logger;
  private readonly retry: { initialMs: number; maxMs: number };
  private readonly contextFactory: PcscContextFactory;
  private readonly shareMode: ShareMode;
  private context: PcscContextHandle | undefined;
  /** Bumped whenever the context is dropped, so callbacks of an old context are ignored */
  private generation = 0;
  private readonly candidates = new Map<string, BoundReader>();
  /** Readers the name filter leaves out */
  private readonly ignored = new Set<PcscReaderHandle>();
  private bound: BoundReader | undefined;
  private retryDelay: number;
  private retryTimer: TimerHandle | undefined;
  private running = false;
  readonly stats: PcscReaderStats = { contextsOpened: 0, contextFailures: 0, contextsLost: 0, readersBound: 0, sessionsOpened: 0, connectFailures: 0 };

  constructor(private readonly options: PcscCardReaderOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.scheduler ?? systemScheduler;
    this.log = (options.logger ?? silentLogger).child({ module: 'readers/pcsc' });
    this.slot = new ReaderSlot((err, event) => this.log.error({ err: err instanceof Error ? err.message : String(err), event: event.type }, 'reader event listener threw'));
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.retryDelay = this.retry.initialMs;
    this.contextFactory = options.contextFactory ?? createPcscLiteContext;
    this.shareMode = options.shareMode ?? 'exclusive';
  }

  /** The PC/SC name of the reader in use, or the filter while none is */
  get name(): string {
    return this.bound?.handle.name ?? `pcsc:${this.options.readerName?.toString() ?? '*'}`;
  }

  get state(): ReaderState {
    return this.slot.state;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.setState('starting');
    this.openContext();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const reader = this.bound;
    this.dropContext();
    // let the disconnect of the last card finish
    await reader?.queue;
    this.setState('stopped');
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    return this.slot.onEvent(listener);
  }

  currentSession(): CardSession | undefined {
    return this.slot.session();
  }

  // ---- context lifecycle ----

  private openContext(): void {
    if (!this.running) return;
    let context: PcscContextHandle;
    try {
      context = this.contextFactory();
    } catch (err) {
      this.stats.contextFailures++;
      const detail = err instanceof Error ? err.message : String(err);
      this.log.debug({ err: detail, retryMs: this.retryDelay }, 'pcscd not reachable');
      this.setState('unavailable', 'pcscd not reachable');
      this.scheduleRetry();
      return;
    }
    this.stats.contextsOpened++;
    this.retryDelay = this.retry.initialMs;
    this.context = context;
    const generation = this.generation;
    context.onReader((reader) => this.onReader(reader, generation));
    context.onError((err) => this.onContextLost(err, generation));
    this.log.info({ generation }, 'PC/SC context open');
  }

  private scheduleRetry(): void {
    if (!this.running || this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.retry.maxMs);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      this.openContext();
    }, delay, { unref: true });
  }

  private onContextLost(err: TallyError, generation: number): void {
    if (generation !== this.generation) return;
    this.stats.contextsLost++;
    this.log.warn({ err: err.message }, 'PC/SC context lost; re-creating it');
    // the addon is still inside its own callback: let it unwind before closing
    setImmediate(() => {
      if (generation !== this.generation) return;
      this.dropContext();
      this.setState('unavailable', 'pcscd connection lost');
      this.scheduleRetry();
    });
  }

  private dropContext(): void {
    this.generation++;
    this.endSession('context dropped');
    for (const candidate of this.candidates.values()) safely(() => candidate.handle.close());
    this.candidates.clear();
    for (const handle of this.ignored) safely(() => handle.close());
    this.ignored.clear();
    this.bound = undefined;
    if (this.context) safely(() => this.context?.close());
    this.context = undefined;
  }

  // ---- readers ----

  private matches(name: string): boolean {
    const filter = this.options.readerName;
    if (filter === undefined) return true;
    return typeof filter === 'string' ? name.includes(filter) : filter.test(name);
  }

  private onReader(handle: PcscReaderHandle, generation: number): void {
    if (generation !== this.generation) {
      safely(() => handle.close());
      return;
    }
    handle.onError((err) => this.log.debug({ reader: handle.name, err: err.message }, 'reader status failed'));
    if (!this.matches(handle.name)) {
      // not ours, but closed with the context: its status watch would keep the process alive and leak a thread a reconnect
      // (closing it at once disturbs pcsclite's watch of the readers we do use)
      this.ignored.add(handle);
      handle.onEnd(() => this.ignored.delete(handle));
      return;
    }
    const reader: BoundReader = { handle, lastStatus: undefined, protocol: 0, queue: Promise.resolve(), connecting: false };
    this.candidates.set(handle.name, reader);
    handle.onStatus((status) => {
      if (generation !== this.generation) return;
      reader.lastStatus = status;
      if (this.bound === reader) this.onStatus(reader);
    });
    handle.onEnd(() => {
      if (generation !== this.generation) return;
      this.onReaderEnd(reader);
    });
    if (!this.bound) this.bind(reader);
  }

  private bind(reader: BoundReader): void {
    this.bound = reader;
    this.stats.readersBound++;
    this.log.info({ reader: reader.handle.name }, 'reader bound');
    this.setState('ready');
    if (reader.lastStatus) this.onStatus(reader);
  }

  private onReaderEnd(reader: BoundReader): void {
    this.candidates.delete(reader.handle.name);
    if (this.bound !== reader) return;
    this.endSession('reader removed');
    this.bound = undefined;
    this.log.warn({ reader: reader.handle.name }, 'reader gone');
    this.setState('unavailable', `reader removed: ${reader.handle.name}`);
    const next = this.candidates.values().next();
    if (!next.done) this.bind(next.value);
  }

  // ---- cards ----

  private onStatus(reader: BoundReader): void {
    const status = reader.lastStatus;
    if (!status) return;
    const session = this.slot.session();
    if (session && (!status.present || status.eventCount !== session.eventCount)) this.endSession('card removed');
    if (status.present && !status.mute && !this.slot.session() && !reader.connecting) void this.openSession(reader, status);
  }

  private async openSession(reader: BoundReader, status: PcscReaderStatus): Promise<void> {
    const presentAt = this.clock.now();
    const generation = this.generation;
    reader.connecting = true;
    try {
      reader.protocol = await this.enqueue(reader, () => reader.handle.connect(this.shareMode));
    } catch (err) {
      this.stats.connectFailures++;
      this.log.warn({ reader: reader.handle.name, err: err instanceof Error ? err.message : String(err) }, 'cannot connect to the card');
      reader.connecting = false;
      // another program holds the card, or the reader hiccuped: try again while the same card stays;
      // a card that does not answer (UNKNOWN_CARD) waits for the next insertion
      if (!isTallyError(err, 'UNKNOWN_CARD') && !isTallyError(err, 'CARD_REMOVED')) this.retryConnect(reader, status, generation);
      return;
    } finally {
      reader.connecting = false;
    }
    const latest = reader.lastStatus;
    const stillThere = generation === this.generation && this.bound === reader && latest?.present === true && latest.eventCount === status.eventCount;
    if (!stillThere) {
      void this.enqueue(reader, () => reader.handle.disconnect(false)).catch(() => undefined);
      // a different card may have arrived while we were connecting
      if (generation === this.generation && this.bound === reader) this.onStatus(reader);
      return;
    }
    const session = new PcscCardSession(this.slot.nextSessionId(), status.atr, presentAt, status.eventCount, (s, apdu) => this.transmit(reader, s, apdu));
    this.stats.sessionsOpened++;
    this.slot.begin(session);
  }

  private retryConnect(reader: BoundReader, status: PcscReaderStatus, generation: number): void {
    this.timers.setTimeout(() => {
      const latest = reader.lastStatus;
      const sameCard = generation === this.generation && this.bound === reader && latest?.present === true && latest.eventCount === status.eventCount;
      if (sameCard && !this.slot.session() && !reader.connecting) void this.openSession(reader, latest);
    }, CONNECT_RETRY_MS, { unref: true });
  }

  private async transmit(reader: BoundReader, session: PcscCardSession, apdu: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.enqueue(reader, () => {
        if (session.isRemoved) throw new TallyError('CARD_REMOVED', 'the card left the reader', { sessionId: session.id });
        return reader.handle.transmit(apdu, reader.protocol);
      }).then((response) => {
        // a card pulled out mid-command can leave vpcd (and some readers) returning
        // success with no bytes: without a status word the command's fate is unknown
        if (response.length < 2) throw new TallyError('CARD_REMOVED', 'the card gave no status word (pulled out or mute)', { sessionId: session.id, responseLength: response.length });
        return response;
      });
    } catch (err) {
      // PC/SC says the card is gone: end the session now; a missing status word waits for pcscd's verdict
      const gone = isTallyError(err, 'CARD_REMOVED') && err.context.responseLength === undefined;
      if (gone && this.slot.session() === session) this.endSession('card removed during a command');
      throw err;
    }
  }

  private endSession(reason: string): void {
    this.slot.end((session) => {
      session.markRemoved();
      this.log.info({ sessionId: session.id, reason }, 'card session ended');
      const reader = this.bound;
      // the addon refuses a new connect until it has disconnected the old card
      if (reader) void this.enqueue(reader, () => reader.handle.disconnect(false)).catch(() => undefined);
    });
  }

  private enqueue<T>(reader: BoundReader, operation: () => Promise<T>): Promise<T> {
    const result = reader.queue.then(operation, operation);
    reader.queue = result.catch(() => undefined);
    return result;
  }

  // ---- events ----

  private setState(state: ReaderState, detail?: string): void {
    if (state !== this.slot.state) this.slot.setState(state, detail);
  }
}

function safely(action: () => void): void {
  try {
    action();
  } catch {
    // closing a handle of a dead pcscd may fail; it is gone either way
  }
}

export function createPcscCardReader(options: PcscCardReaderOptions = {}): PcscCardReader {
  return new PcscCardReader(options);
}
