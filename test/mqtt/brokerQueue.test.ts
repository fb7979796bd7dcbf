/**
 * The project's Mosquitto config queues reports for an ingest worker that is
 * away by bytes, not by count: a fleet coming back after an outage sends more
 * reports at once than Mosquitto's default queue of 1000 messages, and none may
 * be dropped on the way (they would come back only after the terminals' ack
 * timeouts, minutes later).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/syncHarness.js';

let broker: RunningMosquitto;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(() => broker?.close());

describe('broker queue for an ingest worker that is away', () => {
  it('keeps 3,000 reports of 18 KB (three times the default count) for a persistent session and delivers each', async () => {
    const clientId = 'ingest-away';
    const topic = 'tally/v1/terminal/+/report';
    const session = { clientId, protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
    const away = await mqtt.connectAsync(broker.url, session);
    await away.subscribeAsync(topic, { qos: 1 });
    await away.endAsync();

    const reports = 3000;
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const payload = Buffer.alloc(18_500, 7);
    for (let i = 0; i < reports; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, reports - i) }, (_, k) => publisher.publishAsync(`tally/v1/terminal/T-${(i + k) % 50}/report`, Buffer.concat([Buffer.from(`${i + k}:`), payload]), { qos: 1 })));
    }
    await publisher.endAsync();

    const received = new Set<string>();
    const back = mqtt.connect(broker.url, { ...session, reconnectPeriod: 0 });
    back.on('message', (_topic, message) => received.add(message.subarray(0, message.indexOf(0x3a)).toString()));
    try {
      await waitFor(() => received.size >= reports, 30_000, `${reports} queued reports delivered`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received.size).toBe(reports);
      expect(broker.log()).not.toMatch(/Outgoing messages are being dropped/);
    } finally {
      await back.endAsync();
    }
  });
});
