/**
 * The ingest server: the Ingest behind an MQTT connection, a periodic gap
 * check, the downlink publishers (config, deny list, time) and the HTTP API.
 * Several IngestServers can split the load through a shared subscription
 * ($share/<group>/...): any worker can verify any report alone.
 */
import { TallyError } from '../errors.js';
import { cpus } from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { encodeJsonPayload, type ConfigPayload, type DenylistPayload } from '../codecs/mqtt/messages.js';
import { parseTopic, serverSubscriptions, terminalTopic } from '../codecs/mqtt/topics.js';
import { toHex } from '../codecs/bytes.js';
import { systemClock, type Clock } from '../util/clock.js';
import { systemScheduler, type Scheduler } from '../util/scheduler.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { InsurancePlatform } from './insurance/InsurancePlatform.js';
import { InsuranceService, ledgerUseOrders } from './insurance/InsuranceService.js';
import { adminTokenProblem, DEFAULT_PRICING, startHttpApi, type HttpApi, type PricingConfig } from './httpApi.js';
import { InflightLimiter } from '../util/InflightLimiter.js';
import { Ingest, type CheckpointSigner, type FlappingRule, type Outgoing } from './ingest/Ingest.js';
import { createIngestWorkerPool } from './ingest/ingestWorkerPool.js';
import { DEFAULT_SIGNATURE_CHECK, type SignatureCheck } from './ingest/verifyReport.js';
import type { ServerStore } from './ServerStore.js';
import { RegistryCheck } from './registry/registryCheck.js';
import { VoucherOffice, type VoucherKey } from './voucher/VoucherOffice.js';

export interface IngestServerOptions {
  readonly store: ServerStore;
  readonly rootPublicKey: Uint8Array;
  /** mqtt://127.0.0.1:port or mqtts://... */
  readonly brokerUrl: string;
  /** TLS material (PEM) and other mqtt.js options; with mutual TLS the certificate's CN is tally-server */
  readonly mqttOptions?: IClientOptions;
  /** 5 (default) or 4 (MQTT 3.1.1) */
  readonly protocolVersion?: 4 | 5;
  /** Shared subscription group for scale-out; undefined: a plain subscription */
  readonly sharedGroup?: string;
  /** A stable id gives the worker a persistent session (reports wait at the broker while it restarts) */
  readonly clientId?: string;
  /** How often gaps are checked; a gap still open at two checks in a row is asked for again (default 5 s) */
  readonly gapCheckMs?: number;
  /** Start the HTTP API on this loopback port (0: a free one); undefined: no HTTP API */
  readonly httpPort?: number;
  /** The dashboard is reached through an HTTPS proxy on this machine: Secure session cookies (startHttpApi's httpsProxy) */
  readonly httpsProxy?: boolean;
  /** Default: httpApi's DEFAULT_PRICING */
  readonly pricing?: PricingConfig;
  /**
   * The HTTP API's admin bearer token (at least 16 characters: httpApi's adminTokenProblem): with it the registry
   * writes are on and imports need it too; undefined: writes refused (403). Only with httpPort.
   */
  readonly adminToken?: string;
  /** chain-anchored (default: one signature per hash-linked run at once, every entry's own in the background audit) or every-entry: see ingest/verifyReport.ts */
  readonly signatureCheck?: SignatureCheck;
  /** Worker threads that parse and verify reports and run the signature audit (default: one per CPU; 0: all on the main thread) */
  readonly workerThreads?: number;
  /** chain-anchored only: how often the background audit of every entry's own signature runs, and how many entries a run checks */
  readonly auditIntervalMs?: number;
  readonly auditBudget?: number;
  /** How often the registry is compared with the reports (unregistered batches, terminals in the wrong clinic); default 10 s */
  readonly registryCheckMs?: number;
  readonly clock?: Clock;
  /** Where the gap check, signature audit and registry check wait (tests move it by hand) */
  readonly scheduler?: Scheduler;
  readonly logger?: Logger;
  /** Signs a checkpoint into every ack (tally server key certify makes the key and its root certificate) */
  readonly checkpointSigner?: CheckpointSigner;
  /** When a terminal's connection counts as flapping (default: 6 connections in 10 minutes) */
  readonly flapping?: FlappingRule;
  /**
   * The voucher back office's key (tally server voucher certify-key): the HTTP API signs vouchers with it, and each
   * terminal that comes online gets the current trust list, retained (voucher-format.md §4)
   */
  readonly voucherKey?: VoucherKey;
  /** Insurance payments (docs/insurance.md): the platform adapter; the checkpoint signer signs the vouchers. Only with httpPort */
  readonly insurance?: { readonly platform: InsurancePlatform; readonly baseUrl?: string; readonly codeTtlMs?: number; readonly intervalS?: number; readonly voucherTtlMs?: number; readonly reverseGraceMs?: number; /** How long an order may stay between consent and its recorded settlement, ms (default 30 min) */ readonly settleAgeLimitMs?: number; /** How often the sweep runs, ms (default 30 s) */ readonly sweepMs?: number };
}

