/**
 * The terminal's clock and the server's time (TerminalClock, Terminal.adoptServerTime):
 * server time carried by the monotonic clock, held at the high-water mark, refused far behind it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { MAX_SERVER_TIME_BEHIND_MS, TerminalClock } from '../../src/terminal/TerminalClock.js';
import { ManualClock } from '../../src/util/clock.js';

const NOW = Date.UTC(2026, 10, 22, 5, 0, 0);
const DAY = 86_400_000;

describe('TerminalClock', () => {
  it('reads the local clock until a server time, then the server time carried by the monotonic clock', () => {
    const local = new ManualClock(7_000);
    let mono = 100.25;
    const clock = new TerminalClock(local, () => mono);
    expect(clock.now()).toBe(7_000);
    expect(clock.status()).toMatchObject({ source: 'local', now: 7_000, localNow: 7_000 });
    clock.adopt(NOW);
    expect(clock.now()).toBe(NOW);
    mono += 1500.6;
    // whole milliseconds, whatever the monotonic clock's fractions
    expect(clock.now()).toBe(NOW + 1500);
    // the local clock stepping (by hand, by a reset) does not move the terminal's time
    local.set(0);
    expect(clock.now()).toBe(NOW + 1500);
    expect(clock.status()).toMatchObject({ source: 'server', offsetMs: NOW - 7_000, serverTimeAt: NOW, localNow: 0 });
  });

  it('never goes back past its floor: a server time a little behind holds at it, one far behind is refused', () => {
    let mono = 0;
    const clock = new TerminalClock(new ManualClock(NOW), () => mono);
    const floor = NOW;
    clock.setFloor(() => floor);
    clock.adopt(NOW - 60_000);
    expect(clock.now()).toBe(floor);
    mono += 30_000;
    expect(clock.now()).toBe(floor);
    mono += 40_000;
    expect(clock.now()).toBe(NOW + 10_000);
    expect(() => clock.adopt(NOW - MAX_SERVER_TIME_BEHIND_MS - 1)).toThrow(/behind the time this terminal has already recorded/);
    // the refused time changed nothing
    expect(clock.now()).toBe(NOW + 10_000);
    expect(clock.status().serverTimeAt).toBe(NOW - 60_000);
  });
});

describe('Terminal.adoptServerTime', () => {
  it('dates and trusts entries by the server time, checks validity by it, and keeps the high-water mark across a restart', async () => {
    const dir = tempDir('tally-servertime-');
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const issuerClock = new ManualClock(NOW - 40 * DAY);
    const issuer = await new Issuer(dir, issuerClock).init();
    onTestFinished(() => issuer.close());
    // valid for 20 days from 40 days ago: expired 20 days before NOW
    const old = await issuer.makeBatch('C1', 2, 20);
    issuerClock.set(NOW - DAY);
    const fresh = await issuer.makeBatch('C1', 1);
    const dataDir = join(dir, 'data');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'C1', clock: new ManualClock(NOW - 30 * DAY) });
    rig.terminal.close();

    // the board's clock lost power: 1970
    const board = new ManualClock(5_000);
    let mono = 0;
    const reader = new SimulatedReader();
    await reader.start();
    const swipe = async (terminal: Terminal, card: Parameters<SimulatedReader['insert']>[0]) => {
      const session = reader.insert(card);
      try {
        return await terminal.handleCard(session);
      } finally {
        reader.remove();
      }
    };
    const terminal = Terminal.open({ dataDir, clock: board, monotonicMs: () => mono });
    expect(terminal.status()).toMatchObject({ clockTrusted: false, clock: { source: 'local' } });
    // offline, the terminal knows no better than its high-water mark (30 days ago): the old batch passes
    expect(await swipe(terminal, old.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });

    terminal.adoptServerTime(NOW);
    mono += 2_000;
    expect(terminal.status()).toMatchObject({ clockTrusted: true, clock: { source: 'server', now: new Date(NOW + 2_000).toISOString(), localClock: new Date(5_000).toISOString() } });
    expect(await swipe(terminal, old.oneTimeCards[0]!)).toMatchObject({ ok: false, code: 'EXPIRED' });
    expect(await swipe(terminal, fresh.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    // far behind what it has recorded: refused, nothing changes
    expect(() => terminal.adoptServerTime(NOW - DAY)).toThrow(/behind/);
    expect(terminal.clock.now()).toBe(NOW + 2_000);
    terminal.close();

    // restarted, its clock again at 1970 and no server yet: the mark holds the old batch expired
    const again = Terminal.open({ dataDir, clock: new ManualClock(6_000) });
    onTestFinished(() => again.close());
    expect(again.ledger.highWaterMark()).toBeGreaterThanOrEqual(NOW);
    expect(await swipe(again, old.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'EXPIRED' });
    const loads = [...again.ledger.entries()].map(parseLedgerEntry).filter((e) => e.type === EntryType.BATCH_LOADED);
    expect(loads.map((e) => [e.time, e.clockTrusted])).toEqual([
      [5_000, false],
      [NOW + 2_000, true],
    ]);
  });
});
