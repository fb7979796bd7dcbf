/**
 * Diode fragmentation over real UDP sockets: the gateway's sender cuts each
 * message into fragments (firmware-protocol/gateway-diode.md, version 2) and
 * sends it twice; a relay between it and the receiver drops, duplicates and
 * reorders datagrams (seeded); the receiver reassembles and publishes to a
 * real Mosquitto. Which messages must be lost follows from what the relay
 * dropped (a fragment index with no copy forwarded): exactly those are
 * reported GW_DIODE_INCOMPLETE, every other one reaches the broker whole and
 * once, and nothing partial reaches it.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/codecs/gateway/declared.js';
import { parseDiodeFragment } from '../../src/codecs/gateway/diodeFrame.js';
import { DiodeReceiver, DiodeSender } from '../../src/gateway/diode.js';
import { StoreThread } from '../../src/gateway/StoreThread.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';

const N = 400;
const SEED = Number(process.env.DIODE_LOSS_SEED ?? 20261207);

function registration(n: number): Uint8Array {
  return encodeCanonical({
    v: 1,
    type: 'patient.registration',
    gatewaySeq: n,
    gatewayId: 'gw1',
    acceptedAt: '2026-12-07T08:00:00.000Z',
    source: { application: 'REG', facility: 'HOSP1', controlId: `D${n}` },
    body: { channel: 'registration', event: 'A04', patient: { id: `P${n}`, familyName: 'Wang', givenName: 'Wei', birthDate: '1980-01-01', sex: 'M' }, department: 'OPH', visitDate: '2026-12-07' },
  });
}

/** Forwards datagrams to the receiver: drops, duplicates and holds back (reorders) some, and logs what it forwarded per (seq, index) */
async function lossyRelay(target: { host: string; port: number }, seed: number): Promise<{ socket: Socket; port: number; forwarded: Map<string, number>; counts: { datagrams: number; dropped: number; duplicated: number; reordered: number } }> {
  let state = seed;
  const random = (): number => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const socket = createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
  const out = createSocket('udp4');
  const forwarded = new Map<string, number>();
  const counts = { datagrams: 0, dropped: 0, duplicated: 0, reordered: 0 };
  let held: { bytes: Buffer; after: number }[] = [];
  const forward = (bytes: Buffer): void => {
    const f = parseDiodeFragment(bytes);
    const key = `${f.seq}|${f.index}`;
    forwarded.set(key, (forwarded.get(key) ?? 0) + 1);
    out.send(bytes, target.port, target.host);
  };
  let flush: NodeJS.Timeout | undefined;
  socket.on('message', (bytes) => {
    counts.datagrams += 1;
    const r = random();
    if (r < 0.08) {
      counts.dropped += 1;
      const f = parseDiodeFragment(bytes);
      const key = `${f.seq}|${f.index}`;
      forwarded.set(key, forwarded.get(key) ?? 0);
    } else if (r < 0.18) {
      counts.reordered += 1;
      held.push({ bytes, after: 1 + Math.floor(random() * 4) });
    } else {
      forward(bytes);
      if (r > 0.95) {
        counts.duplicated += 1;
        forward(bytes);
      }
    }
    const due = held.filter((h) => --h.after <= 0);
    held = held.filter((h) => h.after > 0);
    for (const h of due) forward(h.bytes);
    // what is still held when the sender stops goes out late, not never (reordering, not loss)
    clearTimeout(flush);
    flush = setTimeout(() => {
      for (const h of held.splice(0)) forward(h.bytes);
    }, 20);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  socket.on('close', () => out.close());
  return { socket, port: socket.address().port, forwarded, counts };
}

async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('diode fragments over UDP with loss, reordering and duplicates', () => {
  let broker: RunningMosquitto;
  let dir: string;
  let receiver: DiodeReceiver;
  let senderThread: StoreThread;
  let sub: MqttClient;

  beforeAll(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), 'tally-diode-frag-'));
    receiver = await DiodeReceiver.start({ listen: { host: '127.0.0.1', port: 0 }, dbPath: join(dir, 'receiver.db'), paymentBroker: broker.url, gatewayId: 'gw1', reassemblyTimeoutMs: 300 });
    senderThread = await StoreThread.open(join(dir, 'sender.db'));
    sub = await mqtt.connectAsync(broker.url, { clientId: `diode-sub-${process.pid}` });
  });

  afterAll(async () => {
    await sub?.endAsync();
    await receiver?.close();
    await senderThread?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${N} messages in 48-byte fragments, each sent twice, 8% dropped, 10% reordered, 5% duplicated: the predicted ones lost and reported, the rest delivered whole and once`, async () => {
    const seen = new Map<number, Buffer[]>();
    sub.on('message', (_topic, payload) => {
      const seq = (JSON.parse(payload.toString()) as { gatewaySeq: number }).gatewaySeq;
      seen.set(seq, [...(seen.get(seq) ?? []), payload]);
    });
    await sub.subscribeAsync('tally/gw/v1/registration', { qos: 2 });
    const relay = await lossyRelay(receiver.address, SEED);
    const sender = new DiodeSender(senderThread, { host: '127.0.0.1', port: relay.port }, 'gw1', 48);
    const sent = new Map<number, Buffer>();
    for (let n = 1; n <= N; n++) {
      const payload = registration(n);
      sent.set(n, Buffer.from(payload));
      await sender.publishCrossing(n, 'tally/gw/v1/registration', payload);
      // the relay and the receiver share this event loop: let them read (the real sender is another process)
      await new Promise((r) => setImmediate(r));
    }
    // a message must be lost when some fragment index had no copy forwarded
    const mustLose = new Set<number>();
    await until(() => receiver.reassembly().pending === 0 && receiver.reassembly().messages + receiver.counts.lost === N, 'every message taken or given up').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify({ counts: receiver.counts, reassembly: receiver.reassembly(), relay: relay.counts, refused: receiver.archive().counts() })}`);
    });
    for (const [key, copies] of relay.forwarded) if (copies === 0) mustLose.add(Number(key.split('|')[0]));
    await until(() => seen.size === N - mustLose.size, `${N - mustLose.size} messages on the broker`).catch((err: Error) => {
      throw new Error(`${err.message}: ${seen.size} seen; ${JSON.stringify({ counts: receiver.counts, archive: receiver.archive().counts(), pending: receiver.archive().crossingCount() })}`);
    });
    await receiver.drained();

    const delivered = [...seen.keys()];
    const doubled = [...seen.values()].filter((copies) => copies.length > 1).length;
    const lostReported = receiver.archive().query({ code: 'GW_DIODE_INCOMPLETE', limit: 10_000 }).map((r) => Number(/seq (\d+)/.exec(r.reason ?? '')![1]));
    const figures = { sent: N, delivered: delivered.length, lost: receiver.counts.lost, doubled, relay: relay.counts, reassembly: receiver.reassembly() };
    console.log(JSON.stringify({ diodeLoss: { seed: SEED, ...figures } }));
    // the injection happened
    expect(relay.counts.dropped).toBeGreaterThan(0);
    expect(relay.counts.reordered).toBeGreaterThan(0);
    expect(relay.counts.duplicated).toBeGreaterThan(0);
    expect(mustLose.size, 'some messages lost both copies of a fragment').toBeGreaterThan(0);
    // exactly the predicted ones lost, each reported with its code and seq; the rest delivered once, byte for byte
    expect(new Set(lostReported)).toEqual(mustLose);
    expect(receiver.counts.lost).toBe(mustLose.size);
    expect(doubled).toBe(0);
    expect(delivered.length + mustLose.size).toBe(N);
    for (const seq of delivered) {
      expect(mustLose.has(seq), `lost seq ${seq} reached the broker`).toBe(false);
      expect(seen.get(seq)![0]!.equals(sent.get(seq)!), `seq ${seq} whole`).toBe(true);
    }
    expect(receiver.reassembly().duplicateFragments + receiver.reassembly().lateFragments).toBeGreaterThan(0);
    expect(receiver.archive().verify().problems).toEqual([]);
    relay.socket.close();
    await sender.close();
  });
});
