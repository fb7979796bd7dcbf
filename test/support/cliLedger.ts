/**
 * A real terminal ledger made the way an operator makes one: the tally CLI
 * (in process) issues a mother, white and batch card, provisions a terminal,
 * loads the batch and swipes one-time cards. For the verifiers' tests.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { main } from '../../src/cli/tally.js';

export async function tally(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

export interface CliLedger {
  readonly dir: string;
  readonly data: string;
  readonly db: string;
  readonly rootHex: string;
  readonly rootFingerprint: string;
  /** The one-time card files not swiped yet */
  readonly unusedCards: string[];
}

async function ok(...args: string[]): Promise<string> {
  const r = await tally(...args);
  if (r.code !== 0) throw new Error(`tally ${args.slice(0, 2).join(' ')} exited ${r.code}: ${r.err || r.out}`);
  return r.out;
}

/** dir: an empty scratch folder; swipes: how many one-time cards to use (of count) */
export async function makeCliLedger(dir: string, options: { count?: number; swipes?: number; terminalId?: string } = {}): Promise<CliLedger> {
  const count = options.count ?? 8;
  const reg = ['--registry', join(dir, 'issuing.db')];
  const mother = await ok('issue', 'mother', '--card', join(dir, 'mother.json'), '--pin', '123456', '--investor', 'Acme Capital', ...reg);
  const rootFingerprint = /fingerprint ([0-9a-f]{64})/.exec(mother)![1]!;
  await ok('issue', 'white', '--mother', join(dir, 'mother.json'), '--mother-pin', '123456', '--card', join(dir, 'white.json'), '--pin', '4321', '--quota', '2', ...reg);
  await ok('issue', 'batch', '--white', join(dir, 'white.json'), '--white-pin', '4321', '--card', join(dir, 'batch.json'), '--clinic', 'C1', '--count', String(count), '--out-dir', join(dir, 'cards'), ...reg);
  const data = join(dir, 'terminal');
  await ok('terminal', 'provision', '--data', data, '--mother', join(dir, 'mother.json'), '--pin', '123456', '--terminal-id', options.terminalId ?? 'T-CLI-1', '--clinic', 'C1', '--root-fingerprint', rootFingerprint);
  await ok('terminal', 'swipe', '--data', data, '--card', join(dir, 'batch.json'));
  const cards = readdirSync(join(dir, 'cards')).sort().map((f) => join(dir, 'cards', f));
  const swipes = options.swipes ?? 5;
  for (const card of cards.slice(0, swipes)) await ok('terminal', 'swipe', '--data', data, '--card', card);
  const db = join(data, 'terminal.db');
  const handle = new Database(db, { readonly: true });
  const root = handle.prepare<[], { value: Buffer }>("SELECT value FROM meta WHERE key = 'root_public_key'").get()!;
  handle.close();
  return { dir, data, db, rootHex: root.value.toString('hex'), rootFingerprint, unusedCards: cards.slice(swipes) };
}
