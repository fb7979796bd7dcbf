/**
 * Audit finding 2: one terminal's certificate could take over another
 * terminal's MQTT session (`mosquitto_sub --cert T-B.pem -i terminal-T-A`).
 * Against a real Mosquitto with config/mosquitto/mtls.conf and the real
 * mosquitto_sub: the client id is bound to the certificate's CN on the
 * terminals' listener, so the intruder gets its own session and T-A stays
 * connected with its queued messages; a client holding T-A's own certificate
 * can still take T-A's session, and the server raises connection-flapping
 * when a terminal keeps reconnecting.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createCertificateAuthority, createKeyAndCsr, issueClientCertificate, issueServerCertificate, SERVER_IDENTITY, type CertificateAuthority } from '../../src/pki/certificateAuthority.js';
import { createSyncClient, type SyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeInvestor } from '../support/signedLedger.js';
import { busyLedger, startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

let ca: CertificateAuthority;
let broker: RunningMosquitto;
let dir: string;
const identities = new Map<string, IClientOptions & { cert: string; key: string }>();

beforeAll(async () => {
  ca = createCertificateAuthority();
  dir = mkdtempSync(join(tmpdir(), 'tally-takeover-'));
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const serverCert = issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  broker = await startMosquitto({ tls: { caCertPem: ca.certPem, serverCertPem: serverCert.certPem, serverKeyPem: serverCert.keyPem } });
  for (const id of ['T-A', 'T-B', SERVER_IDENTITY]) {
    const { keyPem, csrPem } = createKeyAndCsr(id);
    const certPem = issueClientCertificate(ca, csrPem, { expectedCommonName: id, allowServerIdentity: id === SERVER_IDENTITY });
    writeFileSync(join(dir, `${id}.pem`), certPem);
    writeFileSync(join(dir, `${id}-key.pem`), keyPem);
    identities.set(id, { ca: ca.certPem, cert: certPem, key: keyPem, rejectUnauthorized: true });
  }
});
afterAll(async () => {
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The real mosquitto_sub with a terminal's certificate files; resolves with its exit code once it exits */
function mosquittoSub(certOf: string, args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'mosquitto_sub',
      ['-h', '127.0.0.1', '-p', String(broker.port), '--cafile', join(dir, 'ca.pem'), '--cert', join(dir, `${certOf}.pem`), '--key', join(dir, `${certOf}-key.pem`), '-q', '1', ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

/** A server-side watcher on the servers' listener: every status T-A publishes */
async function watchStatuses(terminalId: string): Promise<{ client: MqttClient; states: string[] }> {
  const client = await mqtt.connectAsync(broker.serverUrl, { ...identities.get(SERVER_IDENTITY)!, protocolVersion: 5, reconnectPeriod: 0 });
  const states: string[] = [];
  client.on('message', (_topic, payload, packet) => {
    if (!packet.retain) states.push(parseJsonPayload('status', payload).state);
  });
  await client.subscribeAsync(terminalTopic(terminalId, 'status'), { qos: 1 });
  return { client, states };
}

function closedOldConnections(): number {
  return broker.log().split('\n').filter((line) => line.includes('already connected, closing old connection')).length;
}

describe('the MQTT client id is bound to the certificate (real Mosquitto, real mosquitto_sub)', () => {
  let rig: ServerRig;
  let sync: SyncClient;
  beforeAll(async () => {
    const investor = makeInvestor();
    rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.serverUrl, mqttOptions: identities.get(SERVER_IDENTITY)!, flapping: { connections: 5, windowMs: 60_000 } });
    sync = createSyncClient({ outbox: new InMemoryOutbox(busyLedger(investor, 'T-A', 5)), brokerUrl: broker.url, mqttOptions: identities.get('T-A')!, pollMs: 50 });
    await sync.drained(20_000);
  });
  afterAll(async () => {
    await sync?.stop();
    await rig?.close();
  });

  it("refuses T-B's certificate the session of T-A, eight times: T-A stays connected, no last will", async () => {
    const watcher = await watchStatuses('T-A');
    let closesOfT_A = 0;
    sync.client.on('close', () => closesOfT_A++);
    const before = closedOldConnections();
    for (let i = 0; i < 8; i++) {
      const run = await mosquittoSub('T-B', ['-i', 'terminal-T-A', '-t', terminalTopic('T-A', 'ack'), '-E']);
      expect(run.code, run.stderr).toBe(0); // it did connect, as T-B
    }
    // a ping round trip on T-A's connection: anything the broker did to it has happened
    await sync.client.publishAsync(terminalTopic('T-A', 'heartbeat'), JSON.stringify({ time: Date.now(), queueDepth: 0, lastSeq: 5, uptimeSeconds: 1 }), { qos: 1 });
    expect(closedOldConnections() - before).toBe(0);
    expect(closesOfT_A).toBe(0);
    expect(sync.connected()).toBe(true);
    expect(watcher.states).toEqual([]);
    expect((await rig.store.alerts()).filter((a) => a.kind === 'connection-flapping')).toEqual([]);
    // the broker renamed each of them to its certificate's CN
    expect(broker.log()).toMatch(/New client connected from 127\.0\.0\.1:\d+ as T-B /);
    await watcher.client.endAsync();
  });

  it("keeps a message queued for T-A's offline session for T-A, not for an intruder presenting its client id", async () => {
    const session = { ...identities.get('T-A')!, clientId: 'terminal-T-A', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 };
    // T-A's daemon is away for this part (its sync client would take the session back at once)
    await sync.stop();
    const a = await mqtt.connectAsync(broker.url, session);
    await a.subscribeAsync(terminalTopic('T-A', 'ack'), { qos: 1 });
    await a.endAsync();
    const server = await mqtt.connectAsync(broker.serverUrl, { ...identities.get(SERVER_IDENTITY)!, protocolVersion: 5, reconnectPeriod: 0 });
    await server.publishAsync(terminalTopic('T-A', 'ack'), 'queued for T-A', { qos: 1 });
    const intruder = await mosquittoSub('T-B', ['-i', 'terminal-T-A', '-c', '-t', terminalTopic('T-A', 'ack'), '-W', '1']);
    expect(intruder.code, intruder.stderr).not.toBeNull();
    const back = await mqtt.connectAsync(broker.url, session);
    const got: string[] = [];
    back.on('message', (_t, payload) => got.push(payload.toString()));
    await waitFor(() => got.length > 0, 10_000, 'the queued message');
    expect(got).toEqual(['queued for T-A']);
    await back.endAsync();
    await server.endAsync();
  });
});

