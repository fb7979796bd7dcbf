/**
 * connectMqtt: mqtt:// and mqtts:// through our own stream builder (what
 * mqtt.connect would have made of the URL), anything else through mqtt.connect.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectMqtt } from '../../src/sync/connectMqtt.js';
import { startMosquitto } from '../support/mosquitto.js';

const NO_RETRY = { reconnectPeriod: 0, connectTimeout: 2000 };
// options only: the client is made, never connected (nothing to end)
const UNCONNECTED = { ...NO_RETRY, manualConnect: true };

describe('connectMqtt', () => {
  it('reads host, port, credentials and TLS from the URL as mqtt.connect does', async () => {
    const plain = connectMqtt('mqtt://user%40x:p%3Ass@127.0.0.1:1', UNCONNECTED);
    expect(plain.options).toMatchObject({ protocol: 'mqtt', host: '127.0.0.1', port: 1, username: 'user@x', password: 'p:ss' });
    const secure = connectMqtt('mqtts://localhost', UNCONNECTED);
    expect(secure.options).toMatchObject({ protocol: 'mqtts', host: 'localhost', port: 8883 });
    // a client certificate turns mqtt:// into mqtts://
    const upgraded = connectMqtt('mqtt://127.0.0.1:2', { ...UNCONNECTED, cert: 'CERT', key: 'KEY' });
    expect(upgraded.options).toMatchObject({ protocol: 'mqtts', port: 2 });
    const ws = connectMqtt('ws://127.0.0.1:3/mqtt', UNCONNECTED);
    expect(ws.options).toMatchObject({ protocol: 'ws', port: 3 });
  });

  it('connects to a real broker, publishes and receives', async () => {
    const broker = await startMosquitto();
    onTestFinished(() => broker.close());
    const client = connectMqtt(broker.url, { ...NO_RETRY, clientId: 'connect-test', protocolVersion: 5 });
    onTestFinished(() => void client.endAsync(true));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const got = new Promise<string>((resolve) => client.on('message', (_topic, payload) => resolve(payload.toString())));
    await client.subscribeAsync('t/1', { qos: 1 });
    await client.publishAsync('t/1', 'hello', { qos: 1 });
    expect(await got).toBe('hello');
  });
});
