/**
 * Dashboard benchmark: a synthetic fleet (500 terminals in 50 clinics, 5 agents) of a year of uses, stored through
 * the store's own insertEntries (the ingest's path: the entries, the daily, weekly, monthly, clinic and batch
 * roll-ups in one transaction), in SQLite and in a throw-away PostgreSQL. Each use is 3 entries (use.reserved,
 * use.started, use.completed); every 100th is released instead (reserved, failed, released), every 1000th has an
 * untrusted clock. BENCH_DASHBOARD_FILL=bulk (the default above a million uses) has the database make the same
 * entries itself (INSERT ... SELECT over generate_series, a recursive CTE in SQLite), one terminal a statement,
 * then counts every roll-up from them with the statements migrations 6, 11 and 12 upgrade a database with
 * (rollupsFromEntries); the bench checks the uses counted against the uses made. Then, as the top authority logged in with a session: p50/p95 of each dashboard API call over
 * HTTP, and the time from navigation to each page painted with its data (main[data-ready]) in Debian's chromium.
 * Beside them: the load average at each phase, the CPU steal, and the data disk's fsync floor.
 *
 * Scale (environment):
 *   BENCH_DASHBOARD_USES        uses in all (the issue's year: 9000000); sets the uses a terminal a day
 *   BENCH_DASHBOARD_USES_PER_DAY  uses a terminal a day (default 2: 365,000 uses, 1.1 million entries, a quick run)
 *   BENCH_DASHBOARD_DAYS        days (default 365), BENCH_DASHBOARD_TERMINALS (default 500)
 *   BENCH_DASHBOARD_STORES      sqlite,postgres (default both)
 *   BENCH_DASHBOARD_FILL        ingest (insertEntries, the roll-ups kept as the ingest keeps them) or bulk
 *   BENCH_DASHBOARD_REPETITIONS calls of each API route (default 20; pages: a third of it, at least 3)
 *   BENCH_DATA_DIR              where the SQLite file and the PostgreSQL cluster go (default the temp folder)
 *   BENCH_DASHBOARD_SQLITE_KEEP a SQLite file kept between runs: filled when absent (a fill at full scale takes a
 *                               quarter of an hour on 2 busy cores), reused as it is when present (the store opens it,
 *                               so new migrations run on it as on an upgraded server); not deleted at the end
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { addUser, saveAgent } from '../src/server/access/accessAdmin.js';
import { createServerStore, type ServerStoreOptions } from '../src/server/createServerStore.js';
import { startHttpApi } from '../src/server/httpApi.js';
import type { EntryRow, ServerStore } from '../src/server/ServerStore.js';
import { createPostgresDriver } from '../src/server/store/postgresDriver.js';
import { POSTGRES_MIGRATIONS, rollupsFromEntries, SQLITE_MIGRATIONS } from '../src/server/store/schema.js';
import { createSqliteDriver } from '../src/server/store/sqliteDriver.js';
import { startPostgres } from '../test/support/postgres.js';
import { measureSteal } from './cpuSteal.js';
import { fsyncFloor } from './swipe.js';

export interface DashboardBenchOptions {
  readonly terminals?: number;
  readonly days?: number;
  readonly usesPerDay?: number;
  readonly repetitions?: number;
  readonly stores?: readonly ('sqlite' | 'postgres')[];
  readonly fill?: 'ingest' | 'bulk';
}

/** The pages' own calls (the overview's series in its choices), then the raw rows: a page of group=none, a month of them, the CSV */
const CALLS = [
  '/api/uses/series?period=day&by=clinic',
  '/api/uses/series?period=week&by=clinic',
  '/api/uses/series?period=month&by=clinic',
  '/api/uses/series?period=day&by=terminal',
  '/api/uses/series?period=week&by=terminal',
  '/api/uses/series?period=month&by=terminal',
  '/api/uses/series?period=day&by=agent',
  '/api/uses/series?period=month&by=agent',
  '/api/uses?group=clinic',
  '/api/uses?group=terminal',
  '/api/uses?group=day',
  '/api/terminals',
  '/api/batches',
  '/api/income',
  '/api/alerts',
  '/api/uses?group=none',
  '/api/uses?group=none&from=2025-06-01&to=2025-06-30&limit=5000',
  '/api/export/uses.csv?from=2025-06-01&to=2025-06-30',
  '/api/export/uses.csv',
];
const PAGES = ['overview', 'terminals', 'batches', 'money', 'alerts'];
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PASSWORD = 'bench password long enough';
const DAY = 86_400_000;
const CLINICS = 50;
const AGENTS = 5;
/** Entries a call of insertEntries, and calls in flight (the store's group commit puts them in one transaction) */
const CHUNK = 6000;
const IN_FLIGHT = 4;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Number(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!.toFixed(1));
}

