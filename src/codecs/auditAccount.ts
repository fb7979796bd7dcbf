/**
 * The account of an audit bundle (firmware-protocol/audit-bundle.md section 3):
 * the uses charged in a period, per UTC day and per batch, counted from the
 * ledger entries as the server counts them (a use.reserved entry not released),
 * and the income split of those uses at the clinic's price and share, in
 * integer money units (fen). Pure: both halves and both verifiers compute it
 * from the entries, and the server's statement signs what it computed.
 */
import { toHex } from './bytes.js';
import { parseCardRecord, RecordKind } from './cardRecord.js';
import { EntryType, parseLedgerEntry, type LedgerEntry } from './ledgerEntry.js';

/** UTC days, both included; null: every entry */
export interface Period {
  readonly from: string;
  readonly to: string;
}

/** The price of one use and the shares, as the server's registry holds them for the clinic (shares in basis points) */
export interface Pricing {
  /** Smallest money unit (fen, cents) */
  readonly pricePerUse: number;
  /** The investor's share of the gross, 0..10000 basis points; the clinic keeps the rest */
  readonly investorShareBp: number;
  /** The agent that placed the clinic's devices: its share of the gross, out of the investor's part */
  readonly agentCode?: string;
  readonly agentShareBp?: number;
}

export interface Account {
  readonly uses: number;
  readonly days: readonly { readonly day: string; readonly uses: number }[];
  /** batchNo is 0 when the bundle holds no batch.loaded entry of the batch */
  readonly batches: readonly { readonly batchId: string; readonly batchNo: number; readonly uses: number }[];
}

export interface Income {
  readonly gross: number;
  readonly clinic: number;
  /** The investor's part, less the agent's */
  readonly investor: number;
  readonly agentCode?: string;
  readonly agent?: number;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function isDay(value: unknown): value is string {
  return typeof value === 'string' && DAY.test(value) && new Date(`${value}T00:00:00Z`).toISOString().slice(0, 10) === value;
}

/** The last ms of 9999-12-31 UTC: a later time is counted on that day (four-digit years only) */
export const LAST_DAY_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** The UTC day of a time in ms */
export function dayOf(ms: number): string {
  return new Date(Math.min(ms, LAST_DAY_MS)).toISOString().slice(0, 10);
}

export function inPeriod(day: string, period: Period | null): boolean {
  return period === null || (day >= period.from && day <= period.to);
}

function parsed(entries: readonly Uint8Array[]): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (const raw of entries) {
    try {
      out.push(parseLedgerEntry(raw));
    } catch {
      // a malformed entry charges nothing: the ledger verdict names it
    }
  }
  return out;
}

export interface ChargedUse {
  readonly seq: number;
  readonly day: string;
  readonly batchId: string;
}

/** Uses charged in the period: use.reserved entries with a one-time card whose day is in it and that no use.released entry cancels */
export function chargedUses(entries: readonly Uint8Array[], period: Period | null): ChargedUse[] {
  const list = parsed(entries);
  const released = new Set(list.filter((e) => e.type === EntryType.USE_RELEASED && e.ref !== undefined).map((e) => e.ref!));
  const out: ChargedUse[] = [];
  for (const e of list) {
    if (e.type !== EntryType.USE_RESERVED || released.has(e.seq) || !e.card) continue;
    const day = dayOf(e.time);
    if (!inPeriod(day, period)) continue;
    try {
      const r = parseCardRecord(e.card);
      if (r.kind === RecordKind.ONE_TIME) out.push({ seq: e.seq, day, batchId: toHex(r.batchId) });
    } catch {
      // not a one-time card's record: the verdict names it
    }
  }
  return out;
}

/** The uses charged in the period, per UTC day and per batch (with its number from the batch.loaded entry) */
export function accountOf(entries: readonly Uint8Array[], period: Period | null): Account {
  const batchNo = new Map<string, number>();
  for (const e of parsed(entries)) {
    if (e.type !== EntryType.BATCH_LOADED || !e.card) continue;
    try {
      const r = parseCardRecord(e.card);
      if (r.kind === RecordKind.BATCH && !batchNo.has(toHex(r.cardId))) batchNo.set(toHex(r.cardId), r.batchNo);
    } catch {
      // not a batch record: the verdict names it
    }
  }
  const days = new Map<string, number>();
  const batches = new Map<string, number>();
  const uses = chargedUses(entries, period);
  for (const u of uses) {
    days.set(u.day, (days.get(u.day) ?? 0) + 1);
    batches.set(u.batchId, (batches.get(u.batchId) ?? 0) + 1);
  }
  const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    uses: uses.length,
    days: sorted(days).map(([day, n]) => ({ day, uses: n })),
    batches: sorted(batches).map(([batchId, n]) => ({ batchId, batchNo: batchNo.get(batchId) ?? 0, uses: n })),
  };
}

/** gross * bp / 10000, rounded half up, in integers (no float rounding for a verifier in another language to disagree with) */
function part(gross: number, bp: number): number {
  return Number((BigInt(gross) * BigInt(bp) + 5000n) / 10000n);
}

/** The split of `uses` at the pricing: the investor's part rounded, the clinic gets the exact rest; the agent's out of the investor's */
export function splitIncome(uses: number, pricing: Pricing): Income {
  const gross = uses * pricing.pricePerUse;
  const investor = part(gross, pricing.investorShareBp);
  if (pricing.agentCode === undefined) return { gross, clinic: gross - investor, investor };
  const agent = Math.min(investor, part(gross, pricing.agentShareBp ?? 0));
  return { gross, clinic: gross - investor, investor: investor - agent, agentCode: pricing.agentCode, agent };
}

/** A share 0..1 (the registry's) in basis points */
export function shareBp(share: number): number {
  return Math.round(share * 10_000);
}

/** Money in the smallest unit as units and hundredths: 12345 -> "123.45" */
export function formatMoney(amount: number): string {
  const sign = amount < 0 ? '-' : '';
  const a = Math.abs(amount);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}
