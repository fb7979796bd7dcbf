/**
 * Who may move an insurance order. The terminal's requests (start, poll, outcome) are taken over MQTT only, where
 * a real Mosquitto knows each terminal by its TLS certificate (config/mosquitto/mtls.conf, the CN is the user and
 * the ACL's %u): the old HTTP routes refuse everyone with INSURANCE_TERMINAL_HTTP_REFUSED and change nothing; a
 * terminal cannot publish on another's insurance topic (the broker answers "not authorized"), and on its own topic
 * it cannot collect or reverse another terminal's order. The reconciliation wants a console login with a role
 * that may, or the admin token, even before the first user. Each money case counts the platform's settlements and
 * reversals in `tally sim insurance`, its own process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJsonPayload, parseJsonPayload, type InsuranceResultPayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createCertificateAuthority, createKeyAndCsr, issueClientCertificate, issueServerCertificate, SERVER_IDENTITY } from '../../src/pki/certificateAuthority.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { HttpInsurancePlatform } from '../../src/server/insurance/HttpInsurancePlatform.js';
import { TERMINAL_HTTP_ROUTES } from '../../src/server/insurance/insuranceRoutes.js';
import type { Logger } from '../../src/util/logger.js';
import { freeLoopbackPort } from '../support/freePort.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { startPlatformProcess, type PlatformProcess } from '../support/insurancePlatform.js';
import { certifiedServerKey, startInsuranceRig, type InsuranceRig } from '../support/insuranceRig.js';
import { makeInvestor } from '../support/signedLedger.js';
import { startServerRig, type ServerRig } from '../support/syncHarness.js';

const TOKEN = 'route-auth-token-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';
let platform: PlatformProcess;
const warnings: Array<Record<string, unknown>> = [];
const logger: Logger = { trace() {}, debug() {}, info() {}, warn: (obj) => void warnings.push(obj), error() {}, child: () => logger };

beforeAll(async () => {
  platform = await startPlatformProcess();
}, 30_000);
afterAll(async () => {
  await platform?.close();
});

const counters = async () => {
  const c = (await platform.admin('/admin/counters')) as { settlements: number; reversed: number };
  return { settlements: c.settlements, reversed: c.reversed };
};

/** The phone's three calls over HTTP, as the phone page makes them */
async function consentOnPhone(url: string, code: string): Promise<void> {
  const call = async (action: string, body: Record<string, string>, cookie?: string) => {
    const res = await fetch(`${url}/api/insurance/phone/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) }, body: JSON.stringify({ code, ...body }) });
    expect(res.status, action).toBe(200);
    return res.headers.get('set-cookie')?.split(';')[0];
  };
  const phone = await call('open', {});
  await call('quote', { credential: 'EC-DEMO-0001' }, phone);
  await call('consent', {}, phone);
}

describe('the terminal routes over HTTP are refused', () => {
  let rig: InsuranceRig;
  beforeAll(async () => {
    rig = await startInsuranceRig(platform, { adminToken: TOKEN, logger });
  });
  afterAll(async () => {
    await rig?.close();
  });
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${rig.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { status: string; error?: { code: string; number?: number; zh?: string }; data?: unknown; voucher?: unknown } };
  };

  it('an outcome ran=false over HTTP, with or without the admin token, does not reverse a settled order', async () => {
    const auth = await rig.service.start({ terminalId: 'T-1', item: 'OCT', amountFen: 10_000 });
    await consentOnPhone(rig.url, auth.user_code);
    expect((await rig.store.insurance.order(auth.orderId))?.state).toBe('settled');
    const before = await counters();
    warnings.length = 0;
    for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }] as Record<string, string>[]) {
      const answer = await post('/api/insurance/outcome', { orderId: auth.orderId, terminalId: 'T-1', ran: false }, headers);
      expect(answer.status).toBe(403);
      expect(answer.body.error).toMatchObject({ code: 'INSURANCE_TERMINAL_HTTP_REFUSED', number: 6616 });
      expect(answer.body.error?.zh).toContain('MQTT');
    }
    expect((await rig.store.insurance.order(auth.orderId))?.state).toBe('settled');
    expect(await counters()).toEqual(before);
    expect(warnings.filter((w) => w.event === 'insurance.terminal-http-refused' && w.route === '/api/insurance/outcome' && w.code === 'INSURANCE_TERMINAL_HTTP_REFUSED')).toHaveLength(2);
  });

  it('device_authorization makes no order, and token hands out no voucher, even for the real device code', async () => {
    const auth = await rig.service.start({ terminalId: 'T-1', item: 'OCT', amountFen: 2_000 });
    await consentOnPhone(rig.url, auth.user_code);
    const orders = (await rig.store.insurance.ordersBetween(0, Number.MAX_SAFE_INTEGER)).length;
    const started = await post('/api/insurance/device_authorization', { terminalId: 'T-1', item: 'OCT', amountFen: 100 });
    expect(started.status).toBe(403);
    expect(started.body.error?.code).toBe('INSURANCE_TERMINAL_HTTP_REFUSED');
    expect((await rig.store.insurance.ordersBetween(0, Number.MAX_SAFE_INTEGER)).length).toBe(orders);
    const token = await post('/api/insurance/token', { device_code: auth.device_code });
    expect(token.status).toBe(403);
    expect(JSON.stringify(token.body)).not.toContain('voucher');
    expect(TERMINAL_HTTP_ROUTES).toHaveLength(3);
  });

  it('the reconciliation: nobody 401 even before the first user, a wrong token 401, the token 200; then a clinic 403, an auditor 200', async () => {
    const day = new Date().toISOString().slice(0, 10);
    const get = (headers: Record<string, string> = {}) => fetch(`${rig.url}/api/insurance/reconcile?day=${day}`, { headers });
    const nobody = await get();
    expect(nobody.status).toBe(401);
    expect(((await nobody.json()) as { error: { number: number } }).error.number).toBe(6501);
    expect((await get({ authorization: 'Bearer not-the-token-at-all-000' })).status).toBe(401);
    const machine = await get({ authorization: `Bearer ${TOKEN}` });
    expect(machine.status).toBe(200);
    expect(((await machine.json()) as { data: { day: string } }).data.day).toBe(day);

    await addUser(rig.store, { username: 'clinic-x', role: 'clinic', clinic: 'CLINIC-X', password: PASSWORD }, Date.now(), 'logged-by-caller');
    await addUser(rig.store, { username: 'auditor-1', role: 'auditor', password: PASSWORD }, Date.now(), 'logged-by-caller');
    const session = async (username: string) => {
      const res = await fetch(`${rig.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) });
      expect(res.status).toBe(200);
      return res.headers.get('set-cookie')!.split(';')[0]!;
    };
    const clinic = await get({ cookie: await session('clinic-x') });
    expect(clinic.status).toBe(403);
    expect(((await clinic.json()) as { error: { number: number } }).error.number).toBe(6502);
    expect((await get({ cookie: await session('auditor-1') })).status).toBe(200);
    expect(warnings.some((w) => w.event === 'http.refused' && w.url === '/api/insurance/reconcile' && w.status === 403)).toBe(true);
  });
});

