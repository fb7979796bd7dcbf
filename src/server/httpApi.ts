/**
 * The server's reports as a small HTTP JSON API on loopback. Answers are
 * {status: 'ok', data} or {status: 'error', error}, like the MQTT side.
 *   GET /api/health, /api/terminals, /api/uses?group=terminal|clinic|day,
 *       /api/batches, /api/income, /api/alerts, /api/rejections
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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
}): Promise<HttpApi> {
  const { store, pricing } = options;
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
    '/api/income': async () => incomeSplit(await store.usesPerDay(), pricing),
    '/api/alerts': () => store.alerts(),
    '/api/rejections': () => store.rejections(),
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname];
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' || !route) {
      reply(404, { status: 'error', error: { code: 'not-found', message: `${req.method} ${url.pathname}` } });
      return;
    }
    route(url.searchParams).then(
      (data) => reply(200, { status: 'ok', data }),
      (err: Error) => reply(400, { status: 'error', error: { code: 'bad-request', message: err.message } }),
    );
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
