/**
 * The terminal's side of MQTT: the connection, its status and heartbeat, and
 * the dispatch of what the server sends. The outbox drain (reports and their
 * acks) is reportDrain.ts; the state the server keeps on the terminal (config,
 * deny list, time) and the refusals of bad messages are downlinkState.ts.
 *
 * - Restart of anything: the outbox is the truth. After a reconnect the drain
 *   starts again from the lowest un-acknowledged entry.
 * - Status: retained online/offline with a last will; a heartbeat with the
 *   queue depth.
 * - Requests that wait for the server's answer (batch claims, voucher claims,
 *   insurance) resolve undefined after their timeout: offline.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { parseCardRecord, RecordKind } from '../codecs/cardRecord.js';
import {
  encodeJsonPayload,
  parseJsonPayload,
  type AckPayload,
  type ConfigPayload,
  type HeartbeatPayload,
  type JsonKind,
  type ResponsePayload,
  type InsuranceRequestPayload,
  type InsuranceResultPayload,
} from '../codecs/mqtt/messages.js';
import { PayloadError } from '../codecs/mqtt/PayloadError.js';
import { parseTopic, terminalSubscriptions, terminalTopic } from '../codecs/mqtt/topics.js';
import { systemClock, type Clock } from '../util/clock.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../util/scheduler.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { codeOf } from '../errors.js';
import { InflightLimiter } from '../util/InflightLimiter.js';
import type { OutboxSource } from './OutboxSource.js';
import { connectMqtt, type TlsFiles } from './connectMqtt.js';
import { createReportDrain, type DrainStats } from './reportDrain.js';
import { createDownlinkState, type DenylistUpdate, type Refusal, type SyncState } from './downlinkState.js';

export type { DenylistUpdate, Refusal, SyncState } from './downlinkState.js';

export interface SyncPolicy {
  /** Entries per report */
  readonly reportBatchSize: number;
  /** Reports a second while draining a backlog */
  readonly maxReportsPerSecond: number;
  readonly heartbeatMs: number;
  /** Send a report again when its application ack has not come after this long */
  readonly ackTimeoutMs: number;
  /** Upper bound on reports awaiting an ack; the broker's receive maximum lowers it further */
  readonly maxInflightReports: number;
}

export const DEFAULT_SYNC_POLICY: SyncPolicy = {
  reportBatchSize: 100,
  maxReportsPerSecond: 200,
  heartbeatMs: 60_000,
  ackTimeoutMs: 10_000,
  maxInflightReports: 20,
};

/** The last good state received from the server; the daemon persists it (save) and gives it back at start (initial) */
export interface HeartbeatExtras {
  readonly lastSeq?: number;
  readonly batch?: HeartbeatPayload['batch'];
  readonly reader?: string;
  readonly clockTrusted?: boolean;
  /** When the terminal's TLS client certificate expires (ms) */
  readonly certExpiresAt?: number;
}

export interface SyncClientOptions {
  readonly outbox: OutboxSource;
  readonly brokerUrl: string;
  /** TLS material (PEM: ca, cert, key) and other mqtt.js options */
  readonly mqttOptions?: IClientOptions;
  /** TLS files read again at every connection, so a renewed certificate is used without a restart */
  readonly tlsFiles?: TlsFiles;
  /** 5 (default) or 4 (MQTT 3.1.1) */
  readonly protocolVersion?: 4 | 5;
  readonly policy?: Partial<SyncPolicy>;
  readonly initialState?: SyncState;
  /** Called with every new good state (persist it) */
  readonly saveState?: (state: SyncState) => void;
  /**
   * Called with each deny-list change before it is accepted (the daemon applies it to the ledger,
   * e.g. Ledger.applyDenyList). Throwing refuses the change with reason apply-failed.
   */
  readonly onDenylist?: (update: DenylistUpdate) => void;
  /** The server's voucher trust list arrived (the terminal verifies and keeps it); throwing refuses it */
  readonly onTrustList?: (raw: Uint8Array) => void;
  /** Called with each newer configuration once accepted */
  readonly onConfig?: (config: ConfigPayload) => void;
  /**
   * Called when the server sends a valid time (the daemon's clock follows it; the system clock is
   * never set). Throwing refuses the time with reason not-applied; the saved offset is then kept.
   */
  readonly onServerTime?: (serverTime: number, localTime: number) => void;
  /** Called with the signed checkpoint an ack carries (the terminal checks and keeps it); throwing only logs */
  readonly onCheckpoint?: (checkpoint: NonNullable<AckPayload['data']['checkpoint']>) => void;
  readonly heartbeatExtras?: () => HeartbeatExtras;
  /** How often the outbox is polled for new entries besides notify() (default 1000 ms) */
  readonly pollMs?: number;
  readonly software?: string;
  readonly clock?: Clock;
  /** Where the drain, heartbeat and answer timeouts wait (tests move it by hand) */
  readonly scheduler?: Scheduler;
  readonly logger?: Logger;
}

