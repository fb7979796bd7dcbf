/**
 * A running daemon holds its PC/SC reader: tally issue, tally terminal
 * provision and tally terminal swipe refuse that reader (READER_IN_USE, naming
 * the daemon's pid and data folder) and open another. End to end on the real
 * stack: our own pcscd with the vpcd driver (two readers, "... 00 00" and
 * "... 00 01"), a virtual card, a real daemon process from dist and each tool
 * as a real process. This file holds the machine-wide pcscd lock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import { daemonHolding } from '../../src/daemon/readerInUse.js';
import { DEMO_MOTHER_PIN, Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { VirtualCard } from '../../src/sim/VirtualCard.js';
import { VIRTUAL_PCD_NAME } from '../../src/sim/VirtualCardPcscd.js';
import { startTestPcscd, type TestPcscd } from '../support/pcscd.js';
import { waitFor } from '../support/syncHarness.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');

interface Run {
  readonly status: number | null;
  readonly stderr: string;
  readonly ms: number;
  /** The tool printed its error but did not exit by itself, and was stopped here */
  readonly stopped: boolean;
}

/**
 * A tool as a process, without blocking this one (the virtual card answers
 * vpcd from here). A tool still alive a second after its error line is
 * stopped and marked: every tool must exit by itself (a PC/SC reader its
 * filter leaves out once kept its status thread, and the process, alive).
 */
