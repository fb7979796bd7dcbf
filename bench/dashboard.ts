/**
 * Dashboard benchmark: a synthetic fleet (default 500 terminals in 50 clinics, 365 days, 2 uses a terminal a day:
 * 365,000 uses; BENCH_DASHBOARD_USES_PER_DAY=50 gives the 9 million) stored through the store's own
 * insertEntries, so the daily roll-up is kept as the ingest keeps it, in SQLite and in a throw-away PostgreSQL.
 * Then, as the top authority logged in with a session: p50/p95 of each dashboard API call over HTTP, and the time
 * from navigation to each page painted with its data (main[data-ready]) in Debian's chromium, p50/p95.
 * Beside them: the 1-minute load average and the CPU steal while it ran.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { addUser } from '../src/server/access/accessAdmin.js';
import { createServerStore, type ServerStoreOptions } from '../src/server/createServerStore.js';
import { startHttpApi } from '../src/server/httpApi.js';
import type { EntryRow } from '../src/server/ServerStore.js';
import { startPostgres } from '../test/support/postgres.js';
import { measureSteal } from './cpuSteal.js';

export interface DashboardBenchOptions {
  readonly terminals?: number;
  readonly days?: number;
  readonly usesPerDay?: number;
  readonly repetitions?: number;
}

/** The pages' own calls (the overview's series in three of its choices), then the raw rows: group=none and the CSV */
const CALLS = [
  '/api/uses/series?period=day&by=clinic',
  '/api/uses/series?period=week&by=terminal',
  '/api/uses/series?period=month&by=agent',
  '/api/uses?group=clinic',
  '/api/uses?group=day', '/api/terminals', '/api/batches', '/api/income', '/api/alerts',
  '/api/uses?group=none',
  '/api/export/uses.csv',
];
const PAGES = ['overview', 'terminals', 'batches', 'money', 'alerts'];
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PASSWORD = 'bench password long enough';
const DAY = 86_400_000;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Number(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!.toFixed(1));
}

const dummy = new Uint8Array(createHash('sha256').update('bench').digest());

async function benchStore(name: string, place: ServerStoreOptions, o: Required<DashboardBenchOptions>): Promise<Record<string, number>> {
  const store = await createServerStore(place);
  const figures: Record<string, number> = {};
  try {
    const start = Date.UTC(2025, 0, 1, 8);
    const filled = performance.now();
    for (let t = 0; t < o.terminals; t++) {
      const terminalId = `T-${String(t).padStart(4, '0')}`;
      const clinicCode = `CL-${String(t % 50).padStart(2, '0')}`;
      await store.registerTerminal({ terminalId, clinicCode, devicePublicKey: dummy, certificate: dummy }, start);
      await store.holdBatch({ batchId: `${terminalId}-b`.padEnd(16, '0'), batchNo: t, clinicCode, count: o.days * o.usesPerDay }, terminalId, 1, start);
      let seq = 0;
      const rows: EntryRow[] = [];
      for (let d = 0; d < o.days; d++) for (let u = 0; u < o.usesPerDay; u++) rows.push({ terminalId, seq: ++seq, type: 3, time: start + d * DAY + u * 60_000, clockTrusted: true, clinicCode, batchId: `${terminalId}-b`.padEnd(16, '0'), serial: seq, hash: dummy, prevHash: dummy, raw: dummy });
      for (let i = 0; i < rows.length; i += 5000) await store.insertEntries(rows.slice(i, i + 5000), start);
    }
    figures[`${name}_fill_s`] = Number(((performance.now() - filled) / 1000).toFixed(1));
    figures[`${name}_uses`] = o.terminals * o.days * o.usesPerDay;
    figures[`${name}_rollup_rows`] = (await store.usesPerDay()).length;
    await addUser(store, { username: 'bench-boss', role: 'authority', password: PASSWORD }, start, { username: 'bench', role: 'operator', address: 'bench' });
    const api = await startHttpApi({ store, pricing: { default: { pricePerUse: 10_000, investorShare: 0.7 } } });
    try {
      const login = await fetch(`${api.url}/api/session`, { method: 'POST', body: JSON.stringify({ username: 'bench-boss', password: PASSWORD }), headers: { 'content-type': 'application/json' } });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      for (const call of CALLS) {
        const times: number[] = [];
        for (let i = 0; i < o.repetitions; i++) {
          const t0 = performance.now();
          const res = await fetch(`${api.url}${call}`, { headers: { cookie } });
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`${call}: ${res.status}`);
          times.push(performance.now() - t0);
        }
        const key = call.replace('/api/', '').replace(/[^a-z]+/g, '_').replace(/_$/, '');
        figures[`${name}_api_${key}_p50_ms`] = percentile(times, 50);
        figures[`${name}_api_${key}_p95_ms`] = percentile(times, 95);
      }
      const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
      try {
        const context = await browser.newContext();
        await context.addCookies([{ name: 'tally_session', value: cookie.split('=')[1]!, url: api.url }]);
        for (const page of PAGES) {
          const times: number[] = [];
          for (let i = 0; i < Math.max(3, Math.round(o.repetitions / 3)); i++) {
            const tab = await context.newPage();
            const t0 = performance.now();
            await tab.goto(`${api.url}/#${page}`);
            await tab.waitForSelector(`#page-${page}[data-ready="true"]`, { timeout: 60_000 });
            times.push(performance.now() - t0);
            await tab.close();
          }
          figures[`${name}_page_${page}_p50_ms`] = percentile(times, 50);
          figures[`${name}_page_${page}_p95_ms`] = percentile(times, 95);
        }
      } finally {
        await browser.close();
      }
    } finally {
      await api.close();
    }
  } finally {
    await store.close();
  }
  return figures;
}

export async function benchDashboard(options: DashboardBenchOptions = {}): Promise<Record<string, number>> {
  const o: Required<DashboardBenchOptions> = {
    terminals: options.terminals ?? Number(process.env.BENCH_DASHBOARD_TERMINALS ?? 500),
    days: options.days ?? Number(process.env.BENCH_DASHBOARD_DAYS ?? 365),
    usesPerDay: options.usesPerDay ?? Number(process.env.BENCH_DASHBOARD_USES_PER_DAY ?? 2),
    repetitions: options.repetitions ?? 20,
  };
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-dashboard-'));
  const steal = measureSteal();
  const figures: Record<string, number> = { terminals: o.terminals, days: o.days, uses_per_terminal_day: o.usesPerDay, load_1m_start: Number((loadavg()[0] ?? 0).toFixed(2)) };
  const postgres = await startPostgres();
  try {
    Object.assign(figures, await benchStore('sqlite', { kind: 'sqlite', path: join(dir, 'dashboard.db') }, o));
    Object.assign(figures, await benchStore('postgres', { kind: 'postgres', connectionString: postgres.createDatabase('bench_dashboard') }, o));
  } finally {
    await postgres.close();
    rmSync(dir, { recursive: true, force: true });
  }
  figures.load_1m_end = Number((loadavg()[0] ?? 0).toFixed(2));
  const stolen = steal();
  if (stolen !== undefined) figures.cpu_steal_pct = stolen;
  return figures;
}
