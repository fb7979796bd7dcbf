/**
 * The gateway in process between two real Mosquitto brokers (loopback here;
 * the namespaced test puts them on two networks): allowed types cross
 * canonically, every refusal is answered with its ACK code and archived,
 * resends do not pass twice, the department queues ack, retry and dead-letter,
 * and the slot counts reach the hospital broker.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseAck } from '../../src/codecs/hl7/hl7.js';
import { Gateway } from '../../src/gateway/Gateway.js';
import { GatewayStore } from '../../src/gateway/GatewayStore.js';
import { MllpClient } from '../../src/sim/his/MllpClient.js';
import { chargeMessage, orderMessage, patientNo, registrationMessage } from '../../src/sim/his/hisMessages.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const enc = (s: string) => new TextEncoder().encode(s);
const today = new Date().toISOString().slice(0, 10).replace(/-/g, '');

async function subscriber(url: string, topic: string): Promise<{ client: MqttClient; messages: { topic: string; payload: string }[] }> {
  const client = await mqtt.connectAsync(url, { clientId: `t-${Math.random().toString(36).slice(2)}` });
  const messages: { topic: string; payload: string }[] = [];
  client.on('message', (t, p) => messages.push({ topic: t, payload: p.toString() }));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, messages };
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('gateway between two brokers', () => {
  let payment: RunningMosquitto;
  let hospital: RunningMosquitto;
  let gateway: Gateway;
  let his: MllpClient;
  let dir: string;
  let seen: Awaited<ReturnType<typeof subscriber>>;

  beforeAll(async () => {
    [payment, hospital] = await Promise.all([startMosquitto(), startMosquitto()]);
    dir = mkdtempSync(join(tmpdir(), 'tally-gateway-'));
    seen = await subscriber(payment.url, 'tally/#');
    gateway = await Gateway.start({
      gatewayId: 'gw1',
      dbPath: join(dir, 'gateway.db'),
      mllp: { host: '127.0.0.1', port: 0 },
      payment: payment.url,
      hospitalBroker: hospital.url,
      capacity: { OPH: 3, ENT: 10 },
      rates: { 'charge.posted': { perSecond: 1, burst: 3 } },
      delivery: { ackTimeoutMs: 50, maxAttempts: 3 },
    });
    his = await MllpClient.connect('127.0.0.1', gateway.address.port);
  });

  afterAll(async () => {
    his?.close();
    await gateway?.close();
    await seen?.client.endAsync();
    await Promise.all([payment?.close(), hospital?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const h = (controlId: string, subsystem: 'registration' | 'self-service' | 'charging' = 'registration') => ({ subsystem, facility: 'HOSP1', controlId, time: Date.now() });

  it('passes a registration, an order and a charge canonically, each acknowledged AA', async () => {
    const acks = await Promise.all([
      his.send(registrationMessage(h('R1'), patientNo(1), 'OPH', today)),
      his.send(orderMessage(h('O1'), 'ORM^O01', patientNo(1), 'OPH', 'ORD1', { code: 'OCT01', text: 'OCT scan' })),
      his.send(chargeMessage(h('C1', 'charging'), patientNo(1), 'OPH', { transactionId: 'T1', code: 'OCT01', quantity: 1, amount: '120.00' })),
    ]);
    expect(acks.map((a) => parseAck(a).code)).toEqual(['AA', 'AA', 'AA']);
    expect(acks.map((a) => parseAck(a).controlId)).toEqual(['R1', 'O1', 'C1']);
    await until(() => seen.messages.filter((m) => !m.topic.includes('/dept/')).length >= 3, 'three crossings');
    const crossed = seen.messages.filter((m) => !m.topic.includes('/dept/'));
    expect(crossed.map((m) => m.topic).sort()).toEqual(['tally/gw/v1/charge', 'tally/gw/v1/order', 'tally/gw/v1/registration']);
    const registration = JSON.parse(crossed.find((m) => m.topic.endsWith('registration'))!.payload);
    expect(registration).toMatchObject({ type: 'patient.registration', source: { application: 'REG', facility: 'HOSP1', controlId: 'R1' }, body: { department: 'OPH', patient: { id: 'P0000001' } } });
    // no byte of HL7 framing crossed
    for (const m of crossed) expect(m.payload).not.toMatch(/MSH|\|/);
  });

  it('a resend of a message that passed is acknowledged again and not passed twice', async () => {
    const before = seen.messages.length;
    const ack = parseAck(await his.send(registrationMessage(h('R1'), patientNo(1), 'OPH', today)));
    expect(ack.code).toBe('AA');
    expect(ack.text).toContain('duplicate');
    await gateway.drained();
    expect(seen.messages.slice(before).filter((m) => m.topic.endsWith('/registration'))).toHaveLength(0);
  });

  it.each([
    ['an unknown type', enc('MSH|^~\\&|REG|HOSP1|||20261202||ADT^A08^ADT_A01|X1|P|2.5.1\rPID|1||P1'), 'AR', 'GW_NOT_ALLOWED'],
    ['a wrong field', registrationMessage(h('X2'), { ...patientNo(2), birthDate: '19801340' }, 'OPH', today), 'AE', 'GW_BAD_FIELD'],
    ['injection in a name', registrationMessage(h('X3'), { ...patientNo(2), familyName: '<script>alert(1)</script>' }, 'OPH', today), 'AE', 'GW_BAD_FIELD'],
    ['garbage', enc('GET / HTTP/1.1'), 'AR', 'GW_MALFORMED'],
  ])('refuses %s', async (_name, message, code, tallyCode) => {
    const ack = parseAck(await his.send(message));
    expect(ack.code).toBe(code);
    expect(ack.tallyCode).toContain(tallyCode);
  });

  it('a burst past the rate limit is refused AR, then passes again', async () => {
    const acks = await Promise.all([1, 2, 3, 4, 5].map((n) => his.send(chargeMessage(h(`B${n}`, 'charging'), patientNo(n), 'OPH', { transactionId: `TB${n}`, code: 'X', quantity: 1, amount: '1' }))));
    const codes = acks.map((a) => parseAck(a));
    expect(codes.filter((a) => a.code === 'AR' && a.tallyCode.startsWith('GW_RATE_LIMITED'))).toHaveLength(3);
  });

  it('bytes outside a frame are refused with GW_FRAMING before the frame that follows is answered', async () => {
    const [first, second] = await his.sendRaw(new Uint8Array([...enc('hello'), 0x0b, ...registrationMessage(h('F1'), patientNo(5), 'OPH', today), 0x1c, 0x0d]), 2);
    expect(parseAck(first!).tallyCode).toContain('GW_FRAMING');
    expect(parseAck(second!).code).toBe('AA');
  });

  it('archives every verdict, queryable, and the chain verifies; an altered row is found', async () => {
    await gateway.drained();
    const store = gateway.archive();
    expect(store.query({ verdict: 'passed', type: 'patient.registration' }).length).toBeGreaterThanOrEqual(2);
    expect(store.query({ patientId: 'P0000001' }).map((r) => r.verdict)).toEqual(expect.arrayContaining(['passed', 'duplicate']));
    expect(store.query({ verdict: 'refused', code: 'GW_NOT_ALLOWED' })).toHaveLength(1);
    expect(store.verify().problems).toEqual([]);
    const copy = join(dir, 'copy.db');
    await store.db.backup(copy);
    const raw = new Database(copy);
    raw.exec('DROP TRIGGER archive_no_update');
    raw.prepare("UPDATE archive SET patient_id = 'P9' WHERE seq = 2").run();
    raw.close();
    const altered = new GatewayStore(copy, { readonly: true });
    expect(altered.verify().problems[0]).toMatchObject({ seq: 2, problem: 'hash does not match the row' });
    altered.close();
    expect(() => store.db.prepare('DELETE FROM archive WHERE seq = 1').run()).toThrow(/append-only/);
  });

  it('department queue: a subscribed department acks; without one the delivery is retried then dead-lettered', async () => {
    const oph = await subscriber(payment.url, 'tally/gw/v1/dept/OPH/patient');
    oph.client.on('message', (_t, p) => {
      const m = JSON.parse(p.toString());
      oph.client.publish('tally/gw/v1/dept/OPH/ack', JSON.stringify({ v: 1, type: 'department.ack', deliveryId: m.deliveryId, department: 'OPH' }), { qos: 1 });
    });
    expect(parseAck(await his.send(registrationMessage(h('D1', 'self-service'), patientNo(11), 'OPH', today))).code).toBe('AA');
    await until(() => gateway.archive().deliveries('acked').some((d) => JSON.parse(d.patient).id === 'P0000011'), 'the OPH ack');
    await oph.client.endAsync();
    expect(parseAck(await his.send(registrationMessage(h('D2'), patientNo(12), 'ENT', today))).code).toBe('AA');
    await until(() => gateway.archive().deliveries('dead').some((d) => d.department === 'ENT'), 'the ENT dead letter');
    const dead = gateway.archive().deliveries('dead').find((d) => d.department === 'ENT')!;
    expect(dead.attempts).toBe(3);
    const enttries = seen.messages.filter((m) => m.topic === 'tally/gw/v1/dept/ENT/patient').map((m) => JSON.parse(m.payload).attempt);
    expect(enttries).toEqual([1, 2, 3]);
    await until(() => gateway.archive().query({ verdict: 'dead-letter' }).some((r) => r.department === 'ENT' && r.code === 'GW_DEAD_LETTER'), 'the dead letter archived');
  });

  it('a forged ack from the payment side is refused and archived', async () => {
    const c = await mqtt.connectAsync(payment.url);
    await c.publishAsync('tally/gw/v1/dept/OPH/ack', '{"v":1,"type":"department.ack","deliveryId":1,"department":"ENT"}', { qos: 1 });
    await c.publishAsync('tally/gw/v1/dept/OPH/ack', 'not json', { qos: 1 });
    await c.endAsync();
    await until(() => gateway.archive().query({ verdict: 'refused' }).filter((r) => r.direction === 'payment-to-hospital').length === 2, 'two refusals from the payment side');
  });

  it('the medical information receiver publishes the remaining OPH slots on the hospital broker', async () => {
    const slots = await subscriber(hospital.url, 'tally/hospital/v1/slots/OPH');
    await until(() => slots.messages.length > 0, 'the retained slot count');
    const last = JSON.parse(slots.messages.at(-1)!.payload);
    // R1, F1 and D1 registered for OPH today (R1's resend and the refused ones do not count)
    expect(last).toMatchObject({ department: 'OPH', capacity: 3, booked: 3, remaining: 0 });
    await slots.client.endAsync();
  });

  it("the receiver takes the day's voucher bookings from the payment side off the remaining slots; a misaddressed count is refused", async () => {
    const slots = await subscriber(hospital.url, 'tally/hospital/v1/slots/ENT');
    const day = new Date().toISOString().slice(0, 10);
    const server = await mqtt.connectAsync(payment.url, { clientId: `srv-${process.pid}` });
    await server.publishAsync('tally/gw/v1/vouchers/ENT', JSON.stringify({ v: 1, type: 'voucher.bookings', department: 'OPH', visitDate: day, booked: 9 }), { qos: 1 });
    await server.publishAsync('tally/gw/v1/vouchers/ENT', JSON.stringify({ v: 1, type: 'voucher.bookings', department: 'ENT', visitDate: day, booked: 4 }), { qos: 1 });
    await until(() => slots.messages.some((m) => JSON.parse(m.payload).vouchers === 4), 'ENT slots with the voucher bookings');
    // earlier tests registered some ENT patients today: the archive's count of them
    const registered = gateway.archive().registrationsBooked('ENT', day);
    expect(JSON.parse(slots.messages.at(-1)!.payload)).toMatchObject({ department: 'ENT', visitDate: day, capacity: 10, registrations: registered, vouchers: 4, booked: registered + 4, remaining: 6 - registered });
    const verdicts = gateway.archive().query({ type: 'voucher.bookings' }).map((r) => `${r.verdict}:${r.code ?? ''}`);
    expect(verdicts).toEqual(['refused:GW_BAD_FIELD', 'passed:']);
    await server.endAsync();
    await slots.client.endAsync();
  });
});
