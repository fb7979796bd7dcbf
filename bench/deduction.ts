/**
 * Deduction benchmark: the daemon's time for one deduction, i.e.
 * terminal.handleCard on an in-process simulated card (SELECT and parse, chain
 * verification, the durable reserve commit with WAL + synchronous=FULL, the
 * relay command, the consumed-marker write and its flag commit), over at least
 * 2000 swipes after a warm-up. Separately: the reserve commit alone
 * (Ledger.reserveUse, the deduction's durable commit), the marker-flag commit
 * alone, the signature check alone and SELECT + record parse alone. One run on one
 * machine: the figures say what this machine's disk and CPU do, not a board's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { OneTimeFields, SignedRecord } from '../src/codecs/cardRecord.js';
import { CardClient } from '../src/card/CardClient.js';
import { parseRecordOrThrow, verifyOneTime } from '../src/crypto/chain.js';
import type { DeviceControl, DeviceEvent } from '../src/readers/CardReader.js';
import { directChannel, Issuer, provisionTerminal } from '../src/scenario/CardWorld.js';

export interface DeductionBenchOptions {
  readonly swipes?: number;
  readonly warmup?: number;
  /** Where the terminal databases go (default: the OS temp folder); the runner reports its file system */
  readonly dataDir?: string;
}

/** A relay that accepts every command; the device's session events are fed in outside the timed part */
class BenchRelay implements DeviceControl {
  enabled = 0;
  async enable(): Promise<void> {
    this.enabled++;
  }
  async disable(): Promise<void> {}
  onEvent(_listener: (event: DeviceEvent) => void): () => void {
    return () => undefined;
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

const round = (value: number, digits = 3): number => Number(value.toFixed(digits));

function summary(prefix: string, samples: number[]): Record<string, number> {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    [`${prefix}_n`]: sorted.length,
    [`${prefix}_p50_ms`]: round(percentile(sorted, 50)),
    [`${prefix}_p95_ms`]: round(percentile(sorted, 95)),
    [`${prefix}_p99_ms`]: round(percentile(sorted, 99)),
    [`${prefix}_max_ms`]: round(sorted.at(-1) ?? Number.NaN),
    [`${prefix}_mean_ms`]: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

export async function benchDeduction(options: DeductionBenchOptions = {}): Promise<Record<string, number>> {
  const swipes = options.swipes ?? Number(process.env.BENCH_SWIPES ?? 2000);
  const warmup = options.warmup ?? 200;
  const root = mkdtempSync(join(options.dataDir ?? tmpdir(), 'tally-bench-'));
  const issuer = await new Issuer(root).init();
  try {
    const batch = await issuer.makeBatch('CLINIC-BENCH', swipes + warmup);
    const pristineBatchCard = batch.batchCard.clone();
    const relay = new BenchRelay();
    const rig = await provisionTerminal(issuer, { dataDir: join(root, 'terminal'), terminalId: 'T-BENCH', clinicCode: 'CLINIC-BENCH', device: relay });
    const loaded = await rig.swipe(batch.batchCard);
    if (!loaded.ok) throw new Error(`batch not loaded: ${loaded.code}`);

    // 1. the whole deduction as the daemon runs it
    const swipeTimes: number[] = [];
    for (const [i, card] of batch.oneTimeCards.entries()) {
      const session = rig.reader.insert(card);
      const started = performance.now();
      const outcome = await rig.terminal.handleCard(session);
      const elapsed = performance.now() - started;
      rig.reader.remove();
      if (!outcome.ok || outcome.action !== 'use') throw new Error(`swipe ${i} refused: ${outcome.ok ? outcome.action : outcome.code}`);
      if (i >= warmup) swipeTimes.push(elapsed);
      // the device session runs and ends outside the timed part
      rig.terminal.onDeviceEvent({ type: 'started', useSeq: outcome.seq });
      rig.terminal.onDeviceEvent({ type: 'finished', useSeq: outcome.seq });
    }
    const verification = rig.terminal.ledger.verify();
    if (!verification.ok || verification.uses !== swipes + warmup) throw new Error(`ledger does not verify after the bench: ${JSON.stringify(verification.problem)}`);
    rig.terminal.close();

    // 2. the parts: SELECT + parse, signature check, and the commit alone on a second terminal
    const records: SignedRecord<OneTimeFields>[] = [];
    const selectTimes: number[] = [];
    for (const card of batch.oneTimeCards) {
      const started = performance.now();
      const fci = await new CardClient(directChannel(card)).select();
      const record = parseRecordOrThrow(fci.record!);
      selectTimes.push(performance.now() - started);
      records.push(record as SignedRecord<OneTimeFields>);
    }
    const second = await provisionTerminal(issuer, { dataDir: join(root, 'terminal-2'), terminalId: 'T-BENCH-2', clinicCode: 'CLINIC-BENCH' });
    if (!(await second.swipe(pristineBatchCard)).ok) throw new Error('second terminal did not load the batch');
    const batchRow = second.terminal.ledger.batches()[0]!;
    const verifyTimes: number[] = [];
    const commitTimes: number[] = [];
    const markerTimes: number[] = [];
    const chipUid = new Uint8Array(8);
    for (const record of records) {
      let started = performance.now();
      verifyOneTime(record, batchRow.publicKey, batchRow.batchId);
      verifyTimes.push(performance.now() - started);
      started = performance.now();
      const seq = second.terminal.ledger.reserveUse(record, chipUid);
      commitTimes.push(performance.now() - started);
      started = performance.now();
      second.terminal.ledger.setMarkerWritten(seq);
      markerTimes.push(performance.now() - started);
    }
    second.terminal.close();
    const drop = (samples: number[]): number[] => samples.slice(warmup);
    return {
      swipes,
      warmup_swipes: warmup,
      ...summary('deduction', swipeTimes),
      ...summary('commit', drop(commitTimes)),
      ...summary('marker_flag_commit', drop(markerTimes)),
      ...summary('verify', drop(verifyTimes)),
      ...summary('select_parse', drop(selectTimes)),
      deductions_per_s: round(1000 / (swipeTimes.reduce((a, b) => a + b, 0) / swipeTimes.length), 0),
    };
  } finally {
    issuer.close();
    rmSync(root, { recursive: true, force: true });
  }
}
