#!/usr/bin/env node
/**
 * `tally`: the one command line. A composition root: it may import any layer,
 * and nothing imports it.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isTallyError } from '../errors.js';
import type { CliCommand, CliIo } from './command.js';
import { cardNewCommand, cardShowCommand } from './commands/card.js';
import { demoCommand } from './commands/demo.js';
import { issueBatchCommand, issueListCommand, issueMotherCommand, issueRewriteCommand, issueWhiteCommand } from './commands/issue.js';
import { ledgerShowCommand, ledgerVerifyCommand } from './commands/ledger.js';
import { terminalProvisionCommand, terminalStatusCommand, terminalSwipeCommand } from './commands/terminal.js';
import { terminalRunCommand } from './commands/terminalRun.js';
import { serverReportCommand, serverRunCommand } from './commands/server.js';
import { simCardCommand } from './commands/simCard.js';
import { simFleetCommand } from './commands/simFleet.js';
import { simReaderCommand } from './commands/simReader.js';

const COMMANDS: CliCommand[] = [
  demoCommand,
  cardNewCommand,
  cardShowCommand,
  issueMotherCommand,
  issueWhiteCommand,
  issueBatchCommand,
  issueRewriteCommand,
  issueListCommand,
  terminalProvisionCommand,
  terminalRunCommand,
  terminalSwipeCommand,
  terminalStatusCommand,
  ledgerVerifyCommand,
  ledgerShowCommand,
  simReaderCommand,
  simCardCommand,
  simFleetCommand,
  serverRunCommand,
  serverReportCommand,
];

export function registerCommand(command: CliCommand): void {
  COMMANDS.push(command);
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  return [
    'tally: the tallystick card terminal tools',
    '',
    'usage: tally <command> [options]     tally <command> --help',
    '',
    ...COMMANDS.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

function find(args: string[]): { command: CliCommand; rest: string[] } | undefined {
  let best: CliCommand | undefined;
  for (const command of COMMANDS) {
    if (command.path.every((word, i) => args[i] === word) && (!best || command.path.length > best.path.length)) best = command;
  }
  return best && { command: best, rest: args.slice(best.path.length) };
}

export async function main(args: string[], io: CliIo): Promise<number> {
  if (args.length === 0 || args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out(overview());
    return args.length === 0 ? 2 : 0;
  }
  const found = find(args);
  if (!found) {
    const group = COMMANDS.filter((c) => c.path[0] === args[0]);
    if (group.length > 0) {
      const asked = args.includes('--help') || args.includes('-h');
      const print = asked ? io.out : io.err;
      const width = Math.max(...group.map((c) => c.path.join(' ').length));
      print(`tally ${args[0]}: choose one of`);
      for (const c of group) print(`  tally ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
      if (asked) return 0;
    } else {
      io.err(`tally: unknown command "${args.join(' ')}"\n\n${overview()}`);
    }
    return 2;
  }
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    io.out(found.command.help);
    return 0;
  }
  try {
    return await found.command.run(found.rest, io);
  } catch (err) {
    if (isTallyError(err)) {
      io.err(`tally ${found.command.path.join(' ')}: ${err.message} [${err.code} ${err.numericCode}]`);
      return err.code === 'USAGE' ? 2 : 1;
    }
    throw err;
  }
}

const isEntryPoint = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntryPoint) {
  // `tally ... | head` closes the pipe early: that is not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const io: CliIo = { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`) };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`tally: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
