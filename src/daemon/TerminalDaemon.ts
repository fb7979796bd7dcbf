/**
 * The terminal daemon's heart: reader events in, terminal decisions, operator
 * feedback out. It sees readers, the panel and the device only through their
 * contracts; the backend is chosen elsewhere (createReaderBackend).
 *
 * One card at a time. stop() waits for the swipe in progress to finish, so a
 * SIGTERM never cuts a deduction in half (a SIGKILL may; the ledger's single
 * transaction and the recovery at start cover that).
 */
import { operatorMessage, type Locale } from '../errors.js';
import type { CardReader, CardSession, OperatorPanel, PanelMessage, ReaderEvent } from '../readers/CardReader.js';
import { okMessages, pick } from '../terminal/messages.js';
import type { SwipeOutcome, Terminal } from '../terminal/Terminal.js';
import type { Scan, SerialScanner } from '../readers/scanner/SerialScanner.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';

export interface SwipeTiming {
  readonly sessionId: number;
  /** Reader reported the card present (clock ms) */
  readonly presentAt: number;
  /** The daemon began handling it */
  readonly handledAt: number;
  /** The decision was made and recorded */
  readonly decidedAt: number;
  readonly outcome: SwipeOutcome;
}

export interface DaemonOptions {
  readonly terminal: Terminal;
  readonly reader: CardReader;
  readonly panel: OperatorPanel;
  /** A QR scanner in serial mode: voucher scans go to the terminal, one at a time with the cards */
  readonly scanner?: SerialScanner;
  readonly locale?: Locale;
  readonly clock?: Clock;
  readonly log?: Logger;
}

export class TerminalDaemon {
  private readonly locale: Locale;
  private readonly clock: Clock;
  private readonly log: Logger;
  private unsubscribe: (() => void) | undefined;
  private inProgress: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly swipeListeners = new Set<(timing: SwipeTiming) => void>();
  private readonly scanUnsubscribes: (() => void)[] = [];
  lastOutcome: SwipeOutcome | undefined;

  constructor(private readonly options: DaemonOptions) {
    this.locale = options.locale ?? 'en';
    this.clock = options.clock ?? systemClock;
    this.log = (options.log ?? silentLogger).child({ ns: 'daemon' });
  }

  async start(): Promise<void> {
    this.unsubscribe = this.options.reader.onEvent((event) => this.onReaderEvent(event));
    const scanner = this.options.scanner;
    if (scanner) {
      this.scanUnsubscribes.push(
        scanner.onScan((scan) => {
          if (!this.stopping) this.inProgress = this.inProgress.then(() => this.handleScan(scan));
        }),
        scanner.onRefused(() => {
          if (!this.stopping) this.inProgress = this.inProgress.then(() => this.show(feedbackFor({ ok: false, code: 'SCAN_NOT_QR', message: operatorMessage('SCAN_NOT_QR', this.locale), detail: '' })));
        }),
      );
    }
    await this.options.reader.start();
    await this.onReaderReady();
  }

  /** Finishes the swipe in progress, then stops the reader */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.inProgress;
    this.unsubscribe?.();
    for (const off of this.scanUnsubscribes) off();
    await this.options.reader.stop();
  }

  /** Resolves when the swipes handed in so far are handled and their feedback shown */
  settled(): Promise<void> {
    return this.inProgress;
  }

  onSwipe(listener: (timing: SwipeTiming) => void): () => void {
    this.swipeListeners.add(listener);
    return () => this.swipeListeners.delete(listener);
  }

  private onReaderEvent(event: ReaderEvent): void {
    switch (event.type) {
      case 'card-inserted':
        if (this.stopping) return;
        this.inProgress = this.inProgress.then(() => this.handle(event.session));
        break;
      case 'card-removed':
        break;
      case 'reader-state':
        this.log.info({ state: event.state, detail: event.detail }, 'reader state');
        if (event.state === 'unavailable') void this.show({ lines: [operatorMessage('READER_UNAVAILABLE', this.locale)], tone: 'fault', led: 'fault' });
        if (event.state === 'ready') void this.onReaderReady();
        break;
    }
  }

  private async handle(session: CardSession): Promise<void> {
    const handledAt = this.clock.now();
    // no "reading..." display first: on a serial link it would queue ahead of the card's APDUs
    const outcome = await this.options.terminal.handleCard(session);
    const decidedAt = this.clock.now();
    this.lastOutcome = outcome;
    for (const listener of this.swipeListeners) listener({ sessionId: session.id, presentAt: session.presentAt, handledAt, decidedAt, outcome });
    await this.show(feedbackFor(outcome));
  }

  private async handleScan(scan: Scan): Promise<void> {
    const handledAt = this.clock.now();
    const outcome = await this.options.terminal.handleVoucher(scan.text);
    const decidedAt = this.clock.now();
    this.lastOutcome = outcome;
    for (const listener of this.swipeListeners) listener({ sessionId: 0, presentAt: handledAt, handledAt, decidedAt, outcome });
    await this.show(feedbackFor(outcome));
  }

  /** A (re)synced board may hold a later chain head than the ledger: out of service at once, not at the next card; its session report settles uses left open */
  private async onReaderReady(): Promise<void> {
    const refusal = this.options.terminal.checkBoardWitness();
    if (refusal) {
      await this.show({ lines: [refusal.operatorMessage(this.locale)], tone: 'fault', led: 'fault' });
      return;
    }
    // the board's report of its session settles the uses the last run left open, at once
    this.options.terminal.settleFromBoard();
    await this.showIdle();
  }

  private async showIdle(): Promise<void> {
    const status = this.options.terminal.status();
    if (!status.provisioned) {
      await this.show({ lines: [operatorMessage('NOT_PROVISIONED', this.locale)], led: 'fault' });
      return;
    }
    const left = status.batches.reduce((n, b) => n + b.remaining, 0);
    if (left === 0) {
      await this.show({ lines: [pick(okMessages.noBatch(), this.locale)], led: 'idle' });
      return;
    }
    await this.show({ lines: [pick(okMessages.ready(), this.locale), pick(okMessages.usesLeft(left), this.locale)], led: 'idle' });
  }

  private async show(message: PanelMessage): Promise<void> {
    try {
      await this.options.panel.show(message);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'panel did not take the message');
    }
  }
}

/** Outcomes that put the terminal out of service rather than refuse one card */
const FAULT_CODES = new Set<string>(['STORAGE_FAULT', 'STORAGE_FULL', 'STORAGE_READ_ONLY', 'DATABASE_CORRUPT', 'DATABASE_CANTOPEN', 'DEVICE_FAULT', 'LEDGER_ROLLBACK', 'BOARD_WITNESS_MISSING', 'TRUST_LIST_STALE', 'TRUST_LIST_MISSING']);

/** What the operator sees and hears for an outcome */
export function feedbackFor(outcome: SwipeOutcome): PanelMessage {
  if (outcome.ok) return { lines: [outcome.message], tone: 'ok', led: 'ok' };
  const fault = FAULT_CODES.has(outcome.code);
  const retry = outcome.code === 'CARD_REMOVED' || outcome.code === 'BUSY' || outcome.code === 'VOUCHER_MALFORMED' || outcome.code === 'SCAN_NOT_QR' || outcome.code === 'VOUCHER_IDENTITY_NEEDED' || outcome.code === 'WALLET_QR_NO_VOUCHER';
  return { lines: [outcome.message], tone: fault ? 'fault' : retry ? 'attention' : 'refused', led: fault ? 'fault' : 'refused' };
}
