/**
 * An issuing station with simulated cards, for the registry export tests
 * (issuing, server, CLI): a mother card, a white card, batches made with it,
 * and the station certified by the mother card.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { IssuingRegistry } from '../../src/issuing/IssuingRegistry.js';
import { IssuingStation, type BatchResult } from '../../src/issuing/IssuingStation.js';
import { directChannel, tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { ManualClock } from '../../src/util/clock.js';

export const MOTHER_PIN = '246810';
export const WHITE_PIN = '1357';

export interface StationWorld {
  readonly dir: string;
  readonly registryPath: string;
  readonly registry: IssuingRegistry;
  readonly station: IssuingStation;
  readonly clock: ManualClock;
  readonly mother: SimulatedCard;
  readonly white: SimulatedCard;
  readonly whiteCardId: string;
  readonly rootPublicKey: Uint8Array;
  /** Makes a batch; with written < count only the first `written` one-time cards get a card */
  makeBatch(clinicCode: string, count: number, written?: number): Promise<BatchResult>;
  certify(stationId: string, pin?: string): ReturnType<IssuingStation['certifyStation']>;
  close(): void;
}

/** options.mother: another station's mother card (a second station of the same investor) */
export async function stationWorld(options: { quota?: number; mother?: { card: SimulatedCard; rootPublicKey: Uint8Array } } = {}): Promise<StationWorld> {
  const dir = tempDir('tally-station-');
  const registryPath = join(dir, 'issuing.db');
  const registry = IssuingRegistry.open(registryPath);
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  const station = new IssuingStation(registry, { clock });
  const mother = options.mother?.card ?? SimulatedCard.blank();
  const rootPublicKey = options.mother?.rootPublicKey ?? (await station.personaliseMother(directChannel(mother), { pin: MOTHER_PIN, investor: 'Test Investor' })).rootPublicKey;
  const white = SimulatedCard.blank();
  const made = await station.makeWhite({ channel: directChannel(mother), pin: MOTHER_PIN }, { channel: directChannel(white), pin: WHITE_PIN, quota: options.quota ?? 5, validDays: 365 });
  return {
    dir,
    registryPath,
    registry,
    station,
    clock,
    mother,
    white,
    whiteCardId: made.cardId,
    rootPublicKey,
    makeBatch: (clinicCode, count, written = count) =>
      station.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank()), { clinicCode, count, validDays: 90 }, async (serial) => {
        if (serial > written) throw new Error('no blank card in the slot');
        return directChannel(SimulatedCard.blank());
      }),
    certify: (stationId, pin = MOTHER_PIN) => station.certifyStation({ channel: directChannel(mother), pin }, stationId),
    close: () => {
      registry.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
