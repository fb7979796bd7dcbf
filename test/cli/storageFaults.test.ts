/**
 * Audit finding 3 (the CLI half): every tally command that touches a terminal
 * database or the issuing registry, against a full disk (a 4 MiB tmpfs filled
 * to the last byte), a read-only folder (a read-only bind mount: root ignores
 * file modes), a corrupt database and a missing one. The full and read-only
 * folders are made in a private mount namespace of the command's own process
 * (unshare -m), so nothing is mounted for anyone else. Each command answers
 * with its stable code and the operator message in English and Chinese, exits
 * 1, 2 or 4, and never prints "internal error" or a stack.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, type ErrorName } from '../../src/errors.js';
import { makeCliLedger, type CliLedger } from '../support/cliLedger.js';

const TALLY = fileURLToPath(new URL('../../dist/src/cli/tally.js', import.meta.url));
const DRIVER = fileURLToPath(new URL('./storageFaultDriver.mjs', import.meta.url));

type Fault = 'full' | 'read-only' | 'corrupt' | 'missing';

interface Answer {
  args: string[];
  code: number;
  out: string;
  err: string;
}

let scratch: string;
let ledger: CliLedger;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'tally-faults-'));
  mkdirSync(join(scratch, 'made'));
  ledger = await makeCliLedger(join(scratch, 'made'), { swipes: 2 });
}, 120_000);
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The commands, each with its own data folder and registry under `root` (what the fault is applied to) */
function commands(root: string): string[][] {
  const data = join(root, 'terminal');
  const registry = join(root, 'issuing.db');
  const mother = join(ledger.dir, 'mother.json');
  return [
    ['terminal', 'status', '--data', data],
    ['terminal', 'swipe', '--data', data, '--card', ledger.unusedCards[0]!],
    ['terminal', 'clock-reset', '--data', data, '--mother', mother, '--pin', '123456'],
    ['terminal', 'trust-list', '--data', data, '--file', join(ledger.dir, 'mother.json')],
    ['ledger', 'verify', '--data', data],
    ['ledger', 'show', '--data', data],
    ['ledger', 'checkpoint', '--data', data, '--out', join(root, 'checkpoint.json')],
    ['audit', 'export', '--data', data, '--out', join(root, 'bundle.json')],
    ['issue', 'list', '--registry', registry],
    // last: in the missing folder it provisions a terminal (exit 0), which the commands above must not see
    ['terminal', 'provision', '--data', data, '--mother', mother, '--pin', '123456', '--terminal-id', 'T-CLI-2', '--clinic', 'C1', '--root-fingerprint', ledger.rootFingerprint],
  ];
}

/**
 * A fresh copy of the terminal folder and registry under `root`, as a stopped daemon leaves them: checkpointed,
 * no -wal or -shm file (a reader must then make the -shm, which is what a full disk or a read-only folder stops)
 */
function copyState(root: string): void {
  mkdirSync(root, { recursive: true });
  cpSync(ledger.data, join(root, 'terminal'), { recursive: true });
  cpSync(join(ledger.dir, 'issuing.db'), join(root, 'issuing.db'));
  for (const file of [join(root, 'terminal', 'terminal.db'), join(root, 'issuing.db')]) {
    const db = new Database(file);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    for (const side of ['-wal', '-shm']) expect(existsSync(file + side), file + side).toBe(false);
  }
}

