/**
 * tally audit export|verify|compare: the audit bundle (firmware-protocol/audit-bundle.md).
 * A clinic exports its terminal's half, the investor's server its own with a signed
 * statement (the entries it holds, the uses charged per day and batch and their income
 * split at the clinic's price and share); either is verified offline with the investor
 * root alone, and compare lists every entry one half lacks or holds differently, and
 * what it does to the money.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fromHex, toHex } from '../../codecs/bytes.js';
import { accountOf, formatMoney, isDay, type Account, type Income, type Period, type Pricing } from '../../codecs/auditAccount.js';
import { AUDIT_BUNDLE_FORMAT, bundleEntries, encodeAuditBundle, parseAuditBundle, parseStatementBody, type AuditBundle } from '../../codecs/auditBundle.js';
import { compareBundles, entryList, signStatement, statementFieldsOf, verifyAuditBundle, type BundleVerdict, type Comparison } from '../../crypto/auditBundle.js';
import { signCheckpoint } from '../../crypto/checkpoint.js';
import { sha256 } from '../../crypto/ed25519.js';
import { createServerStore } from '../../server/createServerStore.js';
import { currentPricing, DEFAULT_PRICING, type PricingConfig } from '../../server/httpApi.js';
import type { ServerStore } from '../../server/ServerStore.js';
import { clinicPricing } from '../../server/dashboard/statement.js';
import { readCheckpointFile } from '../../terminal/Terminal.js';
import { ErrorCodes, storageErrorOf, TallyError } from '../../errors.js';
import { integer, required } from '../args.js';
import { defineCommand, type CliIo } from '../command.js';
import { JSON_OPTION, TRUSTED_ROOT_OPTIONS, valueOption } from '../options.js';
import { loadServerKey } from './serverKey.js';
import { storeOptions } from './server.js';

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

/** --from DAY --to DAY (UTC, both included), or neither: every entry */
function periodOf(values: Record<string, unknown>): Period | null {
  const [from, to] = [values.from, values.to];
  if (from === undefined && to === undefined) return null;
  if (!isDay(from) || !isDay(to)) throw new TallyError('USAGE', '--from and --to are both UTC days, YYYY-MM-DD (or give neither: every entry)');
  if (from > to) throw new TallyError('USAGE', `--from ${from} is after --to ${to}`);
  return { from, to };
}

