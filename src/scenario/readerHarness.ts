/**
 * The two real reader stacks, each with a slot a test or benchmark can put
 * cards into: the serial backend over a socat pty pair to the simulated
 * microcontroller, and the PC/SC backend through a real pcscd with vpcd and
 * our virtual card. The contract suite and the swipe benchmark run the same
 * scenarios over both. On PC/SC the virtual card can run in this process or
 * in a child of its own (as a real card is its own device).
 */
import type { SmartCard } from '../card/ApduChannel.js';
import type { CardTimingModel } from '../sim/cardTiming.js';
import { createPcscCardReader } from '../readers/pcsc/PcscCardReader.js';
import type { CardReader, CardSession, DeviceControl, OperatorPanel, PanelMessage } from '../readers/CardReader.js';
import { createSerialReader } from '../readers/serial/SerialReaderBackend.js';
import { SimulatedDevice } from '../sim/SimulatedDevice.js';
import { SimulatedReaderFirmware } from '../sim/SimulatedReaderFirmware.js';
import { SimulatedCard } from '../sim/SimulatedCard.js';
import { VirtualCard } from '../sim/VirtualCard.js';
import { acquirePcscdLock, startVirtualCardPcscd } from '../sim/VirtualCardPcscd.js';
import { VirtualCardProcess } from '../sim/VirtualCardProcess.js';
import { TallyError } from '../errors.js';
import { startPtyPair } from '../transports/PtyPair.js';
import { openSerialTransport } from '../transports/SerialPortTransport.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReaderHarness {
  readonly name: 'serial' | 'pcsc';
  readonly reader: CardReader;
  readonly panel: OperatorPanel & { readonly shown: PanelMessage[] };
  readonly device: DeviceControl;
  /** pullAtFirstApdu: the card is pulled out when the first APDU reaches it */
  insert(card: SmartCard, options?: { pullAtFirstApdu?: boolean }): Promise<void>;
  remove(): Promise<void>;
  /** APDUs the card has answered so far */
  apdus(): number;
  close(): Promise<void>;
}

function recordingPanel(inner?: OperatorPanel): OperatorPanel & { shown: PanelMessage[] } {
  const shown: PanelMessage[] = [];
  return {
    shown,
    show: async (message) => {
      shown.push(message);
      await inner?.show(message);
    },
  };
}

/** Waits for the reader to report the next card present */
export function nextSession(reader: CardReader, timeoutMs = 10_000): Promise<CardSession> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no card-inserted event'));
    }, timeoutMs);
    const off = reader.onEvent((event) => {
      if (event.type === 'card-inserted') {
        clearTimeout(timer);
        off();
        resolve(event.session);
      }
    });
  });
}

