/**
 * The gateway between two real networks: the hospital side and the payment
 * side each in a network namespace with its own Mosquitto, the gateway in a
 * third with a veth into each and forwarding off, and every program a real
 * process (`node dist/...`: run `npm run build` first; `npm test` does). The
 * payment side's check is mosquitto_sub on the payment broker, not the
 * gateway's own count.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { declarationForTopic, encodeCanonical, schemaProblem } from '../../src/codecs/gateway/declared.js';
import { ADDRESSES, TwoNetworks, tallyCommand, type StartedProcess } from '../../src/scenario/twoNetworks.js';

const MLLP = `${ADDRESSES.gatewayHospitalLeg}:2575`;
// sim his --count 200: message n is a registration when n % 4 < 2, for department n % 3 (OPH first)
const OPH_BOOKED = Array.from({ length: 200 }, (_, n) => n).filter((n) => n % 4 < 2 && n % 3 === 0).length;
const FUZZ_COUNT = process.env.SOAK === '1' ? Number(process.env.GATEWAY_FUZZ ?? 1_000_000) : 20_000;

interface Seen {
  readonly topic: string;
  readonly payload: Buffer;
}

/** mosquitto_sub on the payment broker, payloads in hex (-F %t %x), ready once it has seen its own probe */
async function paymentSubscriber(net: TwoNetworks): Promise<{ proc: StartedProcess; messages: () => Seen[] }> {
  const proc = net.start('payment', 'mosquitto_sub', ['-h', ADDRESSES.payment, '-p', '1883', '-q', '2', '-t', 'tally/#', '-F', '%t %x']);
  const probe = `tally/probe/${Math.random().toString(36).slice(2)}`;
  for (let i = 0; ; i++) {
    await net.mustRun('payment', 'mosquitto_pub', ['-h', ADDRESSES.payment, '-p', '1883', '-q', '1', '-t', probe, '-m', 'ready']);
    try {
      await proc.waitFor(new RegExp(`^${probe} `), 300);
      break;
    } catch (err) {
      if (i > 30) throw err;
    }
  }
  const messages = (): Seen[] =>
    proc
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('tally/') && !l.startsWith('tally/probe/'))
      .map((l) => {
        const [topic, hex] = l.split(' ') as [string, string];
        return { topic, payload: Buffer.from(hex ?? '', 'hex') };
      });
  return { proc, messages };
}

