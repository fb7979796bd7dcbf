/**
 * Who is asking, for every HTTP route (httpApi.ts), and the session routes of the console:
 *   POST /api/session {username, password}  log in: an HttpOnly SameSite=Strict cookie and the session's CSRF token
 *   GET  /api/session                        who is logged in (and the CSRF token); 401 when nobody
 *   POST /api/session/logout                 ends the session
 *   POST /api/session/locale {locale}        en or zh, kept with the user
 *   GET  /api/session/once?token=T           a one-time login (the demo prints one): the cookie, then to the dashboard
 * A request is a session (the cookie), the machine (Authorization: Bearer <admin token>) or nobody. While the
 * store has no user at all the API stays as it was before users existed (reads open on loopback, writes with the
 * token), so machine clients and a server without a console keep working; from the first user on
 * (tally server user add) every route wants a session or the token. Writes with a session cookie must carry
 * X-CSRF-Token (the session's token) and, when the browser names one, an Origin of this server. Logins are
 * limited per account (5 failures in 15 min) and per address (20), counted in the database; sessions end after
 * 12 hours, or 30 idle minutes.
 */
import { TallyError } from '../../errors.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Logger } from '../../util/logger.js';
import { HttpError } from '../httpError.js';
import type { ServerStore } from '../ServerStore.js';
import { verifyPassword } from './password.js';
import { may, type Permission, type Principal } from './roles.js';

export const SESSION_COOKIE = 'tally_session';
export const SESSION_LIFETIME_MS = 12 * 3600_000;
export const SESSION_IDLE_MS = 30 * 60_000;
export const LOGIN_WINDOW_MS = 15 * 60_000;
export const ACCOUNT_FAILURES = 5;
export const ADDRESS_FAILURES = 20;
export const LOGIN_TOKEN_MS = 10 * 60_000;
const TOUCH_EVERY_MS = 60_000;

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

export interface ConsoleAuth {
  /** The route's guard: who asks, may they, and (writes with a cookie) the CSRF token */
  guard(permission: Permission): (request: FastifyRequest) => Promise<void>;
  principal(request: FastifyRequest): Principal;
  audit(request: FastifyRequest, action: string, target: string, detail?: unknown): Promise<void>;
  /** The session routes */
  routes(app: FastifyInstance): void;
}

/** A one-time login for a user (the demo's top authority): the token to put in /api/session/once?token= */
export async function issueLoginToken(store: ServerStore, username: string, now: number): Promise<string> {
  const token = randomBytes(24).toString('base64url');
  await store.access.createLoginToken(sha256(token), username, now + LOGIN_TOKEN_MS);
  return token;
}

