/**
 * tally server run --config FILE (issue 11): the server's settings in a YAML/JSON file through the same schema
 * system as the terminal's, TALLY_* overrides, a flag on the command line winning over both. As its own process
 * (the built CLI) behind a real Mosquitto: a wrong file is refused with every wrong field and its code, before
 * anything starts; a right one starts the server with everything from the file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverRunCommand } from '../../src/cli/commands/server.js';
import { toHex } from '../../src/codecs/bytes.js';
import { settingsOf } from '../../src/config/schema.js';
import { loadServerConfig, SERVER_SETTINGS } from '../../src/config/serverConfig.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { stopChild } from '../support/process.js';
import { makeInvestor } from '../support/signedLedger.js';
import { waitFor } from '../support/syncHarness.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');
const investor = makeInvestor();
let broker: RunningMosquitto;
let dir: string;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = mkdtempSync(join(tmpdir(), 'tally-server-config-'));
});
afterAll(async () => {
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the server settings', () => {
  it('every option of tally server run has its setting, and every setting with a flag is an option of it', () => {
    const options = new Set([...serverRunCommand.help.matchAll(/--([a-z][a-z0-9-]+)/g)].map((m) => m[1]!));
    options.delete('config');
    const flags = new Set([...settingsOf(SERVER_SETTINGS).values()].flatMap((leaf) => (leaf.flag ? [leaf.flag] : [])));
    expect([...flags].sort()).toEqual([...options].sort());
    expect(flags.size).toBe(28);
  });

  it('the file and the environment give the flags they set (not defaults); the environment wins over the file', () => {
    const file = join(dir, 'flags.yaml');
    writeFileSync(file, 'server: {store: a.db, workerThreads: 0}\nmqtt: {brokerUrl: "mqtt://h:1883", protocolVersion: 4}\nhttp: {httpsProxy: true, port: 8080}\npki: {est: {host: 0.0.0.0}}\n');
    const { flags, settings } = loadServerConfig(file, { TALLY_SERVER_STORE: 'b.db', TALLY_LOG_LEVEL: 'warn' });
    expect(flags).toEqual({ store: 'b.db', 'worker-threads': '0', broker: 'mqtt://h:1883', mqtt: '4', 'https-proxy': true, 'http-port': '8080', 'est-host': '0.0.0.0' });
    expect(settings.log.level).toBe('warn');
    expect(settings.pki.revocationCheckMs).toBe(5000);
    expect(loadServerConfig(undefined, {}).flags).toEqual({});
  });
});

describe('tally server run --config', () => {
  it('refuses a wrong file with every wrong field and its code, a variable named as such, and starts nothing', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `server: {store: ${join(dir, 'never.db')}, signatureCheck: sometimes}\nhttp: {port: 70000}\nnonsense: 1\nmqtt: {brokerUrl: "${broker.url}"}\n`);
    const run = spawnSync(process.execPath, [TALLY, 'server', 'run', '--config', bad, '--root', toHex(investor.rootPublicKey)], {
      encoding: 'utf8',
      env: { ...process.env, TALLY_MQTT_PROTOCOL_VERSION: '6', TALLY_HTTP_PROT: '1' },
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('4 problems');
    expect(run.stderr).toContain('  nonsense: unknown setting [CONFIG_UNKNOWN_SETTING 9020]');
    expect(run.stderr).toContain('  server.signatureCheck: must be one of chain-anchored, every-entry (got "sometimes") [CONFIG_NOT_ALLOWED 9023]');
    expect(run.stderr).toContain('  http.port: must be at most 65535 (got 70000) [CONFIG_OUT_OF_RANGE 9022]');
    expect(run.stderr).toContain('  TALLY_MQTT_PROTOCOL_VERSION (environment, sets mqtt.protocolVersion): must be at most 5 (got 6) [CONFIG_OUT_OF_RANGE 9022]');
    expect(run.stderr).toMatch(/\[CONFIG 9002\]/);
    expect(run.stderr).toContain('"event":"cli-refused"');
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(join(dir, 'never.db'))).toBe(false);
  });

  it('starts with everything from a right file; a flag on the command line wins over it', async () => {
    const token = 'config-token-abcdef0123456789';
    writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'root.pub'), `${toHex(investor.rootPublicKey)}\n`);
    const good = join(dir, 'server.yaml');
    writeFileSync(
      good,
      [
        '# yaml-language-server: $schema=../schemas/server-config.schema.json',
        'server:',
        `  store: ${join(dir, 'file.db')}`,
        `  rootFile: ${join(dir, 'root.pub')}`,
        '  workerThreads: 0',
        'mqtt:',
        '  brokerUrl: mqtt://127.0.0.1:1   # nothing listens here: --broker on the command line wins',
        '  protocolVersion: 5',
        'http:',
        '  port: 0',
        `  adminTokenFile: ${join(dir, 'admin-token')}`,
        'log:',
        '  level: warn',
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(process.execPath, [TALLY, 'server', 'run', '--config', good, '--broker', broker.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TALLY_ADMIN_TOKEN: '', TALLY_LOG_LEVEL: undefined },
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => /reports at http:\/\/127\.0\.0\.1:\d+/.test(out) || child.exitCode !== null, 20_000, 'tally server run to start');
      expect(out).toContain('ingest server running (store sqlite)');
      expect(out).toContain('(registry writes on)'); // http.adminTokenFile
      const url = /reports at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
      const post = (auth?: string) =>
        fetch(`${url}/api/registry/clinics`, { method: 'POST', body: JSON.stringify({ clinicCode: 'CL-CFG', name: 'Config Clinic', pricePerUse: 100 }), headers: auth ? { authorization: auth } : {} });
      expect((await post()).status).toBe(401);
      expect((await post(`Bearer ${token}`)).status).toBe(201);
      expect(existsSync(join(dir, 'file.db'))).toBe(true);
      expect(out).not.toContain('warning:');
    } finally {
      await stopChild(child);
    }
    expect(child.exitCode).toBe(0);
  });
});
