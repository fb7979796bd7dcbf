/**
 * Insurance payments with real processes killed (SIGKILL) at random points and started again on the same data:
 * `tally terminal run` (the daemon, simulated board, its ledger), `tally server run` (ingest, the insurance service,
 * its SQLite store) and `tally sim insurance` (the platform, its own database), over a real Mosquitto. Each round
 * starts a payment at the daemon (its insurance socket, as `tally terminal insurance` does), the phone consents over
 * HTTP, and one process is killed at one of the points below, chosen at random, then started again:
 *   before-authorization   the payment was asked for, the device authorisation not answered yet
 *   after-authorization    the terminal shows the QR (it holds the device code)
 *   during-polling         the terminal had a poll answered
 *   during-settlement      the platform committed the settlement, its answer held back (slow mode)
 *   after-consent          the phone's consent was answered (settled, the voucher on its way)
 *   after-voucher-pushed   the terminal has the voucher (checking or committing it)
 *   before-outcome-ack     the use ran at the terminal; the server has not acknowledged its outcome
 * Every wait is for an event: a process's line (its ready line, a JSON log event, the platform's commit line), a
 * line on the insurance socket, an HTTP answer; the end waits for the ledger drained and every order at an end.
 * Then the money, order by order: every settlement the platform holds stands with exactly one use the terminal ran
 * (settlement.reserved, not released) or is reversed; no order has two settlements or two uses; every use the
 * terminal ran has a settlement that stands. CI runs 12 rounds; SOAK=1 (npm run soak) 200; KILL_ROUNDS=N any.
 */
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { encodeServerKeyCertificateBody } from '../../src/codecs/checkpoint.js';
import { generateSigningKey, privateKeySeed, signMessage } from '../../src/crypto/ed25519.js';
import { requestInsurancePayment, type InsuranceControlLine } from '../../src/daemon/InsuranceControl.js';
import { insuranceSocketPath } from '../../src/daemon/runTerminal.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import type { PlatformStatement } from '../../src/server/insurance/InsurancePlatform.js';
import { systemClock } from '../../src/util/clock.js';
import { freeLoopbackPort } from '../support/freePort.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { mulberry32 } from '../support/random.js';
import { makeInvestor, provisionDataDir } from '../support/signedLedger.js';
import { TallyProcess, type ProcessLine } from '../support/tallyProcess.js';

const ROUNDS = Number(process.env.KILL_ROUNDS ?? (process.env.SOAK === '1' ? 200 : 12));
const POINTS = ['before-authorization', 'after-authorization', 'during-polling', 'during-settlement', 'after-consent', 'after-voucher-pushed', 'before-outcome-ack'] as const;
const VICTIMS = ['terminal', 'server', 'platform'] as const;
type Point = (typeof POINTS)[number];
type Victim = (typeof VICTIMS)[number];
// seconds: QR code life, poll interval, voucher life, grace before an unused voucher is reversed, sweep period
const TIMING = { codeS: 8, pollS: 1, voucherS: 6, graceS: 10, sweepS: 1 };
const FINAL_STATES = new Set(['used', 'reversed', 'failed', 'expired', 'refused']);
const TERMINAL_ID = 'T-KILL-1';
const CREDENTIAL = 'EC-DEMO-0001';

let dir: string;
let broker: RunningMosquitto;
let platform: TallyProcess;
let server: TallyProcess;
let terminal: TallyProcess;
let platformUrl: string;
let httpUrl: string;
let dataDir: string;
let serverDb: string;

