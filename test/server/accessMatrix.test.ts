/**
 * Every HTTP route as every role, through fastify's inject(): each role gets exactly the routes the issue gives
 * it (the table below is the specification, written apart from src/server/access/roles.ts), a clinic or agent
 * sees only its clinics' rows, nobody gets anything without a login once users exist, writes need the session's
 * CSRF token, logins are rate limited per account and per address, sessions expire, and every administrative
 * write lands in the audit log with who, what, when and from where.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueLoginToken } from '../../src/server/access/consoleAuth.js';
import { ROLES, type Role } from '../../src/server/access/roles.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { buildConsoleWorld, PASSWORD, T0, USERS, VISIBLE } from './consoleFixture.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-access-matrix-'));
const TOKEN = 'matrix-token-0123456789abcdef';
let store: ServerStore;
let app: Awaited<ReturnType<typeof buildHttpApi>>;
let clock = T0 + 3_600_000;
const warnings: Array<Record<string, unknown>> = [];

const all = [...ROLES];
/** The specification: who may use each route (the machine token aside) */
const SPEC: Record<string, readonly Role[]> = {
  'GET /api/health': all,
  'GET /api/session': all,
  'GET /api/terminals': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/uses': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/uses/series': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/export/uses.csv': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/batches': ['authority', 'issuer', 'agent', 'clinic', 'auditor'],
  'GET /api/income': ['authority', 'agent', 'clinic', 'auditor'],
  'GET /api/statement': ['authority', 'agent', 'clinic', 'auditor'],
  'GET /api/statement.pdf': ['authority', 'agent', 'clinic', 'auditor'],
  'GET /api/alerts': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/rejections': ['sysadmin', 'authority', 'auditor'],
  // a patient gets its wallet only (the wallet names each slot's clinic itself)
  'GET /api/registry/clinics': all.filter((role) => role !== 'patient'),
  'GET /api/registry/terminals': ['sysadmin', 'authority', 'agent', 'clinic', 'auditor'],
  'GET /api/registry/cards': ['authority', 'issuer', 'auditor'],
  'GET /api/registry/batches': ['authority', 'issuer', 'agent', 'clinic', 'auditor'],
  'GET /api/registry/stations': ['sysadmin', 'authority', 'issuer', 'auditor'],
  'GET /api/registry/issuance': ['authority', 'issuer', 'auditor'],
  'GET /api/registry/agents': ['sysadmin', 'authority', 'agent', 'auditor'],
  'GET /api/users': ['sysadmin', 'auditor'],
  'GET /api/audit': ['sysadmin', 'auditor'],
  'POST /api/registry/clinics': ['sysadmin', 'authority'],
  'POST /api/registry/terminals': ['sysadmin', 'authority'],
  'POST /api/registry/terminals/retire': ['sysadmin', 'authority'],
  'POST /api/registry/agents': ['authority'],
  'POST /api/registry/import': ['authority', 'issuer'],
  'POST /api/alerts/ack': ['sysadmin', 'authority'],
  // the voucher back office: the issuer runs it (and a community centre's staff), a clinic keeps its slots
  'POST /api/vouchers/batches': ['authority', 'issuer'],
  'POST /api/vouchers/send': ['authority', 'issuer'],
  'POST /api/vouchers/issue': ['authority', 'issuer'],
  'POST /api/vouchers/slots': ['authority', 'issuer', 'clinic'],
  'POST /api/vouchers/book': ['authority', 'issuer'],
  'POST /api/vouchers/void': ['authority', 'issuer'],
  'POST /api/vouchers/void-expired': ['authority', 'issuer'],
  'GET /api/vouchers': ['authority', 'issuer', 'auditor'],
  'GET /api/vouchers/batches': ['authority', 'issuer', 'auditor'],
  'GET /api/vouchers/centre': ['authority', 'issuer'],
  'GET /api/vouchers/slots': ['authority', 'issuer', 'clinic'],
  'GET /api/vouchers/stats': ['authority', 'issuer', 'clinic', 'auditor'],
  // the patient's own wallet, nobody else's
  'GET /api/wallet': ['patient'],
  'POST /api/wallet/book': ['patient'],
  'POST /api/users/change': ['sysadmin'],
  'POST /api/users': ['sysadmin'],
  'POST /api/registry/cards/revoke': ['authority', 'issuer'],
  'GET /api/registry/denylist': ['sysadmin', 'authority', 'issuer', 'auditor'],
};
/** Routes whose rows name a clinic: a clinic or an agent sees only its own */
const SCOPED: Record<string, (row: Record<string, unknown>) => string | undefined> = {
  'GET /api/terminals': (r) => r.clinicCode as string,
  'GET /api/uses?group=none': (r) => r.clinicCode as string,
  'GET /api/batches': (r) => r.clinicCode as string,
  'GET /api/income': (r) => r.clinicCode as string,
  'GET /api/alerts': (r) => (r.detail as string).slice(3),
  'GET /api/registry/clinics': (r) => r.clinicCode as string,
  'GET /api/registry/terminals': (r) => r.clinicCode as string,
};
/** Routes that need a query to answer: the URL the matrix asks (CL-A is every allowed role's clinic) */
const URLS: Record<string, string> = {
  'GET /api/statement': '/api/statement?clinic=CL-A',
  'GET /api/statement.pdf': '/api/statement.pdf?clinic=CL-A',
};
const BODIES: Record<string, unknown> = {
  'POST /api/registry/clinics': { clinicCode: 'CL-N', name: 'New Clinic' },
  'POST /api/registry/terminals': { terminalId: 'T-N', clinicCode: 'CL-N' },
  'POST /api/registry/terminals/retire': { terminalId: 'T-B', note: 'moved' },
  'POST /api/registry/agents': { agentCode: 'AG-2', name: 'West Sales', share: 0.05 },
  'POST /api/registry/import': {},
  'POST /api/alerts/ack': { key: 'alert-T-B', note: 'checked the serials' },
  'POST /api/vouchers/batches': { batchId: 'VB-M', examType: 'OCT', scopeKind: 1, scope: 'CL-A', count: 3, validDays: 30, bookingRequired: true },
  'POST /api/vouchers/send': { batchId: 'VB-M', centreId: 'CC-1', community: 'Xuanwu', count: 1 },
  'POST /api/vouchers/issue': { serial: 1000001, centreId: 'CC-1', walletId: 'W-1' },
  'POST /api/vouchers/slots': { slotId: 5, clinicCode: 'CL-A', department: 'Eye', doctor: 'Dr Zhao', start: 1_800_000_000, minutes: 30, capacity: 2 },
  'POST /api/vouchers/book': { serial: 1000001, walletId: 'W-1', slotId: 5 },
  'POST /api/vouchers/void': { serial: 1000003, reason: 'recalled' },
  'POST /api/vouchers/void-expired': {},
  'POST /api/wallet/book': { serial: 1000002, slotId: 5 },
  // enabling an enabled user: allowed, and no session ends
  'POST /api/users/change': { username: USERS.issuer.username, disabled: false },
  'POST /api/users': { username: 'matrix-new', role: 'auditor', password: 'a long enough password 42' },
  'POST /api/registry/cards/revoke': { cardId: '00000000000000ab', reason: 'reported lost' },
};