function run(fault: Fault): Answer[] {
  const root = join(scratch, fault);
  const list = JSON.stringify(commands(root));
  const node = `'${process.execPath}' '${DRIVER}' '${TALLY}' '${list.replace(/'/g, "'\\''")}'`;
  let script: string;
  switch (fault) {
    case 'full': {
      const clean = join(scratch, 'clean');
      copyState(clean);
      mkdirSync(root, { recursive: true });
      // the copy fits, then the rest of the tmpfs is filled: dd stops at ENOSPC
      script = `mount -t tmpfs -o size=4m tmpfs '${root}' && cp -a '${clean}/terminal' '${clean}/issuing.db' '${root}/' && (dd if=/dev/zero of='${root}/fill' bs=4k 2>/dev/null; true) && exec ${node}`;
      break;
    }
    case 'read-only':
      copyState(root);
      script = `mount --bind '${root}' '${root}' && mount -o remount,ro,bind '${root}' && exec ${node}`;
      break;
    case 'corrupt': {
      copyState(root);
      for (const file of [join(root, 'terminal', 'terminal.db'), join(root, 'issuing.db')]) {
        const bytes = readFileSync(file);
        bytes.fill(0x5a, 0, 4096); // the header page: not a database any more
        writeFileSync(file, bytes);
      }
      script = `exec ${node}`;
      break;
    }
    case 'missing':
      mkdirSync(root, { recursive: true });
      script = `exec ${node}`;
      break;
  }
  const child = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', timeout: 120_000 });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout) as Answer[];
}

/** Every code name an answer names, as `[CODE 1234]` or `CODE 1234:` */
function codesIn(text: string): ErrorName[] {
  const found = new Set<ErrorName>();
  for (const match of text.matchAll(/\b([A-Z][A-Z0-9_]+) (\d{4})\b/g)) {
    const name = match[1] as ErrorName;
    if (ErrorCodes[name]?.code === Number(match[2])) found.add(name);
  }
  return [...found];
}

/** The code each command must give for the fault (the terminal database's, or the registry's for issue list) */
const EXPECTED: Record<Fault, { database: readonly ErrorName[]; missing?: readonly ErrorName[] }> = {
  full: { database: ['STORAGE_FULL'] },
  'read-only': { database: ['DATABASE_CANTOPEN', 'STORAGE_READ_ONLY'] },
  corrupt: { database: ['DATABASE_CORRUPT', 'DATABASE_UNREADABLE'] },
  missing: { database: ['NOT_PROVISIONED', 'DATABASE_CANTOPEN'] },
};

/** Commands whose answer is about something else than the database (a file they need first) */
const NOT_ABOUT_THE_DATABASE: Record<string, readonly ErrorName[]> = {
  // the checkpoint is a file beside the database; there is none in this folder
  'ledger checkpoint': ['USAGE'],
  // provisioning a folder that holds a terminal refuses before it writes
  'terminal provision': ['ALREADY_PROVISIONED'],
  // the file given is not a trust list
  'terminal trust-list': ['TRUST_LIST_INVALID'],
};

describe.each(['full', 'read-only', 'corrupt', 'missing'] as const)('every tally command against a %s database', (fault) => {
  let answers: Answer[];
  beforeAll(() => {
    answers = run(fault);
  }, 150_000);

  it('answers each with its code and both operator messages, exit 1, 2 or 4, never internal error or a stack', () => {
    expect(answers).toHaveLength(commands('x').length);
    for (const answer of answers) {
      const name = answer.args.slice(0, 2).join(' ');
      const text = `${answer.out}\n${answer.err}`;
      if (fault === 'missing' && name === 'terminal provision') {
        expect(answer.code, text).toBe(0); // an empty folder is where a terminal is provisioned
        continue;
      }
      expect(text, name).not.toMatch(/internal error/i);
      expect(text, name).not.toMatch(/\n\s+at .+:\d+:\d+/); // a stack frame
      expect(text, name).not.toMatch(/SqliteError|TypeError|RangeError/);
      expect([1, 2, 3, 4], `${name} exited ${answer.code}: ${text.slice(0, 2000)}`).toContain(answer.code);
      const codes = codesIn(text);
      expect(codes.length, `${name}: no code in ${text}`).toBeGreaterThan(0);
      const allowed = [...EXPECTED[fault].database, ...(NOT_ABOUT_THE_DATABASE[name] ?? [])];
      expect(allowed, `${name}: ${text}`).toEqual(expect.arrayContaining([codes[0]]));
      const code = codes[0]!;
      if (code !== 'USAGE') {
        expect(text, `${name}: English message`).toContain(ErrorCodes[code].en);
        expect(text, `${name}: Chinese message`).toContain(ErrorCodes[code].zh);
      }
    }
  });
});
