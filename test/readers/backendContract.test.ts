/**
 * One contract, both reader stacks: the card scenarios of the brief run
 * through the daemon over the serial backend (socat pty + simulated
 * microcontroller) and over the PC/SC backend (real pcscd + vpcd + virtual card).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SmartCard } from '../../src/card/ApduChannel.js';
import { TerminalDaemon, type SwipeTiming } from '../../src/daemon/TerminalDaemon.js';
import type { DeviceControl } from '../../src/readers/CardReader.js';
import { DEMO_MOTHER_PIN, Issuer, provisionTerminal, tempDir, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { nextSession, startPcscHarness, startSerialHarness, type ReaderHarness } from '../../src/scenario/readerHarness.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { Terminal, type SwipeOutcome } from '../../src/terminal/Terminal.js';

const HARNESSES = [
  ['serial', () => startSerialHarness()],
  ['pcsc', () => startPcscHarness()],
  // the swipe bench's arrangement: the card's state goes to the child and comes back on removal
  ['pcsc (card in its own process)', () => startPcscHarness({ card: 'child-process' })],
] as const;

describe.each(HARNESSES)('reader contract over the %s backend', (_name, start) => {
  let harness: ReaderHarness;
  let issuer: Issuer;
  let batch: IssuedBatch;
  let foreign: IssuedBatch;
  let terminal: Terminal;
  let daemon: TerminalDaemon;
  let dataDir: string;
  /** At each relay enable: was the use already committed, as another connection sees it? */
  const committedAtEnable: boolean[] = [];

  async function swipe(card: SmartCard): Promise<SwipeOutcome> {
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    await harness.insert(card);
    const timing = await decided;
    await harness.remove();
    for (let i = 0; i < 500 && terminal.ledger.openUses().length > 0; i++) await new Promise((r) => setTimeout(r, 5));
    return timing.outcome;
  }

  beforeAll(async () => {
    harness = await start();
    issuer = await new Issuer(tempDir()).init();
    batch = await issuer.makeBatch('CLINIC-A', 7);
    foreign = await issuer.makeBatch('CLINIC-B', 2);
    dataDir = tempDir('tally-contract-');
    const device: DeviceControl = {
      enable: async (useSeq, maxMs, head) => {
        const probe = new Database(join(dataDir, 'terminal.db'), { readonly: true });
        committedAtEnable.push(probe.prepare('SELECT 1 FROM uses WHERE reserve_seq = ?').get(useSeq) !== undefined);
        probe.close();
        await harness.device.enable(useSeq, maxMs, head);
      },
      ...(harness.device.witness ? { witness: () => harness.device.witness!() } : {}),
      disable: () => harness.device.disable(),
      onEvent: (listener) => harness.device.onEvent(listener),
    };
    terminal = Terminal.open({ dataDir, device, startTimeoutMs: 5000 });
    // factory provisioning: the mother card in this very reader, before the daemon takes it over
    const session = nextSession(harness.reader);
    await harness.insert(issuer.mother);
    await terminal.provision(await session, { terminalId: `T-${harness.name}`, clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN });
    await harness.remove();
    daemon = new TerminalDaemon({ terminal, reader: harness.reader, panel: harness.panel });
    await daemon.start();
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    terminal?.close();
    await harness?.close();
    issuer?.close();
  });

  it('provisioned the terminal through the reader with the mother card', () => {
    expect(terminal.identity()).toMatchObject({ terminalId: `T-${harness.name}`, clinicCode: 'CLINIC-A' });
  });

  it('loads the batch card once', async () => {
    expect(await swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded', count: 7 });
    expect(await swipe(batch.batchCard)).toMatchObject({ ok: false, code: 'BATCH_ALREADY_LOADED' });
  });

  it('deducts one-time cards, enabling the device only after the use is committed, and completes each use', async () => {
    for (const serial of [1, 2, 3]) {
      expect(await swipe(batch.oneTimeCards[serial - 1]!)).toMatchObject({ ok: true, action: 'use', serial });
      // SELECT, INTERNAL AUTHENTICATE, the consumed marker (card-applet.md: at most 3 APDUs per one-time swipe)
      expect(harness.apdus()).toBe(3);
    }
    expect(committedAtEnable).toEqual([true, true, true]);
    // the card object holds what the card was left with: the consumed marker written after the relay
    expect(batch.oneTimeCards[0]!.snapshot().marker).toBeDefined();
    expect(terminal.ledger.openUses()).toHaveLength(0);
    const verification = terminal.ledger.verify();
    expect(verification).toMatchObject({ ok: true, uses: 3 });
    expect(harness.panel.shown.some((m) => m.tone === 'ok' && m.lines[0]!.includes('Use granted'))).toBe(true);
  });

  it('refuses replays, copies, forgeries, other clinics and wrong tiers, each with its reason', async () => {
    const forged = SimulatedCard.fromState({ ...batch.oneTimeCards[3]!.snapshot() });
    const state = forged.snapshot();
    const record = Buffer.from(state.record!, 'hex');
    record[record.length - 1] = record[record.length - 1]! ^ 0xff;
    const cases: [string, SmartCard, string][] = [
      ['replay', batch.oneTimeCards[0]!, 'ALREADY_USED'],
      ['copy', batch.oneTimeCards[1]!.clone(), 'ALREADY_USED'],
      ['forged', SimulatedCard.fromState({ ...state, record: record.toString('hex') }), 'FORGED'],
      ['other clinic batch', foreign.batchCard, 'WRONG_CLINIC'],
      ['other clinic one-time', foreign.oneTimeCards[0]!, 'BATCH_NOT_LOADED'],
      ['white card', issuer.white, 'WRONG_TIER'],
      ['blank card', SimulatedCard.blank(), 'CARD_BLANK'],
    ];
    for (const [what, card, code] of cases) {
      expect(await swipe(card), what).toMatchObject({ ok: false, code });
    }
    expect(harness.panel.shown.filter((m) => m.tone === 'refused').length).toBeGreaterThanOrEqual(cases.length);
  });

  it('refuses cloned cards (record and marker copied, not the key) offline, as copies, and loads or charges nothing', async () => {
    // a first terminal (in process) loads a batch and spends a card; their copies come to this one, with no link to any server
    const first = await provisionTerminal(issuer, { dataDir: tempDir('tally-first-'), terminalId: `T-first-${harness.name}`, clinicCode: 'CLINIC-A' });
    try {
      const elsewhere = await issuer.makeBatch('CLINIC-A', 2);
      const batchCopy = elsewhere.batchCard.copyWithoutKey(); // taken before the load: no marker, so only the key tells
      expect(await first.swipe(elsewhere.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
      expect(await first.swipe(elsewhere.oneTimeCards[0]!)).toMatchObject({ ok: true, action: 'use' });
      const before = { seq: terminal.ledger.lastSeq(), batches: terminal.status().batches.length };
      const cases: [string, SmartCard][] = [
        ['cloned batch card', batchCopy],
        ['cloned batch card, marker copied too', elsewhere.batchCard.copyWithoutKey()],
        ['cloned one-time card spent on the first terminal', elsewhere.oneTimeCards[0]!.copyWithoutKey()],
        ["cloned one-time card of this terminal's batch", batch.oneTimeCards[5]!.copyWithoutKey()],
        ['cloned spent one-time card, on a chip with a key of its own', batch.oneTimeCards[0]!.copyWithoutKey({ ownKey: true })],
      ];
      for (const [what, card] of cases) {
        expect(await swipe(card), what).toMatchObject({ ok: false, code: 'CLONED_CARD' });
      }
      expect({ seq: terminal.ledger.lastSeq(), batches: terminal.status().batches.length }).toEqual(before);
      expect(harness.panel.shown.at(-1)).toMatchObject({ tone: 'refused' });
      // the genuine card whose copy was refused still works, once
      expect(await swipe(batch.oneTimeCards[5]!)).toMatchObject({ ok: true, serial: 6 });
      expect(terminal.ledger.verify()).toMatchObject({ ok: true });
    } finally {
      first.terminal.close();
      await first.reader.stop();
    }
  });

  it('a card pulled during the read leaves no use, and the same card then works', async () => {
    const card = batch.oneTimeCards[4]!;
    const usesBefore = terminal.ledger.verify().uses;
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    await harness.insert(card, { pullAtFirstApdu: true });
    expect((await decided).outcome).toMatchObject({ ok: false, code: 'CARD_REMOVED' });
    await harness.remove();
    expect(terminal.ledger.verify().uses).toBe(usesBefore);
    expect(await swipe(card)).toMatchObject({ ok: true, serial: 5 });
  });
});
