/**
 * The isolation gateway (seed 003's 安全隔离网闸): the only process with a leg
 * on both networks. Hospital side: an MLLP listener for the HIS (HL7 v2) and
 * an MQTT client on the hospital broker (terminals' ledger reports in, the
 * department slot counts out). Payment side: MQTT two-way, or a UDP diode
 * that has no return leg at all. Every message is inspected (inspect.ts),
 * archived with its verdict (GatewayStore), answered with an HL7 ACK only
 * after the archive has committed it, and, when it passes, re-encoded
 * canonically and published on the payment side.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { encodeCanonical, GATEWAY_TOPIC_PREFIX, parseSignedTopic, SETTLEMENT_VOUCHER_TYPE, parseDepartmentTopic, DEPARTMENT_PATTERN, declarationOf, LEDGER_REPORT_TYPE, type DepartmentAck, type RateLimit, type VoucherBookings } from '../codecs/gateway/declared.js';
import { encodeAck, hl7DateTime, DEFAULT_HL7_LIMITS, type AckCode, type Hl7Header, type Hl7Limits } from '../codecs/hl7/hl7.js';
import { encodeMllp, MllpDecoder } from '../codecs/hl7/mllp.js';
import { encodeReport, parseReport } from '../codecs/mqtt/report.js';
import { checkReportSignatures } from '../crypto/reportSignatures.js';
import { ErrorCodes, isTallyError, operatorMessage, TallyError, type ErrorName } from '../errors.js';
import { encodeSettlementVoucher, parseSettlementVoucher } from '../codecs/settlementVoucher.js';
import { parseSignedDenylist } from '../codecs/signedDenylist.js';
import { encodeJsonPayload } from '../codecs/mqtt/messages.js';
import { terminalTopic } from '../codecs/mqtt/topics.js';
import { verifySettlementVoucher } from '../crypto/settlementVoucher.js';
import { verifySignedDenylist } from '../crypto/signedDenylist.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ArchiveInput, DeliveryInput, GatewayStore, Verdict } from './GatewayStore.js';
import type { ArchiveItemWire, CommitReply, CrossingWire } from './storeCommit.js';
import { StoreThread, type CommitParticipant } from './StoreThread.js';
import { inspectHl7, inspectPaymentJson, RateLimits, type Decision } from './inspect.js';
import { connectLeg, MqttPaymentLink, type PaymentSide } from './PaymentLink.js';
import { payloadDigest } from './SqliteMqttStore.js';
import { CrossingPump } from './CrossingPump.js';
import type { MqttClient } from 'mqtt';

export const SLOTS_TOPIC_PREFIX = 'tally/hospital/v1/slots';
/** Below Mosquitto's default max_inflight_messages (20), as the diode receiver's 16 */
export const DEFAULT_PAYMENT_INFLIGHT = 16;
const TERMINAL_REPORTS = 'tally/v1/terminal/+/report';

