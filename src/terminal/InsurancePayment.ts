/**
 * An insurance payment at the terminal (docs/insurance.md), shaped like RFC 8628's device: the operator starts it,
 * the server answers with a device code, a user code and the verification link, which the panel shows as a QR code
 * with the user code and the binding code under it; the terminal then waits for the settlement voucher, pushed by
 * the server as soon as the patient consented, polling only as a fallback and at the interval the server sets
 * (slow_down makes it longer); the voucher is checked with the root before anything is committed
 * (Terminal.handleSettlement), and the outcome of the use (ran, or released: reversed) is reported until the server
 * acknowledges it (kept in the ledger's settlement_uses, so a restart sends what a crash left unsent).
 *
 * The server is reached only through an InsuranceLink (the daemon's is MQTT, sync/): no answer is INSURANCE_OFFLINE.
 */
import { codeOf, isTallyError, operatorMessage, type ErrorName, type Locale } from '../errors.js';
import type { OperatorPanel, PanelQr } from '../readers/CardReader.js';
import { systemSchedulingClock, type SchedulingClock } from '../util/scheduler.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { okMessages, pick } from './messages.js';
import type { SwipeOutcome, Terminal } from './Terminal.js';

export interface InsuranceAuthorization {
  readonly orderId: string;
  readonly deviceCode: string;
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete: string;
  readonly bindingCode: string;
  readonly expiresIn: number;
  readonly interval: number;
}

export type InsurancePoll =
  | { readonly pending: 'authorization_pending' | 'slow_down' | 'expired_token'; readonly interval: number }
  | { readonly pending: 'access_denied'; readonly interval: number; readonly reason: ErrorName }
  | { readonly orderId: string; readonly voucher: string };

/** The terminal's way to the server for insurance payments; every call resolves undefined when no answer came (offline) */
export interface InsuranceLink {
  online(): boolean;
  start(request: { item: string; amountFen: number }): Promise<InsuranceAuthorization | undefined>;
  poll(deviceCode: string): Promise<InsurancePoll | undefined>;
  /** true once the server recorded it */
  outcome(orderId: string, ran: boolean): Promise<boolean>;
  /** A paid service order (seed 001) by the code the patient shows: its voucher for this terminal, or refused */
  redeem(redeemCode: string): Promise<{ orderId: string; voucher: string } | undefined>;
  /** Vouchers the server pushes (as soon as the patient consented) */
  onVoucher(listener: (orderId: string, voucher: string) => void): () => void;
}

export type InsuranceProgress =
  | { readonly type: 'qr'; readonly orderId: string; readonly qr: PanelQr; readonly userCode: string; readonly bindingCode: string; readonly expiresIn: number }
  | { readonly type: 'poll'; readonly answer: string; readonly interval: number }
  | { readonly type: 'voucher'; readonly orderId: string; readonly via: 'push' | 'poll' };

export interface InsurancePaymentOptions {
  readonly terminal: Terminal;
  readonly link: InsuranceLink;
  readonly panel?: OperatorPanel;
  readonly clock?: SchedulingClock;
  readonly log?: Logger;
  readonly locale?: Locale;
}

export class InsurancePayment {
  private readonly clock: SchedulingClock;
  private readonly log: Logger;
  private readonly locale: Locale;
  private busy = false;
  private draining: Promise<number> | undefined;
  private readonly unsubscribe: () => void;
  /** Polls sent, for tests and the bench */
  polls = 0;

  constructor(private readonly options: InsurancePaymentOptions) {
    this.clock = options.clock ?? systemSchedulingClock;
    this.log = (options.log ?? silentLogger).child({ ns: 'insurance' });
    this.locale = options.locale ?? 'en';
    this.unsubscribe = options.terminal.onUseEnded(() => void this.sendOutcomes());
  }

  close(): void {
    this.unsubscribe();
  }

  private refuse(code: ErrorName, detail: string, context: Record<string, unknown> = {}): SwipeOutcome {
    this.options.terminal.ledger.recordRefusal(code, detail);
    this.log.warn({ event: 'insurance.refused', code, ...context }, detail);
    void this.options.panel?.show({ lines: [operatorMessage(code, this.locale)], tone: 'refused', led: 'refused' }).catch(() => undefined);
    return { ok: false, code, message: operatorMessage(code, this.locale), detail };
  }

  /**
   * The operator redeems a service order the patient paid in a booking app (seed 001), by the code the app shows,
   * as a voucher: the server binds the order to this terminal and answers its settlement voucher, which is checked
   * and used as any other. Never throws: every failure is a refusal with its code.
   */
  async redeem(redeemCode: string): Promise<SwipeOutcome> {
    if (this.busy) return this.refuse('INSURANCE_BUSY', 'an insurance payment is already waiting');
    this.busy = true;
    try {
      if (!this.options.link.online()) return this.refuse('INSURANCE_OFFLINE', 'the link to the server is down');
      const redeemed = await this.options.link.redeem(redeemCode);
      if (!redeemed) return this.refuse('INSURANCE_OFFLINE', 'the server did not answer the redemption');
      this.log.info({ event: 'insurance.service-order-voucher', orderId: redeemed.orderId }, 'service order voucher received');
      return await this.useVoucher(redeemed.orderId, redeemed.voucher);
    } catch (err) {
      return this.refuse(codeOf(err), isTallyError(err) ? err.detail : (err as Error).message);
    } finally {
      this.busy = false;
    }
  }

