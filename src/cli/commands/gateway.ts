import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { departmentTopic, encodeCanonical, type RateLimit } from '../../codecs/gateway/declared.js';
import { operatorMessage, TallyError } from '../../errors.js';
import { DEFAULT_PAYMENT_INFLIGHT, Gateway } from '../../gateway/Gateway.js';
import { GatewayStore, type ArchiveRow } from '../../gateway/GatewayStore.js';
import { DiodeReceiver, DiodeSender } from '../../gateway/diode.js';
import { createLogger } from '../../logging/createLogger.js';
import { integer, parse, required } from '../args.js';
import type { CliCommand } from '../command.js';

function hostPort(value: string, name: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new TallyError('USAGE', `--${name} HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** OPH=40,ENT=20 */
function capacities(value: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    const m = /^([A-Z][A-Z0-9_]{1,15})=(\d{1,6})$/.exec(part);
    if (!m) throw new TallyError('USAGE', `--capacity DEPT=N,...: bad ${JSON.stringify(part)}`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** patient.registration=200/400,... (per second / burst) */
function rates(value: string | undefined): Record<string, RateLimit> {
  const out: Record<string, RateLimit> = {};
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    const m = /^([a-z.]+)=(\d+)\/(\d+)$/.exec(part);
    if (!m) throw new TallyError('USAGE', `--rate TYPE=PER_SECOND/BURST,...: bad ${JSON.stringify(part)}`);
    out[m[1]!] = { perSecond: Number(m[2]), burst: Number(m[3]) };
  }
  return out;
}

export const gatewayRunCommand: CliCommand = {
  path: ['gateway', 'run'],
  summary: 'the isolation gateway between the hospital network (HL7 v2 over MLLP) and the payment side',
  help: `tally gateway run --db FILE --mllp HOST:PORT (--payment URL | --one-way HOST:PORT) [options]

The only process with a leg on both networks. The HIS connects to --mllp (the
hospital-side address) and sends HL7 v2 (ADT^A04/A05, ORM^O01, OMG^O19,
DFT^P03); each message is parsed, checked against the allow list
(src/codecs/gateway/declared.ts: schema, direction, size and rate limit),
archived with its verdict, answered with an HL7 ACK (AA, AE or AR with the
reason and code) and, when allowed, re-encoded canonically on the payment side.
  --payment URL        the payment-side MQTT broker (two-way: department acks come back)
  --one-way HOST:PORT  strictly one way: UDP datagrams to a diode receiver
                       (tally gateway diode-receive), no return leg at all; the
                       gateway's own ACKs are the only acknowledgements
  --hospital URL       the hospital-side MQTT broker: slot counts out, terminals' reports in
  --root HEX|--root-file FILE  investor root public key: terminals' ledger reports, settlement vouchers and signed deny lists pass when they verify (firmware-protocol/gateway-signed.md)
  --capacity DEPT=N,...  registration slots a day per department
  --rate TYPE=N/B,...  override a declared rate limit (per second / burst)
  --id NAME            gateway id (default gw1)
  --ack-timeout MS, --max-attempts N   department deliveries (default 2000, 5)
  --payment-inflight N   QoS 2 crossings in flight to the payment broker (default 16); keep it below the
                       broker's max_inflight_messages: past it Mosquitto drops them unseen
  --fragment-bytes N   one-way: message bytes a datagram at most (default 1200, fits a 1,500 MTU;
                       firmware-protocol/gateway-diode.md, version 2 fragments)
Prints "gateway listening on HOST:PORT" when ready; SIGTERM stops it.`,
  async run(args, io) {
    const values = parse(args, {
      db: { type: 'string' },
      mllp: { type: 'string' },
      payment: { type: 'string' },
      'one-way': { type: 'string' },
      hospital: { type: 'string' },
      root: { type: 'string' },
      'root-file': { type: 'string' },
      capacity: { type: 'string' },
      rate: { type: 'string' },
      id: { type: 'string' },
      'ack-timeout': { type: 'string' },
      'max-attempts': { type: 'string' },
      'payment-inflight': { type: 'string' },
      'fragment-bytes': { type: 'string' },
    });
    const payment = values.payment;
    const oneWay = values['one-way'];
    if ((typeof payment === 'string') === (typeof oneWay === 'string')) throw new TallyError('USAGE', 'give exactly one of --payment URL and --one-way HOST:PORT');
    const rootHex = typeof values.root === 'string' ? values.root : typeof values['root-file'] === 'string' ? readFileSync(values['root-file'], 'utf8').trim() : undefined;
    if (rootHex !== undefined && !/^[0-9a-fA-F]{64}$/.test(rootHex)) throw new TallyError('USAGE', '--root must be 64 hex digits');
    const gatewayId = typeof values.id === 'string' ? values.id : 'gw1';
    if (!/^[A-Za-z0-9._-]{1,20}$/.test(gatewayId)) throw new TallyError('USAGE', '--id: 1-20 letters, digits, . _ -');
    const log = createLogger({ level: process.env.TALLY_LOG_LEVEL ?? 'info' });
    const diode = typeof oneWay === 'string' ? hostPort(oneWay, 'one-way') : undefined;
    const fragmentBytes = integer(values, 'fragment-bytes', 1_200);
    const gateway = await Gateway.start({
      gatewayId,
      dbPath: required(values, 'db'),
      mllp: hostPort(required(values, 'mllp'), 'mllp'),
      payment: diode ? (thread) => new DiodeSender(thread, diode, gatewayId, fragmentBytes) : (payment as string),
      ...(typeof values.hospital === 'string' ? { hospitalBroker: values.hospital } : {}),
      ...(rootHex ? { rootPublicKey: new Uint8Array(Buffer.from(rootHex, 'hex')) } : {}),
      capacity: capacities(values.capacity as string | undefined),
      rates: rates(values.rate as string | undefined),
      paymentInflight: integer(values, 'payment-inflight', DEFAULT_PAYMENT_INFLIGHT),
      delivery: { ackTimeoutMs: integer(values, 'ack-timeout', 2_000), maxAttempts: integer(values, 'max-attempts', 5) },
      logger: log,
    });
    const a = gateway.address;
    io.out(`gateway listening on ${a.host}:${a.port} (${gateway.twoWay ? 'two-way' : 'one-way'})`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        void gateway.close().then(resolve);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    const s = gateway.stats();
    io.out(`gateway stopped: ${JSON.stringify({ received: s.received, passed: s.passed, refused: s.refused, duplicates: s.duplicates, published: s.published, commits: s.commits })}`);
    return 0;
  },
};

function rowLine(r: ArchiveRow): string {
  return JSON.stringify({
    seq: r.seq,
    time: new Date(r.time).toISOString(),
    direction: r.direction,
    type: r.type,
    verdict: r.verdict,
    ...(r.code ? { code: r.code, message: { en: operatorMessage(r.code as never, 'en'), zh: operatorMessage(r.code as never, 'zh') } } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.patientId ? { patientId: r.patientId } : {}),
    ...(r.department ? { department: r.department } : {}),
    ...(r.sourceKey ? { source: r.sourceKey } : {}),
    bytes: r.originalLength,
    ...(r.canonical ? { crossed: Buffer.from(r.canonical).toString(r.type === 'ledger.report' ? 'base64' : 'utf8') } : {}),
    hash: Buffer.from(r.hash).toString('hex'),
  });
}

function time(value: unknown, name: string): number | undefined {
  if (typeof value !== 'string') return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new TallyError('USAGE', `--${name}: an ISO date or time, e.g. 2026-12-02 or 2026-12-02T09:00Z`);
  return t;
}

export const gatewayDiodeReceiveCommand: CliCommand = {
  path: ['gateway', 'diode-receive'],
  summary: "one-way mode's payment end: take the gateway's datagrams and publish them on the payment broker",
  help: `tally gateway diode-receive --listen HOST:PORT --db FILE --payment URL [--gateway-id ID] [--root HEX] [--reassembly-timeout MS]

Runs on the payment side of a one-way gateway (tally gateway run --one-way).
Reads UDP datagrams only (it sends nothing back: the return path may be cut),
reassembles messages sent in fragments (a message missing a fragment after
--reassembly-timeout MS, default 2000, is reported GW_DIODE_INCOMPLETE and
nothing of it is delivered), checks each again against the declarations, keeps
its own archive, passes each once (deduplicated on gateway, kind and seq) and
publishes it to --payment.`,
  async run(args, io) {
    const values = parse(args, { listen: { type: 'string' }, db: { type: 'string' }, payment: { type: 'string' }, 'gateway-id': { type: 'string' }, root: { type: 'string' }, 'reassembly-timeout': { type: 'string' } });
    const rootHex = values.root as string | undefined;
    if (rootHex !== undefined && !/^[0-9a-fA-F]{64}$/.test(rootHex)) throw new TallyError('USAGE', '--root must be 64 hex digits');
    const receiver = await DiodeReceiver.start({
      listen: hostPort(required(values, 'listen'), 'listen'),
      dbPath: required(values, 'db'),
      paymentBroker: required(values, 'payment'),
      gatewayId: (values['gateway-id'] as string | undefined) ?? 'gw1',
      reassemblyTimeoutMs: integer(values, 'reassembly-timeout', 2_000),
      ...(rootHex ? { rootPublicKey: new Uint8Array(Buffer.from(rootHex, 'hex')) } : {}),
      logger: createLogger({ level: process.env.TALLY_LOG_LEVEL ?? 'info' }),
    });
    const a = receiver.address;
    io.out(`diode receiver listening on ${a.host}:${a.port}`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await receiver.close();
    io.out(`diode receiver stopped: ${JSON.stringify({ ...receiver.counts, reassembly: receiver.reassembly() })}`);
    return 0;
  },
};

export const gatewayArchiveCommand: CliCommand = {
  path: ['gateway', 'archive'],
  summary: "query or verify the gateway's archive of every message that crossed or was refused",
  help: `tally gateway archive query --db FILE [--from T] [--to T] [--type TYPE] [--patient ID] [--verdict V] [--code CODE] [--limit N]
tally gateway archive verify --db FILE
tally gateway archive counts --db FILE

query prints one JSON line a message (oldest first): its verdict (passed,
refused, duplicate, dead-letter, delivered), its refusal code with the zh/en
operator message, and the canonical message that crossed. verify walks the
hash chain (exit 4 when broken, naming the first bad row). counts sums by
verdict and code.`,
  async run(args, io) {
    const [action, ...rest] = args;
    if (action !== 'query' && action !== 'verify' && action !== 'counts') throw new TallyError('USAGE', 'tally gateway archive query|verify|counts --db FILE');
    const values = parse(rest, {
      db: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      type: { type: 'string' },
      patient: { type: 'string' },
      verdict: { type: 'string' },
      code: { type: 'string' },
      limit: { type: 'string' },
    });
    const store = new GatewayStore(required(values, 'db'), { readonly: true });
    try {
      if (action === 'verify') {
        const result = store.verify();
        if (result.problems.length === 0) {
          io.out(`archive verified: ${result.rows} rows, hash chain intact`);
          return 0;
        }
        for (const p of result.problems.slice(0, 20)) io.err(`row ${p.seq}: ${p.problem}`);
        io.err(`${operatorMessage('GW_ARCHIVE_BROKEN')} [GW_ARCHIVE_BROKEN 7013] / ${operatorMessage('GW_ARCHIVE_BROKEN', 'zh')}`);
        return 4;
      }
      if (action === 'counts') {
        for (const c of store.counts()) io.out(JSON.stringify(c));
        return 0;
      }
      const rows = store.query({
        from: time(values.from, 'from'),
        to: time(values.to, 'to'),
        type: values.type as string | undefined,
        patientId: values.patient as string | undefined,
        verdict: values.verdict as string | undefined,
        code: values.code as string | undefined,
        limit: integer(values, 'limit', 1000),
      });
      for (const r of rows) io.out(rowLine(r));
      return 0;
    } finally {
      store.close();
    }
  },
};

export const gatewayDlqCommand: CliCommand = {
  path: ['gateway', 'dlq'],
  summary: "the department queues' dead letters: list them, or queue them again",
  help: `tally gateway dlq --db FILE [--requeue] [--department DEPT]

Lists department deliveries given up after their retries (no ack from the
department), or with --requeue puts them back in their queues (the running
gateway sends them within a second).`,
  async run(args, io) {
    const values = parse(args, { db: { type: 'string' }, requeue: { type: 'boolean' }, department: { type: 'string' } });
    const store = new GatewayStore(required(values, 'db'));
    try {
      if (values.requeue) {
        io.out(`requeued ${store.requeueDead(values.department as string | undefined)} dead letters`);
        return 0;
      }
      for (const d of store.deliveries('dead')) {
        if (typeof values.department === 'string' && d.department !== values.department) continue;
        io.out(JSON.stringify({ deliveryId: d.deliveryId, department: d.department, visitDate: d.visitDate, attempts: d.attempts, patient: JSON.parse(d.patient), code: 'GW_DEAD_LETTER' }));
      }
      return 0;
    } finally {
      store.close();
    }
  },
};

export const gatewayDepartmentCommand: CliCommand = {
  path: ['gateway', 'department'],
  summary: "a department's queue on the payment side: print the booked patients and acknowledge each",
  help: `tally gateway department --broker URL --department DEPT [--count N]

Subscribes to the department's queue (what an OCT terminal in ophthalmology
does), prints each booked patient as a JSON line and acknowledges it, so the
gateway stops retrying it. Exits after --count patients, or on SIGTERM.`,
  async run(args, io) {
    const values = parse(args, { broker: { type: 'string' }, department: { type: 'string' }, count: { type: 'string' } });
    const department = required(values, 'department');
    const topic = departmentTopic(department, 'patient');
    const limit = integer(values, 'count', 0);
    const client = await mqtt.connectAsync(required(values, 'broker'), { clientId: `tally-dept-${department}`, clean: false, protocolVersion: 4 });
    const seen = new Set<number>();
    await new Promise<void>((resolve) => {
      client.on('message', (_t, payload) => {
        let m: { deliveryId?: number; department?: string };
        try {
          m = JSON.parse(payload.toString()) as typeof m;
        } catch {
          return;
        }
        if (typeof m.deliveryId !== 'number' || m.department !== department) return;
        client.publish(departmentTopic(department, 'ack'), Buffer.from(encodeCanonical({ v: 1, type: 'department.ack', deliveryId: m.deliveryId, department })), { qos: 1 });
        if (seen.has(m.deliveryId)) return;
        seen.add(m.deliveryId);
        io.out(payload.toString());
        if (limit > 0 && seen.size >= limit) resolve();
      });
      void client.subscribeAsync(topic, { qos: 1 }).then(() => io.out(`subscribed to ${topic}`));
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await client.endAsync();
    return 0;
  },
};
