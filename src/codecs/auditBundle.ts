/**
 * The audit bundle (firmware-protocol/audit-bundle.md): one JSON file holding a
 * terminal's ledger entries as one half holds them (the terminal's, or the
 * investor's server's), the latest server-signed checkpoint, and on the server's
 * half its signed statement of every entry it received. Pure: parsing and
 * encoding; the signatures are checked in crypto/auditBundle.ts.
 */
import { accountV2, isDay, type Account, type AccountV2, type Income, type Period, type Pricing } from './auditAccount.js';
import { fromHex } from './bytes.js';
import { parseCheckpoint, parseSignedJson, type Checkpoint, type SignedJson } from './checkpoint.js';
import { CodecError } from '../errors.js';

export const AUDIT_BUNDLE_FORMAT = 'tallystick-audit-bundle/3';
export const STATEMENT_FORMAT = 'tallystick-statement/3';
/** Format 2 (card uses only) is still read and verified by its own rules: such bundles exist (audit-bundle.md section 7) */
export const AUDIT_BUNDLE_FORMAT_V2 = 'tallystick-audit-bundle/2';
export const STATEMENT_FORMAT_V2 = 'tallystick-statement/2';
export type BundleVersion = 2 | 3;
const ID = /^[A-Za-z0-9._-]{1,64}$/;
const HEX_ENTRY = /^(?:[0-9a-f]{2})+$/;
const HASH = /^[0-9a-f]{64}$/;

export type BundleSide = 'terminal' | 'server';

/** The server's statement: it holds these entries of this terminal (seq and entry hash), as of its time */
export interface Statement extends SignedJson {
  readonly format: typeof STATEMENT_FORMAT | typeof STATEMENT_FORMAT_V2;
  readonly serverCertificate: SignedJson;
}

export interface StatementFields {
  readonly serverId: string;
  readonly terminalId: string;
  /** The clinic of the terminal certificate */
  readonly clinicCode: string;
  readonly time: number;
  /** The period the account covers (UTC days, both included); null: every entry */
  readonly period: Period | null;
  /** [seq, hex entry hash] of every entry the server holds, in seq order */
  readonly entries: readonly (readonly [number, string])[];
  /** The clinic's price and shares in the server's registry at the statement's time */
  readonly pricing: Pricing;
  /** The uses paid in the period by kind, per day and batch, counted from the entries (a format 2 statement's: lifted, see liftAccountV2) */
  readonly account: Account;
  /** The account's uses at the pricing */
  readonly income: Income;
}

/** A statement body as read: its format version beside its fields */
export interface ParsedStatementFields extends StatementFields {
  readonly version: BundleVersion;
}

export interface AuditBundle {
  readonly format: typeof AUDIT_BUNDLE_FORMAT | typeof AUDIT_BUNDLE_FORMAT_V2;
  readonly side: BundleSide;
  readonly terminalId: string;
  /** The investor root public key, hex: untrusted, a verifier takes it only if it hashes to the fingerprint it trusts */
  readonly rootPublicKey: string;
  /** ms since the epoch, the exporter's clock */
  readonly exportedAt: number;
  /** The period its account covers; null: every entry */
  readonly period: Period | null;
  /** The entries in seq order, hex (entry 1 carries the terminal certificate, batch entries their white card's record) */
  readonly entries: readonly string[];
  readonly checkpoint: Checkpoint | null;
  readonly statement: Statement | null;
}

export class AuditBundleError extends CodecError {
  override readonly name: string = 'AuditBundleError';
  constructor(detail: string, path = '') {
    super('BAD_AUDIT_BUNDLE', detail, path);
  }
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AuditBundleError(`${where} is not an object`, where);
  return value as Record<string, unknown>;
}

function whole(o: Record<string, unknown>, key: string, where: string, minimum: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < minimum) throw new AuditBundleError(`${key} is not a whole number >= ${minimum}`, `${where}.${key}`);
  return v;
}

