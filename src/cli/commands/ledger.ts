import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toHex } from '../../codecs/bytes.js';
import { describeRecord } from '../../codecs/cardRecord.js';
import { ENTRY_TYPE_NAMES, parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import { parseRecordOrThrow } from '../../crypto/chain.js';
import { sha256 } from '../../crypto/ed25519.js';
import { entryHash, verifyLedgerEntries, type LedgerVerification } from '../../crypto/ledgerChain.js';
import { encodeCheckpointFile, parseCheckpoint, parseCheckpointBody } from '../../codecs/checkpoint.js';
import { checkLedgerAgainstCheckpoint, verifyCheckpoint, type CheckpointVerdict } from '../../crypto/checkpoint.js';
import { readCheckpointFile } from '../../terminal/Terminal.js';
import { ErrorCodes, storageErrorOf, TallyError } from '../../errors.js';
import { createLogger } from '../../logging/createLogger.js';
import { defineCommand } from '../command.js';
import { JSON_OPTION, valueOption } from '../options.js';

/** Which ledger: a terminal's data directory, or its database file */
const LEDGER_OPTIONS = {
  data: valueOption('DIR', "the terminal's data directory (its terminal.db)"),
  db: valueOption('FILE', "or the terminal's database file itself"),
};

interface ReadLedger {
  readonly path: string;
  readonly entries: Uint8Array[];
  /** --root, else the one the database holds (undefined when it could not be read) */
  readonly root?: Uint8Array;
  /** Why the database could not be read to its end (SQLite's own reason) */
  readonly unreadable?: string;
  /** Rows whose unsigned copies (seq, type, time, hash) are not what their signed entry says */
  readonly unsignedColumns: UnsignedMismatch[];
}

export interface UnsignedMismatch {
  readonly seq: number;
  readonly columns: ('seq' | 'type' | 'time' | 'hash')[];
}

interface LedgerRow {
  seq: number;
  type: unknown;
  time: unknown;
  hash: unknown;
  entry: unknown;
}

/** ledger-format.md section 5: the columns beside an entry that disagree with it (none for an entry that does not parse: the verdict names it) */
function unsignedMismatch(row: LedgerRow, raw: Uint8Array): UnsignedMismatch | undefined {
  let entry;
  try {
    entry = parseLedgerEntry(raw);
  } catch {
    return undefined;
  }
  const columns: UnsignedMismatch['columns'] = [];
  if (row.seq !== entry.seq) columns.push('seq');
  if (row.type !== entry.type) columns.push('type');
  if (typeof row.time !== 'number' || row.time !== entry.time) columns.push('time');
  if (!Buffer.isBuffer(row.hash) || !row.hash.equals(entryHash(raw))) columns.push('hash');
  return columns.length ? { seq: row.seq, columns } : undefined;
}

/**
 * Opens a terminal database read-only (an auditor must not change what they check) and reads
 * SELECT entry FROM ledger ORDER BY seq row by row: a damaged file yields the entries before the
 * damage and SQLite's reason, never an exception.
 */
function readLedger(values: Record<string, unknown>): ReadLedger {
  const path = typeof values.db === 'string' ? values.db : typeof values.data === 'string' ? join(values.data, 'terminal.db') : undefined;
  if (!path) throw new TallyError('USAGE', '--data DIR or --db FILE is required');
  if (!existsSync(path)) throw new TallyError('DATABASE_CANTOPEN', `no ledger at ${path}`);
  const given = typeof values.root === 'string' ? new Uint8Array(Buffer.from(values.root, 'hex')) : undefined;
  const fingerprint = typeof values['root-fingerprint'] === 'string' ? values['root-fingerprint'].toLowerCase() : undefined;
  // the root the database holds is as untrusted as the rest: with --root-fingerprint it must hash to it
  const trusted = (held: Uint8Array | undefined): Uint8Array | undefined => {
    if (held && fingerprint !== undefined && toHex(sha256(held)) !== fingerprint) throw new TallyError('USAGE', `the root key in ${path} does not have fingerprint ${fingerprint}: give --root`);
    return held;
  };
  const entries: Uint8Array[] = [];
  const unsignedColumns: UnsignedMismatch[] = [];
  let db: Database.Database | undefined;
  let held: Uint8Array | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    let metaReadable = true;
    try {
      const row = db.prepare<[], { value: Buffer }>("SELECT value FROM meta WHERE key = 'root_public_key'").get();
      held = row ? new Uint8Array(row.value) : undefined;
    } catch (err) {
      // the meta table is a convenience (as untrusted as the rest): damaged, it does not stop the entries being read
      if (!(err instanceof Database.SqliteError)) throw err;
      metaReadable = false;
    }
    if (metaReadable && !held && !given) throw new TallyError('NOT_PROVISIONED', path);
    db.defaultSafeIntegers(false);
    for (const row of db.prepare<[], LedgerRow>('SELECT seq, type, time, hash, entry FROM ledger ORDER BY seq').iterate()) {
      const raw = Buffer.isBuffer(row.entry) ? new Uint8Array(row.entry) : new Uint8Array(Buffer.from(String(row.entry), 'utf8'));
      entries.push(raw);
      const mismatch = unsignedMismatch(row, raw);
      if (mismatch) unsignedColumns.push(mismatch);
    }
    // every page of the file, not only the ledger's: a truncated or damaged file is named even when the ledger's pages survived
    const problems = db.prepare<[], { quick_check: string }>('PRAGMA quick_check').all().map((r) => r.quick_check);
    const unreadable = problems.length === 1 && problems[0] === 'ok' ? undefined : `quick_check: ${problems.slice(0, 3).join('; ')}`;
    return { path, entries, unsignedColumns, ...rootOf(given ?? trusted(held)), ...(unreadable ? { unreadable } : {}) };
  } catch (err) {
    if (!(err instanceof Database.SqliteError)) throw err;
    // the storage around the file failed (full disk, read-only folder, cannot open), not its contents: that is
    // no verdict on the ledger, so it is answered with its own code (errors.ts storageErrorOf) and no seq
    const fault = entries.length === 0 ? storageErrorOf(err, `cannot read ${path}`) : undefined;
    if (fault && fault.code !== 'DATABASE_CORRUPT' && fault.code !== 'STORAGE_FAULT') throw fault;
    return { path, entries, unsignedColumns, ...rootOf(given ?? trusted(held)), unreadable: `${err.code}: ${err.message}` };
  } finally {
    db?.close();
  }
}

