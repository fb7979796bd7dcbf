/**
 * tally audit export|verify|compare: the audit bundle (firmware-protocol/audit-bundle.md).
 * A clinic exports its terminal's half, the investor's server its own with a signed
 * statement; either is verified offline with the investor root alone, and compare
 * lists every entry one half lacks or holds differently, and what it does to the uses charged.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fromHex, toHex } from '../../codecs/bytes.js';
import { AUDIT_BUNDLE_FORMAT, encodeAuditBundle, parseAuditBundle, type AuditBundle } from '../../codecs/auditBundle.js';
import { compareBundles, entryList, signStatement, verifyAuditBundle, type BundleVerdict } from '../../crypto/auditBundle.js';
import { signCheckpoint } from '../../crypto/checkpoint.js';
import { sha256 } from '../../crypto/ed25519.js';
import { createServerStore } from '../../server/createServerStore.js';
import { readCheckpointFile } from '../../terminal/Terminal.js';
import { TallyError } from '../../errors.js';
import { parse, parseWithPositionals, required } from '../args.js';
import type { CliCommand, CliIo } from '../command.js';
import { loadServerKey } from './serverKey.js';
import { storeOptions } from './server.js';

const ROOT_HELP = `  --root HEX              the investor root public key you trust
  --root-fingerprint HEX  or its fingerprint (SHA-256 of the key, as tally issue mother printed it):
                          the key the bundle carries is used only if it has this fingerprint`;

function readBundle(path: string): AuditBundle {
  if (!existsSync(path)) throw new TallyError('USAGE', `no bundle at ${path}`);
  return parseAuditBundle(readFileSync(path, 'utf8'));
}

/** The root the auditor trusts: --root, or the bundle's own key if it hashes to --root-fingerprint */
function trustedRoot(values: Record<string, unknown>, bundle: AuditBundle): Uint8Array {
  if (typeof values.root === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(values.root)) throw new TallyError('USAGE', '--root is 64 hex digits');
    return fromHex(values.root.toLowerCase());
  }
  if (typeof values['root-fingerprint'] === 'string') {
    const key = fromHex(bundle.rootPublicKey);
    if (toHex(sha256(key)) !== values['root-fingerprint'].toLowerCase()) throw new TallyError('AUDIT_BUNDLE_INVALID', `the bundle's root key does not have fingerprint ${values['root-fingerprint']}: it is not from this investor`);
    return key;
  }
  throw new TallyError('USAGE', '--root HEX or --root-fingerprint HEX is required: bring the root you trust');
}

