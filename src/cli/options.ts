/**
 * One declaration per option: the parser's table (node's parseArgs) and the
 * help text (`tally X --help`, docs/cli.md) are both made from it. Options
 * that several commands take are declared once here as groups and spread
 * into each command's table.
 */
import type { ParseArgsConfig } from 'node:util';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** A string option's value as the help shows it: FILE, DIR, N, en|zh */
  readonly value?: string;
  readonly short?: string;
  readonly multiple?: boolean;
  /** Refused with USAGE "--NAME is required" when missing (checked before the command runs) */
  readonly required?: boolean;
  /** What applies when it is not given, as the help says it */
  readonly default?: string;
  /** One line, English (the CLI's help is not localised; its prompts and errors are, cliLocale.ts) */
  readonly description: string;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

type More = Partial<Pick<OptionSpec, 'short' | 'multiple' | 'required' | 'default'>>;

/** An option that takes a value: `--out FILE` */
export function valueOption(value: string, description: string, more: More = {}): OptionSpec {
  return { type: 'string', value, description, ...more };
}

/** A switch: `--json` */
export function flagOption(description: string, more: Pick<More, 'short'> = {}): OptionSpec {
  return { type: 'boolean', description, ...more };
}

/** The same option, required */
export function requiredOption(spec: OptionSpec): OptionSpec {
  return { ...spec, required: true };
}

/** Every command takes these (parse() adds them) */
export const COMMON_OPTIONS: OptionTable = {
  locale: valueOption('en|zh', "the language of the CLI's prompts and error line", { default: 'TALLY_LOCALE, else en' }),
  help: flagOption('this help', { short: 'h' }),
  'log-json': flagOption("write a failure's JSON cli-refused event at a terminal too (always written when standard error is not a terminal; or TALLY_LOG=json)"),
};

export function parseArgsOptions(table: OptionTable): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(table)) {
    options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) };
  }
  return options;
}

/** `--out FILE`, `-h, --help` */
export function optionSynopsis(name: string, spec: OptionSpec): string {
  const long = `--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
  return spec.short ? `-${spec.short}, ${long}` : long;
}

// ---- the groups several commands share ----

export const JSON_OPTION: OptionTable = { json: flagOption('print JSON instead of text') };

/** The server's store: tally server *, tally audit export */
export const STORE_OPTION: OptionTable = { store: valueOption('S', "the server's store: a SQLite file or postgres://...", { required: true }) };

/** The issuing station's registry: tally issue * */
export const REGISTRY_OPTION: OptionTable = { registry: valueOption('FILE', 'the issuing station registry', { default: './issuing.db' }) };

/** The root an auditor trusts: tally audit verify|compare, tally ledger verify */
export const TRUSTED_ROOT_OPTIONS: OptionTable = {
  root: valueOption('HEX', 'the investor root public key you trust (64 hex digits)'),
  'root-fingerprint': valueOption('HEX', 'or its SHA-256 fingerprint (printed by tally issue mother)'),
};

/** The server's investor root: tally server run, tally server sms send */
export const SERVER_ROOT_OPTIONS: OptionTable = {
  root: valueOption('HEX', 'the investor root public key (64 hex digits)'),
  'root-file': valueOption('FILE', 'or a file holding it'),
};

/** The mother card that signs a step, as a card file, and its PIN */
export const MOTHER_OPTIONS: OptionTable = {
  mother: valueOption('FILE', 'the mother card file (with --reader file)'),
  'mother-pin': valueOption('PIN', "the mother card's PIN (- reads a line of standard input)"),
};

/** A terminal's data directory or its configuration file: tally terminal * */
export const TERMINAL_DATA_OPTIONS: OptionTable = {
  data: valueOption('DIR', "the terminal's data directory"),
  config: valueOption('FILE', "or the terminal's configuration file (its data directory and settings)"),
};

/** Where the cards are, for the commands that read or write a card: tally issue *, tally terminal provision|swipe|clock-reset, ... */
export const CARD_READER_OPTIONS: OptionTable = {
  reader: valueOption('SPEC', 'where the cards are: file (card files), serial:PATH (the terminal board on a UART or pty), pcsc or pcsc:NAME (a PC/SC reader whose name contains NAME)', { default: 'file' }),
  'reader-config': valueOption('FILE', 'take reader.* from a terminal configuration file (TALLY_READER_BACKEND etc. apply as for the daemon)'),
  'card-timeout': valueOption('S', 'seconds to wait for each card', { default: '60' }),
  'signer-reader': valueOption('SPEC', 'a second reader for the card that signs (mother or white): it stays there while --reader takes the cards being written, so no card swaps'),
};
