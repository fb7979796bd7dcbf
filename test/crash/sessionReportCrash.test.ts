/**
 * Restart after a crash mid-use, settled by the relay board's own report of its
 * session (GET_SESSION, serial-protocol.md §6.6; audit finding 4). A daemon (a
 * real process, deviceEventWorker.ts) on a socat pty pair to a simulated board
 * running here is SIGKILLed mid-use, then restarted on the same data folder:
 * - reserved (relay closed, no start yet), and the board rebooted meanwhile: the
 *   use is released at once and the next card is served at once, not BUSY for
 *   the start timeout (30 s, the default, here);
 * - started, and the board rebooted: the use is failed at once, the next card served;
 * - started and still running on the board, the daemon killed and restarted
 *   several times: the longest session counts from the relay's close, not from
 *   each restart, so the use ends within it.
 * Every use must end exactly once. SESSION_REPORT_ROUNDS overrides the rounds (2 each).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from '../../src/codecs/firmware/commands.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import type { IssuedBatch } from '../../src/scenario/CardWorld.js';
import type { SimulatedReaderFirmware } from '../../src/sim/SimulatedReaderFirmware.js';
import { systemClock } from '../../src/util/clock.js';
import { kill, sessionCounts as countsOf, sleep, startBoardRig, waitForState as waitFor, type BoardRig, type Daemon, type SessionCounts } from './workerDaemon.js';

const ROUNDS = Number(process.env.SESSION_REPORT_ROUNDS ?? 2);
/** The default start timeout: a restarted daemon without the board's report refuses BUSY this long */
const START_TIMEOUT_MS = 30_000;
/** The restarted daemons' longest session; the first life's is long, so only the terminal's own timer can end the use */
const MAX_SESSION_MS = 3000;
const RESTART_GAP_MS = 800;
const RESTARTS = 5;
/** "At once": within this of the restarted daemon being ready (a board round trip, a ledger write, the loaded machine) */
const AT_ONCE_MS = 2000;

let rig: BoardRig | undefined;
let dataDir: string;
let batch: IssuedBatch;
let board: SimulatedReaderFirmware;
let onFrame: (direction: string, command: number) => void = () => undefined;
let nextCard = 0;

beforeAll(async () => {
  // the board outlives every daemon, and so does the pty pair it is wired to
  rig = await startBoardRig({
    prefix: 'tally-sessrep-',
    terminalId: 'T-SESSREP',
    cards: ROUNDS * 6 + 4,
    board: {
    device: { startDelayMs: 20, startTimeoutMs: 600_000 },
    eventRetryMs: 200,
    trace: (direction, raw) => onFrame(direction, raw[4]!),
    },
  });
  ({ dataDir, batch, board } = rig);
}, 300_000);

afterAll(async () => {
  await rig?.close();
});

function startDaemon(maxSessionMs: number): Daemon {
  return rig!.start(['0', String(START_TIMEOUT_MS), String(maxSessionMs)]);
}

async function ready(maxSessionMs: number, what: string): Promise<Daemon> {
  const daemon = startDaemon(maxSessionMs);
  if (!(await daemon.waitForLine('ready ready', 15_000))) throw new Error(`${what}: daemon not ready: ${daemon.lines.join('|')} ${daemon.stderr()}`);
  return daemon;
}

const sessionCounts = (useSeq: number): SessionCounts => countsOf(dataDir, useSeq);
const waitForState = (useSeq: number, states: readonly string[], timeoutMs: number): Promise<string | undefined> => waitFor(dataDir, useSeq, states, timeoutMs);

