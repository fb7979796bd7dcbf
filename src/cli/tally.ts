#!/usr/bin/env node
/**
 * `tally`: the one command line. A composition root: it may import any layer,
 * and nothing imports it.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isTallyError, operatorMessage, storageErrorOf, type Locale, type TallyError } from '../errors.js';
import { cliLocale } from './cliLocale.js';
import type { CliCommand, CliIo } from './command.js';

/**
 * Every command, loaded only when it runs: the daemon must not pay for the
 * server's PostgreSQL driver or the demo's broker (start-up time, memory).
 */
interface CommandEntry {
  readonly path: readonly string[];
  readonly load: () => Promise<CliCommand>;
}

const entry = (path: string, load: () => Promise<CliCommand>): CommandEntry => ({ path: path.split(' '), load });

const COMMANDS: CommandEntry[] = [
  entry('demo', async () => (await import('./commands/demo.js')).demoCommand),
  entry('card new', async () => (await import('./commands/card.js')).cardNewCommand),
  entry('card show', async () => (await import('./commands/card.js')).cardShowCommand),
  entry('issue mother', async () => (await import('./commands/issue.js')).issueMotherCommand),
  entry('issue white', async () => (await import('./commands/issue.js')).issueWhiteCommand),
  entry('issue batch', async () => (await import('./commands/issue.js')).issueBatchCommand),
  entry('issue rewrite', async () => (await import('./commands/issue.js')).issueRewriteCommand),
  entry('issue list', async () => (await import('./commands/issue.js')).issueListCommand),
  entry('issue certify-station', async () => (await import('./commands/issue.js')).issueCertifyStationCommand),
  entry('issue certify-ca', async () => (await import('./commands/issue.js')).issueCertifyCaCommand),
  entry('issue export', async () => (await import('./commands/issue.js')).issueExportCommand),
  entry('terminal provision', async () => (await import('./commands/terminal.js')).terminalProvisionCommand),
  entry('terminal enrol', async () => (await import('./commands/terminal.js')).terminalEnrolCommand),
  entry('terminal run', async () => (await import('./commands/terminalRun.js')).terminalRunCommand),
  entry('terminal swipe', async () => (await import('./commands/terminal.js')).terminalSwipeCommand),
  entry('terminal status', async () => (await import('./commands/terminal.js')).terminalStatusCommand),
  entry('terminal clock-reset', async () => (await import('./commands/terminal.js')).terminalClockResetCommand),
  entry('terminal insurance', async () => (await import('./commands/terminalInsurance.js')).terminalInsuranceCommand),
  entry('terminal trust-list', async () => (await import('./commands/terminalTrustList.js')).terminalTrustListCommand),
  entry('ledger verify', async () => (await import('./commands/ledger.js')).ledgerVerifyCommand),
  entry('ledger show', async () => (await import('./commands/ledger.js')).ledgerShowCommand),
  entry('ledger checkpoint', async () => (await import('./commands/ledger.js')).ledgerCheckpointCommand),
  entry('audit export', async () => (await import('./commands/audit.js')).auditExportCommand),
  entry('audit verify', async () => (await import('./commands/audit.js')).auditVerifyCommand),
  entry('audit compare', async () => (await import('./commands/audit.js')).auditCompareCommand),
  entry('sim reader', async () => (await import('./commands/simReader.js')).simReaderCommand),
  entry('sim scanner', async () => (await import('./commands/simScanner.js')).simScannerCommand),
  entry('sim card', async () => (await import('./commands/simCard.js')).simCardCommand),
  entry('sim fleet', async () => (await import('./commands/simFleet.js')).simFleetCommand),
  entry('sim insurance', async () => (await import('./commands/simInsurance.js')).simInsuranceCommand),
  entry('sim his', async () => (await import('./commands/simHis.js')).simHisCommand),
  entry('sim modem', async () => (await import('./commands/simModem.js')).simModemCommand),
  entry('gateway run', async () => (await import('./commands/gateway.js')).gatewayRunCommand),
  entry('gateway diode-receive', async () => (await import('./commands/gateway.js')).gatewayDiodeReceiveCommand),
  entry('gateway archive', async () => (await import('./commands/gateway.js')).gatewayArchiveCommand),
  entry('gateway dlq', async () => (await import('./commands/gateway.js')).gatewayDlqCommand),
  entry('gateway department', async () => (await import('./commands/gateway.js')).gatewayDepartmentCommand),
  entry('pki', async () => (await import('./commands/pki.js')).pkiCommand),
  entry('server run', async () => (await import('./commands/server.js')).serverRunCommand),
  entry('server certify-key', async () => (await import('./commands/serverKey.js')).serverCertifyKeyCommand),
  entry('server report', async () => (await import('./commands/server.js')).serverReportCommand),
  entry('server sms', async () => (await import('./commands/serverSms.js')).serverSmsCommand),
  entry('server registry', async () => (await import('./commands/server.js')).serverRegistryCommand),
  entry('server user', async () => (await import('./commands/serverUser.js')).serverUserCommand),
  entry('server agent', async () => (await import('./commands/serverUser.js')).serverAgentCommand),
  entry('server voucher', async () => (await import('./commands/serverVoucher.js')).serverVoucherCommand),
];

