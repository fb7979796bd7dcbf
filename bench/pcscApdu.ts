/**
 * APDU round trip through the whole PC/SC stack: PcscCardReader -> pcsclite ->
 * pcscd -> vpcd -> socat bridge -> VirtualCard -> SimulatedCard, and back.
 * Starts its own pcscd (scripts/pcscd-start.sh, under the machine-wide pcscd
 * lock) and stops it by process id. Also measures the detection delay: from
 * the card entering the slot to the reader's card-inserted event.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseResponseApdu } from '../src/codecs/apdu.js';
import { selectApplet } from '../src/codecs/applet.js';
import type { CardSession } from '../src/readers/CardReader.js';
import { createPcscCardReader } from '../src/readers/pcsc/PcscCardReader.js';
import { SimulatedCard } from '../src/sim/SimulatedCard.js';
import { VirtualCard } from '../src/sim/VirtualCard.js';
import { acquirePcscdLock, startVirtualCardPcscd } from '../src/sim/VirtualCardPcscd.js';

export interface PcscApduBenchOptions {
  /** APDUs timed (after warmup) */
  readonly apdus?: number;
  readonly warmup?: number;
  /** Insert/remove cycles for the detection delay */
  readonly insertions?: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function waitForSession(reader: ReturnType<typeof createPcscCardReader>, timeoutMs: number): Promise<{ session: CardSession; at: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no card-inserted within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = reader.onEvent((event) => {
      if (event.type !== 'card-inserted') return;
      clearTimeout(timer);
      off();
      resolve({ session: event.session, at: performance.now() });
    });
  });
}

interface StackFigures {
  apdus: number[];
  detections: number[];
}

/** One pcscd configuration: detection delays over `insertions`, then `apdus` timed SELECTs */
async function measureStack(quickAck: boolean, apdus: number, warmup: number, insertions: number): Promise<StackFigures> {
  const runDir = mkdtempSync(join(tmpdir(), 'tally-bench-pcscd-'));
  try {
    const pcscd = await startVirtualCardPcscd({ runDir, quickAck });
    const slot = new VirtualCard({ endpoint: pcscd.slotEndpoint(0) });
    const reader = createPcscCardReader({ readerName: pcscd.readerNames[0] });
    try {
      await reader.start();
      const card = SimulatedCard.blank();
      const detections: number[] = [];
      for (let i = 0; i < insertions; i++) {
        // a person does not insert in step with pcscd's 0.4 s polling: sample its phase
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 400));
        const inserted = waitForSession(reader, 10_000);
        const start = performance.now();
        await slot.insert(card);
        detections.push((await inserted).at - start);
        await slot.remove();
        while (reader.currentSession()) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const inserted = waitForSession(reader, 10_000);
      await slot.insert(card);
      const { session } = await inserted;
      const command = selectApplet();
      const times: number[] = [];
      for (let i = 0; i < warmup + apdus; i++) {
        const start = performance.now();
        const response = parseResponseApdu(await session.transmit(command));
        const elapsed = performance.now() - start;
        if (response.sw !== 0x9000) throw new Error(`SELECT answered ${response.sw.toString(16)}`);
        if (i >= warmup) times.push(elapsed);
      }
      return { apdus: times.sort((a, b) => a - b), detections: detections.sort((a, b) => a - b) };
    } finally {
      await reader.stop();
      await slot.remove();
      await pcscd.stop();
    }
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

function summary(prefix: string, figures: StackFigures): Record<string, number> {
  const { apdus, detections } = figures;
  const mean = apdus.reduce((sum, t) => sum + t, 0) / apdus.length;
  const out: Record<string, number> = {
    [`${prefix}apdus`]: apdus.length,
    [`${prefix}apdu_p50_ms`]: round(percentile(apdus, 50)),
    [`${prefix}apdu_p95_ms`]: round(percentile(apdus, 95)),
    [`${prefix}apdu_p99_ms`]: round(percentile(apdus, 99)),
    [`${prefix}apdu_mean_ms`]: round(mean),
    [`${prefix}apdu_max_ms`]: round(apdus[apdus.length - 1] ?? Number.NaN),
  };
  if (detections.length > 0) {
    out[`${prefix}insertions`] = detections.length;
    out[`${prefix}detect_p50_ms`] = round(percentile(detections, 50));
    out[`${prefix}detect_p95_ms`] = round(percentile(detections, 95));
    out[`${prefix}detect_max_ms`] = round(detections[detections.length - 1] ?? Number.NaN);
  }
  return out;
}

/**
 * Figures of our configuration (quick ACKs on pcscd's private loopback), then
 * of stock delayed ACKs for comparison (keys prefixed `stock_`).
 */
export async function benchPcscApdu(options: PcscApduBenchOptions = {}): Promise<Record<string, number>> {
  const apdus = options.apdus ?? 500;
  const warmup = options.warmup ?? 20;
  const insertions = options.insertions ?? 20;
  const release = await acquirePcscdLock();
  try {
    const tuned = await measureStack(true, apdus, warmup, insertions);
    const stock = await measureStack(false, Math.min(apdus, 200), warmup, 0);
    return { ...summary('', tuned), ...summary('stock_', stock) };
  } finally {
    release();
  }
}