const dummy = new Uint8Array(createHash('sha256').update('bench').digest());
/** A stored entry's bytes: about the size of a use entry's record */
const raw = new Uint8Array(120).fill(7);
const load = (): number => Number((loadavg()[0] ?? 0).toFixed(2));
const log = (text: string): void => void process.stderr.write(`[dashboard] ${new Date().toISOString().slice(11, 19)} ${text} (load ${load()})\n`);

/** One terminal's year, CHUNK entries at a time, in ledger order */
function* terminalEntries(t: number, start: number, o: Required<DashboardBenchOptions>): Generator<EntryRow[]> {
  const terminalId = `T-${String(t).padStart(4, '0')}`;
  const clinicCode = `CL-${String(t % CLINICS).padStart(2, '0')}`;
  const batchId = `${terminalId}-b`.padEnd(16, '0');
  let seq = 1;
  let serial = 0;
  let rows: EntryRow[] = [];
  const gap = Math.floor((12 * 3_600_000) / Math.max(1, o.usesPerDay));
  for (let d = 0; d < o.days; d++)
    for (let u = 0; u < o.usesPerDay; u++) {
      const n = serial++;
      const time = start + d * DAY + u * gap;
      const clockTrusted = n % 1000 !== 999;
      const base = { terminalId, time, clockTrusted, clinicCode, hash: dummy, prevHash: dummy, raw };
      const reserved = ++seq;
      rows.push({ ...base, seq: reserved, type: 3, batchId, serial: n + 1 });
      if (n % 100 === 99) rows.push({ ...base, seq: ++seq, type: 7, ref: reserved }, { ...base, seq: ++seq, type: 6, ref: reserved });
      else rows.push({ ...base, seq: ++seq, type: 4, ref: reserved }, { ...base, seq: ++seq, type: 5, ref: reserved });
      if (rows.length >= CHUNK) {
        yield rows;
        rows = [];
      }
    }
  if (rows.length > 0) yield rows;
}