export interface SyncStats extends DrainStats {
  /** The most publishes awaiting a PUBACK at once */
  maxInflightPublishes: number;
  refusals: number;
}

export interface ClaimAnswer {
  readonly granted: boolean;
  readonly holder?: string;
}

export interface VoucherClaimAnswer {
  readonly granted: boolean;
  /** The refusal's error name when not granted */
  readonly code?: string;
  readonly detail?: string;
}

export interface SyncClient {
  readonly client: MqttClient;
  readonly stats: SyncStats;
  /** New entries are in the outbox: send them now rather than at the next poll */
  notify(): void;
  /** Resolves when the outbox is empty (every entry acknowledged) */
  drained(timeoutMs?: number): Promise<void>;
  state(): SyncState;
  policy(): SyncPolicy;
  refusals(): readonly Refusal[];
  connected(): boolean;
  /** Connected and the broker has granted this connection's downlink subscriptions (its SUBACK came) */
  subscribed(): boolean;
  /** The broker's receive maximum as last advertised (20 when it advertises none, as MQTT 3.1.1 brokers don't) */
  receiveMaximum(): number;
  /** Asks the server whether this terminal may load a batch; undefined when no answer in time (offline) */
  claimBatch(batchIdHex: string, batchNo: number, clinicCode: string, timeoutMs?: number): Promise<ClaimAnswer | undefined>;
  /** Claims a voucher's write-off at the server; undefined when no answer in time (offline) */
  claimVoucher(claim: { serial: number; keyId: number; clinicCode: string; examType: string }, timeoutMs?: number): Promise<VoucherClaimAnswer | undefined>;
  /** An insurance request (docs/insurance.md); undefined when no answer in time (offline) */
  insurance(request: Omit<InsuranceRequestPayload, 'transaction'>, timeoutMs?: number): Promise<InsuranceResultPayload | undefined>;
  /** Settlement vouchers the server pushes (insurance-result with transaction 0, op voucher) */
  onInsuranceVoucher(listener: (orderId: string, voucher: string) => void): () => void;
  sendHeartbeat(): Promise<void>;
  /** Publishes offline (retained) and disconnects */
  stop(): Promise<void>;
}

const U32 = 0x1_0000_0000;

