/**
 * The insurance routes on the server's fastify instance (a plugin of startHttpApi):
 *   POST /api/insurance/device_authorization  {terminalId, item, amountFen}   RFC 8628 3.1/3.2 (+ orderId, binding_code)
 *   POST /api/insurance/token                  {device_code}                  RFC 8628 3.4/3.5: 200 {voucher, orderId}, or
 *                                              400 {error: authorization_pending | slow_down | expired_token | access_denied, interval, reason?}
 *   POST /api/insurance/outcome                {orderId, terminalId, ran}     the use ran, or the settlement is reversed
 *   GET  /pay?code=XXXX-XXXX                   the patient's phone page (insurancePhonePage.ts)
 *   POST /api/insurance/phone/open|quote|consent|refuse  {code, credential?}  the phone page's calls; the first phone
 *                                              that opens a link holds it (cookie tally_phone)
 *   GET  /api/insurance/reconcile?day=YYYY-MM-DD
 * Refusals answer {status: 'error', error: {code, message, number, zh}} like every route.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, isTallyError, type ErrorName } from '../../errors.js';
import { HttpError } from '../httpError.js';
import type { InsuranceService } from './InsuranceService.js';
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

export function insuranceRoutes(service: InsuranceService, ledgerUses: (day: string) => Promise<ReadonlySet<string>>): FastifyPluginAsync {
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

    app.post('/api/insurance/device_authorization', hidden, wrap(async (request) => {
      const b = jsonBody(request);
      const amountFen = b.amountFen;
      if (typeof amountFen !== 'number') throw new HttpError(400, 'invalid', 'amountFen: a whole number of fen', 'amountFen');
      return { status: 'ok', data: await service.start({ terminalId: str(b, 'terminalId'), item: str(b, 'item'), amountFen }) };
    }));

    app.post('/api/insurance/token', hidden, wrap(async (request, reply) => {
      const answer = await service.poll(str(jsonBody(request), 'device_code'));
      if ('voucher' in answer) return { status: 'ok', data: answer };
      return reply.code(400).send({ ...answer, ...('reason' in answer ? { number: ErrorCodes[answer.reason].code } : {}) });
    }));

    app.post('/api/insurance/outcome', hidden, wrap(async (request) => {
      const b = jsonBody(request);
      if (typeof b.ran !== 'boolean') throw new HttpError(400, 'invalid', 'ran: true or false', 'ran');
      const order = await service.outcome(str(b, 'orderId'), str(b, 'terminalId'), b.ran);
      return { status: 'ok', data: { orderId: order.orderId, state: order.state } };
    }));

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

    app.get('/api/insurance/reconcile', hidden, wrap(async (request) => {
      const day = (request.query as { day?: string }).day ?? new Date().toISOString().slice(0, 10);
      return { status: 'ok', data: await service.reconcile(day, await ledgerUses(day)) };
    }));
  };
}