/** Resolves once the board has sent this frame (its first send); rejects after 10 s */
function frameSent(command: number, what: string, daemon: Daemon): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: the board sent no 0x${command.toString(16)}: ${daemon.lines.join('|')}`)), 10_000);
    onFrame = (direction, sent) => {
      if (direction !== 'out' || sent !== command) return;
      onFrame = () => undefined;
      clearTimeout(timer);
      resolve();
    };
  });
}

/** A one-time card swiped on this daemon: the use's seq (from the swipe line) */
async function swipe(daemon: Daemon, what: string): Promise<{ line: string; ms: number }> {
  const before = daemon.lines.filter((l) => l.startsWith('swipe ')).length;
  const t0 = Date.now();
  board.insertCard(batch.oneTimeCards[nextCard++]!);
  const deadline = Date.now() + 10_000;
  while (daemon.lines.filter((l) => l.startsWith('swipe ')).length === before) {
    if (Date.now() > deadline) throw new Error(`${what}: no swipe outcome: ${daemon.lines.join('|')} ${daemon.stderr()}`);
    await sleep(5);
  }
  const line = daemon.lines.filter((l) => l.startsWith('swipe '))[before]!;
  board.removeCard();
  return { line, ms: Date.now() - t0 };
}

const useOf = (line: string): number => Number(/^swipe ok (\d+)/.exec(line)?.[1] ?? -1);

describe('restart after a crash mid-use: the board reports its session', () => {
  it(`settles open uses at once and keeps the longest session across restarts (${ROUNDS} rounds each)`, async () => {
    const tally = { kills: 0, restarts: 0, servedAtOnce: 0, refusedBusy: 0, settledAtOnce: 0, lost: 0, doubled: 0 };
    const problems: string[] = [];
    const check = (use: number, expected: 'released' | 'failed' | 'completed', what: string): void => {
      const counts = sessionCounts(use);
      if (counts.ends > 1 || counts.started > 1) {
        tally.doubled++;
        problems.push(`${what}: use ${use} ended twice: ${JSON.stringify(counts)}`);
      } else if (counts.state !== expected) {
        tally.lost++;
        problems.push(`${what}: use ${use} ${counts.state}, expected ${expected}: ${JSON.stringify(counts)}`);
      }
    };

    for (let round = 0; round < ROUNDS * 2; round++) {
      const started = round % 2 === 1;
      const what = `round ${round} (${started ? 'started' : 'reserved'}, board rebooted)`;
      board.deviceBehaviour = started ? 'normal' : 'never-starts';
      const first = await ready(600_000, what);
      const enabled = frameSent(started ? Command.DEVICE_STARTED : Command.RELAY_ENABLE_HEAD | 0x80, what, first);
      const swiped = swipe(first, what);
      await enabled;
      if (started && !(await first.waitForLine('recorded started', 5000))) throw new Error(`${what}: start not recorded: ${first.lines.join('|')}`);
      const use = useOf((await swiped).line);
      if (use < 0) throw new Error(`${what}: first swipe refused: ${first.lines.join('|')}`);
      await kill(first);
      tally.kills++;
      // the board restarts while no daemon runs: its relay opens, its session is gone
      board.reboot();
      board.deviceBehaviour = 'normal';

      const second = await ready(600_000, what);
      tally.restarts++;
      const readyAt = Date.now();
      const next = await swipe(second, what);
      if (next.line.startsWith('swipe ok')) tally.servedAtOnce++;
      else {
        if (next.line.includes('BUSY')) tally.refusedBusy++;
        problems.push(`${what}: next card ${next.line} after ${next.ms} ms`);
      }
      const state = await waitForState(use, ['released', 'failed', 'completed'], AT_ONCE_MS);
      if (state === 'released' || state === 'failed') tally.settledAtOnce++;
      else problems.push(`${what}: use ${use} still ${state} ${Date.now() - readyAt} ms after the restart`);
      // the next card's use ends normally
      const nextUse = useOf(next.line);
      if (nextUse > 0) {
        await waitForState(nextUse, ['started'], 5000);
        board.finishDevice();
        await waitForState(nextUse, ['completed'], 5000);
        check(nextUse, 'completed', `${what} next card`);
      }
      await kill(second);
      check(use, started ? 'failed' : 'released', what);
    }

    // the longest session across several restarts, the board running the use all along
    const sessionEnds: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const what = `session round ${round}`;
      board.deviceBehaviour = 'normal';
      let daemon = await ready(600_000, what);
      const startSent = frameSent(Command.DEVICE_STARTED, what, daemon);
      const swiped = swipe(daemon, what);
      await startSent;
      const relayClosedAt = Date.now();
      const use = useOf((await swiped).line);
      if (use < 0) throw new Error(`${what}: swipe refused: ${daemon.lines.join('|')}`);
      await daemon.waitForLine('recorded started', 5000);
      let endedAt: number | undefined;
      for (let restart = 0; restart < RESTARTS && endedAt === undefined; restart++) {
        await kill(daemon);
        tally.kills++;
        daemon = await ready(MAX_SESSION_MS, what);
        tally.restarts++;
        const deadline = Date.now() + RESTART_GAP_MS;
        while (Date.now() < deadline && endedAt === undefined) {
          if (sessionCounts(use).ends > 0) endedAt = Date.now();
          else await sleep(20);
        }
      }
      if (endedAt === undefined && (await waitForState(use, ['failed', 'completed'], MAX_SESSION_MS + 1000))) endedAt = Date.now();
      const endMs = endedAt === undefined ? Infinity : endedAt - relayClosedAt;
      sessionEnds.push(endMs);
      if (endMs > MAX_SESSION_MS + RESTART_GAP_MS + AT_ONCE_MS) problems.push(`${what}: use ${use} ended ${endMs} ms after the relay closed (longest session ${MAX_SESSION_MS} ms, ${RESTARTS} restarts ${RESTART_GAP_MS} ms apart)`);
      await kill(daemon);
      // the board's device still runs: end it, the next daemon takes the end of a use already failed (nothing recorded)
      board.finishDevice();
      const closing = await ready(600_000, what);
      await sleep(300);
      await kill(closing);
      check(use, 'failed', what);
    }

    console.log(
      `session report crash test: ${tally.kills} kills, ${tally.restarts} restarts; next card served at once ${tally.servedAtOnce}/${ROUNDS * 2} (refused BUSY ${tally.refusedBusy}), ` +
        `open use settled at once ${tally.settledAtOnce}/${ROUNDS * 2}; longest session ${MAX_SESSION_MS} ms across up to ${RESTARTS} restarts ${RESTART_GAP_MS} ms apart: ended ${sessionEnds.join(', ')} ms after the relay closed; uses lost ${tally.lost}, doubled ${tally.doubled}`,
    );
    for (const problem of problems) console.log(problem);
    expect(problems).toEqual([]);
    expect(tally.servedAtOnce).toBe(ROUNDS * 2);
    expect(tally.settledAtOnce).toBe(ROUNDS * 2);
    expect(tally.lost).toBe(0);
    expect(tally.doubled).toBe(0);
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    try {
      expect(ledger.verify().ok).toBe(true);
      expect(ledger.openUses()).toEqual([]);
    } finally {
      ledger.close();
    }
  }, 240_000);
});