export function createSyncClient(options: SyncClientOptions): SyncClient {
  const clock = options.clock ?? systemClock;
  const timers = options.scheduler ?? systemScheduler;
  const logger = (options.logger ?? silentLogger).child({ module: 'sync' });
  const outbox = options.outbox;
  const terminalId = outbox.terminalId;
  const certificate = parseCardRecord(outbox.terminalCertificate());
  const clinicCode = certificate.kind === RecordKind.TERMINAL ? certificate.clinicCode : undefined;
  let policy: SyncPolicy = { ...DEFAULT_SYNC_POLICY, ...options.policy };
  if (options.initialState?.config) policy = applyConfigPolicy(policy, options.initialState.config);
  const protocolVersion = options.protocolVersion ?? 5;
  const topic = (kind: Parameters<typeof terminalTopic>[1]): string => terminalTopic(terminalId, kind);
  const startedAt = clock.now();
  const stats: SyncStats = { reportsSent: 0, entriesSent: 0, entriesAcknowledged: 0, acks: 0, ackTimeouts: 0, resendRequests: 0, maxInflightReports: 0, maxInflightPublishes: 0, refusals: 0 };
  const claims = new Map<number, (answer: ClaimAnswer) => void>();
  const voucherClaims = new Map<number, (answer: VoucherClaimAnswer) => void>();
  const insuranceWaiters = new Map<number, (answer: InsuranceResultPayload) => void>();
  const voucherListeners = new Set<(orderId: string, voucher: string) => void>();
  const publishLimiter = new InflightLimiter(20);
  let receiveMaximum = 20;
  let transaction = Math.floor(Math.random() * 0xffff);

  const client = connectMqtt(options.brokerUrl, {
    clientId: `terminal-${terminalId}`,
    protocolVersion,
    // a persistent session: acks and resend requests wait at the broker while the link is down
    clean: false,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 7 * 86_400 } } : {}),
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    keepalive: 30,
    // mqtt-packet's default pre-builds 65,536 two-byte Buffers for message ids (~7 MB of heap held
    // for the life of the process); a terminal publishes a few messages a minute
    writeCache: false,
    will: { topic: topic('status'), payload: Buffer.from(encodeJsonPayload('status', { state: 'offline' })), qos: 1, retain: true },
    ...options.mqttOptions,
  }, options.tlsFiles);

  const nextTransaction = (): number => (transaction = (transaction + 1) % U32);

  /** The answer a waiter map receives for tx, or undefined after timeoutMs (offline, or the server silent) */
  const awaitAnswer = <T>(waiters: Map<number, (answer: T) => void>, tx: number, timeoutMs: number): Promise<T | undefined> =>
    new Promise<T | undefined>((resolve) => {
      const timer = timers.setTimeout(() => {
        waiters.delete(tx);
        resolve(undefined);
      }, timeoutMs);
      waiters.set(tx, (a) => {
        timers.clearTimeout(timer);
        waiters.delete(tx);
        resolve(a);
      });
    });

  const publish = (topicName: string, payload: Uint8Array, retain = false): Promise<void> =>
    publishLimiter.run(async () => {
      stats.maxInflightPublishes = Math.max(stats.maxInflightPublishes, publishLimiter.current);
      await client.publishAsync(topicName, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1, retain });
    });

  const respond = (tx: number, request: ResponsePayload['request'], error?: { code: string; message: string }): void => {
    if (!client.connected) return;
    const body: ResponsePayload = { transaction: tx, request, status: error ? 'error' : 'ok', ...(error ? { error } : {}) };
    publish(topic('response'), encodeJsonPayload('response', body)).catch((err: Error) => logger.warn({ err: err.message }, 'response not sent'));
  };

  const drain = createReportDrain({
    outbox,
    stats,
    policy: () => policy,
    receiveMaximum: () => receiveMaximum,
    connected: () => client.connected,
    publishReport: (payload) => publish(topic('report'), payload),
    nextTransaction,
    pollMs: options.pollMs ?? 1000,
    clock,
    timers,
    logger,
  });

  const downlink = createDownlinkState({
    clinicCode,
    ...(options.initialState ? { initialState: options.initialState } : {}),
    ...(options.saveState ? { saveState: options.saveState } : {}),
    ...(options.onDenylist ? { onDenylist: options.onDenylist } : {}),
    ...(options.onConfig ? { onConfig: options.onConfig } : {}),
    ...(options.onServerTime ? { onServerTime: options.onServerTime } : {}),
    applyConfig(config) {
      policy = applyConfigPolicy(policy, config);
      drain.setRate(policy.maxReportsPerSecond);
      restartHeartbeat();
      if (config.connection) {
        // mqtt.js reads these at the next (re)connect
        client.options.keepalive = config.connection.keepaliveSeconds;
        client.options.reconnectPeriod = config.connection.reconnectSeconds * 1000;
      }
    },
    respond,
    refused: () => stats.refusals++,
    clock,
    logger,
  });
  const { refuse } = downlink;

  // ---------- messages from the server ----------

  const handleAck = (ack: AckPayload): void => {
    drain.acknowledged(ack);
    if (ack.data.checkpoint) {
      try {
        options.onCheckpoint?.(ack.data.checkpoint);
      } catch (err) {
        logger.warn({ event: 'checkpoint-refused', code: codeOf(err), err: (err as Error).message }, 'checkpoint in the ack refused');
      }
    }
    if (ack.status === 'error') refuse('ack', ack.error?.code ?? 'error', `server refused entries: ${ack.error?.message ?? ''} ${JSON.stringify(ack.data.rejected ?? []).slice(0, 200)}`);
    drain.pump();
  };

  const handleResend = (tx: number, fromSeq: number, toSeq: number | undefined): void => {
    if (drain.resend(fromSeq, toSeq) === 0) return refuse('resend', 'not-found', `no entries from seq ${fromSeq}`, { transaction: tx, request: 'resend' });
    respond(tx, 'resend');
  };

  client.on('message', (topicName, payload) => {
    const parsed = parseTopic(topicName);
    if (!parsed || parsed.terminalId !== terminalId || parsed.direction !== 'downlink') {
      refuse('unknown', 'unknown-topic', topicName);
      return;
    }
    const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    try {
      switch (parsed.kind) {
        case 'ack':
          return handleAck(parseJsonPayload('ack', bytes));
        case 'config':
          return downlink.config(parseJsonPayload('config', bytes));
        case 'denylist':
          return downlink.denylist(parseJsonPayload('denylist', bytes));
        case 'time': {
          const time = parseJsonPayload('time', bytes);
          return downlink.time(time.transaction, time.serverTime);
        }
        case 'resend': {
          const resend = parseJsonPayload('resend', bytes);
          return handleResend(resend.transaction, resend.fromSeq, resend.toSeq);
        }
        case 'voucher-claim-result': {
          const result = parseJsonPayload('voucher-claim-result', bytes);
          const waiter = voucherClaims.get(result.transaction);
          if (waiter && result.data) waiter({ granted: result.data.granted, ...(result.data.code ? { code: result.data.code } : {}), ...(result.data.detail ? { detail: result.data.detail } : {}) });
          return;
        }
        case 'insurance-result': {
          const result = parseJsonPayload('insurance-result', bytes);
          if (result.transaction === 0 && result.data?.op === 'voucher' && result.data.orderId && result.data.voucher) {
            for (const listener of voucherListeners) listener(result.data.orderId, result.data.voucher);
            return;
          }
          insuranceWaiters.get(result.transaction)?.(result);
          return;
        }
        case 'trust-list': {
          const list = parseJsonPayload('trust-list', bytes);
          options.onTrustList?.(new Uint8Array(Buffer.from(list.hex, 'hex')));
          return;
        }
        case 'claim-result': {
          const result = parseJsonPayload('claim-result', bytes);
          const waiter = claims.get(result.transaction);
          if (waiter && result.data) waiter({ granted: result.data.granted, ...(result.data.holder ? { holder: result.data.holder } : {}) });
          return;
        }
      }
    } catch (err) {
      const reason = err instanceof PayloadError ? err.reason : 'internal';
      // answer the request when its transaction can be read from the refused payload
      const tx = transactionOf(bytes);
      const request = (['config', 'denylist', 'time', 'resend'] as const).find((k) => k === parsed.kind);
      refuse(parsed.kind, reason, (err as Error).message, tx !== undefined && request ? { transaction: tx, request } : undefined);
    }
  });

  // ---------- connection, status, heartbeat ----------

  /** Counts connections, so a SUBACK of an earlier connection does not count for this one */
  let connections = 0;
  let subscribedConnection: number | undefined;

  client.on('connect', (connack) => {
    receiveMaximum = connack.properties?.receiveMaximum ?? 20;
    publishLimiter.setLimit(receiveMaximum);
    logger.info({ receiveMaximum, sessionPresent: connack.sessionPresent }, 'connected');
    // after any reconnect, start again from the lowest un-acknowledged entry
    drain.restart();
    subscribedConnection = undefined;
    const thisConnection = ++connections;
    client.subscribe(terminalSubscriptions(terminalId), { qos: 1 }, (err) => {
      if (err) logger.warn({ err: err.message }, 'subscribe failed');
      else {
        subscribedConnection = thisConnection;
        // what a supervisor (or a test) waits for: server messages for this terminal reach it from here on
        logger.info({ event: 'sync.subscribed' }, 'subscribed');
      }
    });
    publish(topic('status'), encodeJsonPayload('status', { state: 'online', time: clock.now(), ...(options.software ? { software: options.software } : {}) }), true).catch(() => undefined);
    drain.pump();
  });
  client.on('error', (err) => logger.warn({ err: err.message }, 'mqtt error'));
  client.on('close', () => {
    subscribedConnection = undefined;
    logger.debug({}, 'connection closed');
  });

  const heartbeat = async (): Promise<void> => {
    if (!client.connected) return;
    const extras = options.heartbeatExtras?.() ?? {};
    const refusals = downlink.refusals();
    const last = refusals[refusals.length - 1];
    const state = downlink.state();
    const body: HeartbeatPayload = {
      time: clock.now(),
      queueDepth: outbox.pendingCount(),
      lastSeq: extras.lastSeq ?? 0,
      uptimeSeconds: Math.floor((clock.now() - startedAt) / 1000),
      ...(extras.batch ? { batch: extras.batch } : {}),
      ...(extras.reader ? { reader: extras.reader.slice(0, 64) } : {}),
      ...(state.config ? { configVersion: state.config.version } : {}),
      ...(state.denylist ? { denylistVersion: state.denylist.version } : {}),
      ...(last ? { lastRefusal: { kind: last.kind.slice(0, 32), reason: last.reason.slice(0, 300), time: last.at } } : {}),
      ...(extras.clockTrusted !== undefined ? { clockTrusted: extras.clockTrusted } : {}),
      ...(extras.certExpiresAt !== undefined ? { certExpiresAt: extras.certExpiresAt } : {}),
      ...(options.software ? { software: options.software.slice(0, 64) } : {}),
    };
    await publish(topic('heartbeat'), encodeJsonPayload('heartbeat', body));
  };
  let heartbeatTimer: TimerHandle | undefined;
  function restartHeartbeat(): void {
    if (heartbeatTimer) timers.clearInterval(heartbeatTimer);
    heartbeatTimer = timers.setInterval(() => {
      heartbeat().catch((err: Error) => logger.warn({ err: err.message }, 'heartbeat not sent'));
    }, policy.heartbeatMs, { unref: true });
  }
  restartHeartbeat();

  return {
    client,
    stats,
    notify: () => drain.pump(),
    drained: (timeoutMs = 60_000) => drain.drained(timeoutMs),
    state: () => downlink.state(),
    policy: () => policy,
    refusals: () => downlink.refusals(),
    connected: () => client.connected,
    subscribed: () => client.connected && subscribedConnection === connections,
    receiveMaximum: () => receiveMaximum,
    async claimBatch(batchIdHex, batchNo, claimClinic, timeoutMs = 3000) {
      if (!client.connected) return undefined;
      const tx = nextTransaction();
      const answer = awaitAnswer(claims, tx, timeoutMs);
      await publish(topic('claim'), encodeJsonPayload('claim', { transaction: tx, batchId: batchIdHex, batchNo, clinicCode: claimClinic }));
      return answer;
    },
    async claimVoucher(claim, timeoutMs = 3000) {
      if (!client.connected) return undefined;
      const tx = nextTransaction();
      const answer = awaitAnswer(voucherClaims, tx, timeoutMs);
      await publish(topic('voucher-claim'), encodeJsonPayload('voucher-claim', { transaction: tx, ...claim }));
      return answer;
    },
    async insurance(request, timeoutMs = 5000) {
      if (!client.connected) return undefined;
      // transaction 0 is the server's push
      let tx = nextTransaction();
      if (tx === 0) tx = nextTransaction();
      const answer = awaitAnswer(insuranceWaiters, tx, timeoutMs);
      await publish(topic('insurance'), encodeJsonPayload('insurance', { transaction: tx, ...request }));
      return answer;
    },
    onInsuranceVoucher(listener) {
      voucherListeners.add(listener);
      return () => voucherListeners.delete(listener);
    },
    sendHeartbeat: heartbeat,
    async stop() {
      drain.stop();
      if (heartbeatTimer) timers.clearInterval(heartbeatTimer);
      if (client.connected) {
        await Promise.race([publish(topic('status'), encodeJsonPayload('status', { state: 'offline', time: clock.now() }), true), new Promise((r) => timers.setTimeout(() => r(undefined), 1000, { unref: true }))]).catch(() => undefined);
      }
      await client.endAsync(true);
    },
  };
}

function applyConfigPolicy(policy: SyncPolicy, config: ConfigPayload): SyncPolicy {
  return {
    ...policy,
    reportBatchSize: config.policy.reportBatchSize,
    maxReportsPerSecond: config.policy.maxReportsPerSecond,
    heartbeatMs: config.policy.heartbeatSeconds * 1000,
    ackTimeoutMs: config.policy.ackTimeoutSeconds * 1000,
  };
}

/** The transaction of a payload that failed validation, if it has a readable one */
function transactionOf(bytes: Uint8Array): number | undefined {
  try {
    const value = (JSON.parse(new TextDecoder().decode(bytes)) as { transaction?: unknown }).transaction;
    return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < U32 ? value : undefined;
  } catch {
    return undefined;
  }
}

export type { JsonKind };