function terminalBundle(dataDir: string): AuditBundle {
  const path = join(dataDir, 'terminal.db');
  if (!existsSync(path)) throw new TallyError('USAGE', `no terminal database at ${path}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const meta = (key: string) => db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?').get(key)?.value;
    const root = meta('root_public_key');
    const terminalId = meta('terminal_id');
    if (!root || !terminalId) throw new TallyError('NOT_PROVISIONED', path);
    const entries = db.prepare<[], { entry: Buffer }>('SELECT entry FROM ledger ORDER BY seq').all().map((r) => toHex(new Uint8Array(r.entry)));
    return { format: AUDIT_BUNDLE_FORMAT, side: 'terminal', terminalId: terminalId.toString('utf8'), rootPublicKey: toHex(new Uint8Array(root)), exportedAt: Date.now(), entries, checkpoint: readCheckpointFile(dataDir) ?? null, statement: null };
  } catch (err) {
    if (err instanceof Database.SqliteError) throw new TallyError('DATABASE_UNREADABLE', `${path}: ${err.message} (tally ledger verify names the last good seq)`);
    throw err;
  } finally {
    db.close();
  }
}

async function serverBundle(store: string, terminalId: string, keyFile: string, root: Uint8Array): Promise<AuditBundle> {
  const signer = loadServerKey(keyFile, root);
  const db = await createServerStore(storeOptions(store));
  try {
    const row = await db.terminal(terminalId);
    if (!row) throw new TallyError('USAGE', `the server holds no terminal ${terminalId}`);
    const raws: Uint8Array[] = [];
    for (let from = 1; ; ) {
      const page = await db.entries(terminalId, from, 1000);
      raws.push(...page.map((e) => e.raw));
      if (page.length < 1000) break;
      from = page.at(-1)!.seq + 1;
    }
    const now = Date.now();
    const listed = entryList(raws);
    const contiguous = listed.findIndex(([seq], i) => seq !== i + 1);
    const headSeq = contiguous === -1 ? listed.length : contiguous;
    const checkpoint = headSeq > 0 ? signCheckpoint(signer.key, signer.certificate, { terminalId, seq: headSeq, headHash: listed[headSeq - 1]![1], time: now }) : null;
    const statement = signStatement(signer.key, signer.certificate, { terminalId, time: now, entries: listed });
    return { format: AUDIT_BUNDLE_FORMAT, side: 'server', terminalId, rootPublicKey: toHex(root), exportedAt: now, entries: raws.map(toHex), checkpoint, statement };
  } finally {
    await db.close();
  }
}

export const auditExportCommand: CliCommand = {
  path: ['audit', 'export'],
  summary: "one file with a terminal's ledger as this half holds it, for an offline audit",
  help: `tally audit export --out FILE (--data DIR | --store STORE --terminal ID --signing-key FILE --root HEX)

On the terminal (--data, the data folder; to a USB stick): its ledger entries,
which carry the terminal certificate and the batch records back to the
investor root, and the latest checkpoint the server signed.
On the server (--store, as tally server run): the entries it holds for that
terminal, a checkpoint of the contiguous ones, and its statement of every entry
it received (seq and hash), both signed with the server key that tally server
certify-key made and the mother card certified. The clinic verifies either with
tally audit verify and lays them side by side with tally audit compare.`,
  async run(args, io) {
    const values = parse(args, { out: { type: 'string' }, data: { type: 'string' }, store: { type: 'string' }, terminal: { type: 'string' }, 'signing-key': { type: 'string' }, root: { type: 'string' } });
    const out = required(values, 'out');
    let bundle: AuditBundle;
    if (typeof values.data === 'string') bundle = terminalBundle(values.data);
    else if (typeof values.store === 'string') {
      const root = required(values, 'root');
      if (!/^[0-9a-fA-F]{64}$/.test(root)) throw new TallyError('USAGE', '--root is 64 hex digits');
      bundle = await serverBundle(values.store, required(values, 'terminal'), required(values, 'signing-key'), fromHex(root.toLowerCase()));
    } else throw new TallyError('USAGE', '--data DIR (on the terminal) or --store STORE (on the server) is required');
    writeFileSync(out, encodeAuditBundle(bundle), { mode: 0o644 });
    io.out(`${bundle.side} bundle of ${bundle.terminalId}: ${bundle.entries.length} entries${bundle.checkpoint ? ', the latest checkpoint' : ', no checkpoint'}${bundle.statement ? ', the signed statement' : ''}; written to ${out}`);
    return 0;
  },
};

function verdictLines(path: string, v: BundleVerdict): string[] {
  const lines: string[] = [];
  const l = v.ledger;
  lines.push(`${v.ok ? 'VERIFIED' : 'NOT VERIFIED'}: ${v.side} bundle of ${v.terminalId} (${path})`);
  lines.push(l.ok ? `  ledger: ${l.entries} entries verify, seq 1..${l.lastSeq}, ${l.uses} ${l.uses === 1 ? 'use' : 'uses'}, ${l.releases} released` : `  ledger: BROKEN at seq ${l.problem!.seq}: ${l.problem!.code}: ${l.problem!.problem} (${l.entries} entries before it verify)`);
  if (v.checkpoint) {
    const c = v.checkpoint;
    lines.push(c.ok ? `  checkpoint: server ${c.serverId} signed seq ${c.seq}; the ledger holds it` : `  checkpoint: ${c.problem!.code}: ${c.problem!.problem}`);
  } else lines.push('  checkpoint: none in the bundle');
  if (v.statement) lines.push(v.statement.ok ? `  statement: server ${v.statement.serverId} signed that it holds these ${v.statement.entries} entries` : `  statement: ${v.statement.problem!.code}: ${v.statement.problem!.problem}`);
  if (v.problem) lines.push(`  ${v.problem.code}: ${v.problem.problem}`);
  return lines;
}

export const auditVerifyCommand: CliCommand = {
  path: ['audit', 'verify'],
  summary: 'check an audit bundle offline with the investor root alone',
  help: `tally audit verify BUNDLE (--root HEX | --root-fingerprint HEX) [--json]

Checks the bundle's ledger (every rule of ledger-format.md), its checkpoint and,
on a server's bundle, the server's signed statement, all against the root.
Exit 0 when it verifies, 4 when not.
${ROOT_HELP}`,
  async run(args, io) {
    const { values, positionals } = parseWithPositionals(args, { root: { type: 'string' }, 'root-fingerprint': { type: 'string' }, json: { type: 'boolean' } });
    const path = positional(positionals, 0, 'BUNDLE');
    const bundle = readBundle(path);
    const verdict = verifyAuditBundle(bundle, trustedRoot(values, bundle));
    if (values.json) io.out(JSON.stringify(verdict, null, 2));
    else for (const line of verdictLines(path, verdict)) io.out(line);
    return verdict.ok ? 0 : 4;
  },
};

export const auditCompareCommand: CliCommand = {
  path: ['audit', 'compare'],
  summary: "the terminal's half beside the server's: they match, or every entry that differs",
  help: `tally audit compare TERMINAL_BUNDLE SERVER_BUNDLE (--root HEX | --root-fingerprint HEX) [--json]

Verifies both bundles, then compares them seq by seq: entries the server lacks
(not yet synced, or never received), entries the terminal lacks (cut, or the
database restored from an older copy), and entries that differ (a fork); and the
uses charged on each side. Summary first, details below. Exit 0 when they
match and both verify, 4 when not.
${ROOT_HELP}`,
  async run(args, io) {
    const { values, positionals } = parseWithPositionals(args, { root: { type: 'string' }, 'root-fingerprint': { type: 'string' }, json: { type: 'boolean' } });
    const [tPath, sPath] = [positional(positionals, 0, 'TERMINAL_BUNDLE'), positional(positionals, 1, 'SERVER_BUNDLE')];
    const terminal = readBundle(tPath);
    const server = readBundle(sPath);
    if (terminal.side !== 'terminal' || server.side !== 'server') throw new TallyError('USAGE', `give the terminal's bundle first, then the server's (got ${terminal.side}, ${server.side})`);
    const root = trustedRoot(values, terminal);
    const verdicts = { terminal: verifyAuditBundle(terminal, root), server: verifyAuditBundle(server, root) };
    const comparison = compareBundles(terminal, server);
    const ok = comparison.match && verdicts.terminal.ok && verdicts.server.ok;
    if (values.json) {
      io.out(JSON.stringify({ ok, ...comparison, verdicts }, null, 2));
      return ok ? 0 : 4;
    }
    printComparison(io, ok, comparison, verdicts, tPath, sPath);
    return ok ? 0 : 4;
  },
};

function printComparison(io: CliIo, ok: boolean, c: ReturnType<typeof compareBundles>, verdicts: { terminal: BundleVerdict; server: BundleVerdict }, tPath: string, sPath: string): void {
  const count = (kind: string) => c.differences.filter((d) => d.kind === kind).length;
  if (c.match) io.out(`MATCH: the terminal and the server hold the same ${c.terminal.entries} entries; ${c.terminal.charged} ${c.terminal.charged === 1 ? 'use' : 'uses'} charged`);
  else {
    io.out(`DIFFER: ${count('terminal-only')} entries only on the terminal, ${count('server-only')} only on the server, ${count('differs')} different at the same seq`);
    const delta = c.terminal.charged - c.server.charged;
    io.out(`uses charged: terminal ${c.terminal.charged}, server ${c.server.charged}${delta === 0 ? '' : ` (the ${delta > 0 ? 'server' : 'terminal'} counts ${Math.abs(delta)} fewer)`}`);
  }
  if (!ok && c.match) io.out('but a bundle does not verify (below)');
  for (const d of c.differences) {
    const what = d.kind === 'terminal-only' ? 'the server lacks it' : d.kind === 'server-only' ? 'the terminal lacks it' : `terminal ${d.terminal!.slice(0, 16)}..., server ${d.server!.slice(0, 16)}...`;
    io.out(`  seq ${d.seq}: ${d.type ?? '?'}${d.use ? ` (${d.use})` : ''}: ${what}`);
  }
  for (const line of [...verdictLines(tPath, verdicts.terminal), ...verdictLines(sPath, verdicts.server)]) io.out(line);
}

function positional(positionals: readonly string[], index: number, name: string): string {
  const value = positionals[index];
  if (value === undefined) throw new TallyError('USAGE', `${name} is required`);
  return value;
}
