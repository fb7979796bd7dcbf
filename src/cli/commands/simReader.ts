/**
 * `tally sim reader`: the simulated microcontroller board for people. It
 * speaks the real serial protocol on a serial device, or on a fresh socat pty
 * pair whose daemon-side path it prints, and reads commands from standard
 * input to insert and remove card files, reboot, and switch faults.
 */
import type { Readable } from 'node:stream';
import { TallyError } from '../../errors.js';
import { openCardFile } from '../../sim/cardFile.js';
import { SimulatedReaderFirmware, type SimulatedDeviceBehaviour } from '../../sim/SimulatedReaderFirmware.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { startPtyPair, type PtyPair } from '../../transports/PtyPair.js';
import { openSerialTransport } from '../../transports/SerialPortTransport.js';
import { integer } from '../args.js';
import { defineCommand, type CliIo } from '../command.js';
import { flagOption, valueOption } from '../options.js';
import { consoleCommand, readConsole } from '../console.js';

const CONSOLE_HELP = `commands:
  insert FILE        put the card saved in FILE into the slot (changes are saved back)
  remove             take the card out
  reboot             reset the board (watchdog): BOOT, relay opens, card power-cycled
  finish             the device ends its session (DEVICE_FINISHED)
  fault [TEXT]       the device reports a fault while running
  device MODE        normal | fault-before-start | fault-while-running | never-starts
  drop-ack N         do not ACK the next N frames from the daemon
  corrupt N          corrupt the CRC of the next N frames sent
  split on|off       write frames in random pieces
  head               show the chain head in the board's NVM
  clear-head         the service procedure: erase the held chain head
  status             show display, LEDs, buzzer, relay and slot
  quit               stop (a pty pair made here is removed)`;

export interface SimReaderOptions {
  /** A serial device to open; without it a socat pty pair is made */
  readonly device?: string;
  readonly card?: string;
  readonly trace?: boolean;
  readonly runMs?: number;
  /** The board's NVM (its chain head) in this file, kept across runs */
  readonly nvm?: string;
  /** 1: a board from before the chain-head witness */
  readonly protocolVersion?: 1 | 2;
}