function terminalBundle(dataDir: string, period: Period | null): AuditBundle {
  const path = join(dataDir, 'terminal.db');
  if (!existsSync(path)) throw new TallyError('DATABASE_CANTOPEN', `no terminal database at ${path}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const meta = (key: string) => db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?').get(key)?.value;
    const root = meta('root_public_key');
    const terminalId = meta('terminal_id');
    if (!root || !terminalId) throw new TallyError('NOT_PROVISIONED', path);
    const entries = db.prepare<[], { entry: Buffer }>('SELECT entry FROM ledger ORDER BY seq').all().map((r) => toHex(new Uint8Array(r.entry)));
    return { format: AUDIT_BUNDLE_FORMAT, side: 'terminal', terminalId: terminalId.toString('utf8'), rootPublicKey: toHex(new Uint8Array(root)), exportedAt: Date.now(), period, entries, checkpoint: readCheckpointFile(dataDir) ?? null, statement: null };
  } catch (err) {
    if (!(err instanceof Database.SqliteError)) throw err;
    // the storage around the file (full, read-only, cannot open) has its own code; damage is DATABASE_UNREADABLE
    const fault = storageErrorOf(err, `cannot read ${path}`);
    if (fault && fault.code !== 'DATABASE_CORRUPT' && fault.code !== 'STORAGE_FAULT') throw fault;
    throw new TallyError('DATABASE_UNREADABLE', `${path}: ${err.message} (tally ledger verify names the last good seq)`);
  } finally {
    db.close();
  }
}

interface ServerExport {
  readonly store: ServerStore;
  readonly signer: ReturnType<typeof loadServerKey>;
  readonly root: Uint8Array;
  readonly period: Period | null;
  readonly pricing: PricingConfig;
}

async function serverBundle(x: ServerExport, terminalId: string): Promise<AuditBundle> {
  const row = await x.store.terminal(terminalId);
  if (!row) throw new TallyError('USAGE', `the server holds no terminal ${terminalId}`);
  const raws: Uint8Array[] = [];
  for (let from = 1; ; ) {
    const page = await x.store.entries(terminalId, from, 1000);
    raws.push(...page.map((e) => e.raw));
    if (page.length < 1000) break;
    from = page.at(-1)!.seq + 1;
  }
  const now = Date.now();
  const listed = entryList(raws);
  const contiguous = listed.findIndex(([seq], i) => seq !== i + 1);
  const headSeq = contiguous === -1 ? listed.length : contiguous;
  const checkpoint = headSeq > 0 ? signCheckpoint(x.signer.key, x.signer.certificate, { terminalId, seq: headSeq, headHash: listed[headSeq - 1]![1], time: now }) : null;
  const fields = statementFieldsOf(raws, { terminalId, clinicCode: row.clinicCode, time: now, period: x.period, pricing: clinicPricing(x.pricing, row.clinicCode) });
  const statement = signStatement(x.signer.key, x.signer.certificate, fields);
  return { format: AUDIT_BUNDLE_FORMAT, side: 'server', terminalId, rootPublicKey: toHex(x.root), exportedAt: now, period: x.period, entries: raws.map(toHex), checkpoint, statement };
}

function periodText(period: Period | null): string {
  return period ? `${period.from}..${period.to}` : 'every entry';
}

function usesText(n: number): string {
  return `${n} ${n === 1 ? 'use' : 'uses'} charged`;
}

/** The charged uses by what paid for them, when any was not a card: " (2 card, 1 voucher)" */
function kindsText(a: Pick<Account, 'card' | 'voucher'>): string {
  return a.voucher === 0 ? '' : ` (${a.card} card, ${a.voucher} voucher)`;
}

/** The insurance settlements of the account, when it has any */
function settlementText(a: Account): string | undefined {
  if (a.settlement === 0) return undefined;
  return `insurance: ${a.settlement} ${a.settlement === 1 ? 'use' : 'uses'} settled with the platform, ${formatMoney(a.settled.amountFen)} (the insurer ${formatMoney(a.settled.insurerFen)}, the patient ${formatMoney(a.settled.patientFen)}), not charged at the clinic's price`;
}

function exported(bundle: AuditBundle, out: string): string {
  const account = accountOf(bundleEntries(bundle), bundle.period);
  const uses = account.uses;
  const settled = account.settlement > 0 ? `, ${account.settlement} insurance ${account.settlement === 1 ? 'use' : 'uses'}` : '';
  const money = bundle.statement ? `, ${formatMoney(parseStatementBody(bundle.statement.body).income.gross)} (the clinic's share ${formatMoney(parseStatementBody(bundle.statement.body).income.clinic)})` : '';
  return `${bundle.side} bundle of ${bundle.terminalId} (${periodText(bundle.period)}): ${bundle.entries.length} entries, ${usesText(uses)}${kindsText(account)}${money}${settled}${bundle.checkpoint ? ', the latest checkpoint' : ', no checkpoint'}${bundle.statement ? ', the signed statement' : ''}; written to ${out}`;
}

export const auditExportCommand = defineCommand(
  {
    path: 'audit export',
    summary: "one file with a terminal's ledger as this half holds it, for an offline audit",
    usage: [
      `tally audit export --out PATH [--from DAY --to DAY]
    (--data DIR | --store STORE (--terminal ID | --clinic CODE) --signing-key FILE --root HEX [--price N --share S])`,
    ],
    about: `On the terminal (--data, the data folder; to a USB stick): its ledger entries,
which carry the terminal certificate and the batch records back to the
investor root, and the latest checkpoint the server signed.
On the server (--store, as tally server run): the entries it holds for that
terminal, a checkpoint of the contiguous ones, and its statement of every entry
it received (seq and hash), of the uses paid in the period by what paid for
them (card, voucher, insurance) per day, the card uses per batch, and of the
income split of the card and voucher uses at the clinic's price and share in the
registry (where it sets none: --price in fen and --share, the investor's 0..1,
as tally server report income), signed with the server key that tally server
certify-key made and the mother card certified. --clinic CODE writes one
bundle per terminal of the clinic into the folder PATH (PATH/TERMINAL.json).
--from/--to (UTC days, both included) limit the account to a period; the
entries are always the whole ledger, which the chain needs from entry 1.
The clinic verifies either with tally audit verify and lays them side by side
with tally audit compare.`,
    options: {
      out: valueOption('PATH', 'the bundle file (with --clinic: a folder, one bundle per terminal)', { required: true }),
      from: valueOption('DAY', 'the first UTC day of the account (YYYY-MM-DD)'),
      to: valueOption('DAY', 'the last UTC day of the account, included'),
      data: valueOption('DIR', "on the terminal: its data folder"),
      store: valueOption('STORE', "on the server: its store, a SQLite file or postgres://..."),
      terminal: valueOption('ID', 'the terminal whose half the server exports'),
      clinic: valueOption('CODE', 'or every terminal of this clinic'),
      'signing-key': valueOption('FILE', 'the server key that signs the statement (tally server certify-key)'),
      root: valueOption('HEX', 'the investor root public key (64 hex digits)'),
      price: valueOption('N', 'the price per use in fen where the registry sets none', { default: String(DEFAULT_PRICING.default.pricePerUse) }),
      share: valueOption('S', "the investor's share, 0..1, where the registry sets none", { default: String(DEFAULT_PRICING.default.investorShare) }),
    },
    examples: [
      'tally audit export --data /var/lib/tally --out /media/usb/T-1.json',
      'tally audit export --store server.db --clinic C1 --from 2026-12-01 --to 2026-12-31 --signing-key server-key.json --root <root key> --out C1-december/',
    ],
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const out = required(values, 'out');
    const period = periodOf(values);
    if (typeof values.data === 'string') {
      const bundle = terminalBundle(values.data, period);
      writeFileSync(out, encodeAuditBundle(bundle), { mode: 0o644 });
      io.out(exported(bundle, out));
      return 0;
    }
    if (typeof values.store !== 'string') throw new TallyError('USAGE', '--data DIR (on the terminal) or --store STORE (on the server) is required');
    const rootHex = required(values, 'root');
    if (!/^[0-9a-fA-F]{64}$/.test(rootHex)) throw new TallyError('USAGE', '--root is 64 hex digits');
    const root = fromHex(rootHex.toLowerCase());
    if ((typeof values.terminal === 'string') === (typeof values.clinic === 'string')) throw new TallyError('USAGE', '--terminal ID or --clinic CODE (one of them) is required with --store');
    const share = typeof values.share === 'string' ? Number(values.share) : DEFAULT_PRICING.default.investorShare;
    if (!(share >= 0 && share <= 1)) throw new TallyError('USAGE', "--share is the investor's share, 0..1");
    const price = integer(values, 'price', DEFAULT_PRICING.default.pricePerUse);
    if (price < 0) throw new TallyError('USAGE', '--price is a whole number of fen, 0 or more');
    const signer = loadServerKey(required(values, 'signing-key'), root);
    const store = await createServerStore(storeOptions(values.store));
    try {
      const x: ServerExport = { store, signer, root, period, pricing: await currentPricing(store, { default: { pricePerUse: price, investorShare: share } }) };
      if (typeof values.terminal === 'string') {
        const bundle = await serverBundle(x, values.terminal);
        writeFileSync(out, encodeAuditBundle(bundle), { mode: 0o644 });
        io.out(exported(bundle, out));
        return 0;
      }
      const clinic = values.clinic as string;
      const terminals = (await store.terminals()).filter((t) => t.clinicCode === clinic).map((t) => t.terminalId).sort();
      if (terminals.length === 0) throw new TallyError('USAGE', `the server holds no terminal of clinic ${clinic}`);
      if (existsSync(out) && !statSync(out).isDirectory()) throw new TallyError('USAGE', `--out ${out} is a file: with --clinic it is a folder, one bundle per terminal`);
      mkdirSync(out, { recursive: true });
      for (const terminalId of terminals) {
        const bundle = await serverBundle(x, terminalId);
        const file = join(out, `${terminalId}.json`);
        writeFileSync(file, encodeAuditBundle(bundle), { mode: 0o644 });
        io.out(exported(bundle, file));
      }
      return 0;
    } finally {
      await store.close();
    }
  },
);

function pct(bp: number): string {
  return `${bp / 100}%`;
}

function incomeText(income: Income): string {
  return `${formatMoney(income.gross)} (the clinic's share ${formatMoney(income.clinic)}, the investor's ${formatMoney(income.investor)}${income.agentCode !== undefined ? `, agent ${income.agentCode}'s ${formatMoney(income.agent ?? 0)}` : ''})`;
}

function pricingText(p: Pricing): string {
  return `${formatMoney(p.pricePerUse)} a use, the investor's share ${pct(p.investorShareBp)}${p.agentCode !== undefined ? ` (agent ${p.agentCode}: ${pct(p.agentShareBp ?? 0)} of the gross, out of it)` : ''}`;
}

function accountLines(account: Account): string[] {
  // a day of card uses only is its count; otherwise what paid for them
  const day = (d: Account['days'][number]) => (d.voucher === 0 && d.settlement === 0 ? `${d.day} ${d.uses}` : `${d.day} ${d.uses} (card ${d.card}, voucher ${d.voucher}${d.settlement > 0 ? `; insurance ${d.settlement}` : ''})`);
  return [
    `  uses per day: ${account.days.length === 0 ? 'none' : account.days.map(day).join(', ')}`,
    `  card uses per batch: ${account.batches.length === 0 ? 'none' : account.batches.map((b) => `batch ${b.batchNo} (${b.batchId}) ${b.uses}`).join(', ')}`,
  ];
}

/** The verdict in plain text: the verdict and the money first, then each part, then the uses per day and batch */
function verdictLines(path: string, v: BundleVerdict): string[] {
  const lines: string[] = [];
  const l = v.ledger;
  const st = v.statement;
  lines.push(`${v.ok ? 'VERIFIED' : 'NOT VERIFIED'}: ${v.side} bundle of ${v.terminalId} (${path})`);
  const clinicCode = v.clinicCode ?? st?.clinicCode;
  const clinic = clinicCode !== undefined ? `clinic ${clinicCode}, ` : '';
  const charged = `${usesText(v.account.uses)}${kindsText(v.account)}`;
  if (st?.ok && st.income && st.pricing) lines.push(`  ${clinic}${periodText(v.period)}: ${charged} at ${formatMoney(st.pricing.pricePerUse)}: ${incomeText(st.income)}`);
  else lines.push(`  ${clinic}${periodText(v.period)}: ${charged}${v.side === 'terminal' ? " (the price and shares are the server statement's: tally audit compare)" : ''}`);
  const settled = settlementText(v.account);
  if (settled) lines.push(`  ${settled}`);
  if (v.format === 2) lines.push(`  format 2 bundle: its statement counts card uses only (vouchers and insurance are not in its income); the uses above are counted by format 3`);
  lines.push(l.ok ? `  ledger: ${l.entries} entries verify, seq 1..${l.lastSeq}, ${l.uses} ${l.uses === 1 ? 'use' : 'uses'}, ${l.releases} released` : `  ledger: BROKEN at seq ${l.problem!.seq}: ${l.problem!.code}: ${l.problem!.problem} (${l.entries} entries before it verify)`);
  if (v.checkpoint) {
    const c = v.checkpoint;
    lines.push(c.ok ? `  checkpoint: server ${c.serverId} signed seq ${c.seq}; the ledger holds it` : `  checkpoint: ${c.problem!.code}: ${c.problem!.problem}`);
  } else lines.push('  checkpoint: none in the bundle');
  if (st) lines.push(st.ok ? `  statement: server ${st.serverId} signed that it holds these ${st.entries} entries, and this account at ${pricingText(st.pricing!)}` : `  statement: ${st.problem!.code}: ${st.problem!.problem}`);
  if (v.problem) lines.push(`  ${v.problem.code}: ${v.problem.problem}`);
  lines.push(...accountLines(v.account));
  return lines;
}

export const auditVerifyCommand = defineCommand(
  {
    path: 'audit verify',
    summary: 'check an audit bundle offline with the investor root alone',
    usage: ['tally audit verify BUNDLE (--root HEX | --root-fingerprint HEX) [--json]'],
    about: `Checks the bundle's ledger (every rule of ledger-format.md), its checkpoint and,
on a server's bundle, the server's signed statement, all against the root.
With --root-fingerprint the key the bundle carries is used only if it has that
fingerprint. Exit 0 when it verifies, 4 when not.`,
    options: { ...TRUSTED_ROOT_OPTIONS, ...JSON_OPTION },
    positionals: true,
  },
  async (args, io, cli) => {
    const { values, positionals } = cli.parseWithPositionals(args);
    const path = positional(positionals, 0, 'BUNDLE');
    const bundle = readBundle(path);
    const verdict = verifyAuditBundle(bundle, trustedRoot(values, bundle));
    if (values.json) io.out(JSON.stringify(verdict, null, 2));
    else for (const line of verdictLines(path, verdict)) io.out(line);
    return verdict.ok ? 0 : 4;
  },
);

export const auditCompareCommand = defineCommand(
  {
    path: 'audit compare',
    summary: "the terminal's half beside the server's: they match, or every entry that differs",
    usage: ['tally audit compare TERMINAL_BUNDLE SERVER_BUNDLE (--root HEX | --root-fingerprint HEX) [--json]'],
    about: `Verifies both bundles, then compares them seq by seq: entries the server lacks
(not yet synced, or never received), entries the terminal lacks (cut, or the
database restored from an older copy), and entries that differ (a fork); and the
uses charged on each side. Summary first, details below. Exit 0 when they
match and both verify, 4 when not.`,
    options: { ...TRUSTED_ROOT_OPTIONS, ...JSON_OPTION },
    positionals: true,
  },
  async (args, io, cli) => {
    const { values, positionals } = cli.parseWithPositionals(args);
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
);

function moneyDelta(amount: number): string {
  return amount === 0 ? 'the same' : `${formatMoney(Math.abs(amount))} ${amount > 0 ? 'more' : 'less'}`;
}

function printComparison(io: CliIo, ok: boolean, c: Comparison, verdicts: { terminal: BundleVerdict; server: BundleVerdict }, tPath: string, sPath: string): void {
  const count = (kind: string) => c.differences.filter((d) => d.kind === kind).length;
  if (c.match) io.out(`MATCH: the terminal and the server hold the same ${c.terminal.entries} entries; ${usesText(c.terminal.charged)}${kindsText(c.terminal.account)} (${periodText(c.period)})`);
  else {
    io.out(`DIFFER: ${count('terminal-only')} entries only on the terminal, ${count('server-only')} only on the server, ${count('differs')} different at the same seq [AUDIT_HALVES_DIFFER ${ErrorCodes.AUDIT_HALVES_DIFFER.code}]`);
    const delta = c.terminal.charged - c.server.charged;
    io.out(`uses charged (${periodText(c.period)}): terminal ${c.terminal.charged}${kindsText(c.terminal.account)}, server ${c.server.charged}${kindsText(c.server.account)}${delta === 0 ? '' : ` (the ${delta > 0 ? 'server' : 'terminal'} counts ${Math.abs(delta)} fewer)`}`);
    if (c.terminal.account.settlement !== c.server.account.settlement) io.out(`insurance uses: terminal ${c.terminal.account.settlement}, server ${c.server.account.settlement}`);
  }
  if (c.pricing && c.terminal.income && c.server.income && c.money) {
    io.out(`money at ${pricingText(c.pricing)}: terminal ${incomeText(c.terminal.income)}, server ${incomeText(c.server.income)}`);
    const m = c.money;
    if (m.gross !== 0) io.out(`the server's statement charges ${moneyDelta(m.gross)} than the terminal's ledger: the clinic's share ${moneyDelta(m.clinic)}, the investor's ${moneyDelta(m.investor)}${m.agent !== undefined ? `, the agent's ${moneyDelta(m.agent)}` : ''}`);
  } else io.out("money: the server's statement gives no price (it does not parse)");
  if (!ok && c.match) io.out('but a bundle does not verify (below)');
  for (const d of c.differences) {
    const what = d.kind === 'terminal-only' ? 'the server lacks it' : d.kind === 'server-only' ? 'the terminal lacks it' : `terminal ${d.terminal!.slice(0, 16)}..., server ${d.server!.slice(0, 16)}...`;
    const money = d.charged && c.pricing ? `; a ${d.paidBy} use charged ${formatMoney(c.pricing.pricePerUse)}` : d.paidBy === 'settlement' ? '; an insurance use' : '';
    io.out(`  seq ${d.seq}: ${d.type ?? '?'}${d.use ? ` (${d.use})` : ''}: ${what}${money}`);
  }
  for (const line of [...verdictLines(tPath, verdicts.terminal), ...verdictLines(sPath, verdicts.server)]) io.out(line);
}

function positional(positionals: readonly string[], index: number, name: string): string {
  const value = positionals[index];
  if (value === undefined) throw new TallyError('USAGE', `${name} is required`);
  return value;
}