interface Login {
  cookie: string;
  csrf: string;
}
const logins = new Map<Role, Login>();

async function login(username: string, password: string, address = '127.0.0.1'): Promise<{ status: number; body: Record<string, unknown>; login?: Login; headers: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: '/api/session', remoteAddress: address, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ username, password }) });
  const setCookie = String(res.headers['set-cookie'] ?? '');
  const body = res.json() as Record<string, unknown>;
  return { status: res.statusCode, body, headers: res.headers, ...(res.statusCode === 200 ? { login: { cookie: setCookie.split(';')[0]!, csrf: (body.data as { csrf: string }).csrf } } : {}) };
}

function request(route: string, who: Login | 'token' | undefined, options: { csrf?: string | null; body?: unknown } = {}) {
  const [method, path] = route.split(' ') as ['GET' | 'POST', string];
  const url = URLS[route] ?? path;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (who === 'token') headers.authorization = `Bearer ${TOKEN}`;
  else if (who) {
    headers.cookie = who.cookie;
    if (options.csrf !== null) headers['x-csrf-token'] = options.csrf ?? who.csrf;
  }
  return app.inject({ method, url, headers, ...(method === 'POST' ? { payload: JSON.stringify(options.body ?? BODIES[route] ?? {}) } : {}) });
}

