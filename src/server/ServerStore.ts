/**
 * Everything the ingest server keeps, behind one interface with two
 * implementations (SQLite, the embedded default; PostgreSQL, for production).
 * test/server/storeContract.test.ts runs the same suite against both.
 *
 * The store is dumb on purpose: it stores and answers; the ingest decides
 * (verification, chain links, fraud rules) in src/server/ingest.
 */
import type { AccessStore } from './access/AccessStore.js';
import type { RegistryStore } from './registry/RegistryStore.js';
import type { InsuranceStore } from './insurance/InsuranceStore.js';
import type { SqlVoucherStore } from './voucher/SqlVoucherStore.js';

export interface TerminalRegistration {
  readonly terminalId: string;
  readonly clinicCode: string;
  /** The Ed25519 device key from the terminal certificate, pinned on first sight */
  readonly devicePublicKey: Uint8Array;
  readonly certificate: Uint8Array;
}

export interface TerminalRow extends TerminalRegistration {
  /** Every seq up to this one is stored */
  readonly contiguousSeq: number;
  readonly highestSeq: number;
  readonly firstSeenAt: number;
}

/** One verified ledger entry, ready to store */
export interface EntryRow {
  readonly terminalId: string;
  readonly seq: number;
  readonly type: number;
  /** Terminal clock, ms */
  readonly time: number;
  readonly clockTrusted: boolean;
  readonly clinicCode: string;
  /** Hex card id of the batch: of the batch card (batch.loaded) or the one a one-time card belongs to (use.*) */
  readonly batchId?: string;
  readonly serial?: number;
  readonly ref?: number;
  readonly hash: Uint8Array;
  readonly prevHash: Uint8Array;
  readonly raw: Uint8Array;
}

export interface StoredEntry extends EntryRow {
  readonly receivedAt: number;
}

export interface InsertOutcome {
  /** Newly stored */
  readonly inserted: number[];
  /** Already stored with the same hash: a replay or a resend, not counted again */
  readonly duplicates: number[];
  /** Already stored with a DIFFERENT hash: the terminal's ledger forked (clone or restore) */
  readonly conflicts: number[];
}

export interface ChainNeighbour {
  readonly seq: number;
  readonly hash: Uint8Array;
  readonly prevHash: Uint8Array;
}

export interface BatchHolder {
  readonly batchId: string;
  readonly terminalId: string;
  /** The ledger seq of the batch.loaded entry (0 for an online claim not yet followed by the entry) */
  readonly seq: number;
}

export interface BatchRow {
  readonly batchId: string;
  readonly batchNo: number;
  readonly clinicCode: string;
  readonly count: number;
}

export interface OpenUse {
  readonly terminalId: string;
  readonly seq: number;
}

export interface SerialUse extends OpenUse {
  readonly batchId: string;
  readonly serial: number;
}

/** A voucher written off (entry type 12) and not released: where, and when by the terminal's clock */
export interface VoucherUse extends OpenUse {
  readonly serial: number;
  readonly clinicCode: string;
  readonly time: number;
  readonly clockTrusted: boolean;
}

export interface Rejection {
  readonly at: number;
  readonly terminalId?: string;
  readonly topic: string;
  readonly reason: string;
  readonly detail: string;
}

export type AlertKind =
  | 'batch-on-two-terminals'
  /** a service voucher claimed or written off by a second terminal (voucher-format.md §6) */
  | 'voucher-written-off-twice'
  | 'serial-used-twice'
  | 'ledger-fork'
  | 'chain-broken'
  | 'certificate-changed'
  | 'terminal-impersonation'
  | 'bad-entry-signature'
  /** a batch card loaded (or claimed) that no imported issuing-station export knows */
  | 'batch-not-registered'
  /** a terminal reporting for another clinic than the registry places it in (or loading another clinic's batch) */
  | 'terminal-wrong-clinic'
  /** a terminal the registry marks retired whose entries keep arriving */
  | 'terminal-retired-reporting'
  /** a terminal the registry does not list, reporting for a clinic the registry lists terminals for */
  | 'terminal-not-registered'
  /** a terminal recorded that a witness (relay board, server checkpoint, card marker) holds a later ledger than its database */
  | 'ledger-rollback'
  /** a terminal's newest TLS certificate lapses within 30 days: it has not renewed (server/est/revocationSync.ts) */
  | 'certificate-expiring'
  /** the ledger the server received does not hold a chain head the terminal reported by SMS (rollback or fork) */
  | 'sms-head-contradicted'
  /** a terminal that keeps connecting (its session taken by a client holding its certificate, or a failing link): Ingest's FlappingRule */
  | 'connection-flapping'
  /** uses recorded with an untrusted terminal clock arrived: the reports date them by their arrival, apart */
  | 'untrusted-clock-uses'
  /** an insurance order still settling past its age limit while the platform cannot be asked about its key (InsuranceService.recover) */
  | 'insurance-settlement-unresolved';

