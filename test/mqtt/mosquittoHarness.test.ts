import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning } from '../support/process.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';

describe('test/support/mosquitto', () => {
  let broker: RunningMosquitto;
  beforeAll(async () => {
    broker = await startMosquitto({ maxInflight: 7 });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('starts a real Mosquitto on a free loopback port that relays a message', async () => {
    expect(broker.port).not.toBe(1883);
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    await client.subscribeAsync('harness/echo', { qos: 1 });
    const got = new Promise<string>((resolve) => client.on('message', (_t, payload) => resolve(payload.toString())));
    await client.publishAsync('harness/echo', 'hello', { qos: 1 });
    expect(await got).toBe('hello');
    await client.endAsync();
  });

  it('advertises the configured receive maximum', async () => {
    const client = mqtt.connect(broker.url, { protocolVersion: 5 });
    const connack = await new Promise<{ properties?: { receiveMaximum?: number } }>((resolve) => client.once('connect', resolve));
    expect(connack.properties?.receiveMaximum).toBe(7);
    await client.endAsync();
  });

  it('restarts on the same port and stops by PID', async () => {
    const firstPid = broker.pid;
    await broker.restart();
    expect(broker.pid).not.toBe(firstPid);
    expect(isRunning(firstPid)).toBe(false);
    const client = await mqtt.connectAsync(broker.url);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });
});
