/**
 * Signs the server's statement and checks an audit bundle with the investor
 * root alone (firmware-protocol/audit-bundle.md): the ledger by the rules of
 * ledger-format.md section 7, the checkpoint (8.3), the statement's server key
 * and signature, and that the statement lists exactly the entries of its half.
 * compareBundles lays the terminal's half beside the server's.
 */
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../codecs/bytes.js';
import { accountOf, chargedAtPrice, paidUses, splitIncome, type Account, type PaidBy, type Income, type Period, type Pricing } from '../codecs/auditAccount.js';
import { bundleEntries, bundleVersion, encodeAccountFor, encodeIncome, encodePeriod, encodeStatementBody, parseStatementBody, STATEMENT_FORMAT, type AuditBundle, type BundleVersion, type ParsedStatementFields, type Statement, type StatementFields } from '../codecs/auditBundle.js';
import { parseServerKeyCertificateBody, type SignedJson } from '../codecs/checkpoint.js';
import { ENTRY_TYPE_NAMES, EntryType, parseLedgerEntry, type EntryTypeValue } from '../codecs/ledgerEntry.js';
import { parseCardRecord, RecordKind } from '../codecs/cardRecord.js';
import { isTallyError } from '../errors.js';
import { checkLedgerAgainstCheckpoint, verifyCheckpoint, verifyServerKeyCertificate, type CheckpointVerdict } from './checkpoint.js';
import { signMessage, sha256, verifyMessage } from './ed25519.js';
import { verifyLedgerEntries, type LedgerVerification } from './ledgerChain.js';

export function signStatement(serverKey: KeyObject, certificate: SignedJson, fields: Omit<StatementFields, 'serverId'>): Statement {
  const { serverId } = parseServerKeyCertificateBody(certificate.body);
  const body = encodeStatementBody({ ...fields, serverId });
  return { format: STATEMENT_FORMAT, body, signature: toHex(signMessage(serverKey, utf8(body))), serverCertificate: certificate };
}

/** What the server signs about the entries it holds: their list, the account of the period and its income at the clinic's pricing */
export function statementFieldsOf(entries: readonly Uint8Array[], fields: { terminalId: string; clinicCode: string; time: number; period: Period | null; pricing: Pricing }): Omit<StatementFields, 'serverId'> {
  const account = accountOf(entries, fields.period);
  return { ...fields, entries: entryList(entries), account, income: splitIncome(account.uses, fields.pricing) };
}

/** The clinic code of the terminal certificate in entry 1, when it parses */
export function ledgerClinic(entries: readonly Uint8Array[]): string | undefined {
  try {
    const first = parseLedgerEntry(entries[0]!);
    if (first.seq !== 1 || !first.card) return undefined;
    const cert = parseCardRecord(first.card);
    return cert.kind === RecordKind.TERMINAL ? cert.clinicCode : undefined;
  } catch {
    return undefined;
  }
}

/** [seq, hex entry hash] of each entry (seq 0 when it does not parse) */
export function entryList(entries: readonly Uint8Array[]): [number, string][] {
  return entries.map((raw) => {
    let seq = 0;
    try {
      seq = parseLedgerEntry(raw).seq;
    } catch {
      // a malformed entry cannot be listed by a seq: the ledger verdict names it
    }
    return [seq, toHex(sha256(raw))];
  });
}

export interface StatementVerdict {
  readonly ok: boolean;
  readonly serverId?: string;
  readonly time?: number;
  readonly entries?: number;
  readonly clinicCode?: string;
  readonly period?: Period | null;
  readonly pricing?: Pricing;
  /** The statement's income of the period (when it verified, the bundle's account at its pricing) */
  readonly income?: Income;
  readonly problem?: { readonly code: 'STATEMENT_INVALID' | 'STATEMENT_MISMATCH'; readonly problem: string };
}

