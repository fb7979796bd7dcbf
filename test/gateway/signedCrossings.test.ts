/**
 * Signed payloads from the payment side, in process between two real
 * Mosquitto brokers: a settlement voucher and a signed deny list pass only
 * when they verify against the investor root (checked before they enter the
 * hospital's network), and are then published on the hospital broker (the
 * deny list on the terminal's own denylist topic, where its sync client
 * applies it); forged, altered, expired, misaddressed and replayed ones are
 * refused with their codes and archived, and none reaches the hospital broker.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHex, toHex, utf8 } from '../../src/codecs/bytes.js';
import { encodeSettlementVoucher } from '../../src/codecs/settlementVoucher.js';
import { encodeSignedDenylist, parseSignedDenylist, type SignedDenylist } from '../../src/codecs/signedDenylist.js';
import { parseJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { signSettlementVoucher } from '../../src/crypto/settlementVoucher.js';
import { signDenylist, verifySignedDenylist } from '../../src/crypto/signedDenylist.js';
import { privateKeyFromSeed, rawPublicKey, signMessage } from '../../src/crypto/ed25519.js';
import { encodeServerKeyCertificateBody } from '../../src/codecs/checkpoint.js';
import { isTallyError } from '../../src/errors.js';
import { Gateway } from '../../src/gateway/Gateway.js';
import { certifiedServerKey } from '../support/insuranceRig.js';
import { makeInvestor } from '../support/signedLedger.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';

const VECTORS = join(import.meta.dirname, '..', '..', 'firmware-protocol', 'vectors', 'gateway-signed-denylist.json');

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const card = (n: number) => n.toString(16).padStart(16, '0');

describe('signed payloads from the payment side', () => {
  const investor = makeInvestor();
  const server = certifiedServerKey(investor, 'SRV-1');
  const stranger = certifiedServerKey(makeInvestor(), 'SRV-1');
  let payment: RunningMosquitto;
  let hospital: RunningMosquitto;
  let gateway: Gateway;
  let dir: string;
  let sender: MqttClient;
  let onHospital: MqttClient;
  const seen: { topic: string; payload: string; retain: boolean }[] = [];

  beforeAll(async () => {
    [payment, hospital] = await Promise.all([startMosquitto(), startMosquitto()]);
    dir = mkdtempSync(join(tmpdir(), 'tally-gateway-signed-'));
    onHospital = await mqtt.connectAsync(hospital.url, { clientId: `h-${process.pid}` });
    onHospital.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }));
    await onHospital.subscribeAsync(['tally/#'], { qos: 1 });
    gateway = await Gateway.start({ gatewayId: 'gw1', dbPath: join(dir, 'gateway.db'), mllp: { host: '127.0.0.1', port: 0 }, payment: payment.url, hospitalBroker: hospital.url, rootPublicKey: investor.rootPublicKey });
    sender = await mqtt.connectAsync(payment.url, { clientId: `p-${process.pid}` });
    // the gateway's payment leg subscribes once connected
    await new Promise<void>((resolve) => {
      const probe = (): void => {
        void sender.publishAsync('tally/gw/v1/denylist/PROBE', 'x', { qos: 1 }).then(() => {
          if ((gateway.stats().refused.GW_MALFORMED ?? 0) > 0) resolve();
          else setTimeout(probe, 50);
        });
      };
      probe();
    });
    await until(() => gateway.archive().query({ limit: 10_000 }).length > 0, 'probe archived');
    probed = Math.max(...gateway.archive().query({ limit: 10_000 }).map((r) => r.seq));
  });

  afterAll(async () => {
    await sender?.endAsync();
    await onHospital?.endAsync();
    await gateway?.close();
    await Promise.all([payment?.close(), hospital?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (topic: string, payload: string | Uint8Array) => sender.publishAsync(topic, Buffer.from(payload), { qos: 1 });
  let probed = 0;
  const archived = () => gateway.archive().query({ limit: 10_000, afterSeq: probed }).filter((r) => r.direction === 'payment-to-hospital' && r.originalLength > 1); // not the readiness probes ('x')

  it('a settlement voucher that verifies passes to the hospital broker, once; forged, expired, misaddressed ones do not', async () => {
    const fields = { orderId: 'ORD-1', orderHash: '00'.repeat(32), terminalId: 'T-OCT1', item: 'OCT', amountFen: 12_000, insurerFen: 9_000, patientFen: 3_000, settlementId: 'S-1', issuedAt: Date.now(), expiresAt: Date.now() + 600_000 };
    const good = encodeSettlementVoucher(signSettlementVoucher(server.key, server.certificate, fields));
    await send('tally/gw/v1/settlement/T-OCT1', good);
    await send('tally/gw/v1/settlement/T-OCT1', good);
    await until(() => seen.some((m) => m.topic === 'tally/gw/v1/settlement/T-OCT1'), 'voucher on the hospital broker');
    await send('tally/gw/v1/settlement/T-OCT1', encodeSettlementVoucher(signSettlementVoucher(stranger.key, stranger.certificate, { ...fields, settlementId: 'S-2' })));
    await send('tally/gw/v1/settlement/T-OCT1', good.replace('"amountFen\\":12000', '"amountFen\\":1200'));
    await send('tally/gw/v1/settlement/T-OCT1', encodeSettlementVoucher(signSettlementVoucher(server.key, server.certificate, { ...fields, settlementId: 'S-3', expiresAt: Date.now() - 1 })));
    await send('tally/gw/v1/settlement/T-OTHER', encodeSettlementVoucher(signSettlementVoucher(server.key, server.certificate, { ...fields, settlementId: 'S-4' })));
    await until(() => archived().filter((r) => r.type === 'settlement.voucher').length >= 6, 'six voucher verdicts');
    const verdicts = archived()
      .filter((r) => r.type === 'settlement.voucher')
      .map((r) => `${r.verdict}:${r.code ?? ''}`);
    expect(verdicts).toEqual(['passed:', 'duplicate:GW_DUPLICATE', 'refused:GW_BAD_SIGNATURE', 'refused:GW_BAD_SIGNATURE', 'refused:GW_STALE_SIGNED', 'refused:GW_BAD_FIELD']);
    const crossed = seen.filter((m) => m.topic.startsWith('tally/gw/v1/settlement/'));
    expect(crossed).toHaveLength(1);
    expect(JSON.parse(crossed[0]!.payload)).toEqual(JSON.parse(good));
  });

  it('a signed deny list passes onto the terminal topic, retained when full; forged, altered, misaddressed and replayed ones do not', async () => {
    const full = signDenylist(server.key, server.certificate, { terminalId: 'T-OCT1', issuedAt: Date.now(), denylist: { transaction: 1, version: 5, kind: 'full', add: [card(1), card(2)] } });
    const delta = signDenylist(server.key, server.certificate, { terminalId: 'T-OCT1', issuedAt: Date.now(), denylist: { transaction: 2, version: 6, kind: 'delta', baseVersion: 5, add: [card(3)], remove: [card(1)] } });
    const forged = signDenylist(stranger.key, stranger.certificate, { terminalId: 'T-OCT1', issuedAt: Date.now(), denylist: { transaction: 3, version: 7, kind: 'full', add: [] } });
    const altered = { ...delta, body: delta.body.replace(card(3), card(4)) };
    const elsewhere = signDenylist(server.key, server.certificate, { terminalId: 'T-OTHER', issuedAt: Date.now(), denylist: { transaction: 4, version: 8, kind: 'full', add: [] } });
    for (const list of [full, delta, full, forged, altered]) await send('tally/gw/v1/denylist/T-OCT1', encodeSignedDenylist(list));
    await send('tally/gw/v1/denylist/T-OCT1', encodeSignedDenylist(elsewhere));
    await send('tally/gw/v1/denylist/T-OCT1', '{"format":"tallystick-signed-denylist/1"');
    await until(() => archived().filter((r) => r.type === 'denylist.signed').length >= 7, 'seven deny-list verdicts');
    const verdicts = archived()
      .filter((r) => r.type === 'denylist.signed')
      .map((r) => `${r.verdict}:${r.code ?? ''}`);
    expect(verdicts).toEqual(['passed:', 'passed:', 'duplicate:GW_DUPLICATE', 'refused:GW_BAD_SIGNATURE', 'refused:GW_BAD_SIGNATURE', 'refused:GW_BAD_FIELD', 'refused:GW_MALFORMED']);
    await until(() => seen.filter((m) => m.topic === 'tally/v1/terminal/T-OCT1/denylist').length >= 2, 'both lists on the terminal topic');
    const lists = seen.filter((m) => m.topic === 'tally/v1/terminal/T-OCT1/denylist');
    expect(lists).toHaveLength(2);
    // what the terminal's sync client parses: the deny list as the server sent it, nothing of the envelope
    expect(parseJsonPayload('denylist', utf8(lists[0]!.payload))).toEqual({ transaction: 1, version: 5, kind: 'full', add: [card(1), card(2)] });
    expect(parseJsonPayload('denylist', utf8(lists[1]!.payload))).toEqual({ transaction: 2, version: 6, kind: 'delta', baseVersion: 5, add: [card(3)], remove: [card(1)] });
    expect(seen.some((m) => m.topic.includes('T-OTHER'))).toBe(false);
    // the retained full list is what a terminal that connects later gets
    const late = await mqtt.connectAsync(hospital.url, { clientId: `late-${process.pid}` });
    const retained: string[] = [];
    late.on('message', (_t, p, packet) => packet.retain && retained.push(p.toString()));
    await late.subscribeAsync('tally/v1/terminal/T-OCT1/denylist', { qos: 1 });
    await until(() => retained.length === 1, 'the retained full list');
    expect(JSON.parse(retained[0]!).version).toBe(5);
    await late.endAsync();
    expect(gateway.archive().verify().problems).toEqual([]);
  });

  it('golden vectors (firmware-protocol/gateway-signed.md): each verifies or is refused as recorded', () => {
    if (process.env.UPDATE_VECTORS) {
      const root = privateKeyFromSeed(fromHex('11'.repeat(32)));
      const key = privateKeyFromSeed(fromHex('22'.repeat(32)));
      const certBody = encodeServerKeyCertificateBody({ serverId: 'SRV-1', publicKey: toHex(rawPublicKey(key)), motherCardId: '0102030405060708', issuedAt: 1_790_000_000 });
      const certificate = { body: certBody, signature: toHex(signMessage(root, utf8(certBody))) };
      const list = signDenylist(key, certificate, { terminalId: 'T-OCT1', issuedAt: 1_790_000_000_000, denylist: { transaction: 7, version: 5, kind: 'full', add: [card(1), card(2)] } });
      const cases = [
        { name: 'full list', list: encodeSignedDenylist(list), verdict: 'ok' },
        { name: 'delta list', list: encodeSignedDenylist(signDenylist(key, certificate, { terminalId: 'T-OCT1', issuedAt: 1_790_000_000_000, denylist: { transaction: 8, version: 6, kind: 'delta', baseVersion: 5, add: [card(3)], remove: [card(1)] } })), verdict: 'ok' },
        { name: 'body altered after signing', list: encodeSignedDenylist({ ...list, body: list.body.replace(card(2), card(9)) }), verdict: 'BAD_SIGNED_DENYLIST' },
        { name: 'certificate from another root', list: encodeSignedDenylist({ ...list, serverCertificate: { body: certBody, signature: toHex(signMessage(key, utf8(certBody))) } }), verdict: 'BAD_SIGNED_DENYLIST' },
      ];
      writeFileSync(VECTORS, `${JSON.stringify({ rootPublicKey: toHex(rawPublicKey(root)), cases }, null, 2)}\n`);
    }
    const vectors = JSON.parse(readFileSync(VECTORS, 'utf8')) as { rootPublicKey: string; cases: { name: string; list: string; verdict: string }[] };
    expect(vectors.cases.length).toBeGreaterThanOrEqual(4);
    for (const c of vectors.cases) {
      let verdict = 'ok';
      try {
        verifySignedDenylist(parseSignedDenylist(utf8(c.list)) as SignedDenylist, fromHex(vectors.rootPublicKey));
      } catch (err) {
        verdict = isTallyError(err) ? err.code : 'crash';
      }
      expect(`${c.name}: ${verdict}`).toBe(`${c.name}: ${c.verdict}`);
    }
  });
});