/** Whatever reached the payment broker conforms to its declaration and is canonical; returns the crossings by sender (application|facility|control id) */
function checkPaymentSide(messages: Seen[]): Map<string, number> {
  const byControlId = new Map<string, number>();
  for (const m of messages) {
    // the departments' own acks are payment-side traffic, published there
    if (/^tally\/gw\/v1\/dept\/[A-Z0-9_]+\/ack$/.test(m.topic)) continue;
    const declaration = declarationForTopic(m.topic);
    expect(declaration, `undeclared topic ${m.topic}`).toBeDefined();
    if (declaration!.accepts === 'ledger-report') continue;
    const value = JSON.parse(m.payload.toString('utf8'));
    expect(schemaProblem(declaration!.schema!, value), m.payload.toString()).toBeUndefined();
    expect(Buffer.from(encodeCanonical(value)).equals(m.payload), 'canonical encoding').toBe(true);
    if (value.source) {
      const key = `${value.source.application}|${value.source.facility}|${value.source.controlId}`;
      byControlId.set(key, (byControlId.get(key) ?? 0) + 1);
    }
  }
  return byControlId;
}

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('gateway between two network namespaces', () => {
  let net: TwoNetworks;
  let dir: string;

  beforeAll(async () => {
    net = await TwoNetworks.create();
    dir = net.scratch('tally-gw-netns-');
    await Promise.all([net.startBroker('hospital'), net.startBroker('payment')]);
  });

  afterAll(async () => {
    await net?.close();
  });

  const UNLIMITED = ['--rate', 'patient.registration=100000/100000,order.placed=100000/100000,charge.posted=100000/100000'];
  const TWO_WAY = ['--payment', `mqtt://${ADDRESSES.payment}:1883`];

  function startGateway(db: string, extra: string[]): StartedProcess {
    const [cmd, args] = tallyCommand(['gateway', 'run', '--db', db, '--mllp', MLLP, '--hospital', `mqtt://${ADDRESSES.hospital}:1883`, '--capacity', 'OPH=40,ENT=40,RAD=40', ...extra]);
    const p = net.start('gateway', cmd, args, { TALLY_LOG_LEVEL: 'error' });
    running.push(p);
    return p;
  }

  // a failed test leaves no gateway holding the MLLP port for the next one
  const running: StartedProcess[] = [];
  afterEach(async () => {
    for (const p of running.splice(0)) await p.stop('SIGKILL');
  });

  it('nothing routes between the sides: each side reaches its own broker, not the other one', async () => {
    expect(await net.canConnect('hospital', ADDRESSES.hospital, 1883)).toMatchObject({ connected: true });
    expect(await net.canConnect('payment', ADDRESSES.payment, 1883)).toMatchObject({ connected: true });
    const across = await net.canConnect('hospital', ADDRESSES.payment, 1883);
    expect(across.connected).toBe(false);
    expect(['ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT']).toContain(across.error);
    expect((await net.canConnect('payment', ADDRESSES.hospital, 1883)).connected).toBe(false);
    // the gateway's namespace reaches both, and does not forward between them
    expect((await net.canConnect('gateway', ADDRESSES.payment, 1883)).connected).toBe(true);
    expect((await net.run('gateway', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('0');
    // with routes pointing at the gateway, its namespace still forwards nothing
    await net.mustRun('hospital', 'ip', ['route', 'add', 'default', 'via', ADDRESSES.gatewayHospitalLeg]);
    await net.mustRun('payment', 'ip', ['route', 'add', 'default', 'via', ADDRESSES.gatewayPaymentLeg]);
    try {
      expect((await net.canConnect('hospital', ADDRESSES.payment, 1883)).connected).toBe(false);
      expect((await net.canConnect('payment', ADDRESSES.hospital, 1883)).connected).toBe(false);
    } finally {
      await net.mustRun('hospital', 'ip', ['route', 'del', 'default']);
      await net.mustRun('payment', 'ip', ['route', 'del', 'default']);
    }
  });

  it('HIS traffic crosses only through the gateway: registrations, orders and charges, canonical, each once; OPH gets its booked patients', async () => {
    const sub = await paymentSubscriber(net);
    const gateway = startGateway(join(dir, 'e2e.db'), [...TWO_WAY, ...UNLIMITED]);
    await gateway.waitFor(/gateway listening on 10\.18\.1\.1:2575/);
    const [dcmd, dargs] = tallyCommand(['gateway', 'department', '--broker', `mqtt://${ADDRESSES.payment}:1883`, '--department', 'OPH', '--count', String(OPH_BOOKED)]);
    const oph = net.start('payment', dcmd, dargs);
    await oph.waitFor(/subscribed to tally\/gw\/v1\/dept\/OPH\/patient/);
    const [cmd, args] = tallyCommand(['sim', 'his', '--gateway', MLLP, '--count', '200', '--departments', 'OPH,ENT,RAD', '--hospital', `mqtt://${ADDRESSES.hospital}:1883`, '--prefix', 'E']);
    const his = net.start('hospital', cmd, args);
    expect(await his.exited()).toBe(0);
    const summary = JSON.parse(his.stdout().trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ sent: 200, answered: 200, byAck: { AA: 200 }, unexpected: 0 });
    await until(() => checkPaymentSide(sub.messages()).size === 200, '200 crossings on the payment broker');
    const crossed = checkPaymentSide(sub.messages());
    expect([...crossed.values()].every((n) => n === 1)).toBe(true);
    // each of OPH's registrations reaches OPH's queue reader, which acknowledges it
    expect(await oph.exited()).toBe(0);
    const patients = oph.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(patients).toHaveLength(OPH_BOOKED);
    expect(patients.every((p) => p.department === 'OPH' && p.type === 'department.patient')).toBe(true);
    await gateway.stop();
    await sub.proc.stop();
  });

  it(`a fuzz run of ${FUZZ_COUNT} hostile messages at the hospital side: 0 crashes, 0 hangs, nothing on the payment broker the allow list does not pass`, async () => {
    const sub = await paymentSubscriber(net);
    const db = join(dir, 'fuzz.db');
    // the declared rate limits stay: the bursts in the stream must meet them
    const gateway = startGateway(db, TWO_WAY);
    await gateway.waitFor(/gateway listening/);
    const results = join(dir, 'fuzz-results.jsonl');
    const seed = Number(process.env.GATEWAY_FUZZ_SEED ?? 20261202);
    const [cmd, args] = tallyCommand(['sim', 'his', '--gateway', MLLP, '--hostile', String(FUZZ_COUNT), '--seed', String(seed), '--connections', '8', '--window', '32', '--results', results]);
    const his = net.start('hospital', cmd, args);
    const code = await his.exited();
    const summary = JSON.parse(his.stdout().trim().split('\n').at(-1)!);
    // every message answered (no hang), every answer what its kind demands
    expect(summary, his.stderr().slice(-2000)).toMatchObject({ sent: FUZZ_COUNT, answered: FUZZ_COUNT, unexpected: 0 });
    expect(code).toBe(0);
    expect(gateway.child.exitCode, 'the gateway did not crash').toBeNull();
    const rows = readFileSync(results, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { controlId: string; expect: string; code: string; kind: string; tallyCode: string; acked: string });
    // keyed by the sender as the gateway read it (a flipped byte may move MSH-10), from its ACK
    const accepted = new Map(rows.filter((r) => r.code === 'AA').map((r) => [r.acked, r]));
    // the gateway's own ACKs say how many passed; the payment broker must show exactly those, each once
    await until(() => checkPaymentSide(sub.messages()).size >= accepted.size, `${accepted.size} crossings`, 120_000);
    const crossed = checkPaymentSide(sub.messages());
    for (const [sender, n] of crossed) {
      expect(n, `${sender} crossed ${n} times`).toBe(1);
      expect(accepted.get(sender), `${sender} reached the payment side without an AA`).toBeDefined();
      expect(accepted.get(sender)!.expect).not.toBe('refuse');
    }
    expect(crossed.size).toBe(accepted.size);
    // still serving, with nothing left behind
    const [vcmd, vargs] = tallyCommand(['sim', 'his', '--gateway', MLLP, '--count', '4', '--prefix', 'AFTER']);
    const after = net.start('hospital', vcmd, vargs);
    expect(await after.exited()).toBe(0);
    await gateway.stop();
    const [acmd, aargs] = tallyCommand(['gateway', 'archive', 'verify', '--db', db]);
    const verify = await net.run('gateway', acmd, aargs);
    expect(verify.stdout).toMatch(/archive verified: \d+ rows, hash chain intact/);
    const byKind: Record<string, Record<string, number>> = {};
    for (const r of rows) {
      byKind[r.kind] ??= {};
      byKind[r.kind]![r.tallyCode || r.code] = (byKind[r.kind]![r.tallyCode || r.code] ?? 0) + 1;
    }
    console.log(JSON.stringify({ fuzz: FUZZ_COUNT, seed, seconds: summary.seconds, byAck: summary.byAck, byTallyCode: summary.byTallyCode, passedToPayment: crossed.size, byKind }));
    await sub.proc.stop();
  }, 3_600_000);

  /**
   * HIS traffic through a gateway that `kill` SIGKILLs and restarts (it gets
   * a restart function and the payment side's crossings so far): every
   * message the HIS had acknowledged reaches the payment broker, none twice.
   */
  async function killedDuringTraffic(name: string, count: number, his: { connections: number; window: number }, kill: (restart: (untilListening?: boolean) => Promise<void>, crossed: () => number, hisDone: () => boolean) => Promise<number>) {
    const sub = await paymentSubscriber(net);
    const db = join(dir, `${name}.db`);
    let gateway = startGateway(db, [...TWO_WAY, ...UNLIMITED]);
    await gateway.waitFor(/gateway listening/);
    const results = join(dir, `${name}-results.jsonl`);
    const [cmd, args] = tallyCommand(['sim', 'his', '--gateway', MLLP, '--count', String(count), '--prefix', name.slice(0, 2).toUpperCase(), '--connections', String(his.connections), '--window', String(his.window), '--results', results]);
    const sim = net.start('hospital', cmd, args);
    const restart = async (untilListening = true): Promise<void> => {
      await gateway.stop('SIGKILL');
      gateway = startGateway(db, [...TWO_WAY, ...UNLIMITED]);
      if (untilListening) await gateway.waitFor(/gateway listening/);
    };
    const kills = await kill(restart, () => checkPaymentSide(sub.messages()).size, () => sim.child.exitCode !== null);
    expect(await sim.exited()).toBe(0);
    const summary = JSON.parse(sim.stdout().trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ sent: count, answered: count, byAck: { AA: count } });
    const acknowledged = readFileSync(results, 'utf8').trim().split('\n').map((l) => JSON.parse(l).acked as string);
    await until(() => checkPaymentSide(sub.messages()).size >= count, `${count} crossings`, 60_000);
    const crossed = checkPaymentSide(sub.messages());
    const lost = acknowledged.filter((id) => !crossed.has(id)).length;
    const doubled = [...crossed.values()].filter((n) => n > 1).length;
    await gateway.stop();
    const [vcmd, vargs] = tallyCommand(['gateway', 'archive', 'verify', '--db', db]);
    expect((await net.run('gateway', vcmd, vargs)).stdout).toMatch(/archive verified: \d+ rows, hash chain intact/);
    const [acmd, aargs] = tallyCommand(['gateway', 'archive', 'counts', '--db', db]);
    const counts = (await net.run('gateway', acmd, aargs)).stdout.trim().split('\n').map((l) => JSON.parse(l));
    await sub.proc.stop();
    return { kills, messages: count, resends: summary.resends as number, lost, doubled, archive: counts };
  }

  it('the gateway killed (SIGKILL) and restarted three times during traffic: nothing it acknowledged is lost, nothing passes twice', async () => {
    const figures = await killedDuringTraffic('kill', 1500, { connections: 4, window: 16 }, async (restart, crossed) => {
      for (const at of [150, 600, 1050]) {
        await until(() => crossed() >= at, `${at} crossings`, 60_000);
        await restart();
      }
      return 3;
    });
    expect(figures).toMatchObject({ kills: 3, lost: 0, doubled: 0 });
    console.log(JSON.stringify({ killRestart: figures }));
  }, 300_000);

  it('the gateway killed (SIGKILL) at random points of its progress: nothing it acknowledged is lost, nothing passes twice, the chain verifies', async () => {
    // each kill waits for a random count of crossings since the last restart, not a time: the payment leg
    // (16 in flight) trails the HIS's acks, so a timer can outlast the HIS while the gateway still drains.
    // Crossings jump by hundreds across a restart that waits for "listening" (64 -> 1030 measured), so
    // the next kill counts from the spawn and can land while the new process drains its outbox.
    const seed = Number(process.env.GATEWAY_KILL_SEED ?? Date.now() % 100_000);
    let state = seed;
    const random = (): number => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const count = 3000;
    const crossedAtKill: number[] = [];
    const figures = await killedDuringTraffic('random-kill', count, { connections: 8, window: 32 }, async (restart, crossed) => {
      let next = 50 + Math.floor(random() * 400);
      while (crossedAtKill.length < 5 && crossed() < count) {
        await until(() => crossed() >= Math.min(next, count), `${next} crossings`, 120_000);
        const now = crossed();
        if (now >= count) break;
        crossedAtKill.push(now);
        await restart(false);
        next = crossed() + 1 + Math.floor(random() * 150);
      }
      return crossedAtKill.length;
    });
    const detail = JSON.stringify({ seed, crossedAtKill });
    expect({ seed, lost: figures.lost, doubled: figures.doubled }, detail).toEqual({ seed, lost: 0, doubled: 0 });
    // each kill counted landed with crossings still to come (in the outbox, or not yet sent by the HIS)
    expect(figures.kills, `kills before the last crossing ${detail}`).toBeGreaterThanOrEqual(3);
    console.log(JSON.stringify({ killRandom: { seed, crossedAtKill, ...figures } }));
  }, 600_000);

  it('one-way mode: the return path cut (everything from the payment side dropped), acks from the gateway itself, each message published once', async () => {
    const sub = await paymentSubscriber(net);
    const paymentIf = net.interfaceOf('payment');
    const mac = /link\/ether ([0-9a-f:]{17})/.exec((await net.run('payment', 'ip', ['link', 'show', 'dev', paymentIf])).stdout)![1]!;
    // the gateway needs no answer, not even ARP: then nothing at all may come back
    await net.mustRun('gateway', 'ip', ['neigh', 'replace', ADDRESSES.payment, 'lladdr', mac, 'dev', net.gatewayInterfaceOf('payment'), 'nud', 'permanent']);
    // a queue of length 0 on the payment side's veth: every frame it would send toward the gateway is dropped
    await net.mustRun('payment', 'tc', ['qdisc', 'replace', 'dev', paymentIf, 'root', 'pfifo', 'limit', '0']);
    try {
      // the return leg is absent: a TCP connection from the gateway's side to the payment broker cannot open
      expect((await net.canConnect('gateway', ADDRESSES.payment, 1883)).connected).toBe(false);
      const [rcmd, rargs] = tallyCommand(['gateway', 'diode-receive', '--listen', `${ADDRESSES.payment}:9999`, '--db', join(dir, 'diode.db'), '--payment', `mqtt://${ADDRESSES.payment}:1883`, '--gateway-id', 'gw1']);
      const receiver = net.start('payment', rcmd, rargs, { TALLY_LOG_LEVEL: 'error' });
      await receiver.waitFor(/diode receiver listening/);
      const gateway = startGateway(join(dir, 'oneway.db'), ['--one-way', `${ADDRESSES.payment}:9999`, ...UNLIMITED]);
      await gateway.waitFor(/gateway listening on .* \(one-way\)/);
      const [cmd, args] = tallyCommand(['sim', 'his', '--gateway', MLLP, '--count', '300', '--prefix', 'W']);
      const his = net.start('hospital', cmd, args);
      expect(await his.exited()).toBe(0);
      expect(JSON.parse(his.stdout().trim().split('\n').at(-1)!)).toMatchObject({ answered: 300, byAck: { AA: 300 } });
      await until(() => checkPaymentSide(sub.messages()).size >= 300, '300 crossings through the diode');
      const crossed = checkPaymentSide(sub.messages());
      expect(crossed.size).toBe(300);
      expect([...crossed.values()].every((n) => n === 1)).toBe(true);
      // the booked patients reach the department queues too, once each (no acks can come back)
      await until(() => sub.messages().filter((m) => m.topic.endsWith('/patient')).length >= 150, 'department deliveries');
      const deliveries = sub.messages().filter((m) => m.topic.endsWith('/patient')).map((m) => JSON.parse(m.payload.toString()).deliveryId as number);
      expect(new Set(deliveries).size).toBe(deliveries.length);
      await gateway.stop();
      await receiver.stop();
      expect(receiver.stdout()).toMatch(/diode receiver stopped: .*"duplicates":\d+/);
    } finally {
      await net.run('payment', 'tc', ['qdisc', 'del', 'dev', paymentIf, 'root']);
      await sub.proc.stop();
    }
  }, 120_000);
});
