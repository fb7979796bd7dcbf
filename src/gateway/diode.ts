/**
 * One-way mode: the gateway's payment leg as a data diode. The sender writes
 * UDP datagrams (codecs/gateway/diodeFrame.ts) and never reads a byte back;
 * it needs no answer, so the return path can be cut physically (the tests cut
 * it: everything from the payment side toward the gateway is dropped). Each
 * datagram is sent twice; the receiver on the payment side checks it again
 * against the declarations, dedupes it on (gateway, kind, seq) in its own
 * archive, and publishes it to the payment broker with the same QoS 2 store
 * as the two-way gateway.
 */
import { createSocket, type Socket } from 'node:dgram';
import { declarationForTopic, encodeCanonical, LEDGER_REPORT_TYPE, schemaProblem } from '../codecs/gateway/declared.js';
import { createHash } from 'node:crypto';
import { encodeDiodeFragments, parseDiodeFragment, parseDiodeFrame, DIODE_DEFAULT_FRAGMENT_BYTES, DIODE_FRAGMENTED_VERSION, DIODE_MAGIC, type DiodeFrame, type DiodeKind } from '../codecs/gateway/diodeFrame.js';
import { parseReport } from '../codecs/mqtt/report.js';
import { checkReportSignatures } from '../crypto/reportSignatures.js';
import { ErrorCodes, operatorMessage, type ErrorName, TallyError } from '../errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { CrossingPump } from './CrossingPump.js';
import type { GatewayStore } from './GatewayStore.js';
import type { ArchiveItemWire } from './storeCommit.js';
import { StoreThread, type CommitParticipant } from './StoreThread.js';
import { DiodeReassembler, type ReassemblyEvent } from './diodeReassembly.js';

const sha256 = (bytes: Uint8Array): Uint8Array => createHash('sha256').update(bytes).digest();
import { MqttPaymentLink, type PaymentSide } from './PaymentLink.js';

/** Copies of each message (all its fragments, then all again): a veth or a diode's fibre loses little, a receiver's full buffer more */
const COPIES = 2;

export class DiodeSender implements PaymentSide {
  readonly returnLeg = false;
  private readonly socket: Socket;
  private deliverySeq = 0;
  /** Crossings sent, to leave the outbox in the next group commit (a kill before it: sent again, deduplicated by the receiver) */
  private handed: number[] = [];
  private joined = false;
  private readonly participant: CommitParticipant = {
    write: (parts): void => {
      this.joined = false;
      (parts.handedCrossings ??= []).push(...this.handed);
      this.handed = [];
    },
    after: (): void => undefined,
  };

  constructor(
    private readonly thread: StoreThread,
    private readonly target: { host: string; port: number },
    private readonly gatewayId = 'gw1',
    /** Fragment size (firmware-protocol/gateway-diode.md, version 2): at most this many message bytes a datagram */
    private readonly fragmentBytes = DIODE_DEFAULT_FRAGMENT_BYTES,
  ) {
    this.socket = createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
    this.socket.on('error', () => undefined);
  }

  private async send(kind: DiodeKind, seq: number, topic: string, payload: Uint8Array): Promise<void> {
    const datagrams = encodeDiodeFragments({ kind, gatewayId: this.gatewayId, seq, topic, payload }, sha256, this.fragmentBytes);
    const once = (datagram: Uint8Array): Promise<void> => new Promise((resolve, reject) => this.socket.send(datagram, this.target.port, this.target.host, (err) => (err ? reject(err) : resolve())));
    // copy after copy rather than each fragment twice in a row: a burst of loss then takes one copy of a few fragments, not both
    for (let copy = 0; copy < COPIES; copy++) for (const d of datagrams) await once(d);
  }

  async publishCrossing(gatewaySeq: number, topic: string, payload: Uint8Array): Promise<void> {
    await this.send('crossing', gatewaySeq, topic, payload);
    this.handed.push(gatewaySeq);
    if (!this.joined) {
      this.joined = true;
      this.thread.commitSoon(this.participant);
    }
  }

  async publishDelivery(topic: string, payload: Uint8Array): Promise<void> {
    // deliveries carry their id in the payload; the datagram seq only has to be unique per run of this sender
    const parsed = JSON.parse(new TextDecoder().decode(payload)) as { deliveryId?: number };
    this.deliverySeq = parsed.deliveryId ?? this.deliverySeq + 1;
    await this.send('delivery', this.deliverySeq, topic, payload);
  }

  onMessage(): void {
    // no return leg: nothing is ever read
  }