export interface IngestServer {
  readonly ingest: Ingest;
  readonly client: MqttClient;
  /** The HTTP API's base URL when started */
  readonly httpUrl?: string;
  /** The insurance service, when configured */
  readonly insurance?: InsuranceService;
  /** Resolves when every message received so far has been handled */
  idle(): Promise<void>;
  publishConfig(terminalId: string, config: ConfigPayload): Promise<void>;
  publishDenylist(terminalId: string, denylist: DenylistPayload): Promise<void>;
  publishTime(terminalId: string, transaction: number): Promise<void>;
  /** Runs a gap check now and publishes the resends */
  checkGaps(): Promise<number>;
  /** Compares the registry with the reports now; returns the number of alerts raised */
  checkRegistry(): Promise<number>;
  stop(): Promise<void>;
}

export async function createIngestServer(options: IngestServerOptions): Promise<IngestServer> {
  // a token the HTTP API would refuse fails here, before anything is started
  if (options.adminToken !== undefined && options.httpPort === undefined) throw new TallyError('CONFIG', 'adminToken is for the HTTP API: give httpPort too');
  const tokenProblem = options.adminToken === undefined ? undefined : adminTokenProblem(options.adminToken);
  if (tokenProblem) throw new TallyError('CONFIG', tokenProblem);
  const clock = options.clock ?? systemClock;
  const timers = options.scheduler ?? systemScheduler;
  const logger = (options.logger ?? silentLogger).child({ module: 'server' });
  const threads = options.workerThreads ?? cpus().length;
  const workers = threads > 0 ? createIngestWorkerPool(threads) : undefined;
  const signatureCheck = options.signatureCheck ?? DEFAULT_SIGNATURE_CHECK;
  const ingest = new Ingest({
    store: options.store,
    rootPublicKey: options.rootPublicKey,
    clock,
    logger,
    signatureCheck,
    ...(workers ? { verifier: workers, preparer: workers } : {}),
    ...(options.checkpointSigner ? { checkpointSigner: options.checkpointSigner } : {}),
    ...(options.flapping ? { flapping: options.flapping } : {}),
  });
  const protocolVersion = options.protocolVersion ?? 5;
  // with a stable client id, a persistent session: the broker keeps QoS 1 reports for a worker that restarts;
  // without one, a clean session, so restarts leave no orphan sessions collecting copies at the broker
  const persistent = options.clientId !== undefined;
  const clientId = options.clientId ?? `tally-ingest-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const client = mqtt.connect(options.brokerUrl, {
    clientId,
    protocolVersion,
    clean: !persistent,
    ...(protocolVersion === 5 && persistent ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    reconnectPeriod: 500,
    connectTimeout: 10_000,
    ...options.mqttOptions,
  });
  const limiter = new InflightLimiter(20);
  client.on('connect', (connack) => {
    limiter.setLimit(connack.properties?.receiveMaximum ?? 20);
  });
  client.on('error', (err) => logger.warn({ err: err.message }, 'mqtt error'));

  const pending = new Set<Promise<unknown>>();
  const publish = (out: Outgoing): Promise<void> =>
    limiter.run(async () => {
      await client.publishAsync(out.topic, Buffer.from(out.payload.buffer, out.payload.byteOffset, out.payload.byteLength), { qos: 1, retain: out.retain ?? false });
    });
  const voucherOffice = options.voucherKey ? new VoucherOffice(options.store.vouchers, options.voucherKey, () => Math.floor(clock.now() / 1000)) : undefined;
  /** A terminal that comes online gets the trust list signed now, retained on its topic */
  const trustListFor = async (terminalId: string): Promise<Outgoing[]> => {
    if (!voucherOffice) return [];
    const raw = await voucherOffice.trustList();
    return [{ topic: terminalTopic(terminalId, 'trust-list'), payload: encodeJsonPayload('trust-list', { listSeq: Math.floor(clock.now() / 1000), hex: toHex(raw) }), retain: true }];
  };
  client.on('message', (topic, payload) => {
    const parsed = voucherOffice ? parseTopic(topic) : undefined;
    const online = parsed?.kind === 'status' && /"state"\s*:\s*"online"/.test(payload.toString('utf8'));
    const work = ingest
      .handle(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength))
      .then(async (outcome) => [...outcome.replies, ...(online && outcome.accepted && parsed ? await trustListFor(parsed.terminalId) : [])])
      .then((replies) => Promise.all(replies.map(publish)))
      .catch((err: Error) => logger.error({ err: err.message, topic }, 'reply failed'));
    pending.add(work);
    void work.finally(() => pending.delete(work));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    client.once('connect', () => {
      client.off('error', onError);
      resolve();
    });
    client.once('error', onError);
  });
  await client.subscribeAsync(serverSubscriptions(options.sharedGroup), { qos: 1 });
  await workers?.ready();

  const checkGaps = async (): Promise<number> => {
    const resends = await ingest.checkGaps();
    await Promise.all(resends.map(publish));
    return resends.length;
  };
  const gapTimer = timers.setInterval(() => {
    checkGaps().catch((err: Error) => logger.error({ err: err.message }, 'gap check failed'));
  }, options.gapCheckMs ?? 5000, { unref: true });
  // chain-anchored ingest checks one signature per run at once; the audit checks the others in the background
  let auditing = false;
  const auditTimer = timers.setInterval(() => {
    if (signatureCheck !== 'chain-anchored' || auditing) return;
    auditing = true;
    ingest
      .auditSignatures(options.auditBudget ?? 2000)
      .catch((err: Error) => logger.error({ err: err.message }, 'signature audit failed'))
      .finally(() => (auditing = false));
  }, options.auditIntervalMs ?? 1000, { unref: true });
  const registryCheck = new RegistryCheck(options.store, clock, logger);
  const checkRegistry = async (): Promise<number> => (await registryCheck.check()).length;
  const registryTimer = timers.setInterval(() => {
    checkRegistry().catch((err: Error) => logger.error({ err: err.message }, 'registry check failed'));
  }, options.registryCheckMs ?? 10_000, { unref: true });

  const stopWork = async (): Promise<void> => {
    timers.clearInterval(gapTimer);
    timers.clearInterval(registryTimer);
    timers.clearInterval(auditTimer);
    await Promise.allSettled([...pending]);
    await client.endAsync();
    // a report that arrived while the client was ending is finished too: the workers must not be stopped under it
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  let http: HttpApi | undefined;
  let insurance: InsuranceService | undefined;
  if (options.insurance && options.httpPort === undefined) throw new TallyError('CONFIG', 'insurance is served on the HTTP API: give httpPort too');
  if (options.insurance) {
    const { platform, ...rest } = options.insurance;
    insurance = new InsuranceService({
      store: options.store.insurance,
      platform,
      ...(options.checkpointSigner ? { signer: options.checkpointSigner } : {}),
      baseUrl: rest.baseUrl ?? `http://127.0.0.1:${options.httpPort}`,
      clock,
      logger,
      ...(rest.codeTtlMs !== undefined ? { codeTtlMs: rest.codeTtlMs } : {}),
      ...(rest.intervalS !== undefined ? { intervalS: rest.intervalS } : {}),
      ...(rest.voucherTtlMs !== undefined ? { voucherTtlMs: rest.voucherTtlMs } : {}),
      ...(rest.reverseGraceMs !== undefined ? { reverseGraceMs: rest.reverseGraceMs } : {}),
      ...(rest.settleAgeLimitMs !== undefined ? { settleAgeLimitMs: rest.settleAgeLimitMs } : {}),
      raiseAlert: (alert) => options.store.raiseAlert(alert),
      // the voucher goes to the terminal as soon as it exists; its poll is only the fallback
      onSettled: (order) => {
        const push = publish({
          topic: terminalTopic(order.terminalId, 'insurance-result'),
          payload: encodeJsonPayload('insurance-result', { transaction: 0, status: 'ok', data: { op: 'voucher', orderId: order.orderId, voucher: order.voucher! } }),
        }).catch((err: Error) => logger.warn({ event: 'insurance.push-failed', orderId: order.orderId, err: err.message }, 'voucher not pushed: the terminal polls for it'));
        pending.add(push);
        void push.finally(() => pending.delete(push));
      },
    });
    ingest.insurance = insurance;
    // settlements left unresolved by a crash are looked up by their idempotency key before anything else
    await insurance.recover().catch((err: unknown) => logger.warn({ event: 'insurance.recover-failed', err: (err as Error).message }, 'insurance recovery failed: retried at the next sweep'));
  }
  const sweeping = insurance;
  // expired codes, vouchers never used (reversed), settlements a timeout left open
  const insuranceTimer = sweeping
    ? timers.setInterval(() => {
        Promise.all([sweeping.sweep(), sweeping.recover()]).catch((err: Error) => logger.warn({ event: 'insurance.sweep-failed', err: err.message }, 'insurance sweep failed'));
      }, options.insurance?.sweepMs ?? 30_000, { unref: true })
    : undefined;
  if (options.httpPort !== undefined) {
    try {
      http = await startHttpApi({
        store: options.store,
        pricing: options.pricing ?? DEFAULT_PRICING,
        port: options.httpPort,
        rootPublicKey: options.rootPublicKey,
        statuses: () => ingest.terminalStatuses(),
        stats: () => ({ ...ingest.stats }),
        ...(options.adminToken !== undefined ? { adminToken: options.adminToken } : {}),
        ...(options.httpsProxy ? { httpsProxy: true } : {}),
        clock: () => clock.now(),
        logger,
        ...(options.voucherKey ? { voucherKey: options.voucherKey } : {}),
        ...(options.checkpointSigner ? { signer: options.checkpointSigner } : {}),
        publishDenylist: (terminalId, list) => publish({ topic: terminalTopic(terminalId, 'denylist'), payload: encodeJsonPayload('denylist', list), retain: true }),
        ...(insurance ? { insurance: { service: insurance, ledgerUses: (day: string) => ledgerUseOrders(options.store.insurance, day) } } : {}),
      });
    } catch (err) {
      // the port is taken, say: no ingest without the API asked for
      if (insuranceTimer !== undefined) timers.clearInterval(insuranceTimer);
      await stopWork();
      await workers?.close();
      throw err;
    }
  }
  let transaction = 0;
  const next = (): number => (transaction = (transaction + 1) % 0xffffffff);

  return {
    ingest,
    client,
    ...(http ? { httpUrl: http.url } : {}),
    ...(insurance ? { insurance } : {}),
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    publishConfig: (terminalId, config) => publish({ topic: terminalTopic(terminalId, 'config'), payload: encodeJsonPayload('config', config), retain: true }),
    publishDenylist: (terminalId, denylist) => publish({ topic: terminalTopic(terminalId, 'denylist'), payload: encodeJsonPayload('denylist', denylist), retain: denylist.kind === 'full' }),
    publishTime: (terminalId, tx) => publish({ topic: terminalTopic(terminalId, 'time'), payload: encodeJsonPayload('time', { transaction: tx || next(), serverTime: clock.now() }) }),
    checkGaps,
    checkRegistry,
    async stop() {
      if (insuranceTimer !== undefined) timers.clearInterval(insuranceTimer);
      await stopWork();
      await http?.close();
      await workers?.close();
    },
  };
}