describe('over MQTT, a terminal moves its own orders only (real Mosquitto, mutual TLS, the ACL)', () => {
  let broker: RunningMosquitto;
  let server: ServerRig;
  let dir: string;
  const clients: MqttClient[] = [];
  const identities = new Map<string, IClientOptions>();

  beforeAll(async () => {
    const ca = createCertificateAuthority();
    dir = mkdtempSync(join(tmpdir(), 'tally-ins-auth-'));
    const serverCert = issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    broker = await startMosquitto({ tls: { caCertPem: ca.certPem, serverCertPem: serverCert.certPem, serverKeyPem: serverCert.keyPem } });
    for (const id of ['T-A', 'T-B', SERVER_IDENTITY]) {
      const { keyPem, csrPem } = createKeyAndCsr(id);
      identities.set(id, { ca: ca.certPem, cert: issueClientCertificate(ca, csrPem, { expectedCommonName: id, allowServerIdentity: id === SERVER_IDENTITY }), key: keyPem, rejectUnauthorized: true });
    }
    const investor = makeInvestor();
    server = await startServerRig({
      rootPublicKey: investor.rootPublicKey,
      brokerUrl: broker.serverUrl,
      mqttOptions: identities.get(SERVER_IDENTITY)!,
      workerThreads: 0,
      checkpointSigner: certifiedServerKey(investor),
      httpPort: await freeLoopbackPort(),
      adminToken: TOKEN,
      logger,
      insurance: { platform: new HttpInsurancePlatform({ url: platform.url, timeoutMs: 2000 }), intervalS: 1 },
    });
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) await c.endAsync();
    await server?.close();
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A terminal's connection with its own certificate, answering its requests by transaction */
  async function terminal(id: string) {
    const client = await mqtt.connectAsync(broker.url, { ...identities.get(id)!, clientId: `terminal-${id}`, protocolVersion: 5, reconnectPeriod: 0 });
    clients.push(client);
    const waiting = new Map<number, (answer: InsuranceResultPayload) => void>();
    client.on('message', (_topic, payload) => {
      const answer = parseJsonPayload('insurance-result', payload);
      waiting.get(answer.transaction)?.(answer);
    });
    await client.subscribeAsync(terminalTopic(id, 'insurance-result'), { qos: 1 });
    let tx = 0;
    return {
      client,
      ask: async (request: Record<string, unknown>): Promise<InsuranceResultPayload> => {
        const transaction = ++tx;
        const answer = new Promise<InsuranceResultPayload>((resolve) => waiting.set(transaction, resolve));
        await client.publishAsync(terminalTopic(id, 'insurance'), Buffer.from(encodeJsonPayload('insurance', { transaction, ...request } as never)), { qos: 1 });
        return answer;
      },
    };
  }

  it("T-B cannot publish on T-A's topic, nor collect or reverse T-A's order on its own", async () => {
    const a = await terminal('T-A');
    const b = await terminal('T-B');
    const started = await a.ask({ op: 'start', item: 'OCT', amountFen: 15_000 });
    expect(started.status).toBe('ok');
    const { orderId, deviceCode, userCode } = started.data as { orderId: string; deviceCode: string; userCode: string };
    await consentOnPhone(server.server.httpUrl!, userCode);
    expect((await server.store.insurance.order(orderId))?.state).toBe('settled');
    const before = await counters();

    // the broker refuses the publish on another terminal's topic (MQTT 5: PUBACK reason 135, not authorised)
    const forged = Buffer.from(encodeJsonPayload('insurance', { transaction: 99, op: 'outcome', orderId, ran: false }));
    const refusedAtBroker = await b.client.publishAsync(terminalTopic('T-A', 'insurance'), forged, { qos: 1 }).then(
      (packet) => (packet as { reasonCode?: number } | undefined)?.reasonCode,
      (err: Error & { code?: number }) => err.code ?? 135,
    );
    expect(refusedAtBroker).toBe(135);

    // on its own topic the server takes the terminal from the topic: T-A's order is not T-B's
    const reverse = await b.ask({ op: 'outcome', orderId, ran: false });
    expect(reverse).toMatchObject({ status: 'error', error: { code: 'INSURANCE_UNKNOWN_ORDER' } });
    const collect = await b.ask({ op: 'poll', deviceCode });
    expect(collect).toMatchObject({ status: 'error', error: { code: 'INSURANCE_UNKNOWN_ORDER' } });
    expect(JSON.stringify(collect)).not.toContain('voucher');
    expect((await server.store.insurance.order(orderId))?.state).toBe('settled');
    expect(await counters()).toEqual(before);
    expect(warnings.some((w) => w.event === 'insurance.refused' && w.code === 'INSURANCE_UNKNOWN_ORDER' && w.terminalId === 'T-B')).toBe(true);

    // its own terminal collects it and reports the use
    const own = await a.ask({ op: 'poll', deviceCode });
    expect(own).toMatchObject({ status: 'ok', data: { orderId, voucher: expect.any(String) } });
    expect(await a.ask({ op: 'outcome', orderId, ran: true })).toMatchObject({ status: 'ok', data: { state: 'used' } });
  });
});