  connected(): boolean {
    return true;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

export interface DiodeReceiverOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly dbPath: string;
  readonly paymentBroker: string;
  /** Only datagrams of this gateway id are taken */
  readonly gatewayId: string;
  readonly rootPublicKey?: Uint8Array;
  /** A message in fragments none of which came for this long is given up as GW_DIODE_INCOMPLETE (default 2,000 ms) */
  readonly reassemblyTimeoutMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export class DiodeReceiver {
  private readonly socket: Socket;
  private readonly link: MqttPaymentLink;
  private readonly pump: CrossingPump;
  private readonly clock: Clock;
  private readonly log: Logger;
  readonly counts = { datagrams: 0, passed: 0, duplicates: 0, refused: 0, lost: 0 };
  private readonly reassembler: DiodeReassembler;
  private readonly expiry: NodeJS.Timeout;
  private batch: ArchiveItemWire[] = [];
  private writing: ArchiveItemWire[] = [];
  private joined = false;
  /** Keys in the batch and in the commit in flight: a copy arriving meanwhile is a duplicate too */
  private readonly batchKeys = new Set<string>();

  private constructor(
    private readonly options: DiodeReceiverOptions,
    private readonly thread: StoreThread,
  ) {
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger).child({ ns: 'diode-receiver' });
    this.link = new MqttPaymentLink(thread, { url: options.paymentBroker, clientId: `tally-diode-${options.gatewayId}`, subscriptions: [] });
    // QoS 2 in flight below Mosquitto's default max_inflight_messages (20): past it Mosquitto refuses them with PUBREC 0x97, unseen by MQTT 3.1.1 (test/gateway/paymentInflight.test.ts)
    this.pump = new CrossingPump(thread.reader, this.link, 16);
    this.socket = createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
    const timeoutMs = options.reassemblyTimeoutMs ?? 2_000;
    this.reassembler = new DiodeReassembler({ sha256, now: () => this.clock.now(), timeoutMs });
    this.expiry = setInterval(() => this.reassembled(this.reassembler.expire()), Math.max(20, Math.floor(timeoutMs / 4)));
    this.expiry.unref();
  }

  /** The reassembly's figures: fragments, copies dropped, messages whole, given up, contradicting */
  reassembly(): DiodeReassembler['counts'] & { pending: number } {
    return { ...this.reassembler.counts, pending: this.reassembler.pendingMessages };
  }

  private reassembled(events: readonly ReassemblyEvent[]): void {
    for (const e of events) {
      if (e.kind === 'message') this.takeFrame(e.frame);
      else if (e.kind === 'incomplete') {
        this.counts.lost += 1;
        this.refuse('GW_DIODE_INCOMPLETE', `${e.messageKind} seq ${e.seq} of ${e.gatewayId}: fragments ${e.missing.slice(0, 20).join(',')}${e.missing.length > 20 ? ',...' : ''} of ${e.count} missing (${e.why}); nothing of it delivered`, new Uint8Array(0));
      } else this.refuse('GW_DIODE_FRAGMENT', `${e.messageKind} seq ${e.seq} of ${e.gatewayId}: ${e.reason}`, e.datagram);
    }
  }

  private get store(): GatewayStore {
    return this.thread.reader;
  }

  static async start(options: DiodeReceiverOptions): Promise<DiodeReceiver> {
    const r = new DiodeReceiver(options, await StoreThread.open(options.dbPath));
    r.socket.on('message', (msg) => r.take(msg));
    await new Promise<void>((resolve, reject) => {
      r.socket.once('error', reject);
      r.socket.bind(options.listen.port, options.listen.host, () => resolve());
    });
    r.pump.kick();
    return r;
  }

  get address(): { host: string; port: number } {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  archive(): GatewayStore {
    return this.store;
  }

  private refuse(code: ErrorName, reason: string, original: Uint8Array): void {
    this.counts.refused += 1;
    this.add({ archive: { time: this.clock.now(), direction: 'hospital-to-payment', type: 'diode', verdict: 'refused', code, reason, original } });
    this.log.warn({ event: 'diode.refused', code, numericCode: ErrorCodes[code].code, reason }, operatorMessage(code));
  }

  private take(datagram: Uint8Array): void {
    this.counts.datagrams += 1;
    try {
      const fragmented = datagram[0] === DIODE_MAGIC[0] && datagram[1] === DIODE_MAGIC[1] && datagram[2] === DIODE_FRAGMENTED_VERSION;
      let frame;
      try {
        frame = fragmented ? parseDiodeFragment(datagram) : parseDiodeFrame(datagram);
      } catch (err) {
        return this.refuse('GW_MALFORMED', `datagram: ${(err as Error).message}`, datagram.subarray(0, 256));
      }
      // another gateway's fragments are not even held
      if (frame.gatewayId !== this.options.gatewayId) return this.refuse('GW_NOT_ALLOWED', `datagram of gateway ${frame.gatewayId}`, datagram.subarray(0, 256));
      if ('index' in frame) return this.reassembled(this.reassembler.push(frame, datagram));
      this.takeFrame(frame);
    } catch (err) {
      this.log.error({ event: 'diode.fault', code: 'GW_MALFORMED', detail: (err as Error).message }, operatorMessage('GW_MALFORMED'));
    }
  }

  /** A whole message (one version 1 datagram, or reassembled): checked again on this side, archived, published once */
  private takeFrame(frame: DiodeFrame): void {
    try {
      const declaration = declarationForTopic(frame.topic);
      if (!declaration) return this.refuse('GW_NOT_ALLOWED', `topic ${frame.topic.slice(0, 60)} not declared`, frame.payload);
      if (frame.payload.length > declaration.maxBytes) return this.refuse('GW_OVERSIZED', `${frame.payload.length} bytes`, frame.payload.subarray(0, 256));
      // checked again on this side: the sender's word is not taken for it
      let canonical: Uint8Array = frame.payload;
      let patientId: string | undefined;
      let department: string | undefined;
      if (declaration.type === LEDGER_REPORT_TYPE) {
        try {
          const report = parseReport(frame.payload);
          if (this.options.rootPublicKey) {
            const terminal = /^tally\/v1\/terminal\/([^/]+)\/report$/.exec(frame.topic)![1]!;
            const check = checkReportSignatures(report, this.options.rootPublicKey, terminal);
            if (!check.ok) return this.refuse('GW_BAD_SIGNATURE', check.problem, frame.payload.subarray(0, 256));
          }
        } catch (err) {
          return this.refuse('GW_MALFORMED', `report: ${(err as Error).message}`, frame.payload.subarray(0, 256));
        }
      } else {
        let value: unknown;
        try {
          value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame.payload));
        } catch {
          return this.refuse('GW_MALFORMED', 'payload is not UTF-8 JSON', frame.payload.subarray(0, 256));
        }
        const problem = schemaProblem(declaration.schema!, value);
        if (problem) return this.refuse('GW_BAD_FIELD', `${problem.path}: ${problem.message}`, frame.payload.subarray(0, 256));
        canonical = encodeCanonical(value);
        const v = value as { body?: { patient?: { id?: string }; patientId?: string; department?: string }; patient?: { id?: string }; department?: string };
        patientId = v.body?.patient?.id ?? v.body?.patientId ?? v.patient?.id;
        department = v.body?.department ?? v.department;
      }
      const sourceKey = `diode|${frame.gatewayId}|${frame.kind}|${frame.seq}`;
      if (this.batchKeys.has(sourceKey) || this.store.passedSeq(sourceKey) !== undefined) {
        this.counts.duplicates += 1;
        return;
      }
      this.batchKeys.add(sourceKey);
      this.add({
        archive: { time: this.clock.now(), direction: 'hospital-to-payment', type: declaration.type, verdict: 'passed', sourceKey, patientId, department, original: frame.payload },
        crossing: { topic: frame.topic, payload: canonical },
      });
    } catch (err) {
      this.log.error({ event: 'diode.fault', code: 'GW_MALFORMED', detail: (err as Error).message }, operatorMessage('GW_MALFORMED'));
    }
  }