export interface SimReaderHandle {
  readonly firmware: SimulatedReaderFirmware;
  /** The path the daemon opens (the pty's daemon side, or the device given) */
  readonly daemonPath: string;
  /** Runs one console command line; resolves false on quit */
  command(line: string): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts the board; the CLI wires its console to stdin, tests call command() directly */
export async function startSimReader(options: SimReaderOptions, io: CliIo): Promise<SimReaderHandle> {
  let pty: PtyPair | undefined;
  let transport: ByteTransport;
  let daemonPath: string;
  if (options.device) {
    transport = await openSerialTransport(options.device);
    daemonPath = options.device;
  } else {
    pty = await startPtyPair();
    transport = await openSerialTransport(pty.firmwarePath);
    daemonPath = pty.daemonPath;
  }
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
  const firmware = new SimulatedReaderFirmware({
    device: options.runMs === undefined ? {} : { runMs: options.runMs },
    ...(options.nvm ? { headFile: options.nvm } : {}),
    ...(options.protocolVersion ? { protocolVersion: options.protocolVersion } : {}),
    trace: options.trace ? (direction, raw) => io.out(`${direction === 'in' ? '<-' : '->'} ${hex(raw)}`) : undefined,
  });
  firmware.attach(transport);
  transport.onClose(() => io.err('serial line closed'));
  firmware.powerOn();
  if (options.card) {
    firmware.insertCard(openCardFile(options.card));
    io.out(`card ${options.card} inserted`);
  }

  const command = consoleCommand(
    {
      insert: (arg) => {
        if (!arg) throw new TallyError('USAGE', 'insert FILE');
        firmware.insertCard(openCardFile(arg));
        io.out(`card ${arg} inserted`);
      },
      remove: () => {
        io.out(firmware.removeCard() ? 'card removed' : 'the slot is empty');
      },
      reboot: () => {
        firmware.reboot();
        io.out('board reset');
      },
      finish: () => {
        firmware.finishDevice();
        io.out('device session finished');
      },
      fault: (arg) => {
        firmware.faultDevice(arg || 'operator-triggered fault');
        io.out('device fault reported');
      },
      device: (arg) => {
        const modes: SimulatedDeviceBehaviour[] = ['normal', 'fault-before-start', 'fault-while-running', 'never-starts'];
        if (!modes.includes(arg as SimulatedDeviceBehaviour)) throw new TallyError('USAGE', `device ${modes.join('|')}`);
        firmware.deviceBehaviour = arg as SimulatedDeviceBehaviour;
        io.out(`device behaviour: ${arg}`);
      },
      'drop-ack': (arg) => {
        firmware.faults.dropAcks = count(arg);
        io.out(`dropping the next ${firmware.faults.dropAcks} ACKs`);
      },
      corrupt: (arg) => {
        firmware.faults.corruptFrames = count(arg);
        io.out(`corrupting the next ${firmware.faults.corruptFrames} frames`);
      },
      split: (arg) => {
        firmware.faults.splitWrites = arg === 'on';
        io.out(`split writes ${firmware.faults.splitWrites ? 'on' : 'off'}`);
      },
      head: () => {
        const { seq, hash } = firmware.head;
        io.out(seq === 0 ? 'no chain head held' : `chain head seq ${seq} hash ${hex(hash)}`);
      },
      'clear-head': () => {
        firmware.clearHead();
        io.out('chain head erased');
      },
      status: () => {
        const { panel, relay } = firmware;
        io.out(`display   ${panel.lines.length ? panel.lines.map((l) => `[${l}]`).join(' ') : '(blank)'}`);
        io.out(`leds      green ${panel.leds.green}, red ${panel.leds.red}, amber ${panel.leds.amber} (0 off, 1 on, 2 slow, 3 fast)`);
        io.out(`buzzer    ${panel.buzzerCount} patterns, last ${panel.lastBuzzer.map((s) => `${s.onMs}/${s.offMs}`).join(' ') || '-'}`);
        io.out(`relay     ${relay.closed ? `closed for use ${relay.useSeq}${relay.running ? ', device running' : ''}` : 'open'}`);
        io.out(`slot      ${firmware.card ? 'card present' : 'empty'}`);
        io.out(`stats     ${JSON.stringify(firmware.stats)}`);
      },
    },
    CONSOLE_HELP,
    io,
  );

  return {
    firmware,
    daemonPath,
    command,
    async stop() {
      firmware.powerOff();
      firmware.detach();
      await transport.close().catch(() => undefined);
      await pty?.stop();
    },
  };
}

function count(text: string): number {
  const n = Number(text || '1');
  if (!Number.isInteger(n) || n < 0) throw new TallyError('USAGE', 'expected a whole number');
  return n;
}

/** Reads console lines until quit or end of input */
export function runConsole(handle: SimReaderHandle, input: Readable): Promise<void> {
  return readConsole(handle.command, input);
}

export const simReaderCommand = defineCommand(
  {
    path: 'sim reader',
    summary: 'run the simulated reader microcontroller on a serial line or a new pty pair',
    about: `Runs the terminal's microcontroller board, simulated, speaking the serial
firmware protocol (firmware-protocol/serial-protocol.md) with a card slot,
display, buzzer, LEDs and the relay of a simulated medical device.
Without --device it starts socat, prints the daemon-side path, and stops
socat when it ends.`,
    options: {
      device: valueOption('PATH', 'open this serial device (a UART, one end of your own pty pair) instead of making a pty pair with socat'),
      card: valueOption('FILE', 'start with this card file in the slot (see tally card new)'),
      'run-ms': valueOption('N', 'the device finishes its session N ms after it starts', { default: 'it runs until "finish", the time limit or disable' }),
      nvm: valueOption('FILE', "keep the board's non-volatile memory (the ledger's chain head, serial-protocol.md 6.5) in FILE across runs", { default: 'in memory' }),
      protocol: valueOption('1|2', '2 keeps the chain head; 1 is a board without it', { default: '2' }),
      trace: flagOption('print every frame in and out in hex'),
    },
    epilogue: `Then type commands on standard input:

${CONSOLE_HELP}`,
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    if (values.protocol !== undefined && values.protocol !== '1' && values.protocol !== '2') throw new TallyError('USAGE', '--protocol 1 or 2');
    const handle = await startSimReader(
      {
        ...(typeof values.device === 'string' ? { device: values.device } : {}),
        ...(typeof values.card === 'string' ? { card: values.card } : {}),
        ...(values['run-ms'] !== undefined ? { runMs: integer(values, 'run-ms') } : {}),
        ...(typeof values.nvm === 'string' ? { nvm: values.nvm } : {}),
        ...(values.protocol !== undefined ? { protocolVersion: Number(values.protocol) as 1 | 2 } : {}),
        trace: values.trace === true,
      },
      io,
    );
    io.out(`simulated reader board running; the daemon opens: ${handle.daemonPath}`);
    io.out('type help for commands');
    const stopOnSignal = () => process.stdin.destroy();
    process.once('SIGINT', stopOnSignal);
    process.once('SIGTERM', stopOnSignal);
    try {
      await runConsole(handle, process.stdin);
    } finally {
      process.off('SIGINT', stopOnSignal);
      process.off('SIGTERM', stopOnSignal);
      await handle.stop();
    }
    return 0;
  },
);
