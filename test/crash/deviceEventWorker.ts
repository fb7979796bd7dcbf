/**
 * Child process of the device event crash test: the terminal daemon's parts
 * (Terminal, the serial reader backend on a pty, TerminalDaemon) on a data
 * folder, talking to a simulated board that the parent runs. Between a device
 * session event's arrival and its recording it waits recordDelayMs (a slow
 * disk), so the parent's SIGKILL can land in that window. It prints
 * "ready <reader state>", "arrived <type> <useSeq>" and
 * "recorded <type> <useSeq> <true|false>".
 *
 * argv: dataDir serialPath recordDelayMs startTimeoutMs maxSessionMs
 */
import { writeSync } from 'node:fs';
import { TerminalDaemon } from '../../src/daemon/TerminalDaemon.js';
import type { DeviceControl } from '../../src/readers/CardReader.js';
import { createSerialReader } from '../../src/readers/serial/SerialReaderBackend.js';
import { Terminal } from '../../src/terminal/Terminal.js';

const [dataDir, serialPath, delayArg, startTimeoutArg, maxSessionArg] = process.argv.slice(2);
if (!dataDir || !serialPath) throw new Error('usage: deviceEventWorker dataDir serialPath [recordDelayMs] [startTimeoutMs] [maxSessionMs]');
const recordDelayMs = Number(delayArg ?? 40);

const say = (line: string): void => {
  writeSync(1, `${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const reader = createSerialReader(serialPath, { reopenDelayMs: 50 });
const board = reader.device;
// the board's device face, with a slow disk between an event's arrival and the ledger
const device: DeviceControl = {
  enable: (useSeq, maxMs, head) => board.enable(useSeq, maxMs, head),
  witness: () => board.witness!(),
  session: () => board.session?.(),
  disable: () => board.disable(),
  onEvent: (listener) =>
    board.onEvent(async (event) => {
      say(`arrived ${event.type} ${event.useSeq}`);
      await sleep(recordDelayMs);
      // the terminal answers whether the ledger has the event (the contract types it void)
      const recorded = (listener(event) as unknown) !== false;
      say(`recorded ${event.type} ${event.useSeq} ${recorded}`);
      return recorded;
    }),
};
const terminal = Terminal.open({ dataDir, device, startTimeoutMs: Number(startTimeoutArg ?? 2000), maxSessionMs: Number(maxSessionArg ?? 600_000) });
const daemon = new TerminalDaemon({ terminal, reader, panel: reader });
daemon.onSwipe((t) => say(`swipe ${t.outcome.ok ? `ok ${t.outcome.seq}` : `refused ${t.outcome.code}`}`));
await daemon.start();
say(`ready ${reader.state}`);