export interface GatewayOptions {
  readonly gatewayId: string;
  readonly dbPath: string;
  /** Where the HIS connects (the hospital-side address) */
  readonly mllp: { readonly host: string; readonly port: number };
  /** Payment broker URL (two-way), or a PaymentSide of one's own (the diode) */
  readonly payment: string | ((thread: StoreThread) => PaymentSide);
  /** The hospital broker: slot counts out, terminals' reports in. Optional */
  readonly hospitalBroker?: string;
  /** Registration slots a day per department (the medical information receiver) */
  readonly capacity?: Readonly<Record<string, number>>;
  /** Investor root public key: ledger reports from terminals on the hospital side pass only when their signatures verify */
  readonly rootPublicKey?: Uint8Array;
  readonly rates?: Readonly<Record<string, RateLimit>>;
  readonly hl7Limits?: Hl7Limits;
  /** Largest MLLP frame read at all (bigger ones are skipped as they stream) */
  readonly maxFrameBytes?: number;
  readonly maxConnections?: number;
  /** A connection silent this long is closed (no hangs on half-open HIS links) */
  readonly idleTimeoutMs?: number;
  /** Department deliveries: wait this long for an ack before the next try (doubling), then dead-letter */
  readonly delivery?: { readonly ackTimeoutMs: number; readonly maxAttempts: number };
  /**
   * QoS 2 crossings in flight to the payment broker (default 16). Keep it
   * below the broker's max_inflight_messages (Mosquitto's default 20): past
   * it Mosquitto refuses the PUBLISH with PUBREC 0x97, which an MQTT 3.1.1
   * client cannot see, so the message is lost while the flow completes.
   */
  readonly paymentInflight?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export interface GatewayStats {
  readonly received: number;
  readonly passed: Record<string, number>;
  readonly refused: Record<string, number>;
  readonly duplicates: number;
  readonly published: number;
  readonly pendingCrossings: number;
  readonly deliveries: { sent: number; acked: number; dead: number };
  /** Group commits the store thread answered (each one fsync) */
  readonly commits: number;
}

interface Pending extends ArchiveItemWire {
  readonly done: (seq: number | undefined, fault?: ErrorName, verdict?: Verdict) => void;
}

export class Gateway {
  private thread?: StoreThread;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly rates: RateLimits;
  private readonly hl7Limits: Hl7Limits;
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private payment!: PaymentSide;
  private hospital?: MqttClient;
  private batch: Pending[] = [];
  private flushScheduled = false;
  /** sender keys in the batch not yet committed: a resend inside one batch is a duplicate too */
  private readonly batchKeys = new Set<string>();
  private pump!: CrossingPump;
  private deliveryTimer?: NodeJS.Timeout;
  private closed = false;
  private ackCounter = 0;
  private readonly counters = {
    received: 0,
    passed: {} as Record<string, number>,
    refused: {} as Record<string, number>,
    duplicates: 0,
    deliveries: { sent: 0, acked: 0, dead: 0 },
  };

  private constructor(private readonly options: GatewayOptions) {
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger).child({ ns: 'gateway', gatewayId: options.gatewayId });
    this.rates = new RateLimits(this.clock, options.rates);
    this.hl7Limits = options.hl7Limits ?? DEFAULT_HL7_LIMITS;
  }

  /** The read connection: lookups on the event loop; every write goes to the store thread */
  private get store(): GatewayStore {
    return this.thread!.reader;
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const gateway = new Gateway(options);
    try {
      await gateway.open();
    } catch (err) {
      await gateway.close();
      throw err;
    }
    return gateway;
  }

