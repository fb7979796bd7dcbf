/** Messages from the server to a terminal, through a real Mosquitto: validated, refused with a reason, last good state kept, always answered. */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJsonPayload, parseJsonPayload, type ConfigPayload, type ResponsePayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createSyncClient, type SyncClient, type SyncState } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeInvestor, type Investor } from '../support/signedLedger.js';
import { busyLedger, startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

let broker: RunningMosquitto;
let investor: Investor;
let server: MqttClient;
const responses: ResponsePayload[] = [];
const statuses = new Map<string, string>();
const heartbeats: unknown[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
  investor = makeInvestor();
  // plays the server's side of the downlink and listens to the terminal's uplink
  server = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  await server.subscribeAsync(['tally/v1/terminal/+/response', 'tally/v1/terminal/+/status', 'tally/v1/terminal/+/heartbeat'], { qos: 1 });
  server.on('message', (topic, payload) => {
    if (topic.endsWith('/response')) responses.push(parseJsonPayload('response', payload));
    if (topic.endsWith('/status')) statuses.set(topic.split('/')[3]!, parseJsonPayload('status', payload).state);
    if (topic.endsWith('/heartbeat')) heartbeats.push(parseJsonPayload('heartbeat', payload));
  });
});
afterAll(async () => {
  await server?.endAsync();
  await broker?.close();
});

const config = (version: number, extra: Partial<ConfigPayload> = {}): ConfigPayload => ({
  transaction: 100 + version,
  version,
  clinicCode: 'CL-1',
  policy: { reportBatchSize: 40, maxReportsPerSecond: 30, heartbeatSeconds: 120, ackTimeoutSeconds: 7 },
  ...extra,
});

async function sendRaw(terminalId: string, kind: 'config' | 'denylist' | 'time' | 'resend', payload: string | Uint8Array, retain = false): Promise<void> {
  await server.publishAsync(terminalTopic(terminalId, kind), typeof payload === 'string' ? payload : Buffer.from(payload), { qos: 1, retain });
}

async function responseTo(transaction: number): Promise<ResponsePayload> {
  await waitFor(() => responses.some((r) => r.transaction === transaction), 5000, `response to ${transaction}`);
  return responses.find((r) => r.transaction === transaction)!;
}

describe('sync: server messages', () => {
  let sync: SyncClient;
  const saved: SyncState[] = [];
  const times: number[] = [];
  const id = 'T-DOWN';
  let outbox: InMemoryOutbox;

  beforeAll(async () => {
    outbox = new InMemoryOutbox(busyLedger(investor, id, 10));
    sync = createSyncClient({
      outbox,
      brokerUrl: broker.url,
      saveState: (s) => saved.push(s),
      onServerTime: (t) => times.push(t),
      heartbeatExtras: () => ({ lastSeq: 10, reader: 'ready' }),
    });
    await waitFor(() => sync.subscribed() && statuses.get(id) === 'online', 5000, 'online and subscribed');
  });
  afterAll(async () => {
    await sync?.stop();
  });

  it('applies a valid config, refuses a bad or stale one, and keeps the last good', async () => {
    await sendRaw(id, 'config', encodeJsonPayload('config', config(2, { connection: { keepaliveSeconds: 45, reconnectSeconds: 3 } })));
    expect((await responseTo(102)).status).toBe('ok');
    expect(sync.client.options).toMatchObject({ keepalive: 45, reconnectPeriod: 3000 });
    expect(sync.policy()).toMatchObject({ reportBatchSize: 40, maxReportsPerSecond: 30, heartbeatMs: 120_000, ackTimeoutMs: 7000 });
    expect(saved.at(-1)?.config?.version).toBe(2);

    await sendRaw(id, 'config', JSON.stringify({ ...config(3), policy: { reportBatchSize: 0 } }));
    expect(await responseTo(103)).toMatchObject({ status: 'error', error: { code: 'schema' } });
    await sendRaw(id, 'config', encodeJsonPayload('config', config(1)));
    expect(await responseTo(101)).toMatchObject({ status: 'error', error: { code: 'stale-version' } });
    await sendRaw(id, 'config', encodeJsonPayload('config', config(4, { clinicCode: 'CL-OTHER' })));
    expect(await responseTo(104)).toMatchObject({ status: 'error', error: { code: 'wrong-clinic' } });
    await sendRaw(id, 'config', '\u0000garbage');
    await waitFor(() => sync.refusals().some((r) => r.reason === 'malformed'), 5000, 'malformed refusal');

    expect(sync.state().config?.version).toBe(2);
    expect(sync.policy().reportBatchSize).toBe(40);
    expect(sync.refusals().map((r) => r.reason)).toEqual(expect.arrayContaining(['schema', 'stale-version', 'wrong-clinic', 'malformed']));
  });

  it('applies full and differential deny lists in version order and refuses a delta it cannot apply', async () => {
    const a = '00000000000000aa';
    const b = '00000000000000bb';
    const c = '00000000000000cc';
    await sendRaw(id, 'denylist', encodeJsonPayload('denylist', { transaction: 201, version: 5, kind: 'full', add: [a, b] }));
    expect((await responseTo(201)).status).toBe('ok');
    await sendRaw(id, 'denylist', encodeJsonPayload('denylist', { transaction: 202, version: 6, kind: 'delta', baseVersion: 5, add: [c], remove: [a] }));
    expect((await responseTo(202)).status).toBe('ok');
    expect(sync.state().denylist).toEqual({ version: 6, cards: [b, c] });
    await sendRaw(id, 'denylist', encodeJsonPayload('denylist', { transaction: 203, version: 9, kind: 'delta', baseVersion: 8, add: [a] }));
    expect(await responseTo(203)).toMatchObject({ status: 'error', error: { code: 'version-mismatch' } });
    await sendRaw(id, 'denylist', encodeJsonPayload('denylist', { transaction: 204, version: 4, kind: 'full', add: [] }));
    expect(await responseTo(204)).toMatchObject({ status: 'error', error: { code: 'stale-version' } });
    expect(sync.state().denylist).toEqual({ version: 6, cards: [b, c] });
  });

  it('passes a plausible server time on and refuses one from 1970', async () => {
    const now = Date.UTC(2026, 10, 22, 3);
    await sendRaw(id, 'time', encodeJsonPayload('time', { transaction: 301, serverTime: now }));
    expect((await responseTo(301)).status).toBe('ok');
    expect(times).toEqual([now]);
    await sendRaw(id, 'time', encodeJsonPayload('time', { transaction: 302, serverTime: 1000 }));
    expect(await responseTo(302)).toMatchObject({ status: 'error', error: { code: 'implausible-time' } });
    expect(times).toEqual([now]);
  });

  it('sends a heartbeat with the queue depth and the last refusal', async () => {
    await sync.sendHeartbeat();
    await waitFor(() => heartbeats.length > 0, 5000, 'heartbeat');
    expect(heartbeats.at(-1)).toMatchObject({ queueDepth: outbox.ledger.lastSeq, lastSeq: 10, reader: 'ready', configVersion: 2, denylistVersion: 6, lastRefusal: { kind: 'time', reason: 'implausible-time' } });
  });
});