const event = (name: string, orderId?: string) => (l: ProcessLine) => l.json?.event === name && (orderId === undefined || l.json.orderId === orderId);
const daemonReady = async (): Promise<void> => {
  const from = terminal.mark();
  await terminal.start(event('sync.subscribed'));
  await terminal.waitForLine((l) => l.json?.msg === 'terminal daemon ready', { from });
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ins-kills-'));
  broker = await startMosquitto();
  const investor = makeInvestor();
  const rootHex = toHex(investor.rootPublicKey);
  // the server's key, certified by the root, in the file tally server certify-key writes
  const serverKey = generateSigningKey();
  const body = encodeServerKeyCertificateBody({ serverId: 'SRV-KILL', publicKey: toHex(serverKey.publicKey), motherCardId: '0102030405060708', issuedAt: 1_790_000_000 });
  const keyFile = join(dir, 'server-key.json');
  writeFileSync(keyFile, JSON.stringify({ format: 'tallystick-server-key-file/1', seed: toHex(privateKeySeed(serverKey.privateKey)), certificate: { body, signature: toHex(signMessage(investor.root.privateKey, utf8(body))) } }), { mode: 0o600 });

  platform = new TallyProcess('platform', ['sim', 'insurance', '--db', join(dir, 'platform.db'), '--port', '0', '--demo']);
  platformUrl = /(http:\/\/127\.0\.0\.1:\d+)/.exec((await platform.start(/insurance platform at/)).text)![1]!;

  const httpPort = await freeLoopbackPort();
  httpUrl = `http://127.0.0.1:${httpPort}`;
  serverDb = join(dir, 'server.db');
  const timing = [TIMING.codeS, TIMING.pollS, TIMING.voucherS, TIMING.graceS, TIMING.sweepS].join(',');
  server = new TallyProcess('server', ['server', 'run', '--broker', broker.url, '--store', serverDb, '--root', rootHex, '--http-port', String(httpPort), '--signing-key', keyFile, '--insurance-url', platformUrl, '--insurance-timing', timing, '--worker-threads', '0']);
  await server.start(/ingest server running/);

  dataDir = join(dir, 'terminal');
  provisionDataDir(investor, dataDir, TERMINAL_ID);
  const config = join(dir, 'terminal.yaml');
  writeFileSync(config, `terminal: {dataDir: ${dataDir}, locale: en}\nreader: {backend: simulated}\nsync: {enabled: true, brokerUrl: '${broker.url}', protocolVersion: 5}\nlog: {level: info}\n`);
  terminal = new TallyProcess('terminal', ['terminal', 'run', '--config', config]);
  await daemonReady();
}, 120_000);