function rootOf(root: Uint8Array | undefined): { root?: Uint8Array } {
  return root ? { root } : {};
}

/** The verdict of a database read to its end or not (ledger-format.md section 7, DATABASE_UNREADABLE) */
function verifyRead(read: ReadLedger): LedgerVerification {
  // without a root to check against (the meta table is unreadable too) no entry verifies
  if (!read.root) return verifyLedgerEntries([], new Uint8Array(32), read.unreadable ?? 'no root key');
  return verifyLedgerEntries(read.entries, read.root, read.unreadable);
}

/** The operator's line for a damaged database, in both languages, and its structured log event */
function reportUnreadable(read: ReadLedger, result: LedgerVerification, io: { err: (line: string) => void }): void {
  const { code, en, zh } = ErrorCodes.DATABASE_UNREADABLE;
  createLogger({ level: process.env.TALLY_LOG_LEVEL ?? 'info' }).warn(
    { event: 'ledger-database-unreadable', code: 'DATABASE_UNREADABLE', path: read.path, lastGoodSeq: result.lastSeq, reason: read.unreadable },
    'ledger database unreadable',
  );
  io.err(`DATABASE_UNREADABLE ${code}: ${en} (last good seq ${result.lastSeq}; ${read.unreadable ?? ''})`);
  io.err(`DATABASE_UNREADABLE ${code}: ${zh}（最后一条完好的序号 ${result.lastSeq}）`);
}

