/** The production broker shape against a real Mosquitto: mutual TLS with our node-forge CA, CN as user name, per-terminal ACL. */
import { X509Certificate } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import {
  commonNameOf,
  createCertificateAuthority,
  createKeyAndCsr,
  issueClientCertificate,
  issueServerCertificate,
  SERVER_IDENTITY,
  toPkcs12,
  type CertificateAuthority,
} from '../../src/pki/certificateAuthority.js';
import { isTallyError } from '../../src/errors.js';
import { createSyncClient } from '../../src/sync/SyncClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { InMemoryOutbox, makeInvestor } from '../support/signedLedger.js';
import { busyLedger, startServerRig } from '../support/syncHarness.js';

let ca: CertificateAuthority;
let broker: RunningMosquitto;
const identities = new Map<string, IClientOptions>();

function provision(id: string, authority = ca, allowServerIdentity = false): IClientOptions {
  const { keyPem, csrPem } = createKeyAndCsr(id); // on the terminal
  const certPem = issueClientCertificate(authority, csrPem, { expectedCommonName: id, allowServerIdentity }); // at the CA
  return { ca: ca.certPem, cert: certPem, key: keyPem, rejectUnauthorized: true };
}

beforeAll(async () => {
  ca = createCertificateAuthority();
  const serverCert = issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  broker = await startMosquitto({ tls: { caCertPem: ca.certPem, serverCertPem: serverCert.certPem, serverKeyPem: serverCert.keyPem } });
  for (const id of ['T-A', 'T-B']) identities.set(id, provision(id));
  identities.set(SERVER_IDENTITY, provision(SERVER_IDENTITY, ca, true));
});
afterAll(async () => {
  await broker?.close();
});

async function connect(options: IClientOptions, protocolVersion: 4 | 5 = 5, url = broker.url): Promise<MqttClient> {
  return mqtt.connectAsync(url, { ...options, protocolVersion, reconnectPeriod: 0, connectTimeout: 5000 });
}

function collect(client: MqttClient): Array<{ topic: string; payload: Buffer }> {
  const got: Array<{ topic: string; payload: Buffer }> = [];
  client.on('message', (topic, payload) => got.push({ topic, payload }));
  return got;
}

describe('PKI', () => {
  it('issues a client certificate with CN = terminal id, chained to the CA', () => {
    const cert = new X509Certificate(identities.get('T-A')!.cert as string);
    expect(cert.subject).toBe('CN=T-A');
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(commonNameOf(identities.get('T-A')!.cert as string)).toBe('T-A');
    const server = new X509Certificate(issueServerCertificate(ca).certPem);
    expect(server.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(server.subjectAltName).toContain('DNS:localhost');
  });

  it('refuses a CSR for another identity, the server identity, a wildcard or a tampered request', () => {
    const { csrPem } = createKeyAndCsr('T-A');
    const refused = (fn: () => unknown): boolean => {
      try {
        fn();
        return false;
      } catch (err) {
        return isTallyError(err, 'PKI_REFUSED');
      }
    };
    expect(refused(() => issueClientCertificate(ca, csrPem, { expectedCommonName: 'T-B' }))).toBe(true);
    expect(refused(() => issueClientCertificate(ca, createKeyAndCsr(SERVER_IDENTITY).csrPem, { expectedCommonName: SERVER_IDENTITY }))).toBe(true);
    expect(refused(() => issueClientCertificate(ca, createKeyAndCsr('#').csrPem, { expectedCommonName: '#' }))).toBe(true);
    const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    der[der.length - 1] = der[der.length - 1]! ^ 0xff; // a signature byte
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(refused(() => issueClientCertificate(ca, tampered, { expectedCommonName: 'T-A' }))).toBe(true);
    expect(refused(() => issueClientCertificate(ca, 'not a csr', { expectedCommonName: 'T-A' }))).toBe(true);
  });

  it('exports key, certificate and CA as PKCS#12', () => {
    const p12 = toPkcs12({ keyPem: identities.get('T-A')!.key as string, certPem: identities.get('T-A')!.cert as string }, ca.certPem, 'secret');
    expect(p12[0]).toBe(0x30); // a DER SEQUENCE
    expect(p12.length).toBeGreaterThan(2000);
  });
});

describe('mutual TLS at a real Mosquitto', () => {
  it('refuses a client without a certificate and one whose certificate another CA issued', async () => {
    await expect(connect({ ca: ca.certPem, rejectUnauthorized: true })).rejects.toThrow();
    const rogueCa = createCertificateAuthority({ commonName: 'rogue' });
    const { keyPem, csrPem } = createKeyAndCsr('T-A');
    const rogueCert = issueClientCertificate(rogueCa, csrPem, { expectedCommonName: 'T-A' });
    await expect(connect({ ca: ca.certPem, cert: rogueCert, key: keyPem, rejectUnauthorized: true })).rejects.toThrow();
  });

  it.each([5, 4] as const)('lets terminal A publish under its own topics only (MQTT %s)', async (protocolVersion) => {
    const server = await connect(identities.get(SERVER_IDENTITY)!, protocolVersion, broker.serverUrl);
    const received = collect(server);
    await server.subscribeAsync('tally/v1/terminal/+/report', { qos: 1 });
    const a = await connect(identities.get('T-A')!, protocolVersion);
    const investor = makeInvestor();
    const ledger = busyLedger(investor, 'T-A', 5);
    const payload = Buffer.from(encodeReport({ transaction: 1, certificate: ledger.certificate, entries: ledger.entries }));

    // as B: the broker drops it (MQTT 5 says "not authorized" in the PUBACK)
    let refusedCode: number | undefined;
    try {
      const packet = await a.publishAsync(terminalTopic('T-B', 'report'), payload, { qos: 1 });
      refusedCode = (packet as { reasonCode?: number } | undefined)?.reasonCode;
    } catch (err) {
      refusedCode = (err as { code?: number }).code;
    }
    if (protocolVersion === 5) expect(refusedCode).toBe(0x87);
    // as itself: delivered
    await a.publishAsync(terminalTopic('T-A', 'report'), payload, { qos: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(received.map((m) => m.topic)).toEqual([terminalTopic('T-A', 'report')]);

    // nor may A read B's downlink: Mosquitto grants the subscription but delivers nothing the ACL forbids
    const downlink = collect(a);
    await a.subscribeAsync([terminalTopic('T-B', 'ack'), terminalTopic('T-A', 'ack')], { qos: 1 });
    await server.publishAsync(terminalTopic('T-B', 'ack'), 'for B', { qos: 1 });
    await server.publishAsync(terminalTopic('T-A', 'ack'), 'for A', { qos: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(downlink.map((m) => m.payload.toString())).toEqual(['for A']);
    await a.endAsync();
    await server.endAsync();
  });

  it('drains a terminal to the ingest server (a shared-subscription worker), both over mutual TLS', async () => {
    const investor = makeInvestor();
    const rig = await startServerRig({ rootPublicKey: investor.rootPublicKey, brokerUrl: broker.serverUrl, mqttOptions: identities.get(SERVER_IDENTITY)!, sharedGroup: 'ingest' });
    const outbox = new InMemoryOutbox(busyLedger(investor, 'T-B', 300));
    const sync = createSyncClient({ outbox, brokerUrl: broker.url, mqttOptions: identities.get('T-B')!, pollMs: 50 });
    try {
      await sync.drained(20_000);
      expect((await rig.store.entries('T-B', 1, 1000)).map((e) => e.raw)).toEqual(outbox.ledger.entries);
    } finally {
      await sync.stop();
      await rig.close();
    }
  });
});