function checkStatement(bundle: AuditBundle, entries: readonly Uint8Array[], root: Uint8Array): StatementVerdict {
  const statement = bundle.statement!;
  let fields: ParsedStatementFields;
  try {
    const server = verifyServerKeyCertificate(statement.serverCertificate, root);
    fields = parseStatementBody(statement.body);
    // the body's format is the bundle's: a format 3 bundle cannot carry a body held to format 2's rules
    if (fields.version !== bundleVersion(bundle)) return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: `statement body of format ${fields.version} in a format ${bundleVersion(bundle)} bundle` } };
    if (fields.serverId !== server.serverId) return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: `statement names server ${fields.serverId}, its certificate ${server.serverId}` } };
    if (!verifyMessage(fromHex(server.publicKey), utf8(statement.body), fromHex(statement.signature))) return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: `statement not signed by server ${server.serverId}'s key` } };
  } catch (err) {
    if (!isTallyError(err)) throw err;
    return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: err.message } };
  }
  const base = { serverId: fields.serverId, time: fields.time, entries: fields.entries.length, clinicCode: fields.clinicCode, period: fields.period, pricing: fields.pricing, income: fields.income };
  const mismatch = (problem: string): StatementVerdict => ({ ok: false, ...base, problem: { code: 'STATEMENT_MISMATCH', problem } });
  if (fields.terminalId !== bundle.terminalId) return mismatch(`statement is about terminal ${fields.terminalId}`);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(fields.period && encodePeriod(fields.period), bundle.period && encodePeriod(bundle.period))) return mismatch("the statement's period is not the bundle's");
  const clinic = ledgerClinic(entries);
  if (clinic !== undefined && clinic !== fields.clinicCode) return mismatch(`statement names clinic ${fields.clinicCode}, the terminal certificate ${clinic}`);
  if (!same(encodeIncome(splitIncome(fields.account.uses, fields.pricing)), encodeIncome(fields.income))) return mismatch("the statement's income is not its uses at its price and shares");
  if (bundle.side === 'server') {
    const listed = entryList(entries);
    const sameList = listed.length === fields.entries.length && listed.every(([seq, hash], i) => seq === fields.entries[i]![0] && hash === fields.entries[i]![1]);
    if (!sameList) return mismatch('the statement does not list exactly the entries of this bundle');
    // a format 2 statement is held to what format 2 counted (card uses); a format 3 one to every kind
    if (!same(encodeAccountFor(fields.version, accountOf(entries, bundle.period)), encodeAccountFor(fields.version, fields.account))) {
      return mismatch(fields.version === 3 ? "the statement's uses by kind, per day and batch are not those of its entries" : "the statement's uses per day and batch are not those of its entries");
    }
  }
  return { ok: true, ...base };
}

export interface BundleVerdict {
  readonly ok: boolean;
  /** The bundle's format version: 2 (its statement counts card uses only) or 3 */
  readonly format: BundleVersion;
  readonly side: AuditBundle['side'];
  readonly terminalId: string;
  readonly ledger: LedgerVerification;
  /** The period the account covers (the bundle's) and the uses paid in it by kind (section 3, whatever the bundle's format), counted from the bundle's entries */
  readonly period: Period | null;
  readonly account: Account;
  /** The clinic of the terminal certificate in entry 1, when it parses */
  readonly clinicCode?: string;
  readonly checkpoint?: CheckpointVerdict | { readonly ok: false; readonly problem: { readonly code: 'BAD_CHECKPOINT'; readonly problem: string } };
  readonly statement?: StatementVerdict;
  /** Why the bundle as a whole is refused, beside its parts' verdicts */
  readonly problem?: { readonly code: string; readonly problem: string };
}

export function verifyAuditBundle(bundle: AuditBundle, root: Uint8Array): BundleVerdict {
  const entries = bundleEntries(bundle);
  const ledger = verifyLedgerEntries(entries, root);
  let checkpoint: BundleVerdict['checkpoint'];
  if (bundle.checkpoint) {
    try {
      checkpoint = checkLedgerAgainstCheckpoint(entries, ledger.lastSeq, ledger.terminalId, verifyCheckpoint(bundle.checkpoint, root));
    } catch (err) {
      if (!isTallyError(err)) throw err;
      checkpoint = { ok: false, problem: { code: 'BAD_CHECKPOINT', problem: err.message } };
    }
  }
  const statement = bundle.statement ? checkStatement(bundle, entries, root) : undefined;
  const clinic = ledgerClinic(entries);
  let problem: BundleVerdict['problem'];
  if (ledger.terminalId !== undefined && ledger.terminalId !== bundle.terminalId) problem = { code: 'TERMINAL_MISMATCH', problem: `the bundle says terminal ${bundle.terminalId}, its ledger is ${ledger.terminalId}'s` };
  else if (bundle.side === 'server' && !statement) problem = { code: 'STATEMENT_INVALID', problem: "a server's bundle without its signed statement" };
  const ok = ledger.ok && (checkpoint?.ok ?? true) && (statement?.ok ?? true) && !problem;
  return { ok, format: bundleVersion(bundle), side: bundle.side, terminalId: bundle.terminalId, ledger, period: bundle.period, account: accountOf(entries, bundle.period), ...(clinic !== undefined ? { clinicCode: clinic } : {}), ...(checkpoint ? { checkpoint } : {}), ...(statement ? { statement } : {}), ...(problem ? { problem } : {}) };
}

export interface EntryDifference {
  readonly seq: number;
  /** terminal-only: the server lacks it; server-only: the terminal lacks it; differs: both hold another entry there */
  readonly kind: 'terminal-only' | 'server-only' | 'differs';
  readonly terminal?: string;
  readonly server?: string;
  /** The entry's type name (of the terminal's, else the server's), and the use it is about */
  readonly type?: string;
  readonly use?: string;
  /** A use the half holding it pays in the period (for differs: the terminal's), and by what */
  readonly paidBy?: PaidBy;
  /** Charged at the clinic's price (a card or a voucher use) */
  readonly charged?: true;
}

