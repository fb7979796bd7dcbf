/**
 * `npm run bench -- voucher`: the voucher path's two figures of issue 16.
 *  - scan to relay on the terminal: `tally sim scanner` types each voucher on a socat pty, the daemon's
 *    SerialScanner reads it, the terminal verifies it offline and writes it off, the simulated relay board
 *    closes the relay. Measured from the scanner's last byte (the line's arrival, performance.now) to the
 *    board's relay command, p50/p95/p99 (goal: p95 under 100 ms). Also the verify + write-off step alone
 *    (Terminal.handleVoucher, no I/O).
 *  - the back office's write-off rate: BENCH_VOUCHER_WRITEOFFS (default 5,000) issued vouchers written off
 *    by 8 concurrent claimants, each one conditional UPDATE, into SQLite and PostgreSQL (a cluster of its own).
 * Beside them: load average and CPU steal while each ran.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startSimScanner } from '../src/cli/commands/simScanner.js';
import type { SwipeTiming } from '../src/daemon/TerminalDaemon.js';
import { SerialScanner } from '../src/readers/scanner/SerialScanner.js';
import { DEMO_MOTHER_PIN, Issuer, provisionTerminal, tempDir } from '../src/scenario/CardWorld.js';
import { SerialRig } from '../src/scenario/SerialRig.js';
import { VoucherAuthority } from '../src/scenario/VoucherWorld.js';
import { createServerStore, type ServerStoreOptions } from '../src/server/createServerStore.js';
import { openSerialTransport } from '../src/transports/SerialPortTransport.js';
import { startPostgres } from '../test/support/postgres.js';
import { measureSteal } from './cpuSteal.js';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const round = (ms: number): number => Number(ms.toFixed(2));

async function scanToRelay(scans: number): Promise<Record<string, number>> {
  const issuer = await new Issuer(tempDir('tally-bench-voucher-')).init();
  const sim = await startSimScanner({}, { out: () => undefined, err: () => undefined });
  const scanner = new SerialScanner(await openSerialTransport(sim.daemonPath));
  const rig = await SerialRig.start({ dataDir: tempDir(), scanner, device: { startDelayMs: 1, runMs: 1 } }, async (r) => {
    await r.provision(issuer.mother, { terminalId: 'T-BENCH', clinicCode: 'C-BENCH', pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
  });
  const authority = await VoucherAuthority.create(issuer);
  rig.terminal.adoptTrustList(authority.trustList());
  // the board's relay command, on the same clock as the scan's arrival: the simulated firmware's own method, wrapped
  const firmware = rig.firmware as unknown as { enableRelay: (seq: number, maxMs: number) => void };
  const enableRelay = firmware.enableRelay.bind(rig.firmware);
  let relayAt: number | undefined;
  firmware.enableRelay = (seq, maxMs) => {
    relayAt = performance.now();
    enableRelay(seq, maxMs);
  };
  let scanAt = 0;
  scanner.onScan((scan) => (scanAt = scan.at));
  const totals: number[] = [];
  const decisions: number[] = [];
  try {
    for (let i = 0; i < scans; i++) {
      const v = authority.voucher({ scope: 'C-BENCH' });
      const decided = new Promise<SwipeTiming>((resolve) => {
        const off = rig.daemon.onSwipe((t) => {
          off();
          resolve(t);
        });
      });
      relayAt = undefined;
      await sim.command(`scan ${v.qr}`);
      const timing = await decided;
      if (!timing.outcome.ok) throw new Error(`scan ${i} refused: ${timing.outcome.code}`);
      await rig.daemon.settled();
      await rig.deviceIdle();
      if (relayAt === undefined) throw new Error(`scan ${i}: the relay never closed`);
      totals.push(relayAt - scanAt);
      decisions.push(timing.decidedAt - timing.handledAt);
    }
  } finally {
    await rig.close();
    await scanner.close();
    await sim.stop();
    issuer.close();
  }
  totals.sort((a, b) => a - b);
  decisions.sort((a, b) => a - b);
  return {
    scans,
    scan_to_relay_p50_ms: round(percentile(totals, 50)),
    scan_to_relay_p95_ms: round(percentile(totals, 95)),
    scan_to_relay_p99_ms: round(percentile(totals, 99)),
    scan_to_relay_max_ms: round(totals[totals.length - 1]!),
    daemon_decision_p95_ms: round(percentile(decisions, 95)),
  };
}

/** Terminal.handleVoucher alone: parse, trust list, signature, rules, the ledger transaction (no device, no I/O) */
async function verifyAndWriteOff(count: number): Promise<Record<string, number>> {
  const issuer = await new Issuer(tempDir('tally-bench-verify-')).init();
  const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: 'T-VERIFY', clinicCode: 'C-BENCH' });
  const authority = await VoucherAuthority.create(issuer);
  rig.terminal.adoptTrustList(authority.trustList());
  const texts = Array.from({ length: count }, () => authority.voucher({ scope: 'C-BENCH' }).qr);
  const times: number[] = [];
  for (const text of texts) {
    const t0 = performance.now();
    const outcome = await rig.terminal.handleVoucher(text);
    times.push(performance.now() - t0);
    if (!outcome.ok) throw new Error(`refused: ${outcome.code}`);
  }
  rig.terminal.close();
  issuer.close();
  times.sort((a, b) => a - b);
  return { verify_writeoff_p50_ms: round(percentile(times, 50)), verify_writeoff_p95_ms: round(percentile(times, 95)), verify_writeoff_p99_ms: round(percentile(times, 99)) };
}

