/**
 * Picks the reader backend the configuration names, importing only that one
 * (the PC/SC addon is not even loaded on a serial terminal).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TerminalConfig } from '../config/terminalConfig.js';
import type { CardReader, DeviceControl, OperatorPanel, PanelMessage } from '../readers/CardReader.js';
import type { Logger } from '../util/logger.js';

export interface ReaderBackend {
  readonly reader: CardReader;
  readonly panel: OperatorPanel;
  /** The relay; absent on a bare PC/SC reader (a use then completes at once) */
  readonly device?: DeviceControl;
  readonly close?: () => Promise<void>;
  /** For status: what the backend knows about its link */
  readonly stats?: () => Record<string, unknown>;
}

/** Display text goes to the log when the reader has no display of its own */
export function logPanel(log: Logger): OperatorPanel {
  return {
    show: async (message: PanelMessage) => log.info({ lines: message.lines, tone: message.tone, led: message.led }, 'display'),
  };
}

export async function createReaderBackend(config: TerminalConfig, log: Logger): Promise<ReaderBackend> {
  const reader = config.reader;
  switch (reader.backend) {
    case 'serial': {
      const { createSerialReader } = await import('../readers/serial/SerialReaderBackend.js');
      const backend = createSerialReader(reader.path, {
        baudRate: reader.baudRate,
        reopenDelayMs: reader.reopenDelayMs,
        logger: log,
        trace: (direction, raw, summary) => log.child({ ns: 'serial-frames' }).trace({ direction, hex: Buffer.from(raw).toString('hex'), summary }, 'frame'),
      });
      return { reader: backend, panel: backend, device: backend.device, stats: () => ({ ...backend.stats }) };
    }
    case 'pcsc': {
      const { createPcscCardReader } = await import('../readers/pcsc/PcscCardReader.js');
      const backend = createPcscCardReader({ ...(reader.readerName ? { readerName: reader.readerName } : {}), logger: log });
      return { reader: backend, panel: logPanel(log.child({ ns: 'panel' })), stats: () => ({ ...backend.stats }) };
    }
    case 'simulated':
      return createSimulatedBackend(config, log);
  }
}

/**
 * The simulated board, for trying the daemon without hardware: a card file
 * copied into <dataDir>/sim-slot/ is inserted, deleting it removes the card.
 */
async function createSimulatedBackend(config: TerminalConfig, log: Logger): Promise<ReaderBackend> {
  const { mkdirSync } = await import('node:fs');
  const { createInMemoryPair } = await import('../transports/InMemoryDuplex.js');
  const { SimulatedReaderFirmware } = await import('../sim/SimulatedReaderFirmware.js');
  const { createSerialReaderOver } = await import('../readers/serial/SerialReaderBackend.js');
  const { openCardFile } = await import('../sim/cardFile.js');
  const pair = createInMemoryPair({ a: 'daemon', b: 'simulated-mcu' });
  // the simulated board's NVM (its chain head) is a file of its own: on a real terminal it is on the board, not in the data folder's database
  const firmware = new SimulatedReaderFirmware({ device: { startDelayMs: 200, runMs: 2000 }, headFile: join(config.dataDir, 'sim-board', 'head.nvm') });
  firmware.attach(pair.b);
  firmware.powerOn();
  const backend = createSerialReaderOver(async () => pair.a, { name: 'Simulated board', logger: log, heartbeatMs: 0 });
  const slot = join(config.dataDir, 'sim-slot');
  mkdirSync(slot, { recursive: true });
  let inserted: string | undefined;
  const poll = setInterval(() => {
    const file = readdirSync(slot).filter((f) => f.endsWith('.json')).sort()[0];
    if (file === inserted) return;
    if (inserted) firmware.removeCard();
    inserted = file;
    if (!file) return;
    try {
      JSON.parse(readFileSync(join(slot, file), 'utf8'));
      firmware.insertCard(openCardFile(join(slot, file)));
      log.info({ file }, 'simulated card inserted');
    } catch (err) {
      log.warn({ file, err: (err as Error).message }, 'not a card file');
    }
  }, 200);
  poll.unref();
  return {
    reader: backend,
    panel: backend,
    device: backend.device,
    close: async () => clearInterval(poll),
    stats: () => ({ ...backend.stats, slot }),
  };
}
