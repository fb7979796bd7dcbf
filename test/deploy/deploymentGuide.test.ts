/**
 * The README's deployment guide, run as written. A network namespace plays the
 * terminal board and another the investor's server (src/scenario/boardAndServer.ts);
 * every block of the guide marked `<!-- deployment-test: NAME -->` is taken from
 * the README and run line by line in the order below, with these changes only:
 * - absolute paths (/etc, /var, /run) are moved under each machine's scratch root,
 *   /opt/tallystick is this checkout; `tally` is step 1's own wrapper;
 * - what a person types (PINs, the CA passphrase, the token) goes to standard input,
 *   and what the guide says to copy from an earlier output (<investor root key>,
 *   <root key fingerprint>) is copied from it;
 * - systemctl starts what the unit would: Debian's `mosquitto -c /etc/mosquitto/mosquitto.conf`,
 *   the ExecStart line of the copied tallystick-terminal.service;
 * - the board's environment names its data folder and its UART (the simulated board's pty),
 *   as an Environment= drop-in would.
 * The real Mosquitto with the guide's mutual-TLS config, the real `tally server run`, the
 * daemon on the simulated board: provisioned with the mother card, enrolled over the
 * server's HTTPS with the one-time token, a batch and a use synced over mutual TLS, then
 * retired in the registry and refused by the broker. Every certificate is checked with
 * `openssl verify -x509_strict`. Processes and namespaces are stopped by pid and deleted.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoardAndServer, type Machine } from '../../src/scenario/boardAndServer.js';
import { projectRoot, type RunResult, type StartedProcess } from '../../src/scenario/twoNetworks.js';

const ROOT = projectRoot();
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const TERMINAL = 'T-0042';
const SERVER_NAME = 'reports.example-investor.net';
const typed = { motherPin: '246810', whitePin: '1357', passphrase: 'the investor CA passphrase', token: '' };

/** The guide's blocks marked for this test: name -> command lines (continuations joined, comments dropped) */
export function deploymentBlocks(readme: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  const re = /<!-- deployment-test: ([a-z-]+) -->\n```sh\n([\s\S]*?)\n```/g;
  for (const m of readme.matchAll(re)) {
    const lines: string[] = [];
    let pending = '';
    for (const raw of m[2]!.split('\n')) {
      const line = pending + raw.replace(/\s+#\s.*$/, '').trimEnd();
      if (line.endsWith('\\')) {
        pending = `${line.slice(0, -1).trimEnd()} `;
        continue;
      }
      pending = '';
      if (line.trim()) lines.push(line.trim());
    }
    blocks.set(m[1]!, lines);
  }
  return blocks;
}

const ORDER: [string, Machine][] = [
  ['investor', 'server'],
  ['configure', 'board'],
  ['provision', 'board'],
  ['enrol', 'board'],
  ['service', 'board'],
  ['uses', 'server'],
  ['status', 'board'],
  ['retire', 'server'],
];

let net: BoardAndServer;
let board: StartedProcess;
let daemon: StartedProcess | undefined;
const cwd: Record<Machine, string> = { board: ROOT, server: ROOT };
const copied: Record<string, string> = {};
const log: string[] = [];
const t0 = Date.now();

/** The guide's absolute paths under the machine's root; /opt/tallystick is this checkout */
function localise(machine: Machine, line: string): string {
  return line.replace(/\/opt\/tallystick/g, ROOT).replace(/(^|[\s=|>'"(])\/(etc|var|run|usr\/local)\//g, (_, pre: string, top: string) => `${pre}${net.root[machine]}/${top}/`);
}

function environment(machine: Machine): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: `${net.root[machine]}/usr/local/bin:${process.env.PATH ?? ''}` };
  if (machine === 'board') {
    env.TALLY_TERMINAL_DATA_DIR = `${net.root.board}/var/lib/tallystick`;
    env.TALLY_READER_SERIAL_PATH = boardPath;
  }
  return env;
}

/** What a person types for a line, one answer per line */
function stdinFor(line: string): string {
  const answers: [RegExp, string[]][] = [
    [/tally issue mother /, [typed.motherPin]],
    [/tally issue white /, [typed.motherPin, typed.whitePin]],
    [/tally issue batch /, [typed.whitePin]],
    [/tally issue certify-ca /, [typed.motherPin]],
    [/head -n 1 > /, [typed.passphrase]],
    [/tally terminal provision /, [typed.motherPin]],
    [/tally terminal enrol .*--token -/, [typed.token]],
  ];
  const found = answers.find(([re]) => re.test(line));
  return found ? found[1].map((a) => `${a}\n`).join('') : '';
}

/** The guide's placeholders, filled from what the earlier steps printed */
function fillPlaceholders(line: string): string {
  return line.replace(/<([a-z ]+)>/g, (all, name: string) => {
    const value = copied[name];
    if (value === undefined) throw new Error(`the guide asks for <${name}> before any step printed it: ${line}`);
    return value;
  });
}

async function sh(machine: Machine, line: string, stdin = stdinFor(line)): Promise<RunResult> {
  const r = await net.run(machine, '/bin/bash', ['-c', line], { cwd: cwd[machine], env: environment(machine), stdin });
  log.push(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${machine}$ ${line}\n${r.stdout}${r.stderr}`);
  return r;
}

async function mustSh(machine: Machine, line: string): Promise<RunResult> {
  const r = await sh(machine, line);
  if (r.code !== 0) throw new Error(`${machine}$ ${line}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** systemctl as the units would run it */
async function systemctl(machine: Machine, line: string): Promise<void> {
  if (/^systemctl (daemon-reload|status)\b/.test(line)) return;
  if (machine === 'server' && line === 'systemctl restart mosquitto') {
    // Debian's mosquitto.service: ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf
    const broker = net.start('server', '/usr/sbin/mosquitto', ['-c', `${net.root.server}/etc/mosquitto/mosquitto.conf`]);
    services.set('mosquitto', broker);
    await Promise.race([net.waitForPort('server', SERVER_NAME, 8883), broker.exited().then((code) => Promise.reject(new Error(`mosquitto exited (${code}): ${broker.stderr()}`)))]);
    return;
  }
  if (machine === 'board' && /^systemctl (enable --now|restart|start) tallystick-terminal$/.test(line)) {
    await daemon?.stop('SIGTERM');
    const unit = readFileSync(`${net.root.board}/etc/systemd/system/tallystick-terminal.service`, 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!;
    const [command, ...args] = localise('board', execStart).split(/\s+/);
    daemon = net.start('board', command!, args, { env: environment('board'), cwd: '/' });
    services.set('tallystick-terminal', daemon);
    await daemon.waitFor(/terminal daemon ready/, 20_000);
    return;
  }
  throw new Error(`the test does not know what systemd does for: ${line}`);
}

const services = new Map<string, StartedProcess>();
let boardPath = '';

/** Runs one line of the guide on a machine as written (after localise and placeholders) */
async function step(machine: Machine, written: string): Promise<RunResult | undefined> {
  const line = localise(machine, fillPlaceholders(written));
  if (/^cd /.test(written)) {
    cwd[machine] = line.slice(3).trim();
    return undefined;
  }
  if (/^(systemctl|journalctl) /.test(written)) {
    if (written.startsWith('journalctl')) return undefined; // the daemon's stdout is its journal here
    await systemctl(machine, written);
    return undefined;
  }
  if (/^tally server run /.test(written)) {
    const server = net.start(machine, '/bin/bash', ['-c', `exec ${line}`], { env: environment(machine), cwd: cwd[machine] });
    services.set('tally-server', server);
    await server.waitFor(/ingest server running/, 20_000);
    return undefined;
  }
  if (/^tally terminal provision /.test(written)) {
    // the tool waits for the mother card in the board's slot: the investor inserts it when asked
    const tool = net.start(machine, '/bin/bash', ['-c', `exec ${line}`], { env: environment(machine), cwd: cwd[machine], stdin: true });
    tool.write(stdinFor(written));
    await tool.waitFor(/→ insert the mother card/, 20_000);
    board.write(`insert ${net.root.server}/var/lib/tallystick-station/mother.json\n`);
    await tool.waitFor(/→ remove the mother card/, 20_000);
    board.write('remove\n');
    const code = await tool.exited();
    log.push(`board$ ${line}\n${tool.stdout()}${tool.stderr()}`);
    expect(code, tool.stderr()).toBe(0);
    return { code, stdout: tool.stdout(), stderr: tool.stderr() };
  }
  return mustSh(machine, line);
}

async function runBlock(name: string, machine: Machine): Promise<RunResult[]> {
  const lines = deploymentBlocks(README).get(name);
  if (!lines) throw new Error(`README: no block marked <!-- deployment-test: ${name} -->`);
  const results: RunResult[] = [];
  for (const line of lines) {
    const r = await step(machine, line);
    if (r) results.push(r);
    if (/^tally issue mother /.test(line) && r) {
      copied['root key fingerprint'] = /root key fingerprint ([0-9a-f]{64})/.exec(r.stdout)![1]!;
      copied['investor root key'] = /investor root key ([0-9a-f]{64})/.exec(r.stdout)![1]!;
    }
    if (/^tally pki token /.test(line) && r) typed.token = r.stdout.trim().split('\n')[0]!;
  }
  return results;
}

/** openssl verify -x509_strict on a machine; the output's last line */
async function opensslVerify(machine: Machine, args: string): Promise<RunResult> {
  return sh(machine, `openssl verify -x509_strict ${localise(machine, args)}`, '');
}

/**
 * A fresh TLS handshake from the board with the terminal's own files: 'accepted', or the broker's
 * refusal (TLS 1.2: the broker checks the client certificate, and the CRL, inside the handshake).
 * Only the handshake: an MQTT session would take over the running daemon's (the client id is the CN).
 */
async function terminalHandshake(): Promise<string> {
  const tls = `${net.root.board}/var/lib/tallystick/tls`;
  const script = `const fs=require('fs');const s=require('tls').connect({host:${JSON.stringify(SERVER_NAME)},port:8883,servername:${JSON.stringify(SERVER_NAME)},ca:fs.readFileSync('${tls}/ca.pem'),cert:fs.readFileSync('${tls}/cert.pem'),key:fs.readFileSync('${tls}/key.pem')});s.on('secureConnect',()=>{s.once('error',e=>{console.log(e.message);process.exit(0)});s.once('close',()=>{console.log('accepted');process.exit(0)});s.end()});s.on('error',e=>{console.log(e.message);process.exit(0)})`;
  const r = await net.run('board', process.execPath, ['-e', script]);
  return r.stdout.trim() || r.stderr.trim();
}

/** The operator takes the card out when the board's display says so (取卡: the example file's locale is zh) */
async function removeWhenAsked(): Promise<void> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    const from = board.stdout().length;
    board.write('status\n');
    const display = await board.waitFor(/^display /, 5_000, from);
    if (/取卡|已装载|[Rr]emove card|loaded/.test(display)) {
      board.write('remove\n');
      return;
    }
  }
  throw new Error('the display never asked for the card to be removed');
}

beforeAll(async () => {
  net = await BoardAndServer.create(SERVER_NAME);
  // step 1's wrapper, as the guide writes it, on each machine
  const install = /apt-get install[\s\S]*?```/.exec(README)![0].split('\n').filter((l) => /^(printf|chmod) .*\/usr\/local\/bin\/tally/.test(l));
  expect(install).toHaveLength(2);
  for (const machine of ['board', 'server'] as const) {
    // what a Debian root file system has already
    await mustSh(machine, `mkdir -p ${['usr/local/bin', 'etc/systemd/system', 'var/lib', 'run'].map((d) => `${net.root[machine]}/${d}`).join(' ')}`);
    for (const l of install) await mustSh(machine, localise(machine, l.replace(/\s+#\s.*$/, '')));
  }
  // the simulated board on the terminal's side; the daemon opens the pty it prints
  board = net.start('board', `${net.root.board}/usr/local/bin/tally`, ['sim', 'reader', '--run-ms', '300'], { stdin: true, env: environment('board') });
  boardPath = /the daemon opens: (\S+)/.exec(await board.waitFor(/the daemon opens: /))![1]!;
}, 60_000);

afterAll(async () => {
  for (const [, p] of [...services].reverse()) await p.stop('SIGTERM').catch(() => undefined);
  await board?.stop('SIGTERM').catch(() => undefined);
  await net?.close();
  console.log(`deployment guide run in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

describe('the deployment guide, run as written on two machines', () => {
  it('provisions, enrols, syncs over mutual TLS, and refuses the terminal once retired', async () => {
    const blocks = deploymentBlocks(README);
    expect([...blocks.keys()].sort()).toEqual(ORDER.map(([n]) => n).sort());
    try {
      for (const [name, machine] of ORDER.slice(0, 5)) await runBlock(name, machine);

      // every certificate of the deployment, with the openssl binary
      const pki = '/etc/tallystick/pki';
      for (const [args, what] of [
        [`-CAfile ${pki}/ca.pem ${pki}/ca.pem`, 'the CA'],
        [`-CAfile ${pki}/ca.pem -purpose sslserver /etc/mosquitto/certs/broker.pem`, 'the broker'],
        [`-CAfile ${pki}/ca.pem -purpose sslclient /etc/tallystick/server.pem`, 'the server (to the broker)'],
        [`-CAfile ${pki}/ca.pem -purpose sslserver /etc/tallystick/server.pem`, 'the server (EST)'],
        [`-CAfile ${pki}/ca.pem -crl_check -CRLfile ${pki}/crl.pem /etc/tallystick/server.pem`, 'the server against the CRL'],
      ]) {
        const r = await opensslVerify('server', args!);
        expect(r.stdout + r.stderr, what).toMatch(/: OK\s*$/);
      }
      const tls = '/var/lib/tallystick/tls';
      const terminalCert = await opensslVerify('board', `-CAfile ${tls}/ca.pem -purpose sslclient ${tls}/cert.pem`);
      expect(terminalCert.stdout + terminalCert.stderr, 'the terminal (as enrolled)').toMatch(/: OK\s*$/);
      // the CA the terminal got over EST is the investor's
      expect(readFileSync(`${net.root.board}${tls}/ca.pem`, 'utf8').trim()).toBe(readFileSync(`${net.root.server}${pki}/ca.pem`, 'utf8').trim());

      // the clinic's operator loads the batch and swipes a one-time card on the running terminal
      board.write(`insert ${net.root.server}/var/lib/tallystick-station/batch.json\n`);
      await daemon!.waitFor(/"msg":"batch loaded"/, 20_000);
      await removeWhenAsked();
      board.write(`insert ${net.root.server}/var/lib/tallystick-station/cards/onetime-1-0001.json\n`);
      await daemon!.waitFor(/"msg":"use reserved"/, 20_000);
      await removeWhenAsked();
      // the use ends (the simulated device runs 300 ms) and every entry is acknowledged by the server: asked of the daemon until then
      const statusCommand = localise('board', 'tally terminal status --config /etc/tallystick/terminal.yaml --json');
      let synced: { lastSeq: number; openUses: number; outboxDepth: number } | undefined;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
        const s = JSON.parse((await sh('board', statusCommand)).stdout) as { lastSeq: number; openUses: number; outboxDepth: number };
        if (s.lastSeq >= 3 && s.openUses === 0 && s.outboxDepth === 0) {
          synced = s;
          break;
        }
      }
      expect(synced, 'the use ended and the server acknowledged every entry').toBeDefined();
      const [uses] = await runBlock('uses', 'server');
      expect(uses!.stdout).toMatch(new RegExp(`key=${TERMINAL}\\s+uses=1\\b`));
      const status = await runBlock('status', 'board');
      const live = JSON.parse(status[1]!.stdout) as { sync: { connected: boolean }; certificate: { daysLeft: number }; outboxDepth: number };
      expect(live.sync.connected).toBe(true);
      expect(live.certificate.daysLeft).toBeGreaterThan(300);
      expect(status[0]!.stdout).toMatch(/certificate\s+valid until/);

      // retired: revoked, the CRL re-signed, Mosquitto told; a new connection with the terminal's certificate is refused
      expect(await terminalHandshake()).toBe('accepted');
      const retiredAt = Date.now();
      await runBlock('retire', 'server');
      let attempts = 0;
      let refusedMs: number | undefined;
      while (Date.now() - retiredAt < 60_000) {
        attempts++;
        const answer = await terminalHandshake();
        if (answer !== 'accepted') {
          expect(answer).toMatch(/certificate revoked/);
          refusedMs = Date.now() - retiredAt;
          break;
        }
      }
      expect(refusedMs, `still connecting after ${attempts} attempts`).toBeDefined();
      console.log(`retired -> refused by Mosquitto in ${refusedMs} ms (${attempts} connection attempts)`);
      const revoked = await opensslVerify('board', `-CAfile ${tls}/ca.pem -crl_check -CRLfile ${net.root.server}${pki}/crl.pem ${tls}/cert.pem`);
      expect(revoked.stdout + revoked.stderr).toMatch(/certificate revoked/);
      // the daemon itself, restarted, is refused too: its link stays down
      await systemctl('board', 'systemctl restart tallystick-terminal');
      console.log(`the restarted daemon: ${await daemon!.waitFor(/"module":"sync".*certificate revoked/, 20_000)}`);
      const after = JSON.parse((await sh('board', localise('board', 'tally terminal status --config /etc/tallystick/terminal.yaml --json'))).stdout) as { sync: { connected: boolean } };
      expect(after.sync.connected).toBe(false);
    } catch (err) {
      console.log(log.join('\n'));
      for (const [name, p] of services) console.log(`--- ${name}\n${p.stdout().slice(-4000)}\n${p.stderr().slice(-4000)}`);
      throw err;
    }
  }, 180_000); // 22-63 s measured on the shared 2-core machine (63 s at load 20-24); the bound is for a loaded CI
});
