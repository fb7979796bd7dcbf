/**
 * The server's reports as a small HTTP JSON API on loopback, on fastify (schemas
 * in httpSchemas.ts, the OpenAPI document at GET /api/openapi.json; 400 only for
 * bad input, 500 with code internal and no stack for the server's own faults). Answers are
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
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import swagger from '@fastify/swagger';
import type { TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyError, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { MAX_REGISTRY_EXPORT_BYTES } from '../codecs/registryExport.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { Bodies, ErrorAnswer, ok, Queries, Rows, Writes } from './httpSchemas.js';
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

/** A registry write's body: a few short fields */
export const MAX_ADMIN_BODY_BYTES = 4096;
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** Why an admin token is not fit to use (undefined: it is): long enough to resist guessing, and one word */
export function adminTokenProblem(token: string): string | undefined {
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) return `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`;
  if (token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) return 'the admin token must be at most 512 printable ASCII characters without spaces';
  return undefined;
}


export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
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

/** fastify's own refusals of a request, as our codes (anything else it throws is a server fault) */
function frameworkRefusal(err: FastifyError): HttpError | undefined {
  if (err.validation) {
    const first = err.validation[0];
    const field = (first?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || (first?.params as { additionalProperty?: string } | undefined)?.additionalProperty || '';
    return new HttpError(400, 'invalid', `${err.validationContext ?? 'input'}${field ? `.${field}` : ''}: ${first?.message ?? 'invalid'}`, field);
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpError(413, 'oversized', err.message);
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return new HttpError(400, 'malformed', err.message);
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return new HttpError(err.statusCode, 'bad-request', err.message);
  return undefined;
}

const errorAnswers = { 400: ErrorAnswer, 401: ErrorAnswer, 403: ErrorAnswer, 404: ErrorAnswer, 413: ErrorAnswer, 422: ErrorAnswer, 500: ErrorAnswer, 503: ErrorAnswer };

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
  /** Server faults (500) are logged here with their ref; the client sees only the code and the ref */
  logger?: Logger;
  /**
   * More routes in modules of their own (EST enrolment, say): each is registered on this instance, so it gets
   * the same error answers, body parsing (text), limits and its place in the OpenAPI document (give it a schema)
   */
  plugins?: readonly FastifyPluginAsync[];
}): Promise<HttpApi> {
  const app = await buildHttpApi(options);
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/**
 * The fastify instance, not listening: `startHttpApi` listens on loopback, tests `inject()` into it.
 * Why fastify: schemas on every route drive validation, serialisation and the OpenAPI document from
 * one declaration; body limits, content-type parsing, hooks and inject() come with it; it is
 * well kept and fast (its JSON serialiser compiles the answer schemas).
 */
export async function buildHttpApi(options: Parameters<typeof startHttpApi>[0]) {
  const { store, pricing } = options;
  const now = options.clock ?? Date.now;
  const logger = (options.logger ?? silentLogger).child({ module: 'http' });
  const tokenProblem = options.adminToken === undefined ? undefined : adminTokenProblem(options.adminToken);
  if (tokenProblem) throw new Error(tokenProblem);
  const adminDigest = options.adminToken === undefined ? undefined : digest(options.adminToken);

  const app = Fastify({ logger: false, bodyLimit: MAX_ADMIN_BODY_BYTES, return503OnClosing: true, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'tallystick ingest server', version: '1', description: 'Reports, registry and its writes. Answers are {status: ok, data} or {status: error, error: {code, message, field?}}.' },
      components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'the token the server was started with (--admin-token-file, TALLY_ADMIN_TOKEN)' } } },
    },
  });
  app.addSchema(ErrorAnswer);
  // bodies are read as text: each write parses its own JSON so a bad one is `malformed`, and an import is verified as the bytes it signed
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req: FastifyRequest, text: string | Buffer, done: (err: Error | null, body?: unknown) => void) => done(null, text));

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const known = err instanceof HttpError ? err : frameworkRefusal(err);
    if (known) {
      // the rest of an oversized body is not read: the connection is not reused
      if (known.status === 413) void reply.header('connection', 'close');
      if (known.status === 401) void reply.header('www-authenticate', 'Bearer realm="tally registry"');
      return reply.code(known.status).send({ status: 'error', error: { code: known.code, message: known.message, ...(known.field !== undefined ? { field: known.field } : {}) } });
    }
    const ref = randomUUID();
    logger.error({ event: 'http.fault', ref, method: request.method, url: request.url, err: err.message, stack: err.stack }, 'HTTP request failed on the server');
    return reply.code(500).send({ status: 'error', error: { code: 'internal', message: `the server failed to answer (ref ${ref}); the fault is in its log` } });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ status: 'error', error: { code: 'not-found', message: `${request.method} ${request.url.split('?')[0]}` } }));

  const get = <Q extends TSchema | undefined>(url: string, summary: string, data: TSchema, handler: (query: Record<string, string | undefined>) => Promise<unknown>, querystring?: Q): void => {
    app.get(url, { schema: { summary, ...(querystring ? { querystring } : {}), response: { 200: ok(data), ...errorAnswers } } }, async (request) => ({ status: 'ok', data: await handler(request.query as Record<string, string | undefined>) }));
  };
  const list = (s: TSchema) => ({ type: 'array', items: s }) as unknown as TSchema;

  get('/api/health', 'the store and the ingest counters', Rows.health, async () => ({ store: store.kind, ...(options.stats?.() ?? {}) }));
  get('/api/terminals', 'terminals seen by the ingest, with their MQTT status', list(Rows.terminal), async () => {
    const statuses = options.statuses?.() ?? new Map();
    return (await store.terminals()).map((t) => ({ terminalId: t.terminalId, clinicCode: t.clinicCode, contiguousSeq: t.contiguousSeq, highestSeq: t.highestSeq, status: statuses.get(t.terminalId)?.state ?? 'unknown' }));
  });
  get(
    '/api/uses',
    'uses grouped per terminal, clinic or day; group=none gives the daily rows',
    { anyOf: [list(Rows.usesGrouped), list(Rows.dailyUses)] } as unknown as TSchema,
    async (query) => {
      const group = query.group ?? 'day';
      const daily = await store.usesPerDay();
      return group === 'none' ? daily : groupUses(daily, group as 'terminal' | 'clinic' | 'day');
    },
    Queries.uses,
  );
  get('/api/batches', 'batch reconciliation', list(Rows.batch), () => store.batchReconciliation());
  get('/api/income', 'the income split per clinic at the registered or configured prices', list(Rows.income), async () => incomeSplit(await store.usesPerDay(), pricingWithClinics(pricing, await store.registry.clinics())));
  get('/api/alerts', 'alerts raised by the ingest', list(Rows.alert), () => store.alerts());
  get('/api/rejections', 'what the ingest refused', list(Rows.rejection), () => store.rejections());
  get('/api/registry/clinics', 'registered clinics', list(Rows.clinic), () => store.registry.clinics());
  get('/api/registry/terminals', 'registered and seen terminals', list(Rows.registryTerminal), () => store.registry.terminalRegistry());
  get('/api/registry/cards', 'cards the stations made', list(Rows.card), (query) => store.registry.cards(query.kind as RegistryCardKind | undefined), Queries.cards);
  get('/api/registry/batches', 'batches as issued', list(Rows.registryBatch), () => store.registry.batches());
  get('/api/registry/stations', 'issuing stations', list(Rows.station), () => store.registry.stations());
  get('/api/registry/issuance', 'issuance records, of one station or all', list(Rows.issuance), (query) => store.registry.issuance(query.station), Queries.issuance);
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  /** With an admin token configured, a request without it is refused (401) before its body is read */
  const authorize = async (request: FastifyRequest): Promise<void> => {
    if (adminDigest && !bearerMatches(request.headers.authorization, adminDigest)) throw new HttpError(401, 'unauthorized', 'registry writes need Authorization: Bearer <admin token>; it is missing or wrong');
  };
  const writesOn = async (): Promise<void> => {
    if (!adminDigest) throw new HttpError(403, 'writes-disabled', 'registry writes are off: this server was started without an admin token (--admin-token-file or TALLY_ADMIN_TOKEN)');
  };
  const text = (body: unknown): string => (typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '');

  app.post(
    '/api/registry/import',
    { bodyLimit: MAX_REGISTRY_EXPORT_BYTES, onRequest: authorize, schema: { summary: 'import an issuing station\'s signed export (idempotent; 422 with the reason when refused)', body: Bodies.registryExport, response: { 200: ok(Rows.importSummary), ...errorAnswers } }, attachValidation: true },
    async (request) => {
      if (!options.rootPublicKey) throw new HttpError(503, 'no-root', 'this server was started without the investor root key');
      try {
        return { status: 'ok', data: await importRegistryExport(store.registry, text(request.body), options.rootPublicKey, now()) };
      } catch (err) {
        if (err instanceof RegistryImportRefused) throw new HttpError(422, err.reason, err.message);
        throw err;
      }
    },
  );

  /** A registry write: writes on, token first (before the body is read), then the body checked by registryAdmin's validator, then the write */
  const write = (url: string, summary: string, bodySchema: TSchema, answer: TSchema, handler: (body: unknown) => Promise<{ status: number; data: unknown }>): void => {
    app.post(
      url,
      { onRequest: [writesOn, authorize], schema: { summary, security: [{ adminToken: [] }], body: bodySchema, response: { 200: ok(answer), 201: ok(answer), ...errorAnswers } }, attachValidation: true },
      async (request, reply: FastifyReply) => {
        let body: unknown;
        try {
          body = JSON.parse(text(request.body));
        } catch {
          throw new HttpError(400, 'malformed', 'the body is not JSON');
        }
        try {
          const { status, data } = await handler(body);
          return reply.code(status).send({ status: 'ok', data });
        } catch (err) {
          if (err instanceof RegistryInputError) throw new HttpError(400, 'invalid', err.message, err.field);
          throw err;
        }
      },
    );
  };
  write('/api/registry/clinics', 'add or update a clinic (201 new, 200 updated)', Bodies.clinic, Writes.clinic, async (body) => {
    const { created, row } = await saveClinic(store.registry, checkInput(ClinicInputSchema, body), now());
    return { status: created ? 201 : 200, data: { created, clinic: row } };
  });
  write('/api/registry/terminals', 'register a terminal in a clinic (201 new, 200 updated)', Bodies.terminal, Writes.terminal, async (body) => {
    const { created, row } = await saveTerminal(store.registry, checkInput(TerminalInputSchema, body), now());
    return { status: created ? 201 : 200, data: { created, terminal: row } };
  });
  write('/api/registry/terminals/retire', 'retire a registered terminal', Bodies.retire, Writes.retired, async (body) => {
    const input = checkInput(RetireInputSchema, body);
    const row = await retireTerminal(store.registry, input, now());
    if (!row) throw new HttpError(404, 'not-registered', `terminal ${input.terminalId} is not registered`, 'terminalId');
    return { status: 200, data: { terminal: row } };
  });

  for (const plugin of options.plugins ?? []) await app.register(plugin);
  await app.ready();
  return app;
}
