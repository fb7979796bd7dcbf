/** Argument helpers shared by the subcommands: node's parseArgs plus typed getters with clear errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readSync } from 'node:fs';
import { TallyError } from '../errors.js';
import { prompt, setCliLocale } from './cliLocale.js';
import { parseArgsOptions, type OptionTable } from './options.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Every command takes --locale en|zh: the language of the CLI's prompts and error line (and of the terminal's messages where it has them) */
const LOCALE_OPTION: Options = { locale: { type: 'string' }, 'log-json': { type: 'boolean' } };

function takeLocale(values: Record<string, unknown>): void {
  const locale = values.locale;
  if (locale === undefined) return;
  if (locale !== 'en' && locale !== 'zh') throw new TallyError('USAGE', '--locale en or zh');
  setCliLocale(locale);
}

export function parse(args: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args, options: { ...LOCALE_OPTION, ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    takeLocale(values);
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof TallyError) throw err;
    throw new TallyError('USAGE', (err as Error).message);
  }
}

/** As parse, for commands that also take plain arguments (tally audit verify BUNDLE) */
export function parseWithPositionals(args: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...LOCALE_OPTION, ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    takeLocale(values);
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    if (err instanceof TallyError) throw err;
    throw new TallyError('USAGE', (err as Error).message);
  }
}

export interface Parsed {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
}

/** Parses with a declared table (options.ts; it holds --locale and --help), refusing what it does not declare and what it requires but misses */
export function parseDeclared(args: string[], table: OptionTable, allowPositionals: boolean): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseArgsOptions(table), allowPositionals, strict: true });
  } catch (err) {
    throw new TallyError('USAGE', (err as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  takeLocale(values);
  for (const [name, spec] of Object.entries(table)) if (spec.required) required(values, name);
  return { values, positionals: parsed.positionals };
}

export function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new TallyError('USAGE', `--${name} is required`);
  return v;
}

export function integer(values: Record<string, unknown>, name: string, fallback?: number): number {
  const v = values[name];
  if (v === undefined && fallback !== undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n)) throw new TallyError('USAGE', `--${name} must be a whole number`);
  return n;
}

let stdinBuffer = Buffer.alloc(0);
let stdinEnded = false;

/**
 * The next line of standard input: several secrets given as "-" are read one line each, in the order
 * asked. Reads only up to the line's end (a person types a PIN and Enter, no Ctrl-D), and waits on a
 * pipe whose writer has not written yet (a non-blocking descriptor answers EAGAIN).
 */
export function nextStdinLine(): string {
  const chunk = Buffer.alloc(256);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (!stdinBuffer.includes(0x0a) && !stdinEnded) {
    let n: number;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(pause, 0, 0, 20);
        continue;
      }
      if (code === 'EOF') n = 0;
      else throw err;
    }
    if (n === 0) stdinEnded = true;
    else stdinBuffer = Buffer.concat([stdinBuffer, chunk.subarray(0, n)]);
  }
  const at = stdinBuffer.indexOf(0x0a);
  const line = (at < 0 ? stdinBuffer : stdinBuffer.subarray(0, at)).toString('utf8');
  stdinBuffer = at < 0 ? Buffer.alloc(0) : stdinBuffer.subarray(at + 1);
  return line.trim();
}

/**
 * A PIN (or other secret) from --NAME, or from standard input when given as "-", so it stays out of the
 * process list. `whose` says which one to type ("the mother card's PIN"): asked on the terminal when
 * standard input is one, and named in the error when the line is missing.
 */
export function pin(values: Record<string, unknown>, name: string, whose = 'the PIN'): string {
  const v = required(values, name);
  if (v !== '-') return v;
  if (process.stdin.isTTY) process.stderr.write(prompt({ kind: 'type', option: name, whose }));
  const line = nextStdinLine();
  if (!line) throw new TallyError('USAGE', `no line on standard input for --${name} (${whose})`);
  return line;
}
