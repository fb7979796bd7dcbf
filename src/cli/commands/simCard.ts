/**
 * `tally sim card`: the virtual card for people. It serves card files to a
 * vpcd slot of the pcscd that scripts/pcscd-start.sh runs (or starts one
 * itself with --start-pcscd), and reads commands from standard input to insert
 * and remove cards, so any PC/SC program (the terminal daemon, pcsc_scan,
 * scriptor) sees them as real cards.
 */
import type { Readable } from 'node:stream';
import { toHex } from '../../codecs/bytes.js';
import { TallyError } from '../../errors.js';
import { openCardFile } from '../../sim/cardFile.js';
import { DEFAULT_PCSCD_RUN_DIR, VirtualCard, vpcdSlotSocket, type VpcdEndpoint } from '../../sim/VirtualCard.js';
import { acquirePcscdLock, startVirtualCardPcscd, virtualPcdReaderName, type VirtualCardPcscd } from '../../sim/VirtualCardPcscd.js';
import { integer } from '../args.js';
import { defineCommand, type CliIo } from '../command.js';
import { flagOption, valueOption } from '../options.js';
import { consoleCommand, readConsole } from '../console.js';

const CONSOLE_HELP = `commands:
  insert FILE   put the card saved in FILE into the slot (changes are saved back)
  remove        take the card out
  pull-next     the card is pulled out when the next APDU reaches it
  status        show the slot and its counters
  quit          stop (removes the card; stops pcscd if --start-pcscd started it)`;

export interface SimCardOptions {
  readonly card?: string;
  /** vpcd slot, 0 or 1 */
  readonly slot?: number;
  readonly runDir?: string;
  /** A vpcd listening on TCP (set up by hand) instead of our Unix-socket bridge */
  readonly tcp?: { readonly host: string; readonly port: number };
  readonly startPcscd?: boolean;
  readonly trace?: boolean;
  readonly answerDelayMs?: number;
  /** How long insert waits for vpcd to poll the card */
  readonly insertTimeoutMs?: number;
}