  get address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new TallyError('INTERNAL', 'gateway not listening');
    return { host: a.address, port: a.port };
  }

  /** True when acks from the payment side can arrive (false in one-way mode) */
  get twoWay(): boolean {
    return this.payment.returnLeg;
  }

  stats(): GatewayStats {
    return { ...this.counters, published: this.pump?.published ?? 0, passed: { ...this.counters.passed }, refused: { ...this.counters.refused }, deliveries: { ...this.counters.deliveries }, commits: this.thread?.figures.commits ?? 0, pendingCrossings: this.thread?.reader?.db.open ? this.store.crossingCount() : 0 };
  }

  archive(): GatewayStore {
    return this.store;
  }

  private async open(): Promise<void> {
    const o = this.options;
    const thread = await StoreThread.open(o.dbPath);
    this.thread = thread;
    this.payment =
      typeof o.payment === 'string'
        ? new MqttPaymentLink(thread, { url: o.payment, clientId: `tally-gw-${o.gatewayId}`, subscriptions: ['tally/gw/v1/dept/+/ack', 'tally/gw/v1/settlement/+', 'tally/gw/v1/denylist/+', 'tally/gw/v1/vouchers/+'] })
        : o.payment(thread);
    // QoS 2 in flight below the broker's max_inflight_messages: past it Mosquitto drops QoS 2 publishes of a 3.1.1 client silently
    this.pump = new CrossingPump(this.store, this.payment, o.paymentInflight ?? DEFAULT_PAYMENT_INFLIGHT);
    if (this.payment.returnLeg) this.payment.onMessage((topic, payload) => this.afterCommit(() => this.fromPayment(topic, payload)));
    if (o.hospitalBroker) {
      this.hospital = connectLeg({ url: o.hospitalBroker, clientId: `tally-gw-${o.gatewayId}-hospital`, subscriptions: o.rootPublicKey ? [TERMINAL_REPORTS] : [] });
      this.hospital.on('message', (topic, payload) => this.afterCommit(() => this.fromHospitalBroker(topic, payload)));
      this.hospital.on('connect', () => this.publishAllSlots());
    }
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    server.maxConnections = o.maxConnections ?? 256;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.mllp.port, o.mllp.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.deliveryTimer = setInterval(() => this.afterCommit(() => this.runDeliveries()), 100);
    this.deliveryTimer.unref();
    this.pump.kick();
    this.log.info({ event: 'gateway.started', mllp: this.address, twoWay: this.payment.returnLeg }, 'gateway started');
  }

  // --- hospital side: MLLP ---

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const decoder = new MllpDecoder(this.options.maxFrameBytes ?? 1_048_576);
    let chain: Promise<void> = Promise.resolve();
    let queued = 0;
    socket.setTimeout(this.options.idleTimeoutMs ?? 60_000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      // what a closing client left behind is archived too (there is no one left to answer)
      for (const event of decoder.flushGarbage()) void this.refuseUnparsed('GW_FRAMING', `${event.bytes} bytes outside an MLLP frame at close`, new Uint8Array(0), event.bytes);
      if (decoder.buffered > 0) void this.refuseUnparsed('GW_FRAMING', 'connection closed inside an MLLP frame', new Uint8Array(0), decoder.buffered);
    });
    const reply = (answer: Promise<Uint8Array>): void => {
      queued += 1;
      // back-pressure: a client that pipelines too far waits for its ACKs
      if (queued > 256) socket.pause();
      chain = chain.then(async () => {
        const ack = await answer;
        if (!socket.destroyed) socket.write(encodeMllp(ack));
        queued -= 1;
        if (queued <= 128 && socket.isPaused()) socket.resume();
      });
    };
    socket.on('data', (data: Buffer) => {
      for (const event of decoder.push(data)) {
        this.counters.received += 1;
        if (event.kind === 'frame') reply(this.handleHl7(event.payload));
        else if (event.kind === 'oversized') reply(this.refuseUnparsed('GW_OVERSIZED', `MLLP frame of at least ${event.bytes} bytes exceeds ${this.options.maxFrameBytes ?? 1_048_576}`, new Uint8Array(0), event.bytes));
        else reply(this.refuseUnparsed('GW_FRAMING', `${event.bytes} bytes outside an MLLP frame`, data.subarray(0, Math.min(data.length, 256)), event.bytes));
      }
    });
  }

  /** Inspects one HL7 message, archives it, and answers with the ACK once the archive has it */
  handleHl7(payload: Uint8Array): Promise<Uint8Array> {
    let decision: Decision;
    try {
      decision = inspectHl7(payload, { gatewayId: this.options.gatewayId, hl7Limits: this.hl7Limits, rates: this.rates });
    } catch {
      decision = { pass: false, code: 'GW_MALFORMED', reason: 'message not understood', ack: 'AR', hl7Code: 207, type: 'unparsed' };
    }
    const now = this.clock.now();
    if (!decision.pass) {
      this.count('refused', decision.code);
      return this.enqueue({ time: now, direction: 'hospital-to-payment', type: decision.type, verdict: 'refused', code: decision.code, reason: decision.reason, sourceKey: decision.header ? sourceKeyOf(decision.header) : undefined, original: payload }).then((r) =>
        this.ack(r.fault ? 'AR' : decision.ack, decision.header, r.fault ? ErrorCodes[r.fault].en : decision.reason, r.fault ?? decision.code, decision.hl7Code),
      );
    }
    const { mapped, declaration, header } = decision;
    const sourceKey = sourceKeyOf(header);
    const previous = this.batchKeys.has(sourceKey) ? -1 : this.store.passedSeq(sourceKey);
    if (previous !== undefined) {
      this.counters.duplicates += 1;
      return this.enqueue({ time: now, direction: 'hospital-to-payment', type: declaration.type, verdict: 'duplicate', code: 'GW_DUPLICATE', reason: `already passed${previous > 0 ? ` as gateway seq ${previous}` : ''}`, sourceKey, patientId: mapped.patientId, department: mapped.department, original: payload }).then((r) =>
        r.fault ? this.ack('AR', header, ErrorCodes[r.fault].en, r.fault, 207) : this.ack('AA', header, `duplicate: already passed${previous > 0 ? ` as gateway seq ${previous}` : ''}`),
      );
    }
    this.batchKeys.add(sourceKey);
    const body = mapped.body as { department?: string; visitDate?: string; patient?: unknown };
    const delivery = declaration.type === 'patient.registration' && body.department && body.visitDate ? { department: body.department, visitDate: body.visitDate, patient: body.patient } : undefined;
    return this.enqueue(
      { time: now, direction: 'hospital-to-payment', type: declaration.type, verdict: 'passed', sourceKey, patientId: mapped.patientId, department: mapped.department, original: payload },
      { topic: declaration.topic, envelope: { mapped, gatewayId: this.options.gatewayId, acceptedAt: now } },
      delivery,
      () => this.batchKeys.delete(sourceKey),
    ).then((r) => {
      if (r.fault) return this.ack('AR', header, ErrorCodes[r.fault].en, r.fault, 207);
      this.count('passed', declaration.type);
      return this.ack('AA', header, `accepted as gateway seq ${r.seq}`);
    });
  }

  private refuseUnparsed(code: ErrorName, reason: string, original: Uint8Array, length: number): Promise<Uint8Array> {
    this.count('refused', code);
    return this.enqueue({ time: this.clock.now(), direction: 'hospital-to-payment', type: 'unparsed', verdict: 'refused', code, reason: `${reason} (${length} bytes)`, original }).then(() => this.ack('AR', undefined, reason, code, 207));
  }

  private ack(code: AckCode, original: Hl7Header | undefined, text: string, tallyCode?: ErrorName, hl7ErrorCode?: number): Uint8Array {
    this.ackCounter = (this.ackCounter + 1) % 1_000_000_000;
    return encodeAck({
      code,
      original,
      text,
      tallyCode: tallyCode ? `${tallyCode} ${ErrorCodes[tallyCode].code}` : undefined,
      hl7ErrorCode,
      ackControlId: `${this.options.gatewayId}-${this.clock.now().toString(36)}-${this.ackCounter}`.slice(0, 20),
      dateTime: hl7DateTime(this.clock.now()),
      application: 'TALLYGW',
      facility: this.options.gatewayId,
    });
  }

  private count(kind: 'passed' | 'refused', key: string): void {
    const map = this.counters[kind];
    map[key] = (map[key] ?? 0) + 1;
  }

  // --- the group commit ---

  private enqueue(
    archive: ArchiveInput,
    crossing?: CrossingWire,
    delivery?: DeliveryInput,
    after?: () => void,
    keepPassedKey = false,
    ackDelivery?: ArchiveItemWire['ackDelivery'],
  ): Promise<{ seq?: number; fault?: ErrorName; verdict?: Verdict }> {
    return new Promise((resolve) => {
      this.batch.push({
        archive,
        ...(crossing ? { crossing } : {}),
        ...(delivery ? { delivery } : {}),
        ...(keepPassedKey ? { keepPassedKey } : {}),
        ...(ackDelivery ? { ackDelivery } : {}),
        done: (seq, fault, verdict) => {
          after?.();
          resolve({ seq, fault, verdict });
        },
      });
      if (!this.flushScheduled && this.thread) {
        this.flushScheduled = true;
        this.thread.commitSoon(this.archiveWriter);
      }
    });
  }

  /** The archive batch's part of the group commit: appended in it, answered after its COMMIT */
  private writing: Pending[] = [];
  private readonly archiveWriter: CommitParticipant = {
    write: (parts): void => {
      this.flushScheduled = false;
      this.writing = this.batch;
      this.batch = [];
      parts.archive = this.writing.map(({ done: _done, ...item }) => item);
    },
    after: (reply, failure): void => this.committed(reply?.archive, failure),
  };

  private committed(appended: NonNullable<CommitReply['archive']> | undefined, failure?: Error): void {
    const batch = this.writing;
    this.writing = [];
    if (batch.length === 0) return;
    const err = failure ?? (appended && 'fault' in appended ? new TallyError(appended.fault.code as ErrorName, appended.fault.message) : undefined);
    if (err || !appended || 'fault' in appended) {
      const code: ErrorName = isTallyError(err) ? err.code : 'GW_ARCHIVE_FAULT';
      this.log.error({ event: 'gateway.archive-fault', code, messages: batch.length, detail: err?.message }, operatorMessage('GW_ARCHIVE_FAULT'));
      for (const p of batch) p.done(undefined, 'GW_ARCHIVE_FAULT');
      return;
    }
    const result = appended;
    batch.forEach((p, i) => {
      const seq = result.seqs[i]!;
      const a = p.archive;
      if (a.verdict === 'refused' || a.verdict === 'dead-letter') {
        const code = a.code as ErrorName;
        this.log.warn({ event: 'gateway.refused', seq, code, numericCode: ErrorCodes[code]?.code, type: a.type, direction: a.direction, reason: a.reason, sourceKey: a.sourceKey }, operatorMessage(code));
      } else if (result.verdicts[i] === 'duplicate') {
        this.log.info({ event: 'gateway.duplicate', seq, type: a.type, sourceKey: a.sourceKey, code: 'GW_DUPLICATE' }, operatorMessage('GW_DUPLICATE'));
      }
      p.done(seq, undefined, result.verdicts[i]);
    });
    this.afterCommit(() => {
      for (const [key, booked] of result.booked) {
        const [department, visitDate] = key.split('|') as [string, string];
        this.publishSlots(department, visitDate, booked);
      }
      this.pump.offer(result.crossings);
      this.pump.kick();
      // a registration queued a delivery, due at once (the timer finds the retries)
      if (result.booked.length > 0) this.runDeliveries();
    });
  }

  /** Work after a commit: a fault there is logged with its code, never a crash (what is committed is sent again later) */
  private afterCommit(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.log.error({ event: 'gateway.fault', code: 'INTERNAL', numericCode: ErrorCodes.INTERNAL.code, detail: (err as Error).message }, operatorMessage('INTERNAL'));
    }
  }

  // --- message distribution: the department queues ---

  private deliveriesJoined = false;
  /** The department queue's part of the group commit: due tries marked in it, published after its COMMIT */
  private readonly deliveryWriter: CommitParticipant = {
    write: (parts): void => {
      this.deliveriesJoined = false;
      const policy = this.options.delivery ?? { ackTimeoutMs: 2_000, maxAttempts: 5 };
      parts.deliveries = { now: this.clock.now(), ackTimeoutMs: policy.ackTimeoutMs, maxAttempts: policy.maxAttempts, twoWay: this.payment.returnLeg };
    },
    after: (reply, failure): void => {
      const written = reply?.deliveries;
      if (failure || !written || 'fault' in written) {
        const detail = failure?.message ?? (written && 'fault' in written ? written.fault.message : 'no reply');
        this.log.error({ event: 'gateway.fault', code: 'GW_ARCHIVE_FAULT', numericCode: ErrorCodes.GW_ARCHIVE_FAULT.code, detail }, operatorMessage('GW_ARCHIVE_FAULT'));
        return;
      }
      if (this.closed) return;
      this.counters.deliveries.sent += written.sends.length;
      this.counters.deliveries.dead += written.dead.length;
      // published once their state is committed: a kill in between only means one more try
      for (const [topic, payload] of written.sends) this.payment.publishDelivery(topic, payload).catch(() => undefined);
      for (const a of written.dead) void this.enqueue(a);
    },
  };

  private runDeliveries(): void {
    if (this.closed || this.deliveriesJoined || !this.thread) return;
    if (this.store.dueDeliveries(this.clock.now(), 1).length === 0) return;
    this.deliveriesJoined = true;
    this.thread.commitSoon(this.deliveryWriter);
  }

  private fromPayment(topic: string, payload: Uint8Array): void {
    const now = this.clock.now();
    const signed = parseSignedTopic(topic);
    if (signed) return this.signedFromPayment(signed.type, signed.terminalId, payload, now);
    const vouchers = /^tally\/gw\/v1\/vouchers\/([^/]{1,32})$/.exec(topic);
    if (vouchers) return this.voucherBookingsFromPayment(vouchers[1]!, payload, now);
    const target = parseDepartmentTopic(topic);
    const type = target?.kind === 'ack' ? 'department.ack' : `mqtt:${topic.slice(0, 60)}`;
    const decision = inspectPaymentJson<DepartmentAck>(type, payload, this.rates);
    if (!decision.pass || !target || decision.value.department !== target.department) {
      const code: ErrorName = decision.pass ? 'GW_BAD_FIELD' : decision.code;
      this.count('refused', code);
      void this.enqueue({ time: now, direction: 'payment-to-hospital', type, verdict: 'refused', code, reason: decision.pass ? 'department differs from its topic' : decision.reason, original: payload });
      return;
    }
    this.count('passed', 'department.ack');
    // the verdict ('delivered', or 'duplicate' for an ack of a delivery no longer waiting) is set in the commit that takes the ack
    void this.enqueue(
      { time: now, direction: 'payment-to-hospital', type: 'department.ack', verdict: 'delivered', reason: `delivery ${decision.value.deliveryId}`, department: decision.value.department, canonical: encodeCanonical(decision.value) },
      undefined,
      undefined,
      undefined,
      false,
      { deliveryId: decision.value.deliveryId, department: decision.value.department },
    ).then((r) => {
      if (r.verdict === 'delivered') this.counters.deliveries.acked += 1;
    });
  }

  /**
   * A signed payload from the payment side (a settlement voucher, a deny
   * list) for a terminal on the hospital side: verified with the investor
   * root before it passes, re-encoded, archived, then published on the
   * hospital broker once the archive has it.
   */
  private signedFromPayment(type: string, terminalId: string, payload: Uint8Array, now: number): void {
    const declaration = declarationOf(type)!;
    const refuse = (code: ErrorName, reason: string): void => {
      this.count('refused', code);
      void this.enqueue({ time: now, direction: 'payment-to-hospital', type, verdict: 'refused', code, reason: reason.slice(0, 200), original: payload });
    };
    if (!this.options.rootPublicKey || !this.hospital) return refuse('GW_NOT_ALLOWED', `${type} needs the investor root and the hospital broker configured`);
    if (payload.length > declaration.maxBytes) return refuse('GW_OVERSIZED', `${payload.length} bytes exceeds ${declaration.maxBytes}`);
    if (!this.rates.take(declaration)) return refuse('GW_RATE_LIMITED', `rate limit of ${type} exceeded`);
    let out: { topic: string; payload: Uint8Array; retain: boolean; sourceKey: string };
    try {
      out = type === SETTLEMENT_VOUCHER_TYPE ? this.checkSettlementVoucher(terminalId, payload, now) : this.checkSignedDenylist(terminalId, payload);
    } catch (err) {
      if (!isTallyError(err)) return refuse('GW_MALFORMED', (err as Error).message);
      const code = signedRefusal(err.code, err.message);
      return refuse(code, `${err.code}: ${err.message}`);
    }
    if (this.batchKeys.has(out.sourceKey) || this.store.passedSeq(out.sourceKey) !== undefined) {
      this.counters.duplicates += 1;
      void this.enqueue({ time: now, direction: 'payment-to-hospital', type, verdict: 'duplicate', code: 'GW_DUPLICATE', reason: 'already passed', sourceKey: out.sourceKey, original: payload });
      return;
    }
    this.batchKeys.add(out.sourceKey);
    this.count('passed', type);
    void this.enqueue(
      { time: now, direction: 'payment-to-hospital', type, verdict: 'passed', reason: `for terminal ${terminalId}`, sourceKey: out.sourceKey, original: payload, canonical: out.payload },
      undefined,
      undefined,
      () => this.batchKeys.delete(out.sourceKey),
      true,
    ).then((r) => {
      if (!r.fault) this.hospital?.publish(out.topic, Buffer.from(out.payload), { qos: 1, retain: out.retain });
    });
  }

  private checkSettlementVoucher(terminalId: string, payload: Uint8Array, now: number): { topic: string; payload: Uint8Array; retain: boolean; sourceKey: string } {
    const voucher = parseSettlementVoucher(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    const fields = verifySettlementVoucher(voucher, this.options.rootPublicKey!, { terminalId, now });
    return { topic: `${GATEWAY_TOPIC_PREFIX}/settlement/${terminalId}`, payload: new TextEncoder().encode(encodeSettlementVoucher(voucher)), retain: false, sourceKey: `settlement|${fields.serverId}|${fields.settlementId}` };
  }

  private checkSignedDenylist(terminalId: string, payload: Uint8Array): { topic: string; payload: Uint8Array; retain: boolean; sourceKey: string } {
    const fields = verifySignedDenylist(parseSignedDenylist(payload), this.options.rootPublicKey!);
    if (fields.terminalId !== terminalId) throw new TallyError('GW_BAD_FIELD', `list for ${fields.terminalId} on the topic of ${terminalId}`);
    const list = fields.denylist;
    return { topic: terminalTopic(terminalId, 'denylist'), payload: encodeJsonPayload('denylist', list), retain: list.kind === 'full', sourceKey: `denylist|${terminalId}|${list.version}|${list.kind}` };
  }

  /** Voucher bookings per department and day (from the payment side's voucher_slots), taken off the remaining slots */
  private readonly voucherBooked = new Map<string, number>();

  private voucherBookingsFromPayment(department: string, payload: Uint8Array, now: number): void {
    const decision = inspectPaymentJson<VoucherBookings>('voucher.bookings', payload, this.rates);
    if (!decision.pass || decision.value.department !== department) {
      const code: ErrorName = decision.pass ? 'GW_BAD_FIELD' : decision.code;
      this.count('refused', code);
      void this.enqueue({ time: now, direction: 'payment-to-hospital', type: 'voucher.bookings', verdict: 'refused', code, reason: decision.pass ? 'department differs from its topic' : decision.reason, original: payload });
      return;
    }
    const { visitDate, booked } = decision.value;
    this.count('passed', 'voucher.bookings');
    void this.enqueue({ time: now, direction: 'payment-to-hospital', type: 'voucher.bookings', verdict: 'passed', reason: `${booked} booked by voucher for ${visitDate}`, department, canonical: encodeCanonical(decision.value) }).then((r) => {
      if (r.fault) return;
      this.voucherBooked.set(`${department}|${visitDate}`, booked);
      this.afterCommit(() => this.publishSlots(department, visitDate, this.store.registrationsBooked(department, visitDate)));
    });
  }

  // --- hospital broker: terminals' signed reports, slot counts ---

  private fromHospitalBroker(topic: string, payload: Uint8Array): void {
    const now = this.clock.now();
    const m = /^tally\/v1\/terminal\/([^/]{1,64})\/report$/.exec(topic);
    const declaration = declarationOf(LEDGER_REPORT_TYPE)!;
    const refuse = (code: ErrorName, reason: string): void => {
      this.count('refused', code);
      void this.enqueue({ time: now, direction: 'hospital-to-payment', type: LEDGER_REPORT_TYPE, verdict: 'refused', code, reason, original: payload });
    };
    if (!m || !this.options.rootPublicKey) return refuse('GW_NOT_ALLOWED', `topic ${topic.slice(0, 60)} not on the allow list`);
    if (payload.length > declaration.maxBytes) return refuse('GW_OVERSIZED', `report of ${payload.length} bytes exceeds ${declaration.maxBytes}`);
    if (!this.rates.take(declaration)) return refuse('GW_RATE_LIMITED', 'rate limit of ledger.report exceeded');
    let frame;
    try {
      frame = parseReport(payload);
    } catch (err) {
      return refuse('GW_MALFORMED', `report: ${(err as Error).message}`.slice(0, 200));
    }
    const check = checkReportSignatures(frame, this.options.rootPublicKey, m[1]!);
    if (!check.ok) return refuse('GW_BAD_SIGNATURE', check.problem.slice(0, 200));
    const canonical = encodeReport({ transaction: frame.transaction, certificate: frame.certificate, entries: frame.entries });
    // a terminal resending the same report: passed once (the key is kept with the crossing)
    const sourceKey = `report|${payloadDigest(canonical)}`;
    if (this.batchKeys.has(sourceKey) || this.store.passedSeq(sourceKey) !== undefined) {
      this.counters.duplicates += 1;
      void this.enqueue({ time: now, direction: 'hospital-to-payment', type: LEDGER_REPORT_TYPE, verdict: 'duplicate', code: 'GW_DUPLICATE', reason: 'same report already passed', sourceKey, original: payload });
      return;
    }
    this.batchKeys.add(sourceKey);
    this.count('passed', LEDGER_REPORT_TYPE);
    void this.enqueue(
      { time: now, direction: 'hospital-to-payment', type: LEDGER_REPORT_TYPE, verdict: 'passed', reason: `${check.entries} entries of ${check.terminalId}`, sourceKey, original: payload },
      { topic: `tally/v1/terminal/${check.terminalId}/report`, payload: canonical },
      undefined,
      () => this.batchKeys.delete(sourceKey),
    );
  }

  /** The remaining slots: capacity less the day's registrations and its voucher bookings */
  private publishSlots(department: string, visitDate: string, registrations: number): void {
    const capacity = this.options.capacity?.[department];
    if (!this.hospital || capacity === undefined || !DEPARTMENT_PATTERN.test(department)) return;
    const vouchers = this.voucherBooked.get(`${department}|${visitDate}`) ?? 0;
    const booked = registrations + vouchers;
    const message = { v: 1, type: 'department.slots', department, visitDate, capacity, booked, registrations, vouchers, remaining: Math.max(0, capacity - booked) };
    this.hospital.publish(`${SLOTS_TOPIC_PREFIX}/${department}`, Buffer.from(encodeCanonical(message)), { qos: 1, retain: true });
  }

  private publishAllSlots(): void {
    const today = new Date(this.clock.now()).toISOString().slice(0, 10);
    const booked = new Map(this.store.allRegistrations().filter((r) => r.visitDate === today).map((r) => [r.department, r.booked]));
    for (const department of Object.keys(this.options.capacity ?? {})) this.publishSlots(department, today, booked.get(department) ?? 0);
  }

  /** Waits until every crossing accepted so far is handed to the payment side */
  async drained(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.store.crossingCount() > 0 || this.pump.inFlight > 0 || this.batch.length > 0 || this.thread!.busy) {
      if (Date.now() > deadline) throw new TallyError('INTERNAL', `gateway not drained: ${this.store.crossingCount()} crossings, ${this.pump.inFlight} in flight`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deliveryTimer) clearInterval(this.deliveryTimer);
    this.pump?.stop();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    // what was accepted is committed (and answered) before the links close
    await this.thread?.idle();
    await this.payment?.close().catch(() => undefined);
    await this.hospital?.endAsync(false).catch(() => undefined);
    await this.thread?.close();
  }
}

/** The gateway's refusal code for a signed payload's fault: a bad signature, a stale one, a misaddressed or a malformed one */
function signedRefusal(code: ErrorName, message: string): ErrorName {
  if (code.startsWith('GW_')) return code;
  if (code === 'SETTLEMENT_VOUCHER_EXPIRED') return 'GW_STALE_SIGNED';
  if (code === 'SETTLEMENT_VOUCHER_OTHER_TERMINAL') return 'GW_BAD_FIELD';
  if (code === 'SETTLEMENT_VOUCHER_FORGED' || /certified|signed by/.test(message)) return 'GW_BAD_SIGNATURE';
  return 'GW_MALFORMED';
}

export function sourceKeyOf(header: Hl7Header): string {
  return `${header.sendingApplication}|${header.sendingFacility}|${header.controlId}`.slice(0, 200);
}

