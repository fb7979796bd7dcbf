/**
 * The server's reports as a small HTTP JSON API on loopback. Answers are
 * {status: 'ok', data} or {status: 'error', error}, like the MQTT side.
 *   GET /api/health, /api/terminals, /api/uses?group=terminal|clinic|day,
 *       /api/batches, /api/income, /api/alerts, /api/rejections
 *   GET /api/registry/clinics, /api/registry/terminals, /api/registry/cards?kind=mother|white|batch,
 *       /api/registry/batches, /api/registry/stations, /api/registry/issuance?station=ID
 *   POST /api/registry/import   body: an issuing station's export file (tally issue export);
 *       verified against the investor root, imported idempotently; a refused one answers 422 with the reason
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_REGISTRY_EXPORT_BYTES } from '../codecs/registryExport.js';
import type { ClinicRow, RegistryCardKind } from './registry/RegistryStore.js';
import { importRegistryExport, RegistryImportRefused } from './registry/verifyExport.js';
import type { DailyUses, ServerStore } from './ServerStore.js';

export interface IncomeShare {
  /** Price of one use, in the smallest currency unit (cents, fen) */
  readonly pricePerUse: number;
  /** The investor's share of each use, 0..1; the clinic keeps the rest */
  readonly investorShare: number;
}

export interface PricingConfig {
  readonly default: IncomeShare;
  readonly perClinic?: Readonly<Record<string, IncomeShare>>;
}

export interface IncomeRow {
  readonly clinicCode: string;
  readonly uses: number;
  readonly gross: number;
  readonly investor: number;
  readonly clinic: number;
}

export function incomeSplit(daily: readonly DailyUses[], pricing: PricingConfig): IncomeRow[] {
  const uses = new Map<string, number>();
  for (const d of daily) uses.set(d.clinicCode, (uses.get(d.clinicCode) ?? 0) + d.uses);
  return [...uses.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([clinicCode, count]) => {
      const share = pricing.perClinic?.[clinicCode] ?? pricing.default;
      const gross = count * share.pricePerUse;
      // rounding favours nobody silently: the investor's part is rounded, the clinic gets the exact rest
      const investor = Math.round(gross * share.investorShare);
      return { clinicCode, uses: count, gross, investor, clinic: gross - investor };
    });
}

/** The registry's clinics override the configured pricing where they set a price or a share */
export function pricingWithClinics(pricing: PricingConfig, clinics: readonly ClinicRow[]): PricingConfig {
  const perClinic: Record<string, IncomeShare> = { ...pricing.perClinic };
  for (const c of clinics) {
    if (c.pricePerUse === undefined && c.investorShare === undefined) continue;
    const base = perClinic[c.clinicCode] ?? pricing.default;
    perClinic[c.clinicCode] = { pricePerUse: c.pricePerUse ?? base.pricePerUse, investorShare: c.investorShare ?? base.investorShare };
  }
  return { default: pricing.default, perClinic };
}

const CARD_KINDS: readonly string[] = ['mother', 'white', 'batch'];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'oversized', `body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function groupUses(daily: readonly DailyUses[], group: 'terminal' | 'clinic' | 'day'): Array<{ key: string; uses: number }> {
  const totals = new Map<string, number>();
  for (const d of daily) {
    const key = group === 'terminal' ? d.terminalId : group === 'clinic' ? d.clinicCode : d.day;
    totals.set(key, (totals.get(key) ?? 0) + d.uses);
  }
  return [...totals.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, uses]) => ({ key, uses }));
}

export interface HttpApi {
  readonly url: string;
  close(): Promise<void>;
}

export async function startHttpApi(options: {
  store: ServerStore;
  pricing: PricingConfig;
  port?: number;
  statuses?: () => ReadonlyMap<string, { state: string; at: number }>;
  stats?: () => Record<string, number>;
  /** The investor root public key: POST /api/registry/import verifies exports with it (without it, imports are refused) */
  rootPublicKey?: Uint8Array;
  clock?: () => number;
}): Promise<HttpApi> {
  const { store, pricing } = options;
  const now = options.clock ?? Date.now;
  const routes: Record<string, (query: URLSearchParams) => Promise<unknown>> = {
    '/api/health': async () => ({ store: store.kind, ...(options.stats?.() ?? {}) }),
    '/api/terminals': async () => {
      const statuses = options.statuses?.() ?? new Map();
      return (await store.terminals()).map((t) => ({
        terminalId: t.terminalId,
        clinicCode: t.clinicCode,
        contiguousSeq: t.contiguousSeq,
        highestSeq: t.highestSeq,
        status: statuses.get(t.terminalId)?.state ?? 'unknown',
      }));
    },
    '/api/uses': async (query) => {
      const group = query.get('group') ?? 'day';
      const daily = await store.usesPerDay();
      if (group === 'terminal' || group === 'clinic' || group === 'day') return groupUses(daily, group);
      if (group === 'none') return daily;
      throw new Error(`unknown group ${group}: use terminal, clinic, day or none`);
    },
    '/api/batches': () => store.batchReconciliation(),
    '/api/income': async () => incomeSplit(await store.usesPerDay(), pricingWithClinics(pricing, await store.registry.clinics())),
    '/api/alerts': () => store.alerts(),
    '/api/rejections': () => store.rejections(),
    '/api/registry/clinics': () => store.registry.clinics(),
    '/api/registry/terminals': () => store.registry.terminalRegistry(),
    '/api/registry/cards': async (query) => {
      const kind = query.get('kind');
      if (kind !== null && !CARD_KINDS.includes(kind)) throw new Error(`unknown kind ${kind}: use mother, white or batch`);
      return store.registry.cards((kind ?? undefined) as RegistryCardKind | undefined);
    },
    '/api/registry/batches': () => store.registry.batches(),
    '/api/registry/stations': () => store.registry.stations(),
    '/api/registry/issuance': (query) => store.registry.issuance(query.get('station') ?? undefined),
  };
  const postRoutes: Record<string, (req: IncomingMessage) => Promise<unknown>> = {
    '/api/registry/import': async (req) => {
      if (!options.rootPublicKey) throw new HttpError(503, 'no-root', 'this server was started without the investor root key');
      const body = await readBody(req, MAX_REGISTRY_EXPORT_BYTES);
      try {
        return await importRegistryExport(store.registry, body, options.rootPublicKey, now());
      } catch (err) {
        if (err instanceof RegistryImportRefused) throw new HttpError(422, err.reason, err.message);
        throw err;
      }
    },
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname];
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const postRoute = postRoutes[url.pathname];
    const answer = (work: Promise<unknown>): void => {
      work.then(
        (data) => reply(200, { status: 'ok', data }),
        (err: Error) => {
          if (err instanceof HttpError) reply(err.status, { status: 'error', error: { code: err.code, message: err.message } });
          else reply(400, { status: 'error', error: { code: 'bad-request', message: err.message } });
        },
      );
    };
    if (req.method === 'POST' && postRoute) answer(postRoute(req));
    else if (req.method === 'GET' && route) answer(route(url.searchParams));
    else reply(404, { status: 'error', error: { code: 'not-found', message: `${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