beforeAll(async () => {
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await buildConsoleWorld(store);
  const logger = { trace() {}, debug() {}, info() {}, warn: (obj: Record<string, unknown>) => void warnings.push(obj), error() {}, child: () => logger };
  app = await buildHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, adminToken: TOKEN, rootPublicKey: new Uint8Array(32).fill(9), clock: () => clock, logger });
  for (const role of ROLES) {
    const result = await login(USERS[role].username, PASSWORD);
    expect(result.status, role).toBe(200);
    expect(String(result.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
    logins.set(role, result.login!);
  }
});
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('console access over HTTP', () => {
  it('the specification names every route the OpenAPI document lists', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const sessionRoutes = ['POST /api/session', 'POST /api/session/logout', 'POST /api/session/locale', 'GET /api/session/once'];
    expect(routes.filter((r) => !sessionRoutes.includes(r)).sort()).toEqual(Object.keys(SPEC).sort());
  });

  it('a clinic sees only its own clinic, an agent only the clinics it placed devices in, the others every clinic', async () => {
    for (const [route, clinicOf] of Object.entries(SCOPED)) {
      for (const role of ROLES) {
        if (!SPEC[route.split('?')[0]!]!.includes(role)) continue;
        const rows = (await request(route, logins.get(role))).json().data as Array<Record<string, unknown>>;
        expect([...new Set(rows.map(clinicOf))].sort(), `${route} as ${role}`).toEqual([...VISIBLE[role]].sort());
      }
    }
    const series = (await request('GET /api/uses/series?period=month&by=agent', logins.get('auditor'))).json().data;
    expect(series).toEqual({ buckets: ['2026-11'], groups: [{ key: '', uses: [3] }, { key: 'AG-1', uses: [7] }], total: 10 });
    expect((await request('GET /api/uses/series?period=week&by=terminal', logins.get('clinic'))).json().data).toEqual({ buckets: ['2026-11-02'], groups: [{ key: 'T-A', uses: [5] }], total: 5 });
    for (const role of ['clinic', 'agent', 'auditor'] as const) {
      const csv = (await request('GET /api/export/uses.csv', logins.get(role))).body.trim().split('\r\n');
      expect(csv[0]).toBe('day,clinicCode,terminalId,agentCode,uses,clockUntrusted');
      expect([...new Set(csv.slice(1).map((line) => line.split(',')[1]))].sort(), `CSV as ${role}`).toEqual([...VISIBLE[role]].sort());
    }
    const agentIncome = (await request('GET /api/income', logins.get('agent'))).json().data;
    // CL-A: 5 uses at 100.00, 70% to the investor of which 10% of the gross to the agent
    expect(agentIncome).toContainEqual({ clinicCode: 'CL-A', uses: 5, gross: 50_000, investor: 30_000, clinic: 15_000, agentCode: 'AG-1', agent: 5_000 });
    expect((await request('GET /api/registry/agents', logins.get('agent'))).json().data).toEqual([expect.objectContaining({ agentCode: 'AG-1', clinics: ['CL-A', 'CL-C'] })]);
  });

  it('every route times every role: allowed routes answer, the others 403 with code 6502; nobody at all gets 401', async () => {
    const outcome: string[] = [];
    for (const route of Object.keys(SPEC)) {
      for (const role of ROLES) {
        const res = await request(route, logins.get(role));
        const allowed = SPEC[route]!.includes(role);
        if (allowed) expect([200, 201, 422], `${route} as ${role}: ${res.body}`).toContain(res.statusCode);
        else expect(res.json(), `${route} as ${role}`).toMatchObject({ error: { code: 'forbidden', number: 6502 } });
        outcome.push(`${route} ${role} ${allowed ? 'yes' : 'no'}`);
      }
      const nobody = await request(route, undefined);
      expect(nobody.statusCode, route).toBe(401);
      expect(nobody.json()).toMatchObject({ error: { code: 'unauthenticated', number: 6501 } });
    }
    expect(outcome).toHaveLength(Object.keys(SPEC).length * ROLES.length);
    expect(warnings.filter((w) => w.event === 'http.refused' && w.code === 'forbidden').length).toBe(outcome.filter((o) => o.endsWith('no')).length);
  });

  it('the machine token keeps the reads and writes it had, not the console\'s people', async () => {
    expect((await request('GET /api/income', 'token')).statusCode).toBe(200);
    expect((await request('POST /api/registry/clinics', 'token', { body: { clinicCode: 'CL-M', name: 'Machine' } })).statusCode).toBe(201);
    expect((await request('GET /api/users', 'token')).statusCode).toBe(403);
    expect((await request('GET /api/audit', 'token')).statusCode).toBe(403);
  });

  it('writes with a session need its CSRF token and this origin', async () => {
    const boss = logins.get('authority')!;
    const route = 'POST /api/registry/clinics';
    expect((await request(route, boss, { csrf: null, body: { clinicCode: 'CL-X', name: 'X' } })).json()).toMatchObject({ error: { code: 'bad-csrf', number: 6503 } });
    expect((await request(route, boss, { csrf: logins.get('sysadmin')!.csrf, body: { clinicCode: 'CL-X', name: 'X' } })).statusCode).toBe(403);
    const foreign = await app.inject({ method: 'POST', url: '/api/registry/clinics', headers: { cookie: boss.cookie, 'x-csrf-token': boss.csrf, origin: 'http://evil.example', 'content-type': 'application/json' }, payload: '{"clinicCode":"CL-X","name":"X"}' });
    expect(foreign.json()).toMatchObject({ error: { code: 'bad-csrf' } });
    expect((await store.registry.clinics()).some((c) => c.clinicCode === 'CL-X')).toBe(false);
  });

  it('acknowledges an alert with a note, shown with the alert and in the audit log', async () => {
    const rows = (await request('GET /api/alerts', logins.get('auditor'))).json().data as Array<{ key: string; acknowledged?: { by: string; note: string } }>;
    const acked = rows.find((r) => r.key === 'alert-T-B')!;
    expect(acked.acknowledged).toMatchObject({ note: 'checked the serials' });
    const audit = (await request('GET /api/audit', logins.get('auditor'))).json().data as Array<Record<string, unknown>>;
    expect(audit).toContainEqual(expect.objectContaining({ action: 'alert.ack', target: 'alert-T-B', username: acked.acknowledged!.by, address: '127.0.0.1' }));
    for (const action of ['registry.clinic.save', 'registry.terminal.save', 'registry.terminal.retire', 'agent.save', 'user.add', 'login.ok']) expect(audit.map((a) => a.action), action).toContain(action);
    expect(audit.every((a) => typeof a.at === 'number' && a.username && a.address)).toBe(true);
  });

  it('runs the voucher back office: the matrix\'s writes landed once each, refusals carry their codes, a clinic sees its own statistics', async () => {
    expect(await store.vouchers.voucher(1000001)).toMatchObject({ state: 'booked', walletId: 'W-1', centreId: 'CC-1', slotId: 5 });
    expect(await store.vouchers.voucher(1000003)).toMatchObject({ state: 'voided' });
    expect(await store.vouchers.slot(5)).toMatchObject({ booked: 1, capacity: 2, clinicCode: 'CL-A' });
    // the second role's same write was refused by the state, with the project's code
    const again = await request('POST /api/vouchers/book', logins.get('issuer'));
    expect(again.statusCode).toBe(422);
    expect(again.json()).toMatchObject({ error: { code: 'VOUCHER_NOT_BOOKABLE', number: 6303, zh: '预约被拒绝：此服务券当前不可预约' } });
    expect((await request('GET /api/vouchers?serial=42', logins.get('auditor'))).json()).toMatchObject({ error: { code: 'VOUCHER_UNKNOWN', number: 6302 } });
    const otherClinic = await request('POST /api/vouchers/slots', logins.get('clinic'), { body: { slotId: 6, clinicCode: 'CL-B', department: 'Eye', doctor: 'X', start: 1_800_000_000, minutes: 30, capacity: 1 } });
    expect(otherClinic.statusCode).toBe(403);
    const stats = (await request('GET /api/vouchers/stats?by=community&period=month', logins.get('issuer'))).json().data as Array<{ key: string; generated: number; sent: number; voided: number }>;
    // authority and issuer each sent one voucher to the centre; the third, never sent, was voided
    expect(stats.find((r) => r.key === 'Xuanwu')).toMatchObject({ generated: 2, sent: 2, voided: 0 });
    expect(stats.find((r) => r.key === '')).toMatchObject({ generated: 1, sent: 0, voided: 1 });
    // a clinic user gets the statistics by clinic, of its clinics only: nothing is written off yet
    expect((await request('GET /api/vouchers/stats?by=community', logins.get('clinic'))).json().data).toEqual([]);
    // the patient sees its own wallet: the booked voucher with its QR code; another wallet's voucher it cannot book
    const wallet = (await request('GET /api/wallet', logins.get('patient'))).json().data as { walletId: string; vouchers: Array<{ serial: number; state: string; qr?: string; qrSvg?: string }> };
    expect(wallet.walletId).toBe('W-1');
    expect(wallet.vouchers.map((v) => [v.serial, v.state])).toEqual([[1000001, 'booked']]);
    expect(await store.vouchers.issueToWallet(1000002, 'CC-1', 'W-2', 1_800_000_000)).toBe(true);
    const notMine = await request('POST /api/wallet/book', logins.get('patient'), { body: { serial: 1000002, slotId: 5 } });
    expect(notMine.json()).toMatchObject({ error: { code: 'VOUCHER_NOT_BOOKABLE', number: 6303 } });
    expect(await store.vouchers.voucher(1000002)).toMatchObject({ state: 'issued', walletId: 'W-2' });
    const audit = (await request('GET /api/audit', logins.get('auditor'))).json().data as Array<{ action: string }>;
    for (const action of ['voucher.batch', 'voucher.send', 'voucher.issue', 'voucher.slot', 'voucher.book', 'voucher.void', 'voucher.void-expired']) expect(audit.map((a) => a.action), action).toContain(action);
  });

  it('limits failed logins per account (5 in 15 minutes) and per address (20), and says when to come back', async () => {
    for (let i = 0; i < 5; i++) expect((await login('issuer', 'wrong password here', '10.9.0.1')).body).toMatchObject({ error: { code: 'login-failed', number: 6506 } });
    const limited = await login('issuer', PASSWORD, '10.9.0.2');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ error: { code: 'rate-limited', number: 6504 } });
    expect(limited.headers['retry-after']).toBe('900');
    for (let i = 0; i < 20; i++) await login(`nobody-${i}`, 'wrong password here', '10.9.0.3');
    expect((await login('auditor', PASSWORD, '10.9.0.3')).status).toBe(429);
    expect((await login('auditor', PASSWORD, '10.9.0.4')).status).toBe(200);
    clock += 15 * 60_000 + 1;
    expect((await login('issuer', PASSWORD, '10.9.0.2')).status).toBe(200);
  });

  it('ends sessions after 30 idle minutes and on logout (session-expired, 6505)', async () => {
    const fresh = (await login('auditor', PASSWORD)).login!;
    expect((await request('GET /api/session', fresh)).statusCode).toBe(200);
    clock += 31 * 60_000;
    expect((await request('GET /api/audit', fresh)).json()).toMatchObject({ error: { code: 'session-expired', number: 6505 } });
    const again = (await login('auditor', PASSWORD)).login!;
    expect((await request('POST /api/session/logout', again)).statusCode).toBe(200);
    expect((await request('GET /api/session', again)).json()).toMatchObject({ error: { code: 'session-expired' } });
  });

  it('keeps each user\'s language', async () => {
    const clinic = (await login('clinic-a', PASSWORD)).login!;
    expect((await request('POST /api/session/locale', clinic, { body: { locale: 'zh' } })).json()).toMatchObject({ data: { locale: 'zh' } });
    expect((await login('clinic-a', PASSWORD)).body).toMatchObject({ data: { locale: 'zh', clinics: ['CL-A'] } });
  });

  it('a one-time login works once (the demo prints one), then answers login-token (6510)', async () => {
    const token = await issueLoginToken(store, 'boss', clock);
    const first = await app.inject({ method: 'GET', url: `/api/session/once?token=${token}` });
    expect(first.statusCode).toBe(303);
    expect(first.headers.location).toBe('/');
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    expect((await app.inject({ method: 'GET', url: '/api/session', headers: { cookie } })).json()).toMatchObject({ data: { username: 'boss', role: 'authority' } });
    expect((await app.inject({ method: 'GET', url: `/api/session/once?token=${token}` })).json()).toMatchObject({ error: { code: 'login-token', number: 6510 } });
  });
});
