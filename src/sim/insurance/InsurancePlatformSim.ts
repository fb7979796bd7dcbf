/**
 * The medical-insurance settlement platform, simulated as a real service (seeds 000 and 001): its own HTTP API on
 * loopback and its own SQLite database. Insured people and their e-credentials, coverage rules per item (covered,
 * co-payment percent, annual cap), certificate queries, settlements and reversals under idempotency keys, and a
 * statement download. It can be made slow, down or answering errors through its admin API, for tests.
 *
 * JSON over HTTP; money in integer fen. Answers are {status:'ok', data} or {status:'error', error:{code, message}}.
 *   POST /admin/insured        {personId, name, credential}             an insured person and their e-credential
 *   POST /admin/rules          {item, covered, copayPercent, annualCapFen}
 *   POST /admin/faults         {mode: normal|slow|down|error, delayMs?}  slow: every answer waits delayMs AFTER the
 *                              work is committed (a client that times out has been charged: the idempotency case)
 *   GET  /admin/counters       settlements, reversals, requests
 *   POST /v1/certificates/query {credential, item, amountFen} -> the certificate and the split it would pay
 *   POST /v1/settlements        Idempotency-Key header; {certificateId, item, amountFen, orderRef} -> the settlement
 *   GET  /v1/settlements/by-key/:key                                     the settlement made under that key, or 404
 *   POST /v1/settlements/:id/reversal  Idempotency-Key header -> the reversal (the cap is given back)
 *   GET  /v1/statements?day=YYYY-MM-DD  settlements and reversals of that UTC day
 */
import { TallyError } from '../../errors.js';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { openDatabase, type Migration, type SqliteDatabase } from '../../util/openDatabase.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { systemScheduler, type Scheduler } from '../../util/scheduler.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'insurance platform: insured people, rules, certificates, settlements, reversals',
    up: (db) => {
      db.exec(`CREATE TABLE insured (person_id TEXT PRIMARY KEY, name TEXT NOT NULL, credential TEXT NOT NULL UNIQUE);
        CREATE TABLE rules (item TEXT PRIMARY KEY, covered INTEGER NOT NULL, copay_percent INTEGER NOT NULL, annual_cap_fen INTEGER NOT NULL);
        CREATE TABLE certificates (certificate_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
        CREATE TABLE settlements (settlement_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, request TEXT NOT NULL,
          certificate_id TEXT NOT NULL, person_id TEXT NOT NULL, item TEXT NOT NULL, order_ref TEXT NOT NULL, year INTEGER NOT NULL,
          amount_fen INTEGER NOT NULL, insurer_fen INTEGER NOT NULL, patient_fen INTEGER NOT NULL, at INTEGER NOT NULL, reversed_at INTEGER);
        CREATE TABLE reversals (reversal_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, settlement_id TEXT NOT NULL UNIQUE, at INTEGER NOT NULL);`);
    },
  },
];

export type FaultMode = 'normal' | 'slow' | 'down' | 'error';

export interface InsurancePlatformSimOptions {
  readonly dbPath: string;
  readonly port?: number;
  readonly clock?: Clock;
  readonly scheduler?: Scheduler;
  /** Told of every settlement and reversal once it is committed (before the answer, which slow mode delays): `tally sim insurance` prints it */
  readonly onCommitted?: (event: { readonly kind: 'settlement' | 'reversal'; readonly id: string; readonly key: string; readonly replayed: boolean }) => void;
  /** How long a certificate lasts, ms */
  readonly certificateTtlMs?: number;
}

export interface RunningInsurancePlatform {
  readonly url: string;
  readonly port: number;
  setFault(mode: FaultMode, delayMs?: number): void;
  close(): Promise<void>;
}

/** The simulated platform's refusal: answered with its status and `answerCode` (the platform's own words) */
class PlatformError extends TallyError {
  constructor(
    readonly status: number,
    readonly answerCode: string,
    message: string,
  ) {
    super(status === 404 && answerCode === 'not-insured' ? 'INSURANCE_NOT_INSURED' : answerCode === 'not-covered' ? 'INSURANCE_NOT_COVERED' : answerCode === 'idempotency-mismatch' ? 'INSURANCE_IDEMPOTENCY' : status >= 500 ? 'INSURANCE_PLATFORM_ERROR' : 'BAD_INPUT', message);
    this.message = message;
  }
}

interface SettlementRow {
  settlement_id: string;
  idempotency_key: string;
  request: string;
  certificate_id: string;
  person_id: string;
  item: string;
  order_ref: string;
  amount_fen: number;
  insurer_fen: number;
  patient_fen: number;
  at: number;
  reversed_at: number | null;
}

