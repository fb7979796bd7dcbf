/**
 * A whole swipe through each real reader stack, as the operator lives it:
 * card in -> reader reports it (detection) -> daemon reads and verifies the
 * card, commits the use -> relay enabled. Reports percentiles of the swipe
 * (present -> device enabled), the detection delay before it, APDUs per swipe,
 * and the daemon's own share (the swipe minus the time spent waiting on APDUs
 * before the relay is enabled).
 *
 * PC/SC is reported with the virtual card in a process of its own
 * (`pcsc_card_child_*`): in this process it would answer each APDU on the
 * very event loop being measured. `pcsc_card_inprocess` (BENCH_SWIPE_BACKENDS
 * only) keeps the old arrangement for comparison.
 */
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SmartCard } from '../src/card/ApduChannel.js';
import { TerminalDaemon, type SwipeTiming } from '../src/daemon/TerminalDaemon.js';
import type { CardReader, CardSession, DeviceControl, ReaderEvent } from '../src/readers/CardReader.js';
import { DEMO_MOTHER_PIN, Issuer, tempDir } from '../src/scenario/CardWorld.js';
import { nextSession, startPcscHarness, startSerialHarness, type ReaderHarness } from '../src/scenario/readerHarness.js';
import { Terminal } from '../src/terminal/Terminal.js';
import { measureSteal } from './cpuSteal.js';
import { cardTimeMs, parseCardTiming, type CardTimingModel } from '../src/sim/cardTiming.js';

/** Flush requests the data dir's disk has completed (/proc/diskstats field 19): ours are about 5 a swipe, more means a shared disk */
function diskFlushes(): number | undefined {
  try {
    const dev = statSync(tmpdir()).dev;
    const [major, minor] = [Math.floor(dev / 256) & 0xfff, (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)];
    for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (Number(f[0]) === major && Number(f[1]) === minor && f.length >= 19) return Number(f[18]);
    }
  } catch {
    // not Linux: no figure
  }
  return undefined;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function round(ms: number): number {
  return Number(ms.toFixed(3));
}

/**
 * Wraps a reader so every APDU's wait is timed (the reader I/O that is not the
 * daemon's), and the moment the reader reports the card is taken on the same
 * clock as the rest (performance.now).
 */
function timedReader(inner: CardReader, ioTime: { ms: number; cardMs: number; model?: CardTimingModel }): CardReader {
  const wrap = (session: CardSession): CardSession => ({
    id: session.id,
    atr: session.atr,
    presentAt: performance.now(),
    transmit: async (apdu) => {
      const t0 = performance.now();
      try {
        const response = await session.transmit(apdu);
        // what the chip itself takes for this exchange, as the model the card runs under says
        if (ioTime.model) ioTime.cardMs += cardTimeMs(ioTime.model, apdu, response);
        return response;
      } finally {
        ioTime.ms += performance.now() - t0;
      }
    },
  });
  return {
    name: inner.name,
    get state() {
      return inner.state;
    },
    start: () => inner.start(),
    stop: () => inner.stop(),
    currentSession: () => inner.currentSession(),
    onEvent: (listener) =>
      inner.onEvent((event: ReaderEvent) => listener(event.type === 'card-inserted' ? { type: 'card-inserted', session: wrap(event.session) } : event)),
  };
}