/** The fleet through insertEntries: terminals in turn, IN_FLIGHT calls at once */
async function fill(store: ServerStore, name: string, o: Required<DashboardBenchOptions>, start: number): Promise<number> {
  await fleet(store, o, start);
  const chunks = (function* () {
    for (let t = 0; t < o.terminals; t++) yield* terminalEntries(t, start, o);
  })();
  let stored = 0;
  let reported = performance.now();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    for (let next = chunks.next(); !next.done; next = chunks.next()) {
      const rows = next.value;
      await store.insertEntries(rows, start + o.days * DAY);
      stored += rows.length;
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        log(`${name}: ${stored.toLocaleString('en')} entries stored, ${Math.round(stored / ((reported - t0) / 1000)).toLocaleString('en')}/s`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return stored;
}

/** The registry side of the fleet (agents, terminals, batches, heartbeats), through the store */
async function fleet(store: ServerStore, o: Required<DashboardBenchOptions>, start: number): Promise<void> {
  for (let a = 0; a < AGENTS; a++) {
    const clinics = Array.from({ length: CLINICS }, (_, c) => `CL-${String(c).padStart(2, '0')}`).filter((_, c) => c % AGENTS === a && c < CLINICS - 5);
    await saveAgent(store, { agentCode: `AG-${a}`, name: `agent ${a}`, share: 0.1, clinics }, start);
  }
  for (let t = 0; t < o.terminals; t++) {
    const terminalId = `T-${String(t).padStart(4, '0')}`;
    const clinicCode = `CL-${String(t % CLINICS).padStart(2, '0')}`;
    await store.registerTerminal({ terminalId, clinicCode, devicePublicKey: dummy, certificate: dummy }, start);
    // the batch.loaded entry is seq 1: not stored here, so contiguous stays 0 (the bench measures the reads)
    await store.holdBatch({ batchId: `${terminalId}-b`.padEnd(16, '0'), batchNo: t, clinicCode, count: o.days * o.usesPerDay + 10 }, terminalId, 1, start);
    await store.recordHeartbeat({ terminalId, at: start + o.days * DAY, queueDepth: 0, lastSeq: 1 + o.days * o.usesPerDay * 3, batchNo: t, batchRemaining: 5 });
  }
}

/** The same entries terminalEntries makes, made by the database itself, one terminal a statement; then the roll-ups from them */
async function bulkFill(place: ServerStoreOptions, name: string, o: Required<DashboardBenchOptions>, start: number): Promise<number> {
  const sqlite = place.kind === 'sqlite';
  const driver = sqlite ? createSqliteDriver(place.path, SQLITE_MIGRATIONS) : await createPostgresDriver(place.connectionString, POSTGRES_MIGRATIONS);
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const blob = (b: Uint8Array): string => (sqlite ? `X'${hex(b)}'` : `'\\x${hex(b)}'::bytea`);
  const uses = o.days * o.usesPerDay;
  const gap = Math.floor((12 * 3_600_000) / Math.max(1, o.usesPerDay));
  const received = start + o.days * DAY;
  try {
    const t0 = performance.now();
    let reported = t0;
    for (let t = 0; t < o.terminals; t++) {
      const terminalId = `T-${String(t).padStart(4, '0')}`;
      const clinicCode = `CL-${String(t % CLINICS).padStart(2, '0')}`;
      const batchId = `${terminalId}-b`.padEnd(16, '0');
      const day = sqlite ? `date('2025-01-01', '+' || (n / ${o.usesPerDay}) || ' days')` : `to_char(DATE '2025-01-01' + (n / ${o.usesPerDay}), 'YYYY-MM-DD')`;
      const select = `SELECT '${terminalId}', 2 + 3 * n + k,
          CASE WHEN k = 0 THEN 3 WHEN n % 100 = 99 THEN (CASE WHEN k = 1 THEN 7 ELSE 6 END) ELSE 3 + k END,
          ${start} + CAST(n / ${o.usesPerDay} AS BIGINT) * ${DAY} + CAST(n % ${o.usesPerDay} AS BIGINT) * ${gap}, ${day},
          CASE WHEN n % 1000 = 999 THEN 0 ELSE 1 END, '${clinicCode}',
          CASE WHEN k = 0 THEN '${batchId}' END, CASE WHEN k = 0 THEN n + 1 END, CASE WHEN k > 0 THEN 2 + 3 * n END,
          ${blob(dummy)}, ${blob(dummy)}, ${blob(raw)}, ${received}`;
      const columns = '(terminal_id, seq, type, time, day, clock_trusted, clinic_code, batch_id, serial, ref, hash, prev_hash, raw, received_at)';
      await driver.run(
        sqlite
          ? `WITH RECURSIVE nn(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM nn WHERE n < ${uses - 1}), kk(k) AS (VALUES (0), (1), (2))
             INSERT INTO entries ${columns} ${select} FROM nn, kk WHERE true ORDER BY n, k`
          : `INSERT INTO entries ${columns} ${select} FROM generate_series(0, ${uses - 1}) n, generate_series(0, 2) k ORDER BY n, k`,
      );
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        log(`${name}: ${(t + 1) * uses * 3} entries made, ${Math.round(((t + 1) * uses * 3) / ((reported - t0) / 1000)).toLocaleString('en')}/s`);
      }
    }
    log(`${name}: entries made in ${((performance.now() - t0) / 1000).toFixed(0)} s; counting the roll-ups`);
    for (const sql of [...rollupsFromEntries(driver.dialect), ...(sqlite ? [] : ['ANALYZE'])]) {
      const s0 = performance.now();
      await driver.run(sql);
      if (performance.now() - s0 > 1000) log(`${name}: ${((performance.now() - s0) / 1000).toFixed(1)} s: ${sql.replace(/\s+/g, ' ').slice(0, 90)}`);
    }
  } finally {
    await driver.close();
  }
  return o.terminals * uses * 3;
}

async function timed(url: string, cookie: string): Promise<{ total: number; firstByte: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { cookie } });
  const reader = res.body!.getReader();
  let firstByte: number | undefined;
  for (let r = await reader.read(); !r.done; r = await reader.read()) firstByte ??= performance.now() - t0;
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  return { total: performance.now() - t0, firstByte: firstByte ?? performance.now() - t0 };
}

