/**
 * The terminals' side of the ingest bench, on its own thread: terminals are
 * other machines, so their publishing must not take the server's main thread.
 * Publishes every message at QoS 1 with at most `window` awaiting PUBACK (the
 * broker's receive maximum). Connects first and posts 'ready', starts on
 * 'go' (so the thread's start-up is not timed), then posts 'done' or the error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';

export interface PublisherData {
  readonly url: string;
  readonly messages: ReadonlyArray<{ readonly topic: string; readonly payload: Uint8Array }>;
  readonly window: number;
}

async function publishAll({ url, messages, window }: PublisherData): Promise<void> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
  parentPort!.postMessage('ready');
  await new Promise((resolve) => parentPort!.once('message', resolve));
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < messages.length) {
      const message = messages[next++]!;
      await client.publishAsync(message.topic, Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength), { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  await client.endAsync();
}

publishAll(workerData as PublisherData).then(
  () => parentPort!.postMessage('done'),
  (err: Error) => parentPort!.postMessage({ error: err.message }),
);
