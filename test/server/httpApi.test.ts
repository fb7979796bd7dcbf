/** The fastify HTTP layer through inject(): the OpenAPI document covers every route with its schemas, bad input is 400, a server fault is 500 with a code and no stack, body limits hold. */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { buildHttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-http-inject-'));
let store: ServerStore;
let app: Awaited<ReturnType<typeof buildHttpApi>>;
const faults: Array<Record<string, unknown>> = [];
const TOKEN = 'inject-token-0123456789abcdef';

beforeAll(async () => {
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  const logger = { trace() {}, debug() {}, info() {}, warn() {}, error: (obj: Record<string, unknown>) => faults.push(obj), child: () => logger };
  // a route module of its own, as EST enrolment is: it answers through the same layer and shows in the OpenAPI document
  const echo = async (instance: FastifyInstance): Promise<void> => {
    instance.post('/api/echo', { schema: { summary: 'echo', body: { type: 'string' }, response: { 200: { type: 'object', properties: { length: { type: 'integer' } } } } } }, async (request) => ({ length: String(request.body).length }));
  };
  app = await buildHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } }, adminToken: TOKEN, clock: () => 5, logger, plugins: [echo] });
});
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTP layer (fastify)', () => {
  it('serves an OpenAPI document naming every route with its input and answer schemas', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }>; requestBody?: unknown; responses: Record<string, unknown> }>> };
    expect(doc.openapi).toBe('3.0.3');
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(routes).toEqual(
      [
        'GET /api/alerts', 'GET /api/batches', 'GET /api/health', 'GET /api/income', 'GET /api/rejections', 'GET /api/terminals', 'GET /api/uses',
        'GET /api/registry/batches', 'GET /api/registry/cards', 'GET /api/registry/clinics', 'GET /api/registry/issuance', 'GET /api/registry/stations', 'GET /api/registry/terminals',
        'GET /api/registry/agents', 'GET /api/export/uses.csv', 'GET /api/uses/series', 'GET /api/users', 'GET /api/audit', 'GET /api/session', 'GET /api/session/once',
        'GET /api/statement', 'GET /api/statement.pdf', 'GET /api/registry/denylist', 'POST /api/registry/cards/revoke',
        'POST /api/echo', 'POST /api/registry/clinics', 'POST /api/registry/import', 'POST /api/registry/terminals', 'POST /api/registry/terminals/retire',
        'POST /api/registry/agents', 'POST /api/alerts/ack', 'POST /api/session', 'POST /api/session/logout', 'POST /api/session/locale', 'POST /api/users/change', 'POST /api/users',
        'GET /api/vouchers', 'GET /api/vouchers/batches', 'GET /api/vouchers/centre', 'GET /api/vouchers/slots', 'GET /api/vouchers/stats', 'GET /api/wallet', 'POST /api/wallet/book',
        'POST /api/vouchers/batches', 'POST /api/vouchers/book', 'POST /api/vouchers/issue', 'POST /api/vouchers/send', 'POST /api/vouchers/slots', 'POST /api/vouchers/void', 'POST /api/vouchers/void-expired',
      ].sort(),
    );
    for (const [path, ops] of Object.entries(doc.paths)) if (path !== '/api/echo') for (const op of Object.values(ops)) {
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '500']));
      expect(Object.keys(op.responses).some((status) => status === '200' || status === '303'), path).toBe(true);
    }
    expect(doc.paths['/api/uses']?.get?.parameters?.map((p) => p.name)).toEqual(['group', 'from', 'to', 'limit', 'after']);
    expect(doc.paths['/api/export/uses.csv']?.get?.parameters?.map((p) => p.name)).toEqual(['from', 'to']);
    expect(doc.paths['/api/registry/clinics']?.post?.requestBody).toBeDefined();
    const echoed = await app.inject({ method: 'POST', url: '/api/echo', headers: { 'content-type': 'application/pkcs10' }, payload: 'MIIB' });
    expect(echoed.json()).toEqual({ length: 4 });
  });

  it('answers bad input 400 with the field, an unknown route 404, and a server fault 500 with a code and a ref, never the stack', async () => {
    const bad = await app.inject({ method: 'GET', url: '/api/uses?group=week' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ status: 'error', error: { code: 'invalid' } });
    expect((await app.inject({ method: 'GET', url: '/api/registry/cards?kind=pink' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/uses?nonsense=1' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/nothing' })).json()).toMatchObject({ error: { code: 'not-found' } });

    const original = store.alerts.bind(store);
    store.alerts = () => Promise.reject(new Error('disk on fire at /var/lib/secret.db'));
    try {
      const fault = await app.inject({ method: 'GET', url: '/api/alerts' });
      expect(fault.statusCode).toBe(500);
      const body = fault.json() as { error: { code: string; message: string } };
      expect(body.error.code).toBe('internal');
      expect(fault.body).not.toContain('disk on fire');
      expect(fault.body).not.toMatch(/at .*\.ts:\d+/);
      const ref = /ref ([0-9a-f-]{36})/.exec(body.error.message)?.[1];
      expect(faults).toEqual([expect.objectContaining({ event: 'http.fault', ref, err: 'disk on fire at /var/lib/secret.db' })]);
    } finally {
      store.alerts = original;
    }
    expect((await app.inject({ method: 'GET', url: '/api/alerts' })).statusCode).toBe(200);
  });

  it('keeps the body limits and the token check before the body, and writes with the token', async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const big = await app.inject({ method: 'POST', url: '/api/registry/clinics', headers: auth, payload: JSON.stringify({ clinicCode: 'CL-1', name: 'x'.repeat(5000) }) });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ error: { code: 'oversized' } });
    const noToken = await app.inject({ method: 'POST', url: '/api/registry/clinics', headers: { 'content-type': 'application/json' }, payload: '{not json' });
    expect(noToken.statusCode).toBe(401);
    const invalid = await app.inject({ method: 'POST', url: '/api/registry/clinics', headers: auth, payload: JSON.stringify({ clinicCode: 'CL-1', name: 'A', investorShare: 2 }) });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ error: { code: 'invalid', field: 'investorShare' } });
    const added = await app.inject({ method: 'POST', url: '/api/registry/clinics', headers: auth, payload: JSON.stringify({ clinicCode: 'CL-1', name: 'East Eye', pricePerUse: 9_000 }) });
    expect(added.statusCode).toBe(201);
    expect(added.json()).toEqual({ status: 'ok', data: { created: true, clinic: { clinicCode: 'CL-1', name: 'East Eye', pricePerUse: 9_000, addedAt: 5 } } });
    expect((await app.inject({ method: 'GET', url: '/api/registry/clinics' })).json()).toEqual({ status: 'ok', data: [{ clinicCode: 'CL-1', name: 'East Eye', pricePerUse: 9_000, addedAt: 5 }] });
  });

  it('streams the uses CSV over a socket: the first rows arrive before the last page is read', async () => {
    const PAGES = 40;
    let pagesRead = 0;
    const original = store.usesPerDayPage.bind(store);
    // a store that answers synchronously, as better-sqlite3 does, with 40 pages of 5,000 rows
    store.usesPerDayPage = async () => {
      const page = pagesRead++;
      const rows = Array.from({ length: 5000 }, (_, i) => ({ terminalId: `T-${page}`, clinicCode: 'CL-1', day: `2026-01-${String((i % 28) + 1).padStart(2, '0')}`, uses: i }));
      return { rows, ...(pagesRead < PAGES ? { next: `after-${pagesRead}` } : {}) };
    };
    try {
      const address = await app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.server.address() as AddressInfo;
      expect(address).toContain(String(port));
      const seen = await new Promise<{ pagesAtFirstByte: number; lines: number }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/api/export/uses.csv', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          let pagesAtFirstByte = -1;
          let lines = 0;
          res.on('data', (chunk: Buffer) => {
            if (pagesAtFirstByte < 0) pagesAtFirstByte = pagesRead;
            for (const byte of chunk) if (byte === 10) lines++;
          });
          res.on('end', () => resolve({ pagesAtFirstByte, lines }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      expect(seen.lines).toBe(1 + PAGES * 5000);
      // buffered, the first byte came only after all 40 pages were read (the dashboard bench's 37 s CSV)
      expect(seen.pagesAtFirstByte).toBeGreaterThan(0);
      expect(seen.pagesAtFirstByte).toBeLessThan(PAGES / 2);
    } finally {
      store.usesPerDayPage = original;
    }
  });
});
