/**
 * A `tally` subcommand. Each lives in cli/commands/ and is listed in tally.ts.
 * run() returns the process exit code; it writes to io, never to console.
 */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export interface CliCommand {
  /** Words after `tally`, e.g. ['issue', 'white'] */
  readonly path: readonly string[];
  readonly summary: string;
  /** Full help text shown by `tally <path> --help` */
  readonly help: string;
  run(args: string[], io: CliIo): Promise<number>;
}
