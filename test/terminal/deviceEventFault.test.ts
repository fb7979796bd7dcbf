/**
 * A relay board's session events when the ledger cannot write them (a storage
 * fault): the event is kept and retried, the use ends in the state the device
 * reported (a session that ran is never refunded because its "started" was
 * lost), swipes are refused with STORAGE_FAULT meanwhile, and the terminal
 * serves again as soon as the ledger takes the events, without a restart.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { SmartCard } from '../../src/card/ApduChannel.js';
import { EntryType, parseLedgerEntry, type EntryTypeValue } from '../../src/codecs/ledgerEntry.js';
import type { DeviceControl, DeviceEvent } from '../../src/readers/CardReader.js';
import { Issuer, provisionTerminal, tempDir, type IssuedBatch, type TerminalRig } from '../../src/scenario/CardWorld.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { ManualScheduler } from '../../src/util/scheduler.js';

/** A relay board the test drives by hand: it reports what the test says, when it says */
class HandRelay implements DeviceControl {
  private readonly listeners = new Set<(event: DeviceEvent) => void>();
  enabled: number[] = [];
  disables = 0;
  async enable(useSeq: number): Promise<void> {
    this.enabled.push(useSeq);
  }
  async disable(): Promise<void> {
    this.disables++;
  }
  onEvent(listener: (event: DeviceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  report(event: DeviceEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

/** The terminal's timers (start timeout, record retries) run on a manual scheduler the test moves */
async function relayTerminal(startTimeoutMs = 30_000): Promise<{ rig: TerminalRig; relay: HandRelay; batch: IssuedBatch; dataDir: string; timers: ManualScheduler }> {
  const dir = tempDir('tally-devfault-');
  const issuer = await new Issuer(dir).init();
  onTestFinished(() => issuer.close());
  const batch = await issuer.makeBatch('C1', 4);
  const dataDir = `${dir}/data`;
  const provisioned = await provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'C1' });
  provisioned.terminal.close();
  const relay = new HandRelay();
  const timers = new ManualScheduler();
  const terminal = Terminal.open({ dataDir, device: relay, startTimeoutMs, scheduler: timers });
  onTestFinished(() => terminal.close());
  const rig: TerminalRig = {
    terminal,
    reader: provisioned.reader,
    swipe: async (card: SmartCard) => {
      const session = provisioned.reader.insert(card);
      try {
        return await terminal.handleCard(session);
      } finally {
        provisioned.reader.remove();
      }
    },
  };
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
  return { rig, relay, batch, dataDir, timers };
}

/** The disk fails on every entry of these types (all entries when none is given) */
function failWrites(terminal: Terminal, ...types: EntryTypeValue[]): () => void {
  const when = types.length > 0 ? `WHEN NEW.type IN (${types.join(', ')})` : '';
  terminal.ledger.database.exec(`CREATE TRIGGER disk_fault BEFORE INSERT ON ledger ${when} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
  return () => terminal.ledger.database.exec('DROP TRIGGER disk_fault');
}

function sessionEntries(terminal: Terminal, useSeq: number): { type: number; detail?: string }[] {
  return [...terminal.ledger.entries()]
    .map(parseLedgerEntry)
    .filter((e) => e.ref === useSeq)
    .map((e) => ({ type: e.type, ...(e.detail !== undefined ? { detail: e.detail } : {}) }));
}

describe('a device event the ledger cannot record', () => {
  it('a lost "started": swipes get STORAGE_FAULT, the start timeout does not refund the running session, and once the disk is back the start is recorded and the terminal serves again', async () => {
    const { rig, relay, batch, timers } = await relayTerminal(300);
    const use = await rig.swipe(batch.oneTimeCards[0]!);
    expect(use).toMatchObject({ ok: true, seq: 3 });
    const heal = failWrites(rig.terminal, EntryType.USE_STARTED);
    relay.report({ type: 'started', useSeq: 3 });
    expect(rig.terminal.status()).toMatchObject({ unrecordedDeviceEvents: 1, openUses: 1 });
    // longer than the start timeout: the device did start, so the use must not be released nor the relay opened
    timers.advance(600);
    expect(relay.disables).toBe(0);
    expect(rig.terminal.ledger.useByReserveSeq(3)?.state).toBe('reserved');
    // the operator is told the truth: the terminal cannot record, not "busy"
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'STORAGE_FAULT' });

    heal();
    // the retries back off (500 ms, then 1 s, ...): the next one falls within a second
    expect(rig.terminal.status().unrecordedDeviceEvents).toBe(1);
    timers.advance(1000);
    expect(rig.terminal.status().unrecordedDeviceEvents, 'the start recorded by a retry').toBe(0);
    expect(sessionEntries(rig.terminal, 3)).toEqual([{ type: EntryType.USE_STARTED, detail: 'recorded late after a storage fault' }]);
    // the session still runs: one at a time
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'BUSY' });
    relay.report({ type: 'finished', useSeq: 3 });
    expect(rig.terminal.ledger.useByReserveSeq(3)?.state).toBe('completed');
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true });
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, releases: 0 });
  });

  it('a lost "started", then the device faults while running: the use failed (charged), it is not released as a fault before start', async () => {
    const { rig, relay, batch, timers } = await relayTerminal();
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    const heal = failWrites(rig.terminal, EntryType.USE_STARTED);
    relay.report({ type: 'started', useSeq: 3 });
    relay.report({ type: 'fault', useSeq: 3, detail: 'scanner fault E42' });
    expect(rig.terminal.ledger.useByReserveSeq(3)?.state).toBe('reserved');
    heal();
    expect(rig.terminal.status().unrecordedDeviceEvents).toBe(1);
    timers.advance(500);
    expect(rig.terminal.status().unrecordedDeviceEvents, 'the events recorded by the first retry').toBe(0);
    expect(sessionEntries(rig.terminal, 3)).toEqual([
      { type: EntryType.USE_STARTED, detail: 'start reported by the device, recorded late after a storage fault' },
      { type: EntryType.USE_FAILED, detail: 'scanner fault E42' },
    ]);
    expect(rig.terminal.status().batches[0]).toMatchObject({ used: 1 });
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true });
  });

  it('the disk down for the whole session: after it the terminal refuses with STORAGE_FAULT, and the first swipe after the disk is back records the session and is served', async () => {
    const { rig, relay, batch } = await relayTerminal();
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    const heal = failWrites(rig.terminal);
    relay.report({ type: 'started', useSeq: 3 });
    relay.report({ type: 'finished', useSeq: 3 });
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'STORAGE_FAULT' });
    expect(rig.terminal.status()).toMatchObject({ unrecordedDeviceEvents: 1, openUses: 1 });
    heal();
    // no wait for the back-off: a swipe tries the owed events first
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true });
    expect(sessionEntries(rig.terminal, 3).map((e) => e.type)).toEqual([EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, releases: 0 });
  });

  it('a stop (SIGTERM) while the start is unrecorded leaves the running device alone and does not refund the use', async () => {
    const { rig, relay, batch } = await relayTerminal();
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    const heal = failWrites(rig.terminal, EntryType.USE_STARTED);
    relay.report({ type: 'started', useSeq: 3 });
    await rig.terminal.prepareStop();
    expect(relay.disables).toBe(0);
    expect(rig.terminal.ledger.useByReserveSeq(3)?.state).toBe('reserved');
    heal();
    // its last try before the process ends
    await rig.terminal.prepareStop();
    expect(rig.terminal.ledger.useByReserveSeq(3)?.state).toBe('started');
    expect(relay.disables).toBe(0);
  });
});
