/**
 * The terminal on the serial backend and the simulated board (the real
 * protocol bytes, in memory): the board's DEVICE_STARTED is ACKed only once
 * the ledger has it. While the disk refuses it the board keeps it and sends it
 * again (no ACK), the start timeout does not release the use; once the disk is
 * back it is recorded once and ACKed, and the board goes on (DEVICE_FINISHED).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { createInMemorySerialReader } from '../../src/sim/SimulatedReaderFirmware.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { ManualScheduler } from '../../src/util/scheduler.js';
import { waitFor } from '../support/syncHarness.js';

describe('device events over the serial line are ACKed once recorded', () => {
  it('a start the disk refuses is not ACKed: the board resends it, the use is not released, and it is recorded once when the disk is back', async () => {
    const dir = tempDir('tally-serialack-');
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 2);
    const dataDir = `${dir}/data`;
    const provisioned = await provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'C1' });
    expect(await provisioned.swipe(batch.batchCard)).toMatchObject({ ok: true });
    provisioned.terminal.close();

    const { reader, firmware } = createInMemorySerialReader({
      firmware: { ackTimeoutMs: 40, eventRetryMs: 50, bootDelayMs: 1, device: { startDelayMs: 10 } },
      reader: { heartbeatMs: 0, reopenDelayMs: 20, timing: { ackTimeoutMs: 40, responseTimeoutMs: 2000, apduResponseTimeoutMs: 500 } },
    });
    // the board and the reader run on real timers; the terminal's (its start timeout) on a manual scheduler
    const timers = new ManualScheduler();
    const terminal = Terminal.open({ dataDir, device: reader.device, startTimeoutMs: 300, scheduler: timers });
    onTestFinished(async () => {
      await reader.stop();
      firmware.powerOff();
      terminal.close();
    });
    await firmware.booted();
    await reader.start();
    expect(reader.state).toBe('ready');

    terminal.ledger.database.exec(`CREATE TRIGGER disk_fault BEFORE INSERT ON ledger WHEN NEW.type = ${EntryType.USE_STARTED} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
    firmware.insertCard(batch.oneTimeCards[0]!);
    await waitFor(() => reader.currentSession() !== undefined, 5000, 'the card session');
    const outcome = await terminal.handleCard(reader.currentSession()!);
    expect(outcome).toMatchObject({ ok: true, action: 'use' });
    const seq = (outcome as { seq: number }).seq;
    firmware.removeCard();

    // longer than the start timeout: the board keeps sending the start, nobody releases the use
    await waitFor(() => reader.stats.eventsNotAccepted >= 3 && firmware.stats.resends >= 3, 5000, 'the start refused by the disk, resent three times');
    timers.advance(400);
    expect(terminal.ledger.useByReserveSeq(seq)?.state).toBe('reserved');
    expect(firmware.relay.closed).toBe(true);
    expect(firmware.stats.resends).toBeGreaterThanOrEqual(3);

    terminal.ledger.database.exec('DROP TRIGGER disk_fault');
    await waitFor(() => terminal.ledger.useByReserveSeq(seq)?.state === 'started', 5000, 'the start recorded');
    // the board's queue moves again: the card's removal and then the end of the session come through
    const notAcceptedBefore = reader.stats.eventsNotAccepted;
    firmware.finishDevice();
    await waitFor(() => terminal.ledger.useByReserveSeq(seq)?.state === 'completed', 5000, 'the end recorded');
    expect(reader.stats.eventsNotAccepted).toBe(notAcceptedBefore);
    const types = [...terminal.ledger.entries()]
      .map(parseLedgerEntry)
      .filter((e) => e.ref === seq)
      .map((e) => e.type);
    expect(types).toEqual([EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(terminal.ledger.verify()).toMatchObject({ ok: true, releases: 0 });
  });
});