/** Waits for the reader to report the current card gone */
export function nextRemoval(reader: CardReader, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no card-removed event'));
    }, timeoutMs);
    const off = reader.onEvent((event) => {
      if (event.type === 'card-removed') {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}

export async function startSerialHarness(device: { startDelayMs?: number; runMs?: number } = { startDelayMs: 1, runMs: 2 }, card: { cardTiming?: CardTimingModel } = {}): Promise<ReaderHarness> {
  const pty = await startPtyPair();
  const firmware = new SimulatedReaderFirmware({ device: { startDelayMs: device.startDelayMs ?? 1, runMs: device.runMs ?? 2 }, ...(card.cardTiming ? { cardTiming: card.cardTiming } : {}) });
  const firmwareSide = await openSerialTransport(pty.firmwarePath);
  firmware.attach(firmwareSide);
  firmware.powerOn();
  const backend = createSerialReader(pty.daemonPath, { heartbeatMs: 0, reopenDelayMs: 50 });
  await backend.start();
  let apdusAtStart = firmware.stats.apdus;
  return {
    name: 'serial',
    reader: backend,
    panel: recordingPanel(backend),
    device: backend.device,
    insert: async (card, options) => {
      apdusAtStart = firmware.stats.apdus;
      if (options?.pullAtFirstApdu) firmware.faults.pullCard = { atApdu: 1, when: 'before' };
      firmware.insertCard(card);
    },
    remove: async () => void firmware.removeCard(),
    apdus: () => firmware.stats.apdus - apdusAtStart,
    close: async () => {
      await backend.stop();
      firmware.detach();
      await firmwareSide.close();
      await pty.stop();
    },
  };
}

export interface PcscHarnessOptions {
  /**
   * 'in-process' (default): the virtual card answers APDUs in this process, any SmartCard;
   * 'child-process': in a process of its own (VirtualCardProcess), SimulatedCards only,
   * so this process does only the reader's work per APDU.
   */
  readonly card?: 'in-process' | 'child-process';
  /** Where pcscd's run dir (sockets, pid files, its log) is made; default the OS temp dir */
  readonly runDirParent?: string;
  /** A real chip's time per APDU (sim/cardTiming.ts); default none */
  readonly cardTiming?: CardTimingModel;
}

/** A vpcd slot as the harness uses it, whichever process the card runs in */
interface CardSlot {
  insert(card: SmartCard, pullAtFirstApdu: boolean): Promise<void>;
  remove(): Promise<void>;
  apdus(): number;
  close(): Promise<void>;
}

function inProcessSlot(slot: VirtualCard): CardSlot {
  return {
    insert: async (card, pullAtFirstApdu) => {
      await slot.insert(card);
      // armed once vpcd has polled the card, before pcscd reports it to the daemon
      if (pullAtFirstApdu) slot.removeDuringNextApdu();
    },
    remove: () => slot.remove(),
    apdus: () => slot.stats.apdus,
    close: () => slot.close(),
  };
}

function childProcessSlot(slot: VirtualCardProcess): CardSlot {
  return {
    insert: async (card, pullAtFirstApdu) => {
      if (!(card instanceof SimulatedCard)) throw new TallyError('USAGE', 'a virtual card in its own process takes SimulatedCards only (their state is sent to it)');
      await slot.insert(card, { pullAtFirstApdu });
    },
    remove: () => slot.remove(),
    // the child's count as of its last answer: read it after insert or remove
    apdus: () => slot.stats.apdus,
    close: () => slot.close(),
  };
}

export async function startPcscHarness(options: PcscHarnessOptions = {}): Promise<ReaderHarness> {
  const releaseLock = await acquirePcscdLock();
  const runDir = mkdtempSync(join(options.runDirParent ?? tmpdir(), 'tally-pcscd-'));
  let pcscd: Awaited<ReturnType<typeof startVirtualCardPcscd>> | undefined;
  try {
    pcscd = await startVirtualCardPcscd({ runDir });
    const endpoint = pcscd.slotEndpoint(0);
    const timing = options.cardTiming ? { cardTiming: options.cardTiming } : {};
    const slot = options.card === 'child-process' ? childProcessSlot(await VirtualCardProcess.start({ endpoint, ...timing })) : inProcessSlot(new VirtualCard({ endpoint, ...timing }));
    const reader = createPcscCardReader({ readerName: pcscd.readerNames[0]!, retry: { initialMs: 50, maxMs: 400 } });
    await reader.start();
    // a USB reader has no relay: the contract still runs the two-phase use through a simulated one
    const device = new SimulatedDevice({ startDelayMs: 1, runMs: 2 });
    let apdusAtStart = 0;
    const started = pcscd;
    return {
      name: 'pcsc',
      reader,
      panel: recordingPanel(),
      device,
      insert: async (card, insertOptions) => {
        apdusAtStart = slot.apdus();
        await slot.insert(card, insertOptions?.pullAtFirstApdu === true);
      },
      // pcscd polls presence every 0.4 s: wait until it has seen the card go, as a person's hand would
      remove: async () => {
        const gone = reader.currentSession() ? nextRemoval(reader, 5000) : Promise.resolve();
        await slot.remove();
        await gone;
      },
      apdus: () => slot.apdus() - apdusAtStart,
      close: async () => {
        device.stop();
        await reader.stop();
        await slot.close();
        await started.stop();
        rmSync(runDir, { recursive: true, force: true });
        releaseLock();
      },
    };
  } catch (err) {
    await pcscd?.stop().catch(() => undefined);
    rmSync(runDir, { recursive: true, force: true });
    releaseLock();
    throw err;
  }
}
