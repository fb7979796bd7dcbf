/**
 * Issuing-station refusals: each a clear error code, and nothing half-written:
 * the registry unchanged and the target card still blank wherever the check
 * comes before the first write.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { toHex } from '../../src/codecs/bytes.js';
import { RecordKind } from '../../src/codecs/cardRecord.js';
import type { ApduChannel } from '../../src/card/ApduChannel.js';
import { IssuingRegistry } from '../../src/issuing/IssuingRegistry.js';
import { IssuingStation } from '../../src/issuing/IssuingStation.js';
import { directChannel, tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { ManualClock } from '../../src/util/clock.js';
import { recordOf } from '../card/mintCards.js';

const MOTHER_PIN = '246810';
const WHITE_PIN = '1357';
const DAY_MS = 86_400_000;

const opened: IssuingRegistry[] = [];
const scratchDirs: string[] = [];
afterEach(() => {
  for (const r of opened.splice(0)) r.close();
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder removed after the test */
function scratch(prefix?: string): string {
  const dir = tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}

function station(clock = new ManualClock(Date.now())): { registry: IssuingRegistry; station: IssuingStation; clock: ManualClock } {
  const registry = IssuingRegistry.open(join(scratch('tally-issue-'), 'issuing.db'));
  opened.push(registry);
  return { registry, station: new IssuingStation(registry, { clock }), clock };
}

/** Everything the registry holds, comparable */
function registryState(registry: IssuingRegistry): string {
  return JSON.stringify({ cards: registry.cards().map((c) => ({ ...c, cardId: toHex(c.cardId), record: toHex(c.record), chipUid: c.chipUid && toHex(c.chipUid) })), nextBatchNo: registry.nextBatchNo() });
}

const isBlank = (card: SimulatedCard): boolean => {
  const s = card.snapshot();
  return s.profile === 0 && s.lifeCycle === 1 && s.record === undefined && s.keySeed === undefined && s.pinHash === undefined;
};

const foreignCard: ApduChannel = { transmit: async () => Uint8Array.of(0x6a, 0x82) };

async function withMother() {
  const world = station();
  const mother = SimulatedCard.blank();
  await world.station.personaliseMother(directChannel(mother), { pin: MOTHER_PIN, investor: 'Test Investor' });
  return { ...world, mother };
}

async function withWhite(quota = 3, validDays = 365) {
  const world = await withMother();
  const white = SimulatedCard.blank();
  await world.station.makeWhite({ channel: directChannel(world.mother), pin: MOTHER_PIN }, { channel: directChannel(white), pin: WHITE_PIN, quota, validDays });
  return { ...world, white };
}

function blanks(n: number, appletVersion: 1 | 2 = 2): SimulatedCard[] {
  return Array.from({ length: n }, () => SimulatedCard.blank(undefined, appletVersion));
}

describe('personalising the mother card', () => {
  it('makes the root key on the card and records the card', async () => {
    const { registry, mother } = await withMother();
    expect(registry.cards(RecordKind.MOTHER)).toHaveLength(1);
    expect(recordOf(mother).kind).toBe(RecordKind.MOTHER);
    expect(toHex(recordOf(mother).raw)).toBe(toHex(registry.cards()[0]!.record));
    expect(mother.snapshot().pinHash).toBeDefined();
    expect(JSON.stringify(mother.snapshot())).not.toContain(MOTHER_PIN);
  });

  it('refuses a second mother card: ISSUE_QUOTA, the second card still blank', async () => {
    const { registry, station: s } = await withMother();
    const before = registryState(registry);
    const second = SimulatedCard.blank();
    await expect(s.personaliseMother(directChannel(second), { pin: MOTHER_PIN, investor: 'X' })).rejects.toMatchObject({ code: 'ISSUE_QUOTA' });
    expect(isBlank(second)).toBe(true);
    expect(registryState(registry)).toBe(before);
  });

  it('refuses a target that is not blank, a foreign card and a malformed PIN', async () => {
    const used = await withMother();
    const { registry, station: s } = station();
    const before = JSON.stringify(used.mother.snapshot());
    await expect(s.personaliseMother(directChannel(used.mother), { pin: MOTHER_PIN, investor: 'X' })).rejects.toMatchObject({ code: 'ISSUE_NOT_BLANK' });
    expect(JSON.stringify(used.mother.snapshot())).toBe(before);
    await expect(s.personaliseMother(foreignCard, { pin: MOTHER_PIN, investor: 'X' })).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    const blank = SimulatedCard.blank();
    await expect(s.personaliseMother(directChannel(blank), { pin: '12', investor: 'X' })).rejects.toMatchObject({ code: 'USAGE' });
    expect(isBlank(blank)).toBe(true);
    expect(registry.cards()).toHaveLength(0);
  });
});

