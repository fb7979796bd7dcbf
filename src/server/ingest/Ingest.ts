/**
 * The ingest: turns one MQTT message from a terminal into stored entries, an
 * application ack, alerts and recorded rejections. Transport-free (the MQTT
 * wiring is in IngestServer.ts), so every bad input is testable without a
 * broker. Never throws: whatever comes in, the answer is an outcome.
 *
 * Messages of one terminal are handled one at a time per Ingest (a chain
 * link is checked against the stored neighbours); different terminals run
 * concurrently. Reports may arrive in any order: each entry's links to its
 * stored predecessor and successor are checked on whichever arrives second.
 */
import type { KeyObject } from 'node:crypto';
import { bytesEqual, toHex } from '../../codecs/bytes.js';
import type { Checkpoint, SignedJson } from '../../codecs/checkpoint.js';
import { signCheckpoint } from '../../crypto/checkpoint.js';
import { EntryType, parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import { encodeJsonPayload, parseJsonPayload, seqsToRanges, type AckPayload } from '../../codecs/mqtt/messages.js';
import { PayloadError } from '../../codecs/mqtt/PayloadError.js';
import { parseTopic, terminalTopic } from '../../codecs/mqtt/topics.js';
import type { Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { AlertKind, EntryRow, SerialUse, ServerStore, TerminalRow, VoucherUse } from '../ServerStore.js';
import { prepareReport, type PreparedReport, type ReportPreparer } from './prepareReport.js';
import { inlineVerifier, type SignatureVerifier } from './signatureVerifier.js';
import { DEFAULT_SIGNATURE_CHECK, ReportRejection, type RejectedEntry, type SignatureCheck, type VerifiedEntry, type VerifiedReport } from './verifyReport.js';
import { checkSmsHeads } from '../sms/SmsInbox.js';
import type { InsuranceService } from '../insurance/InsuranceService.js';
import { isTallyError, operatorMessage } from '../../errors.js';

export interface Outgoing {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly retain?: boolean;
}

export interface IngestOutcome {
  /** The message as a whole was accepted (a report may still have rejected entries) */
  readonly accepted: boolean;
  /** Why the whole message was refused */
  readonly reason?: string;
  readonly inserted: number;
  readonly duplicates: number;
  readonly rejectedEntries: readonly RejectedEntry[];
  readonly replies: readonly Outgoing[];
}

export interface IngestOptions {
  readonly store: ServerStore;
  readonly rootPublicKey: Uint8Array;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** chain-anchored (default) or every-entry: see verifyReport.ts. With chain-anchored, call auditSignatures periodically (IngestServer does) */
  readonly signatureCheck?: SignatureCheck;
  /** Where signatures are checked: this thread (default) or the worker pool (createIngestWorkerPool) */
  readonly verifier?: SignatureVerifier;
  /** Where reports are parsed and verified: this thread, with `verifier` (default), or the worker pool */
  readonly preparer?: ReportPreparer;
  /** The server key (certified by the root) that signs a checkpoint into every ack; without it acks carry none */
  readonly checkpointSigner?: CheckpointSigner;
  /** When a terminal's connection counts as flapping (alert connection-flapping); DEFAULT_FLAPPING without it */
  readonly flapping?: FlappingRule;
}

/**
 * A terminal that connects `connections` times within `windowMs` (its retained
 * status online each time; a takeover of its session also publishes its last
 * will, offline) is flapping: a second client holds its certificate and takes
 * its session (the broker binds the client id to the certificate, so no other
 * certificate can), or its link keeps failing.
 */
export interface FlappingRule {
  readonly connections: number;
  readonly windowMs: number;
}

export const DEFAULT_FLAPPING: FlappingRule = { connections: 6, windowMs: 10 * 60_000 };

/** The server key and its root-signed certificate (ledger-format.md, server checkpoints) */
export interface CheckpointSigner {
  readonly key: KeyObject;
  readonly certificate: SignedJson;
}

export interface IngestStats {
  messages: number;
  reports: number;
  entriesInserted: number;
  entriesDuplicate: number;
  entriesRejected: number;
  messagesRejected: number;
  alerts: number;
}

const NOTHING = { inserted: 0, duplicates: 0, rejectedEntries: [], replies: [] } as const;

/** A terminal's reports stored in one transaction at most (a backlog drains in windows of many) */
const MAX_REPORTS_PER_TRANSACTION = 64;

interface PendingReport {
  readonly topic: string;
  readonly prepared: Promise<PreparedReport>;
  readonly resolve: (outcome: IngestOutcome) => void;
}

interface AcceptedReport {
  /** Position in the batch of pending reports */
  readonly index: number;
  readonly topic: string;
  readonly transaction: number;
  readonly report: VerifiedReport;
  /** The report's own rejections, then those found when storing */
  readonly rejected: RejectedEntry[];
}

function errorAck(terminalId: string, transaction: number, code: string, message: string): Outgoing {
  return {
    topic: terminalTopic(terminalId, 'ack'),
    payload: encodeJsonPayload('ack', { transaction, status: 'error', data: { committed: [], highestContiguousSeq: 0 }, error: { code, message: message.slice(0, 500) } }),
  };
}

export class Ingest {
  readonly stats: IngestStats = { messages: 0, reports: 0, entriesInserted: 0, entriesDuplicate: 0, entriesRejected: 0, messagesRejected: 0, alerts: 0 };
  private readonly store: ServerStore;
  private readonly logger: Logger;
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Per terminal: reports waiting for their turn, to be stored together */
  private readonly openReports = new Map<string, PendingReport[]>();
  /** contiguous seq per terminal at the previous gap check: a gap that did not move since is real */
  private readonly gapWatch = new Map<string, number>();
  private readonly statuses = new Map<string, { state: string; at: number }>();
  /** Per terminal: when it came online and when its will said offline, within the flapping window */
  private readonly connectionLog = new Map<string, { online: number[]; offline: number[] }>();
  private readonly pinned = new Map<string, string>();
  private transaction = 0;

  private readonly verifier: SignatureVerifier;
  private readonly preparer: ReportPreparer;
  private readonly signatureCheck: SignatureCheck;

  constructor(private readonly options: IngestOptions) {
    this.store = options.store;
    this.verifier = options.verifier ?? inlineVerifier;
    this.preparer = options.preparer ?? { prepare: (request) => prepareReport(request, this.verifier) };
    this.signatureCheck = options.signatureCheck ?? DEFAULT_SIGNATURE_CHECK;
    this.logger = (options.logger ?? silentLogger).child({ module: 'server.ingest' });
  }

  /** Online/offline as the terminals' retained status topics last said */
  terminalStatuses(): ReadonlyMap<string, { state: string; at: number }> {
    return this.statuses;
  }

  async handle(topic: string, payload: Uint8Array): Promise<IngestOutcome> {
    this.stats.messages++;
    const parsed = parseTopic(topic);
    if (!parsed || parsed.direction !== 'uplink') return this.refuse(topic, undefined, 'unknown-topic', 'not a terminal uplink topic');
    const { terminalId, kind } = parsed;
    if (kind !== 'report') {
      // reports that come after this message queue behind it
      this.openReports.delete(terminalId);
      return this.enqueue(terminalId, () => this.dispatch(topic, terminalId, kind, payload));
    }
    // parse and signature checks need no order: they start now, beside the terminal's queue
    // (the worker threads verify the next report while this one is stored); only storing waits its turn
    const prepared = this.preparer.prepare({ terminalId, payload, rootPublicKey: this.options.rootPublicKey, signatureCheck: this.signatureCheck });
    prepared.catch(() => undefined); // awaited (and its error handled) in handleReports
    return new Promise<IngestOutcome>((resolve) => {
      const pending: PendingReport = { topic, prepared, resolve };
      const open = this.openReports.get(terminalId);
      if (open && open.length < MAX_REPORTS_PER_TRANSACTION) {
        open.push(pending);
        return;
      }
      const reports = [pending];
      this.openReports.set(terminalId, reports);
      void this.enqueue(terminalId, async () => {
        // the reports of this terminal that came while its earlier work ran are stored together: one transaction
        if (this.openReports.get(terminalId) === reports) this.openReports.delete(terminalId);
        await this.handleReports(terminalId, reports);
      });
    });
  }

  /** One terminal's messages in order; other terminals in parallel */
  private enqueue<T>(terminalId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(terminalId) ?? Promise.resolve();
    const run = previous.then(work);
    const tail = run.catch(() => undefined);
    this.queues.set(terminalId, tail);
    void tail.then(() => {
      if (this.queues.get(terminalId) === tail) this.queues.delete(terminalId);
    });
    return run;
  }

  private async dispatch(topic: string, terminalId: string, kind: string, payload: Uint8Array): Promise<IngestOutcome> {
    try {
      switch (kind) {
        case 'heartbeat': {
          const heartbeat = parseJsonPayload('heartbeat', payload);
          await this.store.recordHeartbeat({
            terminalId,
            at: this.options.clock.now(),
            queueDepth: heartbeat.queueDepth,
            lastSeq: heartbeat.lastSeq,
            ...(heartbeat.batch ? { batchNo: heartbeat.batch.batchNo, batchRemaining: heartbeat.batch.remaining } : {}),
            ...(heartbeat.denylistVersion !== undefined ? { denylistVersion: heartbeat.denylistVersion } : {}),
            ...(heartbeat.clockTrusted !== undefined ? { clockTrusted: heartbeat.clockTrusted } : {}),
            ...(heartbeat.certExpiresAt !== undefined ? { certExpiresAt: heartbeat.certExpiresAt } : {}),
            ...(heartbeat.software !== undefined ? { software: heartbeat.software } : {}),
          });
          // a ledger that now ends before a head the terminal reported by SMS was rolled back
          await checkSmsHeads(this.store, terminalId, this.options.clock.now(), this.logger, heartbeat.lastSeq);
          // the terminal believes everything was delivered, yet the server misses entries (a restored
          // database, a lost report): ask at once rather than wait for a gap that may have no upper end here
          const terminal = heartbeat.queueDepth === 0 ? await this.store.terminal(terminalId) : undefined;
          if (terminal && heartbeat.lastSeq > terminal.contiguousSeq) {
            this.logger.info({ terminalId, lastSeq: heartbeat.lastSeq, contiguousSeq: terminal.contiguousSeq }, 'terminal is ahead: asking for a resend');
            return { accepted: true, ...NOTHING, replies: [this.resendRequest(terminalId, terminal.contiguousSeq + 1)] };
          }
          return { accepted: true, ...NOTHING };
        }
        case 'status': {
          const status = parseJsonPayload('status', payload);
          this.statuses.set(terminalId, { state: status.state, at: this.options.clock.now() });
          await this.watchFlapping(terminalId, status.state);
          // a terminal coming online gets the time (its clock may have reset while it was off)
          if (status.state === 'online') {
            return {
              accepted: true,
              ...NOTHING,
              replies: [{ topic: terminalTopic(terminalId, 'time'), payload: encodeJsonPayload('time', { transaction: this.nextTransaction(), serverTime: this.options.clock.now() }) }],
            };
          }
          return { accepted: true, ...NOTHING };
        }
        case 'claim':
          return await this.handleClaim(terminalId, payload);
        case 'voucher-claim':
          return await this.handleVoucherClaim(terminalId, payload);
        case 'insurance':
          return await this.handleInsurance(terminalId, payload);
        case 'response': {
          const response = parseJsonPayload('response', payload);
          if (response.status === 'error') this.logger.warn({ terminalId, request: response.request, error: response.error }, 'terminal refused a server message');
          return { accepted: true, ...NOTHING };
        }
        default:
          return await this.refuse(topic, terminalId, 'unknown-topic', `no handler for ${kind}`);
      }
    } catch (err) {
      return this.refuseError(topic, terminalId, err);
    }
  }

  /** Counts a terminal's connections and offlines in the window; too many connections raise connection-flapping */
  private async watchFlapping(terminalId: string, state: 'online' | 'offline'): Promise<void> {
    const rule = this.options.flapping ?? DEFAULT_FLAPPING;
    const now = this.options.clock.now();
    const log = this.connectionLog.get(terminalId) ?? { online: [], offline: [] };
    this.connectionLog.set(terminalId, log);
    log[state].push(now);
    for (const times of [log.online, log.offline]) while (times.length > 0 && times[0]! <= now - rule.windowMs) times.shift();
    if (state !== 'online' || log.online.length < rule.connections) return;
    const minutes = Math.round(rule.windowMs / 60_000);
    const detail =
      `connected ${log.online.length} times in ${minutes} min (last will offline ${log.offline.length} times): ` +
      'another client with its certificate keeps taking its session, or its link keeps failing';
    this.logger.warn({ terminalId, connections: log.online.length, offlines: log.offline.length, windowMs: rule.windowMs }, 'terminal connection flapping');
    // one alert per window's worth of time
    await this.alert('connection-flapping', terminalId, `flapping:${terminalId}:${Math.floor(log.online[0]! / rule.windowMs)}`, detail);
  }

  private refuseError(topic: string, terminalId: string, err: unknown): Promise<IngestOutcome> {
    if (err instanceof PayloadError) return this.refuse(topic, terminalId, err.reason, err.message);
    if (err instanceof ReportRejection) return this.refuse(topic, terminalId, err.reason, err.message);
    this.logger.error({ terminalId, topic, err: (err as Error).message }, 'ingest failed');
    return this.refuse(topic, terminalId, 'internal', (err as Error).message);
  }

  private async refuse(topic: string, terminalId: string | undefined, reason: string, detail: string, replies: Outgoing[] = []): Promise<IngestOutcome> {
    this.stats.messagesRejected++;
    this.logger.warn({ topic, terminalId, reason, detail }, 'message refused');
    try {
      await this.store.recordRejection({ at: this.options.clock.now(), ...(terminalId ? { terminalId } : {}), topic, reason, detail });
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'could not record a rejection');
    }
    return { accepted: false, reason, ...NOTHING, replies };
  }

  private async alert(kind: AlertKind, terminalId: string, key: string, detail: string): Promise<void> {
    if (await this.store.raiseAlert({ at: this.options.clock.now(), kind, terminalId, key, detail })) {
      this.stats.alerts++;
      this.logger.warn({ kind, terminalId, detail }, 'alert');
    }
  }

  /**
   * Stores reports of one terminal together: each is verified on its own, then
   * the union of their entries (one per seq; the first report to carry a seq
   * owns it) is link-checked and stored in one transaction, and each report
   * gets its own ack. Never rejects: every report gets an outcome.
   */
  private async handleReports(terminalId: string, reports: readonly PendingReport[]): Promise<void> {
    const outcomes: Array<IngestOutcome | undefined> = [];
    try {
      const accepted: AcceptedReport[] = [];
      for (const [index, pending] of reports.entries()) {
        this.stats.reports++;
        const verdict = await this.admitReport(terminalId, pending);
        if ('refused' in verdict) outcomes[index] = verdict.refused;
        else accepted.push({ index, topic: pending.topic, transaction: verdict.transaction, report: verdict.report, rejected: [...verdict.report.rejected] });
      }
      if (accepted.length > 0) for (const [index, outcome] of await this.storeReports(terminalId, accepted)) outcomes[index] = outcome;
    } catch (err) {
      this.logger.error({ terminalId, err: (err as Error).message }, 'storing reports failed');
      for (const [index, pending] of reports.entries()) outcomes[index] ??= await this.refuseError(pending.topic, terminalId, err);
    }
    reports.forEach((pending, index) => pending.resolve(outcomes[index] ?? { accepted: false, reason: 'internal', ...NOTHING }));
  }

  /** The checks that refuse a report as a whole: parse, certificate, topic, pinned device key */
  private async admitReport(terminalId: string, pending: PendingReport): Promise<{ transaction: number; report: VerifiedReport } | { refused: IngestOutcome }> {
    let prepared: PreparedReport;
    try {
      prepared = await pending.prepared;
    } catch (err) {
      return { refused: await this.refuseError(pending.topic, terminalId, err) };
    }
    const { transaction, report, rejection } = prepared;
    if (rejection || !report) {
      const err = rejection ?? new ReportRejection('bad-certificate', 'not verified');
      if (err.reason === 'terminal-mismatch') await this.alert('terminal-impersonation', terminalId, `impersonation:${terminalId}:${err.message}`, err.message);
      return { refused: await this.refuse(pending.topic, terminalId, err.reason, err.message, [errorAck(terminalId, transaction, err.reason, err.message)]) };
    }
    const certificate = report.certificate;
    // a pinned device key never changes, so once seen it is checked from memory
    const keyHex = Buffer.from(certificate.publicKey).toString('hex');
    const registration =
      this.pinned.get(terminalId) === keyHex
        ? 'same'
        : await this.store.registerTerminal(
            { terminalId, clinicCode: certificate.clinicCode, devicePublicKey: certificate.publicKey, certificate: certificate.raw },
            this.options.clock.now(),
          );
    if (registration === 'different') {
      const detail = 'a different device key than the one first seen for this terminal';
      await this.alert('certificate-changed', terminalId, `cert:${terminalId}:${keyHex}`, detail);
      return { refused: await this.refuse(pending.topic, terminalId, 'certificate-changed', detail, [errorAck(terminalId, transaction, 'certificate-changed', detail)]) };
    }
    this.pinned.set(terminalId, keyHex);
    return { transaction, report };
  }

  private async storeReports(terminalId: string, reports: readonly AcceptedReport[]): Promise<Map<number, IngestOutcome>> {
    const owners = new Map<number, { entry: VerifiedEntry; report: AcceptedReport }>();
    const echoes: Array<{ report: AcceptedReport; seq: number }> = [];
    for (const report of reports) {
      for (const entry of report.report.entries) {
        const { seq } = entry.row;
        const owner = owners.get(seq);
        if (!owner) owners.set(seq, { entry, report });
        else if (bytesEqual(owner.entry.row.hash, entry.row.hash)) echoes.push({ report, seq });
        else {
          report.rejected.push({ seq, reason: 'ledger-fork', detail: 'a different entry with this seq came in another report' });
          await this.alert('ledger-fork', terminalId, `fork:${terminalId}:${seq}`, `two different entries with seq ${seq}`);
        }
      }
    }
    const union = [...owners.values()].map((o) => o.entry).sort((a, b) => a.row.seq - b.row.seq);
    const unionRejected: RejectedEntry[] = [];
    const linked = await this.checkLinks(terminalId, union, unionRejected);
    const outcome = await this.store.insertEntries(
      linked.map((e) => e.row),
      this.options.clock.now(),
    );
    for (const seq of outcome.conflicts) {
      unionRejected.push({ seq, reason: 'ledger-fork', detail: 'a different entry with this seq is already stored' });
      await this.alert('ledger-fork', terminalId, `fork:${terminalId}:${seq}`, `two different entries with seq ${seq}`);
    }
    const inserted = new Set(outcome.inserted);
    const duplicates = new Set(outcome.duplicates);
    await this.recheckEdges(
      terminalId,
      linked.filter((e) => inserted.has(e.row.seq)).map((e) => e.row),
    );
    await this.checkFraud(
      terminalId,
      linked.filter((e) => inserted.has(e.row.seq)),
    );
    if (inserted.size) await checkSmsHeads(this.store, terminalId, this.options.clock.now(), this.logger);
    // uses the terminal recorded with an untrusted clock: reports date them by their arrival, apart; say so once a day
    const untrustedUses = linked.filter((e) => inserted.has(e.row.seq) && e.row.type === EntryType.USE_RESERVED && !e.row.clockTrusted);
    if (untrustedUses.length > 0) {
      const day = new Date(this.options.clock.now()).toISOString().slice(0, 10);
      const seqs = untrustedUses.map((e) => e.row.seq);
      await this.alert('untrusted-clock-uses', terminalId, `untrusted-uses:${terminalId}:${day}`, `uses recorded with an untrusted clock (first seq ${seqs[0]}, ${seqs.length} in this report): reports date them by the day they arrived, ${day}`);
    }
    // each rejection goes to the report that owns the seq, and to those that carried the same entry again
    const rejectedBySeq = new Map(unionRejected.map((r) => [r.seq, r]));
    for (const r of unionRejected) owners.get(r.seq)?.report.rejected.push(r);
    const committed = new Map<AcceptedReport, { inserted: number[]; duplicates: number[] }>(reports.map((r) => [r, { inserted: [], duplicates: [] }]));
    for (const [seq, { report }] of owners) {
      if (inserted.has(seq)) committed.get(report)!.inserted.push(seq);
      else if (duplicates.has(seq)) committed.get(report)!.duplicates.push(seq);
    }
    for (const { report, seq } of echoes) {
      if (inserted.has(seq) || duplicates.has(seq)) committed.get(report)!.duplicates.push(seq);
      else {
        const rejection = rejectedBySeq.get(seq);
        if (rejection) report.rejected.push(rejection);
      }
    }

    const terminal = await this.store.terminal(terminalId);
    const checkpoint = await this.checkpointFor(terminalId, terminal?.contiguousSeq ?? 0);
    const outcomes = new Map<number, IngestOutcome>();
    for (const report of reports) {
      const { rejected, transaction, topic } = report;
      const done = committed.get(report)!;
      for (const r of rejected) this.logger.warn({ terminalId, seq: r.seq, reason: r.reason, detail: r.detail }, 'entry refused');
      if (rejected.length > 0) {
        await this.store.recordRejection({
          at: this.options.clock.now(),
          terminalId,
          topic,
          reason: rejected[0]!.reason,
          detail: rejected.map((r) => `seq ${r.seq}: ${r.reason}: ${r.detail}`).join('; '),
        });
      }
      this.stats.entriesInserted += done.inserted.length;
      this.stats.entriesDuplicate += done.duplicates.length;
      this.stats.entriesRejected += rejected.length;
      const ack: AckPayload = {
        transaction,
        status: rejected.length === 0 ? 'ok' : 'error',
        data: {
          committed: seqsToRanges([...done.inserted, ...done.duplicates]),
          highestContiguousSeq: terminal?.contiguousSeq ?? 0,
          ...(rejected.length > 0 ? { rejected: rejected.slice(0, 1000).map((r) => ({ seq: r.seq, reason: r.reason })) } : {}),
          ...(checkpoint ? { checkpoint } : {}),
        },
        ...(rejected.length > 0 ? { error: { code: rejected[0]!.reason, message: `${rejected.length} entries refused; first: seq ${rejected[0]!.seq}: ${rejected[0]!.detail}`.slice(0, 500) } } : {}),
      };
      outcomes.set(report.index, {
        accepted: true,
        inserted: done.inserted.length,
        duplicates: done.duplicates.length,
        rejectedEntries: rejected,
        replies: [{ topic: terminalTopic(terminalId, 'ack'), payload: encodeJsonPayload('ack', ack) }],
      });
    }
    return outcomes;
  }

  /**
   * Another ingest worker may have stored a neighbour of these entries while they
   * were being checked (scale-out), each not seeing the other's. After the
   * commit, whichever of the two committed second sees both: the links at the
   * edges of what was just stored are checked again, and a broken one alerted
   * (both sides are stored by then).
   */
  private async recheckEdges(terminalId: string, rows: readonly EntryRow[]): Promise<void> {
    if (rows.length === 0) return;
    const seqs = new Set(rows.map((r) => r.seq));
    const edges = new Set<number>();
    for (const { seq } of rows) {
      if (seq > 1 && !seqs.has(seq - 1)) edges.add(seq - 1);
      if (!seqs.has(seq + 1)) edges.add(seq + 1);
    }
    const stored = new Map((await this.store.neighbours(terminalId, [...edges])).map((n) => [n.seq, n]));
    for (const row of rows) {
      const before = seqs.has(row.seq - 1) ? undefined : stored.get(row.seq - 1);
      const after = seqs.has(row.seq + 1) ? undefined : stored.get(row.seq + 1);
      if (before && !bytesEqual(before.hash, row.prevHash)) {
        await this.alert('chain-broken', terminalId, `chain:${terminalId}:${row.seq}`, `seq ${row.seq} does not link to seq ${row.seq - 1} (stored side by side)`);
      }
      if (after && !bytesEqual(after.prevHash, row.hash)) {
        await this.alert('chain-broken', terminalId, `chain:${terminalId}:${row.seq + 1}`, `seq ${row.seq + 1} does not link to seq ${row.seq} (stored side by side)`);
      }
    }
  }

  /** Drops entries whose hash does not link to a stored (or same-report) neighbour */
  private async checkLinks(terminalId: string, entries: readonly VerifiedEntry[], rejected: RejectedEntry[]): Promise<VerifiedEntry[]> {
    if (entries.length === 0) return [];
    const inReport = new Map(entries.map((e) => [e.row.seq, e.row]));
    const wanted = new Set<number>();
    for (const e of entries) {
      wanted.add(e.row.seq);
      if (e.row.seq > 1 && !inReport.has(e.row.seq - 1)) wanted.add(e.row.seq - 1);
      if (!inReport.has(e.row.seq + 1)) wanted.add(e.row.seq + 1);
    }
    const stored = new Map((await this.store.neighbours(terminalId, [...wanted])).map((n) => [n.seq, n]));
    const accepted: VerifiedEntry[] = [];
    for (const e of entries) {
      const { seq, prevHash, hash } = e.row;
      const already = stored.get(seq);
      if (already) {
        // stored before: the same bytes are a duplicate (links checked then); other bytes are a fork
        if (bytesEqual(already.hash, hash)) accepted.push(e);
        else {
          rejected.push({ seq, reason: 'ledger-fork', detail: 'a different entry with this seq is already stored' });
          await this.alert('ledger-fork', terminalId, `fork:${terminalId}:${seq}`, `two different entries with seq ${seq}`);
          // the restored ledger's own confession, refused as a fork, is still news
          await this.witnessAlert(terminalId, e.row);
        }
        continue;
      }
      const predecessorHash = inReport.get(seq - 1)?.hash ?? stored.get(seq - 1)?.hash;
      const successorPrev = inReport.has(seq + 1) ? undefined : stored.get(seq + 1)?.prevHash;
      let problem: string | undefined;
      if (predecessorHash && !bytesEqual(predecessorHash, prevHash)) problem = `does not link to seq ${seq - 1}`;
      else if (successorPrev && !bytesEqual(successorPrev, hash)) problem = `stored seq ${seq + 1} does not link to it`;
      if (problem) {
        rejected.push({ seq, reason: 'chain-broken', detail: problem });
        await this.alert('chain-broken', terminalId, `chain:${terminalId}:${seq}`, `seq ${seq} ${problem}`);
        continue;
      }
      accepted.push(e);
    }
    return accepted;
  }

  /**
   * The server's signed statement that it holds the terminal's ledger 1..seq with that head hash
   * (the terminal keeps the latest: a witness outside its database). None without a signer or an entry.
   */
  private async checkpointFor(terminalId: string, seq: number): Promise<Checkpoint | undefined> {
    const signer = this.options.checkpointSigner;
    if (!signer || seq < 1) return undefined;
    const head = (await this.store.neighbours(terminalId, [seq])).find((n) => n.seq === seq);
    if (!head) return undefined;
    return signCheckpoint(signer.key, signer.certificate, { terminalId, seq, headHash: toHex(head.hash), time: this.options.clock.now() });
  }

  /** A terminal's own record that a witness outside its database (board, checkpoint, card) holds a later ledger */
  private async witnessAlert(terminalId: string, row: EntryRow): Promise<void> {
    if (row.type !== EntryType.WITNESS_ROLLBACK) return;
    const detail = parseLedgerEntry(row.raw).detail ?? '';
    await this.alert('ledger-rollback', terminalId, `rollback:${terminalId}:${row.seq}`, `seq ${row.seq}: ledger restored or cut short, witness says seq ${row.ref ?? '?'}: ${detail}`);
  }

  private async checkFraud(terminalId: string, entries: readonly VerifiedEntry[]): Promise<void> {
    for (const { row } of entries) await this.witnessAlert(terminalId, row);
    await this.checkVoucherUses(terminalId, entries);
    for (const { row, batch } of entries) {
      if (row.type !== EntryType.BATCH_LOADED || !batch) continue;
      const holder = await this.store.holdBatch(batch, terminalId, row.seq, this.options.clock.now());
      if (holder.terminalId !== terminalId) {
        await this.alert(
          'batch-on-two-terminals',
          terminalId,
          `batch:${batch.batchId}:${terminalId}`,
          `batch ${batch.batchNo} (${batch.batchId}) loaded on ${terminalId} at seq ${row.seq}, already held by ${holder.terminalId}`,
        );
      }
    }
    const reserves = entries.map((e) => e.row).filter((r) => r.type === EntryType.USE_RESERVED && r.batchId !== undefined && r.serial !== undefined);
    if (reserves.length === 0) return;
    // one query for every serial of the report
    const open = new Map<string, SerialUse[]>();
    for (const use of await this.store.openUsesOf(reserves.map((r) => ({ batchId: r.batchId!, serial: r.serial! })))) {
      const key = `${use.batchId}:${use.serial}`;
      open.set(key, [...(open.get(key) ?? []), use]);
    }
    let terminal: TerminalRow | undefined;
    for (const row of reserves) {
      const uses = open.get(`${row.batchId}:${row.serial}`) ?? [];
      // a reservation already released is no use at all
      if (!uses.some((u) => u.terminalId === terminalId && u.seq === row.seq)) continue;
      const others = uses.filter((u) => u.terminalId !== terminalId || u.seq !== row.seq);
      if (others.length === 0) continue;
      // on the same terminal a release may still be on its way: only a contiguous ledger proves a double use
      if (!terminal && others.some((u) => u.terminalId === terminalId)) terminal = await this.store.terminal(terminalId);
      const proven = others.filter((u) => u.terminalId !== terminalId || (terminal && terminal.contiguousSeq >= Math.max(u.seq, row.seq)));
      if (proven.length > 0) {
        const first = proven[0]!;
        await this.alert(
          'serial-used-twice',
          terminalId,
          `serial:${row.batchId}:${row.serial}:${terminalId}:${row.seq}`,
          `serial ${row.serial} of batch ${row.batchId} used at ${terminalId} seq ${row.seq} and at ${first.terminalId} seq ${first.seq}`,
        );
      }
    }
  }

  /**
   * Voucher uses (entry type 12) just stored (voucher-format.md §6): the back office writes each off (an offline
   * write-off arrives here first; an online one was granted before and is granted again), and a voucher written off
   * on another terminal too, both offline, is raised as voucher-written-off-twice for every use after the first
   * (by the terminals' trusted clocks, else by arrival), naming the first and the double.
   */
  private async checkVoucherUses(terminalId: string, entries: readonly VerifiedEntry[]): Promise<void> {
    await this.writeOffVoucherUses(terminalId, entries);
    await this.voucherOutcomes(terminalId, entries);
  }

  /**
   * The outcomes of voucher uses (seed 004: the hospital module confirms the exam and tells the back office): a
   * use.completed entry of a voucher use marks its exam complete; a use.released one (the device never started)
   * gives the write-off back, unless this terminal still holds another use of the voucher; where another terminal
   * holds one (a double), the write-off goes to the first of those.
   */
  private async voucherOutcomes(terminalId: string, entries: readonly VerifiedEntry[]): Promise<void> {
    const rows = entries.map((e) => e.row).filter((r) => (r.type === EntryType.USE_COMPLETED || r.type === EntryType.USE_RELEASED) && r.ref !== undefined);
    if (rows.length === 0) return;
    const serials = await this.store.voucherSerialsAt(terminalId, rows.map((r) => r.ref!));
    if (serials.size === 0) return;
    const nowSeconds = Math.floor(this.options.clock.now() / 1000);
    for (const row of rows) {
      const serial = serials.get(row.ref!);
      if (serial === undefined) continue;
      if (row.type === EntryType.USE_COMPLETED) {
        await this.store.vouchers.complete(serial, terminalId, row.clockTrusted ? Math.floor(row.time / 1000) : nowSeconds);
        continue;
      }
      const open = await this.store.voucherUsesOf([serial]);
      if (open.some((u) => u.terminalId === terminalId)) continue;
      if (!(await this.store.vouchers.release(serial, terminalId, nowSeconds))) continue;
      this.logger.info({ terminalId, serial, seq: row.seq }, 'voucher use released: written off no more');
      const next = open[0];
      if (next) await this.store.vouchers.writeOff(serial, next.terminalId, next.clinicCode, next.clockTrusted ? Math.floor(next.time / 1000) : nowSeconds);
    }
  }

  private async writeOffVoucherUses(terminalId: string, entries: readonly VerifiedEntry[]): Promise<void> {
    const rows = entries.map((e) => e.row).filter((r) => r.type === EntryType.VOUCHER_RESERVED && r.serial !== undefined);
    if (rows.length === 0) return;
    const nowSeconds = Math.floor(this.options.clock.now() / 1000);
    const holders = new Map<number, string>();
    for (const row of rows) {
      const answer = await this.store.vouchers.writeOff(row.serial!, terminalId, row.clinicCode, row.clockTrusted ? Math.floor(row.time / 1000) : nowSeconds);
      if (!answer.granted && answer.holder) holders.set(row.seq, answer.holder);
    }
    const bySerial = new Map<number, VoucherUse[]>();
    for (const use of await this.store.voucherUsesOf(rows.map((r) => r.serial!))) bySerial.set(use.serial, [...(bySerial.get(use.serial) ?? []), use]);
    let terminal: TerminalRow | undefined;
    const when = (u: { time: number; clockTrusted: boolean }): string => `${new Date(u.time).toISOString()}${u.clockTrusted ? '' : ', clock untrusted'}`;
    for (const row of rows) {
      const uses = bySerial.get(row.serial!) ?? [];
      const self = uses.find((u) => u.terminalId === terminalId && u.seq === row.seq);
      if (!self) continue; // released in the same report: no use
      // on the same terminal a release may still be on its way: only a contiguous ledger proves it
      if (!terminal && uses.some((u) => u !== self && u.terminalId === terminalId)) terminal = await this.store.terminal(terminalId);
      const proven = uses.filter((u) => u === self || u.terminalId !== terminalId || (terminal !== undefined && terminal.contiguousSeq >= Math.max(u.seq, row.seq)));
      if (proven.length > 1) {
        // the first use is the one a trusted clock puts first; untrusted ones come after, in the order they arrived
        const ordered = [...proven.filter((u) => u.clockTrusted).sort((a, b) => a.time - b.time), ...proven.filter((u) => !u.clockTrusted)];
        const first = ordered[0]!;
        for (const double of ordered.slice(1)) {
          await this.alert(
            'voucher-written-off-twice',
            double.terminalId,
            `voucher-use:${row.serial}:${double.terminalId}:${double.seq}`,
            `voucher ${row.serial} written off twice: first at ${first.terminalId} seq ${first.seq} (${when(first)}), the double at ${double.terminalId} seq ${double.seq} (${when(double)})`,
          );
        }
      } else if (holders.has(row.seq)) {
        const holder = holders.get(row.seq)!;
        await this.alert(
          'voucher-written-off-twice',
          terminalId,
          `voucher-use:${row.serial}:${terminalId}:${row.seq}`,
          `voucher ${row.serial} written off twice: first at ${holder} (the back office granted its claim; its entry has not arrived), the double at ${terminalId} seq ${row.seq} (${when(self)})`,
        );
      }
    }
  }

  private async handleClaim(terminalId: string, payload: Uint8Array): Promise<IngestOutcome> {
    const claim = parseJsonPayload('claim', payload);
    const holder = await this.store.holdBatch({ batchId: claim.batchId, batchNo: claim.batchNo, clinicCode: claim.clinicCode, count: 0 }, terminalId, 0, this.options.clock.now());
    const granted = holder.terminalId === terminalId;
    if (!granted) {
      await this.alert('batch-on-two-terminals', terminalId, `claim:${claim.batchId}:${terminalId}`, `terminal ${terminalId} asked to load batch ${claim.batchNo}, held by ${holder.terminalId}`);
    }
    return {
      accepted: true,
      ...NOTHING,
      replies: [
        {
          topic: terminalTopic(terminalId, 'claim-result'),
          payload: encodeJsonPayload('claim-result', { transaction: claim.transaction, status: 'ok', data: { batchId: claim.batchId, granted, ...(granted ? {} : { holder: holder.terminalId }) } }),
        },
      ],
    };
  }

  /** Insurance payments over the terminal's own authenticated link (set by IngestServer when configured) */
  insurance: InsuranceService | undefined;

  /**
   * A terminal's insurance request (docs/insurance.md). The terminal is the one the broker authenticated (the
   * topic's id, which the ACL confines it to), so it starts orders for itself only; every answer carries its
   * transaction, a refusal its code.
   */
  private async handleInsurance(terminalId: string, payload: Uint8Array): Promise<IngestOutcome> {
    const request = parseJsonPayload('insurance', payload);
    const reply = (body: Parameters<typeof encodeJsonPayload<'insurance-result'>>[1]): IngestOutcome => ({
      accepted: true,
      ...NOTHING,
      replies: [{ topic: terminalTopic(terminalId, 'insurance-result'), payload: encodeJsonPayload('insurance-result', body) }],
    });
    const service = this.insurance;
    if (!service) return reply({ transaction: request.transaction, status: 'error', error: { code: 'INSURANCE_FAILED', message: 'this server takes no insurance payments' } });
    try {
      switch (request.op) {
        case 'start': {
          const a = await service.start({ terminalId, item: request.item!, amountFen: request.amountFen! });
          return reply({
            transaction: request.transaction,
            status: 'ok',
            data: { op: 'start', orderId: a.orderId, deviceCode: a.device_code, userCode: a.user_code, verificationUri: a.verification_uri, verificationUriComplete: a.verification_uri_complete, bindingCode: a.binding_code, expiresIn: a.expires_in, interval: a.interval },
          });
        }
        case 'poll': {
          const answer = await service.poll(request.deviceCode!, terminalId);
          if ('voucher' in answer) return reply({ transaction: request.transaction, status: 'ok', data: { op: 'poll', orderId: answer.orderId, voucher: answer.voucher } });
          return reply({ transaction: request.transaction, status: 'ok', data: { op: 'poll', pending: answer.error, interval: answer.interval, ...('reason' in answer ? { reason: answer.reason } : {}) } });
        }
        case 'redeem': {
          const redeemed = await service.redeem(request.redeemCode!, terminalId, await this.clinicOfTerminal(terminalId));
          return reply({ transaction: request.transaction, status: 'ok', data: { op: 'redeem', orderId: redeemed.orderId, voucher: redeemed.voucher } });
        }
        case 'outcome': {
          const order = await service.outcome(request.orderId!, terminalId, request.ran!);
          return reply({ transaction: request.transaction, status: 'ok', data: { op: 'outcome', orderId: order.orderId, state: order.state } });
        }
      }
    } catch (err) {
      const code = isTallyError(err) ? err.code : 'INSURANCE_FAILED';
      if (!isTallyError(err)) this.logger.error({ terminalId, op: request.op, err: (err as Error).message }, 'insurance request failed');
      return reply({ transaction: request.transaction, status: 'error', error: { code, message: (isTallyError(err) ? err.detail || operatorMessage(code, 'en') : operatorMessage(code, 'en')).slice(0, 500) } });
    }
  }

  /** The clinic a terminal is in: by its reports (its certificate's clinic), else the registry */
  private async clinicOfTerminal(terminalId: string): Promise<string | undefined> {
    const reported = (await this.store.terminals()).find((t) => t.terminalId === terminalId)?.clinicCode;
    if (reported) return reported;
    return (await this.store.registry.terminalRegistry()).find((t) => t.terminalId === terminalId)?.clinicCode;
  }

  /** A terminal asks, online, to write a voucher off (voucher-format.md §6): one conditional update decides */
  private async handleVoucherClaim(terminalId: string, payload: Uint8Array): Promise<IngestOutcome> {
    const claim = parseJsonPayload('voucher-claim', payload);
    const answer = await this.store.vouchers.writeOff(claim.serial, terminalId, claim.clinicCode, Math.floor(this.options.clock.now() / 1000));
    if (!answer.granted && answer.holder) {
      await this.alert('voucher-written-off-twice', terminalId, `voucher:${claim.serial}:${terminalId}`, `terminal ${terminalId} claimed voucher ${claim.serial}, written off by ${answer.holder}`);
    }
    return {
      accepted: true,
      ...NOTHING,
      replies: [
        {
          topic: terminalTopic(terminalId, 'voucher-claim-result'),
          payload: encodeJsonPayload('voucher-claim-result', {
            transaction: claim.transaction,
            status: 'ok',
            data: { serial: claim.serial, granted: answer.granted, ...(answer.granted ? {} : { code: answer.code, detail: answer.holder ? `written off by terminal ${answer.holder}` : answer.code }) },
          }),
        },
      ],
    };
  }

  /**
   * The background half of the chain-anchored check: every stored entry's own
   * signature, verified at leisure (up to `budget` entries a call), in seq
   * order per terminal up to its contiguous seq. An entry that an anchor
   * vouched for but whose own signature fails means the terminal signed over a
   * tampered predecessor: alert. Returns the number of entries checked.
   */
  async auditSignatures(budget = 2000): Promise<number> {
    let checked = 0;
    for (const terminal of await this.store.terminals()) {
      if (checked >= budget) break;
      let audited = await this.store.auditedSeq(terminal.terminalId);
      while (audited < terminal.contiguousSeq && checked < budget) {
        const entries = await this.store.entries(terminal.terminalId, audited + 1, Math.min(500, budget - checked));
        if (entries.length === 0) break;
        const due = entries.filter((stored) => stored.seq <= terminal.contiguousSeq);
        if (due.length === 0) break;
        // on the verifier's worker threads when there are any: the audit must not hold up the ingest
        const jobs = due.map((stored) => {
          const entry = parseLedgerEntry(stored.raw);
          return { publicKey: terminal.devicePublicKey, message: entry.body, signature: entry.signature };
        });
        const valid = await this.verifier.verify(jobs);
        for (const [i, stored] of due.entries()) {
          if (!valid[i]) await this.alert('bad-entry-signature', terminal.terminalId, `signature:${terminal.terminalId}:${stored.seq}`, `seq ${stored.seq} is chained but its own signature is invalid`);
        }
        audited = due[due.length - 1]!.seq;
        checked += due.length;
        await this.store.setAuditedSeq(terminal.terminalId, audited);
      }
    }
    return checked;
  }

  /**
   * Gaps that did not close since the last check are real: ask the terminal to
   * send again from the first missing seq. Call it periodically (IngestServer
   * does); a gap seen only once may still be a report in flight.
   */
  async checkGaps(): Promise<Outgoing[]> {
    const out: Outgoing[] = [];
    for (const terminal of await this.store.terminals()) {
      if (terminal.highestSeq <= terminal.contiguousSeq) {
        this.gapWatch.delete(terminal.terminalId);
        continue;
      }
      const before = this.gapWatch.get(terminal.terminalId);
      this.gapWatch.set(terminal.terminalId, terminal.contiguousSeq);
      if (before !== terminal.contiguousSeq) continue;
      const missing = await this.store.missingSeqs(terminal.terminalId, 1000);
      if (missing.length === 0) continue;
      this.logger.info({ terminalId: terminal.terminalId, fromSeq: missing[0], missing: missing.length }, 'gap: asking for a resend');
      out.push(this.resendRequest(terminal.terminalId, missing[0]!, missing[missing.length - 1]!));
    }
    return out;
  }

  private resendRequest(terminalId: string, fromSeq: number, toSeq?: number): Outgoing {
    return {
      topic: terminalTopic(terminalId, 'resend'),
      payload: encodeJsonPayload('resend', { transaction: this.nextTransaction(), fromSeq, ...(toSeq !== undefined ? { toSeq } : {}) }),
    };
  }

  private nextTransaction(): number {
    this.transaction = (this.transaction + 1) % 0xffffffff;
    return this.transaction;
  }
}
