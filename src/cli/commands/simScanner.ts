/**
 * `tally sim scanner`: a 2D scanner in serial mode (USB CDC ACM), simulated.
 * On a serial device or on a fresh socat pty pair whose daemon-side path it
 * prints (give it to the daemon as reader.scanner.path), it sends each code as
 * a real scanner does: the AIM identifier ]Q1, the text, CR LF.
 */
import { readFileSync } from 'node:fs';
import { TallyError } from '../../errors.js';
import { SimulatedScanner } from '../../sim/SimulatedScanner.js';
import { openSimulatorLine } from '../../transports/PtyPair.js';
import { defineCommand, type CliIo } from '../command.js';
import { valueOption } from '../options.js';
import { consoleCommand, runConsoleOnStdin } from '../console.js';

const CONSOLE_HELP = `commands:
  scan TEXT          send TEXT as a QR code (]Q1 TEXT CR LF); the rest of the line as it is, spaces too
  scan-file FILE     send the first line of FILE as a QR code (what a decoder wrote)
  barcode TEXT       send TEXT as a Code 128 barcode (]C0): the terminal refuses it
  no-aim TEXT        send TEXT without an AIM identifier (a scanner set up wrongly)
  split on|off       write each code in 64-byte pieces, as USB packets arrive
  quit               stop (a pty pair made here is removed)`;

export interface SimScannerHandle {
  readonly scanner: SimulatedScanner;
  /** The path the daemon opens (reader.scanner.path) */
  readonly daemonPath: string;
  command(line: string): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startSimScanner(options: { device?: string }, io: CliIo): Promise<SimScannerHandle> {
  const line = await openSimulatorLine(options.device);
  const { daemonPath } = line;
  const scanner = new SimulatedScanner(line.transport);
  const verbs = consoleCommand(
    {
      'scan-file': async (arg) => {
        if (!arg) throw new TallyError('USAGE', 'scan-file FILE');
        const text = readFileSync(arg, 'utf8').split(/\r?\n/)[0] ?? '';
        await scanner.scan(text);
        io.out(`scanned ${text.length} characters from ${arg}`);
      },
      barcode: async (arg) => {
        await scanner.scan(arg, { symbology: ']C0' });
        io.out('barcode sent');
      },
      'no-aim': async (arg) => {
        await scanner.scan(arg, { symbology: null });
        io.out('sent without an AIM identifier');
      },
      split: (arg) => {
        scanner.splitWrites = arg === 'on';
        io.out(`split writes ${scanner.splitWrites ? 'on' : 'off'}`);
      },
    },
    CONSOLE_HELP,
    io,
  );
  return {
    scanner,
    daemonPath,
    // `scan` takes the rest of the line byte for byte: Base45 holds runs of spaces the console would fold
    async command(line) {
      const exact = /^\s*scan (.*)$/.exec(line.replace(/\r?\n$/, ''));
      if (exact) {
        await scanner.scan(exact[1]!);
        io.out(`scanned ${exact[1]!.length} characters`);
        return true;
      }
      return verbs(line);
    },
    stop: () => line.stop(),
  };
}

export const simScannerCommand = defineCommand(
  {
    path: 'sim scanner',
    summary: 'run a simulated QR scanner in serial mode (CDC ACM, AIM ]Q1) on a serial line or a new pty pair',
    about: `Behaves like a 2D scanner set to serial (CDC ACM) mode with AIM symbology
identifiers on: each code goes out as ]Q1, the text, CR LF. Give the printed
path to the terminal daemon as reader.scanner.path (TALLY_READER_SCANNER_PATH).`,
    options: { device: valueOption('PATH', 'open this serial device instead of making a socat pty pair') },
    epilogue: `Then type commands on standard input:

${CONSOLE_HELP}`,
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const handle = await startSimScanner(typeof values.device === 'string' ? { device: values.device } : {}, io);
    io.out(`simulated QR scanner running; the daemon opens: ${handle.daemonPath}`);
    io.out('type help for commands');
    await runConsoleOnStdin(handle.command, () => handle.stop());
    return 0;
  },
);
