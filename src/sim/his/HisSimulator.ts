/**
 * The HIS simulator (`tally sim his`): the hospital's charging, registration
 * and self-service subsystems sending real HL7 v2 over MLLP to the gateway,
 * several connections with a window of messages in flight each, like an
 * interface engine. A message whose ACK does not come (connection lost,
 * gateway restarted) is sent again with the same control id until it is
 * answered, as HIS interface engines do; the gateway passes it once.
 */
import { TallyError } from '../../errors.js';
import mqtt from 'mqtt';
import { parseAck } from '../../codecs/hl7/hl7.js';
import { encodeMllp } from '../../codecs/hl7/mllp.js';
import { MllpClient } from './MllpClient.js';
import { chargeMessage, orderMessage, patientNo, registrationMessage, type Subsystem } from './hisMessages.js';

export type Expectation = 'pass' | 'refuse' | 'either';

export interface HisMessage {
  /** The bytes to write: an MLLP frame, or hostile bytes */
  readonly wire: Uint8Array;
  readonly controlId: string;
  readonly expect: Expectation;
  /** How many answers the wire bytes get (2 for garbage before a frame) */
  readonly answers: number;
  readonly kind: string;
}

export interface HisResult {
  readonly controlId: string;
  readonly expect: Expectation;
  readonly kind: string;
  /** AA, AE, AR of the last answer (the one for the frame) */
  readonly code: string;
  readonly tallyCode: string;
  /** application|facility|control id as the gateway read them (from its ACK) */
  readonly acked: string;
  readonly tries: number;
}

export interface HisRunSummary {
  readonly sent: number;
  readonly answered: number;
  readonly byAck: Record<string, number>;
  readonly byTallyCode: Record<string, number>;
  readonly resends: number;
  readonly unexpected: number;
  readonly seconds: number;
  readonly results: HisResult[];
}

export interface HisRunOptions {
  readonly host: string;
  readonly port: number;
  readonly connections?: number;
  /** Messages in flight per connection */
  readonly window?: number;
  readonly ackTimeoutMs?: number;
  /** Give up on a message after this long without an answer (a gateway down for good) */
  readonly giveUpMs?: number;
  /** Keep each result (memory: fine for a few million) */
  readonly keepResults?: boolean;
  readonly onProgress?: (answered: number) => void;
}