const settlementAnswer = (r: SettlementRow) => ({
  settlementId: r.settlement_id,
  idempotencyKey: r.idempotency_key,
  certificateId: r.certificate_id,
  item: r.item,
  orderRef: r.order_ref,
  amountFen: r.amount_fen,
  insurerFen: r.insurer_fen,
  patientFen: r.patient_fen,
  at: r.at,
  status: r.reversed_at === null ? 'settled' : 'reversed',
  ...(r.reversed_at !== null ? { reversedAt: r.reversed_at } : {}),
});

const id = (prefix: string): string => `${prefix}-${randomBytes(8).toString('hex')}`;
const utcYear = (ms: number): number => new Date(ms).getUTCFullYear();

function str(o: Record<string, unknown>, key: string, max = 64): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new PlatformError(400, 'invalid', `${key}: a string of 1..${max} characters`);
  return v;
}

function int(o: Record<string, unknown>, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new PlatformError(400, 'invalid', `${key}: a whole number in ${min}..${max}`);
  return v;
}

/** The platform's business rules over its database: no HTTP here */
export class InsurancePlatformBook {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly clock: Clock,
    private readonly certificateTtlMs: number,
  ) {}

  addInsured(b: Record<string, unknown>): unknown {
    const person = { personId: str(b, 'personId'), name: str(b, 'name'), credential: str(b, 'credential', 128) };
    this.db.prepare('INSERT INTO insured (person_id, name, credential) VALUES (?, ?, ?) ON CONFLICT (person_id) DO UPDATE SET name = excluded.name, credential = excluded.credential').run(person.personId, person.name, person.credential);
    return person;
  }

  setRule(b: Record<string, unknown>): unknown {
    if (typeof b.covered !== 'boolean') throw new PlatformError(400, 'invalid', 'covered: true or false');
    const rule = { item: str(b, 'item', 32), covered: b.covered, copayPercent: int(b, 'copayPercent', 0, 100), annualCapFen: int(b, 'annualCapFen') };
    this.db.prepare('INSERT INTO rules (item, covered, copay_percent, annual_cap_fen) VALUES (?, ?, ?, ?) ON CONFLICT (item) DO UPDATE SET covered = excluded.covered, copay_percent = excluded.copay_percent, annual_cap_fen = excluded.annual_cap_fen').run(rule.item, rule.covered ? 1 : 0, rule.copayPercent, rule.annualCapFen);
    return rule;
  }

  /** What the insurance pays of amountFen for this person and item this year, and what the patient pays */
  private split(personId: string, item: string, amountFen: number): { insurerFen: number; patientFen: number; capLeftFen: number } {
    const rule = this.db.prepare('SELECT covered, copay_percent, annual_cap_fen FROM rules WHERE item = ?').get(item) as { covered: number; copay_percent: number; annual_cap_fen: number } | undefined;
    if (!rule || rule.covered === 0) throw new PlatformError(422, 'not-covered', `item ${item} is not covered`);
    const used = (this.db.prepare('SELECT COALESCE(SUM(insurer_fen), 0) AS used FROM settlements WHERE person_id = ? AND year = ? AND reversed_at IS NULL').get(personId, utcYear(this.clock.now())) as { used: number }).used;
    const capLeftFen = Math.max(0, rule.annual_cap_fen - used);
    // the patient's co-payment is rounded up to the fen: the fund never pays a fraction more than its share
    const share = amountFen - Math.ceil((amountFen * rule.copay_percent) / 100);
    const insurerFen = Math.min(share, capLeftFen);
    return { insurerFen, patientFen: amountFen - insurerFen, capLeftFen };
  }

  queryCertificate(b: Record<string, unknown>): unknown {
    const credential = str(b, 'credential', 128);
    const item = str(b, 'item', 32);
    const amountFen = int(b, 'amountFen', 1);
    const person = this.db.prepare('SELECT person_id, name FROM insured WHERE credential = ?').get(credential) as { person_id: string; name: string } | undefined;
    if (!person) throw new PlatformError(404, 'not-insured', 'no insured person holds this e-credential');
    const split = this.split(person.person_id, item, amountFen);
    const now = this.clock.now();
    const certificateId = id('CERT');
    this.db.prepare('INSERT INTO certificates (certificate_id, person_id, issued_at, expires_at) VALUES (?, ?, ?, ?)').run(certificateId, person.person_id, now, now + this.certificateTtlMs);
    // the name masked as the platforms show it: the family name only
    return { certificateId, maskedName: `${[...person.name][0] ?? ''}*`, item, amountFen, ...split, expiresAt: now + this.certificateTtlMs };
  }

  settle(key: string, b: Record<string, unknown>): { replayed: boolean; settlement: unknown } {
    const request = { certificateId: str(b, 'certificateId'), item: str(b, 'item', 32), amountFen: int(b, 'amountFen', 1), orderRef: str(b, 'orderRef', 128) };
    const canonical = JSON.stringify(request);
    return this.db.transaction(() => {
      const existing = this.db.prepare('SELECT * FROM settlements WHERE idempotency_key = ?').get(key) as SettlementRow | undefined;
      if (existing) {
        if (existing.request !== canonical) throw new PlatformError(422, 'idempotency-mismatch', 'this idempotency key was used for another request');
        return { replayed: true, settlement: settlementAnswer(existing) };
      }
      const certificate = this.db.prepare('SELECT person_id, expires_at FROM certificates WHERE certificate_id = ?').get(request.certificateId) as { person_id: string; expires_at: number } | undefined;
      if (!certificate) throw new PlatformError(404, 'unknown-certificate', 'no such certificate');
      const now = this.clock.now();
      if (certificate.expires_at <= now) throw new PlatformError(422, 'certificate-expired', 'the certificate has expired: query it again');
      const split = this.split(certificate.person_id, request.item, request.amountFen);
      const settlementId = id('STL');
      this.db
        .prepare('INSERT INTO settlements (settlement_id, idempotency_key, request, certificate_id, person_id, item, order_ref, year, amount_fen, insurer_fen, patient_fen, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(settlementId, key, canonical, request.certificateId, certificate.person_id, request.item, request.orderRef, utcYear(now), request.amountFen, split.insurerFen, split.patientFen, now);
      return { replayed: false, settlement: settlementAnswer(this.db.prepare('SELECT * FROM settlements WHERE settlement_id = ?').get(settlementId) as SettlementRow) };
    }).immediate();
  }

  byKey(key: string): unknown {
    const row = this.db.prepare('SELECT * FROM settlements WHERE idempotency_key = ?').get(key) as SettlementRow | undefined;
    if (!row) throw new PlatformError(404, 'unknown-settlement', 'no settlement under this key');
    return settlementAnswer(row);
  }

  reverse(key: string, settlementId: string): unknown {
    return this.db.transaction(() => {
      const existing = this.db.prepare('SELECT * FROM reversals WHERE idempotency_key = ?').get(key) as { reversal_id: string; settlement_id: string; at: number } | undefined;
      if (existing) {
        if (existing.settlement_id !== settlementId) throw new PlatformError(422, 'idempotency-mismatch', 'this idempotency key was used for another reversal');
        return { reversalId: existing.reversal_id, settlementId, at: existing.at };
      }
      const settlement = this.db.prepare('SELECT reversed_at FROM settlements WHERE settlement_id = ?').get(settlementId) as { reversed_at: number | null } | undefined;
      if (!settlement) throw new PlatformError(404, 'unknown-settlement', 'no such settlement');
      if (settlement.reversed_at !== null) throw new PlatformError(409, 'already-reversed', 'this settlement was reversed under another key');
      const now = this.clock.now();
      const reversalId = id('REV');
      this.db.prepare('INSERT INTO reversals (reversal_id, idempotency_key, settlement_id, at) VALUES (?, ?, ?, ?)').run(reversalId, key, settlementId, now);
      this.db.prepare('UPDATE settlements SET reversed_at = ? WHERE settlement_id = ? AND reversed_at IS NULL').run(now, settlementId);
      return { reversalId, settlementId, at: now };
    }).immediate();
  }

  statement(day: string): unknown {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new PlatformError(400, 'invalid', 'day: YYYY-MM-DD');
    const from = Date.parse(`${day}T00:00:00Z`);
    const to = from + 86_400_000;
    const settlements = (this.db.prepare('SELECT * FROM settlements WHERE at >= ? AND at < ? ORDER BY at, settlement_id').all(from, to) as SettlementRow[]).map(settlementAnswer);
    const reversals = this.db.prepare('SELECT reversal_id AS reversalId, settlement_id AS settlementId, at FROM reversals WHERE at >= ? AND at < ? ORDER BY at, reversal_id').all(from, to);
    return { day, settlements, reversals };
  }

  counters(): unknown {
    const count = (sql: string) => (this.db.prepare(sql).get() as { n: number }).n;
    return { settlements: count('SELECT COUNT(*) AS n FROM settlements'), reversed: count('SELECT COUNT(*) AS n FROM settlements WHERE reversed_at IS NOT NULL'), certificates: count('SELECT COUNT(*) AS n FROM certificates') };
  }
}