describe('sync: resend, status and last will', () => {
  let rig: ServerRig;
  beforeAll(async () => {
    rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 100 });
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('sends acknowledged entries again when the server asks, and the server dedupes them', async () => {
    const id = 'T-RESEND';
    const outbox = new InMemoryOutbox(busyLedger(investor, id, 50));
    const sync = createSyncClient({ outbox, brokerUrl: broker.url, pollMs: 50 });
    await sync.drained(10_000);
    const inserted = rig.server.ingest.stats.entriesInserted;
    await sendRaw(id, 'resend', encodeJsonPayload('resend', { transaction: 401, fromSeq: 20, toSeq: 29 }));
    expect((await responseTo(401)).status).toBe('ok');
    await waitFor(() => rig.server.ingest.stats.entriesDuplicate >= 10, 5000, 'duplicates');
    expect(rig.server.ingest.stats.entriesInserted).toBe(inserted);
    expect(await rig.store.entryCount(id)).toBe(outbox.ledger.lastSeq);
    await sendRaw(id, 'resend', encodeJsonPayload('resend', { transaction: 402, fromSeq: 5000 }));
    expect(await responseTo(402)).toMatchObject({ status: 'error', error: { code: 'not-found' } });
    await sync.stop();
    await waitFor(() => statuses.get(id) === 'offline', 5000, 'offline after stop');
  });

  it('is marked offline by its last will when the link dies, online again when it is back', async () => {
    const id = 'T-WILL';
    const sync = createSyncClient({ outbox: new InMemoryOutbox(busyLedger(investor, id, 5)), brokerUrl: broker.url, mqttOptions: { keepalive: 1 } });
    await waitFor(() => statuses.get(id) === 'online', 5000, 'online');
    // cut the TCP connection under mqtt.js: no DISCONNECT, so the broker publishes the will
    sync.client.stream.destroy();
    await waitFor(() => statuses.get(id) === 'offline', 10_000, 'offline by will');
    await waitFor(() => statuses.get(id) === 'online', 10_000, 'online after reconnect');
    // retained: a newcomer learns the state at once
    const late = await mqtt.connectAsync(broker.url);
    const seen = new Promise<string>((resolve) => late.on('message', (_t, p) => resolve(parseJsonPayload('status', p).state)));
    await late.subscribeAsync(terminalTopic(id, 'status'));
    expect(await seen).toBe('online');
    await late.endAsync();
    await sync.stop();
  });

  it('answers a batch claim online through the server', async () => {
    const a = createSyncClient({ outbox: new InMemoryOutbox(busyLedger(investor, 'T-CLAIM-A', 5)), brokerUrl: broker.url });
    const b = createSyncClient({ outbox: new InMemoryOutbox(busyLedger(investor, 'T-CLAIM-B', 5)), brokerUrl: broker.url });
    await waitFor(() => a.subscribed() && b.subscribed(), 5000, 'subscribed');
    expect(await a.claimBatch('1234567812345678', 3, 'CL-1')).toEqual({ granted: true });
    expect(await b.claimBatch('1234567812345678', 3, 'CL-1')).toEqual({ granted: false, holder: 'T-CLAIM-A' });
    await a.stop();
    await b.stop();
  });
});