export const ledgerVerifyCommand = defineCommand(
  {
    path: 'ledger verify',
    summary: "check a terminal's whole ledger: chain, signatures, sequence, meaning",
    usage: ['tally ledger verify (--data DIR | --db FILE) [--root HEX | --root-fingerprint HEX] [--checkpoint FILE] [--json]'],
    about: `Checks every entry: gapless sequence, hash chain, the terminal certificate
back to the investor root, each signature, and that no serial was used twice.
Says exactly where it breaks. Exit 0 when intact, 4 when broken (a
damaged or truncated database file too: DATABASE_UNREADABLE, with the last
good seq). Rows whose unsigned columns (seq, type, time, hash) differ from
their signed entry are listed as warnings (unsignedColumns in --json).
Without --root the root key the terminal holds is used: an auditor should pass
the one they trust, or its fingerprint. With --checkpoint the ledger must still
hold the checkpoint's seq with its hash, else it is named TRUNCATED (cut or
restored from an older copy; exit 4, with the last good seq) or FORKED.`,
    options: {
      ...LEDGER_OPTIONS,
      root: valueOption('HEX', 'the investor root public key to check against', { default: 'the one the terminal holds' }),
      'root-fingerprint': valueOption('HEX', 'take the root key the terminal holds only if its SHA-256 is HEX (the fingerprint tally issue mother printed)'),
      checkpoint: valueOption('FILE', 'a checkpoint the server signed (tally ledger checkpoint, or the audit bundle) that the ledger must still hold'),
      ...JSON_OPTION,
    },
    examples: ['tally ledger verify --data term --root-fingerprint <from issue mother>'],
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const read = readLedger(values);
    const { entries } = read;
    const result = verifyRead(read);
    if (result.problem?.code === 'DATABASE_UNREADABLE') reportUnreadable(read, result, io);
    const checkpoint = typeof values.checkpoint === 'string' && read.root ? checkpointVerdict(values.checkpoint, entries, result, read.root) : undefined;
    const warnUnsigned = () => {
      for (const m of read.unsignedColumns) io.out(`warning: the unsigned ${m.columns.join(' and ')} column${m.columns.length > 1 ? 's' : ''} of row ${m.seq} differ${m.columns.length > 1 ? '' : 's'} from its signed entry`);
    };
    if (checkpoint) {
      if (values.json) io.out(JSON.stringify({ ...result, ok: result.ok && checkpoint.ok, unsignedColumns: read.unsignedColumns, checkpoint }, null, 2));
      else {
        if (result.ok) io.out(`ledger of ${result.terminalId}: ${result.entries} entries verify, seq 1..${result.lastSeq}`);
        else io.out(`ledger BROKEN at seq ${result.problem!.seq}: ${result.problem!.problem}`);
        io.out(
          checkpoint.ok
            ? `holds the checkpoint of server ${checkpoint.serverId}: seq ${checkpoint.seq} (${checkpoint.headHash.slice(0, 16)}...) signed ${checkpoint.time}`
            : `${checkpoint.problem!.code === 'TRUNCATED' ? 'TRUNCATED' : 'NOT the ledger the server saw'}: ${checkpoint.problem!.problem} (last good seq ${checkpoint.lastGoodSeq})${checkpoint.problem!.code === 'TRUNCATED' ? ` [LEDGER_TRUNCATED ${ErrorCodes.LEDGER_TRUNCATED.code}]` : ''}`,
        );
        warnUnsigned();
      }
      return result.ok && checkpoint.ok ? 0 : 4;
    }
    if (values.json) {
      io.out(JSON.stringify({ ...result, unsignedColumns: read.unsignedColumns }, null, 2));
    } else {
      if (result.ok) {
        io.out(`ledger of ${result.terminalId} intact: ${result.entries} entries, seq 1..${result.lastSeq}, ${result.uses} ${result.uses === 1 ? 'use' : 'uses'}, ${result.releases} released`);
      } else {
        io.out(`ledger BROKEN at seq ${result.problem!.seq}: ${result.problem!.problem}`);
        io.out(`the ${result.entries} entries before it verify`);
      }
      warnUnsigned();
    }
    return result.ok ? 0 : 4;
  },
);

