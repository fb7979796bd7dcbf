/**
 * The administrator's registry writes over the HTTP API, against a real server
 * on loopback: clinics and terminals added, updated and retired with the admin
 * bearer token, seen through the GET endpoints and the CLI's listing of the
 * same store; refused without a configured token (403), with a missing or
 * wrong one (401), with a bad body (400 naming the field, 413 when too big),
 * and the server answering on after each.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { MAX_ADMIN_BODY_BYTES, startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';

const TOKEN = 'admin-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'tally-registry-admin-'));
const storePath = join(dir, 'server.db');
let store: ServerStore;
let api: HttpApi;
let noToken: HttpApi;
let clock = 1_000;

beforeAll(async () => {
  store = await createServerStore({ kind: 'sqlite', path: storePath });
  const pricing = { default: { pricePerUse: 10_000, investorShare: 0.7 } };
  api = await startHttpApi({ store, pricing, adminToken: TOKEN, clock: () => clock });
  noToken = await startHttpApi({ store, pricing });
});
afterAll(async () => {
  await api.close();
  await noToken.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  body: { status: string; data?: Record<string, unknown>; error?: { code: string; message: string; field?: string } };
}

async function write(path: string, body: unknown, options: { auth?: string | null; base?: string; raw?: string } = {}): Promise<Answer> {
  const auth = options.auth === undefined ? `Bearer ${TOKEN}` : options.auth;
  const res = await fetch(`${options.base ?? api.url}${path}`, {
    method: 'POST',
    body: options.raw ?? JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(auth !== null ? { authorization: auth } : {}) },
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
}

async function get(path: string): Promise<unknown> {
  const res = await fetch(`${api.url}${path}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: unknown }).data;
}

async function cliJson(...args: string[]): Promise<unknown> {
  const out: string[] = [];
  const code = await main(['server', 'registry', ...args, '--store', storePath, '--json'], { out: (l) => out.push(l), err: () => undefined });
  expect(code).toBe(0);
  return JSON.parse(out.join('\n'));
}

describe('registry writes over HTTP', () => {
  it('adds and updates a clinic; the GET endpoint and the CLI list it, its first addedAt kept', async () => {
    clock = 1_000;
    const added = await write('/api/registry/clinics', { clinicCode: 'CL-9', name: 'West Eye', pricePerUse: 15_000, investorShare: 0.6 });
    expect(added.status).toBe(201);
    expect(added.body.data).toEqual({ created: true, clinic: { clinicCode: 'CL-9', name: 'West Eye', pricePerUse: 15_000, investorShare: 0.6, addedAt: 1_000 } });
    expect(await get('/api/registry/clinics')).toEqual([{ clinicCode: 'CL-9', name: 'West Eye', pricePerUse: 15_000, investorShare: 0.6, addedAt: 1_000 }]);

    clock = 2_000;
    // an update replaces the row: the share left out is cleared (the server's default applies)
    const updated = await write('/api/registry/clinics', { clinicCode: 'CL-9', name: 'West Eye Centre', pricePerUse: 0 });
    expect(updated.status).toBe(200);
    expect(updated.body.data).toEqual({ created: false, clinic: { clinicCode: 'CL-9', name: 'West Eye Centre', pricePerUse: 0, addedAt: 1_000 } });
    expect(await get('/api/registry/clinics')).toEqual([{ clinicCode: 'CL-9', name: 'West Eye Centre', pricePerUse: 0, addedAt: 1_000 }]);
    expect(await cliJson('clinics')).toEqual([{ clinicCode: 'CL-9', name: 'West Eye Centre', pricePerUse: 0, addedAt: 1_000 }]);
  });

  it('registers, moves and retires a terminal; the GET endpoint and the CLI show each state', async () => {
    clock = 3_000;
    const added = await write('/api/registry/terminals', { terminalId: 'T-900', clinicCode: 'CL-9', note: 'OCT room 1' });
    expect(added.status).toBe(201);
    expect(added.body.data).toEqual({ created: true, terminal: { terminalId: 'T-900', clinicCode: 'CL-9', status: 'expected', note: 'OCT room 1', addedAt: 3_000 } });
    expect(await get('/api/registry/terminals')).toEqual([{ terminalId: 'T-900', state: 'expected', clinicCode: 'CL-9', note: 'OCT room 1' }]);

    clock = 4_000;
    const moved = await write('/api/registry/terminals', { terminalId: 'T-900', clinicCode: 'CL-10', status: 'expected' });
    expect(moved.status).toBe(200);
    expect(moved.body.data).toEqual({ created: false, terminal: { terminalId: 'T-900', clinicCode: 'CL-10', status: 'expected', addedAt: 3_000 } });

    // retired: stamped with the server's time, which a second retirement keeps
    clock = 5_000;
    const retired = await write('/api/registry/terminals/retire', { terminalId: 'T-900', note: 'returned to the investor' });
    expect(retired.status).toBe(200);
    const retiredRow = { terminalId: 'T-900', clinicCode: 'CL-10', status: 'retired', note: 'returned to the investor', addedAt: 3_000, retiredAt: 5_000 };
    expect(retired.body.data).toEqual({ terminal: retiredRow });
    clock = 6_000;
    expect((await write('/api/registry/terminals/retire', { terminalId: 'T-900', note: 'returned to the investor' })).body.data).toEqual({ terminal: retiredRow });
    const listed = [{ terminalId: 'T-900', state: 'retired', clinicCode: 'CL-10', note: 'returned to the investor', retiredAt: 5_000 }];
    expect(await get('/api/registry/terminals')).toEqual(listed);
    expect(await cliJson('terminals')).toEqual(listed);
    expect(await store.registry.registeredTerminal('T-900')).toEqual(retiredRow);

    // retired straight from the terminals endpoint too; back in service there, the time is cleared
    expect((await write('/api/registry/terminals', { terminalId: 'T-901', clinicCode: 'CL-9', status: 'retired' })).body.data).toMatchObject({ created: true, terminal: { status: 'retired', retiredAt: 6_000 } });
    clock = 7_000;
    expect((await write('/api/registry/terminals', { terminalId: 'T-901', clinicCode: 'CL-9' })).body.data).toEqual({ created: false, terminal: { terminalId: 'T-901', clinicCode: 'CL-9', status: 'expected', addedAt: 6_000 } });
    expect((await store.registry.registeredTerminal('T-901'))?.retiredAt).toBeUndefined();
    expect((await write('/api/registry/terminals', { terminalId: 'T-901', clinicCode: 'CL-9', status: 'retired' })).body.data).toMatchObject({ created: false, terminal: { retiredAt: 7_000 } });

    const unknown = await write('/api/registry/terminals/retire', { terminalId: 'T-NOBODY' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'not-registered', field: 'terminalId' });
    expect(await store.registry.registeredTerminal('T-NOBODY')).toBeUndefined();
  });

  it('refuses every write with 403 when the server has no admin token, and writes nothing', async () => {
    for (const [path, body] of [
      ['/api/registry/clinics', { clinicCode: 'CL-403', name: 'Nope' }],
      ['/api/registry/terminals', { terminalId: 'T-403', clinicCode: 'CL-403' }],
      ['/api/registry/terminals/retire', { terminalId: 'T-900' }],
    ] as const) {
      const res = await write(path, body, { base: noToken.url });
      expect(res.status).toBe(403);
      expect(res.body.error?.code).toBe('writes-disabled');
      expect(res.body.error?.message).toContain('admin token');
    }
    expect((await store.registry.clinics()).map((c) => c.clinicCode)).toEqual(['CL-9']);
    expect(await store.registry.registeredTerminal('T-403')).toBeUndefined();
    expect((await store.registry.registeredTerminal('T-900'))?.note).toBe('returned to the investor');
  });

  it('refuses a missing, wrong or malformed Authorization with 401, and writes nothing', async () => {
    const body = { clinicCode: 'CL-401', name: 'Nope' };
    for (const auth of [null, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer ', `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, TOKEN, `Bearer ${TOKEN} extra`]) {
      const res = await write('/api/registry/clinics', body, { auth });
      expect(res.status, String(auth)).toBe(401);
      expect(res.body.error?.code).toBe('unauthorized');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
    // the token is checked before the body: a bad body with no token is still 401
    expect((await write('/api/registry/clinics', undefined, { auth: null, raw: '{not json' })).status).toBe(401);
    expect((await store.registry.clinics()).map((c) => c.clinicCode)).toEqual(['CL-9']);
  });

  it('answers 400 naming the field for each bad body, and writes nothing', async () => {
    const clinic = { clinicCode: 'CL-400', name: 'Bad' };
    const terminal = { terminalId: 'T-400', clinicCode: 'CL-400' };
    const cases: Array<[string, unknown, string]> = [
      ['/api/registry/clinics', [clinic], ''],
      ['/api/registry/clinics', 'CL-400', ''],
      ['/api/registry/clinics', null, ''],
      ['/api/registry/clinics', { name: 'Bad' }, 'clinicCode'],
      ['/api/registry/clinics', { ...clinic, clinicCode: '' }, 'clinicCode'],
      ['/api/registry/clinics', { ...clinic, clinicCode: 'C'.repeat(17) }, 'clinicCode'],
      ['/api/registry/clinics', { ...clinic, clinicCode: '眼科诊所一二' }, 'clinicCode'], // 6 characters, 18 UTF-8 bytes
      ['/api/registry/clinics', { ...clinic, clinicCode: 'CL 1' }, 'clinicCode'],
      ['/api/registry/clinics', { ...clinic, clinicCode: 7 }, 'clinicCode'],
      ['/api/registry/clinics', { clinicCode: 'CL-400' }, 'name'],
      ['/api/registry/clinics', { ...clinic, name: '' }, 'name'],
      ['/api/registry/clinics', { ...clinic, name: '   ' }, 'name'],
      ['/api/registry/clinics', { ...clinic, name: 'Eye\nClinic' }, 'name'],
      ['/api/registry/clinics', { ...clinic, name: 'x'.repeat(101) }, 'name'],
      ['/api/registry/clinics', { ...clinic, pricePerUse: -1 }, 'pricePerUse'],
      ['/api/registry/clinics', { ...clinic, pricePerUse: 1.5 }, 'pricePerUse'],
      ['/api/registry/clinics', { ...clinic, pricePerUse: '100' }, 'pricePerUse'],
      ['/api/registry/clinics', { ...clinic, pricePerUse: 1e300 }, 'pricePerUse'],
      ['/api/registry/clinics', { ...clinic, pricePerUse: null }, 'pricePerUse'],
      ['/api/registry/clinics', { ...clinic, investorShare: 1.01 }, 'investorShare'],
      ['/api/registry/clinics', { ...clinic, investorShare: -0.1 }, 'investorShare'],
      ['/api/registry/clinics', { ...clinic, investorShare: '0.5' }, 'investorShare'],
      ['/api/registry/clinics', { ...clinic, share: 0.5 }, 'share'],
      ['/api/registry/terminals', { clinicCode: 'CL-400' }, 'terminalId'],
      ['/api/registry/terminals', { ...terminal, terminalId: 'T/400' }, 'terminalId'],
      ['/api/registry/terminals', { ...terminal, terminalId: 'T'.repeat(33) }, 'terminalId'],
      ['/api/registry/terminals', { terminalId: 'T-400' }, 'clinicCode'],
      ['/api/registry/terminals', { ...terminal, status: 'decommissioned' }, 'status'],
      ['/api/registry/terminals', { ...terminal, status: 'active' }, 'status'],
      ['/api/registry/terminals', { ...terminal, note: 'n'.repeat(501) }, 'note'],
      ['/api/registry/terminals', { ...terminal, note: 42 }, 'note'],
      ['/api/registry/terminals', { ...terminal, retired: true }, 'retired'],
      ['/api/registry/terminals/retire', {}, 'terminalId'],
      ['/api/registry/terminals/retire', { terminalId: 'T-900', note: '' }, 'note'],
      ['/api/registry/terminals/retire', { terminalId: 'T-900', clinicCode: 'CL-9' }, 'clinicCode'],
    ];
    for (const [path, body, field] of cases) {
      const res = await write(path, body);
      const what = `${path} ${JSON.stringify(body)}`;
      expect(res.status, what).toBe(400);
      expect(res.body.error?.code, what).toBe('invalid');
      expect(res.body.error?.field, what).toBe(field);
      if (field) expect(res.body.error?.message.startsWith(`${field}: `), what).toBe(true);
    }
    const malformed = await write('/api/registry/clinics', undefined, { raw: '{"clinicCode": "CL-400", ' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error?.code).toBe('malformed');
    expect((await write('/api/registry/clinics', undefined, { raw: '' })).body.error?.code).toBe('malformed');

    expect((await store.registry.clinics()).map((c) => c.clinicCode)).toEqual(['CL-9']);
    expect(await store.registry.registeredTerminal('T-400')).toBeUndefined();
    expect((await store.registry.registeredTerminal('T-900'))?.note).toBe('returned to the investor');
  });

  it('refuses a body over the limit with 413 and keeps serving', async () => {
    const big = { clinicCode: 'CL-413', name: 'Big', pad: 'x'.repeat(MAX_ADMIN_BODY_BYTES) };
    const res = await write('/api/registry/clinics', big);
    expect(res.status).toBe(413);
    expect(res.body.error?.code).toBe('oversized');

    // sent in chunks with no Content-Length: cut off as it arrives
    const chunked = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(api.url).port), '127.0.0.1');
      let answer = '';
      socket.on('data', (d) => (answer += d.toString('latin1')));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.write(`POST /api/registry/clinics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = 'y'.repeat(1024);
      for (let i = 0; i < 8; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      socket.end('0\r\n\r\n');
    });
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    expect(await store.registry.clinics()).toHaveLength(1);
    expect(await get('/api/health')).toMatchObject({ store: 'sqlite' });
  });

  it('survives junk on the wire and answers on', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(api.url).port), '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      socket.end('POST /api/registry/clinics HTTP/1.1\r\nContent-Length: nope\r\n\r\n{}');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(await get('/api/health')).toMatchObject({ store: 'sqlite' });
  });

  it('the CLI writes through the same checks and store methods: retire-terminal, and a bad price refused naming its option', async () => {
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['server', 'registry', ...args, '--store', storePath], { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    expect(await run('add-terminal', 'T-CLI', '--clinic', 'CL-9')).toMatchObject({ code: 0, out: 'terminal T-CLI registered for clinic CL-9' });
    const before = Date.now();
    expect(await run('retire-terminal', 'T-CLI', '--note', 'broken screen')).toMatchObject({ code: 0, out: 'terminal T-CLI retired (clinic CL-9)' });
    const retiredAt = (await store.registry.registeredTerminal('T-CLI'))?.retiredAt ?? 0;
    expect(retiredAt).toBeGreaterThanOrEqual(before);
    expect(retiredAt).toBeLessThanOrEqual(Date.now());
    expect(await get('/api/registry/terminals')).toContainEqual({ terminalId: 'T-CLI', state: 'retired', clinicCode: 'CL-9', note: 'broken screen', retiredAt });
    // back in service from the CLI: the time is cleared
    expect(await run('add-terminal', 'T-CLI', '--clinic', 'CL-9')).toMatchObject({ code: 0, out: 'terminal T-CLI updated for clinic CL-9' });
    expect(await store.registry.registeredTerminal('T-CLI')).not.toHaveProperty('retiredAt');
    expect((await run('retire-terminal', 'T-NOBODY')).code).toBe(2);
    const negative = await run('add-clinic', 'CL-NEG', '--name', 'Neg', '--price=-5');
    expect(negative.code).not.toBe(0);
    expect(negative.err).toContain('--price: expected an integer');
    expect((await run('add-terminal', 'T/CLI', '--clinic', 'CL-9')).err).toContain('ID: expected a string matching');
    expect((await store.registry.clinics()).map((c) => c.clinicCode)).toEqual(['CL-9']);
  });

  it('will not start with a token short enough to guess', async () => {
    await expect(startHttpApi({ store, pricing: { default: { pricePerUse: 1, investorShare: 0.5 } }, adminToken: 'short' })).rejects.toThrow(/at least 16 characters/);
    await expect(startHttpApi({ store, pricing: { default: { pricePerUse: 1, investorShare: 0.5 } }, adminToken: 'has a space in it 0123' })).rejects.toThrow(/without spaces/);
  });
});
