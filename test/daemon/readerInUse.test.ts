/**
 * A running daemon holds its reader: the issuing and provisioning tools
 * refuse to open that reader (READER_IN_USE, naming the daemon) before they
 * ask for any card, and open another reader as before. A real daemon process
 * on a serial board (the simulated microcontroller on a socat pty pair).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import { daemonHolding, knownStatusSockets, sameReader } from '../../src/daemon/readerInUse.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedReaderFirmware } from '../../src/sim/SimulatedReaderFirmware.js';
import { startPtyPair } from '../../src/transports/PtyPair.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { waitFor } from '../support/syncHarness.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');

describe('which daemon holds a reader', () => {
  it('matches serial boards by device path and PC/SC readers unless both name different readers', () => {
    expect(sameReader({ backend: 'serial', path: '/dev/ttyS1' }, { backend: 'serial', device: '/dev/ttyS1' })).toBe(true);
    expect(sameReader({ backend: 'serial', path: '/dev/ttyS1' }, { backend: 'serial', device: '/dev/ttyS2' })).toBe(false);
    expect(sameReader({ backend: 'serial', path: '/dev/ttyS1' }, { backend: 'pcsc' })).toBe(false);
    expect(sameReader({ backend: 'serial', path: '/dev/ttyS1' }, { backend: 'simulated' })).toBe(false);
    expect(sameReader({ backend: 'pcsc' }, { backend: 'pcsc', device: 'ACR39U' })).toBe(true);
    expect(sameReader({ backend: 'pcsc', readerName: 'ACR39U 01' }, { backend: 'pcsc' })).toBe(true);
    expect(sameReader({ backend: 'pcsc', readerName: 'ACR39U 01' }, { backend: 'pcsc', device: 'ACR39U 00' })).toBe(false);
    expect(sameReader({ backend: 'pcsc', readerName: 'acr39u' }, { backend: 'pcsc', device: 'ACR39U 00' })).toBe(true);
    expect(sameReader({ backend: 'pcsc', readerName: 'ACR39U 00 00' }, { backend: 'pcsc', device: 'ACR', name: 'ACS ACR39U 00 00' })).toBe(true);
    // a daemon bound through a filter shared by several readers holds one of them, by its slot-suffixed name
    expect(sameReader({ backend: 'pcsc', readerName: 'ACS ACR39U 00 01' }, { backend: 'pcsc', device: 'ACR39U', name: 'ACS ACR39U 00 00' })).toBe(false);
    expect(sameReader({ backend: 'pcsc', readerName: 'ACR39U' }, { backend: 'pcsc', device: 'ACR39U', name: 'ACS ACR39U 00 00' })).toBe(true);
    expect(sameReader({ backend: 'pcsc' }, { backend: 'pcsc', device: 'ACR39U', name: 'ACS ACR39U 00 01' })).toBe(true);
    // not bound yet (the name is the "pcsc:FILTER" placeholder): the filters decide
    expect(sameReader({ backend: 'pcsc', readerName: 'ACS ACR39U 00 01' }, { backend: 'pcsc', device: 'ACR39U', name: 'pcsc:ACR39U' })).toBe(true);
    expect(sameReader({ backend: 'pcsc', readerName: 'ACR39U 01' }, { backend: 'pcsc', device: 'ACR39U 00', name: 'pcsc:ACR39U 00' })).toBe(false);
  });

  it('knows the daemons of a configuration file, of the default configuration (TALLY_* too) and of data folders', () => {
    const dir = tempDir('tally-inuse-');
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'terminal.yaml');
    writeFileSync(config, `terminal: {dataDir: ${join(dir, 'a')}}\n`);
    expect(knownStatusSockets({ configFile: config, dataDirs: [join(dir, 'c')], env: {} })).toEqual([join(dir, 'a', 'status.sock'), '/var/lib/tallystick/status.sock', join(dir, 'c', 'status.sock')]);
    expect(knownStatusSockets({ env: { TALLY_TERMINAL_DATA_DIR: join(dir, 'b') } })).toEqual([join(dir, 'b', 'status.sock')]);
    expect(knownStatusSockets({ env: { TALLY_STATUS_SOCKET: join(dir, 's.sock') } })).toEqual([join(dir, 's.sock')]);
  });

  it('tally issue and tally terminal provision refuse the serial board a running daemon holds, and open another', async () => {
    const dir = tempDir('tally-inuse-');
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const pty = await startPtyPair();
    onTestFinished(() => pty.stop());
    const firmware = new SimulatedReaderFirmware({ device: { startDelayMs: 1, runMs: 2 } });
    const firmwareSide = await openSerialTransport(pty.firmwarePath);
    onTestFinished(() => firmwareSide.close());
    firmware.attach(firmwareSide);
    firmware.powerOn();

    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const config = join(dir, 'terminal.yaml');
    writeFileSync(config, `terminal: {dataDir: ${dataDir}, locale: en}\nreader:\n  backend: serial\n  serial: {path: ${pty.daemonPath}}\nlog: {level: warn}\n`);
    const daemon = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: 'ignore' });
    onTestFinished(() => {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    });
    const socket = join(dataDir, 'status.sock');
    await waitFor(async () => ((await queryStatus(socket)) as { reader?: { state?: string } } | undefined)?.reader?.state === 'ready', 15_000, 'daemon ready on the serial board');
    expect(await daemonHolding({ backend: 'serial', path: pty.daemonPath }, [socket])).toMatchObject({ pid: daemon.pid, dataDir, reader: { backend: 'serial', device: pty.daemonPath } });

    const tally = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [TALLY, ...args, '--card-timeout', '2'], { encoding: 'utf8', input: '', env: { ...process.env, ...env }, timeout: 20_000 });
    const refusal = new RegExp(`serial board on ${pty.daemonPath} is held by the running terminal daemon \\(pid ${daemon.pid}, data ${dataDir}\\): stop it first.*\\[READER_IN_USE 5005\\]`);
    // the board named by the daemon's own configuration file
    const issue = tally(['issue', 'white', '--registry', join(dir, 'issuing.db'), '--mother-pin', '123456', '--pin', '654321', '--quota', '5', '--reader-config', config]);
    expect(issue.status).toBe(1);
    expect(issue.stderr).toMatch(refusal);
    expect(issue.stderr).not.toContain('insert');
    // --reader SPEC, the daemon found through the default configuration's data folder (TALLY_TERMINAL_DATA_DIR)
    const issueByPath = tally(['issue', 'mother', '--registry', join(dir, 'issuing.db'), '--pin', '123456', '--investor', 'X', '--reader', `serial:${pty.daemonPath}`], { TALLY_TERMINAL_DATA_DIR: dataDir });
    expect(issueByPath.stderr).toMatch(refusal);
    const provision = tally(['terminal', 'provision', '--data', join(dir, 'other'), '--pin', '123456', '--terminal-id', 'T-2', '--clinic', 'C1', '--reader-config', config]);
    expect(provision.stderr).toMatch(refusal);

    // another board is not the daemon's: the tool opens it and waits for its card as before
    const other = await startPtyPair();
    onTestFinished(() => other.stop());
    const elsewhere = tally(['issue', 'mother', '--registry', join(dir, 'issuing.db'), '--pin', '123456', '--investor', 'X', '--reader', `serial:${other.daemonPath}`], { TALLY_TERMINAL_DATA_DIR: dataDir });
    expect(elsewhere.stderr).not.toContain('READER_IN_USE');

    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    firmware.powerOff();
    firmware.detach();
  }, 90_000);
});