describe('making a white card', () => {
  it('a wrong mother PIN: PIN_WRONG with tries left, white card still blank, registry unchanged', async () => {
    const { registry, station: s, mother } = await withMother();
    const before = registryState(registry);
    const white = SimulatedCard.blank();
    await expect(s.makeWhite({ channel: directChannel(mother), pin: '000000' }, { channel: directChannel(white), pin: WHITE_PIN, quota: 5, validDays: 30 })).rejects.toMatchObject({
      code: 'PIN_WRONG',
      context: { triesLeft: 2 },
    });
    expect(isBlank(white)).toBe(true);
    expect(registryState(registry)).toBe(before);
    expect(mother.snapshot().pinTriesLeft).toBe(2);
  });

  it('a blocked mother card: PIN_BLOCKED before anything is written, even with the right PIN', async () => {
    const { registry, station: s, mother } = await withMother();
    for (let i = 0; i < 3; i++) {
      await expect(s.makeWhite({ channel: directChannel(mother), pin: '000000' }, { channel: directChannel(SimulatedCard.blank()), pin: WHITE_PIN, quota: 5, validDays: 30 })).rejects.toMatchObject({
        code: i < 2 ? 'PIN_WRONG' : 'PIN_BLOCKED',
      });
    }
    const before = registryState(registry);
    const white = SimulatedCard.blank();
    await expect(s.makeWhite({ channel: directChannel(mother), pin: MOTHER_PIN }, { channel: directChannel(white), pin: WHITE_PIN, quota: 5, validDays: 30 })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    expect(isBlank(white)).toBe(true);
    expect(registryState(registry)).toBe(before);
  });

  it('the wrong card in the mother slot: ISSUE_WRONG_CARD', async () => {
    const { registry, station: s, white } = await withWhite();
    const before = registryState(registry);
    const target = SimulatedCard.blank();
    const request = { channel: directChannel(target), pin: WHITE_PIN, quota: 5, validDays: 30 };
    await expect(s.makeWhite({ channel: directChannel(white), pin: MOTHER_PIN }, request)).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    await expect(s.makeWhite({ channel: directChannel(SimulatedCard.blank()), pin: MOTHER_PIN }, request)).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    await expect(s.makeWhite({ channel: foreignCard, pin: MOTHER_PIN }, request)).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    expect(isBlank(target)).toBe(true);
    expect(registryState(registry)).toBe(before);
  });

  it('a target that is not blank: ISSUE_NOT_BLANK, the target unchanged, no PIN try spent', async () => {
    const { registry, station: s, mother, white } = await withWhite();
    const before = registryState(registry);
    const whiteBefore = JSON.stringify(white.snapshot());
    await expect(s.makeWhite({ channel: directChannel(mother), pin: MOTHER_PIN }, { channel: directChannel(white), pin: WHITE_PIN, quota: 5, validDays: 30 })).rejects.toMatchObject({ code: 'ISSUE_NOT_BLANK' });
    expect(JSON.stringify(white.snapshot())).toBe(whiteBefore);
    expect(registryState(registry)).toBe(before);
    expect(mother.snapshot().pinTriesLeft).toBe(3);
  });
});

describe('making a batch', () => {
  const request = { clinicCode: 'CLINIC-A', count: 3, validDays: 30 };

  it('makes the batch card and its one-time cards, and records every card', async () => {
    const { registry, station: s, white } = await withWhite();
    const batchCard = SimulatedCard.blank();
    const oneTime = blanks(3);
    const result = await s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(batchCard), request, async (serial) => directChannel(oneTime[serial - 1]!));
    expect(result).toMatchObject({ batchNo: 1, count: 3, written: [1, 2, 3], notWritten: [] });
    expect(registry.cards(RecordKind.ONE_TIME).every((c) => c.written)).toBe(true);
    expect(oneTime.map((c) => recordOf(c).kind)).toEqual([RecordKind.ONE_TIME, RecordKind.ONE_TIME, RecordKind.ONE_TIME]);
  });

  it('a wrong white PIN: PIN_WRONG, batch card blank, no one-time card touched, registry unchanged', async () => {
    const { registry, station: s, white } = await withWhite();
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    let asked = 0;
    await expect(
      s.makeBatch({ channel: directChannel(white), pin: '0000' }, directChannel(batchCard), request, async () => {
        asked++;
        return directChannel(SimulatedCard.blank());
      }),
    ).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: 2 } });
    expect(isBlank(batchCard)).toBe(true);
    expect(asked).toBe(0);
    expect(registryState(registry)).toBe(before);
  });

  it('a blocked white card: PIN_BLOCKED, nothing written', async () => {
    const { registry, station: s, white } = await withWhite();
    for (let i = 0; i < 3; i++) {
      await expect(s.makeBatch({ channel: directChannel(white), pin: '0000' }, directChannel(SimulatedCard.blank()), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({
        code: i < 2 ? 'PIN_WRONG' : 'PIN_BLOCKED',
      });
    }
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    await expect(s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    expect(isBlank(batchCard)).toBe(true);
    expect(registryState(registry)).toBe(before);
  });

  it('the card quota exhausted: ISSUE_QUOTA before any write', async () => {
    const { registry, station: s, white } = await withWhite(1);
    await s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank()), request, async () => directChannel(SimulatedCard.blank()));
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    await expect(s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_QUOTA' });
    expect(isBlank(batchCard)).toBe(true);
    expect(registryState(registry)).toBe(before);
    expect(white.snapshot().signCounter).toBe(1);
  });

  it('the card quota exhausted on a station whose registry never saw the card: the card itself refuses', async () => {
    const { station: s, white } = await withWhite(1);
    await s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank()), request, async () => directChannel(SimulatedCard.blank()));
    const other = station();
    const batchCard = SimulatedCard.blank();
    await expect(other.station.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_QUOTA' });
    expect(isBlank(batchCard)).toBe(true);
    expect(other.registry.cards()).toHaveLength(0);
  });

  it('the registry quota exhausted (a copied white card with a fresh counter): ISSUE_QUOTA', async () => {
    const { registry, station: s, white } = await withWhite(1);
    const copy = white.clone();
    await s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank()), request, async () => directChannel(SimulatedCard.blank()));
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    await expect(s.makeBatch({ channel: directChannel(copy), pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_QUOTA' });
    expect(isBlank(batchCard)).toBe(true);
    expect(copy.snapshot().signCounter).toBe(0);
    expect(registryState(registry)).toBe(before);
  });

  it('the wrong card in the white slot, or a batch card that is not blank', async () => {
    const { registry, station: s, white, mother } = await withWhite();
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    await expect(s.makeBatch({ channel: directChannel(mother), pin: MOTHER_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    await expect(s.makeBatch({ channel: foreignCard, pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_WRONG_CARD' });
    expect(isBlank(batchCard)).toBe(true);
    const motherBefore = JSON.stringify(mother.snapshot());
    await expect(s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(mother), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'ISSUE_NOT_BLANK' });
    expect(JSON.stringify(mother.snapshot())).toBe(motherBefore);
    expect(white.snapshot()).toMatchObject({ signCounter: 0, pinTriesLeft: 3 });
    expect(registryState(registry)).toBe(before);
  });

  it('an expired white card: EXPIRED, nothing written', async () => {
    const { registry, station: s, white, clock } = await withWhite(3, 10);
    clock.advance(11 * DAY_MS);
    const before = registryState(registry);
    const batchCard = SimulatedCard.blank();
    await expect(s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(batchCard), request, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'EXPIRED' });
    expect(isBlank(batchCard)).toBe(true);
    expect(registryState(registry)).toBe(before);
  });

  it('bad requests are refused before any card is touched', async () => {
    const { registry, station: s, white } = await withWhite();
    const before = registryState(registry);
    for (const bad of [{ ...request, clinicCode: '' }, { ...request, clinicCode: 'X'.repeat(17) }, { ...request, count: 0 }, { ...request, count: 1.5 }, { ...request, validDays: 0 }]) {
      await expect(s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank()), bad, async () => directChannel(SimulatedCard.blank()))).rejects.toMatchObject({ code: 'USAGE' });
    }
    expect(white.snapshot()).toMatchObject({ signCounter: 0, pinTriesLeft: 3 });
    expect(registryState(registry)).toBe(before);
  });

  it('a one-time card slot holding a card that is not blank: that card untouched, reported, and rewritten later onto a blank', async () => {
    const { registry, station: s, white, mother } = await withWhite();
    const oneTime = blanks(3, 1);
    const motherBefore = JSON.stringify(mother.snapshot());
    const result = await s.makeBatch({ channel: directChannel(white), pin: WHITE_PIN }, directChannel(SimulatedCard.blank(undefined, 1)), request, async (serial) =>
      directChannel(serial === 2 ? mother : oneTime[serial - 1]!),
    );
    expect(result.written).toEqual([1, 3]);
    expect(result.notWritten).toEqual([{ serial: 2, reason: expect.stringMatching(/already personalised/) }]);
    expect(JSON.stringify(mother.snapshot())).toBe(motherBefore);
    const serial2 = registry.cards(RecordKind.ONE_TIME).find((c) => c.serial === 2)!;
    expect(serial2.written).toBe(false);
    await s.rewriteOneTime(directChannel(oneTime[1]!), result.batchNo, 2);
    expect(registry.card(serial2.cardId)?.written).toBe(true);
    expect(toHex(recordOf(oneTime[1]!).raw)).toBe(toHex(serial2.record));
  });
});
