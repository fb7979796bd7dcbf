/**
 * The simulated card's timing model: what a real chip takes per APDU (bytes at the interface's bit rate,
 * its command time, ECDSA signing for INTERNAL AUTHENTICATE), and that the serial board's card slot and
 * the vpcd virtual card really make the terminal wait that long (a lower bound: never a timed upper bound).
 */
import { describe, expect, it } from 'vitest';
import { internalAuthenticate, selectApplet } from '../../src/codecs/applet.js';
import { cardTimeMs, FAST_CHIP, parseCardTiming, SLOW_CHIP } from '../../src/sim/cardTiming.js';
import { DEMO_MOTHER_PIN, Issuer, tempDir } from '../../src/scenario/CardWorld.js';
import { nextSession, startSerialHarness } from '../../src/scenario/readerHarness.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { TerminalDaemon, type SwipeTiming } from '../../src/daemon/TerminalDaemon.js';

describe('card timing model', () => {
  it('charges the bytes at the bit rate (12 etu a byte), the command time, and the signature on INTERNAL AUTHENTICATE only', () => {
    const select = selectApplet(2);
    const response = new Uint8Array(198); // 198 + command + 2 procedure bytes
    const bytes = select.length + 198 + 2;
    expect(cardTimeMs(SLOW_CHIP, select, response)).toBeCloseTo((bytes * 12 * 1000) / 9600 + SLOW_CHIP.commandMs, 6);
    const auth = internalAuthenticate(new Uint8Array(24));
    const answer = new Uint8Array(72);
    expect(cardTimeMs(FAST_CHIP, auth, answer)).toBeCloseTo(((auth.length + 74) * 12 * 1000) / 115_200 + FAST_CHIP.commandMs + FAST_CHIP.signMs, 6);
    expect(cardTimeMs(SLOW_CHIP, auth, answer)).toBeGreaterThan(cardTimeMs(FAST_CHIP, auth, answer) * 3);
  });

  it('is configurable by name or name:signMs:bitRate[:commandMs], and refuses nonsense with a code', () => {
    expect(parseCardTiming('fast')).toBe(FAST_CHIP);
    expect(parseCardTiming('mine:40:38400')).toEqual({ name: 'mine', signMs: 40, bitRate: 38400, commandMs: 1 });
    expect(parseCardTiming('mine:40:38400:2')).toMatchObject({ commandMs: 2 });
    expect(() => parseCardTiming('mine:x:0')).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('the serial board waits on a slow chip: a swipe takes at least the chip time the model gives, and 3 APDUs', async () => {
    const harness = await startSerialHarness({ startDelayMs: 0, runMs: 0 }, { cardTiming: SLOW_CHIP });
    const issuer = await new Issuer(tempDir()).init();
    const terminal = Terminal.open({ dataDir: tempDir('tally-timing-') });
    try {
      const batch = await issuer.makeBatch('CLINIC-T', 1);
      const session = nextSession(harness.reader);
      await harness.insert(issuer.mother);
      await terminal.provision(await session, { terminalId: 'T-TIMING', clinicCode: 'CLINIC-T', pin: DEMO_MOTHER_PIN });
      await harness.remove();
      const daemon = new TerminalDaemon({ terminal, reader: harness.reader, panel: harness.panel, clock: { now: () => performance.now() } });
      await daemon.start();
      const swipe = async (card: Parameters<typeof harness.insert>[0]) => {
        const decided = new Promise<SwipeTiming>((resolve) => {
          const off = daemon.onSwipe((t) => {
            off();
            resolve(t);
          });
        });
        const t0 = performance.now();
        await harness.insert(card);
        const timing = await decided;
        const took = performance.now() - t0;
        await harness.remove();
        return { timing, took, apdus: harness.apdus() };
      };
      expect((await swipe(batch.batchCard)).timing.outcome).toMatchObject({ ok: true });
      const use = await swipe(batch.oneTimeCards[0]!);
      expect(use.timing.outcome).toMatchObject({ ok: true, action: 'use' });
      expect(use.apdus).toBe(3);
      // at least: SELECT with its FCI and the signature on a 9,600 bit/s chip (well over 300 ms)
      expect(use.took).toBeGreaterThan(SLOW_CHIP.signMs + 200);
      await daemon.stop();
    } finally {
      terminal.close();
      issuer.close();
      await harness.close();
    }
  }, 60_000);
});