function ident(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !ID.test(v)) throw new AuditBundleError(`${key} is not an id`, `${where}.${key}`);
  return v;
}

function rootKey(v: unknown): string {
  if (typeof v !== 'string' || !HASH.test(v)) throw new AuditBundleError('rootPublicKey is not 32 bytes of lower-case hex', 'rootPublicKey');
  return v;
}

/** The body a server signs (format 3); version 2 writes a format 2 body, for the golden vectors of the older format */
export function encodeStatementBody(f: StatementFields, version: BundleVersion = 3): string {
  return JSON.stringify({
    format: version === 3 ? STATEMENT_FORMAT : STATEMENT_FORMAT_V2,
    serverId: f.serverId,
    terminalId: f.terminalId,
    clinicCode: f.clinicCode,
    time: f.time,
    period: f.period === null ? null : encodePeriod(f.period),
    entries: f.entries,
    pricing: encodePricing(f.pricing),
    account: encodeAccountFor(version, f.account),
    income: encodeIncome(f.income),
  });
}

/** The canonical forms (field order fixed), so that two accounts compare as their JSON */
export function encodePeriod(p: Period): Period {
  return { from: p.from, to: p.to };
}
export function encodePricing(p: Pricing): Pricing {
  return { pricePerUse: p.pricePerUse, investorShareBp: p.investorShareBp, ...(p.agentCode !== undefined ? { agentCode: p.agentCode, agentShareBp: p.agentShareBp ?? 0 } : {}) };
}
export function encodeAccount(a: Account): Account {
  return {
    uses: a.uses,
    card: a.card,
    voucher: a.voucher,
    settlement: a.settlement,
    settled: { amountFen: a.settled.amountFen, insurerFen: a.settled.insurerFen, patientFen: a.settled.patientFen },
    days: a.days.map((d) => ({ day: d.day, uses: d.uses, card: d.card, voucher: d.voucher, settlement: d.settlement })),
    batches: a.batches.map((b) => ({ batchId: b.batchId, batchNo: b.batchNo, uses: b.uses })),
  };
}
/** The account as a statement of that format signs it */
export function encodeAccountFor(version: BundleVersion, a: Account): Account | AccountV2 {
  if (version === 3) return encodeAccount(a);
  const v2 = accountV2(a);
  return { uses: v2.uses, days: v2.days.map((d) => ({ day: d.day, uses: d.uses })), batches: v2.batches.map((b) => ({ batchId: b.batchId, batchNo: b.batchNo, uses: b.uses })) };
}
/** A format 2 account read as format 3's: its uses were card uses, no voucher or settlement counted */
export function liftAccountV2(a: AccountV2): Account {
  return { uses: a.uses, card: a.uses, voucher: 0, settlement: 0, settled: { amountFen: 0, insurerFen: 0, patientFen: 0 }, days: a.days.map((d) => ({ day: d.day, uses: d.uses, card: d.uses, voucher: 0, settlement: 0 })), batches: a.batches };
}
export function encodeIncome(i: Income): Income {
  return { gross: i.gross, clinic: i.clinic, investor: i.investor, ...(i.agentCode !== undefined ? { agentCode: i.agentCode, agent: i.agent ?? 0 } : {}) };
}

export function parsePeriod(value: unknown, where: string): Period | null {
  if (value === null || value === undefined) return null;
  const o = object(value, where);
  if (!isDay(o.from) || !isDay(o.to) || o.from > o.to) throw new AuditBundleError('period is not {from, to} UTC days (YYYY-MM-DD), from <= to', where);
  return { from: o.from, to: o.to };
}

function whole2(v: unknown, where: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new AuditBundleError(`not a whole number 0..${max}`, where);
  return v;
}

