/**
 * The account of an audit bundle (firmware-protocol/audit-bundle.md section 3):
 * the uses paid in a period by what paid for them (card, voucher, insurance
 * settlement), per UTC day, card uses per batch, counted from the ledger
 * entries as the server counts them (a reserved entry not released),
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

/** What paid for a use: a one-time card, a service voucher, an insurance settlement voucher */
export type PaidBy = 'card' | 'voucher' | 'settlement';

/** The insurance settlements' amounts, summed from their settlement vouchers (fen) */
export interface Settled {
  readonly amountFen: number;
  readonly insurerFen: number;
  readonly patientFen: number;
}

export interface DayUses {
  readonly day: string;
  /** Charged at the clinic's price: card + voucher */
  readonly uses: number;
  readonly card: number;
  readonly voucher: number;
  readonly settlement: number;
}

/** The account of format 3 (audit-bundle.md section 3) */
export interface Account {
  /** The uses charged at the clinic's price, as the income report charges them: card + voucher */
  readonly uses: number;
  readonly card: number;
  readonly voucher: number;
  /** Paid by the insurance platform per order (settlement-voucher.md), not at the clinic's price */
  readonly settlement: number;
  readonly settled: Settled;
  /** One per day with a use of any kind, days rising */
  readonly days: readonly DayUses[];
  /** Card uses per batch; batchNo is 0 when the bundle holds no batch.loaded entry of the batch */
  readonly batches: readonly { readonly batchId: string; readonly batchNo: number; readonly uses: number }[];
}

/** The account of format 2 (card uses only), as a format 2 statement signed it */
export interface AccountV2 {
  readonly uses: number;
  readonly days: readonly { readonly day: string; readonly uses: number }[];
  readonly batches: Account['batches'];
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

export interface PaidUse {
  readonly seq: number;
  readonly day: string;
  readonly paidBy: PaidBy;
  /** A card use's batch (the one-time record's batch id, hex) */
  readonly batchId?: string;
  /** A settlement's amounts, from its voucher */
  readonly settled?: Settled;
}

/** Card and voucher uses are charged at the clinic's price; a settlement is paid by the insurance platform */
export function chargedAtPrice(paidBy: PaidBy): boolean {
  return paidBy !== 'settlement';
}

const MONEY = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A settlement.reserved entry's amounts: its card is the voucher's UTF-8 JSON, whose body names them; undefined when they do not read */
export function settledAmounts(card: Uint8Array): Settled | undefined {
  try {
    // fatal and BOM kept: the Python verifier reads the same bytes as the same text or not at all
    const voucher: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(card));
    if (!isObject(voucher) || typeof voucher.body !== 'string') return undefined;
    const body: unknown = JSON.parse(voucher.body);
    if (!isObject(body) || !MONEY(body.amountFen) || !MONEY(body.insurerFen) || !MONEY(body.patientFen)) return undefined;
    return { amountFen: body.amountFen, insurerFen: body.insurerFen, patientFen: body.patientFen };
  } catch {
    return undefined;
  }
}

/**
 * The uses paid in the period, of every kind: a use.reserved entry with a one-time card's record, a voucher.reserved
 * entry with a card field, a settlement.reserved entry whose voucher's amounts read; its day in the period and no
 * use.released entry naming it
 */
export function paidUses(entries: readonly Uint8Array[], period: Period | null): PaidUse[] {
  const list = parsed(entries);
  const released = new Set(list.filter((e) => e.type === EntryType.USE_RELEASED && e.ref !== undefined).map((e) => e.ref!));
  const out: PaidUse[] = [];
  for (const e of list) {
    if (released.has(e.seq) || !e.card) continue;
    if (e.type !== EntryType.USE_RESERVED && e.type !== EntryType.VOUCHER_RESERVED && e.type !== EntryType.SETTLEMENT_RESERVED) continue;
    const day = dayOf(e.time);
    if (!inPeriod(day, period)) continue;
    if (e.type === EntryType.VOUCHER_RESERVED) out.push({ seq: e.seq, day, paidBy: 'voucher' });
    else if (e.type === EntryType.SETTLEMENT_RESERVED) {
      const settled = settledAmounts(e.card);
      if (settled) out.push({ seq: e.seq, day, paidBy: 'settlement', settled });
    } else {
      try {
        const r = parseCardRecord(e.card);
        if (r.kind === RecordKind.ONE_TIME) out.push({ seq: e.seq, day, paidBy: 'card', batchId: toHex(r.batchId) });
      } catch {
        // not a one-time card's record: the verdict names it
      }
    }
  }
  return out;
}

/** The uses paid in the period by kind, per UTC day, card uses per batch (with its number from the batch.loaded entry) */
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
  const days = new Map<string, { card: number; voucher: number; settlement: number }>();
  const batches = new Map<string, number>();
  const kinds = { card: 0, voucher: 0, settlement: 0 };
  const settled = { amountFen: 0, insurerFen: 0, patientFen: 0 };
  for (const u of paidUses(entries, period)) {
    const day = days.get(u.day) ?? { card: 0, voucher: 0, settlement: 0 };
    day[u.paidBy]++;
    days.set(u.day, day);
    kinds[u.paidBy]++;
    if (u.batchId !== undefined) batches.set(u.batchId, (batches.get(u.batchId) ?? 0) + 1);
    if (u.settled) {
      settled.amountFen += u.settled.amountFen;
      settled.insurerFen += u.settled.insurerFen;
      settled.patientFen += u.settled.patientFen;
    }
  }
  const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    uses: kinds.card + kinds.voucher,
    ...kinds,
    settled,
    days: sorted(days).map(([day, n]) => ({ day, uses: n.card + n.voucher, ...n })),
    batches: sorted(batches).map(([batchId, n]) => ({ batchId, batchNo: batchNo.get(batchId) ?? 0, uses: n })),
  };
}

/** What a format 2 statement counted of an account: its card uses only (days with a card use, batches) */
export function accountV2(a: Account): AccountV2 {
  return { uses: a.card, days: a.days.filter((d) => d.card > 0).map((d) => ({ day: d.day, uses: d.card })), batches: a.batches };
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
