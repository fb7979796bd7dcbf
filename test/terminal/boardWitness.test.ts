/**
 * The relay board as a rollback witness (serial-protocol.md §6.5): the board
 * keeps the ledger's chain head in its NVM (here the simulated board's head
 * file, which outlives the board's power cycle), so a terminal database
 * restored from an old copy cannot close the relay. The terminal fails closed
 * with LEDGER_ROLLBACK (shown on the board's display at once), records the
 * finding as a signed entry for the server, and the board itself refuses the
 * stale head even when the terminal's own check is bypassed. Over the
 * in-memory pair and over a real socat pty pair; and a protocol 1 board
 * (no witness) with and without requireBoardWitness.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { TerminalDaemon } from '../../src/daemon/TerminalDaemon.js';
import { operatorMessage, type Locale } from '../../src/errors.js';
import type { DeviceControl } from '../../src/readers/CardReader.js';
import { createSerialReader, createSerialReaderOver, type SerialReaderBackend } from '../../src/readers/serial/SerialReaderBackend.js';
import { Issuer, provisionTerminal, tempDir, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { SimulatedReaderFirmware } from '../../src/sim/SimulatedReaderFirmware.js';
import { Terminal, type SwipeOutcome } from '../../src/terminal/Terminal.js';
import { createInMemoryPair } from '../../src/transports/InMemoryDuplex.js';
import { startPtyPair } from '../../src/transports/PtyPair.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { bothVerdicts } from '../support/pythonVerifier.js';
import { waitFor } from '../support/syncHarness.js';

const TIMING = { ackTimeoutMs: 60, responseTimeoutMs: 1000, apduResponseTimeoutMs: 1000 };

interface Board {
  readonly firmware: SimulatedReaderFirmware;
  readonly reader: SerialReaderBackend;
  close(): Promise<void>;
}

type Wire = 'memory' | 'pty';

/** A powered simulated board (its NVM in headFile) and the serial backend on the wire named */
async function startBoard(wire: Wire, headFile: string, protocolVersion: 1 | 2 = 2): Promise<Board> {
  const firmware = new SimulatedReaderFirmware({ headFile, protocolVersion, ackTimeoutMs: 60, bootDelayMs: 1, device: { startDelayMs: 2, runMs: 5 } });
  firmware.powerOn();
  if (wire === 'memory') {
    const reader = createSerialReaderOver(
      async () => {
        const pair = createInMemoryPair({ a: 'daemon', b: 'board' });
        firmware.attach(pair.b);
        return pair.a;
      },
      { timing: TIMING, heartbeatMs: 0, reopenDelayMs: 20 },
    );
    await firmware.booted();
    return { firmware, reader, close: async () => { await reader.stop(); firmware.powerOff(); } };
  }
  const pty = await startPtyPair();
  const boardEnd = await openSerialTransport(pty.firmwarePath);
  firmware.attach(boardEnd);
  const reader = createSerialReader(pty.daemonPath, { timing: TIMING, heartbeatMs: 0, reopenDelayMs: 50 });
  return {
    firmware,
    reader,
    close: async () => {
      await reader.stop();
      firmware.powerOff();
      await boardEnd.close().catch(() => undefined);
      await pty.stop();
    },
  };
}

async function swipeOn(board: Board, terminal: Terminal, card: Parameters<SimulatedReaderFirmware['insertCard']>[0]): Promise<SwipeOutcome> {
  board.firmware.insertCard(card);
  await waitFor(() => board.reader.currentSession() !== undefined, 5000, 'the card session');
  const outcome = await terminal.handleCard(board.reader.currentSession()!);
  board.firmware.removeCard();
  await waitFor(() => terminal.ledger.openUses().length === 0, 5000, 'the use to end');
  // over the pty the removal arrives later: without this the next swipe could take this card's old session
  await waitFor(() => board.reader.currentSession() === undefined, 5000, 'the card removal');
  return outcome;
}