export interface SimCardHandle {
  readonly slot: VirtualCard;
  readonly endpoint: VpcdEndpoint;
  readonly readerName: string;
  /** Runs one console command line; resolves false on quit */
  command(line: string): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts the slot (and pcscd if asked); the CLI wires its console to stdin, tests call command() */
export async function startSimCard(options: SimCardOptions, io: CliIo): Promise<SimCardHandle> {
  const slotNumber = options.slot ?? 0;
  if (slotNumber !== 0 && slotNumber !== 1) throw new TallyError('USAGE', '--slot must be 0 or 1 (vpcd has two slots)');
  const runDir = options.runDir ?? DEFAULT_PCSCD_RUN_DIR;
  let pcscd: VirtualCardPcscd | undefined;
  let releaseLock: (() => void) | undefined;
  if (options.startPcscd) {
    releaseLock = await acquirePcscdLock(5000);
    try {
      pcscd = await startVirtualCardPcscd({ runDir });
    } catch (err) {
      releaseLock();
      throw err;
    }
    io.out(`pcscd started (pid ${pcscd.pcscdPid}); stop it with quit`);
  }
  const endpoint: VpcdEndpoint = options.tcp ?? { path: vpcdSlotSocket(slotNumber, runDir) };
  const insertTimeoutMs = options.insertTimeoutMs ?? 5000;
  const slot = new VirtualCard({
    endpoint,
    ...(options.answerDelayMs ? { answerDelayMs: options.answerDelayMs } : {}),
    ...(options.trace ? { trace: (direction: 'apdu' | 'response', bytes: Uint8Array) => io.out(`${direction === 'apdu' ? '->' : '<-'} ${toHex(bytes)}`) } : {}),
  });
  const readerName = virtualPcdReaderName(slotNumber);

  const insert = async (file: string): Promise<void> => {
    await slot.insert(openCardFile(file), { timeoutMs: insertTimeoutMs }).catch((err: unknown) => {
      // the card stays in the slot and is seen as soon as pcscd polls it
      io.err(`${(err as Error).message}; the card stays in the slot`);
    });
    io.out(`card ${file} inserted into ${readerName}${slot.isPolled ? '' : ' (pcscd has not polled it yet)'}`);
  };

  const command = consoleCommand(
    {
      insert: async (arg) => {
        if (!arg) throw new TallyError('USAGE', 'insert FILE');
        await insert(arg);
      },
      remove: async () => {
        const had = slot.isInserted;
        await slot.remove();
        io.out(had ? 'card removed' : 'the slot is empty');
      },
      'pull-next': () => {
        slot.removeDuringNextApdu();
        io.out('the card will be pulled out at the next APDU');
      },
      status: () => {
        io.out(`slot      ${readerName} via ${'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`}`);
        io.out(`card      ${slot.isInserted ? (slot.isPolled ? 'inserted, seen by vpcd' : 'inserted, waiting for vpcd') : 'none'}`);
        io.out(`stats     ${JSON.stringify(slot.stats)}`);
      },
    },
    CONSOLE_HELP,
    io,
  );

  if (options.card) await insert(options.card);

  return {
    slot,
    endpoint,
    readerName,
    command,
    async stop() {
      await slot.remove();
      if (pcscd) {
        await pcscd.stop();
        io.out('pcscd stopped');
      }
      releaseLock?.();
    },
  };
}

/** Reads console lines until quit or end of input */
export function runSimCardConsole(handle: SimCardHandle, input: Readable): Promise<void> {
  return readConsole(handle.command, input);
}

export const simCardCommand = defineCommand(
  {
    path: 'sim card',
    summary: 'serve card files to pcscd as a virtual card (vpcd); insert and remove at will',
    about: `Puts simulated card files (see tally card new) into a slot of the virtual
reader "Tallystick Virtual PCD" of pcscd, through Debian's vpcd driver, so the
terminal daemon (reader backend pcsc), pcsc_scan and scriptor see them as real
cards. pcscd must run with our reader file: sudo scripts/pcscd-start.sh (stop
it with scripts/pcscd-stop.sh), or pass --start-pcscd to start and stop it here.`,
    options: {
      card: valueOption('FILE', 'start with this card in the slot'),
      slot: valueOption('0|1', 'vpcd slot: reader "... 00 00" or "... 00 01"', { default: '0' }),
      'start-pcscd': flagOption('start pcscd now and stop it on quit (needs root)'),
      'run-dir': valueOption('DIR', 'where pcscd-start.sh keeps its sockets', { default: DEFAULT_PCSCD_RUN_DIR }),
      tcp: valueOption('HOST:PORT', 'connect to a vpcd you configured yourself on TCP instead'),
      'answer-delay-ms': valueOption('N', 'answer each APDU after N ms, like a real contact card'),
      trace: flagOption('print every APDU and response in hex'),
    },
    epilogue: `Then type commands on standard input:

${CONSOLE_HELP}`,
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    let tcp: { host: string; port: number } | undefined;
    if (typeof values.tcp === 'string') {
      const match = /^(.+):(\d+)$/.exec(values.tcp);
      if (!match?.[1] || !match[2]) throw new TallyError('USAGE', '--tcp HOST:PORT');
      tcp = { host: match[1], port: Number(match[2]) };
    }
    const handle = await startSimCard(
      {
        ...(typeof values.card === 'string' ? { card: values.card } : {}),
        slot: integer(values, 'slot', 0),
        ...(typeof values['run-dir'] === 'string' ? { runDir: values['run-dir'] } : {}),
        ...(tcp ? { tcp } : {}),
        startPcscd: values['start-pcscd'] === true,
        trace: values.trace === true,
        answerDelayMs: integer(values, 'answer-delay-ms', 0),
      },
      io,
    );
    io.out(`virtual card slot ready: ${handle.readerName}; type help for commands`);
    const stopOnSignal = () => process.stdin.destroy();
    process.once('SIGINT', stopOnSignal);
    process.once('SIGTERM', stopOnSignal);
    try {
      await runSimCardConsole(handle, process.stdin);
    } finally {
      process.off('SIGINT', stopOnSignal);
      process.off('SIGTERM', stopOnSignal);
      await handle.stop();
    }
    return 0;
  },
);