async function benchStore(name: string, place: ServerStoreOptions, o: Required<DashboardBenchOptions>, dataDir: string, reuse = false, onFilled?: () => void): Promise<Record<string, number>> {
  const start = Date.UTC(2025, 0, 1, 8);
  const figures: Record<string, number> = {};
  figures[`${name}_fill_load_start`] = load();
  figures[`${name}_reused`] = reuse ? 1 : 0;
  log(reuse ? `${name}: reusing the kept database (no fill)` : `${name}: filling ${o.terminals} terminals x ${o.days} days x ${o.usesPerDay} uses (${o.fill})`);
  const filled = performance.now();
  let entries = reuse ? o.terminals * o.days * o.usesPerDay * 3 : 0;
  if (reuse) {
    // nothing to fill: the kept file was filled at this scale by an earlier run
  } else if (o.fill === 'bulk') {
    const registry = await createServerStore(place);
    await fleet(registry, o, start).finally(() => registry.close());
    entries = await bulkFill(place, name, o, start);
  }
  const opened = performance.now();
  const store = await createServerStore(place);
  figures[`${name}_open_s`] = Number(((performance.now() - opened) / 1000).toFixed(1));
  if (performance.now() - opened > 1000) log(`${name}: the store opened in ${((performance.now() - opened) / 1000).toFixed(1)} s`);
  try {
    if (o.fill === 'ingest' && !reuse) entries = await fill(store, name, o, start);
    figures[`${name}_fill_s`] = Number(((performance.now() - filled) / 1000).toFixed(1));
    figures[`${name}_fill_entries_per_s`] = Math.round(entries / ((performance.now() - filled) / 1000));
    figures[`${name}_fill_load_end`] = load();
    figures[`${name}_uses`] = o.terminals * o.days * o.usesPerDay;
    figures[`${name}_entries`] = entries;
    figures[`${name}_stored_uses`] = (await store.usesPerClinic()).reduce((n, c) => n + c.uses, 0);
    // every 100th use released: not counted
    const counted = o.terminals * (o.days * o.usesPerDay - Math.floor((o.days * o.usesPerDay) / 100));
    if (figures[`${name}_stored_uses`] !== counted) throw new Error(`${name}: the roll-ups count ${figures[`${name}_stored_uses`]} uses, ${counted} were made`);
    onFilled?.();
    log(`${name}: ${entries.toLocaleString('en')} entries in ${figures[`${name}_fill_s`]} s; measuring`);
    // a kept database has the users of earlier runs: a new name each run
    const username = `bench-boss-${Date.now()}`;
    await addUser(store, { username, role: 'authority', password: PASSWORD }, start, { username: 'bench', role: 'operator', address: 'bench' });
    const api = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } } });
    try {
      const fsync = fsyncFloor(dataDir, 100);
      figures[`${name}_fsync_p50_ms`] = Number(percentile(fsync, 50).toFixed(2));
      figures[`${name}_fsync_p99_ms`] = Number(percentile(fsync, 99).toFixed(2));
      figures[`${name}_measure_load_start`] = load();
      const login = await fetch(`${api.url}/api/session`, { method: 'POST', body: JSON.stringify({ username, password: PASSWORD }), headers: { 'content-type': 'application/json' } });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      for (const call of CALLS) {
        const totals: number[] = [];
        const firstBytes: number[] = [];
        await timed(`${api.url}${call}`, cookie); // warm
        for (let i = 0; i < o.repetitions; i++) {
          const t = await timed(`${api.url}${call}`, cookie);
          totals.push(t.total);
          firstBytes.push(t.firstByte);
        }
        const key = call.replace('/api/', '').replace(/\d{4}-\d{2}-\d{2}/g, '').replace(/[^a-z]+/g, '_').replace(/_$/, '');
        figures[`${name}_api_${key}_p50_ms`] = percentile(totals, 50);
        figures[`${name}_api_${key}_p95_ms`] = percentile(totals, 95);
        if (call.includes('.csv')) figures[`${name}_api_${key}_first_byte_p95_ms`] = percentile(firstBytes, 95);
      }
      const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
      try {
        const context = await browser.newContext();
        await context.addCookies([{ name: 'tally_session', value: cookie.split('=')[1]!, url: api.url }]);
        for (const page of PAGES) {
          const times: number[] = [];
          for (let i = 0; i < Math.max(3, Math.round(o.repetitions / 3)) + 1; i++) {
            const tab = await context.newPage();
            const t0 = performance.now();
            await tab.goto(`${api.url}/#${page}`);
            await tab.waitForSelector(`#page-${page}[data-ready="true"]`, { timeout: 60_000 });
            // the first is the warm-up (the bundle and the fonts into the cache)
            if (i > 0) times.push(performance.now() - t0);
            await tab.close();
          }
          figures[`${name}_page_${page}_p50_ms`] = percentile(times, 50);
          figures[`${name}_page_${page}_p95_ms`] = percentile(times, 95);
        }
      } finally {
        await browser.close();
      }
      figures[`${name}_measure_load_end`] = load();
    } finally {
      await api.close();
    }
  } finally {
    await store.close();
  }
  return figures;
}