/** A terminal provisioned with its batch loaded (seq 2), and a copy of its database taken then */
async function terminalWithBackup(prefix: string): Promise<{ dir: string; dataDir: string; issuer: Issuer; batch: IssuedBatch; restore(): void }> {
  const dir = tempDir(prefix);
  const issuer = await new Issuer(dir).init();
  onTestFinished(() => issuer.close());
  const batch = await issuer.makeBatch('C1', 4);
  const dataDir = join(dir, 'data');
  const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-RB', clinicCode: 'C1' });
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded', seq: 2 });
  rig.terminal.close();
  const db = join(dataDir, 'terminal.db');
  copyFileSync(db, join(dir, 'backup.db'));
  return {
    dir,
    dataDir,
    issuer,
    batch,
    restore: () => {
      rmSync(`${db}-wal`, { force: true });
      rmSync(`${db}-shm`, { force: true });
      copyFileSync(join(dir, 'backup.db'), db);
    },
  };
}

describe.each(['memory', 'pty'] as const)('a restored old database on a relay board (%s)', (wire) => {
  it('cannot enable the device: the board holds a later head, the terminal fails closed, records and shows it', async () => {
    const locale: Locale = wire === 'pty' ? 'zh' : 'en';
    const { dir, dataDir, batch, restore } = await terminalWithBackup(`tally-boardwitness-${wire}-`);
    const headFile = join(dir, 'board-nvm.bin');

    // two uses on the relay board: its NVM now holds the head of the second
    const first = await startBoard(wire, headFile);
    await first.reader.start();
    const terminal = Terminal.open({ dataDir, device: first.reader.device, startTimeoutMs: 2000 });
    expect(await swipeOn(first, terminal, batch.oneTimeCards[0]!)).toMatchObject({ ok: true, action: 'use', seq: 3 });
    expect(await swipeOn(first, terminal, batch.oneTimeCards[1]!)).toMatchObject({ ok: true, action: 'use', seq: 6 });
    expect(first.firmware.head.seq).toBe(6);
    expect(Buffer.from(first.firmware.head.hash).toString('hex')).toBe(Buffer.from(terminal.ledger.entryHashAt(6)!.subarray(0, 8)).toString('hex'));
    terminal.close();
    await first.close();

    // the database goes back to the copy taken at seq 2; the board is power-cycled (a new board process, same NVM)
    restore();
    const board = await startBoard(wire, headFile);
    onTestFinished(() => board.close());
    expect(board.firmware.head.seq).toBe(6);
    const restored = Terminal.open({ dataDir, device: board.reader.device, startTimeoutMs: 2000, locale });
    onTestFinished(() => restored.close());
    expect(restored.ledger.lastSeq()).toBe(2);
    const daemon = new TerminalDaemon({ terminal: restored, reader: board.reader, panel: board.reader, locale });
    await daemon.start();
    onTestFinished(() => daemon.stop());

    // out of service as soon as the board is synced, before any card: the display says why
    await waitFor(() => board.firmware.panel.lines[0] === operatorMessage('LEDGER_ROLLBACK', locale), 5000, 'the rollback on the display');
    expect(restored.status().rollback).toMatchObject({ witness: 'board', witnessSeq: 6, ledgerSeq: 2 });

    board.firmware.insertCard(batch.oneTimeCards[2]!);
    await waitFor(() => daemon.lastOutcome !== undefined, 5000, 'the swipe decided');
    await daemon.settled();
    expect(daemon.lastOutcome).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK', message: operatorMessage('LEDGER_ROLLBACK', locale) });
    expect(board.firmware.relay.closed).toBe(false);

    // recorded once, signed and chained, for the server: no use was reserved on the restored ledger
    const added = [...restored.ledger.entries()].map(parseLedgerEntry).filter((e) => e.seq > 2);
    expect(added.map((e) => e.type)).toEqual([EntryType.WITNESS_ROLLBACK]);
    expect(added[0]).toMatchObject({ ref: 6 });
    expect(added[0]!.detail).toMatch(/^board: relay board holds seq 6 .*ends at seq 2/);
    expect(restored.ledger.verify()).toMatchObject({ ok: true });
    const both = bothVerdicts(dir, restored.ledger); // and the Python verifier, from the spec alone, alike
    expect(both.py).toEqual(both.ts);
    expect(restored.ledger.pending(10).map((p) => p.seq)).toContain(3);

    // the board refuses the stale head by itself, whatever the host believes
    await expect(board.reader.device.enable(3, 0, { seq: 3, hash: restored.ledger.entryHashAt(3)! })).rejects.toMatchObject({ code: 'BOARD_HEAD_REFUSED' });
    expect(board.firmware.relay.closed).toBe(false);
    expect(board.firmware.stats.headsRefused).toBe(1);
    expect(board.firmware.head.seq).toBe(6);
  });
});

