/**
 * Runs the benchmarks, prints a table and saves the figures with a description
 * of the machine to bench/results/latest.json and a timestamped copy.
 * `npm run bench` runs every bench present; `npm run bench -- deduction` runs one.
 * A bench module is optional: it runs when its compiled file exists.
 * BENCH_DATA_DIR puts the deduction bench's databases on another disk.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type BenchFunction = (options?: Record<string, unknown>) => Promise<Record<string, number>>;

interface BenchModule {
  readonly name: string;
  readonly file: string;
  readonly exportName: string;
  readonly options?: () => Record<string, unknown>;
}

const BENCHES: readonly BenchModule[] = [
  { name: 'deduction', file: 'deduction.js', exportName: 'benchDeduction', options: () => (process.env.BENCH_DATA_DIR ? { dataDir: process.env.BENCH_DATA_DIR } : {}) },
  { name: 'pcscApdu', file: 'pcscApdu.js', exportName: 'benchPcscApdu' },
  { name: 'swipe', file: 'swipe.js', exportName: 'benchSwipe' },
  { name: 'ingest', file: 'ingest.js', exportName: 'benchIngest' },
  { name: 'daemon', file: 'daemon.js', exportName: 'benchDaemon' },
  { name: 'gateway', file: 'gateway.js', exportName: 'benchGateway' },
  { name: 'insurance', file: 'insurance.js', exportName: 'benchInsurance' },
  { name: 'dashboard', file: 'dashboard.js', exportName: 'benchDashboard' },
  { name: 'sms', file: 'sms.js', exportName: 'benchSms' },
  { name: 'voucher', file: 'voucher.js', exportName: 'benchVoucher' },
];

const HERE = dirname(fileURLToPath(import.meta.url));
/** dist/bench/run.js -> the repository root */
const REPO = resolve(HERE, '..', '..');
const RESULTS = join(REPO, 'bench', 'results');

export interface MachineDescription {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly dataDir: string;
  readonly dataDirFileSystem: string;
  /** 1-minute load average when the bench started: other work on the machine skews the figures */
  readonly loadAverage1m: number;
}

function fileSystemOf(path: string): string {
  for (const [cmd, args] of [
    ['findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--target', path]],
    ['stat', ['-f', '-c', '%T', path]],
  ] as const) {
    try {
      const out = execFileSync(cmd, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (out) return out.replace(/\s+/g, ' ');
    } catch {
      // try the next tool
    }
  }
  return 'unknown';
}

export function describeMachine(dataDir: string): MachineDescription {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    os: `${osType()} ${release()}`,
    node: process.version,
    dataDir,
    dataDirFileSystem: fileSystemOf(dataDir),
    loadAverage1m: Number((loadavg()[0] ?? 0).toFixed(2)),
  };
}

function printTable(name: string, figures: Record<string, number>): void {
  console.log(`\n${name}`);
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [key, value] of Object.entries(figures)) console.log(`  ${key.padEnd(width)}  ${String(value).padStart(12)}`);
}

interface SavedResults {
  updatedAt: string;
  benches: Record<string, { runAt: string; machine: MachineDescription; figures: Record<string, number>; seconds: number }>;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !BENCHES.some((b) => b.name === w));
  if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}`);
  const selected = BENCHES.filter((b) => wanted.length === 0 || wanted.includes(b.name));
  const machine = describeMachine(process.env.BENCH_DATA_DIR ?? tmpdir());
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`);
  console.log(`data dir: ${machine.dataDir} (${machine.dataDirFileSystem}); load average ${machine.loadAverage1m}`);
  console.log('one run on this machine: figures depend on its CPU and disk, not a terminal board');

  const run: SavedResults = { updatedAt: new Date().toISOString(), benches: {} };
  let failures = 0;
  for (const bench of selected) {
    const path = join(HERE, bench.file);
    if (!existsSync(path)) {
      console.log(`\n${bench.name}: skipped (${bench.file} not present)`);
      continue;
    }
    const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    const fn = module[bench.exportName];
    if (typeof fn !== 'function') {
      console.log(`\n${bench.name}: skipped (${bench.file} has no ${bench.exportName})`);
      continue;
    }
    const started = Date.now();
    try {
      const figures = await (fn as BenchFunction)(bench.options?.() ?? {});
      const seconds = Number(((Date.now() - started) / 1000).toFixed(1));
      run.benches[bench.name] = { runAt: new Date(started).toISOString(), machine, figures, seconds };
      printTable(`${bench.name} (${seconds} s)`, figures);
    } catch (err) {
      failures++;
      console.error(`\n${bench.name}: failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  mkdirSync(RESULTS, { recursive: true });
  const latestPath = join(RESULTS, 'latest.json');
  // latest.json keeps the newest figures of every bench, so running one bench does not erase the others
  let latest: SavedResults = { updatedAt: run.updatedAt, benches: {} };
  if (existsSync(latestPath)) {
    try {
      latest = JSON.parse(readFileSync(latestPath, 'utf8')) as SavedResults;
    } catch {
      // an unreadable file is replaced
    }
  }
  latest = { updatedAt: run.updatedAt, benches: { ...latest.benches, ...run.benches } };
  writeJson(latestPath, latest);
  const stamped = join(RESULTS, `${run.updatedAt.replace(/[:.]/g, '-')}.json`);
  writeJson(stamped, run);
  console.log(`\nsaved ${latestPath} and ${stamped}`);
  if (failures > 0) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
