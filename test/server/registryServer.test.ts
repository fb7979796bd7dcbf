/**
 * The registry in a running ingest server behind a real Mosquitto: an export
 * POSTed to the server, a terminal syncing over MQTT that loads one registered
 * and one unknown batch from a clinic it is not registered to; the server's
 * own registry check (its timer, not a call from the test) raises the alerts.
 * The ingest server hosting the HTTP API with an admin token (registry
 * writes on). And `tally server run` as its own process: the admin token from
 * --admin-token-file guards the registry writes and imports of its HTTP API.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { createIngestServer } from '../../src/server/IngestServer.js';
import { stopChild } from '../support/process.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';
import { stationExport } from './registryFixtures.js';

let broker: RunningMosquitto;
let rig: ServerRig;
const investor = makeInvestor();
const TOKEN = 'hosted-token-0123456789abcdef';

beforeAll(async () => {
  broker = await startMosquitto();
  rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: 0, workerThreads: 0, registryCheckMs: 100 });
});
afterAll(async () => {
  await rig?.close();
  await broker?.close();
});

describe('registry in the running server', () => {
  it('imports over HTTP and alerts on an unregistered batch and a terminal in the wrong clinic', async () => {
    const registered = makeBatch(investor, 'CL-1', 1, 5);
    const stray = makeBatch(investor, 'CL-1', 2, 5);
    const res = await fetch(`${rig.server.httpUrl}/api/registry/import`, { method: 'POST', body: stationExport(investor, 'ST-1', [registered]) });
    expect(res.status).toBe(200);
    await rig.store.registry.putTerminal({ terminalId: 'T-REG', clinicCode: 'CL-2', status: 'expected', addedAt: 1 });

    const ledger = new SignedLedger(investor, 'T-REG', 'CL-1');
    ledger.loadBatch(registered);
    ledger.use(registered, 1);
    ledger.loadBatch(stray);
    const sync = createSyncClient({ outbox: new InMemoryOutbox(ledger), brokerUrl: broker.url, pollMs: 50 });
    await sync.drained(20_000);
    await sync.stop();

    const alerts = async () => ((await (await fetch(`${rig.server.httpUrl}/api/alerts`)).json()) as { data: Array<{ kind: string; terminalId: string; detail: string }> }).data;
    await waitFor(async () => (await alerts()).length >= 2, 10_000, 'the registry alerts');
    const found = await alerts();
    expect(found.map((a) => a.kind).sort()).toEqual(['batch-not-registered', 'terminal-wrong-clinic']);
    expect(found.find((a) => a.kind === 'batch-not-registered')?.detail).toContain(stray.batchIdHex);
    const batches = ((await (await fetch(`${rig.server.httpUrl}/api/registry/batches`)).json()) as { data: Array<{ batchId: string; terminalId?: string }> }).data;
    expect(batches).toEqual([expect.objectContaining({ batchId: registered.batchIdHex, terminalId: 'T-REG' })]);
  });
});

describe('the ingest server hosts the HTTP API with the admin token', () => {
  it('turns registry writes on with adminToken, and refuses a token it could not use before starting anything', async () => {
    const store = rig.store;
    const server = await createIngestServer({ store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, httpPort: 0, adminToken: TOKEN, workerThreads: 0 });
    try {
      const post = (auth?: string) =>
        fetch(`${server.httpUrl}/api/registry/terminals`, { method: 'POST', body: JSON.stringify({ terminalId: 'T-HOSTED', clinicCode: 'CL-H' }), headers: auth ? { authorization: auth } : {} });
      expect((await post()).status).toBe(401);
      expect((await post(`Bearer ${TOKEN}`)).status).toBe(201);
      expect(await store.registry.registeredTerminal('T-HOSTED')).toMatchObject({ clinicCode: 'CL-H', status: 'expected' });
      // the rig's server has no token: writes off there
      expect((await fetch(`${rig.server.httpUrl}/api/registry/terminals`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(403);
    } finally {
      await server.stop();
    }
    const options = { store, rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, workerThreads: 0 };
    await expect(createIngestServer({ ...options, httpPort: 0, adminToken: 'short' })).rejects.toThrow(/at least 16 characters/);
    await expect(createIngestServer({ ...options, adminToken: TOKEN })).rejects.toThrow(/give httpPort too/);
    // the HTTP port taken: refused (what it had started is stopped again)
    await expect(createIngestServer({ ...options, httpPort: Number(new URL(rig.server.httpUrl!).port), adminToken: TOKEN })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('tally server run with --admin-token-file', () => {
  it('starts its HTTP API with registry writes guarded by the token from the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-server-run-'));
    const token = 'run-token-abcdef0123456789';
    writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o600 });
    const storePath = join(dir, 'server.db');
    const tally = join(__dirname, '../../dist/src/cli/tally.js');
    const args = ['server', 'run', '--broker', broker.url, '--store', storePath, '--root', toHex(investor.rootPublicKey), '--http-port', '0', '--admin-token-file', join(dir, 'admin-token')];
    const child: ChildProcess = spawn(process.execPath, [tally, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TALLY_LOG_LEVEL: 'warn', TALLY_ADMIN_TOKEN: '' } });
    try {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => /reports at http:\/\/127\.0\.0\.1:\d+/.test(out) || child.exitCode !== null, 20_000, 'tally server run to start');
      expect(out).toContain('(registry writes on)');
      const url = /reports at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
      const post = (auth?: string) =>
        fetch(`${url}/api/registry/clinics`, { method: 'POST', body: JSON.stringify({ clinicCode: 'CL-RUN', name: 'Run Clinic', pricePerUse: 9_000 }), headers: auth ? { authorization: auth } : {} });
      expect((await post()).status).toBe(401);
      expect((await post('Bearer not-the-token-at-all')).status).toBe(401);
      expect((await post(`Bearer ${token}`)).status).toBe(201);
      const clinics = (await (await fetch(`${url}/api/registry/clinics`)).json()) as { data: Array<{ clinicCode: string }> };
      expect(clinics.data.map((c) => c.clinicCode)).toEqual(['CL-RUN']);
      // an import wants the token too on a server that has one
      const file = stationExport(investor, 'ST-RUN', [makeBatch(investor, 'CL-RUN', 1, 3)]);
      const importing = (auth?: string) => fetch(`${url}/api/registry/import`, { method: 'POST', body: file, headers: auth ? { authorization: auth } : {} });
      expect((await importing()).status).toBe(401);
      expect((await importing(`Bearer ${token}`)).status).toBe(200);
    } finally {
      await stopChild(child);
    }
    expect(child.exitCode).toBe(0);
    const store = await createServerStore({ kind: 'sqlite', path: storePath });
    try {
      expect(await store.registry.clinics()).toEqual([expect.objectContaining({ clinicCode: 'CL-RUN', pricePerUse: 9_000 })]);
      expect((await store.registry.stations()).map((st) => st.stationId)).toEqual(['ST-RUN']);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tally server run --worker-threads', () => {
  const tally = join(__dirname, '../../dist/src/cli/tally.js');
  const threadsOfRunningServer = async (workerThreads: string): Promise<number> => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-server-threads-'));
    const args = ['server', 'run', '--broker', broker.url, '--store', join(dir, 'server.db'), '--root', toHex(investor.rootPublicKey), '--worker-threads', workerThreads];
    const child: ChildProcess = spawn(process.execPath, [tally, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TALLY_LOG_LEVEL: 'warn' } });
    try {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out.includes('ingest server running') || child.exitCode !== null, 20_000, 'tally server run to start');
      return readdirSync(`/proc/${child.pid}/task`).length;
    } finally {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('runs the ingest on that many worker threads, and refuses a count out of range', async () => {
    const none = await threadsOfRunningServer('0');
    const three = await threadsOfRunningServer('3');
    expect(three - none).toBe(3);
    const refused = spawnSync(process.execPath, [tally, 'server', 'run', '--broker', broker.url, '--store', ':memory:', '--root', toHex(investor.rootPublicKey), '--worker-threads=65'], { encoding: 'utf8' });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/--worker-threads 0 to 64/);
  });
});