/** The checkpoint file checked against the root, and the ledger against it; BAD_CHECKPOINT when it does not verify */
function checkpointVerdict(path: string, entries: readonly Uint8Array[], result: LedgerVerification, root: Uint8Array): CheckpointVerdict {
  if (!existsSync(path)) throw new TallyError('USAGE', `no checkpoint at ${path}`);
  const fields = verifyCheckpoint(parseCheckpoint(readFileSync(path, 'utf8')), root);
  return checkLedgerAgainstCheckpoint(entries, result.lastSeq, result.terminalId, fields);
}

export const ledgerCheckpointCommand = defineCommand(
  {
    path: 'ledger checkpoint',
    summary: 'export the latest checkpoint the server signed for this terminal',
    about: `The terminal keeps the latest checkpoint the server's acks carried: the
server's signed statement that it holds this ledger up to a seq with that
entry's hash. Give the file to tally ledger verify --checkpoint (or keep it
off the terminal): a ledger later cut short or restored from an older copy is
then named TRUNCATED.`,
    options: {
      data: valueOption('DIR', "the terminal's data directory", { required: true }),
      out: valueOption('FILE', 'write the checkpoint file here'),
      ...JSON_OPTION,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const dataDir = typeof values.data === 'string' ? values.data : undefined;
    if (!dataDir) throw new TallyError('USAGE', '--data DIR is required');
    const checkpoint = readCheckpointFile(dataDir);
    if (!checkpoint) throw new TallyError('USAGE', `no checkpoint in ${dataDir} yet: the server sends one with its acks once it runs with --signing-key`);
    const fields = parseCheckpointBody(checkpoint.body);
    if (typeof values.out === 'string') writeFileSync(values.out, encodeCheckpointFile(checkpoint), { mode: 0o644 });
    if (values.json) io.out(JSON.stringify({ ...fields, time: new Date(fields.time).toISOString() }, null, 2));
    else io.out(`checkpoint of server ${fields.serverId}: terminal ${fields.terminalId} seq ${fields.seq} (${fields.headHash.slice(0, 16)}...) signed ${new Date(fields.time).toISOString()}${typeof values.out === 'string' ? `, written to ${values.out}` : ''}`);
    return 0;
  },
);

export const ledgerShowCommand = defineCommand(
  {
    path: 'ledger show',
    summary: "list a terminal's ledger entries",
    usage: ['tally ledger show (--data DIR | --db FILE) [--json]'],
    options: { ...LEDGER_OPTIONS, ...JSON_OPTION },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const read = readLedger(values);
    if (read.unreadable) throw new TallyError('DATABASE_UNREADABLE', `${read.path} after ${read.entries.length} entries: ${read.unreadable}`);
    const rows = read.entries.map((raw) => {
      const e = parseLedgerEntry(raw);
      let card: string | undefined;
      if (e.card) {
        try {
          card = describeRecord(parseRecordOrThrow(e.card));
        } catch {
          card = 'unreadable card record';
        }
      }
      return {
        seq: e.seq,
        type: ENTRY_TYPE_NAMES[e.type],
        time: new Date(e.time).toISOString(),
        clockTrusted: e.clockTrusted,
        ...(card ? { card } : {}),
        ...(e.ref !== undefined ? { ref: e.ref } : {}),
        ...(e.detail ? { detail: e.detail } : {}),
        hashOfPrevious: toHex(e.prevHash).slice(0, 16),
      };
    });
    if (values.json) io.out(JSON.stringify(rows, null, 2));
    else for (const r of rows) io.out(`${String(r.seq).padStart(6)}  ${r.time}${r.clockTrusted ? ' ' : '?'} ${r.type.padEnd(14)} ${r.card ?? (r.ref !== undefined ? `use ${r.ref}` : '')}${r.detail ? `  (${r.detail})` : ''}`);
    return 0;
  },
);