async function writeOffRate(name: string, options: ServerStoreOptions, count: number): Promise<Record<string, number>> {
  const store = await createServerStore(options);
  try {
    const now = Math.floor(Date.now() / 1000);
    await store.vouchers.generateBatch({ batchId: 'VB-BENCH', examType: 'OCT', scopeKind: 1, scope: 'C-BENCH', count, validFrom: now - 60, validUntil: now + 86_400, bookingRequired: false, firstSerial: 1_000_001 }, now);
    await store.vouchers.sendToCentre('VB-BENCH', 'CC-1', 'Xuanwu', count, now);
    const steal = measureSteal();
    const load = loadavg()[0] ?? 0;
    let next = 0;
    let granted = 0;
    const t0 = performance.now();
    // 8 claimants, as terminals' claims arrive at the ingest side by side
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (;;) {
          const i = next++;
          if (i >= count) return;
          const answer = await store.vouchers.writeOff(1_000_001 + i, `T-${worker}`, 'C-BENCH', now);
          if (answer.granted) granted++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    if (granted !== count) throw new Error(`${name}: ${granted} of ${count} write-offs granted`);
    return { [`${name}_writeoffs`]: count, [`${name}_writeoffs_per_s`]: Math.round(count / seconds), [`${name}_load_1m`]: Number(load.toFixed(2)), [`${name}_steal_pct`]: steal() ?? -1 };
  } finally {
    await store.close();
  }
}

export async function benchVoucher(): Promise<Record<string, number>> {
  const steal = measureSteal();
  const figures: Record<string, number> = { load_1m_start: Number((loadavg()[0] ?? 0).toFixed(2)) };
  Object.assign(figures, await scanToRelay(Number(process.env.BENCH_VOUCHER_SCANS ?? 200)));
  Object.assign(figures, await verifyAndWriteOff(Number(process.env.BENCH_VOUCHER_VERIFIES ?? 500)));
  figures.terminal_steal_pct = steal() ?? -1;
  const count = Number(process.env.BENCH_VOUCHER_WRITEOFFS ?? 5000);
  Object.assign(figures, await writeOffRate('sqlite', { kind: 'sqlite', path: join(tempDir('tally-bench-wo-'), 'server.db') }, count));
  const postgres = await startPostgres();
  try {
    Object.assign(figures, await writeOffRate('postgres', { kind: 'postgres', connectionString: postgres.createDatabase('bench_voucher') }, count));
  } finally {
    await postgres.close();
  }
  figures.load_1m_end = Number((loadavg()[0] ?? 0).toFixed(2));
  return figures;
}
