/**
 * The audit bundle (firmware-protocol/audit-bundle.md): one JSON file holding a
 * terminal's ledger entries as one half holds them (the terminal's, or the
 * investor's server's), the latest server-signed checkpoint, and on the server's
 * half its signed statement of every entry it received. Pure: parsing and
 * encoding; the signatures are checked in crypto/auditBundle.ts.
 */
import { fromHex } from './bytes.js';
import { parseCheckpoint, parseSignedJson, type Checkpoint, type SignedJson } from './checkpoint.js';
import { CodecError } from '../errors.js';

export const AUDIT_BUNDLE_FORMAT = 'tallystick-audit-bundle/1';
export const STATEMENT_FORMAT = 'tallystick-statement/1';
const ID = /^[A-Za-z0-9._-]{1,64}$/;
const HEX_ENTRY = /^(?:[0-9a-f]{2})+$/;
const HASH = /^[0-9a-f]{64}$/;

export type BundleSide = 'terminal' | 'server';

/** The server's statement: it holds these entries of this terminal (seq and entry hash), as of its time */
export interface Statement extends SignedJson {
  readonly format: typeof STATEMENT_FORMAT;
  readonly serverCertificate: SignedJson;
}

export interface StatementFields {
  readonly serverId: string;
  readonly terminalId: string;
  readonly time: number;
  /** [seq, hex entry hash] of every entry the server holds, in seq order */
  readonly entries: readonly (readonly [number, string])[];
}

export interface AuditBundle {
  readonly format: typeof AUDIT_BUNDLE_FORMAT;
  readonly side: BundleSide;
  readonly terminalId: string;
  /** The investor root public key, hex: untrusted, a verifier takes it only if it hashes to the fingerprint it trusts */
  readonly rootPublicKey: string;
  /** ms since the epoch, the exporter's clock */
  readonly exportedAt: number;
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

export function encodeStatementBody(fields: StatementFields): string {
  return JSON.stringify({ format: STATEMENT_FORMAT, serverId: fields.serverId, terminalId: fields.terminalId, time: fields.time, entries: fields.entries });
}

export function parseStatementBody(body: string): StatementFields {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new AuditBundleError('statement body is not JSON', 'statement.body');
  }
  const where = 'statement.body';
  const o = object(value, where);
  if (o.format !== STATEMENT_FORMAT) throw new AuditBundleError(`statement format ${String(o.format)}`, `${where}.format`);
  if (!Array.isArray(o.entries)) throw new AuditBundleError('entries is not a list', `${where}.entries`);
  let last = 0;
  const entries = o.entries.map((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !Number.isSafeInteger(pair[0]) || (pair[0] as number) <= last || typeof pair[1] !== 'string' || !HASH.test(pair[1])) {
      throw new AuditBundleError('not [seq, hash] with seq rising', `${where}.entries[${i}]`);
    }
    last = pair[0] as number;
    return [pair[0] as number, pair[1]] as const;
  });
  return { serverId: ident(o, 'serverId', where), terminalId: ident(o, 'terminalId', where), time: whole(o, 'time', where, 0), entries };
}

export function parseStatement(value: unknown): Statement {
  const o = object(value, 'statement');
  if (o.format !== STATEMENT_FORMAT) throw new AuditBundleError(`statement format ${String(o.format)}`, 'statement.format');
  return { format: STATEMENT_FORMAT, ...parseSignedJson(o, 'statement'), serverCertificate: parseSignedJson(o.serverCertificate, 'statement.serverCertificate') };
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
  if (o.format !== AUDIT_BUNDLE_FORMAT) throw new AuditBundleError(`format ${String(o.format)}, expected ${AUDIT_BUNDLE_FORMAT}`, 'format');
  if (o.side !== 'terminal' && o.side !== 'server') throw new AuditBundleError('side is not terminal or server', 'side');
  if (!Array.isArray(o.entries) || !o.entries.every((e) => typeof e === 'string' && HEX_ENTRY.test(e))) throw new AuditBundleError('entries is not a list of lower-case hex', 'entries');
  return {
    format: AUDIT_BUNDLE_FORMAT,
    side: o.side,
    terminalId: ident(o, 'terminalId', 'bundle'),
    rootPublicKey: rootKey(o.rootPublicKey),
    exportedAt: whole(o, 'exportedAt', 'bundle', 0),
    entries: o.entries as string[],
    checkpoint: o.checkpoint === null || o.checkpoint === undefined ? null : parseCheckpoint(o.checkpoint),
    statement: o.statement === null || o.statement === undefined ? null : parseStatement(o.statement),
  };
}

export function encodeAuditBundle(bundle: AuditBundle): string {
  const { format, side, terminalId, rootPublicKey, exportedAt, entries, checkpoint, statement } = bundle;
  return `${JSON.stringify({ format, side, terminalId, rootPublicKey, exportedAt, entries, checkpoint, statement }, null, 1)}\n`;
}

export function bundleEntries(bundle: AuditBundle): Uint8Array[] {
  return bundle.entries.map((hex) => fromHex(hex));
}
