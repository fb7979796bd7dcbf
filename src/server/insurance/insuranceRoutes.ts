/**
 * The insurance routes on the server's HTTP API.
 *
 * The terminal's side of the flow (start an authorisation, poll for its voucher, report the use's outcome) is not
 * here: terminals make those requests over MQTT (daemon/mqttInsuranceLink.ts, Ingest.handleInsurance), where the
 * broker knows each terminal by its TLS certificate and its ACL confines it to its own topics. The HTTP routes
 * that once took them (device_authorization, token, outcome) named the terminal in the body with no credential, so
 * anyone on the network could reverse a settled order; they now answer INSURANCE_TERMINAL_HTTP_REFUSED, logged.
 *
 * The phone's routes (insuranceRoutes, a plugin of startHttpApi):
 *   GET  /pay?code=XXXX-XXXX                   the patient's phone page (insurancePhonePage.ts)
 *   POST /api/insurance/phone/open|quote|consent|refuse  {code, credential?}  the phone page's calls; the first phone
 *                                              that opens a link holds it (cookie tally_phone); the user code is
 *                                              the patient's credential for the order, as in RFC 8628
 * The console's (registerInsuranceConsoleRoutes, through httpApi's guarded `get` and `write`):
 *   GET  /api/insurance/reconcile?day=YYYY-MM-DD   permission insurance.reconcile
 *   POST /api/wallet/insurance-orders {clinicCode, item, amountFen, credential}   (a patient user: the booking app,
 *        seed 001) pays a service order with the e-credential; the answer is the result, with the code to redeem
 *        it at a terminal of that clinic. Audit-logged without the credential. The wallet is the session's.
 *   GET  /api/wallet/insurance-orders?orderId=     (the same patient) the order as it stands (paid, redeemed, used)
 * Refusals answer {status: 'error', error: {code, message, number, zh}} like every route.
 */
import { randomBytes } from 'node:crypto';
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { isTallyError, operatorMessage, type ErrorName } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import { integer, object, string } from '../../codecs/mqtt/schema.js';
import type { Permission, Principal } from '../access/roles.js';
import { checkInput } from '../registry/registryAdmin.js';
import { HttpError } from '../httpError.js';
import type { InsuranceService, LedgerUses } from './InsuranceService.js';
import { PHONE_PAGE, PHONE_PAGE_CSP } from './insurancePhonePage.js';

const STATUS: Partial<Record<ErrorName, number>> = {
  BAD_INPUT: 400,
  INSURANCE_UNKNOWN_ORDER: 404,
  INSURANCE_LINK_TAKEN: 409,
  INSURANCE_STATE: 409,
  INSURANCE_TOKEN_USED: 409,
  INSURANCE_TOKEN_INVALID: 403,
  INSURANCE_CODE_EXPIRED_SERVER: 410,
  INSURANCE_NOT_INSURED: 422,
  INSURANCE_NOT_COVERED: 422,
  INSURANCE_NO_SIGNING_KEY: 503,
  INSURANCE_SERVICE_ORDER_OTHER_CLINIC: 409,
  INSURANCE_SERVICE_ORDER_REDEEMED: 409,
  INSURANCE_PLATFORM_DOWN: 503,
  INSURANCE_PLATFORM_TIMEOUT: 503,
  INSURANCE_PLATFORM_NO_ANSWER: 503,
  INSURANCE_PLATFORM_ERROR: 503,
};

function asHttp(err: unknown): unknown {
  if (!isTallyError(err) || err instanceof HttpError || STATUS[err.code] === undefined) return err;
  return new HttpError(STATUS[err.code]!, err.code, err.message, undefined, err.code);
}

