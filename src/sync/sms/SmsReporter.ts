/**
 * The terminal's side of the SMS path (firmware-protocol/sms-report.md §6):
 * once the data link has been down `afterDownMs`, it sends a signed report,
 * then one every `everyMs` while the link stays down, at most `maxPerDay` in a
 * UTC day (SMS costs money), and one at once on the server's "report now"
 * (within the budget). A send the modem refuses is tried again after
 * `retryMs` and costs nothing of the budget. The counter is saved before the
 * send, so no counter is ever used for two reports. The server's signed
 * commands are checked (its key, this terminal's tag, a counter above the last
 * applied) before they are applied; anything refused leaves the state as it
 * was. Timers are injected; the modem is an SmsSender.
 */
import type { KeyObject } from 'node:crypto';
import { toHex } from '../../codecs/bytes.js';
import { parseSmsCommand, smsMessageKind, SMS_MAX_BATCHES, SmsAlert, SmsCommandType, type SmsBatchCount } from '../../codecs/sms/smsReport.js';
import { signSmsReport, smsTerminalTag, verifySmsCommand } from '../../crypto/smsSignature.js';
import { codeOf, isTallyError, TallyError, type ErrorName } from '../../errors.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { SchedulingClock, TimerHandle } from '../../util/scheduler.js';

/** What the report says, read from the ledger when a report is made */
export interface SmsReportSource {
  head(): { readonly seq: number; readonly hash: Uint8Array };
  outboxDepth(): number;
  /** Alert bits (SmsAlert) that hold now */
  alerts(): number;
  /** Every loaded batch with its uses (reserve entries) since it was loaded, latest loaded last */
  batchUses(): readonly { readonly batchNo: number; readonly usesTotal: number }[];
}

export interface SmsState {
  counter: number;
  /** usesTotal per batch in the last report sent */
  reported: Record<string, number>;
  day: string;
  sentToday: number;
  lastCommandCounter: number;
}

export interface SmsStateStore {
  load(): SmsState | undefined;
  save(state: SmsState): void;
}

export interface SmsSenderLike {
  send(destination: string, octets: Uint8Array): Promise<number>;
}

export interface SmsCommandHandlers {
  deny?(cardIds: readonly Uint8Array[], denyVersion: number): void;
  time?(serverTimeMs: number): void;
}

export interface SmsReporterOptions {
  readonly terminalId: string;
  readonly signingKey: KeyObject;
  readonly serverNumber: string;
  readonly afterDownMs: number;
  readonly everyMs: number;
  readonly maxPerDay: number;
  readonly retryMs?: number;
  readonly clock: SchedulingClock;
  readonly sender: SmsSenderLike;
  readonly source: SmsReportSource;
  readonly state: SmsStateStore;
  /** The server key the terminal trusts (from a verified checkpoint); commands are refused without one */
  readonly serverPublicKey?: () => Uint8Array | undefined;
  readonly handlers?: SmsCommandHandlers;
  readonly logger?: Logger;
}

export type SmsSendOutcome = { readonly sent: true; readonly counter: number; readonly octets: number } | { readonly sent: false; readonly code: ErrorName };

const DAY_MS = 86_400_000;

export function memoryStateStore(initial?: SmsState): SmsStateStore & { state: SmsState | undefined } {
  const holder: { state: SmsState | undefined; load(): SmsState | undefined; save(s: SmsState): void } = {
    state: initial,
    load: () => (holder.state ? structuredClone(holder.state) : undefined),
    save: (s) => void (holder.state = structuredClone(s)),
  };
  return holder;
}

export class SmsReporter {
  readonly stats = { sent: 0, failed: 0, overBudget: 0, commandsApplied: 0, commandsRefused: 0 };
  private readonly logger: Logger;
  private state: SmsState;
  private timer: TimerHandle | undefined;
  private downSince: number | undefined;
  private sending: Promise<SmsSendOutcome> | undefined;

  constructor(private readonly options: SmsReporterOptions) {
    this.logger = (options.logger ?? silentLogger).child({ module: 'sync.sms' });
    this.state = options.state.load() ?? { counter: 0, reported: {}, day: '', sentToday: 0, lastCommandCounter: 0 };
  }

  /** Reports sent in the current UTC day */
  sentToday(): number {
    return this.state.day === new Date(this.options.clock.now()).toISOString().slice(0, 10) ? this.state.sentToday : 0;
  }

  get linkDown(): boolean {
    return this.downSince !== undefined;
  }

  /** The data link went down (MQTT lost): the first report goes after afterDownMs */
  dataLinkDown(): void {
    if (this.downSince !== undefined) return;
    this.downSince = this.options.clock.now();
    this.schedule(this.options.afterDownMs);
  }

  /** The data link is back: no more SMS until it goes down again */
  dataLinkUp(): void {
    this.downSince = undefined;
    this.cancel();
  }

  stop(): void {
    this.cancel();
  }

  /** Sends one report now if the day's budget allows */
  reportNow(reason: string): Promise<SmsSendOutcome> {
    if (this.sending) return this.sending;
    this.sending = this.send(reason).finally(() => (this.sending = undefined));
    return this.sending;
  }