afterAll(async () => {
  await terminal?.stop();
  await server?.stop();
  await platform?.stop();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The phone page's calls: open the link, give the e-credential, (hook), consent. Resolves the consent's order state, or why not */
async function phone(userCode: string, beforeConsent: () => Promise<void>): Promise<string> {
  let cookie: string | undefined;
  const post = async (action: string, body: Record<string, unknown>): Promise<{ status: number; state?: string; code?: string }> => {
    const res = await fetch(`${httpUrl}/api/insurance/phone/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) }, body: JSON.stringify({ code: userCode, ...body }) });
    cookie ??= res.headers.get('set-cookie')?.split(';')[0];
    const answer = (await res.json()) as { data?: { state?: string }; error?: { code?: string } };
    return { status: res.status, ...(answer.data?.state ? { state: answer.data.state } : {}), ...(answer.error?.code ? { code: answer.error.code } : {}) };
  };
  try {
    for (const [action, body] of [['open', {}], ['quote', { credential: CREDENTIAL }]] as const) {
      const answer = await post(action, body);
      if (answer.status !== 200) return `${action}: ${answer.code ?? answer.status}`;
    }
    await beforeConsent();
    const consent = await post('consent', {});
    return consent.state ?? `consent: ${consent.code ?? consent.status}`;
  } catch (err) {
    return `phone: ${(err as Error).message}`;
  }
}

const admin = async (path: string, body?: unknown): Promise<unknown> => {
  const res = await fetch(`${platformUrl}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return ((await res.json()) as { data: unknown }).data;
};

/** What the terminal's insurance socket said in one payment, waited for by line type */
class ControlLines {
  private readonly seen = new Map<string, InsuranceControlLine>();
  private readonly waiting = new Map<string, Array<(line: InsuranceControlLine | undefined) => void>>();
  private over = false;

  /** The payment's end: a line waited for and not seen by then is undefined */
  endsWith(payment: Promise<unknown>): void {
    void payment.finally(() => {
      this.over = true;
      for (const list of this.waiting.values()) for (const w of list) w(undefined);
      this.waiting.clear();
    });
  }

  take(line: InsuranceControlLine): void {
    if (this.seen.has(line.type)) return;
    this.seen.set(line.type, line);
    for (const w of this.waiting.get(line.type) ?? []) w(line);
    this.waiting.delete(line.type);
  }

  /** The first line of that type, or undefined once the payment ended without one */
  line<T extends InsuranceControlLine['type']>(type: T): Promise<Extract<InsuranceControlLine, { type: T }> | undefined> {
    const have = this.seen.get(type);
    if (have) return Promise.resolve(have as Extract<InsuranceControlLine, { type: T }>);
    if (this.over) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const list = this.waiting.get(type) ?? [];
      list.push((l) => resolve(l as Extract<InsuranceControlLine, { type: T }> | undefined));
      this.waiting.set(type, list);
    });
  }
}

describe('insurance payments with the daemon, the server and the platform killed (SIGKILL) at random points', () => {
  it(`${ROUNDS} rounds: every settlement stands with exactly one use the terminal ran, or is reversed`, async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    const rnd = mulberry32(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
    const processes: Record<Victim, TallyProcess> = { terminal, server, platform };
    const kills: Record<Victim, number> = { terminal: 0, server: 0, platform: 0 };
    const perPoint = Object.fromEntries(POINTS.map((p) => [p, 0])) as Record<Point, number>;
    const notReached = Object.fromEntries(POINTS.map((p) => [p, 0])) as Record<Point, number>;
    const outcomes: Record<string, number> = {};
    const roundLog: string[] = [];
    const started = Date.now();
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    const restart = async (victim: Victim): Promise<void> => {
      if (victim === 'terminal') await daemonReady();
      else if (victim === 'server') await server.start(/ingest server running/);
      else await platform.start(/insurance platform at/, { args: ['sim', 'insurance', '--db', join(dir, 'platform.db'), '--port', new URL(platformUrl).port] });
    };

    for (let round = 0; round < ROUNDS; round++) {
      // KILL_POINT / KILL_VICTIM hold one of them fixed, to repeat a case
      const point = (process.env.KILL_POINT as Point | undefined) ?? pick(POINTS);
      const victim = (process.env.KILL_VICTIM as Victim | undefined) ?? pick(VICTIMS);
      let killed = false;
      const kill = async (): Promise<void> => {
        await processes[victim].kill();
        kills[victim]++;
        perPoint[point]++;
        killed = true;
        await restart(victim);
      };
      const platformMark = platform.mark();
      const control = new ControlLines();
      const payment = requestInsurancePayment(insuranceSocketPath(dataDir), { item: 'OCT', amountFen: 1000 + round }, (line) => control.take(line));
      control.endsWith(payment);

      if (point === 'before-authorization') {
        // somewhere between the request on its way and its answer
        await new Promise((r) => setTimeout(r, rnd() * 40));
        await kill();
      }
      const qr = await control.line('qr');
      if (qr) {
        if (point === 'after-authorization') await kill();
        if (point === 'during-polling' && (await control.line('poll'))) await kill();
        const settleKey = `${qr.orderId}:settle`;
        const consent = phone(qr.userCode, async () => {
          // the platform answers late, after committing: the kill falls between its commit and our record of it
          if (point === 'during-settlement') await admin('/admin/faults', { mode: 'slow', delayMs: 800 }).catch(() => undefined);
        });
        if (point === 'during-settlement') {
          const committed = await Promise.race([platform.seen((l) => l.text.includes(`committed under key ${settleKey}`), { from: platformMark, timeoutMs: 15_000 }), consent.then(() => undefined)]);
          if (committed) await kill();
          if (platform.alive()) await admin('/admin/faults', { mode: 'normal' }).catch(() => undefined);
        }
        const state = await consent;
        outcomes[`phone ${state}`] = (outcomes[`phone ${state}`] ?? 0) + 1;
        if (point === 'after-consent' && !killed) await kill();
        if (point === 'after-voucher-pushed' && !killed && (await control.line('voucher'))) await kill();
        if (point === 'before-outcome-ack' && !killed) {
          const outcome = await control.line('outcome');
          if (outcome?.outcome.ok) await kill();
        }
      }
      if (!killed) notReached[point]++;
      // the payment ends: refused, paid, or its daemon killed (the socket closes)
      const outcome = await payment;
      const label = outcome ? (outcome.ok ? 'paid' : outcome.code) : 'no answer (daemon killed)';
      outcomes[`terminal ${label}`] = (outcomes[`terminal ${label}`] ?? 0) + 1;
      // a use the terminal committed is over (ran, failed or released) and the server took its outcome before the next
      if (qr && ledger.settlementUse(qr.orderId)) await terminal.waitForLine(event('insurance.outcome-sent', qr.orderId), { timeoutMs: 60_000 });
      roundLog.push(`${round} ${qr?.orderId ?? '(no order)'}: ${killed ? `${victim} killed ${point}` : `${point} not reached`}; terminal ${label}; ledger ${qr ? (ledger.settlementUse(qr.orderId)?.state ?? 'no use') : '-'}`);
    }

    // quiet: every entry and outcome delivered; every order at an end (codes expired, unused vouchers reversed)
    const waitUntil = async (what: string, check: () => boolean, timeoutMs: number): Promise<boolean> => {
      const until = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 50));
      }
      void what;
      return true;
    };
    const drained = await waitUntil('the terminal drained', () => ledger.pendingCount() === 0 && ledger.settlementOutcomesDue().length === 0 && ledger.openUses().length === 0, 90_000);
    const db = new Database(serverDb, { readonly: true, fileMustExist: true });
    const orders = (): { order_id: string; state: string }[] => db.prepare('SELECT order_id, state FROM insurance_orders ORDER BY created_at').all() as { order_id: string; state: string }[];
    const ended = await waitUntil('every order at an end', () => orders().every((o) => FINAL_STATES.has(o.state)), (TIMING.codeS + TIMING.voucherS + TIMING.graceS + 60) * 1000);

    const day = new Date().toISOString().slice(0, 10);
    const statement = (await admin(`/v1/statements?day=${day}`)) as PlatformStatement;
    const settlementsOf = new Map<string, { standing: number; reversed: number }>();
    for (const s of statement.settlements) {
      const n = settlementsOf.get(s.orderRef) ?? { standing: 0, reversed: 0 };
      if (s.status === 'settled') n.standing++;
      else n.reversed++;
      settlementsOf.set(s.orderRef, n);
    }
    const rows = orders();
    const ids = new Set([...rows.map((o) => o.order_id), ...settlementsOf.keys()]);
    let paidAndUsed = 0;
    let usedUnpaid = 0;
    let chargedUnused = 0;
    let doubled = 0;
    const wrong: string[] = [];
    for (const id of ids) {
      const s = settlementsOf.get(id) ?? { standing: 0, reversed: 0 };
      const use = ledger.settlementUse(id);
      const ran = use !== undefined && use.state !== 'released';
      if (s.standing + s.reversed > 1) doubled++;
      if (ran && s.standing === 0) usedUnpaid++;
      if (!ran && s.standing > 0) chargedUnused++;
      if (ran && s.standing === 1) paidAndUsed++;
      if ((ran && s.standing !== 1) || (!ran && s.standing > 0) || s.standing + s.reversed > 1) wrong.push(`${id}: platform ${s.standing} standing ${s.reversed} reversed, ledger ${use?.state ?? 'no use'}, server ${rows.find((o) => o.order_id === id)?.state ?? 'unknown'}`);
    }
    const unresolved = rows.filter((o) => !FINAL_STATES.has(o.state)).map((o) => `${o.order_id} ${o.state}`);
    const states: Record<string, number> = {};
    for (const o of rows) states[o.state] = (states[o.state] ?? 0) + 1;
    const lost = usedUnpaid + chargedUnused;
    db.close();
    const verified = ledger.verify().ok;
    ledger.close();
    console.log(
      [
        `insurance payments with SIGKILLs (seed ${seed}, ${ROUNDS} rounds, ${Math.round((Date.now() - started) / 1000)} s):`,
        `  kills ${kills.terminal + kills.server + kills.platform}: terminal ${kills.terminal}, server ${kills.server}, platform ${kills.platform}`,
        `  per point ${JSON.stringify(perPoint)}; point not reached (the payment ended before it) ${JSON.stringify(notReached)}`,
        `  payments started ${rows.length}; settled at the platform ${statement.settlements.length}, reversed ${statement.reversals.length}, standing ${statement.settlements.filter((s) => s.status === 'settled').length}; paid and used ${paidAndUsed}`,
        `  lost ${lost} (used unpaid ${usedUnpaid}, charged unused ${chargedUnused}), doubled ${doubled}, orders not at an end ${unresolved.length}; server states ${JSON.stringify(states)}`,
        `  outcomes ${JSON.stringify(outcomes)}`,
        ...(ROUNDS <= 40 || wrong.length > 0 ? roundLog.map((r) => `  round ${r}`) : []),
        ...wrong.map((w) => `  WRONG ${w}`),
      ].join('\n'),
    );
    expect(drained, 'the terminal delivered every entry and outcome').toBe(true);
    expect(ended, `orders left unresolved: ${unresolved.join(', ')}`).toBe(true);
    expect(kills.terminal + kills.server + kills.platform).toBeGreaterThanOrEqual(Math.floor(ROUNDS * 0.6));
    expect({ lost, doubled, wrong }).toEqual({ lost: 0, doubled: 0, wrong: [] });
    expect(paidAndUsed).toBeGreaterThan(0);
    expect(verified).toBe(true);
  }, 3_600_000);
});