const MAX_BODY = 16_384;

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new PlatformError(413, 'oversized', `body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new PlatformError(400, 'malformed', 'body is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new PlatformError(400, 'malformed', 'body is not a JSON object');
  return value as Record<string, unknown>;
}

function idempotencyKey(req: IncomingMessage): string {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || !/^[A-Za-z0-9._:-]{8,128}$/.test(key)) throw new PlatformError(400, 'idempotency-key', 'an Idempotency-Key header of 8..128 of A-Z a-z 0-9 . _ : - is required');
  return key;
}

export async function startInsurancePlatformSim(options: InsurancePlatformSimOptions): Promise<RunningInsurancePlatform> {
  const clock = options.clock ?? systemClock;
  const scheduler = options.scheduler ?? systemScheduler;
  const db = openDatabase(options.dbPath, MIGRATIONS);
  const book = new InsurancePlatformBook(db, clock, options.certificateTtlMs ?? 10 * 60_000);
  let mode: FaultMode = 'normal';
  let delayMs = 0;
  let requests = 0;
  const sockets = new Set<Socket>();

  const route = async (req: IncomingMessage): Promise<{ status: number; data: unknown }> => {
    const url = new URL(req.url ?? '/', 'http://platform');
    const path = url.pathname;
    const post = req.method === 'POST';
    if (post && path === '/admin/faults') {
      const b = await readJson(req);
      const wanted = b.mode;
      if (wanted !== 'normal' && wanted !== 'slow' && wanted !== 'down' && wanted !== 'error') throw new PlatformError(400, 'invalid', 'mode: normal, slow, down or error');
      mode = wanted;
      delayMs = b.delayMs === undefined ? 0 : int(b, 'delayMs', 0, 600_000);
      return { status: 200, data: { mode, delayMs } };
    }
    if (req.method === 'GET' && path === '/admin/counters') return { status: 200, data: { ...(book.counters() as object), requests, mode } };
    if (post && path === '/admin/insured') return { status: 200, data: book.addInsured(await readJson(req)) };
    if (post && path === '/admin/rules') return { status: 200, data: book.setRule(await readJson(req)) };
    if (mode === 'error') throw new PlatformError(503, 'unavailable', 'the platform is answering errors (fault injected)');
    if (post && path === '/v1/certificates/query') return { status: 200, data: book.queryCertificate(await readJson(req)) };
    if (post && path === '/v1/settlements') {
      const key = idempotencyKey(req);
      const { replayed, settlement } = book.settle(key, await readJson(req));
      options.onCommitted?.({ kind: 'settlement', id: (settlement as { settlementId: string }).settlementId, key, replayed });
      return { status: replayed ? 200 : 201, data: settlement };
    }
    const byKey = /^\/v1\/settlements\/by-key\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && byKey) return { status: 200, data: book.byKey(decodeURIComponent(byKey[1]!)) };
    const reversal = /^\/v1\/settlements\/([A-Za-z0-9-]{1,64})\/reversal$/.exec(path);
    if (post && reversal) {
      const key = idempotencyKey(req);
      const done = book.reverse(key, reversal[1]!) as { reversalId: string };
      options.onCommitted?.({ kind: 'reversal', id: done.reversalId, key, replayed: false });
      return { status: 200, data: done };
    }
    if (req.method === 'GET' && path === '/v1/statements') return { status: 200, data: book.statement(url.searchParams.get('day') ?? '') };
    throw new PlatformError(404, 'not-found', `${req.method} ${path}`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    requests++;
    const admin = (req.url ?? '').startsWith('/admin/');
    // down: the connection is dropped unanswered, as a dead platform behind a load balancer would
    if (mode === 'down' && !admin) {
      req.socket.destroy();
      return;
    }
    let status: number;
    let body: unknown;
    try {
      const answer = await route(req);
      status = answer.status;
      body = { status: 'ok', data: answer.data };
    } catch (err) {
      const e = err instanceof PlatformError ? err : new PlatformError(500, 'internal', 'internal error');
      status = e.status;
      body = { status: 'error', error: { code: e.answerCode, message: e.message } };
    }
    // slow: the work is done and committed, the answer comes late
    if (mode === 'slow' && !admin && delayMs > 0) await new Promise<void>((resolve) => scheduler.setTimeout(resolve, delayMs, { unref: true }));
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => void handle(req, res));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    setFault: (m, d = 0) => {
      mode = m;
      delayMs = d;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      db.close();
    },
  };
}