describe('a terminal whose session keeps being taken', () => {
  it("raises connection-flapping at the server when a copy of T-A's own certificate keeps taking its session", async () => {
    const investor = makeInvestor();
    const rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.serverUrl, mqttOptions: identities.get(SERVER_IDENTITY)!, flapping: { connections: 5, windowMs: 60_000 } });
    const sync = createSyncClient({ outbox: new InMemoryOutbox(busyLedger(investor, 'T-A', 5)), brokerUrl: broker.url, mqttOptions: identities.get('T-A')!, pollMs: 50 });
    const watcher = await watchStatuses('T-A');
    try {
      await sync.drained(20_000);
      let connects = 0;
      sync.client.on('connect', () => connects++);
      for (let i = 1; i <= 5; i++) {
        const run = await mosquittoSub('T-A', ['-i', 'anything', '-t', terminalTopic('T-A', 'ack'), '-E']);
        expect(run.code, run.stderr).toBe(0);
        // the same certificate is the same client: T-A was closed; wait for its reconnect before the next
        await waitFor(() => connects >= i && sync.connected(), 15_000, `T-A back after takeover ${i}`);
      }
      await waitFor(async () => (await rig.store.alerts()).some((a) => a.kind === 'connection-flapping' && a.terminalId === 'T-A'), 10_000, 'the flapping alert');
      const alerts = (await rig.store.alerts()).filter((a) => a.kind === 'connection-flapping');
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.detail).toMatch(/^connected \d+ times in 1 min \(last will offline \d+ times\)/);
      expect(watcher.states.filter((s) => s === 'offline').length).toBeGreaterThanOrEqual(5);
    } finally {
      await watcher.client.endAsync();
      await sync.stop();
      await rig.close();
    }
  });
});