export interface Alert {
  readonly at: number;
  readonly kind: AlertKind;
  readonly terminalId: string;
  readonly detail: string;
  /** Same key, same alert: raising it again is a no-op */
  readonly key: string;
}

export type UsesKey = 'terminal' | 'clinic' | 'all';
export type UsesPeriod = 'day' | 'week' | 'month' | 'all';
export interface UsesSum {
  readonly key: string;
  readonly bucket: string;
  readonly uses: number;
  readonly clockUntrusted?: true;
}

/** Uses per bucket for each group: buckets sorted, each group's uses in the buckets' order (the overview's chart) */
export interface UsesSeries {
  readonly buckets: string[];
  readonly groups: Array<{ key: string; uses: number[] }>;
  readonly total: number;
}

export interface DailyUses {
  readonly terminalId: string;
  readonly clinicCode: string;
  /** YYYY-MM-DD, UTC, by the terminal's clock */
  readonly day: string;
  /** use.reserved entries not released (a released use is not charged) */
  readonly uses: number;
  /**
   * The terminal's clock was not trusted when it recorded these uses: `day` is then the day the server received
   * them (UTC), the best date it has, and the row is kept apart from the trusted ones of that day
   */
  readonly clockUntrusted?: true;
}

export interface DailyUsesQuery {
  /** First and last UTC day (YYYY-MM-DD), inclusive */
  readonly from?: string;
  readonly to?: string;
  readonly clinics?: readonly string[];
  /** An opaque position: the `next` of the page before */
  readonly after?: string;
  readonly limit: number;
}

export interface BatchReconciliationRow extends BatchRow {
  readonly terminalId: string;
  readonly used: number;
  readonly released: number;
  readonly remaining: number;
  /** From the terminal's last heartbeat: uses the terminal has made that the server has not seen yet (undefined: no heartbeat) */
  readonly notYetReported?: number;
}

export interface HeartbeatRow {
  readonly terminalId: string;
  readonly at: number;
  readonly queueDepth: number;
  readonly lastSeq: number;
  readonly batchNo?: number;
  readonly batchRemaining?: number;
  /** The deny-list version the terminal holds */
  readonly denylistVersion?: number;
  /** Whether the terminal trusts its clock (false: its uses are dated by their arrival) */
  readonly clockTrusted?: boolean;
  /** When the terminal's TLS certificate expires (ms) */
  readonly certExpiresAt?: number;
  readonly software?: string;
}

/** A card the console revoked: on the deny list from `version` on */
export interface DeniedCard {
  /** 16 hex digits */
  readonly cardId: string;
  readonly version: number;
  readonly reason: string;
  readonly revokedAt: number;
  readonly revokedBy: string;
}

export interface SmsReportRow {
  readonly terminalId: string;
  readonly counter: number;
  /** The sender number as the SMS gateway gave it */
  readonly sender: string;
  /** Terminal clock at sending, ms */
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly headSeq: number;
  /** Hex, 8 bytes */
  readonly headHashPrefix: string;
  readonly outboxDepth: number;
  readonly alerts: number;
  readonly batches: readonly { readonly batchNo: number; readonly usesSince: number; readonly usesTotal: number }[];
  /** Hex of the signed body: a second report with this counter and another body is a rollback, not a duplicate */
  readonly bodyHex: string;
  /** 0 not yet checked against the ledger, 1 the ledger holds the head, 2 it contradicts it */
  readonly headCheck: 0 | 1 | 2;
}

