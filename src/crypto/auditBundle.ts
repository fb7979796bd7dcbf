/**
 * Signs the server's statement and checks an audit bundle with the investor
 * root alone (firmware-protocol/audit-bundle.md): the ledger by the rules of
 * ledger-format.md section 7, the checkpoint (8.3), the statement's server key
 * and signature, and that the statement lists exactly the entries of its half.
 * compareBundles lays the terminal's half beside the server's.
 */
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../codecs/bytes.js';
import { bundleEntries, encodeStatementBody, parseStatementBody, STATEMENT_FORMAT, type AuditBundle, type Statement, type StatementFields } from '../codecs/auditBundle.js';
import { parseServerKeyCertificateBody, type SignedJson } from '../codecs/checkpoint.js';
import { EntryType, parseLedgerEntry } from '../codecs/ledgerEntry.js';
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
  readonly problem?: { readonly code: 'STATEMENT_INVALID' | 'STATEMENT_MISMATCH'; readonly problem: string };
}

function checkStatement(bundle: AuditBundle, entries: readonly Uint8Array[], root: Uint8Array): StatementVerdict {
  const statement = bundle.statement!;
  let fields: StatementFields;
  try {
    const server = verifyServerKeyCertificate(statement.serverCertificate, root);
    fields = parseStatementBody(statement.body);
    if (fields.serverId !== server.serverId) return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: `statement names server ${fields.serverId}, its certificate ${server.serverId}` } };
    if (!verifyMessage(fromHex(server.publicKey), utf8(statement.body), fromHex(statement.signature))) return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: `statement not signed by server ${server.serverId}'s key` } };
  } catch (err) {
    if (!isTallyError(err)) throw err;
    return { ok: false, problem: { code: 'STATEMENT_INVALID', problem: err.message } };
  }
  const base = { serverId: fields.serverId, time: fields.time, entries: fields.entries.length };
  if (fields.terminalId !== bundle.terminalId) return { ok: false, ...base, problem: { code: 'STATEMENT_MISMATCH', problem: `statement is about terminal ${fields.terminalId}` } };
  if (bundle.side === 'server') {
    const listed = entryList(entries);
    const same = listed.length === fields.entries.length && listed.every(([seq, hash], i) => seq === fields.entries[i]![0] && hash === fields.entries[i]![1]);
    if (!same) return { ok: false, ...base, problem: { code: 'STATEMENT_MISMATCH', problem: 'the statement does not list exactly the entries of this bundle' } };
  }
  return { ok: true, ...base };
}

export interface BundleVerdict {
  readonly ok: boolean;
  readonly side: AuditBundle['side'];
  readonly terminalId: string;
  readonly ledger: LedgerVerification;
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
  let problem: BundleVerdict['problem'];
  if (ledger.terminalId !== undefined && ledger.terminalId !== bundle.terminalId) problem = { code: 'TERMINAL_MISMATCH', problem: `the bundle says terminal ${bundle.terminalId}, its ledger is ${ledger.terminalId}'s` };
  else if (bundle.side === 'server' && !statement) problem = { code: 'STATEMENT_INVALID', problem: "a server's bundle without its signed statement" };
  const ok = ledger.ok && (checkpoint?.ok ?? true) && (statement?.ok ?? true) && !problem;
  return { ok, side: bundle.side, terminalId: bundle.terminalId, ledger, ...(checkpoint ? { checkpoint } : {}), ...(statement ? { statement } : {}), ...(problem ? { problem } : {}) };
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
}

export interface Comparison {
  readonly match: boolean;
  readonly terminal: { readonly entries: number; readonly charged: number };
  readonly server: { readonly entries: number; readonly charged: number };
  readonly differences: readonly EntryDifference[];
}

const TYPE_NAMES: Record<number, string> = { 1: 'provisioned', 2: 'batch.loaded', 3: 'use.reserved', 4: 'use.started', 5: 'use.completed', 6: 'use.released', 7: 'use.failed', 8: 'witness.rollback' };

/** Uses charged: use.reserved entries whose use was not released (the server's count of uses) */
function charged(entries: readonly Uint8Array[]): number {
  const reserved = new Set<number>();
  for (const raw of entries) {
    try {
      const e = parseLedgerEntry(raw);
      if (e.type === EntryType.USE_RESERVED) reserved.add(e.seq);
      if (e.type === EntryType.USE_RELEASED && e.ref !== undefined) reserved.delete(e.ref);
    } catch {
      // malformed: the verdict of each half names it
    }
  }
  return reserved.size;
}

function describeEntry(raw: Uint8Array | undefined): { type?: string; use?: string } {
  if (!raw) return {};
  try {
    const e = parseLedgerEntry(raw);
    let use: string | undefined;
    if (e.type === EntryType.USE_RESERVED && e.card) {
      const card = parseCardRecord(e.card);
      if (card.kind === RecordKind.ONE_TIME) use = `card ${card.serial} of batch ${toHex(card.batchId)}`;
    } else if (e.ref !== undefined && e.type !== EntryType.WITNESS_ROLLBACK) use = `use of seq ${e.ref}`;
    return { type: TYPE_NAMES[e.type] ?? String(e.type), ...(use ? { use } : {}) };
  } catch {
    return { type: 'malformed' };
  }
}

/** Entry by entry, by seq: what one half holds that the other lacks or holds differently */
export function compareBundles(terminal: AuditBundle, server: AuditBundle): Comparison {
  const t = bundleEntries(terminal);
  const s = bundleEntries(server);
  const bySeq = (entries: Uint8Array[]) => new Map(entryList(entries).map(([seq, hash], i) => [seq, { hash, raw: entries[i]! }]));
  const tm = bySeq(t);
  const sm = bySeq(s);
  const seqs = [...new Set([...tm.keys(), ...sm.keys()])].sort((a, b) => a - b);
  const differences: EntryDifference[] = [];
  for (const seq of seqs) {
    const [a, b] = [tm.get(seq), sm.get(seq)];
    if (a && b && a.hash === b.hash) continue;
    const kind = a && b ? 'differs' : a ? 'terminal-only' : 'server-only';
    differences.push({ seq, kind, ...(a ? { terminal: a.hash } : {}), ...(b ? { server: b.hash } : {}), ...describeEntry((a ?? b)!.raw) });
  }
  return {
    match: differences.length === 0 && terminal.terminalId === server.terminalId,
    terminal: { entries: t.length, charged: charged(t) },
    server: { entries: s.length, charged: charged(s) },
    differences,
  };
}