  /** The voucher checked and its use run (Terminal.handleSettlement), the panel told, the outcome sent */
  private async useVoucher(orderId: string, voucher: string): Promise<SwipeOutcome> {
    const outcome = await this.options.terminal.handleSettlement(voucher, { orderId });
    if (outcome.ok) {
      void this.options.panel?.show({ lines: [outcome.message], tone: 'ok', led: 'ok' }).catch(() => undefined);
    } else {
      this.log.warn({ event: 'insurance.refused', code: outcome.code, orderId }, outcome.detail);
      void this.options.panel?.show({ lines: [outcome.message], tone: 'refused', led: 'refused' }).catch(() => undefined);
    }
    void this.sendOutcomes();
    return outcome;
  }

  /** The operator starts a payment of item for amountFen. Never throws: every failure is a refusal with its code. */
  async pay(request: { item: string; amountFen: number }, progress: (event: InsuranceProgress) => void = () => undefined): Promise<SwipeOutcome> {
    if (this.busy) return this.refuse('INSURANCE_BUSY', 'an insurance payment is already waiting');
    this.busy = true;
    try {
      return await this.run(request, progress);
    } catch (err) {
      return this.refuse(codeOf(err), isTallyError(err) ? err.detail : (err as Error).message);
    } finally {
      this.busy = false;
    }
  }

  private async run(request: { item: string; amountFen: number }, progress: (event: InsuranceProgress) => void): Promise<SwipeOutcome> {
    const { link } = this.options;
    if (!link.online()) return this.refuse('INSURANCE_OFFLINE', 'the link to the server is down');
    const auth = await link.start(request);
    if (!auth) return this.refuse('INSURANCE_OFFLINE', 'the server did not answer the authorisation request');
    const deadline = this.clock.now() + auth.expiresIn * 1000;
    let interval = auth.interval;
    let pushed: string | undefined;
    let wake: (() => void) | undefined;
    const stopListening = link.onVoucher((orderId, voucher) => {
      if (orderId !== auth.orderId) return;
      pushed = voucher;
      wake?.();
    });
    try {
      const qr: PanelQr = { text: auth.verificationUriComplete, caption: [auth.userCode, auth.bindingCode] };
      await this.options.panel?.showQr?.(qr);
      this.log.info({ event: 'insurance.qr-shown', orderId: auth.orderId, userCode: auth.userCode, bindingCode: auth.bindingCode, link: auth.verificationUriComplete }, pick(okMessages.insuranceScan(auth.userCode, auth.bindingCode), this.locale));
      progress({ type: 'qr', orderId: auth.orderId, qr, userCode: auth.userCode, bindingCode: auth.bindingCode, expiresIn: auth.expiresIn });
      let voucher: string | undefined;
      let via: 'push' | 'poll' = 'poll';
      while (voucher === undefined) {
        // wait the interval the server set, or less when the voucher is pushed
        if (pushed === undefined) {
          await new Promise<void>((resolve) => {
            const timer = this.clock.setTimeout(() => resolve(), interval * 1000, { unref: true });
            wake = () => {
              this.clock.clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        if (pushed !== undefined) {
          voucher = pushed;
          via = 'push';
          break;
        }
        this.polls++;
        const answer = await link.poll(auth.deviceCode);
        if (!answer) {
          // no answer: the push or the next poll may still bring it, until the code's life is over
          if (this.clock.now() >= deadline) return this.refuse(link.online() ? 'INSURANCE_CODE_EXPIRED' : 'INSURANCE_OFFLINE', `no answer from the server about order ${auth.orderId}`, { orderId: auth.orderId });
          continue;
        }
        if ('voucher' in answer) {
          voucher = answer.voucher;
          break;
        }
        progress({ type: 'poll', answer: answer.pending, interval: answer.interval });
        switch (answer.pending) {
          case 'authorization_pending':
            interval = answer.interval;
            break;
          case 'slow_down':
            interval = answer.interval;
            this.log.info({ event: 'insurance.slow-down', orderId: auth.orderId, interval }, 'server asked to poll less often');
            break;
          case 'expired_token':
            return this.refuse('INSURANCE_CODE_EXPIRED', `order ${auth.orderId}: the code expired`, { orderId: auth.orderId });
          case 'access_denied':
            return this.refuse(answer.reason, `order ${auth.orderId}: ${answer.reason}`, { orderId: auth.orderId });
        }
      }
      progress({ type: 'voucher', orderId: auth.orderId, via });
      return await this.useVoucher(auth.orderId, voucher);
    } finally {
      stopListening();
    }
  }

  /**
   * Reports every settlement use that ended and whose outcome the server has not acknowledged (also at start:
   * what a crash left unsent). Returns how many the server took. One run at a time.
   */
  sendOutcomes(): Promise<number> {
    if (this.draining) return this.draining;
    const run = (async () => {
      let sent = 0;
      try {
        for (const due of this.options.terminal.ledger.settlementOutcomesDue()) {
          if (!this.options.link.online()) break;
          if (!(await this.options.link.outcome(due.orderId, due.ran))) break;
          this.options.terminal.ledger.settlementOutcomeSent(due.orderId);
          this.log.info({ event: 'insurance.outcome-sent', orderId: due.orderId, ran: due.ran }, due.ran ? 'insurance use reported' : 'insurance use released: the server reverses the settlement');
          sent++;
        }
      } catch (err) {
        this.log.warn({ event: 'insurance.outcome-failed', code: codeOf(err) }, 'insurance outcome not sent: retried');
      }
      return sent;
    })();
    this.draining = run;
    void run.finally(() => {
      if (this.draining === run) this.draining = undefined;
    });
    return run;
  }
}