  /** An SMS that reached the terminal's modem: a server command, or refused */
  async handleIncoming(sender: string, octets: Uint8Array): Promise<{ applied: boolean; code?: ErrorName }> {
    try {
      if (smsMessageKind(octets) !== 'command') throw new TallyError('SMS_NOT_A_REPORT', `first octet 0x${(octets[0] ?? 0).toString(16)}`);
      const command = parseSmsCommand(octets);
      const key = this.options.serverPublicKey?.();
      if (!key) throw new TallyError('SMS_COMMAND_REFUSED', 'no verified server key yet (no checkpoint)');
      if (toHex(command.terminalTag) !== toHex(smsTerminalTag(this.options.terminalId))) throw new TallyError('SMS_COMMAND_REFUSED', 'for another terminal');
      if (!verifySmsCommand(command, this.options.terminalId, key)) throw new TallyError('SMS_COMMAND_REFUSED', 'signature does not verify with the server key');
      if (command.counter <= this.state.lastCommandCounter) throw new TallyError('SMS_COMMAND_REFUSED', `counter ${command.counter} not above ${this.state.lastCommandCounter} (replayed)`);
      // applied first: a handler that refuses (a stale deny list, a time far behind) leaves every state as it was
      if (command.type === SmsCommandType.DENY) this.options.handlers?.deny?.(command.cardIds, command.denyVersion);
      else if (command.type === SmsCommandType.TIME) this.options.handlers?.time?.(command.time * 1000);
      this.state.lastCommandCounter = command.counter;
      this.options.state.save(this.state);
      this.stats.commandsApplied++;
      this.logger.info({ event: 'sms-command', type: command.type, counter: command.counter, sender }, 'SMS command applied');
      if (command.type === SmsCommandType.REPORT_NOW) void this.reportNow('server asked');
      return { applied: true };
    } catch (err) {
      const code = isTallyError(err) ? codeOf(err) : 'BAD_SMS_COMMAND';
      this.stats.commandsRefused++;
      this.logger.warn({ event: 'sms-command-refused', code, sender, octets: octets.length }, err instanceof Error ? err.message : String(err));
      return { applied: false, code };
    }
  }

  private schedule(ms: number): void {
    this.cancel();
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.downSince === undefined) return;
      void this.reportNow('data link down').then((outcome) => {
        if (this.downSince === undefined) return;
        if (outcome.sent || outcome.code === 'SMS_BUDGET_EXHAUSTED') this.schedule(outcome.sent ? this.options.everyMs : this.untilTomorrow());
        else this.schedule(this.options.retryMs ?? 5 * 60_000);
      });
    }, ms, { unref: true });
  }

  private cancel(): void {
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private untilTomorrow(): number {
    const now = this.options.clock.now();
    return DAY_MS - (now % DAY_MS) + 1000;
  }

  private async send(reason: string): Promise<SmsSendOutcome> {
    const now = this.options.clock.now();
    const day = new Date(now).toISOString().slice(0, 10);
    if (this.state.day !== day) {
      this.state.day = day;
      this.state.sentToday = 0;
    }
    if (this.state.sentToday >= this.options.maxPerDay) {
      this.stats.overBudget++;
      this.logger.info({ event: 'sms-budget', code: 'SMS_BUDGET_EXHAUSTED', day, sent: this.state.sentToday }, 'SMS report not sent: daily budget used');
      return { sent: false, code: 'SMS_BUDGET_EXHAUSTED' };
    }
    const { batches, omitted } = this.batches();
    const head = this.options.source.head();
    const counter = this.state.counter + 1;
    // the counter is spent before the send: a crash mid-send never reuses it
    this.state.counter = counter;
    this.options.state.save(this.state);
    const octets = signSmsReport(this.options.signingKey, this.options.terminalId, {
      counter,
      time: Math.floor(now / 1000),
      headSeq: head.seq,
      headHashPrefix: head.hash.subarray(0, 8),
      outboxDepth: this.options.source.outboxDepth(),
      alerts: this.options.source.alerts() | (omitted ? SmsAlert.BATCHES_OMITTED : 0),
      batches,
    });
    try {
      await this.options.sender.send(this.options.serverNumber, octets);
    } catch (err) {
      this.stats.failed++;
      const code = isTallyError(err) ? codeOf(err) : 'MODEM_ERROR';
      this.logger.warn({ event: 'sms-send-failed', code, counter }, err instanceof Error ? err.message : String(err));
      return { sent: false, code };
    }
    for (const b of batches) this.state.reported[String(b.batchNo)] = b.usesTotal;
    this.state.sentToday++;
    this.options.state.save(this.state);
    this.stats.sent++;
    this.logger.info({ event: 'sms-report-sent', counter, headSeq: head.seq, octets: octets.length, batches: batches.length, reason, sentToday: this.state.sentToday }, 'SMS report sent');
    return { sent: true, counter, octets: octets.length };
  }

  private batches(): { batches: SmsBatchCount[]; omitted: boolean } {
    const all = this.options.source.batchUses();
    const latest = all[all.length - 1];
    const changed = all
      .map((b) => ({ batchNo: b.batchNo, usesTotal: Math.min(b.usesTotal, 0xffff), usesSince: Math.min(0xffff, Math.max(0, b.usesTotal - (this.state.reported[String(b.batchNo)] ?? 0))) }))
      .filter((b) => b.usesSince > 0 || b.batchNo === latest?.batchNo)
      .sort((a, b) => b.usesSince - a.usesSince);
    return { batches: changed.slice(0, SMS_MAX_BATCHES), omitted: changed.length > SMS_MAX_BATCHES };
  }
}