  private add(item: ArchiveItemWire): void {
    this.batch.push(item);
    if (this.joined) return;
    this.joined = true;
    this.thread.commitSoon(this.participant);
  }

  /** The datagrams taken while the last commit ran go in one group commit */
  private readonly participant: CommitParticipant = {
    write: (parts): void => {
      this.joined = false;
      this.writing = this.batch;
      this.batch = [];
      (parts.archive ??= []).push(...this.writing);
    },
    after: (reply, failure): void => {
      const written = this.writing;
      this.writing = [];
      for (const item of written) if (item.archive.sourceKey) this.batchKeys.delete(item.archive.sourceKey);
      const archive = reply?.archive;
      if (failure || !archive || 'fault' in archive) {
        // not archived: the sender's copy or its resend after a restart gets another chance
        const detail = failure?.message ?? (archive && 'fault' in archive ? archive.fault.message : 'no reply');
        this.log.error({ event: 'diode.archive-fault', code: 'GW_ARCHIVE_FAULT', detail }, operatorMessage('GW_ARCHIVE_FAULT'));
        return;
      }
      this.counts.passed += written.filter((i) => i.archive.verdict === 'passed').length;
      this.pump.offer(archive.crossings);
      this.pump.kick();
    },
  };

  async drained(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.store.crossingCount() > 0 || this.pump.inFlight > 0 || this.thread.busy) {
      if (Date.now() > deadline) throw new TallyError('INTERNAL', 'diode receiver not drained');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    clearInterval(this.expiry);
    this.pump.stop();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    await this.thread.idle();
    await this.link.close().catch(() => undefined);
    await this.thread.close();
  }
}