function parsePricing(value: unknown, where: string): Pricing {
  const o = object(value, where);
  const base = { pricePerUse: whole2(o.pricePerUse, `${where}.pricePerUse`), investorShareBp: whole2(o.investorShareBp, `${where}.investorShareBp`, 10_000) };
  if (o.agentCode === undefined) return base;
  return { ...base, agentCode: ident(o, 'agentCode', where), agentShareBp: whole2(o.agentShareBp, `${where}.agentShareBp`, 10_000) };
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new AuditBundleError('not a list', where);
  return value;
}

function parseAccount(value: unknown, where: string, version: BundleVersion): Account {
  const o = object(value, where);
  const batches = list(o.batches, `${where}.batches`).map((b, i) => {
    const r = object(b, `${where}.batches[${i}]`);
    if (typeof r.batchId !== 'string' || !/^[0-9a-f]{16}$/.test(r.batchId)) throw new AuditBundleError('not an 8-byte batch id in hex', `${where}.batches[${i}].batchId`);
    return { batchId: r.batchId, batchNo: whole2(r.batchNo, `${where}.batches[${i}].batchNo`), uses: whole2(r.uses, `${where}.batches[${i}].uses`) };
  });
  const dayOf = (d: unknown, i: number) => {
    const r = object(d, `${where}.days[${i}]`);
    if (!isDay(r.day)) throw new AuditBundleError('not a UTC day', `${where}.days[${i}].day`);
    return r;
  };
  if (version === 2) {
    const days = list(o.days, `${where}.days`).map((d, i) => {
      const r = dayOf(d, i);
      return { day: r.day as string, uses: whole2(r.uses, `${where}.days[${i}].uses`) };
    });
    return liftAccountV2({ uses: whole2(o.uses, `${where}.uses`), days, batches });
  }
  const days = list(o.days, `${where}.days`).map((d, i) => {
    const r = dayOf(d, i);
    const n = (k: string) => whole2(r[k], `${where}.days[${i}].${k}`);
    return { day: r.day as string, uses: n('uses'), card: n('card'), voucher: n('voucher'), settlement: n('settlement') };
  });
  const settled = object(o.settled, `${where}.settled`);
  const fen = (k: string) => whole2(settled[k], `${where}.settled.${k}`);
  return {
    uses: whole2(o.uses, `${where}.uses`),
    card: whole2(o.card, `${where}.card`),
    voucher: whole2(o.voucher, `${where}.voucher`),
    settlement: whole2(o.settlement, `${where}.settlement`),
    settled: { amountFen: fen('amountFen'), insurerFen: fen('insurerFen'), patientFen: fen('patientFen') },
    days,
    batches,
  };
}

function parseIncome(value: unknown, where: string): Income {
  const o = object(value, where);
  const base = { gross: whole2(o.gross, `${where}.gross`), clinic: whole2(o.clinic, `${where}.clinic`), investor: whole2(o.investor, `${where}.investor`) };
  if (o.agentCode === undefined) return base;
  return { ...base, agentCode: ident(o, 'agentCode', where), agent: whole2(o.agent, `${where}.agent`) };
}

export function parseStatementBody(body: string): ParsedStatementFields {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new AuditBundleError('statement body is not JSON', 'statement.body');
  }
  const where = 'statement.body';
  const o = object(value, where);
  if (o.format !== STATEMENT_FORMAT && o.format !== STATEMENT_FORMAT_V2) throw new AuditBundleError(`statement format ${String(o.format)}`, `${where}.format`);
  const version: BundleVersion = o.format === STATEMENT_FORMAT ? 3 : 2;
  if (!Array.isArray(o.entries)) throw new AuditBundleError('entries is not a list', `${where}.entries`);
  let last = 0;
  const entries = o.entries.map((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !Number.isSafeInteger(pair[0]) || (pair[0] as number) <= last || typeof pair[1] !== 'string' || !HASH.test(pair[1])) {
      throw new AuditBundleError('not [seq, hash] with seq rising', `${where}.entries[${i}]`);
    }
    last = pair[0] as number;
    return [pair[0] as number, pair[1]] as const;
  });
  if (typeof o.clinicCode !== 'string' || o.clinicCode.length < 1 || o.clinicCode.length > 16) throw new AuditBundleError('clinicCode is not 1..16 characters', `${where}.clinicCode`);
  return {
    version,
    serverId: ident(o, 'serverId', where),
    terminalId: ident(o, 'terminalId', where),
    clinicCode: o.clinicCode,
    time: whole(o, 'time', where, 0),
    period: parsePeriod(o.period, `${where}.period`),
    entries,
    pricing: parsePricing(o.pricing, `${where}.pricing`),
    account: parseAccount(o.account, `${where}.account`, version),
    income: parseIncome(o.income, `${where}.income`),
  };
}