function jsonBody(request: FastifyRequest): Record<string, unknown> {
  const raw = request.body;
  if (typeof raw !== 'string' || raw.length === 0) return {};
  if ((request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(raw));
  try {
    const value = JSON.parse(raw) as unknown;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new HttpError(400, 'malformed', 'body is not a JSON object');
}

const str = (b: Record<string, unknown>, key: string): string => {
  const v = b[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new HttpError(400, 'invalid', `${key}: a string`, key);
  return v;
};

function phoneId(request: FastifyRequest, reply: FastifyReply): string {
  const found = /(?:^|;\s*)tally_phone=([A-Za-z0-9_-]{16,64})/.exec(request.headers.cookie ?? '')?.[1];
  if (found) return found;
  const made = randomBytes(16).toString('base64url');
  void reply.header('set-cookie', `tally_phone=${made}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600`);
  return made;
}

/** The HTTP routes terminals once used; refused (the terminal's link is MQTT) */
export const TERMINAL_HTTP_ROUTES = ['/api/insurance/device_authorization', '/api/insurance/token', '/api/insurance/outcome'] as const;

export function insuranceRoutes(service: InsuranceService, log: Logger): FastifyPluginAsync {
  return async (app) => {
    const wrap =
      <T>(fn: (request: FastifyRequest, reply: FastifyReply) => Promise<T>) =>
      async (request: FastifyRequest, reply: FastifyReply): Promise<T> => {
        try {
          return await fn(request, reply);
        } catch (err) {
          throw asHttp(err);
        }
      };
    const hidden = { schema: { hide: true } };

    // the terminal's requests travel over MQTT only: these answer a refusal, and log who asked
    for (const route of TERMINAL_HTTP_ROUTES) {
      app.post(route, hidden, async (request) => {
        log.warn({ event: 'insurance.terminal-http-refused', code: 'INSURANCE_TERMINAL_HTTP_REFUSED', route, address: request.ip }, 'a terminal route called over HTTP: refused, nothing changed');
        throw new HttpError(403, 'INSURANCE_TERMINAL_HTTP_REFUSED', operatorMessage('INSURANCE_TERMINAL_HTTP_REFUSED', 'en'), undefined, 'INSURANCE_TERMINAL_HTTP_REFUSED');
      });
    }

    app.get('/pay', hidden, async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', PHONE_PAGE_CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').send(PHONE_PAGE));

    for (const action of ['open', 'quote', 'consent', 'refuse'] as const) {
      app.post(`/api/insurance/phone/${action}`, hidden, wrap(async (request, reply) => {
        const b = jsonBody(request);
        const code = str(b, 'code');
        const phone = phoneId(request, reply);
        const view =
          action === 'open' ? await service.open(code, phone) : action === 'quote' ? await service.quote(code, phone, str(b, 'credential')) : action === 'consent' ? await service.consent(code, phone) : await service.refuseOnPhone(code, phone);
        return { status: 'ok', data: view };
      }));
    }

  };
}

/** httpApi's guarded routes: the role may (else 403 FORBIDDEN), nobody without a login or the machine token (401) */
export interface GuardedRoutes {
  readonly get: (url: string, permission: Permission, summary: string, data: TSchema, handler: (query: Record<string, string | undefined>, principal: Principal) => Promise<unknown>, querystring?: TSchema) => void;
  readonly write: (url: string, permission: Permission, summary: string, bodySchema: TSchema, answer: TSchema, handler: (body: unknown, request: FastifyRequest) => Promise<{ status: number; data: unknown; audit: { action: string; target: string; detail?: unknown } }>) => void;
  readonly principal: (request: FastifyRequest) => Principal;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const ServiceOrderInput = object({ clinicCode: string(16, /^[A-Za-z0-9._-]+$/), item: string(16, /^[A-Z0-9_]+$/), amountFen: integer(1, 100_000_000), credential: string(128) });
const loose = (description: string): TSchema => Type.Object({}, { additionalProperties: true, description });

const walletOf = (principal: Principal): string => {
  if (!principal.walletId) throw new HttpError(403, 'forbidden', 'this user holds no wallet');
  return principal.walletId;
};

async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asHttp(err);
  }
}

/** The operators' insurance routes and the booking app's, behind the console's login and roles */
export function registerInsuranceConsoleRoutes(routes: GuardedRoutes, service: InsuranceService, ledgerUses: (day: string) => Promise<LedgerUses>): void {
  routes.get(
    '/api/insurance/reconcile',
    'insurance.reconcile',
    "the day's reconciliation: the platform's statement against the orders and the ledgers' settlement uses, every mismatch listed",
    loose('{day, orders, platformSettlements, mismatches: [{kind, orderId?, settlementId?, detail}]}'),
    async (query) => {
      const day = query.day ?? new Date().toISOString().slice(0, 10);
      if (!DAY.test(day)) throw new HttpError(400, 'invalid', 'day: YYYY-MM-DD', 'day');
      return answering(async () => service.reconcile(day, await ledgerUses(day)));
    },
    Type.Object({ day: Type.Optional(Type.String({ maxLength: 10 })) }),
  );
  routes.write(
    '/api/wallet/insurance-orders',
    'wallet.insurance',
    'pay a service order (an exam at a clinic) with your medical-insurance e-credential; redeem it at a terminal of that clinic with the code in the answer',
    loose('{clinicCode, item, amountFen, credential}'),
    loose('{orderId, state, clinicCode, item, amountFen, insurerFen, patientFen, redeemCode, bindingCode, validUntil, failure}'),
    async (body, request) => {
      const input = checkInput(ServiceOrderInput, body);
      const walletId = walletOf(routes.principal(request));
      const view = await answering(() => service.payServiceOrder({ walletId, ...input }));
      // the credential is the patient's: never in the audit log
      return { status: 201, data: view, audit: { action: 'wallet.insurance-order', target: view.orderId, detail: { clinicCode: input.clinicCode, item: input.item, amountFen: input.amountFen, state: view.state } } };
    },
  );
  routes.get(
    '/api/wallet/insurance-orders',
    'wallet.insurance',
    'a service order of your wallet as it stands: paid, redeemed at a terminal, used, or failed',
    loose('{orderId, state, ...}'),
    async (query, principal) => {
      if (typeof query.orderId !== 'string' || query.orderId.length > 64) throw new HttpError(400, 'invalid', 'orderId', 'orderId');
      return answering(() => service.serviceOrder(query.orderId!, walletOf(principal)));
    },
    Type.Object({ orderId: Type.String({ maxLength: 64 }) }),
  );
}