/** The data folder's disk alone: a small append then fsync, as a WAL commit does, `times` times; sorted ms */
export function fsyncFloor(dir: string, times: number): number[] {
  const path = join(dir, 'fsync-floor');
  const fd = openSync(path, 'a');
  const block = Buffer.alloc(4096, 1);
  const out: number[] = [];
  try {
    for (let i = 0; i < times; i++) {
      const t0 = performance.now();
      writeSync(fd, block);
      fsyncSync(fd);
      out.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  return out.sort((a, b) => a - b);
}

/** model: the card timing the harness's card runs under (its own time per swipe is reported, and the daemon's added time beside it) */
export async function benchBackend(harness: ReaderHarness, swipes: number, model?: CardTimingModel): Promise<Record<string, number>> {
  const issuer = await new Issuer(tempDir('tally-bench-swipe-')).init();
  const batch = await issuer.makeBatch('BENCH', swipes);
  const dataDir = tempDir('tally-bench-swipe-');
  let enabledAt: number | undefined;
  const io: { ms: number; cardMs: number; model?: CardTimingModel } = { ms: 0, cardMs: 0, ...(model ? { model } : {}) };
  // the reader I/O up to the relay: the consumed-marker APDU comes after it and is not the swipe's
  let ioAtEnable = 0;
  let cardAtEnable = 0;
  let apdusAtEnable = 0;
  const device: DeviceControl = {
    enable: async (seq, maxMs, head) => {
      enabledAt = performance.now();
      ioAtEnable = io.ms;
      cardAtEnable = io.cardMs;
      apdusAtEnable = harness.apdus();
      await harness.device.enable(seq, maxMs, head);
    },
    disable: () => harness.device.disable(),
    onEvent: (l) => harness.device.onEvent(l),
  };
  const terminal = Terminal.open({ dataDir, device });
  const provisioning = nextSession(harness.reader);
  await harness.insert(issuer.mother);
  await terminal.provision(await provisioning, { terminalId: `BENCH-${harness.name}`, clinicCode: 'BENCH', pin: DEMO_MOTHER_PIN });
  await harness.remove();
  // the durable commit (one fsync) is disk I/O: timed apart from the daemon's CPU share
  const commit = { ms: 0 };
  const ledger = terminal.ledger;
  const reserve = ledger.reserveUse.bind(ledger);
  ledger.reserveUse = (...args: Parameters<typeof reserve>) => {
    const t0 = performance.now();
    try {
      return reserve(...args);
    } finally {
      commit.ms += performance.now() - t0;
    }
  };
  // the daemon's clock is performance.now so presentAt and enabledAt share a time base
  const daemon = new TerminalDaemon({ terminal, reader: timedReader(harness.reader, io), panel: harness.panel, clock: { now: () => performance.now() } });
  await daemon.start();
  const present = await swipeOnce(batch.batchCard);
  if (!present.outcome.ok) throw new Error(`batch load failed: ${present.outcome.code}`);

  const swipeMs: number[] = [];
  const detectMs: number[] = [];
  const ownMs: number[] = [];
  const cpuMs: number[] = [];
  const commitMs: number[] = [];
  const apdus: number[] = [];
  const cardOwnMs: number[] = [];
  const addedMs: number[] = [];
  const addedRatio: number[] = [];
  const apdusToRelay: number[] = [];
  async function swipeOnce(card: SmartCard): Promise<SwipeTiming & { insertedAt: number; commit: number }> {
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    io.ms = 0;
    io.cardMs = 0;
    ioAtEnable = 0;
    cardAtEnable = 0;
    commit.ms = 0;
    const insertedAt = performance.now();
    await harness.insert(card);
    const timing = await decided;
    const commitMs = commit.ms;
    await harness.remove();
    // an operator's next card comes after the display, buzzer and LEDs have answered
    await daemon.settled();
    for (let i = 0; i < 1000 && terminal.ledger.openUses().length > 0; i++) await new Promise((r) => setTimeout(r, 1));
    return { ...timing, insertedAt, commit: commitMs };
  }
  const flushesBefore = diskFlushes();
  const stealSince = measureSteal();
  for (const card of batch.oneTimeCards) {
    enabledAt = undefined;
    const t = await swipeOnce(card);
    if (!t.outcome.ok || enabledAt === undefined) throw new Error(`swipe refused: ${t.outcome.ok ? 'relay not enabled' : t.outcome.code}`);
    detectMs.push(t.presentAt - t.insertedAt);
    swipeMs.push(enabledAt - t.presentAt);
    // the daemon's own time up to the relay: everything but waiting on the card's APDUs
    ownMs.push(enabledAt - t.presentAt - ioAtEnable);
    cpuMs.push(enabledAt - t.presentAt - ioAtEnable - t.commit);
    commitMs.push(t.commit);
    apdus.push(harness.apdus());
    apdusToRelay.push(apdusAtEnable);
    if (model) {
      // the card's own time up to the relay, and what the terminal (daemon, reader stack, commit) adds to it
      cardOwnMs.push(cardAtEnable);
      addedMs.push(enabledAt - t.presentAt - cardAtEnable);
      addedRatio.push((enabledAt - t.presentAt - cardAtEnable) / cardAtEnable);
    }
  }
  const flushesAfter = diskFlushes();
  // a virtual machine's host can take the CPU away (steal): then every figure stretches, whatever the stack
  const stealPct = stealSince();
  await daemon.stop();
  terminal.close();
  issuer.close();
  const fsyncAlone = fsyncFloor(dataDir, swipes);
  const s = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const [swipe, detect, own, cpu, durable] = [s(swipeMs), s(detectMs), s(ownMs), s(cpuMs), s(commitMs)];
  return {
    swipes,
    swipe_p50_ms: round(percentile(swipe, 50)),
    swipe_p95_ms: round(percentile(swipe, 95)),
    swipe_p99_ms: round(percentile(swipe, 99)),
    detection_p50_ms: round(percentile(detect, 50)),
    detection_p95_ms: round(percentile(detect, 95)),
    apdus_per_swipe: round(apdus.reduce((a, b) => a + b, 0) / apdus.length),
    apdus_before_relay: round(apdusToRelay.reduce((a, b) => a + b, 0) / apdusToRelay.length),
    ...(model
      ? {
          card_sign_ms: model.signMs,
          card_bit_rate: model.bitRate,
          card_own_p50_ms: round(percentile(s(cardOwnMs), 50)),
          daemon_added_p50_ms: round(percentile(s(addedMs), 50)),
          daemon_added_p95_ms: round(percentile(s(addedMs), 95)),
          // the goal: the terminal adds at most 10% to what the card itself takes
          daemon_added_ratio_p50: Number(percentile(s(addedRatio), 50).toFixed(4)),
          daemon_added_ratio_p95: Number(percentile(s(addedRatio), 95).toFixed(4)),
        }
      : {}),
    daemon_own_p50_ms: round(percentile(own, 50)),
    daemon_own_p99_ms: round(percentile(own, 99)),
    daemon_cpu_p50_ms: round(percentile(cpu, 50)),
    daemon_cpu_p99_ms: round(percentile(cpu, 99)),
    durable_commit_p50_ms: round(percentile(durable, 50)),
    durable_commit_p99_ms: round(percentile(durable, 99)),
    // the floor under the durable commit: the same disk's fsync with nothing else around it
    fsync_alone_p50_ms: round(percentile(fsyncAlone, 50)),
    fsync_alone_p99_ms: round(percentile(fsyncAlone, 99)),
    ...(flushesBefore !== undefined && flushesAfter !== undefined ? { disk_flushes_per_swipe: Number(((flushesAfter - flushesBefore) / swipes).toFixed(1)) } : {}),
    ...(stealPct !== undefined ? { cpu_steal_pct: stealPct } : {}),
  };
}

const STACKS = {
  serial: (cardTiming?: CardTimingModel) => startSerialHarness({ startDelayMs: 0, runMs: 0 }, cardTiming ? { cardTiming } : {}),
  pcsc_card_child: (cardTiming?: CardTimingModel) => startPcscHarness({ card: 'child-process', ...(cardTiming ? { cardTiming } : {}) }),
  pcsc_card_inprocess: (cardTiming?: CardTimingModel) => startPcscHarness({ card: 'in-process', ...(cardTiming ? { cardTiming } : {}) }),
} as const;

/**
 * BENCH_SWIPE_BACKENDS: serial, pcsc (the card in its own process) or pcsc_card_inprocess, comma-separated.
 * Each stack runs with the simulated card answering at once (the current figures, BENCH_SWIPES swipes), then
 * under each card timing model of BENCH_CARD_MODELS (default fast,slow; or name:signMs:bitRate[:commandMs]),
 * BENCH_SWIPES_TIMED swipes each (default 60: a slow chip takes most of a second a swipe).
 */
export async function benchSwipe(options: { swipes?: number } = {}): Promise<Record<string, number>> {
  const swipes = options.swipes ?? Number(process.env.BENCH_SWIPES ?? 500);
  const timedSwipes = Number(process.env.BENCH_SWIPES_TIMED ?? 60);
  const models = (process.env.BENCH_CARD_MODELS ?? 'fast,slow').split(',').filter(Boolean).map(parseCardTiming);
  const figures: Record<string, number> = {};
  const wanted = (process.env.BENCH_SWIPE_BACKENDS ?? 'serial,pcsc').split(',').map((name) => (name === 'pcsc' ? 'pcsc_card_child' : name));
  for (const name of wanted) {
    if (!(name in STACKS)) throw new Error(`unknown swipe stack ${name}; known: serial, pcsc, ${Object.keys(STACKS).join(', ')}`);
    for (const model of [undefined, ...models]) {
      const harness = await STACKS[name as keyof typeof STACKS](model);
      const prefix = model ? `${name}_${model.name}_chip` : name;
      try {
        for (const [key, value] of Object.entries(await benchBackend(harness, model ? timedSwipes : swipes, model))) figures[`${prefix}_${key}`] = value;
        // the machine is shared: how busy it was by the end of this run
        figures[`${prefix}_load_average_1m_after`] = Number((loadavg()[0] ?? 0).toFixed(2));
      } finally {
        await harness.close();
      }
    }
  }
  return figures;
}
