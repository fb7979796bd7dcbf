/**
 * A `tally` subcommand. Each lives in cli/commands/, is made by defineCommand
 * from its declaration (options, usage, prose) and is listed in tally.ts.
 * run() returns the process exit code; it writes to io, never to console.
 */
import { TallyError } from '../errors.js';
import { parseDeclared, type Parsed } from './args.js';
import { renderHelp } from './help.js';
import { COMMON_OPTIONS, type OptionTable } from './options.js';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Standard error is a terminal a person reads (a failure's JSON event is then left out unless asked for) */
  readonly errIsTerminal?: boolean;
}

/** A word after the command's path that selects what it does (tally pki init), with options of its own if it has any */
export interface SubcommandSpec {
  readonly name: string;
  /** Synopsis lines, each starting `tally <path> <name>` */
  readonly usage: readonly string[];
  /** Options only this subcommand takes, beside the command's own */
  readonly options?: OptionTable;
  readonly positionals?: boolean;
}

export interface CommandSpec {
  /** Words after `tally`: 'issue white' */
  readonly path: string;
  /** One line for `tally help` and the group lists */
  readonly summary: string;
  /** Synopsis lines, each starting `tally <path>`; generated from the options when absent */
  readonly usage?: readonly string[];
  /** What the command does, in prose */
  readonly about?: string;
  /** Every option it parses (beside --locale and --help, which all take) */
  readonly options: OptionTable;
  /** Takes plain arguments too (tally audit verify BUNDLE) */
  readonly positionals?: boolean;
  readonly subcommands?: readonly SubcommandSpec[];
  /** Full command lines that work as written */
  readonly examples?: readonly string[];
  /** Text shown after the options (a console's commands) */
  readonly epilogue?: string;
}

/** The parser a command gets: its declared table, or the table of one of its subcommands */
export interface CommandParser {
  parse(args: string[], subcommand?: string): Parsed['values'];
  parseWithPositionals(args: string[], subcommand?: string): Parsed;
}

export interface CliCommand {
  /** Words after `tally`, e.g. ['issue', 'white'] */
  readonly path: readonly string[];
  readonly summary: string;
  /** The declaration the help and the parser are made from (every command has one once all are converted) */
  readonly spec?: CommandSpec;
  /** Full help text shown by `tally <path> --help`, made from the spec */
  readonly help: string;
  run(args: string[], io: CliIo): Promise<number>;
}

/** The options a command (or one of its subcommands) parses: its own, the subcommand's, and the common ones */
export function optionsOf(spec: CommandSpec, subcommand?: string): OptionTable {
  if (subcommand === undefined) return { ...COMMON_OPTIONS, ...spec.options };
  const sub = spec.subcommands?.find((s) => s.name === subcommand);
  if (!sub) throw new TallyError('INTERNAL', `${spec.path}: no subcommand ${subcommand} declared`);
  return { ...COMMON_OPTIONS, ...spec.options, ...sub.options };
}

export function defineCommand(spec: CommandSpec, run: (args: string[], io: CliIo, cli: CommandParser) => Promise<number>): CliCommand {
  const parser: CommandParser = {
    parse: (args, subcommand) => parseDeclared(args, optionsOf(spec, subcommand), false).values,
    parseWithPositionals: (args, subcommand) => parseDeclared(args, optionsOf(spec, subcommand), true),
  };
  let help: string | undefined;
  const command: CliCommand = {
    path: spec.path.split(' '),
    summary: spec.summary,
    spec,
    get help() {
      return (help ??= renderHelp(spec));
    },
    async run(args, io) {
      if (args.includes('--help') || args.includes('-h')) {
        io.out(command.help);
        return 0;
      }
      return run(args, io, parser);
    },
  };
  return command;
}
