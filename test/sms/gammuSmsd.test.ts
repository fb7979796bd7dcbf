/**
 * The SMS path with the programs of the real deployment, all started here:
 *   `tally terminal run` (its data link down: the broker's port is closed) with
 *   sms.modemPath on the terminal's modem of `tally sim modem`, whose simulated
 *   network (delay, jitter that reorders, loss, duplicates) joins it to the
 *   server's modem, which Debian's gammu-smsd (no one here wrote it) reads;
 *   gammu-smsd hands each SMS to `tally server sms receive` (RUNONRECEIVE,
 *   files backend), which records the head in the server's SQLite store.
 * Then the server answers: `tally server sms send` puts signed commands into
 * gammu-smsd's outbox; the terminal's modem receives them; the daemon checks
 * them with the server key of the checkpoint it kept and applies them (report
 * now, a deny-list delta, time) or refuses them (stale, replayed) keeping its
 * last good state. Nothing here sleeps for readiness: each step waits for the
 * file, row, log line or status that says it happened.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { parseCardRecord } from '../../src/codecs/cardRecord.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { signCheckpoint } from '../../src/crypto/checkpoint.js';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import type { TerminalSmsStatus } from '../../src/daemon/startSms.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { Issuer, DEMO_MOTHER_PIN, provisionTerminal, tempDir, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi } from '../../src/server/httpApi.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import type { ServerStore, SmsReportRow } from '../../src/server/ServerStore.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import { SERVER_MODEM_NUMBER, TERMINAL_MODEM_NUMBER } from '../../src/sim/modem/ModemRig.js';
import { systemClock } from '../../src/util/clock.js';
import { loadServerKey } from '../../src/cli/commands/serverKey.js';
import { stopChild } from '../support/process.js';
import { startMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/syncHarness.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');
const TERMINAL_ID = 'T-SMSD-1';
const API_TOKEN = 'sms-test-token-0123456789abcdef';

interface LogLine {
  readonly time: string;
  readonly event?: string;
  readonly counter?: number;
  readonly code?: string;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

/** A child whose output lines are kept, with a wait for a line */
function started(child: ChildProcess, stream: 'stdout' | 'stderr'): { lines: string[]; until(test: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string> } {
  const lines: string[] = [];
  let partial = '';
  child[stream]!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  return {
    lines,
    async until(test, what, timeoutMs = 30_000) {
      let found: string | undefined;
      await waitFor(() => (found = lines.find(test)) !== undefined || child.exitCode !== null, timeoutMs, what);
      if (found === undefined) throw new Error(`${what}: the process exited (${child.exitCode}): ${lines.slice(-20).join('\n')}`);
      return found;
    },
  };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('gammu-smsd between the simulated GSM network and tally server', () => {
  let dir: string;
  let issuer: Issuer;
  let batch: IssuedBatch;
  let dataDir: string;
  let storePath: string;
  let store: ServerStore;
  let spool: string;
  let serverKeyPath: string;
  let rootHex: string;
  let brokerPort: number;
  let sim: ChildProcess;
  let simOut: ReturnType<typeof started>;
  let smsd: ChildProcess;
  let terminal: ChildProcess | undefined;
  let terminalLog: ReturnType<typeof started>;
  const delays: number[] = [];
  const commandDelays: number[] = [];

  const tally = (...args: string[]) => spawnSync(process.execPath, [TALLY, ...args], { encoding: 'utf8', timeout: 30_000 });
  const simCommand = (line: string) => sim.stdin!.write(`${line}\n`);
  const networkStats = async (): Promise<{ submitted: number; delivered: number; lost: number; duplicated: number }> => {
    const before = simOut.lines.length;
    simCommand('status');
    await waitFor(() => simOut.lines.slice(before).some((l) => l.startsWith('network ')), 10_000, 'sim status');
    return JSON.parse(simOut.lines.slice(before).find((l) => l.startsWith('network '))!.slice('network '.length)) as never;
  };
  const status = async () => (await queryStatus(join(dataDir, 'status.sock'))) as { sms?: TerminalSmsStatus; lastSeq: number; sync: { connected?: boolean } } | undefined;
  const logs = (): LogLine[] => terminalLog.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

  function startTerminal(sms: { afterDownSeconds: number; everySeconds: number; maxPerDay: number }, modemPath: string, brokerUrl = `mqtt://127.0.0.1:${brokerPort}`): void {
    const config = join(dir, 'terminal.yaml');
    writeFileSync(
      config,
      `terminal: {dataDir: ${dataDir}, locale: en}\nreader: {backend: simulated}\n` +
        `sync: {enabled: true, brokerUrl: '${brokerUrl}', protocolVersion: 5}\n` +
        `sms: {modemPath: ${modemPath}, serverNumber: '${SERVER_MODEM_NUMBER}', afterDownSeconds: ${sms.afterDownSeconds}, everySeconds: ${sms.everySeconds}, maxPerDay: ${sms.maxPerDay}, retrySeconds: 1}\n` +
        `log: {level: info}\n`,
    );
    terminal = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    terminalLog = started(terminal, 'stderr');
  }

  const reports = (): Promise<SmsReportRow[]> => store.smsReports(TERMINAL_ID);
  const replays = async (): Promise<number> => (await store.rejections()).filter((r) => r.reason === 'SMS_REPORT_REPLAYED').length;

  beforeAll(async () => {
    dir = tempDir('tally-smsd-');
    issuer = await new Issuer(dir).init();
    rootHex = toHex(issuer.motherInfo.rootPublicKey);
    batch = await issuer.makeBatch('C1', 6);
    dataDir = join(dir, 'terminal');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: TERMINAL_ID, clinicCode: 'C1' });

    // the server knew the terminal while the data link was up: its entries, and a signed checkpoint the terminal kept
    storePath = join(dir, 'server.db');
    store = await createServerStore({ kind: 'sqlite', path: storePath });
    const ingest = new Ingest({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, clock: systemClock, signatureCheck: 'every-entry' });
    const ledger = rig.terminal.ledger;
    await ingest.handle(terminalTopic(TERMINAL_ID, 'report'), encodeReport({ transaction: 1, certificate: ledger.terminalCertificate(), entries: ledger.entriesFrom(1, 100).map((e) => e.raw) }));
    const motherFile = join(dir, 'mother.json');
    saveCardFile(motherFile, issuer.mother);
    serverKeyPath = join(dir, 'server-key.json');
    const certified = tally('server', 'certify-key', '--server-id', 'SRV-1', '--key', serverKeyPath, '--mother', motherFile, '--mother-pin', DEMO_MOTHER_PIN);
    expect(certified.status, certified.stderr).toBe(0);
    const key = loadServerKey(serverKeyPath, issuer.motherInfo.rootPublicKey);
    rig.terminal.adoptCheckpoint(signCheckpoint(key.key, key.certificate, { terminalId: TERMINAL_ID, seq: ledger.lastSeq(), headHash: toHex(ledger.entryHashAt(ledger.lastSeq())!), time: Date.now() }));

    // then the link went down: a batch loaded and two uses, which the server has not seen
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true });
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true });
    rig.terminal.close();
    brokerPort = await closedPort();

    sim = spawn(process.execPath, [TALLY, 'sim', 'modem', '--delay-ms', '300', '--jitter-ms', '2500', '--loss', '0.25', '--duplicate', '0.3', '--seed', '19'], { stdio: ['pipe', 'pipe', 'inherit'] });
    simOut = started(sim, 'stdout');
    const serverPath = (await simOut.until((l) => l.startsWith('server modem'), 'sim modem ready')).split(': ')[1]!;
    const terminalPath = simOut.lines.find((l) => l.startsWith('terminal modem'))!.split(': ')[1]!;

    spool = join(dir, 'spool');
    for (const sub of ['inbox', 'outbox', 'sent', 'error']) mkdirSync(join(spool, sub), { recursive: true });
    const smsdrc = join(dir, 'smsdrc');
    writeFileSync(
      smsdrc,
      `[gammu]\ndevice = ${serverPath}\nconnection = at\n\n[smsd]\nservice = files\ninboxformat = standard\n` +
        `inboxpath = ${spool}/inbox/\noutboxpath = ${spool}/outbox/\nsentsmspath = ${spool}/sent/\nerrorsmspath = ${spool}/error/\n` +
        `logfile = ${spool}/smsd.log\ncommtimeout = 1\nreceivefrequency = 1\nstatusfrequency = 0\ncheckbattery = 0\nchecksignal = 0\n` +
        `runonreceive = ${process.execPath} ${TALLY} server sms receive --store ${storePath} --inbox ${spool}/inbox/ >> ${spool}/receive.log 2>&1\n`,
    );
    smsd = spawn('gammu-smsd', ['-c', smsdrc], { stdio: 'ignore' });
    await waitFor(() => readFileSafe(join(spool, 'smsd.log')).includes('Starting phone communication'), 30_000, 'gammu-smsd talking to the modem');
    startTerminal({ afterDownSeconds: 1, everySeconds: 1, maxPerDay: 8 }, terminalPath);
  }, 120_000);

  afterAll(async () => {
    if (terminal) await stopChild(terminal);
    if (smsd) await stopChild(smsd);
    if (sim) {
      sim.stdin!.end('quit\n');
      await stopChild(sim, 'SIGTERM', 10_000);
    }
    await store?.close();
    issuer?.close();
    if (delays.length) {
      const sorted = [...delays].sort((a, b) => a - b);
      const cmd = [...commandDelays].sort((a, b) => a - b);
      process.stdout.write(
        `sms over gammu-smsd: terminal send -> server record, ${sorted.length} reports: p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms` +
          ` (network 300-2800 ms); server send -> terminal applied, ${cmd.length} commands: p50 ${cmd[Math.floor(cmd.length / 2)]} ms, max ${cmd[cmd.length - 1]} ms\n`,
      );
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports over a lossy, doubling, reordering network reach the server through gammu-smsd; the budget holds; the head is the terminal\'s', async () => {
    // the daemon's budget: 8 a day, then it stops
    await waitFor(async () => ((await status())?.sms?.stats.overBudget ?? 0) >= 1, 60_000, 'daily budget used');
    const terminalStatus = (await status())!;
    expect(terminalStatus.sms).toMatchObject({ modem: 'ready', dataLinkDown: true, sentToday: 8, stats: { sent: 8 } });
    const sent = logs().filter((l) => l.event === 'sms-report-sent');
    expect(sent).toHaveLength(8);
    expect(new Set(sent.map((l) => l.counter)).size).toBe(8);

    // every message the network delivered was handed over by gammu-smsd: recorded, or refused as a replay (a duplicate, or one overtaken)
    await waitFor(async () => {
      const n = await networkStats();
      return n.submitted === 8 && n.delivered === n.submitted - n.lost + n.duplicated;
    }, 60_000, 'the network delivered everything');
    const net = await networkStats();
    expect(net.lost).toBeGreaterThan(0);
    expect(net.duplicated).toBeGreaterThan(0);
    await waitFor(async () => (await reports()).length + (await replays()) === net.delivered, 60_000, 'every delivered SMS recorded or refused');
    const rows = await reports();
    expect(rows.length).toBeGreaterThan(0);
    expect(await replays()).toBeGreaterThanOrEqual(net.duplicated);
    // recorded in counter order, none twice, each a counter the terminal sent
    expect(rows.map((r) => r.counter)).toEqual([...rows.map((r) => r.counter)].sort((a, b) => a - b));
    expect(rows.every((r) => sent.some((l) => l.counter === r.counter))).toBe(true);
    // the server knows the head the terminal has, and its uses, by SMS alone
    const last = rows[rows.length - 1]!;
    expect(last.headSeq).toBe(terminalStatus.lastSeq);
    expect(last.sender).toBe(TERMINAL_MODEM_NUMBER);
    expect(last.batches).toEqual([{ batchNo: batch.result.batchNo, usesSince: expect.any(Number) as number, usesTotal: 2 }]);
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    expect(last.headHashPrefix).toBe(toHex(ledger.entryHashAt(ledger.lastSeq())!).slice(0, 16));
    ledger.close();
    for (const r of rows) {
      const line = sent.find((l) => l.counter === r.counter)!;
      delays.push(r.receivedAt - Date.parse(line.time));
    }
    // gammu-smsd kept nothing it could not hand over
    expect(readdirSync(join(spool, 'error'))).toEqual([]);
    const shown = tally('server', 'sms', 'status', '--store', storePath);
    expect(shown.stdout).toMatch(new RegExp(`${TERMINAL_ID}  reachable by SMS only .* head ${terminalStatus.lastSeq} `));
    const report = tally('server', 'report', 'terminals', '--store', storePath);
    expect(report.stdout).toMatch(new RegExp(`terminalId=${TERMINAL_ID} .*reachability=reachable by SMS only .*smsHead=${terminalStatus.lastSeq} .*smsUses=batch ${batch.result.batchNo}: 2`));
    // the HTTP API's terminals (the console's page): reachable by SMS only, with the head the SMS named
    const api = await buildHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, adminToken: API_TOKEN });
    const answer = await api.inject({ method: 'GET', url: '/api/terminals', headers: { authorization: `Bearer ${API_TOKEN}` } });
    await api.close();
    expect((answer.json() as { data: unknown }).data).toEqual([expect.objectContaining({ terminalId: TERMINAL_ID, reachability: 'sms-only', sms: expect.objectContaining({ headSeq: terminalStatus.lastSeq, headHashPrefix: last.headHashPrefix, reports: rows.length, contradicted: 0 }) as unknown })]);
  }, 180_000);

  it('the server answers by SMS through gammu-smsd\'s outbox: report now, a deny-list delta, time; stale and replayed commands are refused and the last good state kept', async () => {
    // the daemon again, with room in the budget and no report of its own for an hour: what comes now, the server asked for
    await stopChild(terminal!);
    const terminalPath = simOut.lines.find((l) => l.startsWith('terminal modem'))!.split(': ')[1]!;
    simCommand('loss 0');
    simCommand('duplicate 0.5');
    startTerminal({ afterDownSeconds: 3600, everySeconds: 3600, maxPerDay: 20 }, terminalPath);
    await waitFor(async () => (await status())?.sms?.modem === 'ready', 30_000, 'terminal modem ready');
    const send = (...what: string[]) => {
      const at = Date.now();
      const r = tally('server', 'sms', 'send', '--store', storePath, '--signing-key', serverKeyPath, '--root', rootHex, '--outbox', join(spool, 'outbox'), '--terminal', TERMINAL_ID, ...what);
      expect(r.status, r.stderr).toBe(0);
      return { at, file: r.stdout.split(':')[0]! };
    };
    const applied = async (type: number, since: number, what: string) => {
      await waitFor(() => logs().some((l) => l.event === 'sms-command' && l.type === type && Date.parse(l.time) >= since), 30_000, what);
      const line = logs().find((l) => l.event === 'sms-command' && l.type === type && Date.parse(l.time) >= since)!;
      commandDelays.push(Date.parse(line.time) - since);
    };
    const refusedSince = (since: number) => logs().filter((l) => l.event === 'sms-command-refused' && Date.parse(l.time) >= since);

    // report now: a report with a new counter reaches the server
    const before = (await reports()).at(-1)!.counter;
    const now = send('report-now');
    await applied(1, now.at, 'report-now applied');
    await waitFor(async () => (await reports()).some((r) => r.counter > before), 30_000, 'the asked-for report recorded');
    const asked = (await reports()).at(-1)!;
    delays.push(asked.receivedAt - Date.parse(logs().find((l) => l.event === 'sms-report-sent' && l.counter === asked.counter)!.time));

    // deny card 3 (deny-list version 5): the terminal applies the delta
    const cardId = toHex(parseCardRecord(fromHex(batch.oneTimeCards[2]!.snapshot().record!)).cardId);
    const deny = send('deny', '--version', '5', cardId);
    await applied(2, deny.at, 'deny applied');
    expect(logs().some((l) => l.event === 'sms-deny-applied' && l.version === 5)).toBe(true);

    // a stale deny (version 4, card 4) and the deny SMS replayed from gammu's sent folder: refused, nothing changes
    const stale = send('deny', '--version', '4', toHex(parseCardRecord(fromHex(batch.oneTimeCards[3]!.snapshot().record!)).cardId));
    await waitFor(() => refusedSince(stale.at).some((l) => /version 4 not above 5/.test(l.msg ?? '')), 30_000, 'stale deny refused');
    const replayAt = Date.now();
    await waitFor(() => readdirSync(join(spool, 'sent')).includes(deny.file), 10_000, 'deny SMS in the sent folder');
    copyFileSync(join(spool, 'sent', deny.file), join(spool, 'outbox', deny.file.replace('OUTA', 'OUTB')));
    await waitFor(() => refusedSince(replayAt).some((l) => /replayed/.test(l.msg ?? '')), 30_000, 'replayed deny refused');

    // time: the server's time, applied to the terminal's clock
    const time = send('time');
    await applied(3, time.at, 'time applied');
    await waitFor(() => logs().some((l) => /terminal time follows the server/.test(l.msg ?? '') && Date.parse(l.time) >= time.at), 10_000, 'clock follows');
    const sms = (await status())!.sms!;
    const shown = tally('terminal', 'status', '--config', join(dir, 'terminal.yaml'));
    expect(shown.stdout).toMatch(/sms +modem ready, data link down, \d+ sent today, last \S+, last command (applied|refused SMS_COMMAND_REFUSED) /);
    // every duplicate the network made of a command was refused as a replay
    expect(sms.stats.commandsApplied).toBe(3);
    expect(sms.stats.commandsRefused).toBeGreaterThanOrEqual(2);
    expect(refusedSince(now.at).every((l) => l.code === 'SMS_COMMAND_REFUSED')).toBe(true);
    await stopChild(terminal!);
    terminal = undefined;

    // the terminal's last good deny list: card 3 refused, card 4 (the stale command) still good, version 5
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    expect(ledger.denyListVersion()).toBe(5);
    expect(ledger.deniedReason([fromHex(cardId)])).toBe('deny list v5 by SMS');
    ledger.close();
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: TERMINAL_ID, clinicCode: 'C1' });
    expect(await rig.swipe(batch.oneTimeCards[2]!)).toMatchObject({ ok: false, code: 'REVOKED' });
    expect(await rig.swipe(batch.oneTimeCards[3]!)).toMatchObject({ ok: true });
    rig.terminal.close();
  }, 180_000);

  it('the data link drives the SMS: none while MQTT is up, a report once the broker has been gone afterDownSeconds, none again once it is back; a modem unplugged and back is opened again', async () => {
    await stopChild(terminal!).catch(() => undefined);
    const broker = await startMosquitto();
    try {
      const terminalPath = simOut.lines.find((l) => l.startsWith('terminal modem'))!.split(': ')[1]!;
      startTerminal({ afterDownSeconds: 3, everySeconds: 3600, maxPerDay: 20 }, terminalPath, broker.url);
      await waitFor(async () => (await status())?.sync.connected === true && (await status())?.sms?.modem === 'ready', 30_000, 'connected to the broker, modem ready');
      expect((await status())!.sms!.dataLinkDown).toBe(false);
      // a window longer than afterDownSeconds with the link up: no SMS goes
      const upSince = Date.now();
      await new Promise((r) => setTimeout(r, 4000));
      const sentWhileUp = logs().filter((l) => l.event === 'sms-report-sent' && Date.parse(l.time) >= upSince);
      expect(sentWhileUp).toEqual([]);
      expect((await status())!.sms!.stats.sent).toBe(0);

      const before = (await reports()).at(-1)!.counter;
      const downAt = Date.now();
      await broker.stop();
      await waitFor(async () => (await status())?.sms?.dataLinkDown === true, 30_000, 'the daemon sees the link down');
      await waitFor(async () => (await reports()).some((r) => r.counter > before), 60_000, 'a report after the link went down');
      const sent = logs().find((l) => l.event === 'sms-report-sent' && Date.parse(l.time) >= downAt)!;
      expect(sent.reason).toBe('data link down');
      expect(Date.parse(sent.time) - downAt).toBeGreaterThanOrEqual(3000);

      await broker.start();
      await waitFor(async () => (await status())?.sync.connected === true, 30_000, 'connected again');
      await waitFor(async () => (await status())?.sms?.dataLinkDown === false, 10_000, 'the reporter sees the link up');

      // the modem unplugged and back: the daemon opens it again by itself and a server command still reaches it
      simCommand('unplug terminal');
      await waitFor(async () => (await status())?.sms?.modem !== 'ready', 30_000, 'the daemon sees the modem gone');
      expect(logs().some((l) => l.event === 'modem-lost' && l.code === 'MODEM_UNAVAILABLE')).toBe(true);
      // it retries every second while the port is gone, and warns once, not at every retry
      const goneAt = Date.now();
      await new Promise((r) => setTimeout(r, 3500));
      expect(logs().filter((l) => l.event === 'modem-unavailable' && Date.parse(l.time) >= goneAt - 1000).length).toBeLessThanOrEqual(1);
      simCommand('plug terminal');
      await waitFor(async () => (await status())?.sms?.modem === 'ready', 30_000, 'the modem open again');
      const last = (await reports()).at(-1)!.counter;
      const asked = spawnSync(process.execPath, [TALLY, 'server', 'sms', 'send', '--store', storePath, '--signing-key', serverKeyPath, '--root', rootHex, '--outbox', join(spool, 'outbox'), '--terminal', TERMINAL_ID, 'report-now'], { encoding: 'utf8' });
      expect(asked.status, asked.stderr).toBe(0);
      await waitFor(async () => (await reports()).some((r) => r.counter > last), 60_000, 'the report asked for after the replug');
      await stopChild(terminal!);
      terminal = undefined;
    } finally {
      await broker.close();
    }
  }, 180_000);
});

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
