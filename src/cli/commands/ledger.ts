import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toHex } from '../../codecs/bytes.js';
import { describeRecord } from '../../codecs/cardRecord.js';
import { ENTRY_TYPE_NAMES, parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import { parseRecordOrThrow } from '../../crypto/chain.js';
import { verifyLedgerEntries, type LedgerVerification } from '../../crypto/ledgerChain.js';
import { encodeCheckpointFile, parseCheckpoint, parseCheckpointBody } from '../../codecs/checkpoint.js';
import { checkLedgerAgainstCheckpoint, verifyCheckpoint, type CheckpointVerdict } from '../../crypto/checkpoint.js';
import { readCheckpointFile } from '../../terminal/Terminal.js';
import { TallyError } from '../../errors.js';
import { parse } from '../args.js';
import type { CliCommand } from '../command.js';

/** Opens a terminal database read-only: an auditor must not change what they check */
function readLedger(values: Record<string, unknown>): { entries: Uint8Array[]; root: Uint8Array } {
  const path = typeof values.db === 'string' ? values.db : typeof values.data === 'string' ? join(values.data, 'terminal.db') : undefined;
  if (!path) throw new TallyError('USAGE', '--data DIR or --db FILE is required');
  if (!existsSync(path)) throw new TallyError('USAGE', `no ledger at ${path}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const root = db.prepare<[], { value: Buffer }>("SELECT value FROM meta WHERE key = 'root_public_key'").get();
    if (!root) throw new TallyError('NOT_PROVISIONED', path);
    const rootKey = typeof values.root === 'string' ? new Uint8Array(Buffer.from(values.root, 'hex')) : new Uint8Array(root.value);
    const entries = db.prepare<[], { entry: Buffer }>('SELECT entry FROM ledger ORDER BY seq').all().map((r) => new Uint8Array(r.entry));
    return { entries, root: rootKey };
  } finally {
    db.close();
  }
}

export const ledgerVerifyCommand: CliCommand = {
  path: ['ledger', 'verify'],
  summary: "check a terminal's whole ledger: chain, signatures, sequence, meaning",
  help: `tally ledger verify (--data DIR | --db FILE) [--root HEX] [--checkpoint FILE] [--json]

Checks every entry: gapless sequence, hash chain, the terminal certificate
back to the investor root, each signature, and that no serial was used twice.
Says exactly where it breaks. Exit 0 when intact, 4 when broken.
  --root HEX   the investor root public key to check against (default: the one
               the terminal holds; an auditor should pass the one they trust)
  --checkpoint FILE  a checkpoint the server signed (tally ledger checkpoint, or
               the audit bundle): the ledger must still hold its seq with its
               hash, else it is named TRUNCATED (cut or restored from an older
               copy; exit 4, with the last good seq) or FORKED`,
  async run(args, io) {
    const values = parse(args, { data: { type: 'string' }, db: { type: 'string' }, root: { type: 'string' }, checkpoint: { type: 'string' }, json: { type: 'boolean' } });
    const { entries, root } = readLedger(values);
    const result = verifyLedgerEntries(entries, root);
    const checkpoint = typeof values.checkpoint === 'string' ? checkpointVerdict(values.checkpoint, entries, result, root) : undefined;
    if (checkpoint) {
      if (values.json) io.out(JSON.stringify({ ...result, ok: result.ok && checkpoint.ok, checkpoint }, null, 2));
      else {
        if (result.ok) io.out(`ledger of ${result.terminalId}: ${result.entries} entries verify, seq 1..${result.lastSeq}`);
        else io.out(`ledger BROKEN at seq ${result.problem!.seq}: ${result.problem!.problem}`);
        io.out(
          checkpoint.ok
            ? `holds the checkpoint of server ${checkpoint.serverId}: seq ${checkpoint.seq} (${checkpoint.headHash.slice(0, 16)}...) signed ${checkpoint.time}`
            : `${checkpoint.problem!.code === 'TRUNCATED' ? 'TRUNCATED' : 'NOT the ledger the server saw'}: ${checkpoint.problem!.problem} (last good seq ${checkpoint.lastGoodSeq})`,
        );
      }
      return result.ok && checkpoint.ok ? 0 : 4;
    }
    if (values.json) {
      io.out(JSON.stringify(result, null, 2));
    } else if (result.ok) {
      io.out(`ledger of ${result.terminalId} intact: ${result.entries} entries, seq 1..${result.lastSeq}, ${result.uses} ${result.uses === 1 ? 'use' : 'uses'}, ${result.releases} released`);
    } else {
      io.out(`ledger BROKEN at seq ${result.problem!.seq}: ${result.problem!.problem}`);
      io.out(`the ${result.entries} entries before it verify`);
    }
    return result.ok ? 0 : 4;
  },
};

/** The checkpoint file checked against the root, and the ledger against it; BAD_CHECKPOINT when it does not verify */
function checkpointVerdict(path: string, entries: readonly Uint8Array[], result: LedgerVerification, root: Uint8Array): CheckpointVerdict {
  if (!existsSync(path)) throw new TallyError('USAGE', `no checkpoint at ${path}`);
  const fields = verifyCheckpoint(parseCheckpoint(readFileSync(path, 'utf8')), root);
  return checkLedgerAgainstCheckpoint(entries, result.lastSeq, result.terminalId, fields);
}

export const ledgerCheckpointCommand: CliCommand = {
  path: ['ledger', 'checkpoint'],
  summary: 'export the latest checkpoint the server signed for this terminal',
  help: `tally ledger checkpoint --data DIR [--out FILE] [--json]

The terminal keeps the latest checkpoint the server's acks carried: the
server's signed statement that it holds this ledger up to a seq with that
entry's hash. Give the file to tally ledger verify --checkpoint (or keep it
off the terminal): a ledger later cut short or restored from an older copy is
then named TRUNCATED.`,
  async run(args, io) {
    const values = parse(args, { data: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } });
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
};

export const ledgerShowCommand: CliCommand = {
  path: ['ledger', 'show'],
  summary: "list a terminal's ledger entries",
  help: `tally ledger show (--data DIR | --db FILE) [--json]`,
  async run(args, io) {
    const values = parse(args, { data: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' } });
    const { entries } = readLedger(values);
    const rows = entries.map((raw) => {
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
};