export interface ComparedHalf {
  readonly entries: number;
  /** Uses charged at the clinic's price in the period (card + voucher), as the income report counts them */
  readonly charged: number;
  readonly account: Account;
  /** The account at the server statement's pricing (absent when the server's statement does not parse) */
  readonly income?: Income;
}

export interface Comparison {
  readonly match: boolean;
  /** The server's period (else the terminal's): what both accounts cover */
  readonly period: Period | null;
  /** The clinic's price and shares from the server's statement */
  readonly pricing?: Pricing;
  readonly terminal: ComparedHalf;
  readonly server: ComparedHalf;
  /** What the server's statement charges beyond the terminal's ledger (negative: less), per part */
  readonly money?: { readonly uses: number; readonly gross: number; readonly clinic: number; readonly investor: number; readonly agent?: number };
  readonly differences: readonly EntryDifference[];
}

function describeEntry(raw: Uint8Array | undefined): { type?: string; use?: string } {
  if (!raw) return {};
  try {
    const e = parseLedgerEntry(raw);
    let use: string | undefined;
    if (e.type === EntryType.USE_RESERVED && e.card) {
      const card = parseCardRecord(e.card);
      if (card.kind === RecordKind.ONE_TIME) use = `card ${card.serial} of batch ${toHex(card.batchId)}`;
    } else if (e.type === EntryType.VOUCHER_RESERVED) use = 'a service voucher';
    else if (e.type === EntryType.SETTLEMENT_RESERVED) use = `insurance order ${e.detail ?? '?'}`;
    else if (e.ref !== undefined && e.type !== EntryType.WITNESS_ROLLBACK) use = `use of seq ${e.ref}`;
    return { type: ENTRY_TYPE_NAMES[e.type as EntryTypeValue] ?? String(e.type), ...(use ? { use } : {}) };
  } catch {
    return { type: 'malformed' };
  }
}

function statementPricing(bundle: AuditBundle): Pricing | undefined {
  try {
    return bundle.statement ? parseStatementBody(bundle.statement.body).pricing : undefined;
  } catch {
    return undefined;
  }
}

/** Entry by entry, by seq: what one half holds that the other lacks or holds differently, and what it does to the money */
export function compareBundles(terminal: AuditBundle, server: AuditBundle): Comparison {
  const t = bundleEntries(terminal);
  const s = bundleEntries(server);
  const period = server.period ?? terminal.period;
  const pricing = statementPricing(server);
  const bySeq = (entries: Uint8Array[]) => new Map(entryList(entries).map(([seq, hash], i) => [seq, { hash, raw: entries[i]! }]));
  const tm = bySeq(t);
  const sm = bySeq(s);
  const tPaid = new Map(paidUses(t, period).map((u) => [u.seq, u.paidBy]));
  const sPaid = new Map(paidUses(s, period).map((u) => [u.seq, u.paidBy]));
  const seqs = [...new Set([...tm.keys(), ...sm.keys()])].sort((a, b) => a - b);
  const differences: EntryDifference[] = [];
  for (const seq of seqs) {
    const [a, b] = [tm.get(seq), sm.get(seq)];
    if (a && b && a.hash === b.hash) continue;
    const kind = a && b ? 'differs' : a ? 'terminal-only' : 'server-only';
    const paidBy = a ? tPaid.get(seq) : sPaid.get(seq);
    differences.push({ seq, kind, ...(a ? { terminal: a.hash } : {}), ...(b ? { server: b.hash } : {}), ...describeEntry((a ?? b)!.raw), ...(paidBy ? { paidBy } : {}), ...(paidBy && chargedAtPrice(paidBy) ? { charged: true as const } : {}) });
  }
  const half = (entries: Uint8Array[]): ComparedHalf => {
    const account = accountOf(entries, period);
    return { entries: entries.length, charged: account.uses, account, ...(pricing ? { income: splitIncome(account.uses, pricing) } : {}) };
  };
  const [th, sh] = [half(t), half(s)];
  let money: Comparison['money'];
  if (th.income && sh.income) {
    const [a, b] = [th.income, sh.income];
    money = { uses: sh.charged - th.charged, gross: b.gross - a.gross, clinic: b.clinic - a.clinic, investor: b.investor - a.investor, ...(b.agent !== undefined ? { agent: b.agent - (a.agent ?? 0) } : {}) };
  }
  return {
    match: differences.length === 0 && terminal.terminalId === server.terminalId,
    period,
    ...(pricing ? { pricing } : {}),
    terminal: th,
    server: sh,
    ...(money ? { money } : {}),
    differences,
  };
}