export function parseStatement(value: unknown): Statement {
  const o = object(value, 'statement');
  if (o.format !== STATEMENT_FORMAT && o.format !== STATEMENT_FORMAT_V2) throw new AuditBundleError(`statement format ${String(o.format)}`, 'statement.format');
  return { format: o.format, ...parseSignedJson(o, 'statement'), serverCertificate: parseSignedJson(o.serverCertificate, 'statement.serverCertificate') };
}

/** A bundle from its file's text; entries and signatures are not checked here */
export function parseAuditBundle(text: string): AuditBundle {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AuditBundleError('not JSON');
  }
  const o = object(value, 'bundle');
  if (o.format !== AUDIT_BUNDLE_FORMAT && o.format !== AUDIT_BUNDLE_FORMAT_V2) {
    const old = o.format === 'tallystick-audit-bundle/1' ? ' (format 1 has no period or account: export it again)' : '';
    throw new AuditBundleError(`format ${String(o.format)}, expected ${AUDIT_BUNDLE_FORMAT} (or ${AUDIT_BUNDLE_FORMAT_V2})${old}`, 'format');
  }
  const statementFormat = o.format === AUDIT_BUNDLE_FORMAT ? STATEMENT_FORMAT : STATEMENT_FORMAT_V2;
  const statement = o.statement === null || o.statement === undefined ? null : parseStatement(o.statement);
  // a statement of another format than its bundle's would be read by the other format's rules
  if (statement && statement.format !== statementFormat) throw new AuditBundleError(`a ${String(o.format)} bundle carries a ${statement.format} statement`, 'statement.format');
  if (o.side !== 'terminal' && o.side !== 'server') throw new AuditBundleError('side is not terminal or server', 'side');
  if (!Array.isArray(o.entries) || !o.entries.every((e) => typeof e === 'string' && HEX_ENTRY.test(e))) throw new AuditBundleError('entries is not a list of lower-case hex', 'entries');
  return {
    format: o.format,
    side: o.side,
    terminalId: ident(o, 'terminalId', 'bundle'),
    rootPublicKey: rootKey(o.rootPublicKey),
    exportedAt: whole(o, 'exportedAt', 'bundle', 0),
    period: parsePeriod(o.period, 'period'),
    entries: o.entries as string[],
    checkpoint: o.checkpoint === null || o.checkpoint === undefined ? null : parseCheckpoint(o.checkpoint),
    statement,
  };
}

export function encodeAuditBundle(bundle: AuditBundle): string {
  const { format, side, terminalId, rootPublicKey, exportedAt, period, entries, checkpoint, statement } = bundle;
  return `${JSON.stringify({ format, side, terminalId, rootPublicKey, exportedAt, period: period === null ? null : encodePeriod(period), entries, checkpoint, statement }, null, 1)}\n`;
}

/** 3 for the current format, 2 for a bundle of format 2 */
export function bundleVersion(bundle: Pick<AuditBundle, 'format'>): BundleVersion {
  return bundle.format === AUDIT_BUNDLE_FORMAT ? 3 : 2;
}

export function bundleEntries(bundle: AuditBundle): Uint8Array[] {
  return bundle.entries.map((hex) => fromHex(hex));
}