function tally(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const started = Date.now();
  const child = spawn(process.execPath, [TALLY, ...args, '--card-timeout', '2'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  let stopped = false;
  let grace: NodeJS.Timeout | undefined;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!grace && /\[[A-Z_]+ \d+\]/.test(stderr)) {
      grace = setTimeout(() => {
        stopped = true;
        child.kill('SIGTERM');
      }, 1000);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.once('close', (status) => {
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({ status, stderr, ms: Date.now() - started, stopped });
    }),
  );
}

type DaemonStatus = { pid?: number; dataDir?: string; lastSwipe?: { ok: boolean }; reader?: { backend?: string; device?: string; name?: string; state?: string; cardPresent?: boolean } };

let testPcscd: TestPcscd;
let dir: string;

beforeAll(async () => {
  testPcscd = await startTestPcscd();
  dir = tempDir('tally-inuse-pcsc-');
});

afterAll(async () => {
  await testPcscd?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a running daemon holds its PC/SC reader (real pcscd, vpcd, daemon and tools as processes)', () => {
  it('issue, provision and swipe refuse the daemon’s reader, open the other one, and the daemon keeps serving swipes', async () => {
    const [held, other] = testPcscd.pcscd.readerNames as [string, string];
    expect(held).toBe(`${VIRTUAL_PCD_NAME} 00 00`);
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 2);
    // the daemon's terminal, and a second one the swipe tool works on
    const dataDir = join(dir, 'data');
    const otherData = join(dir, 'other-terminal');
    for (const [data, id] of [
      [dataDir, 'T-PCSC'],
      [otherData, 'T-OTHER'],
    ] as const) {
      mkdirSync(data);
      (await provisionTerminal(issuer, { dataDir: data, terminalId: id, clinicCode: 'C1' })).terminal.close();
    }

    // as config/terminal-pcsc.yaml: the name filter is a prefix of the reader's name ("CCID"), here of both vpcd readers
    const config = join(dir, 'terminal.yaml');
    writeFileSync(config, `terminal: {dataDir: ${dataDir}, locale: en}\nreader:\n  backend: pcsc\n  pcsc: {readerName: ${VIRTUAL_PCD_NAME}}\nsync: {enabled: false}\nlog: {level: warn}\n`);
    const daemon: ChildProcess = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    onTestFinished(() => {
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    });
    let daemonLog = '';
    daemon.stderr!.on('data', (d: Buffer) => (daemonLog += d.toString()));
    const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    const socket = join(dataDir, 'status.sock');
    const status = async (): Promise<DaemonStatus | undefined> => (await queryStatus(socket)) as DaemonStatus | undefined;
    const readyAt = Date.now();
    await waitFor(async () => (await status())?.reader?.state === 'ready', 15_000, 'daemon ready on the vpcd reader');
    console.info(`daemon ready on ${held} in ${Date.now() - readyAt} ms`);
    expect(await status()).toMatchObject({ pid: daemon.pid, dataDir, reader: { backend: 'pcsc', device: VIRTUAL_PCD_NAME, name: held, state: 'ready', cardPresent: false } });
    expect(await daemonHolding({ backend: 'pcsc', readerName: held }, [socket])).toMatchObject({ pid: daemon.pid, dataDir });

    const inUse = (reader: string): RegExp =>
      new RegExp(`${reader.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is held by the running terminal daemon \\(pid ${daemon.pid}, data ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\): stop it first.*\\[READER_IN_USE 5005\\]`);
    const byDataDir = { TALLY_TERMINAL_DATA_DIR: dataDir };
    const refused: [string, Promise<Run>, RegExp][] = [
      // the daemon's own configuration file: the same filter
      ['issue white --reader-config', tally(['issue', 'white', '--registry', join(dir, 'r1.db'), '--mother-pin', '123456', '--pin', '654321', '--quota', '5', '--reader-config', config]), inUse(`PC/SC reader "${VIRTUAL_PCD_NAME}"`)],
      // the reader's full name, slot suffix and all; the daemon found through TALLY_TERMINAL_DATA_DIR
      ['issue mother --reader pcsc:<full name>', tally(['issue', 'mother', '--registry', join(dir, 'r2.db'), '--pin', '123456', '--investor', 'X', '--reader', `pcsc:${held}`], byDataDir), inUse(`PC/SC reader "${held}"`)],
      ['terminal provision --reader-config', tally(['terminal', 'provision', '--data', join(dir, 'fresh'), '--pin', '123456', '--terminal-id', 'T-2', '--clinic', 'C1', '--reader-config', config]), inUse(`PC/SC reader "${VIRTUAL_PCD_NAME}"`)],
      // "the first PC/SC reader" is the daemon's
      ['terminal swipe --reader pcsc', tally(['terminal', 'swipe', '--data', otherData, '--reader', 'pcsc'], byDataDir), inUse('the first PC/SC reader')],
      // the signing card's reader is the daemon's, the one written to is free
      ['issue white --signer-reader', tally(['issue', 'white', '--registry', join(dir, 'r3.db'), '--mother-pin', '123456', '--pin', '654321', '--quota', '5', '--reader', `pcsc:${other}`, '--signer-reader', `pcsc:${held}`], byDataDir), inUse(`PC/SC reader "${held}"`)],
    ];
    for (const [what, run, refusal] of refused) {
      const result = await run;
      expect(result.status, `${what}: ${result.stderr}`).toBe(1);
      expect(result.stopped, what).toBe(false);
      expect(result.stderr, what).toMatch(refusal);
      // refused before any reader was opened or any card asked for
      expect(result.stderr, what).not.toMatch(/ready|insert/);
      console.info(`${what}: refused in ${result.ms} ms`);
    }

    // the other vpcd reader is not the daemon's: the tool opens it and waits for its card as before
    const elsewhere = await tally(['issue', 'mother', '--registry', join(dir, 'r4.db'), '--pin', '123456', '--investor', 'X', '--reader', `pcsc:${other}`], byDataDir);
    expect(elsewhere.stderr).not.toContain('READER_IN_USE');
    expect(elsewhere.stderr).toContain(`reader: PC/SC reader "${other}" ready`);
    expect(elsewhere.stderr).toMatch(/no card was inserted within 2 s.*READER_TIMEOUT/);
    expect(elsewhere.stopped, 'the tool exits by itself').toBe(false);
    expect(elsewhere.status).toBe(1);
    console.info(`issue mother --reader pcsc:${other}: opened, no card, exited in ${elsewhere.ms} ms`);

    // the daemon is unaffected: it still holds its reader and handles a swipe
    expect(daemon.exitCode).toBeNull();
    expect(await status()).toMatchObject({ pid: daemon.pid, reader: { name: held, state: 'ready', cardPresent: false } });
    const slot = new VirtualCard({ endpoint: testPcscd.pcscd.slotEndpoint(0) });
    onTestFinished(() => slot.remove());
    await slot.insert(batch.batchCard);
    await waitFor(async () => (await status())?.lastSwipe !== undefined, 10_000, 'the daemon to report the swipe');
    expect(await status()).toMatchObject({ lastSwipe: { ok: true }, reader: { name: held, cardPresent: true } });
    await slot.remove();
    await waitFor(async () => (await status())?.reader?.cardPresent === false, 10_000, 'the card removal');

    console.info(`swipe on the daemon done at ${Date.now() - readyAt} ms`);
    daemon.kill('SIGTERM');
    expect(await exited, daemonLog).toBe(0);
    console.info(`daemon stopped at ${Date.now() - readyAt} ms`);

    // the daemon gone, its reader is free: the tool opens it
    const after = await tally(['issue', 'white', '--registry', join(dir, 'r5.db'), '--mother-pin', DEMO_MOTHER_PIN, '--pin', '654321', '--quota', '5', '--reader-config', config]);
    expect(after.stderr).not.toContain('READER_IN_USE');
    expect(after.status, after.stderr).toBe(1);
    expect(after.stopped).toBe(false);
    expect(after.stderr).toContain(`reader: PC/SC reader "${VIRTUAL_PCD_NAME}" ready`);
    expect(after.stderr).toMatch(/no card was inserted within 2 s.*READER_TIMEOUT/);
    console.info(`the daemon's reader after it stopped: opened, no card, in ${after.ms} ms`);
  }, 120_000);
});
