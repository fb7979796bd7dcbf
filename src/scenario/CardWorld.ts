/**
 * A complete card world in one process: an issuing station with its mother,
 * white and batch cards, a batch of one-time cards, and a provisioned
 * terminal that has loaded the batch. The demo, the benchmarks, the tests and
 * the fleet simulator build on it. A composition root: it may import any
 * layer, and nothing but roots imports it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directChannel, type SmartCard } from '../card/ApduChannel.js';
import type { Locale } from '../errors.js';
import { IssuingRegistry } from '../issuing/IssuingRegistry.js';
import { IssuingStation, type BatchResult, type MotherResult } from '../issuing/IssuingStation.js';
import type { DeviceControl } from '../readers/CardReader.js';
import { SimulatedCard } from '../sim/SimulatedCard.js';
import { SimulatedReader } from '../sim/SimulatedReader.js';
import { Terminal, type SwipeOutcome } from '../terminal/Terminal.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';

export const DEMO_MOTHER_PIN = '246810';
export const DEMO_WHITE_PIN = '1357';

export { directChannel } from '../card/ApduChannel.js';

export interface IssuedBatch {
  readonly result: BatchResult;
  readonly batchCard: SimulatedCard;
  /** index 0 holds serial 1 */
  readonly oneTimeCards: SimulatedCard[];
}

export class Issuer {
  readonly registry: IssuingRegistry;
  readonly station: IssuingStation;
  readonly mother = SimulatedCard.blank();
  motherInfo!: MotherResult;
  white = SimulatedCard.blank();

  constructor(readonly dir: string, readonly clock: Clock = systemClock, log?: Logger) {
    this.registry = IssuingRegistry.open(join(dir, 'issuing.db'));
    this.station = new IssuingStation(this.registry, { clock, ...(log ? { log } : {}) });
  }

  async init(options: { investor?: string; whiteQuota?: number } = {}): Promise<this> {
    this.motherInfo = await this.station.personaliseMother(directChannel(this.mother), { pin: DEMO_MOTHER_PIN, investor: options.investor ?? 'Demo Investor' });
    await this.station.makeWhite(
      { channel: directChannel(this.mother), pin: DEMO_MOTHER_PIN },
      { channel: directChannel(this.white), pin: DEMO_WHITE_PIN, quota: options.whiteQuota ?? 50, validDays: 3650 },
    );
    return this;
  }

  /** appletVersion 1 makes the old cards without a key of their own (for migration tests) */
  async makeBatch(clinicCode: string, count: number, validDays = 365, validFrom?: number, appletVersion: 1 | 2 = 2): Promise<IssuedBatch> {
    const batchCard = SimulatedCard.blank(undefined, appletVersion);
    const oneTimeCards = Array.from({ length: count }, () => SimulatedCard.blank(undefined, appletVersion));
    const result = await this.station.makeBatch(
      { channel: directChannel(this.white), pin: DEMO_WHITE_PIN },
      directChannel(batchCard),
      { clinicCode, count, validDays, ...(validFrom !== undefined ? { validFrom } : {}) },
      async (serial) => directChannel(oneTimeCards[serial - 1]!),
    );
    return { result, batchCard, oneTimeCards };
  }

  close(): void {
    this.registry.close();
  }
}

export interface TerminalRig {
  readonly terminal: Terminal;
  readonly reader: SimulatedReader;
  /** Inserts a card, lets the terminal handle it, removes it */
  swipe(card: SmartCard): Promise<SwipeOutcome>;
}

export async function provisionTerminal(
  issuer: Issuer,
  options: {
    dataDir: string;
    terminalId: string;
    clinicCode: string;
    clock?: Clock;
    /** The terminal's monotonic clock; by default an injected clock is the world's time (its advances are time passing, not jumps) */
    monotonicMs?: () => number;
    device?: DeviceControl;
    locale?: Locale;
    log?: Logger;
    acceptVersion1Cards?: boolean;
  },
): Promise<TerminalRig> {
  const clock = options.clock;
  const monotonicMs = options.monotonicMs ?? (clock ? () => clock.now() : undefined);
  const reader = new SimulatedReader({ ...(options.clock ? { clock: options.clock } : {}) });
  await reader.start();
  const terminal = Terminal.open({
    dataDir: options.dataDir,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(monotonicMs ? { monotonicMs } : {}),
    ...(options.device ? { device: options.device } : {}),
    ...(options.locale ? { locale: options.locale } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.acceptVersion1Cards ? { acceptVersion1Cards: true } : {}),
  });
  if (!terminal.identity()) {
    const session = reader.insert(issuer.mother);
    await terminal.provision(session, { terminalId: options.terminalId, clinicCode: options.clinicCode, pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
    reader.remove();
  }
  return {
    terminal,
    reader,
    swipe: async (card) => {
      const session = reader.insert(card);
      try {
        return await terminal.handleCard(session);
      } finally {
        reader.remove();
      }
    },
  };
}

export function tempDir(prefix = 'tally-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
