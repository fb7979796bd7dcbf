/**
 * The server's reports as a small HTTP JSON API on loopback. Answers are
 * {status: 'ok', data} or {status: 'error', error: {code, message, field?}}, like the MQTT side.
 *   GET /api/health, /api/terminals, /api/uses?group=terminal|clinic|day,
 *       /api/batches, /api/income, /api/alerts, /api/rejections
 *   GET /api/registry/clinics, /api/registry/terminals, /api/registry/cards?kind=mother|white|batch,
 *       /api/registry/batches, /api/registry/stations, /api/registry/issuance?station=ID
 *   POST /api/registry/import   body: an issuing station's export file (tally issue export);
 *       verified against the investor root, imported idempotently; a refused one answers 422 with the reason.
 *       The signatures are what decide an import; a server started with an admin token also wants the
 *       token here (401 without it, as below), one without a token takes imports from anyone on loopback
 *
 * The administrator's registry writes (the same validation and store methods as
 * tally server registry add-clinic|add-terminal|retire-terminal, registry/registryAdmin.ts).
 * Each needs `Authorization: Bearer <admin token>`, the token the server was
 * started with (adminToken; tally server run --admin-token-file or
 * TALLY_ADMIN_TOKEN). Without one configured every write answers 403
 * (writes-disabled); a missing or wrong token 401 (unauthorized). The body is a
 * JSON object of at most 4 KiB (413 oversized) with exactly these fields; a bad
 * one answers 400 (malformed: not JSON; invalid: error.field names the field).
 * An update replaces the row: a price, share or note left out is cleared.
 *   POST /api/registry/clinics            {clinicCode, name, pricePerUse?, investorShare?}
 *       clinicCode: 1..16 UTF-8 bytes, no white space; name: 1..100 chars;
 *       pricePerUse: integer >= 0 (smallest currency unit); investorShare: number in 0..1.
 *       201 {created: true, clinic} when new, 200 {created: false, clinic} when updated
 *   POST /api/registry/terminals          {terminalId, clinicCode, status?, note?}
 *       terminalId: as in its certificate ([A-Za-z0-9][A-Za-z0-9._-]{0,31}); status: expected (default)
 *       or retired; note: 1..500 chars. 201 or 200 {created, terminal}
 *   POST /api/registry/terminals/retire   {terminalId, note?}
 *       marks a registered terminal retired in its clinic (the note, if given, replaces the old one):
 *       200 {terminal}; 404 (not-registered) for a terminal the registry does not list
 *   Retiring a terminal (either endpoint) stamps terminal.retiredAt with the server's time, which retiring it
 *   again keeps; status expected clears it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_REGISTRY_EXPORT_BYTES } from '../codecs/registryExport.js';
import { checkInput, ClinicInputSchema, RegistryInputError, RetireInputSchema, retireTerminal, saveClinic, saveTerminal, TerminalInputSchema } from './registry/registryAdmin.js';
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

/** Without a configured price: 100.00 a use, 70% to the investor */
export const DEFAULT_PRICING: PricingConfig = { default: { pricePerUse: 10_000, investorShare: 0.7 } };

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