export async function benchDashboard(options: DashboardBenchOptions = {}): Promise<Record<string, number>> {
  const terminals = options.terminals ?? Number(process.env.BENCH_DASHBOARD_TERMINALS ?? 500);
  const days = options.days ?? Number(process.env.BENCH_DASHBOARD_DAYS ?? 365);
  const total = process.env.BENCH_DASHBOARD_USES ? Number(process.env.BENCH_DASHBOARD_USES) : undefined;
  const o: Required<DashboardBenchOptions> = {
    terminals,
    days,
    usesPerDay: options.usesPerDay ?? (total !== undefined ? Math.max(1, Math.round(total / (terminals * days))) : Number(process.env.BENCH_DASHBOARD_USES_PER_DAY ?? 2)),
    repetitions: options.repetitions ?? Number(process.env.BENCH_DASHBOARD_REPETITIONS ?? 20),
    stores: options.stores ?? ((process.env.BENCH_DASHBOARD_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>),
    fill: 'ingest',
  };
  const fillMode = options.fill ?? (process.env.BENCH_DASHBOARD_FILL as 'ingest' | 'bulk' | undefined) ?? (o.terminals * o.days * o.usesPerDay > 1_000_000 ? 'bulk' : 'ingest');
  Object.assign(o, { fill: fillMode });
  const dir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), 'tally-bench-dashboard-'));
  const steal = measureSteal();
  const figures: Record<string, number> = { terminals: o.terminals, days: o.days, uses_per_terminal_day: o.usesPerDay, fill_bulk: o.fill === 'bulk' ? 1 : 0, load_1m_start: load() };
  try {
    const kept = process.env.BENCH_DASHBOARD_SQLITE_KEEP;
    if (o.stores.includes('sqlite')) {
      // the marker names the scale and is written once the fill's count checked out: a half-made file is made again
      const marker = kept !== undefined ? `${kept}.filled` : undefined;
      const scale = `${o.terminals}x${o.days}x${o.usesPerDay}`;
      const reuse = marker !== undefined && existsSync(marker) && readFileSync(marker, 'utf8') === scale;
      if (kept !== undefined && !reuse) for (const f of [kept, `${kept}-wal`, `${kept}-shm`, marker!]) rmSync(f, { force: true });
      const onFilled = marker !== undefined ? (): void => writeFileSync(marker, scale) : undefined;
      Object.assign(figures, await benchStore('sqlite', { kind: 'sqlite', path: kept ?? join(dir, 'dashboard.db') }, o, kept !== undefined ? dirname(kept) : dir, reuse, onFilled));
    }
    if (o.stores.includes('postgres')) {
      const postgres = await startPostgres();
      try {
        Object.assign(figures, await benchStore('postgres', { kind: 'postgres', connectionString: postgres.createDatabase('bench_dashboard') }, o, postgres.dir));
      } finally {
        await postgres.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  figures.load_1m_end = load();
  const stolen = steal();
  if (stolen !== undefined) figures.cpu_steal_pct = stolen;
  return figures;
}
