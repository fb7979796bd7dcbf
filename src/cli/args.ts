/** Argument helpers shared by the subcommands: node's parseArgs plus typed getters with clear errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { TallyError } from '../errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(args: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new TallyError('USAGE', (err as Error).message);
  }
}

/** As parse, for commands that also take plain arguments (tally audit verify BUNDLE) */
export function parseWithPositionals(args: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new TallyError('USAGE', (err as Error).message);
  }
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

let stdinLines: string[] | undefined;

/** The next line of standard input: several secrets given as "-" are read one line each, in the order asked */
function nextStdinLine(): string {
  stdinLines ??= readFileSync(0, 'utf8').split('\n');
  return stdinLines.shift()?.trim() ?? '';
}

/**
 * A PIN (or other secret) from --NAME, or from standard input when given as "-", so it stays out of the
 * process list. `whose` says which one to type ("the mother card's PIN"): asked on the terminal when
 * standard input is one, and named in the error when the line is missing.
 */
export function pin(values: Record<string, unknown>, name: string, whose = 'the PIN'): string {
  const v = required(values, name);
  if (v !== '-') return v;
  if (process.stdin.isTTY) process.stderr.write(`--${name} -: type ${whose}, then Enter: `);
  const line = nextStdinLine();
  if (!line) throw new TallyError('USAGE', `no line on standard input for --${name} (${whose})`);
  return line;
}
