/**
 * The line console of the simulator commands (tally sim reader, tally sim card):
 * one word and its argument a line; blank lines, help, quit/exit and unknown
 * words handled the same way everywhere; an error is printed, not fatal.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { CliIo } from './command.js';

/** A console verb: returns false to end the console */
export type ConsoleVerb = (arg: string) => boolean | void | Promise<boolean | void>;

export function consoleCommand(verbs: Record<string, ConsoleVerb>, help: string, io: CliIo): (line: string) => Promise<boolean> {
  return async (line) => {
    const [word, ...rest] = line.trim().split(/\s+/);
    if (!word) return true;
    if (word === 'quit' || word === 'exit') return false;
    if (word === 'help') {
      io.out(help);
      return true;
    }
    const verb = verbs[word];
    if (!verb) {
      io.err(`unknown command ${word}; type help`);
      return true;
    }
    try {
      return (await verb(rest.join(' '))) !== false;
    } catch (err) {
      io.err((err as Error).message);
      return true;
    }
  };
}

/** Reads console lines until quit or the end of input */
export async function readConsole(command: (line: string) => boolean | Promise<boolean>, input: Readable): Promise<void> {
  const lines = createInterface({ input, terminal: false });
  for await (const line of lines) {
    if (!(await command(line))) break;
  }
  lines.close();
}

/** Runs a simulator's console on standard input until quit, end of input or SIGINT/SIGTERM, then stops it */
export async function runConsoleOnStdin(command: (line: string) => boolean | Promise<boolean>, stop: () => Promise<void>): Promise<void> {
  const stopOnSignal = () => process.stdin.destroy();
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    await readConsole(command, process.stdin);
  } finally {
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
    await stop();
  }
}