export function createConsoleAuth(options: { store: ServerStore; adminDigest?: Buffer; now: () => number; logger: Logger; secureCookies?: boolean }): ConsoleAuth {
  const { store, now, logger } = options;
  const access = store.access;
  const principals = new WeakMap<FastifyRequest, Principal>();

  const machine: Principal = { username: 'machine', role: 'machine', locale: 'en' };

  async function clinicsOf(role: string, scope: string | undefined): Promise<ReadonlySet<string> | undefined> {
    if (role === 'clinic') return new Set(scope ? [scope] : []);
    if (role === 'agent') return new Set((await access.clinicAgents()).filter((c) => c.agentCode === scope).map((c) => c.clinicCode));
    return undefined;
  }

  /** The session of a cookie, or why there is none (expired: the cookie named a session that ended) */
  async function fromCookie(request: FastifyRequest): Promise<Principal | 'expired' | undefined> {
    const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (!token) return undefined;
    const id = sha256(token);
    const session = await access.session(id);
    const at = now();
    if (!session) return 'expired';
    if (session.expiresAt <= at || session.lastSeenAt + SESSION_IDLE_MS <= at) {
      await access.deleteSession(id);
      return 'expired';
    }
    const user = await access.user(session.username);
    if (!user || user.disabled) return 'expired';
    if (at - session.lastSeenAt >= TOUCH_EVERY_MS) await access.touchSession(id, at);
    const clinics = await clinicsOf(user.role, user.scope);
    return {
      username: user.username,
      role: user.role,
      locale: user.locale,
      csrf: session.csrf,
      sessionId: id,
      ...(clinics ? { clinics } : {}),
      ...(user.role === 'agent' && user.scope ? { agentCode: user.scope } : {}),
      ...(user.role === 'patient' && user.scope ? { walletId: user.scope } : {}),
    };
  }

  const refuse = (request: FastifyRequest, status: number, code: string, message: string, tally: ConstructorParameters<typeof HttpError>[4]): HttpError => {
    logger.warn({ event: 'http.refused', code, status, method: request.method, url: request.url.split('?')[0], address: request.ip }, message);
    return new HttpError(status, code, message, undefined, tally);
  };

  function bearer(request: FastifyRequest): string | undefined | null {
    const header = request.headers.authorization;
    if (header === undefined) return undefined;
    return /^Bearer +(\S+)$/i.exec(header)?.[1] ?? null;
  }

  const digestMatches = (given: string, expected: Buffer): boolean => timingSafeEqual(createHash('sha256').update(given, 'utf8').digest(), expected);

  function checkCsrf(request: FastifyRequest, principal: Principal): void {
    const given = request.headers['x-csrf-token'];
    const origin = request.headers.origin;
    const ok = typeof given === 'string' && principal.csrf !== undefined && given.length === principal.csrf.length && timingSafeEqual(Buffer.from(given), Buffer.from(principal.csrf));
    const sameOrigin = origin === undefined || origin.replace(/^https?:\/\//, '') === request.headers.host;
    if (!ok || !sameOrigin) throw refuse(request, 403, 'bad-csrf', 'writes with a session need the X-CSRF-Token header of the session, from this origin', 'BAD_CSRF');
  }

  async function resolve(request: FastifyRequest, permission: Permission): Promise<Principal> {
    const session = await fromCookie(request);
    if (session && session !== 'expired') return session;
    const token = bearer(request);
    const isWrite = permission === 'registry.write';
    if (token !== undefined) {
      if (!options.adminDigest) {
        if (isWrite) throw new HttpError(403, 'writes-disabled', 'registry writes are off: this server was started without an admin token (--admin-token-file or TALLY_ADMIN_TOKEN)');
        throw refuse(request, 401, 'unauthorized', 'this server has no admin token: log in instead', 'UNAUTHENTICATED');
      }
      if (token === null || !digestMatches(token, options.adminDigest)) throw refuse(request, 401, 'unauthorized', 'Authorization: Bearer <admin token> is missing or wrong', 'UNAUTHENTICATED');
      return machine;
    }
    if (session === 'expired') throw refuse(request, 401, 'session-expired', 'the session has expired or was logged out: log in again', 'SESSION_EXPIRED');
    if (await access.hasUsers()) throw refuse(request, 401, 'unauthenticated', 'log in first (POST /api/session) or send Authorization: Bearer <admin token>', 'UNAUTHENTICATED');
    // no user exists yet: the API as it was before the console
    if (isWrite) {
      if (!options.adminDigest) throw new HttpError(403, 'writes-disabled', 'registry writes are off: this server was started without an admin token (--admin-token-file or TALLY_ADMIN_TOKEN)');
      throw new HttpError(401, 'unauthorized', 'registry writes need Authorization: Bearer <admin token>; it is missing or wrong');
    }
    if (permission === 'registry.import' && options.adminDigest) throw new HttpError(401, 'unauthorized', 'registry imports need Authorization: Bearer <admin token>; it is missing or wrong');
    // money a terminal's payment moved: never open, even before the first user
    if (permission === 'insurance.reconcile') throw refuse(request, 401, 'unauthenticated', 'the insurance reconciliation needs a console login or Authorization: Bearer <admin token>', 'UNAUTHENTICATED');
    if (!may(machine, permission)) throw refuse(request, 401, 'unauthenticated', 'log in first: this needs a console user (tally server user add)', 'UNAUTHENTICATED');
    return machine;
  }

  async function audit(request: FastifyRequest, action: string, target: string, detail: unknown = {}): Promise<void> {
    const who = principals.get(request);
    await access.appendAudit({ at: now(), username: who?.username ?? 'anonymous', role: who?.role ?? 'none', action, target, detail: JSON.stringify(detail), address: request.ip });
    logger.info({ event: 'audit', action, target, username: who?.username, address: request.ip }, `audit: ${action} ${target}`);
  }

  /** Secure whenever the browser reached us over HTTPS: a TLS socket, or the HTTPS proxy in front (secureCookies) */
  const cookie = (request: FastifyRequest, value: string, maxAgeS: number): string =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${options.secureCookies || request.protocol === 'https' ? '; Secure' : ''}`;

  async function startSession(request: FastifyRequest, reply: FastifyReply, username: string): Promise<{ csrf: string }> {
    const token = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const at = now();
    await access.deleteExpiredSessions(at);
    await access.createSession({ id: sha256(token), username, csrf, address: request.ip, createdAt: at, lastSeenAt: at, expiresAt: at + SESSION_LIFETIME_MS });
    void reply.header('set-cookie', cookie(request, token, SESSION_LIFETIME_MS / 1000));
    return { csrf };
  }

  const sessionAnswer = Type.Object({
    status: Type.Literal('ok'),
    data: Type.Object({ username: Type.String(), role: Type.String(), locale: Type.String(), csrf: Type.Optional(Type.String()), clinics: Type.Optional(Type.Array(Type.String())), agentCode: Type.Optional(Type.String()) }),
  });
  const describe = (p: Principal) => ({ username: p.username, role: p.role, locale: p.locale, ...(p.csrf ? { csrf: p.csrf } : {}), ...(p.clinics ? { clinics: [...p.clinics].sort() } : {}), ...(p.agentCode ? { agentCode: p.agentCode } : {}) });
  const json = (body: unknown): Record<string, unknown> => {
    try {
      const value: unknown = JSON.parse(typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '');
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // answered below
    }
    throw new HttpError(400, 'malformed', 'the body is not a JSON object');
  };

  async function sessionOf(request: FastifyRequest): Promise<Principal> {
    const p = await fromCookie(request);
    if (p === 'expired') throw refuse(request, 401, 'session-expired', 'the session has expired or was logged out: log in again', 'SESSION_EXPIRED');
    if (!p) throw refuse(request, 401, 'unauthenticated', 'nobody is logged in', 'UNAUTHENTICATED');
    principals.set(request, p);
    return p;
  }

  function routes(app: FastifyInstance): void {
    const errors = Object.fromEntries([400, 401, 403, 404, 429, 500].map((status) => [status, { $ref: 'ErrorAnswer#' }]));
    app.post('/api/session', { schema: { summary: 'log in: sets the session cookie and answers the CSRF token', response: { 200: sessionAnswer, ...errors } } }, async (request, reply) => {
      const origin = request.headers.origin;
      if (origin !== undefined && origin.replace(/^https?:\/\//, '') !== request.headers.host) throw refuse(request, 403, 'bad-csrf', 'a login from another origin', 'BAD_CSRF');
      const body = json(request.body);
      const username = typeof body.username === 'string' ? body.username.slice(0, 100) : '';
      const password = typeof body.password === 'string' ? body.password.slice(0, 300) : '';
      if (!username || !password) throw new HttpError(400, 'invalid', 'username and password are required', username ? 'password' : 'username');
      const at = now();
      const keys = [`account:${username.toLowerCase()}`, `address:${request.ip}`];
      const [account, address] = await Promise.all(keys.map((k) => access.loginFailures(k, at - LOGIN_WINDOW_MS)));
      if (account! >= ACCOUNT_FAILURES || address! >= ADDRESS_FAILURES) {
        void reply.header('retry-after', String(LOGIN_WINDOW_MS / 1000));
        await access.appendAudit({ at, username, role: 'none', action: 'login.limited', target: username, detail: JSON.stringify({ account, address }), address: request.ip });
        throw refuse(request, 429, 'rate-limited', `too many failed logins ${account! >= ACCOUNT_FAILURES ? 'for this account' : 'from this address'}: try again later`, 'LOGIN_RATE_LIMITED');
      }
      const user = await access.user(username);
      const good = await verifyPassword(password, user && !user.disabled ? user.passwordHash : undefined);
      if (!good || !user) {
        await access.recordLoginFailure(keys, at);
        await access.appendAudit({ at, username, role: 'none', action: 'login.failed', target: username, detail: '{}', address: request.ip });
        throw refuse(request, 401, 'login-failed', 'wrong user name or password', 'LOGIN_FAILED');
      }
      await access.clearLoginFailures(keys[0]!);
      const { csrf } = await startSession(request, reply, user.username);
      await access.appendAudit({ at, username: user.username, role: user.role, action: 'login.ok', target: user.username, detail: '{}', address: request.ip });
      const clinics = await clinicsOf(user.role, user.scope);
      return { status: 'ok', data: describe({ username: user.username, role: user.role, locale: user.locale, csrf, ...(clinics ? { clinics } : {}), ...(user.role === 'agent' && user.scope ? { agentCode: user.scope } : {}) }) };
    });
    app.get('/api/session', { schema: { summary: 'who is logged in (401 when nobody)', response: { 200: sessionAnswer, ...errors } } }, async (request) => ({ status: 'ok', data: describe(await sessionOf(request)) }));
    app.post('/api/session/logout', { schema: { summary: 'log out', response: { 200: sessionAnswer, ...errors } } }, async (request, reply) => {
      const p = await sessionOf(request);
      checkCsrf(request, p);
      await access.deleteSession(p.sessionId!);
      await audit(request, 'logout', p.username);
      void reply.header('set-cookie', cookie(request, '', 0));
      return { status: 'ok', data: describe(p) };
    });
    app.post('/api/session/locale', { schema: { summary: 'the user\'s language: en or zh', response: { 200: sessionAnswer, ...errors } } }, async (request) => {
      const p = await sessionOf(request);
      checkCsrf(request, p);
      const locale = json(request.body).locale;
      if (locale !== 'en' && locale !== 'zh') throw new HttpError(400, 'invalid', 'locale: en or zh', 'locale');
      await access.setLocale(p.username, locale);
      return { status: 'ok', data: describe({ ...p, locale }) };
    });
    app.get('/api/session/once', { schema: { summary: 'a one-time login link: sets the cookie and goes to the dashboard', querystring: Type.Object({ token: Type.String({ maxLength: 100 }) }), response: { 303: Type.Null({ description: 'to the dashboard, with the session cookie' }), ...errors } } }, async (request, reply) => {
      const token = (request.query as { token: string }).token;
      const username = await access.useLoginToken(sha256(token), now());
      const user = username ? await access.user(username) : undefined;
      if (!user || user.disabled) throw refuse(request, 401, 'login-token', 'this one-time login is unknown, used or expired', 'LOGIN_TOKEN');
      await startSession(request, reply, user.username);
      await access.appendAudit({ at: now(), username: user.username, role: user.role, action: 'login.once', target: user.username, detail: '{}', address: request.ip });
      return reply.code(303).header('location', '/').send();
    });
  }

  return {
    guard: (permission) => async (request) => {
      const principal = await resolve(request, permission);
      if (!may(principal, permission)) throw refuse(request, 403, 'forbidden', `the ${principal.role} role may not use ${request.method} ${request.url.split('?')[0]}`, 'FORBIDDEN');
      if (request.method !== 'GET' && request.method !== 'HEAD' && principal.sessionId) checkCsrf(request, principal);
      principals.set(request, principal);
    },
    principal: (request) => {
      const p = principals.get(request);
      if (!p) throw new TallyError('INTERNAL', `no guard ran for ${request.method} ${request.url}`);
      return p;
    },
    audit,
    routes,
  };
}