export interface ServerStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Clinics, expected terminals and what the issuing stations issued (same database) */
  readonly registry: RegistryStore;
  /** The console's agents, users, sessions and audit log (same database) */
  readonly access: AccessStore;
  /** Insurance payments: orders, authorisations, settlements (same database) */
  readonly insurance: InsuranceStore;
  /** The voucher back office's state (seed 004) */
  readonly vouchers: SqlVoucherStore;
  /** Pins the certificate on first sight; 'different' means another device key claims this terminal id */
  registerTerminal(registration: TerminalRegistration, at: number): Promise<'new' | 'same' | 'different'>;
  terminal(terminalId: string): Promise<TerminalRow | undefined>;
  terminals(): Promise<TerminalRow[]>;

  /** One transaction, idempotent on (terminal, seq); advances the contiguous seq */
  insertEntries(rows: readonly EntryRow[], at: number): Promise<InsertOutcome>;
  /** Stored hashes of these seqs of one terminal (for chain links with out-of-order arrivals) */
  neighbours(terminalId: string, seqs: readonly number[]): Promise<ChainNeighbour[]>;
  entries(terminalId: string, fromSeq: number, limit: number): Promise<StoredEntry[]>;
  entryCount(terminalId?: string): Promise<number>;
  /** Seqs missing below the highest stored one, lowest first */
  missingSeqs(terminalId: string, limit: number): Promise<number[]>;

  /** First writer wins; returns who holds the batch (the caller, or the earlier terminal) */
  holdBatch(batch: BatchRow, terminalId: string, seq: number, at: number): Promise<BatchHolder>;
  batchHolder(batchId: string): Promise<BatchHolder | undefined>;
  /** use.reserved entries of this serial that no use.released entry cancels */
  openUses(batchId: string, serial: number): Promise<OpenUse[]>;
  /** openUses for many serials in one query */
  openUsesOf(serials: ReadonlyArray<{ readonly batchId: string; readonly serial: number }>): Promise<SerialUse[]>;

  /** The voucher uses (entry type 12, not released) of these voucher serials, in time order */
  voucherUsesOf(serials: readonly number[]): Promise<VoucherUse[]>;
  /** The voucher serial of each of this terminal's voucher.reserved entries (type 12) at these seqs */
  voucherSerialsAt(terminalId: string, seqs: readonly number[]): Promise<Map<number, number>>;
  /**
   * Vouchers charged per clinic (the income report): the serials with a voucher.reserved entry that no release
   * cancels, each once however many terminals wrote it off (a double is an alert, not paid twice)
   */
  voucherUsesPerClinic(): Promise<Array<{ clinicCode: string; uses: number }>>;

  recordRejection(rejection: Rejection): Promise<void>;
  rejections(limit?: number): Promise<Rejection[]>;
  /** Idempotent on alert.key; true when the alert is new */
  raiseAlert(alert: Alert): Promise<boolean>;
  alerts(): Promise<Alert[]>;

  recordHeartbeat(heartbeat: HeartbeatRow): Promise<void>;
  /** Each terminal's last heartbeat */
  heartbeats(): Promise<HeartbeatRow[]>;

  /** Puts a card on the deny list at the next version; a card already there keeps its row (created false) */
  revokeCard(card: Omit<DeniedCard, 'version'>): Promise<{ created: boolean; card: DeniedCard }>;
  /** The deny list, oldest first; its version is the last row's (0: empty) */
  denylist(): Promise<DeniedCard[]>;

  /** The last seq whose own signature the background audit has checked (0: none) */
  auditedSeq(terminalId: string): Promise<number>;
  setAuditedSeq(terminalId: string, seq: number): Promise<void>;

  /** From the daily roll-up kept at ingest */
  usesPerDay(): Promise<DailyUses[]>;
  /** Uses per clinic, summed in the database from the roll-up (the income report) */
  /** untrustedUses: how many of them were recorded with an untrusted clock */
  usesPerClinic(): Promise<Array<{ clinicCode: string; uses: number; untrustedUses: number }>>;
  /** The same, counted from every stored entry: what the roll-up always equals (tests, checks) */
  usesPerDayFromEntries(): Promise<DailyUses[]>;
  /**
   * Uses summed in the database from the roll-up (GROUP BY key and bucket): key a terminal, a clinic or '' (all),
   * bucket a UTC day, the Monday of its ISO week, its month, or '' (all time); only the given clinics when given.
   * Uses recorded with an untrusted clock count on the day the server received them, in rows of their own when
   * untrustedApart (clockUntrusted: true)
   */
  usesSummed(by: UsesKey, period: UsesPeriod, clinics?: readonly string[], untrustedApart?: boolean): Promise<UsesSum[]>;
  /**
   * usesSummed('terminal', 'day') as a series (the days with a use; each terminal's uses per day, untrusted ones on
   * their arrival day): the largest series (a terminal a line, a day a point), built without a row per point
   */
  terminalDaySeries(clinics?: readonly string[]): Promise<UsesSeries>;
  /**
   * One page of the daily rows (usesPerDay's rows, per terminal with untrusted after trusted, then by day), from
   * the rows after `after` (the page's `next` of the page before), at most `limit`; only days from..to and the
   * given clinics when given. `next` is there when more rows may follow.
   */
  usesPerDayPage(query: DailyUsesQuery): Promise<{ rows: DailyUses[]; next?: string }>;
  /** From the per-batch counts kept at ingest (batch_uses) */
  batchReconciliation(): Promise<BatchReconciliationRow[]>;
  /** The same, counted from every stored entry: what the stored counts always equal (tests, checks) */
  batchReconciliationFromEntries(): Promise<BatchReconciliationRow[]>;

  /** Stores an accepted SMS report; false when one with this terminal and counter is already there */
  recordSmsReport(row: SmsReportRow): Promise<boolean>;
  /** Oldest first; of one terminal when given */
  smsReports(terminalId?: string): Promise<SmsReportRow[]>;
  setSmsHeadCheck(terminalId: string, counter: number, check: 1 | 2): Promise<void>;
  /** The last time anything came from the terminal over the data link (an entry or a heartbeat) */
  lastDataAt(terminalId: string): Promise<number | undefined>;
  close(): Promise<void>;
}
