import type { TerminalSmsStatus } from '../../daemon/startSms.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, operatorMessage, TallyError } from '../../errors.js';
import { loadTerminalConfig } from '../../config/terminalConfig.js';
import { queryStatus } from '../../daemon/StatusServer.js';
import { VERSION } from '../../daemon/runTerminal.js';
import { Ledger } from '../../ledger/Ledger.js';
import { Terminal, terminalStatus, type TerminalStatus } from '../../terminal/Terminal.js';
import { systemClock } from '../../util/clock.js';
import { pin, required } from '../args.js';
import { readerSpecFrom, withCardSource } from '../cardSource.js';
import { defineCommand } from '../command.js';
import { CARD_READER_OPTIONS, flagOption, JSON_OPTION, MOTHER_OPTIONS, TERMINAL_DATA_OPTIONS, valueOption } from '../options.js';
import { enrolWithToken, prepareTerminalTls, reenrol, terminalTlsPaths } from '../../pki/terminalTls.js';

/**
 * The daemon owns the terminal's reader and ledger while it runs: a tool on
 * the same data folder is refused. A daemon on another data folder that holds
 * the reader the tool names is refused when the reader is opened (cardSource).
 */
async function refuseWhileDaemonRuns(values: Record<string, unknown>, dataDir: string): Promise<void> {
  if (readerSpecFrom(values).backend === 'file') return;
  const live = (await queryStatus(join(dataDir, 'status.sock'), 500)) as { pid?: number } | undefined;
  if (live) throw new TallyError('READER_IN_USE', `the terminal daemon runs on ${dataDir}${live.pid ? ` (pid ${live.pid})` : ''}: stop it first (systemctl stop tallystick-terminal)`);
}

