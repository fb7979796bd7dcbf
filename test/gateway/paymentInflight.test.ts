/**
 * QoS 2 crossings against the payment broker's max_inflight_messages,
 * counted on the broker. Mosquitto (2.0) refuses a QoS 2 PUBLISH past a
 * client's max_inflight_messages (default 20) with PUBREC 0x97; an MQTT
 * 3.1.1 client cannot see that reason code and completes the flow, so the
 * message is lost without a trace. The gateway's default window (16) stays
 * below it; 32, the old default, loses messages (the second case shows it).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway/Gateway.js';
import { hisTraffic } from '../../src/sim/his/HisSimulator.js';
import { MllpClient } from '../../src/sim/his/MllpClient.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';

/** Every payload seen on the broker, counted by a key the caller takes from it */
async function counter(url: string, topics: string[], keyOf: (payload: string) => string): Promise<{ client: MqttClient; counts: Map<string, number>; waitFor: (n: number) => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { clientId: `count-${process.pid}-${Math.random().toString(36).slice(2)}`, clean: true });
  const counts = new Map<string, number>();
  const waiters: { n: number; resolve: () => void }[] = [];
  client.on('message', (_t, payload) => {
    const key = keyOf(payload.toString());
    counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const w of waiters.splice(0)) (counts.size >= w.n ? w.resolve : () => waiters.push(w))();
  });
  await client.subscribeAsync(topics, { qos: 2 });
  return {
    client,
    counts,
    waitFor: (n) => (counts.size >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

describe('QoS 2 crossings against the broker receive maximum', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function broker(): Promise<RunningMosquitto> {
    const b = await startMosquitto({ maxInflight: 20 });
    cleanup.push(() => b.close());
    return b;
  }

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tally-gw-inflight-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  async function crossings(paymentInflight: number | undefined): Promise<{ lost: number; doubled: number; published: number }> {
    const payment = await broker();
    const seen = await counter(payment.url, ['tally/gw/v1/registration', 'tally/gw/v1/order', 'tally/gw/v1/charge'], (p) => (JSON.parse(p) as { source: { controlId: string } }).source.controlId);
    cleanup.push(() => seen.client.endAsync());
    const gateway = await Gateway.start({
      gatewayId: 'gw1',
      dbPath: join(tempDir(), 'gateway.db'),
      mllp: { host: '127.0.0.1', port: 0 },
      payment: payment.url,
      ...(paymentInflight !== undefined ? { paymentInflight } : {}),
      rates: Object.fromEntries(['patient.registration', 'order.placed', 'charge.posted'].map((t) => [t, { perSecond: 1_000_000, burst: 1_000_000 }])),
      delivery: { ackTimeoutMs: 60_000, maxAttempts: 1 },
    });
    cleanup.push(() => gateway.close());
    const messages = [...hisTraffic({ count: 1_500, departments: ['OPH'], prefix: 'IF' })];
    const his = await MllpClient.connect('127.0.0.1', gateway.address.port, { timeoutMs: 60_000 });
    cleanup.push(() => his.close());
    // all pipelined at once: the outbox fills far past the broker's window
    const acks = await Promise.all(messages.map((m) => his.sendRaw(m.wire, 1)));
    expect(acks.filter(([a]) => Buffer.from(a!).toString().includes('MSA|AA')).length).toBe(messages.length);
    await gateway.drained(60_000);
    // every PUBCOMP is in: what the broker took is on its way to the subscriber; a lost one never comes, so the wait is bounded and the count tells
    await Promise.race([seen.waitFor(messages.length), new Promise((r) => setTimeout(r, 15_000))]);
    const doubled = [...seen.counts.values()].filter((n) => n > 1).length;
    const lost = messages.filter((m) => !seen.counts.has(m.controlId)).length;
    return { lost, doubled, published: gateway.stats().published };
  }

  it("the default window against Mosquitto's default max_inflight 20: 1,500 HIS messages, each on the broker once, none lost", async () => {
    expect(await crossings(undefined)).toEqual({ lost: 0, doubled: 0, published: 1_500 });
  }, 120_000);

  it('32 in flight against max_inflight 20 (the old default): the broker drops some while every flow completes', async () => {
    const figures = await crossings(32);
    console.log(JSON.stringify({ inflight32: figures }));
    expect(figures.published).toBe(1_500);
    expect(figures.lost).toBeGreaterThan(0);
  }, 120_000);
});