/** A registry write's body: a few short fields */
export const MAX_ADMIN_BODY_BYTES = 4096;
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** Why an admin token is not fit to use (undefined: it is): long enough to resist guessing, and one word */
export function adminTokenProblem(token: string): string | undefined {
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) return `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`;
  if (token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) return 'the admin token must be at most 512 printable ASCII characters without spaces';
  return undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The body as text; over `limit` bytes (by its Content-Length or as it arrives) a 413, the rest of it left unread */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const oversized = (): HttpError => new HttpError(413, 'oversized', `body over ${limit} bytes`);
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      reject(oversized());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        reject(oversized());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** `Authorization: Bearer <token>` with the expected token, compared in constant time */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const given = /^Bearer +(\S+)$/i.exec(header ?? '')?.[1];
  return given !== undefined && timingSafeEqual(digest(given), expected);
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
  /** The bearer token the registry writes and imports need (see adminTokenProblem); undefined: every write is refused (403), imports need none */
  adminToken?: string;
  clock?: () => number;
}): Promise<HttpApi> {
  const { store, pricing } = options;
  const now = options.clock ?? Date.now;
  const tokenProblem = options.adminToken === undefined ? undefined : adminTokenProblem(options.adminToken);
  if (tokenProblem) throw new Error(tokenProblem);
  const adminDigest = options.adminToken === undefined ? undefined : digest(options.adminToken);
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
      authorize(req);
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
  /** The registry writes: each gets the checked body and answers its status and data */
  const adminRoutes: Record<string, (body: unknown) => Promise<{ status: number; data: unknown }>> = {
    '/api/registry/clinics': async (body) => {
      const { created, row } = await saveClinic(store.registry, checkInput(ClinicInputSchema, body), now());
      return { status: created ? 201 : 200, data: { created, clinic: row } };
    },
    '/api/registry/terminals': async (body) => {
      const { created, row } = await saveTerminal(store.registry, checkInput(TerminalInputSchema, body), now());
      return { status: created ? 201 : 200, data: { created, terminal: row } };
    },
    '/api/registry/terminals/retire': async (body) => {
      const input = checkInput(RetireInputSchema, body);
      const row = await retireTerminal(store.registry, input, now());
      if (!row) throw new HttpError(404, 'not-registered', `terminal ${input.terminalId} is not registered`, 'terminalId');
      return { status: 200, data: { terminal: row } };
    },
  };
  /** With an admin token configured, a request without it is refused (401) before its body is read */
  const authorize = (req: IncomingMessage): void => {
    if (adminDigest && !bearerMatches(req.headers.authorization, adminDigest)) throw new HttpError(401, 'unauthorized', 'registry writes need Authorization: Bearer <admin token>; it is missing or wrong');
  };
  /** Token first (before the body is read), then the body, then the write */
  const adminWrite = async (req: IncomingMessage, write: (body: unknown) => Promise<{ status: number; data: unknown }>): Promise<{ status: number; data: unknown }> => {
    if (!adminDigest) throw new HttpError(403, 'writes-disabled', 'registry writes are off: this server was started without an admin token (--admin-token-file or TALLY_ADMIN_TOKEN)');
    authorize(req);
    const text = await readBody(req, MAX_ADMIN_BODY_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'malformed', 'the body is not JSON');
    }
    try {
      return await write(body);
    } catch (err) {
      if (err instanceof RegistryInputError) throw new HttpError(400, 'invalid', err.message, err.field);
      if (err instanceof HttpError) throw err;
      throw new HttpError(500, 'internal', `the registry write failed: ${(err as Error).message}`);
    }
  };

  const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, err: Error): void => {
    if (!(err instanceof HttpError)) {
      reply(res, 400, { status: 'error', error: { code: 'bad-request', message: err.message } });
      return;
    }
    const headers: Record<string, string> = {
      ...(err.status === 401 ? { 'www-authenticate': 'Bearer realm="tally registry"' } : {}),
      // the rest of an oversized body is not read: the connection is not reused
      ...(err.status === 413 ? { connection: 'close' } : {}),
    };
    reply(res, err.status, { status: 'error', error: { code: err.code, message: err.message, ...(err.field !== undefined ? { field: err.field } : {}) } }, headers);
  };
  const answer = (res: ServerResponse, work: Promise<{ status: number; data: unknown }>): void => {
    work.then(
      ({ status, data }) => reply(res, status, { status: 'ok', data }),
      (err: Error) => fail(res, err),
    );
  };
  const ok = (work: Promise<unknown>): Promise<{ status: number; data: unknown }> => work.then((data) => ({ status: 200, data }));

  const server: Server = createServer((req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const route = routes[url.pathname];
      const postRoute = postRoutes[url.pathname];
      const adminRoute = adminRoutes[url.pathname];
      if (req.method === 'POST' && adminRoute) answer(res, adminWrite(req, adminRoute));
      else if (req.method === 'POST' && postRoute) answer(res, ok(postRoute(req)));
      else if (req.method === 'GET' && route) answer(res, ok(route(url.searchParams)));
      else reply(res, 404, { status: 'error', error: { code: 'not-found', message: `${req.method} ${url.pathname}` } });
    } catch (err) {
      // a request line URL cannot parse, or the like: refused, the server goes on
      fail(res, err as Error);
    }
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