describe('the board refuses the head even when the terminal does not look first', () => {
  it('a terminal that cannot see the witness reserves, the board refuses the relay, the use is released and the terminal latches the rollback', async () => {
    const { dir, dataDir, batch, restore } = await terminalWithBackup('tally-boardwitness-blind-');
    const headFile = join(dir, 'board-nvm.bin');
    const first = await startBoard('memory', headFile);
    await first.reader.start();
    const terminal = Terminal.open({ dataDir, device: first.reader.device, startTimeoutMs: 2000 });
    expect(await swipeOn(first, terminal, batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(await swipeOn(first, terminal, batch.oneTimeCards[1]!)).toMatchObject({ ok: true, seq: 6 });
    terminal.close();
    await first.close();

    restore();
    const board = await startBoard('memory', headFile);
    onTestFinished(() => board.close());
    await board.reader.start();
    // the relay without its witness() face: the terminal's own check sees nothing, only the board decides
    const blind: DeviceControl = {
      enable: (useSeq, maxMs, head) => board.reader.device.enable(useSeq, maxMs, head),
      disable: () => board.reader.device.disable(),
      onEvent: (listener) => board.reader.device.onEvent(listener),
    };
    const restored = Terminal.open({ dataDir, device: blind, startTimeoutMs: 2000 });
    onTestFinished(() => restored.close());
    expect(await swipeOn(board, restored, batch.oneTimeCards[2]!)).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK' });
    expect(board.firmware.stats.headsRefused).toBe(1);
    expect(board.firmware.relay.closed).toBe(false);
    const added = [...restored.ledger.entries()].map(parseLedgerEntry).filter((e) => e.seq > 2);
    // reserved at 3, released (the relay never closed: not charged), the board's finding recorded
    expect(added.map((e) => e.type)).toEqual([EntryType.USE_RESERVED, EntryType.USE_RELEASED, EntryType.WITNESS_ROLLBACK]);
    expect(added[2]).toMatchObject({ ref: 6 });
    // latched: the next card is refused before anything is reserved, though the ledger has grown to seq 5
    expect(await swipeOn(board, restored, batch.oneTimeCards[3]!)).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK' });
    expect(restored.ledger.lastSeq()).toBe(5);
    expect(board.firmware.stats.headsRefused).toBe(1);
  });
});

describe('a relay board without the head witness (protocol 1)', () => {
  it('still runs the device by default, and is refused with BOARD_WITNESS_MISSING when the witness is required', async () => {
    const { dir, dataDir, batch } = await terminalWithBackup('tally-boardwitness-v1-');
    const board = await startBoard('memory', join(dir, 'nvm.bin'), 1);
    onTestFinished(() => board.close());
    await board.reader.start();
    expect(board.reader.device.witness!()).toEqual({ kind: 'none', protocolVersion: 1 });
    const lenient = Terminal.open({ dataDir, device: board.reader.device, startTimeoutMs: 2000 });
    expect(await swipeOn(board, lenient, batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(board.firmware.head.seq).toBe(0);
    lenient.close();
    const strict = Terminal.open({ dataDir, device: board.reader.device, startTimeoutMs: 2000, requireBoardWitness: true, locale: 'zh' });
    onTestFinished(() => strict.close());
    expect(await swipeOn(board, strict, batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'BOARD_WITNESS_MISSING', message: operatorMessage('BOARD_WITNESS_MISSING', 'zh') });
    expect(board.firmware.relay.closed).toBe(false);
  });
});
