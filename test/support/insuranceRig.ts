/**
 * The server side of insurance payments as tests run it: a SQLite server store, the insurance service over the
 * HTTP adapter to a `tally sim insurance` process, its routes on a real loopback fastify (the terminal's requests,
 * which travel over MQTT in the product, are calls on `rig.service` here), and a server key
 * certified by a test investor root.
 */
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { encodeServerKeyCertificateBody, type SignedJson } from '../../src/codecs/checkpoint.js';
import { generateSigningKey, signMessage } from '../../src/crypto/ed25519.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { startHttpApi, DEFAULT_PRICING, type HttpApi } from '../../src/server/httpApi.js';
import { HttpInsurancePlatform } from '../../src/server/insurance/HttpInsurancePlatform.js';
import { InsuranceService, ledgerUseOrders, type InsuranceServiceOptions } from '../../src/server/insurance/InsuranceService.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import type { Clock } from '../../src/util/clock.js';
import type { Logger } from '../../src/util/logger.js';
import { makeInvestor, type Investor } from './signedLedger.js';
import type { PlatformProcess } from './insurancePlatform.js';

export interface ServerKey {
  readonly key: KeyObject;
  readonly certificate: SignedJson;
}

export function certifiedServerKey(investor: Investor, serverId = 'SRV-INS'): ServerKey {
  const serverKey = generateSigningKey();
  const body = encodeServerKeyCertificateBody({ serverId, publicKey: toHex(serverKey.publicKey), motherCardId: '0102030405060708', issuedAt: 1_790_000_000 });
  return { key: serverKey.privateKey, certificate: { body, signature: toHex(signMessage(investor.root.privateKey, utf8(body))) } };
}

export interface InsuranceRig {
  readonly investor: Investor;
  readonly signer: ServerKey;
  readonly store: ServerStore;
  service: InsuranceService;
  readonly url: string;
  /** A new service on the same store, as after a server restart */
  restartService(overrides?: Partial<InsuranceServiceOptions>): InsuranceService;
  close(): Promise<void>;
}

export async function startInsuranceRig(platform: PlatformProcess, options: { clock?: Clock; timeoutMs?: number; service?: Partial<InsuranceServiceOptions>; adminToken?: string; logger?: Logger; dashboardDir?: string } = {}): Promise<InsuranceRig> {
  const dir = mkdtempSync(join(tmpdir(), 'ins-server-'));
  const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  const investor = makeInvestor();
  const signer = certifiedServerKey(investor);
  const served: { http?: HttpApi } = {};
  const make = (overrides: Partial<InsuranceServiceOptions> = {}): InsuranceService =>
    new InsuranceService({
      store: store.insurance,
      platform: new HttpInsurancePlatform({ url: platform.url, timeoutMs: options.timeoutMs ?? 1500 }),
      signer,
      baseUrl: served.http?.url ?? 'http://127.0.0.1:0',
      ...(options.clock ? { clock: options.clock } : {}),
      intervalS: 1,
      ...options.service,
      ...overrides,
    });
  const rig = {
    investor,
    signer,
    store,
    service: make(),
    url: '',
    restartService: (overrides?: Partial<InsuranceServiceOptions>) => {
      rig.service = make(overrides);
      return rig.service;
    },
    close: async () => {
      await served.http?.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // the routes follow rig.service, so a restarted service is the one answering
  const proxy = new Proxy({} as InsuranceService, { get: (_t, p) => (rig.service as unknown as Record<string | symbol, unknown>)[p] instanceof Function ? ((rig.service as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[p] as (...a: unknown[]) => unknown).bind(rig.service) : (rig.service as unknown as Record<string | symbol, unknown>)[p] });
  const http = await startHttpApi({
    store,
    pricing: DEFAULT_PRICING,
    insurance: { service: proxy, ledgerUses: (day) => ledgerUseOrders(store.insurance, day) },
    ...(options.adminToken ? { adminToken: options.adminToken } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.dashboardDir ? { dashboardDir: options.dashboardDir } : {}),
  });
  served.http = http;
  rig.url = http.url;
  rig.service = make();
  return rig;
}
