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
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import swagger from '@fastify/swagger';
import { Type, type TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyError, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { MAX_REGISTRY_EXPORT_BYTES } from '../codecs/registryExport.js';
import type { DenylistPayload } from '../codecs/mqtt/messages.js';
import { MAX_DENYLIST_ENTRIES } from '../codecs/mqtt/limits.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { Bodies, ErrorAnswer, MAX_DAILY_PAGE, ok, Queries, Rows, Writes } from './httpSchemas.js';
import { checkInput, ClinicInputSchema, RegistryInputError, RetireInputSchema, retireTerminal, saveClinic, saveTerminal, TerminalInputSchema } from './registry/registryAdmin.js';
import type { ClinicRow, RegistryCardKind } from './registry/RegistryStore.js';
import { importRegistryExport, RegistryImportRefused } from './registry/verifyExport.js';
import type { DailyUses, ServerStore, UsesPeriod, UsesSum } from './ServerStore.js';
import { smsStatus } from './sms/SmsInbox.js';
import { parseDailyCursor } from './store/SqlServerStore.js';
import { createConsoleAuth } from './access/consoleAuth.js';
import { TallyError } from '../errors.js';
import { AckInputSchema, addUser, RevokeInputSchema, AgentInputSchema, changeUser, saveAgent, UserAddSchema, UserChangeSchema } from './access/accessAdmin.js';
import { PERMISSIONS, seesClinic, type Permission, type Principal } from './access/roles.js';
import { HttpError } from './httpError.js';
import { dashboardRoutes, defaultDashboardDir } from './dashboard/dashboardRoutes.js';
import type { AgentRow, ClinicAgentRow } from './access/AccessStore.js';
import { registerVoucherRoutes } from './voucher/voucherHttp.js';
import type { InsuranceService, LedgerUses } from './insurance/InsuranceService.js';
import { insuranceRoutes, registerInsuranceConsoleRoutes } from './insurance/insuranceRoutes.js';
import { VoucherOffice, type VoucherKey } from './voucher/VoucherOffice.js';
import { clinicStatement, printPdf, statementHtml, type StatementSigner } from './dashboard/statement.js';

export { HttpError } from './httpError.js';

export interface IncomeShare {
  /** Price of one use, in the smallest currency unit (cents, fen) */
  readonly pricePerUse: number;
  /** The investor's share of each use, 0..1; the clinic keeps the rest */
  readonly investorShare: number;
  /** The agent that placed the clinic's devices, and its share of the gross, paid out of the investor's part */
  readonly agentCode?: string;
  readonly agentShare?: number;
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
  /** The investor's part, less the agent's */
  readonly investor: number;
  readonly clinic: number;
  /** Only for a clinic an agent placed devices in */
  readonly agentCode?: string;
  readonly agent?: number;
  /** Of `uses`, how many were recorded with an untrusted terminal clock (dated by their arrival at the server); absent: none */
  readonly untrustedUses?: number;
  /** Of `uses`, how many were paid with a service voucher (seed 004: paid per voucher written off, as per card); absent: none */
  readonly voucherUses?: number;
}

/**
 * Uses per clinic as daily rows or already summed per clinic (the store's usesPerClinic); clinicCode and uses count,
 * and how many had an untrusted clock. `vouchers`: the vouchers charged per clinic (the store's voucherUsesPerClinic),
 * priced as a use each, in `uses` and counted apart in voucherUses.
 */
export function incomeSplit(
  daily: ReadonlyArray<Pick<DailyUses, 'clinicCode' | 'uses' | 'clockUntrusted'> & { readonly untrustedUses?: number }>,
  pricing: PricingConfig,
  vouchers: ReadonlyArray<{ readonly clinicCode: string; readonly uses: number }> = [],
): IncomeRow[] {
  const uses = new Map<string, number>();
  const untrusted = new Map<string, number>();
  const voucherUses = new Map<string, number>();
  for (const d of daily) {
    uses.set(d.clinicCode, (uses.get(d.clinicCode) ?? 0) + d.uses);
    const held = d.untrustedUses ?? (d.clockUntrusted ? d.uses : 0);
    untrusted.set(d.clinicCode, (untrusted.get(d.clinicCode) ?? 0) + held);
  }
  for (const v of vouchers) {
    if (v.uses <= 0) continue;
    uses.set(v.clinicCode, (uses.get(v.clinicCode) ?? 0) + v.uses);
    voucherUses.set(v.clinicCode, (voucherUses.get(v.clinicCode) ?? 0) + v.uses);
  }
  return [...uses.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([clinicCode, count]) => {
      const held = untrusted.get(clinicCode) ?? 0;
      const paidByVoucher = voucherUses.get(clinicCode) ?? 0;
      return { ...splitOf(clinicCode, count, pricing), ...(held > 0 ? { untrustedUses: held } : {}), ...(paidByVoucher > 0 ? { voucherUses: paidByVoucher } : {}) };
    });
}

/** The income report from the store: card uses and vouchers charged, per clinic, at the current pricing */
export async function storeIncome(store: ServerStore, pricing: PricingConfig): Promise<IncomeRow[]> {
  return incomeSplit(await store.usesPerClinic(), await currentPricing(store, pricing), await store.voucherUsesPerClinic());
}

function splitOf(clinicCode: string, count: number, pricing: PricingConfig): Omit<IncomeRow, 'untrustedUses'> {
  const share = pricing.perClinic?.[clinicCode] ?? pricing.default;
  const gross = count * share.pricePerUse;
  // rounding favours nobody silently: the investor's part is rounded, the clinic gets the exact rest
  const investor = Math.round(gross * share.investorShare);
  if (share.agentCode === undefined) return { clinicCode, uses: count, gross, investor, clinic: gross - investor };
  // the agent's commission comes out of the investor's part, never more than all of it; the clinic's part stays
  const agent = Math.min(investor, Math.round(gross * (share.agentShare ?? 0)));
  return { clinicCode, uses: count, gross, investor: investor - agent, clinic: gross - investor, agentCode: share.agentCode, agent };
}

/** The registry's clinics override the configured pricing where they set a price or a share; a clinic's agent adds its share */
export function pricingWithClinics(pricing: PricingConfig, clinics: readonly ClinicRow[], agents: { readonly agents: readonly AgentRow[]; readonly clinicAgents: readonly ClinicAgentRow[] } = { agents: [], clinicAgents: [] }): PricingConfig {
  const perClinic: Record<string, IncomeShare> = { ...pricing.perClinic };
  for (const c of clinics) {
    if (c.pricePerUse === undefined && c.investorShare === undefined) continue;
    const base = perClinic[c.clinicCode] ?? pricing.default;
    perClinic[c.clinicCode] = { pricePerUse: c.pricePerUse ?? base.pricePerUse, investorShare: c.investorShare ?? base.investorShare };
  }
  const agentByCode = new Map(agents.agents.map((a) => [a.agentCode, a]));
  for (const link of agents.clinicAgents) {
    const agent = agentByCode.get(link.agentCode);
    if (!agent) continue;
    perClinic[link.clinicCode] = { ...(perClinic[link.clinicCode] ?? pricing.default), agentCode: agent.agentCode, agentShare: agent.share };
  }
  return { default: pricing.default, perClinic };
}

/** The pricing the income report uses now: configured, the registry's clinics, their agents */
export async function currentPricing(store: ServerStore, pricing: PricingConfig): Promise<PricingConfig> {
  return pricingWithClinics(pricing, await store.registry.clinics(), { agents: await store.access.agents(), clinicAgents: await store.access.clinicAgents() });
}

/** A terminal whose last heartbeat is older than this is shown stale since then */
export const STALE_AFTER_MS = 10 * 60_000;

/** Rows as CSV (RFC 4180: quoted where needed), the columns of the first row */
export function toCsv(rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[]): string {
  return `${columns.join(',')}\r\n${csvLines(rows, columns)}`;
}

/** CSV rows without the header line, each ended by CRLF */
export function csvLines(rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[]): string {
  const cell = (v: unknown): string => {
    const text = v === undefined || v === null ? '' : String(v);
    // a leading = + - @ would be a formula in a spreadsheet: quoted with a tick
    const safe = /^[=+\-@]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
    return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  let out = '';
  for (const r of rows) out += `${columns.map((c) => cell(r[c])).join(',')}\r\n`;
  return out;
}

/** Daily rows read a page at a time for the CSV */
const CSV_PAGE_ROWS = 5000;

/** from/to of a query, as the store takes them */
function dailyRange(query: Record<string, string | undefined>): { from?: string; to?: string } {
  return { ...(query.from !== undefined ? { from: query.from } : {}), ...(query.to !== undefined ? { to: query.to } : {}) };
}

/** The clinics a principal may see, as the store takes them (none: every clinic) */
function clinicsOf(principal: Principal): { clinics?: readonly string[] } {
  return principal.clinics ? { clinics: [...principal.clinics] } : {};
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


function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export interface UseSeries {
  readonly buckets: string[];
  readonly groups: Array<{ key: string; uses: number[] }>;
  readonly total: number;
}

/** The overview's chart from sums per key and bucket (the store's usesSummed): keys mapped to groups ('' for a clinic with no agent) */
export function useSeries(sums: readonly UsesSum[], groupOf: (key: string) => string = (key) => key): UseSeries {
  const bucketIndex = new Map<string, number>();
  for (const b of [...new Set(sums.map((d) => d.bucket))].sort()) bucketIndex.set(b, bucketIndex.size);
  const groups = new Map<string, number[]>();
  let total = 0;
  for (const d of sums) {
    const key = groupOf(d.key);
    let series = groups.get(key);
    if (!series) groups.set(key, (series = new Array<number>(bucketIndex.size).fill(0)));
    series[bucketIndex.get(d.bucket)!]! += d.uses;
    total += d.uses;
  }
  return { buckets: [...bucketIndex.keys()], groups: [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, uses]) => ({ key, uses })), total };
}

/** What follows the arrival day of uses recorded with an untrusted clock, in uses grouped by day */
export const UNTRUSTED_DAY_SUFFIX = '(clock untrusted: day received)';

/** Uses per terminal, clinic or day, summed in the database (/api/uses and tally server report uses); by day, uses with an untrusted clock stand apart under the day the server received them */
export async function groupedUses(store: ServerStore, group: 'terminal' | 'clinic' | 'day', clinics?: readonly string[]): Promise<Array<{ key: string; uses: number }>> {
  const sums = group === 'day' ? await store.usesSummed('all', 'day', clinics, true) : await store.usesSummed(group, 'all', clinics);
  return sums.map((r) => ({ key: group === 'day' ? (r.clockUntrusted ? `${r.bucket} ${UNTRUSTED_DAY_SUFFIX}` : r.bucket) : r.key, uses: r.uses })).sort((x, y) => x.key.localeCompare(y.key));
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

const errorAnswers = { 400: ErrorAnswer, 401: ErrorAnswer, 403: ErrorAnswer, 404: ErrorAnswer, 413: ErrorAnswer, 422: ErrorAnswer, 429: ErrorAnswer, 500: ErrorAnswer, 503: ErrorAnswer };

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
  /** The built dashboard (index.html, app.js, app.css); default: dist/dashboard when it is there */
  dashboardDir?: string;
  /**
   * Served to browsers through an HTTPS proxy on this machine (it terminates TLS and forwards to loopback): the
   * session cookie is Secure, and the client address and protocol are the proxy's X-Forwarded-For/-Proto
   */
  httpsProxy?: boolean;
  /** Insurance payments (docs/insurance.md): the phone's routes, and the reconciliation behind the console's login */
  insurance?: { readonly service: InsuranceService; readonly ledgerUses: (day: string) => Promise<LedgerUses> };
  /** The voucher back office's key (tally server voucher certify-key): it signs vouchers; without it issuing answers VOUCHER_KEY_MISSING */
  voucherKey?: VoucherKey;
  /** The server key (tally server certify-key): it signs each terminal's statement on the clinic statement; without it they go unsigned */
  signer?: StatementSigner;
  /** The chromium that prints statement PDFs (default /usr/bin/chromium) */
  chromiumPath?: string;
  /** Publishes a terminal's deny list (retained; IngestServer's MQTT client): a revocation sends the whole list to every terminal */
  publishDenylist?: (terminalId: string, list: DenylistPayload) => Promise<void>;
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
  if (tokenProblem) throw new TallyError('CONFIG', tokenProblem);
  const adminDigest = options.adminToken === undefined ? undefined : digest(options.adminToken);

  const app = Fastify({ logger: false, ...(options.httpsProxy ? { trustProxy: 'loopback' } : {}), bodyLimit: MAX_ADMIN_BODY_BYTES, return503OnClosing: true, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'tallystick ingest server', version: '1', description: 'Reports, registry and its writes. Answers are {status: ok, data} or {status: error, error: {code, message, field?}}.' },
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'the token the server was started with (--admin-token-file, TALLY_ADMIN_TOKEN)' },
          session: { type: 'apiKey', in: 'cookie', name: 'tally_session', description: 'a console login (POST /api/session); writes also send X-CSRF-Token' },
        },
      },
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
      const operator = known.operator;
      return reply
        .code(known.status)
        .send({ status: 'error', error: { code: known.answerCode, message: known.message, ...(known.field !== undefined ? { field: known.field } : {}), ...(operator ? { number: operator.number, zh: operator.zh } : {}) } });
    }
    const ref = randomUUID();
    logger.error({ event: 'http.fault', ref, method: request.method, url: request.url, err: err.message, stack: err.stack }, 'HTTP request failed on the server');
    return reply.code(500).send({ status: 'error', error: { code: 'internal', message: `the server failed to answer (ref ${ref}); the fault is in its log` } });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ status: 'error', error: { code: 'not-found', message: `${request.method} ${request.url.split('?')[0]}` } }));

  const auth = createConsoleAuth({ store, ...(adminDigest ? { adminDigest } : {}), now, logger, secureCookies: options.httpsProxy === true });
  auth.routes(app);

  /** A read: the role may (else 403), and a clinic or agent gets only its clinics' rows */
  const get = <Q extends TSchema | undefined>(
    url: string,
    permission: Permission,
    summary: string,
    data: TSchema,
    handler: (query: Record<string, string | undefined>, principal: Principal, reply: FastifyReply) => Promise<unknown>,
    querystring?: Q,
  ): void => {
    app.get(url, { onRequest: auth.guard(permission), schema: { summary: `${summary} (${PERMISSIONS[permission].join(', ')})`, ...(querystring ? { querystring } : {}), response: { 200: ok(data), ...errorAnswers } } }, async (request, reply) => ({
      status: 'ok',
      data: await handler(request.query as Record<string, string | undefined>, auth.principal(request), reply),
    }));
  };
  const list = (s: TSchema) => ({ type: 'array', items: s }) as unknown as TSchema;
  const mine = <T extends { clinicCode?: string }>(principal: Principal, rows: readonly T[]): T[] => rows.filter((r) => seesClinic(principal, r.clinicCode));
  /** Which clinic each terminal is in, by its certificate, else the registry */
  const clinicOfTerminal = async (): Promise<Map<string, string>> => {
    const map = new Map<string, string>();
    for (const t of await store.registry.terminalRegistry()) if (t.clinicCode) map.set(t.terminalId, t.clinicCode);
    for (const t of await store.terminals()) map.set(t.terminalId, t.clinicCode);
    return map;
  };
  /** One page of the daily rows; X-Next-After names the next when there is one */
  const dailyPage = async (query: Record<string, string | undefined>, principal: Principal, reply: FastifyReply): Promise<DailyUses[]> => {
    if (query.after !== undefined) {
      try {
        parseDailyCursor(query.after);
      } catch {
        throw new HttpError(400, 'invalid', 'querystring.after: not a page of these rows (give the X-Next-After of the page before)', 'after');
      }
    }
    const page = await store.usesPerDayPage({ ...dailyRange(query), ...(query.after !== undefined ? { after: query.after } : {}), ...clinicsOf(principal), limit: query.limit ? Number(query.limit) : MAX_DAILY_PAGE });
    if (page.next) void reply.header('x-next-after', page.next);
    return page.rows;
  };
  const incomeOf = async (principal: Principal): Promise<IncomeRow[]> => mine(principal, await storeIncome(store, pricing));

  get('/api/health', 'health', 'the store and the ingest counters', Rows.health, async () => ({ store: store.kind, ...(options.stats?.() ?? {}) }));
  get('/api/terminals', 'terminals.read', 'terminals seen by the ingest, with their MQTT status', list(Rows.terminal), async (_q, principal) => {
    const statuses = options.statuses?.() ?? new Map();
    const heartbeats = new Map((await store.heartbeats()).map((h) => [h.terminalId, h]));
    const alerts = await store.alerts();
    const bySms = new Map((await smsStatus(store, (id) => store.lastDataAt(id))).map((r) => [r.terminalId, r]));
    const at = now();
    return mine(principal, await store.terminals()).map((t) => {
      const h = heartbeats.get(t.terminalId);
      const sms = bySms.get(t.terminalId);
      return {
        terminalId: t.terminalId,
        clinicCode: t.clinicCode,
        contiguousSeq: t.contiguousSeq,
        highestSeq: t.highestSeq,
        status: statuses.get(t.terminalId)?.state ?? 'unknown',
        ...(h ? { lastHeartbeatAt: h.at, queueDepth: h.queueDepth, ...(at - h.at > STALE_AFTER_MS ? { staleSince: h.at } : {}) } : {}),
        ...(h?.denylistVersion !== undefined ? { denylistVersion: h.denylistVersion } : {}),
        ...(h?.clockTrusted !== undefined ? { clockTrusted: h.clockTrusted } : {}),
        ...(h?.certExpiresAt !== undefined ? { certExpiresAt: h.certExpiresAt } : {}),
        ...(h?.software !== undefined ? { software: h.software } : {}),
        alerts: alerts.filter((a) => a.terminalId === t.terminalId).length,
        ...(sms
          ? {
              reachability: sms.smsOnly ? 'sms-only' : 'data',
              sms: { lastAt: sms.lastSmsAt, headSeq: sms.headSeq, headHashPrefix: sms.headHashPrefix, outboxDepth: sms.outboxDepth, reports: sms.reports, contradicted: sms.contradicted, batches: sms.batches },
            }
          : {}),
      };
    });
  });
  get(
    '/api/uses',
    'uses.read',
    `uses grouped per terminal, clinic or day; group=none gives the daily rows, a page of at most limit (${MAX_DAILY_PAGE}) from after, days from..to; the X-Next-After header is the next page's after`,
    { anyOf: [list(Rows.usesGrouped), list(Rows.dailyUses)] } as unknown as TSchema,
    async (query, principal, reply) => {
      const group = query.group ?? 'day';
      if (group === 'none') return dailyPage(query, principal, reply);
      return groupedUses(store, group as 'terminal' | 'clinic' | 'day', principal.clinics ? [...principal.clinics] : undefined);
    },
    Queries.uses,
  );
  get(
    '/api/uses/series',
    'uses.read',
    "the overview's chart: uses per day, week or month for each clinic, terminal or agent, from the daily roll-up",
    Rows.useSeries,
    async (query, principal) => {
      const by = query.by ?? 'clinic';
      const agentOf = by === 'agent' ? new Map((await store.access.clinicAgents()).map((c) => [c.clinicCode, c.agentCode])) : undefined;
      const clinics = principal.clinics ? [...principal.clinics] : undefined;
      // a terminal a line and a day a point: the store joins the points a terminal a row (182,500 at the bench's scale)
      if (by === 'terminal' && (query.period ?? 'day') === 'day') return store.terminalDaySeries(clinics);
      const sums = await store.usesSummed(by === 'terminal' ? 'terminal' : 'clinic', (query.period ?? 'day') as UsesPeriod, clinics);
      return useSeries(sums, agentOf ? (clinic) => agentOf.get(clinic) ?? '' : undefined);
    },
    Queries.series,
  );
  get('/api/batches', 'batches.read', 'batch reconciliation', list(Rows.batch), async (_q, principal) => mine(principal, await store.batchReconciliation()));
  get('/api/income', 'income.read', "the income split per clinic at the registered or configured prices, with the agent's share", list(Rows.income), async (_q, principal) => incomeOf(principal));
  /** The clinic's statement, for a principal that may see the clinic (else 403) */
  const statementOf = async (query: Record<string, string | undefined>, principal: Principal) => {
    const clinic = query.clinic ?? '';
    if (!seesClinic(principal, clinic)) throw new HttpError(403, 'forbidden', `the ${principal.role} ${principal.username} may not see clinic ${clinic}`, 'clinic', 'FORBIDDEN');
    try {
      return await clinicStatement(store, pricing, clinic, now(), options.signer);
    } catch (err) {
      if (err instanceof TallyError && err.code === 'STATEMENT_CLINIC_UNKNOWN') throw new HttpError(404, 'statement-clinic-unknown', err.message, 'clinic', err.code);
      throw err;
    }
  };
  get('/api/statement', 'statements.read', "a clinic's statement: its income report row in fen and each terminal's signed statement of the ledger the server holds", Rows.statement, statementOf, Queries.statement);
  app.get(
    '/api/statement.pdf',
    { onRequest: auth.guard('statements.read'), schema: { summary: `the clinic's statement as a PDF, printed by chromium, in the user's language (${PERMISSIONS['statements.read'].join(', ')})`, querystring: Queries.statement, response: { 200: Type.String({ description: 'application/pdf' }), ...errorAnswers } } },
    async (request, reply) => {
      const principal = auth.principal(request);
      const statement = await statementOf(request.query as Record<string, string | undefined>, principal);
      let pdf: Buffer;
      try {
        pdf = await printPdf(statementHtml(statement, principal.locale), options.chromiumPath);
      } catch (err) {
        if (!(err instanceof TallyError && err.code === 'STATEMENT_PDF_UNAVAILABLE')) throw err;
        logger.warn({ event: 'statement.pdf-failed', code: err.code, clinic: statement.clinicCode }, err.message);
        throw new HttpError(503, 'statement-pdf-unavailable', err.message, undefined, err.code);
      }
      return reply.header('content-type', 'application/pdf').header('content-disposition', `attachment; filename="statement-${statement.clinicCode.replace(/[^A-Za-z0-9._-]/g, '_')}.pdf"`).send(pdf);
    },
  );
  get('/api/alerts', 'alerts.read', 'alerts raised by the ingest, with their acknowledgement', list(Rows.alert), async (_q, principal) => {
    const alerts = await store.alerts();
    const acks = new Map((await store.access.alertAcks()).map((a) => [a.alertKey, a]));
    const clinics = principal.clinics ? await clinicOfTerminal() : undefined;
    return alerts
      .filter((a) => !clinics || seesClinic(principal, clinics.get(a.terminalId)))
      .map((a) => {
        const ack = acks.get(a.key);
        return { ...a, ...(ack ? { acknowledged: { by: ack.username, at: ack.at, note: ack.note } } : {}) };
      });
  });
  get('/api/rejections', 'rejections.read', 'what the ingest refused', list(Rows.rejection), () => store.rejections());
  get('/api/registry/clinics', 'registry.clinics.read', 'registered clinics', list(Rows.clinic), async (_q, principal) => mine(principal, await store.registry.clinics()));
  get('/api/registry/terminals', 'registry.terminals.read', 'registered and seen terminals', list(Rows.registryTerminal), async (_q, principal) =>
    (await store.registry.terminalRegistry()).filter((t) => seesClinic(principal, t.clinicCode ?? t.reportedClinicCode)),
  );
  get('/api/registry/cards', 'registry.cards.read', 'cards the stations made', list(Rows.card), (query) => store.registry.cards(query.kind as RegistryCardKind | undefined), Queries.cards);
  get('/api/registry/batches', 'registry.batches.read', 'batches as issued', list(Rows.registryBatch), async (_q, principal) => mine(principal, await store.registry.batches()));
  get('/api/registry/stations', 'registry.stations.read', 'issuing stations', list(Rows.station), () => store.registry.stations());
  get('/api/registry/issuance', 'registry.issuance.read', 'issuance records, of one station or all', list(Rows.issuance), (query) => store.registry.issuance(query.station), Queries.issuance);
  get('/api/registry/agents', 'agents.read', 'the agents and the clinics each placed devices in', list(Rows.agent), async (_q, principal) => {
    const clinics = await store.access.clinicAgents();
    return (await store.access.agents())
      .filter((a) => principal.role !== 'agent' || a.agentCode === principal.agentCode)
      .map((a) => ({ ...a, clinics: clinics.filter((c) => c.agentCode === a.agentCode).map((c) => c.clinicCode) }));
  });
  /** Every terminal the server knows: those that reported and those the registry expects */
  const allTerminals = async (): Promise<Map<string, string | undefined>> => {
    const ids = new Map<string, string | undefined>();
    for (const t of await store.registry.terminalRegistry()) if (t.state !== 'retired') ids.set(t.terminalId, t.clinicCode ?? t.reportedClinicCode);
    for (const t of await store.terminals()) ids.set(t.terminalId, t.clinicCode);
    return ids;
  };
  get('/api/registry/denylist', 'denylist.read', 'the card deny list, and which terminals hold its version (from their heartbeats)', Rows.denylist, async () => {
    const cards = await store.denylist();
    const version = cards.at(-1)?.version ?? 0;
    const heartbeats = new Map((await store.heartbeats()).map((h) => [h.terminalId, h]));
    const terminals = [...(await allTerminals()).entries()].sort(([a], [b]) => a.localeCompare(b)).map(([terminalId, clinicCode]) => {
      const h = heartbeats.get(terminalId);
      return { terminalId, ...(clinicCode ? { clinicCode } : {}), ...(h?.denylistVersion !== undefined ? { denylistVersion: h.denylistVersion } : {}), ...(h ? { lastHeartbeatAt: h.at } : {}), received: (h?.denylistVersion ?? 0) >= version };
    });
    return { version, cards, terminals };
  });
  get('/api/users', 'users.read', 'the console users (no password hashes)', list(Rows.user), () => store.access.users());
  get('/api/audit', 'audit.read', 'the audit log, newest first', list(Rows.audit), (query) => store.access.audit(query.limit ? Number(query.limit) : 1000), Queries.audit);
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get(
    '/api/export/uses.csv',
    { onRequest: auth.guard('uses.read'), schema: { summary: `the daily use rows behind the overview's charts, as CSV (streamed), days from..to when given; clockUntrusted yes: recorded with an untrusted clock, dated the day received (${PERMISSIONS['uses.read'].join(', ')})`, querystring: Queries.csv, response: { 200: Type.String({ description: 'text/csv' }), ...errorAnswers } } },
    async (request, reply) => {
      const principal = auth.principal(request);
      const query = request.query as Record<string, string | undefined>;
      const agentOf = new Map((await store.access.clinicAgents()).map((c) => [c.clinicCode, c.agentCode]));
      const columns = ['day', 'clinicCode', 'terminalId', 'agentCode', 'uses', 'clockUntrusted'];
      // page by page from the store: never the whole export in memory
      async function* csv(): AsyncGenerator<string> {
        yield `${columns.join(',')}\r\n`;
        let after: string | undefined;
        do {
          const page = await store.usesPerDayPage({ ...dailyRange(query), ...clinicsOf(principal), ...(after !== undefined ? { after } : {}), limit: CSV_PAGE_ROWS });
          // a use recorded with an untrusted clock is on the day the server received it, and says so
          if (page.rows.length > 0) yield csvLines(page.rows.map((d) => ({ ...d, agentCode: agentOf.get(d.clinicCode) ?? '', clockUntrusted: d.clockUntrusted ? 'yes' : '' })), columns);
          after = page.next;
          // the SQLite driver answers synchronously: without a turn of the event loop no page reaches the socket before the last is read
          if (after !== undefined) await new Promise<void>((resolve) => setImmediate(resolve));
        } while (after !== undefined);
      }
      // one page buffered ahead of the socket, not sixteen
      const body = Readable.from(csv(), { highWaterMark: 1 });
      body.on('error', (err: Error) => logger.error({ event: 'http.fault', url: request.url, err: err.message }, 'the uses CSV failed while streamed'));
      return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="uses.csv"').send(body);
    },
  );

  const text = (body: unknown): string => (typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '');

  app.post(
    '/api/registry/import',
    { bodyLimit: MAX_REGISTRY_EXPORT_BYTES, onRequest: auth.guard('registry.import'), schema: { summary: 'import an issuing station\'s signed export (idempotent; 422 with the reason when refused)', body: Bodies.registryExport, response: { 200: ok(Rows.importSummary), ...errorAnswers } }, attachValidation: true },
    async (request) => {
      if (!options.rootPublicKey) throw new HttpError(503, 'no-root', 'this server was started without the investor root key');
      try {
        const summary = await importRegistryExport(store.registry, text(request.body), options.rootPublicKey, now());
        await auth.audit(request, 'registry.import', summary.stationId, summary);
        return { status: 'ok', data: summary };
      } catch (err) {
        if (err instanceof RegistryImportRefused) {
          await auth.audit(request, 'registry.import.refused', err.reason, { message: err.message });
          throw new HttpError(422, err.reason, err.message);
        }
        throw err;
      }
    },
  );

  /** A write: who and the role first (before the body is read; CSRF for a session), then the body checked by its validator, then the write, audit-logged */
  const write = (url: string, permission: Permission, summary: string, bodySchema: TSchema, answer: TSchema, handler: (body: unknown, request: FastifyRequest) => Promise<{ status: number; data: unknown; audit: { action: string; target: string; detail?: unknown } }>): void => {
    app.post(
      url,
      { onRequest: auth.guard(permission), schema: { summary: `${summary} (${PERMISSIONS[permission].join(', ')})`, security: [{ adminToken: [] }, { session: [] }], body: bodySchema, response: { 200: ok(answer), 201: ok(answer), ...errorAnswers } }, attachValidation: true },
      async (request, reply: FastifyReply) => {
        let body: unknown;
        try {
          body = JSON.parse(text(request.body));
        } catch {
          throw new HttpError(400, 'malformed', 'the body is not JSON');
        }
        try {
          const { status, data, audit } = await handler(body, request);
          // the detail is the body unless the write says what to keep (a password never goes to the log)
          await auth.audit(request, audit.action, audit.target, audit.detail ?? body);
          return reply.code(status).send({ status: 'ok', data });
        } catch (err) {
          if (err instanceof RegistryInputError) throw new HttpError(400, 'invalid', err.message, err.field);
          throw err;
        }
      },
    );
  };
  write('/api/registry/clinics', 'registry.write', 'add or update a clinic (201 new, 200 updated)', Bodies.clinic, Writes.clinic, async (body) => {
    const { created, row } = await saveClinic(store.registry, checkInput(ClinicInputSchema, body), now());
    return { status: created ? 201 : 200, data: { created, clinic: row }, audit: { action: 'registry.clinic.save', target: row.clinicCode } };
  });
  write('/api/registry/terminals', 'registry.write', 'register a terminal in a clinic (201 new, 200 updated)', Bodies.terminal, Writes.terminal, async (body) => {
    const { created, row } = await saveTerminal(store.registry, checkInput(TerminalInputSchema, body), now());
    return { status: created ? 201 : 200, data: { created, terminal: row }, audit: { action: 'registry.terminal.save', target: row.terminalId } };
  });
  write('/api/registry/terminals/retire', 'registry.write', 'retire a registered terminal', Bodies.retire, Writes.retired, async (body) => {
    const input = checkInput(RetireInputSchema, body);
    const row = await retireTerminal(store.registry, input, now());
    if (!row) throw new HttpError(404, 'not-registered', `terminal ${input.terminalId} is not registered`, 'terminalId');
    return { status: 200, data: { terminal: row }, audit: { action: 'registry.terminal.retire', target: row.terminalId } };
  });
  write('/api/registry/agents', 'agents.write', "add or update an agent with its share, and the clinics it placed devices in", Bodies.agent, Writes.agent, async (body) => {
    const { created, row } = await saveAgent(store, checkInput(AgentInputSchema, body), now());
    return { status: created ? 201 : 200, data: { created, agent: row }, audit: { action: 'agent.save', target: row.agentCode } };
  });
  write('/api/alerts/ack', 'alerts.ack', 'acknowledge an alert with a note (the first acknowledgement stands)', Bodies.ack, Writes.ack, async (body, request) => {
    const input = checkInput(AckInputSchema, body);
    if (!(await store.alerts()).some((a) => a.key === input.key)) throw new HttpError(404, 'not-found', `no alert ${input.key}`, 'key');
    const who = auth.principal(request);
    const created = await store.access.acknowledgeAlert({ alertKey: input.key, username: who.username, note: input.note, at: now() });
    return { status: created ? 201 : 200, data: { created, key: input.key }, audit: { action: 'alert.ack', target: input.key } };
  });

  write('/api/users/change', 'users.write', 'disable or enable a console user, or change its role; the sessions of the user end', Bodies.userChange, Writes.userChange, async (body) => {
    const input = checkInput(UserChangeSchema, body);
    if (input.disabled === undefined && input.role === undefined) throw new HttpError(400, 'invalid', 'give disabled or role', 'disabled');
    try {
      const changed = await changeUser(store, input, now(), 'logged-by-caller');
      return { status: 200, data: changed, audit: { action: input.role !== undefined ? 'user.role' : input.disabled ? 'user.disable' : 'user.enable', target: input.username } };
    } catch (err) {
      if (err instanceof TallyError && (err.code === 'UNKNOWN_USER' || err.code === 'LAST_SYSADMIN' || err.code === 'BAD_ROLE_SCOPE' || err.code === 'UNKNOWN_AGENT')) {
        throw new HttpError(err.code === 'UNKNOWN_USER' ? 404 : err.code === 'LAST_SYSADMIN' ? 409 : 400, err.code.toLowerCase().replace(/_/g, '-'), err.message, err.code === 'UNKNOWN_USER' ? 'username' : err.code === 'LAST_SYSADMIN' ? undefined : 'role', err.code);
      }
      throw err;
    }
  });

  write('/api/registry/cards/revoke', 'cards.revoke', 'revoke a card: it goes on the deny list at the next version, published in full to every terminal', Bodies.revoke, Writes.revoke, async (body, request) => {
    const input = checkInput(RevokeInputSchema, body);
    const listed = await store.denylist();
    if (!listed.some((d) => d.cardId === input.cardId) && listed.length >= MAX_DENYLIST_ENTRIES) throw new HttpError(409, 'denylist-full', `the deny list holds ${listed.length} cards, the most a terminal takes`, 'cardId', 'DENYLIST_FULL');
    const who = auth.principal(request);
    const { created, card } = await store.revokeCard({ cardId: input.cardId, reason: input.reason, revokedAt: now(), revokedBy: who.username });
    const cards = await store.denylist();
    const version = cards.at(-1)!.version;
    let publishedTo = 0;
    if (options.publishDenylist) {
      // the whole list, retained: a terminal that is offline now gets it when it connects
      for (const terminalId of (await allTerminals()).keys()) {
        await options.publishDenylist(terminalId, { transaction: version, version, kind: 'full', add: cards.map((c) => c.cardId) });
        publishedTo++;
      }
    }
    logger.info({ event: 'card.revoked', cardId: card.cardId, version, created, publishedTo }, `card ${card.cardId} on the deny list (version ${version})`);
    return { status: created ? 201 : 200, data: { created, card, version, publishedTo }, audit: { action: 'card.revoke', target: card.cardId } };
  });

  write('/api/users', 'users.write', 'add a console user (the checks of tally server user add; the password is not logged)', Bodies.userAdd, Writes.userAdd, async (body) => {
    const input = checkInput(UserAddSchema, body);
    try {
      const user = await addUser(store, input, now(), 'logged-by-caller');
      return { status: 201, data: { user }, audit: { action: 'user.add', target: user.username, detail: { role: user.role, ...(user.scope !== undefined ? { scope: user.scope } : {}) } } };
    } catch (err) {
      if (err instanceof TallyError && (err.code === 'USER_EXISTS' || err.code === 'WEAK_PASSWORD' || err.code === 'BAD_ROLE_SCOPE' || err.code === 'UNKNOWN_AGENT' || err.code === 'USAGE')) {
        const field = err.code === 'WEAK_PASSWORD' ? 'password' : err.code === 'BAD_ROLE_SCOPE' || err.code === 'UNKNOWN_AGENT' ? 'role' : 'username';
        throw new HttpError(err.code === 'USER_EXISTS' ? 409 : 400, err.code === 'USAGE' ? 'invalid' : err.code.toLowerCase().replace(/_/g, '-'), err.message, field, err.code === 'USAGE' ? undefined : err.code);
      }
      throw err;
    }
  });

  const nowSeconds = (): number => Math.floor(now() / 1000);
  registerVoucherRoutes({ get, write, principal: (request) => auth.principal(request), log: logger, store: store.vouchers, office: new VoucherOffice(store.vouchers, options.voucherKey, nowSeconds), nowSeconds });

  if (options.insurance) {
    registerInsuranceConsoleRoutes({ get, write, principal: (request) => auth.principal(request) }, options.insurance.service, options.insurance.ledgerUses);
    await app.register(insuranceRoutes(options.insurance.service, logger));
  }

  await app.register(dashboardRoutes(options.dashboardDir ?? defaultDashboardDir()));
  for (const plugin of options.plugins ?? []) await app.register(plugin);
  await app.ready();
  return app;
}
