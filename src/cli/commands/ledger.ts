import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toHex } from '../../codecs/bytes.js';
import { describeRecord } from '../../codecs/cardRecord.js';
import { ENTRY_TYPE_NAMES, parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import { parseRecordOrThrow } from '../../crypto/chain.js';
import { verifyLedgerEntries } from '../../crypto/ledgerChain.js';
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
  help: `tally ledger verify (--data DIR | --db FILE) [--root HEX] [--json]

Checks every entry: gapless sequence, hash chain, the terminal certificate
back to the investor root, each signature, and that no serial was used twice.
Says exactly where it breaks. Exit 0 when intact, 4 when broken.
  --root HEX   the investor root public key to check against (default: the one
               the terminal holds; an auditor should pass the one they trust)`,
  async run(args, io) {
    const values = parse(args, { data: { type: 'string' }, db: { type: 'string' }, root: { type: 'string' }, json: { type: 'boolean' } });
    const { entries, root } = readLedger(values);
    const result = verifyLedgerEntries(entries, root);
    if (values.json) {
      io.out(JSON.stringify(result, null, 2));
    } else if (result.ok) {
      io.out(`ledger of ${result.terminalId} intact: ${result.entries} entries, seq 1..${result.lastSeq}, ${result.uses} uses, ${result.releases} released`);
    } else {
      io.out(`ledger BROKEN at seq ${result.problem!.seq}: ${result.problem!.problem}`);
      io.out(`the ${result.entries} entries before it verify`);
    }
    return result.ok ? 0 : 4;
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
