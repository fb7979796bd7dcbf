/**
 * The server's side of the SMS path: each SMS the gateway (gammu-smsd) hands
 * over is checked and recorded. A report is found by its terminal tag among the
 * terminals the server knows, verified with that terminal's pinned device key,
 * and accepted only with a counter above the last accepted (a network duplicate
 * or a replay is refused, a second body under a used counter is a rollback).
 * The heads it names are then checked against the ledger the server holds, now
 * and each time entries arrive (checkSmsHeads): a head the ledger contradicts
 * raises `sms-head-contradicted`. Every refusal has its code and is recorded as
 * a rejection (topic `sms`).
 */
import { toHex } from '../../codecs/bytes.js';
import { parseSmsReport, smsMessageKind, SMS_ALERT_NAMES, SmsAlert, type SmsReport } from '../../codecs/sms/smsReport.js';
import { verifySmsReport, smsTerminalTag } from '../../crypto/smsSignature.js';
import { codeOf, isTallyError, TallyError, type ErrorName } from '../../errors.js';
import type { Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { ServerStore, SmsReportRow, TerminalRow } from '../ServerStore.js';

export interface IncomingSms {
  /** The sender number as the gateway gives it */
  readonly sender: string;
  /** The user data octets (binary SMS) */
  readonly octets: Uint8Array;
  /** False when the SMS came as text or a concatenation part: refused as not ours */
  readonly binary?: boolean;
}

export type SmsVerdict =
  | { readonly ok: true; readonly terminalId: string; readonly counter: number; readonly headSeq: number; readonly contradicted: boolean }
  | { readonly ok: false; readonly code: ErrorName; readonly detail: string; readonly terminalId?: string };

export interface SmsInboxOptions {
  readonly clock: Clock;
  readonly logger?: Logger;
}

export class SmsInbox {
  private readonly logger: Logger;

  constructor(
    private readonly store: ServerStore,
    private readonly options: SmsInboxOptions,
  ) {
    this.logger = (options.logger ?? silentLogger).child({ module: 'server.sms' });
  }

  async receive(sms: IncomingSms): Promise<SmsVerdict> {
    const at = this.options.clock.now();
    try {
      return await this.accept(sms, at);
    } catch (err) {
      const code = isTallyError(err) ? codeOf(err) : 'BAD_SMS_REPORT';
      const detail = err instanceof Error ? err.message : String(err);
      const terminalId = isTallyError(err) && typeof err.context.terminalId === 'string' ? err.context.terminalId : undefined;
      this.logger.warn({ event: 'sms-refused', code, sender: sms.sender, octets: sms.octets.length, hex: toHex(sms.octets.subarray(0, 140)), ...(terminalId ? { terminalId } : {}) }, detail);
      await this.store.recordRejection({ at, topic: `sms/${sms.sender}`, reason: code, detail, ...(terminalId ? { terminalId } : {}) });
      return { ok: false, code, detail, ...(terminalId ? { terminalId } : {}) };
    }
  }

  private async accept(sms: IncomingSms, at: number): Promise<SmsVerdict> {
    if (sms.binary === false || smsMessageKind(sms.octets) !== 'report') throw new TallyError('SMS_NOT_A_REPORT', sms.binary === false ? 'a text message or a concatenation part' : `first octet 0x${(sms.octets[0] ?? 0).toString(16)}`);
    const report = parseSmsReport(sms.octets);
    const terminal = await this.terminalOf(report);
    const rows = await this.store.smsReports(terminal.terminalId);
    const last = rows[rows.length - 1];
    const row: SmsReportRow = {
      terminalId: terminal.terminalId,
      counter: report.counter,
      sender: sms.sender,
      sentAt: report.time * 1000,
      receivedAt: at,
      headSeq: report.headSeq,
      headHashPrefix: toHex(report.headHashPrefix),
      outboxDepth: report.outboxDepth,
      alerts: report.alerts,
      batches: report.batches,
      bodyHex: toHex(report.body),
      headCheck: 0,
    };
    if (last && report.counter <= last.counter) {
      const same = rows.find((r) => r.counter === report.counter);
      if (same && same.bodyHex !== row.bodyHex) {
        await this.contradiction(terminal.terminalId, `SMS report ${report.counter} arrived again with another body (head ${report.headSeq}, was ${same.headSeq}): the terminal's state was restored from an old copy`, `sms-counter-${report.counter}`);
      }
      throw new TallyError('SMS_REPORT_REPLAYED', `counter ${report.counter}, last accepted ${last.counter}`, { terminalId: terminal.terminalId });
    }
    const regressed = rows.find((r) => r.headSeq > report.headSeq || (r.headSeq === report.headSeq && r.headHashPrefix !== row.headHashPrefix));
    await this.store.recordSmsReport(row);
    this.logger.info({ event: 'sms-report', terminalId: terminal.terminalId, counter: report.counter, headSeq: report.headSeq, outbox: report.outboxDepth, alerts: alertNames(report.alerts), batches: report.batches, delayMs: at - report.time * 1000 }, 'SMS report recorded');
    let contradicted = false;
    if (regressed) {
      contradicted = true;
      await this.contradiction(terminal.terminalId, `SMS report ${report.counter} names head ${report.headSeq} ${row.headHashPrefix}, below or beside the head ${regressed.headSeq} ${regressed.headHashPrefix} of report ${regressed.counter}`, `sms-regress-${report.counter}`);
    }
    if (report.alerts & SmsAlert.ROLLBACK_SUSPECTED) {
      await this.store.raiseAlert({ at, kind: 'ledger-rollback', terminalId: terminal.terminalId, detail: `the terminal reported a suspected rollback by SMS (report ${report.counter})`, key: `sms-rollback-flag:${terminal.terminalId}:${report.counter}` });
    }
    const checked = await checkSmsHeads(this.store, terminal.terminalId, at, this.logger);
    return { ok: true, terminalId: terminal.terminalId, counter: report.counter, headSeq: report.headSeq, contradicted: contradicted || checked.contradicted > 0 };
  }

  private async terminalOf(report: SmsReport): Promise<TerminalRow> {
    const tag = toHex(report.terminalTag);
    const candidates = (await this.store.terminals()).filter((t) => toHex(smsTerminalTag(t.terminalId)) === tag);
    if (!candidates.length) throw new TallyError('SMS_UNKNOWN_TERMINAL', `terminal tag ${tag}`);
    const terminal = candidates.find((t) => verifySmsReport(report, t.terminalId, t.devicePublicKey));
    if (!terminal) throw new TallyError('SMS_REPORT_FORGED', `signature does not verify for ${candidates.map((t) => t.terminalId).join(', ')}`, { terminalId: candidates[0]!.terminalId });
    return terminal;
  }

  private async contradiction(terminalId: string, detail: string, key: string): Promise<void> {
    this.logger.error({ event: 'sms-head-contradicted', code: 'SMS_HEAD_CONTRADICTED', terminalId }, detail);
    await this.store.raiseAlert({ at: this.options.clock.now(), kind: 'sms-head-contradicted', terminalId, detail, key: `${key}:${terminalId}` });
  }
}

function alertNames(alerts: number): string[] {
  return Object.entries(SMS_ALERT_NAMES).flatMap(([bit, name]) => (alerts & Number(bit) ? [name] : []));
}

/**
 * Checks every SMS head of a terminal not yet checked against the entries the server holds: the entry at the
 * head's seq must be there with a hash beginning with the prefix. One there with another hash is a fork; a
 * ledger whose contiguous part has passed the seq without it cannot happen (entries are gapless). Run after
 * each SMS and after each ingest of that terminal's entries.
 */
export async function checkSmsHeads(store: ServerStore, terminalId: string, at: number, logger: Logger = silentLogger, terminalLastSeq?: number): Promise<{ consistent: number; contradicted: number; pending: number }> {
  const result = { consistent: 0, contradicted: 0, pending: 0 };
  for (const r of await store.smsReports(terminalId)) {
    if (r.headCheck === 2) continue;
    if (terminalLastSeq !== undefined && terminalLastSeq < r.headSeq) {
      await store.setSmsHeadCheck(terminalId, r.counter, 2);
      result.contradicted++;
      const detail = `the terminal's ledger now ends at seq ${terminalLastSeq}, before the head ${r.headSeq} it reported by SMS (report ${r.counter}): rolled back while the data link was down`;
      logger.error({ event: 'sms-head-contradicted', code: 'SMS_HEAD_CONTRADICTED', terminalId, seq: r.headSeq, counter: r.counter, lastSeq: terminalLastSeq }, detail);
      await store.raiseAlert({ at, kind: 'sms-head-contradicted', terminalId, detail, key: `sms-head:${terminalId}:${r.counter}` });
      continue;
    }
    if (r.headCheck !== 0) continue;
    if (r.headSeq === 0) {
      await store.setSmsHeadCheck(terminalId, r.counter, 1);
      result.consistent++;
      continue;
    }
    const [entry] = await store.entries(terminalId, r.headSeq, 1);
    if (!entry || entry.seq !== r.headSeq) {
      result.pending++;
      continue;
    }
    if (toHex(entry.hash).startsWith(r.headHashPrefix)) {
      await store.setSmsHeadCheck(terminalId, r.counter, 1);
      result.consistent++;
      continue;
    }
    await store.setSmsHeadCheck(terminalId, r.counter, 2);
    result.contradicted++;
    const detail = `the ledger holds ${toHex(entry.hash).slice(0, 16)} at seq ${r.headSeq}, the SMS report ${r.counter} named ${r.headHashPrefix}: rolled back or forked while the data link was down`;
    logger.error({ event: 'sms-head-contradicted', code: 'SMS_HEAD_CONTRADICTED', terminalId, seq: r.headSeq, counter: r.counter }, detail);
    await store.raiseAlert({ at, kind: 'sms-head-contradicted', terminalId, detail, key: `sms-head:${terminalId}:${r.counter}` });
  }
  return result;
}

export interface SmsStatusRow {
  readonly terminalId: string;
  readonly lastSmsAt: number;
  readonly lastDataAt?: number;
  /** The last SMS is newer than anything over the data link */
  readonly smsOnly: boolean;
  readonly headSeq: number;
  readonly headHashPrefix: string;
  readonly outboxDepth: number;
  readonly reports: number;
  readonly contradicted: number;
  readonly batches: SmsReportRow['batches'];
}

/** Per terminal that ever sent an SMS report: what the server knows by SMS, and whether only by SMS */
export async function smsStatus(store: ServerStore, lastDataAt: (terminalId: string) => Promise<number | undefined>): Promise<SmsStatusRow[]> {
  const byTerminal = new Map<string, SmsReportRow[]>();
  for (const r of await store.smsReports()) byTerminal.set(r.terminalId, [...(byTerminal.get(r.terminalId) ?? []), r]);
  const out: SmsStatusRow[] = [];
  for (const [terminalId, rows] of byTerminal) {
    const last = rows.reduce((a, b) => (b.counter > a.counter ? b : a));
    const data = await lastDataAt(terminalId);
    out.push({
      terminalId,
      lastSmsAt: last.receivedAt,
      ...(data !== undefined ? { lastDataAt: data } : {}),
      smsOnly: data === undefined || last.receivedAt > data,
      headSeq: last.headSeq,
      headHashPrefix: last.headHashPrefix,
      outboxDepth: last.outboxDepth,
      reports: rows.length,
      contradicted: rows.filter((r) => r.headCheck === 2).length,
      batches: last.batches,
    });
  }
  return out.sort((a, b) => a.terminalId.localeCompare(b.terminalId));
}