export const terminalProvisionCommand = defineCommand(
  {
    path: 'terminal provision',
    summary: 'factory provisioning of a terminal with the mother card',
    usage: ['tally terminal provision --data DIR (--mother FILE | --reader SPEC) --pin PIN --terminal-id ID --clinic CODE [--root-fingerprint HEX]'],
    about: `The terminal makes its device key; the mother card (after its PIN) signs the
terminal's certificate; the investor's root public key becomes the terminal's
trust anchor. The PIN is used once and never stored. The terminal also makes
its TLS key and a certificate request (DATA/tls/key.pem, csr.pem): sign it at
the factory (tally pki sign) or enrol online (tally terminal enrol).`,
    options: {
      data: valueOption('DIR', "the terminal's data directory", { required: true }),
      mother: MOTHER_OPTIONS.mother!,
      pin: valueOption('PIN', "the MOTHER card's PIN (- reads it from standard input)", { required: true }),
      'terminal-id': valueOption('ID', "the terminal's id, in its certificate", { required: true }),
      clinic: valueOption('CODE', 'the clinic the terminal serves, in its certificate', { required: true }),
      'root-fingerprint': valueOption('HEX', 'refuse any mother card whose root key differs'),
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const request = {
      terminalId: required(values, 'terminal-id'),
      clinicCode: required(values, 'clinic'),
      pin: pin(values, 'pin', "the mother card's PIN"),
      ...(typeof values['root-fingerprint'] === 'string' ? { expectedRootFingerprint: values['root-fingerprint'] } : {}),
    };
    await refuseWhileDaemonRuns(values, required(values, 'data'));
    const terminal = Terminal.open({ dataDir: required(values, 'data') });
    try {
      if (terminal.identity()) throw new TallyError('ALREADY_PROVISIONED', required(values, 'data'));
      const result = await withCardSource(values, io, async (source) =>
        terminal.provision(await source.card({ name: 'the mother card', signer: true, ...(typeof values.mother === 'string' ? { file: values.mother } : {}), fileOption: 'mother' }), request),
      );
      io.out(`terminal ${result.certificate.terminalId} provisioned for clinic ${result.certificate.clinicCode}`);
      io.out(`trust anchor: root ${result.rootFingerprint}`);
      const dataDir = required(values, 'data');
      const tls = prepareTerminalTls(dataDir, result.certificate.terminalId);
      io.out(`TLS key made on the terminal (it never leaves it); certificate request ${tls.csrPath}`);
      io.out(`next: at the factory  tally pki sign --dir PKI --csr ${tls.csrPath} --terminal-id ${result.certificate.terminalId} --out ${terminalTlsPaths(dataDir).cert}`);
      io.out(`  or online           tally terminal enrol --data ${dataDir} --server https://SERVER:PORT --token -`);
      return 0;
    } finally {
      terminal.close();
    }
  },
);

export const terminalEnrolCommand = defineCommand(
  {
    path: 'terminal enrol',
    summary: "get the terminal's TLS certificate from the server (EST) with a one-time token, or renew it",
    usage: ['tally terminal enrol --data DIR --server https://HOST:PORT --token TOKEN', 'tally terminal enrol --data DIR --server https://HOST:PORT --renew'],
    about: `Fetches the TLS CA and the mother card's record for it from the server
(/.well-known/est/cacerts, ca-record) and keeps them only if the record
verifies with this terminal's investor root; then sends the request made at
provisioning (simpleenroll, authenticated by the one-time token from tally pki
token) and writes DATA/tls/cert.pem. --renew makes a new key and re-enrols with
the current certificate (the daemon does this by itself with sync.enrol.url).`,
    options: {
      data: valueOption('DIR', "the terminal's data directory", { required: true }),
      server: valueOption('URL', "the server's EST address, https://HOST:PORT", { required: true }),
      token: valueOption('TOKEN', 'the one-time enrolment token (- reads it from standard input)'),
      renew: flagOption('make a new key and re-enrol with the current certificate instead'),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const dataDir = required(values, 'data');
    if (!existsSync(join(dataDir, 'terminal.db'))) throw new TallyError('NOT_PROVISIONED', dataDir);
    const terminal = Terminal.open({ dataDir });
    const identity = terminal.identity();
    terminal.close();
    if (!identity) throw new TallyError('NOT_PROVISIONED', dataDir);
    const serverUrl = required(values, 'server');
    if (values.renew) {
      const renewed = await reenrol({ serverUrl, dataDir, terminalId: identity.terminalId });
      io.out(`certificate renewed: valid until ${renewed.notAfter} (${renewed.daysLeft} days)`);
      return 0;
    }
    const token = pin(values, 'token', 'the one-time enrolment token (tally pki token)');
    const got = await enrolWithToken({ serverUrl, dataDir, terminalId: identity.terminalId, token, rootPublicKey: identity.rootPublicKey });
    io.out(`TLS CA ${got.caFingerprint.slice(0, 16)}... certified by the investor root`);
    io.out(`certificate for ${identity.terminalId} written to ${terminalTlsPaths(dataDir).cert}: valid until ${got.notAfter} (${got.daysLeft} days)`);
    return 0;
  },
);

export const terminalSwipeCommand = defineCommand(
  {
    path: 'terminal swipe',
    summary: 'present one card (a card file, or the card in a reader) to a terminal',
    usage: ['tally terminal swipe --data DIR (--card FILE | --reader SPEC) [--locale en|zh]'],
    about: `Batch card: loads the batch. One-time card: deducts it. Prints the operator
message the terminal would display; exits 0 when granted, 3 when refused.
The daemon (tally terminal run) must not be running on the same reader.`,
    options: {
      data: valueOption('DIR', "the terminal's data directory", { required: true }),
      card: valueOption('FILE', 'the card file to swipe (with --reader file)'),
      locale: valueOption('en|zh', "the language of the terminal's message and of the CLI's error line", { default: 'TALLY_LOCALE, else en' }),
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const locale = values.locale === 'zh' ? 'zh' : 'en';
    const dataDir = required(values, 'data');
    if (!existsSync(join(dataDir, 'terminal.db'))) throw new TallyError('NOT_PROVISIONED', dataDir);
    await refuseWhileDaemonRuns(values, dataDir);
    const terminal = Terminal.open({ dataDir, locale });
    try {
      const outcome = await withCardSource(values, io, async (source) => {
        const result = await terminal.handleCard(await source.card({ name: 'the card to swipe', ...(typeof values.card === 'string' ? { file: values.card } : {}), fileOption: 'card' }));
        // on the terminal board the operator reads the outcome where the daemon would show it
        await source.show({ lines: [result.message], tone: result.ok ? 'ok' : 'refused', led: result.ok ? 'ok' : 'refused' });
        return result;
      });
      if (outcome.ok) {
        io.out(outcome.message);
        return 0;
      }
      io.out(`${outcome.message} [${outcome.code}]`);
      // the case's particulars only (the operator message above says the reason), then the code's number
      // with the operator message in the other language
      if (outcome.detail) io.err(outcome.detail);
      io.err(`${outcome.code} ${ErrorCodes[outcome.code].code}: ${operatorMessage(outcome.code, locale === 'en' ? 'zh' : 'en')}`);
      return 3;
    } finally {
      terminal.close();
    }
  },
);

/** A duration for people: "56 years", "3 min", "0.4 s" */
function humanDuration(ms: number): string {
  const a = Math.abs(ms);
  const units: [number, string][] = [[365.25 * 86_400_000, 'years'], [86_400_000, 'days'], [3_600_000, 'h'], [60_000, 'min'], [1000, 's']];
  for (const [size, name] of units) if (a >= size) return `${Number((a / size).toFixed(1))} ${name}`;
  return `${a} ms`;
}

function formatClock(s: TerminalStatus): string[] {
  const state = (s.clock as TerminalStatus['clock'] | undefined)?.state;
  const why = state === 'ahead' ? ': it jumped far ahead of the high-water mark, not taken' : state === 'behind' ? ': behind the high-water mark' : state === 'before-floor' ? ': before 2026 (RTC lost power?)' : '';
  const trust = s.clockTrusted ? 'trusted' : `NOT trusted${why} (entries are marked)`;
  // a status from an older daemon has no clock section
  const c = s.clock as TerminalStatus['clock'] | undefined;
  if (!c) return [`clock         ${trust}`];
  const source = c.source === 'server' ? `server time since ${c.serverTimeAt ?? '?'}` : 'local clock (no server time since start)';
  return [
    `clock         ${c.now}, ${trust}, ${source}`,
    ...(c.offsetMs !== undefined ? [`local clock   ${c.localClock} (${humanDuration(c.offsetMs)} ${c.offsetMs >= 0 ? 'behind' : 'ahead of'} the server's time; tallystick never sets it)`] : []),
    `high-water    ${c.highWaterMark} (time never goes back past it${c.trustedUntil ? `; a local clock past ${c.trustedUntil} is a jump, not taken` : ''})`,
    ...(c.lastEvent ? [`clock event   ${c.lastEvent.type} at seq ${c.lastEvent.seq}, ${c.lastEvent.time}: ${c.lastEvent.detail}`] : []),
    ...(c.state === 'ahead' || c.state === 'behind' ? ['              recovery: the daemon takes the server\'s signed time when it syncs, or tally terminal clock-reset with the mother card'] : []),
  ];
}

export function formatStatus(s: TerminalStatus & Record<string, unknown>): string[] {
  const reader = s.reader as { backend: string; name: string; state: string; cardPresent: boolean } | undefined;
  const lastSwipe = s.lastSwipe as { at: string; ok: boolean; code?: string } | undefined;
  const sync = s.sync as { enabled: boolean; connected?: boolean; lastAckAt?: string } | undefined;
  const sms = s.sms as TerminalSmsStatus | undefined;
  const certificate = s.certificate as { notAfter?: string; daysLeft?: number; error?: string } | undefined;
  const lines = [
    `daemon        ${String(s.daemon ?? 'not running')}${s.version ? `, version ${String(s.version)}` : ''}${s.uptimeSeconds !== undefined ? `, up ${String(s.uptimeSeconds)} s` : ''}`,
    ...(reader ? [`reader        ${reader.name} (${reader.backend}): ${reader.state}, ${reader.cardPresent ? 'card present' : 'no card'}`] : []),
    ...(lastSwipe ? [`last swipe    ${lastSwipe.at} ${lastSwipe.ok ? 'granted' : `refused ${lastSwipe.code ?? ''}`}`] : []),
    `terminal      ${s.provisioned ? `${s.terminalId} at clinic ${s.clinicCode}` : 'not provisioned'}`,
    ...(sync ? [`sync          ${sync.enabled ? `${sync.connected ? 'connected' : 'offline'}, last server ack ${sync.lastAckAt ?? 'none since start'}` : 'disabled'}`] : []),
    ...(sms
      ? [
          `sms           modem ${sms.modem}${sms.modemProblem ? ` (${sms.modemProblem})` : ''}, data link ${sms.dataLinkDown ? 'down' : 'up'}, ${sms.sentToday} sent today, last ${sms.lastSentAt ?? 'none since start'}` +
            (sms.lastCommand ? `, last command ${sms.lastCommand.applied ? 'applied' : `refused ${sms.lastCommand.code ?? ''}`} ${sms.lastCommand.at}` : ''),
        ]
      : []),
    ...(certificate ? [`certificate   ${certificate.error ? `unreadable: ${certificate.error}` : `valid until ${certificate.notAfter} (${certificate.daysLeft} days)`}`] : []),
    ...(s.rootFingerprint ? [`trust anchor  ${s.rootFingerprint.slice(0, 32)}...`] : []),
    `ledger        ${s.lastSeq} entries`,
    `outbox        ${s.outboxDepth} entries waiting for the server`,
    `open uses     ${s.openUses}`,
    ...(s.unrecordedDeviceEvents ? [`NOT RECORDED  ${s.unrecordedDeviceEvents} device session event(s): storage fault; one-time cards are refused until the ledger takes them (retried)`] : []),
    ...formatClock(s),
  ];
  for (const b of s.batches) lines.push(`batch ${String(b.batchNo).padEnd(7)} ${b.used}/${b.count} used, ${b.remaining} left, valid until ${new Date(b.validUntil * 1000).toISOString().slice(0, 10)}`);
  if (s.batches.length === 0) lines.push('batch         none loaded');
  const refusals = Object.entries(s.refusals);
  if (refusals.length > 0) lines.push(`refusals      ${refusals.map(([code, n]) => `${code} ${n}`).join(', ')}`);
  return lines;
}

export const terminalStatusCommand = defineCommand(
  {
    path: 'terminal status',
    summary: "a terminal's state: reader, batch, uses left, outbox, clock, version",
    usage: ['tally terminal status (--data DIR | --config FILE) [--json]'],
    about: `Asks the running daemon through its status socket (reader and card state,
link statistics, last swipe); when no daemon runs, reads the ledger read-only.`,
    options: { ...TERMINAL_DATA_OPTIONS, ...JSON_OPTION },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    let dataDir: string;
    let socket: string;
    if (typeof values.config === 'string') {
      const { config } = loadTerminalConfig(values.config);
      dataDir = config.dataDir;
      socket = config.statusSocket;
    } else {
      dataDir = required(values, 'data');
      socket = join(dataDir, 'status.sock');
    }
    const live = (await queryStatus(socket)) as (TerminalStatus & Record<string, unknown>) | undefined;
    let status: TerminalStatus & Record<string, unknown>;
    if (live) {
      status = { ...live, daemon: 'running' };
    } else {
      if (!existsSync(join(dataDir, 'terminal.db'))) throw new TallyError('NOT_PROVISIONED', dataDir);
      const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
      try {
        status = { ...terminalStatus(ledger), daemon: 'not running', version: VERSION };
      } finally {
        ledger.close();
      }
    }
    if (values.json) io.out(JSON.stringify(status, null, 2));
    else for (const line of formatStatus(status)) io.out(line);
    return 0;
  },
);

export const terminalClockResetCommand = defineCommand(
  {
    path: 'terminal clock-reset',
    summary: "set the terminal's clock high-water mark with the mother card (after a clock that ran far ahead)",
    usage: ['tally terminal clock-reset --data DIR (--mother FILE | --reader SPEC) --pin PIN [--time ISO]'],
    about: `For a terminal whose high-water mark is far ahead of the real time (its
clock once ran ahead and it cannot reach the server, whose signed time would
reset it by itself). The mother card of the terminal's investor, after its
PIN, signs the terminal id, the ledger's head and the time; the terminal
writes a clock.reset entry with that statement (the server and tally ledger
verify check it with the root key alone) and its mark becomes the time.`,
    options: {
      data: valueOption('DIR', "the terminal's data directory", { required: true }),
      mother: MOTHER_OPTIONS.mother!,
      pin: valueOption('PIN', "the MOTHER card's PIN (- reads it from standard input)", { required: true }),
      time: valueOption('ISO', 'the time the mark goes to', { default: "this machine's clock now" }),
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const dataDir = required(values, 'data');
    let time: number | undefined;
    if (typeof values.time === 'string') {
      time = Date.parse(values.time);
      if (!Number.isFinite(time)) throw new TallyError('USAGE', `--time ${values.time}: not an ISO 8601 time`);
    }
    if (!existsSync(join(dataDir, 'terminal.db'))) throw new TallyError('NOT_PROVISIONED', dataDir);
    const pinValue = pin(values, 'pin', "the mother card's PIN");
    await refuseWhileDaemonRuns(values, dataDir);
    const terminal = Terminal.open({ dataDir });
    try {
      const result = await withCardSource(values, io, async (source) =>
        terminal.resetClockWithMotherCard(await source.card({ name: 'the mother card', signer: true, ...(typeof values.mother === 'string' ? { file: values.mother } : {}), fileOption: 'mother' }), {
          pin: pinValue,
          ...(time !== undefined ? { time } : {}),
        }),
      );
      io.out(`clock high-water mark ${new Date(result.previousMark).toISOString()} -> ${new Date(result.time).toISOString()} (clock.reset, seq ${result.seq}, signed by the mother card)`);
      return 0;
    } finally {
      terminal.close();
    }
  },
);