export function registerCommand(command: CliCommand): void {
  COMMANDS.push({ path: command.path, load: async () => command });
}

/** Every command, loaded (for the overview, docs/cli.md and the tests) */
export async function loadCommands(): Promise<CliCommand[]> {
  return Promise.all(COMMANDS.map((c) => c.load()));
}

async function overview(): Promise<string> {
  const commands = await loadCommands();
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return [
    'tally: the tallystick card terminal tools',
    '',
    'usage: tally <command> [options]     tally <command> --help',
    '',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

function find(args: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  let best: CommandEntry | undefined;
  for (const command of COMMANDS) {
    if (command.path.every((word, i) => args[i] === word) && (!best || command.path.length > best.path.length)) best = command;
  }
  return best && { entry: best, rest: args.slice(best.path.length) };
}

export async function main(args: string[], io: CliIo): Promise<number> {
  if (args.length === 0 || args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out(await overview());
    return args.length === 0 ? 2 : 0;
  }
  const found = find(args);
  if (!found) {
    const group = await Promise.all(COMMANDS.filter((c) => c.path[0] === args[0]).map((c) => c.load()));
    if (group.length > 0) {
      const asked = args.includes('--help') || args.includes('-h');
      const print = asked ? io.out : io.err;
      const width = Math.max(...group.map((c) => c.path.join(' ').length));
      print(`tally ${args[0]}: choose one of`);
      for (const c of group) print(`  tally ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
      if (asked) return 0;
    } else {
      io.err(`tally: unknown command "${args.join(' ')}"\n\n${await overview()}`);
    }
    return 2;
  }
  const command = await found.entry.load();
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    io.out(command.help);
    return 0;
  }
  try {
    return await command.run(found.rest, io);
  } catch (thrown) {
    // a storage failure anywhere below (SQLite or the file system) is answered with its code, never as internal
    const err = storageErrorOf(thrown, 'storage') ?? thrown;
    if (isTallyError(err)) {
      const name = `tally ${command.path.join(' ')}`;
      const locale = cliLocale();
      const [line, ...more] = errorLine(err, locale).split('\n');
      io.err([`${name}: ${line} [${err.code} ${err.numericCode}]`, ...more].join('\n'));
      if (err.code === 'USAGE') return 2;
      // the operator's message in the other language too, and the structured event for the log
      io.err(`${name}: ${locale === 'zh' ? err.message : err.operatorMessage('zh')} [${err.code} ${err.numericCode}]`);
      if (wantsRefusalEvent(found.rest, io)) io.err(JSON.stringify({ level: 'error', event: 'cli-refused', command: command.path.join(' '), code: err.code, numericCode: err.numericCode, detail: err.detail, ...('storageCode' in err.context ? { storageCode: err.context.storageCode } : {}) }));
      return 1;
    }
    throw thrown;
  }
}

/**
 * A coded failure's JSON event goes to the log: standard error when it is not a terminal (journald,
 * a pipe, a file), which is where logs are read. A person at a terminal reads the two lines above it;
 * --log-json or TALLY_LOG=json asks for the event there too.
 */
export function wantsRefusalEvent(args: readonly string[], io: CliIo): boolean {
  return io.errIsTerminal !== true || args.includes('--log-json') || process.env.TALLY_LOG === 'json';
}

/**
 * The error line: in English the code's message and the case's detail; in Chinese the code's
 * message and the detail where it is translated (PIN tries), else the detail on its own line
 * (file names, fields: not words to translate).
 */
export function errorLine(err: TallyError, locale: Locale): string {
  if (locale === 'en') return err.message;
  const zh = operatorMessage(err.code, 'zh');
  const detailZh = typeof err.context.detailZh === 'string' ? err.context.detailZh : undefined;
  if (detailZh) return `${zh}（${detailZh}）`;
  return err.detail ? `${zh}\n  详情：${err.detail}` : zh;
}

const isEntryPoint = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntryPoint) {
  // `tally ... | head` closes the pipe early: that is not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const io: CliIo = { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`), errIsTerminal: process.stderr.isTTY === true };
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
