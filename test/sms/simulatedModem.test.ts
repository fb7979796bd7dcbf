/**
 * The simulated GSM modem and SMS network, driven by our AT driver (GsmModem)
 * over an in-memory line with hand-moved time, and by gammu, which no one here
 * wrote, over socat ptys: gammu --identify reads the modem's identity, gammu
 * sends a text from the terminal's modem and reads it from the server's.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { SimulatedModem } from '../../src/sim/modem/SimulatedModem.js';
import { SimulatedSmsNetwork } from '../../src/sim/modem/SimulatedSmsNetwork.js';
import { SERVER_MODEM_NUMBER, startModemRig, TERMINAL_MODEM_NUMBER, type ModemRig } from '../../src/sim/modem/ModemRig.js';
import { createInMemoryPair } from '../../src/transports/InMemoryDuplex.js';
import { GsmModem, type ReceivedSms } from '../../src/transports/modem/GsmModem.js';
import { ManualScheduler } from '../../src/util/scheduler.js';

const run = promisify(execFile);

function wired(scheduler: ManualScheduler, network: SimulatedSmsNetwork, number: string, faults = {}) {
  const modem = new SimulatedModem({ number, network, faults });
  const { a, b } = createInMemoryPair();
  modem.attach(b);
  const driver = new GsmModem(a, scheduler);
  const received: ReceivedSms[] = [];
  const waiters: (() => void)[] = [];
  driver.onMessage((sms) => {
    received.push(sms);
    waiters.splice(0).forEach((w) => w());
  });
  const nextMessage = () => new Promise<void>((resolve) => waiters.push(resolve));
  return { modem, driver, received, nextMessage };
}

describe('simulated modem and network, through our AT driver', () => {
  it('a binary SMS goes from the terminal modem to the server modem after the network delay, is read on +CMTI and deleted', async () => {
    const scheduler = new ManualScheduler(Date.UTC(2026, 11, 1));
    const network = new SimulatedSmsNetwork(scheduler, { faults: { delayMs: 3000 } });
    const terminal = wired(scheduler, network, TERMINAL_MODEM_NUMBER);
    const server = wired(scheduler, network, SERVER_MODEM_NUMBER);
    await terminal.driver.initialise();
    await server.driver.initialise();
    const octets = fromHex('a1'.padEnd(200, '5a'));
    expect(await terminal.driver.send(SERVER_MODEM_NUMBER, octets)).toBe(1);
    scheduler.advance(2999);
    expect(server.modem.stored()).toHaveLength(0);
    const arrived = server.nextMessage();
    scheduler.advance(1);
    await arrived;
    expect(server.received).toHaveLength(1);
    expect(server.received[0]!.sms!.originator).toBe(TERMINAL_MODEM_NUMBER);
    expect(toHex(server.received[0]!.sms!.userData)).toBe(toHex(octets));
    await server.driver.at.command('AT');
    expect(server.modem.stored()).toHaveLength(0);
  });

  it('refuses as a real modem does: no SIM, SIM PIN, no network, +CMS ERROR, bad PDU length; a silent modem times out', async () => {
    const scheduler = new ManualScheduler(0);
    const network = new SimulatedSmsNetwork(scheduler);
    const absent = wired(scheduler, network, '+100', { sim: 'absent' });
    await expect(absent.driver.initialise()).rejects.toMatchObject({ code: 'MODEM_SIM_NOT_READY' });
    const pin = wired(scheduler, network, '+101', { sim: 'pin' });
    await expect(pin.driver.initialise()).rejects.toMatchObject({ code: 'MODEM_SIM_NOT_READY' });
    await expect(pin.driver.send('+102', Uint8Array.of(1))).rejects.toMatchObject({ code: 'MODEM_SIM_NOT_READY', context: { cms: 311 } });
    const noNet = wired(scheduler, network, '+103', { registered: false });
    await noNet.driver.initialise();
    expect(await noNet.driver.status()).toEqual({ simReady: true, registered: false, rssi: 99 });
    await expect(noNet.driver.send('+102', Uint8Array.of(1))).rejects.toMatchObject({ code: 'MODEM_NO_NETWORK', context: { cms: 331 } });
    const failing = wired(scheduler, network, '+104', { failSends: 1 });
    await failing.driver.initialise();
    await expect(failing.driver.send('+102', Uint8Array.of(1))).rejects.toMatchObject({ code: 'MODEM_SMS_ERROR', context: { cms: 500 } });
    await expect(failing.driver.send('+102', Uint8Array.of(1))).resolves.toBe(1);
    await expect(failing.driver.at.command('AT+CMGS=5', { afterPrompt: '0011000281F10004A70101' })).rejects.toMatchObject({ code: 'MODEM_SMS_ERROR', context: { cms: 304 } });
    await expect(failing.driver.at.command('AT+NOSUCH')).rejects.toMatchObject({ code: 'MODEM_ERROR' });
    const silent = wired(scheduler, network, '+105', { silent: true });
    const answer = silent.driver.at.command('AT');
    await new Promise((r) => setImmediate(r));
    scheduler.advance(5000);
    await expect(answer).rejects.toMatchObject({ code: 'MODEM_TIMEOUT' });
  });

  it('the network loses, doubles and reorders as seeded, and holds messages for a full SIM until there is room', async () => {
    const scheduler = new ManualScheduler(0);
    const network = new SimulatedSmsNetwork(scheduler, { seed: 7, faults: { delayMs: 1000, jitterMs: 20_000, loss: 0.2, duplicate: 0.2 } });
    const terminal = wired(scheduler, network, TERMINAL_MODEM_NUMBER);
    const server = new SimulatedModem({ number: SERVER_MODEM_NUMBER, network, capacity: 100 });
    await terminal.driver.initialise();
    for (let i = 0; i < 50; i++) await terminal.driver.send(SERVER_MODEM_NUMBER, Uint8Array.of(i));
    scheduler.advance(60_000);
    const order = server.stored().map((s) => s.pdu.slice(-2));
    const s = network.stats;
    expect(s.submitted).toBe(50);
    expect(s.lost).toBeGreaterThan(0);
    expect(s.duplicated).toBeGreaterThan(0);
    expect(order).toHaveLength(50 - s.lost + s.duplicated);
    expect([...order].sort()).not.toEqual(order);

    const full = new SimulatedModem({ number: '+999', network, capacity: 1 });
    network.submit(TERMINAL_MODEM_NUMBER, { kind: 'submit', smsc: '', messageReference: 1, destination: '+999', protocolId: 0, dataCoding: 4, alphabet: 'binary', statusReportRequested: false, userData: Uint8Array.of(1) });
    network.submit(TERMINAL_MODEM_NUMBER, { kind: 'submit', smsc: '', messageReference: 2, destination: '+999', protocolId: 0, dataCoding: 4, alphabet: 'binary', statusReportRequested: false, userData: Uint8Array.of(2) });
    network.faults.loss = 0;
    network.faults.duplicate = 0;
    scheduler.advance(30_000);
    expect(full.stored()).toHaveLength(1);
  });
});

describe('gammu talks to the simulated modem', () => {
  let rig: ModemRig | undefined;
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });

  it('gammu --identify, gammu sendsms from the terminal modem, gammu getallsms at the server modem', async () => {
    rig = await startModemRig({ network: { delayMs: 50 } });
    const dir = mkdtempSync(join(tmpdir(), 'tally-gammu-'));
    const rc = (path: string, name: string) => {
      const file = join(dir, name);
      writeFileSync(file, `[gammu]\ndevice = ${path}\nconnection = at\n`);
      return file;
    };
    const serverRc = rc(rig.server.path, 'server');
    const identify = await run('gammu', ['-c', serverRc, '--identify'], { timeout: 30_000 });
    expect(identify.stdout).toMatch(/Manufacturer\s+: tallystick/);
    expect(identify.stdout).toMatch(/IMEI\s+: 356938035643802/);
    const delivered = new Promise<void>((resolve) => rig!.network.onDelivered(() => resolve()));
    const sent = await run('gammu', ['-c', rc(rig.terminal.path, 'terminal'), 'sendsms', 'TEXT', SERVER_MODEM_NUMBER, '-text', 'hello from the clinic'], { timeout: 30_000 });
    expect(sent.stdout + sent.stderr).toMatch(/OK, message reference=1/);
    await delivered;
    const all = await run('gammu', ['-c', serverRc, 'getallsms'], { timeout: 30_000 });
    expect(all.stdout).toMatch(/Remote number\s+: "\+8613800000001"/);
    expect(all.stdout).toContain('hello from the clinic');
  }, 60_000);
});