async function connectRetrying(host: string, port: number, ackTimeoutMs: number, deadline: number): Promise<MllpClient> {
  for (;;) {
    try {
      return await MllpClient.connect(host, port, { timeoutMs: ackTimeoutMs, connectTimeoutMs: 2_000 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Sends every message and waits for every answer; resends on a lost connection */
export async function runHis(messages: Iterable<HisMessage>, options: HisRunOptions): Promise<HisRunSummary> {
  const started = Date.now();
  const iterator = messages[Symbol.iterator]();
  const byAck: Record<string, number> = {};
  const byTallyCode: Record<string, number> = {};
  const results: HisResult[] = [];
  let sent = 0;
  let answered = 0;
  let resends = 0;
  let unexpected = 0;
  const ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
  const giveUpMs = options.giveUpMs ?? 60_000;
  const next = (): HisMessage | undefined => {
    const r = iterator.next();
    return r.done ? undefined : r.value;
  };
  const record = (m: HisMessage, answers: Uint8Array[], tries: number): void => {
    answered += 1;
    const last = answers[answers.length - 1]!;
    let code = 'unreadable';
    let tallyCode = '';
    let acked = '';
    try {
      const ack = parseAck(last);
      code = ack.code;
      acked = ack.sourceKey;
      tallyCode = ack.tallyCode.split(' ')[0] ?? '';
    } catch {
      // an answer that is not an ACK counts as unexpected below
    }
    byAck[code] = (byAck[code] ?? 0) + 1;
    if (tallyCode) byTallyCode[tallyCode] = (byTallyCode[tallyCode] ?? 0) + 1;
    if ((m.expect === 'pass' && code !== 'AA') || (m.expect === 'refuse' && code === 'AA') || code === 'unreadable') unexpected += 1;
    if (options.keepResults !== false) results.push({ controlId: m.controlId, expect: m.expect, kind: m.kind, code, tallyCode, acked, tries });
    if (options.onProgress && answered % 10_000 === 0) options.onProgress(answered);
  };
  const worker = async (): Promise<void> => {
    const window = options.window ?? 16;
    let client = await connectRetrying(options.host, options.port, ackTimeoutMs, Date.now() + giveUpMs);
    const inflight = new Set<Promise<void>>();
    let exhausted = false;
    const sendOne = (m: HisMessage, tries: number, firstTry: number): Promise<void> => {
      sent += tries === 1 ? 1 : 0;
      const p: Promise<void> = client.sendRaw(m.wire, m.answers).then(
        (answers) => record(m, answers, tries),
        async () => {
          // lost: reconnect (once for all) and send again with the same control id
          if (Date.now() - firstTry > giveUpMs) throw new TallyError('INTERNAL', `no answer for ${m.controlId} within ${giveUpMs} ms`);
          resends += 1;
          client = await reconnect();
          await sendOne(m, tries + 1, firstTry);
        },
      );
      return p;
    };
    let reconnecting: Promise<MllpClient> | undefined;
    const reconnect = (): Promise<MllpClient> => {
      if (!reconnecting) {
        client.close();
        reconnecting = connectRetrying(options.host, options.port, ackTimeoutMs, Date.now() + giveUpMs).finally(() => {
          setImmediate(() => (reconnecting = undefined));
        });
      }
      return reconnecting;
    };
    while (!exhausted || inflight.size > 0) {
      while (!exhausted && inflight.size < window) {
        const m = next();
        if (!m) {
          exhausted = true;
          break;
        }
        const p = sendOne(m, 1, Date.now()).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      if (inflight.size > 0) await Promise.race(inflight);
    }
    client.close();
  };
  await Promise.all(Array.from({ length: options.connections ?? 4 }, () => worker()));
  return { sent, answered, byAck, byTallyCode, resends, unexpected, seconds: (Date.now() - started) / 1000, results };
}

export interface TrafficOptions {
  readonly count: number;
  readonly departments: readonly string[];
  readonly facility?: string;
  /** Control ids are PREFIX + n, unique per run */
  readonly prefix?: string;
  readonly visitDate?: string;
  /** Departments with no slots left today (from the slot counts): the registration subsystems skip them */
  readonly full?: ReadonlySet<string>;
  readonly time?: () => number;
}

/** Real traffic of the three subsystems: registrations (desk and kiosk), orders and charges */
export function* hisTraffic(options: TrafficOptions): Generator<HisMessage> {
  const facility = options.facility ?? 'HOSP1';
  const prefix = options.prefix ?? 'M';
  const now = options.time ?? Date.now;
  const visitDate = options.visitDate ?? new Date(now()).toISOString().slice(0, 10).replace(/-/g, '');
  for (let n = 0; n < options.count; n++) {
    const department = options.departments[n % options.departments.length]!;
    const patient = patientNo(n);
    const controlId = `${prefix}${n}`;
    const kind = n % 4;
    const subsystem: Subsystem = kind === 0 ? 'registration' : kind === 1 ? 'self-service' : 'charging';
    const h = { subsystem, facility, controlId, time: now() };
    let bytes: Uint8Array;
    let label: string;
    if (kind <= 1) {
      if (options.full?.has(department)) continue;
      bytes = registrationMessage(h, patient, department, visitDate);
      label = kind === 0 ? 'registration' : 'self-service';
    } else if (kind === 2) {
      bytes = orderMessage(h, n % 8 === 2 ? 'ORM^O01' : 'OMG^O19', patient, department, `ORD${n}`, { code: 'OCT01', text: 'OCT scan, both eyes' });
      label = 'order';
    } else {
      bytes = chargeMessage(h, patient, department, { transactionId: `T${n}`, code: 'OCT01', quantity: 1, amount: '120.00' });
      label = 'charge';
    }
    yield { wire: frame(bytes), controlId, expect: 'pass', answers: 1, kind: label };
  }
}

/** An MLLP frame around a message */
export const frame = encodeMllp;

/** The departments with no registration slots left today, read from the gateway's retained counts on the hospital broker */
export async function fullDepartments(brokerUrl: string, departments: readonly string[], timeoutMs = 2_000): Promise<Set<string>> {
  const client = await mqtt.connectAsync(brokerUrl, { connectTimeout: timeoutMs, reconnectPeriod: 0 });
  const full = new Set<string>();
  const seen = new Set<string>();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    client.on('message', (_topic, payload) => {
      try {
        const m = JSON.parse(payload.toString()) as { department?: string; remaining?: number };
        if (typeof m.department === 'string') {
          seen.add(m.department);
          if (m.remaining === 0) full.add(m.department);
        }
      } catch {
        // not a slot count
      }
      if (departments.every((d) => seen.has(d))) {
        clearTimeout(timer);
        resolve();
      }
    });
    void client.subscribeAsync(departments.map((d) => `tally/hospital/v1/slots/${d}`), { qos: 1 });
  });
  await client.endAsync();
  return full;
}
