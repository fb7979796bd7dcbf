/**
 * Every refusal reason of a swipe, each with its code and its operator
 * message in both languages; provisioning refusals; and the two-phase use
 * against a simulated device. A refusal must change nothing in the ledger.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { EntryType, parseLedgerEntry, type LedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { ErrorCodes, isTallyError, operatorMessage, type ErrorName, type Locale } from '../../src/errors.js';
import type { SmartCard } from '../../src/card/ApduChannel.js';
import type { DeviceControl, DeviceEvent } from '../../src/readers/CardReader.js';
import { DEMO_MOTHER_PIN, Issuer, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { SimulatedDevice, type DeviceBehaviour } from '../../src/sim/SimulatedDevice.js';
import { SIMULATED_CARD_ATR, SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import { Terminal, type SwipeOutcome } from '../../src/terminal/Terminal.js';
import { ManualClock, type Clock } from '../../src/util/clock.js';
import { ManualScheduler, type Scheduler } from '../../src/util/scheduler.js';
import { makeOwnBatch, oneTimeOf, recordOf, withRecord } from '../card/mintCards.js';
import { useScratch } from '../support/scratch.js';

const DAY_MS = 86_400_000;

interface Rig {
  readonly terminal: Terminal;
  readonly reader: SimulatedReader;
  readonly dataDir: string;
  swipe(card: SmartCard): Promise<SwipeOutcome>;
}

const { cleanups, scratch } = useScratch();

async function newIssuer(): Promise<Issuer> {
  const issuer = await new Issuer(scratch()).init();
  cleanups.push(() => issuer.close());
  return issuer;
}

function openTerminal(options: { dataDir: string; clock?: Clock; locale?: Locale; device?: DeviceControl & { stop?: () => void }; startTimeoutMs?: number; scheduler?: Scheduler }): Rig {
  const reader = new SimulatedReader();
  void reader.start();
  // an injected clock is this world's time: its advances are time passing (the monotonic clock follows), not jumps
  const clock = options.clock;
  const terminal = Terminal.open({ acceptVersion1Cards: true, ...options, ...(clock ? { monotonicMs: () => clock.now() } : {}), ...(options.device ? { device: options.device } : {}) });
  cleanups.push(() => {
    options.device?.stop?.();
    terminal.close();
  });
  return {
    terminal,
    reader,
    dataDir: options.dataDir,
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

async function provisionedRig(
  issuer: Issuer,
  options: { terminalId?: string; clinicCode?: string; clock?: Clock; locale?: Locale; device?: SimulatedDevice; startTimeoutMs?: number; scheduler?: Scheduler } = {},
): Promise<Rig> {
  const rig = openTerminal({ dataDir: scratch(), ...options });
  const session = rig.reader.insert(issuer.mother);
  await rig.terminal.provision(session, {
    terminalId: options.terminalId ?? 'T-1',
    clinicCode: options.clinicCode ?? 'CLINIC-A',
    pin: DEMO_MOTHER_PIN,
    expectedRootFingerprint: issuer.motherInfo.rootFingerprint,
  });
  rig.reader.remove();
  return rig;
}

/** A provisioned terminal that has loaded one batch of CLINIC-A */
async function loadedRig(options: { count?: number; clock?: Clock; locale?: Locale; device?: SimulatedDevice; startTimeoutMs?: number; scheduler?: Scheduler } = {}): Promise<{ issuer: Issuer; rig: Rig; batch: IssuedBatch }> {
  const issuer = await newIssuer();
  const batch = await issuer.makeBatch('CLINIC-A', options.count ?? 3);
  const rig = await provisionedRig(issuer, options);
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
  return { issuer, rig, batch };
}

function entries(terminal: Terminal): LedgerEntry[] {
  return [...terminal.ledger.entries()].map(parseLedgerEntry);
}

function reservedUses(terminal: Terminal): number {
  return entries(terminal).filter((e) => e.type === EntryType.USE_RESERVED).length;
}

/** The outcome is this refusal, with the operator message in the terminal's language, and nothing was recorded */
async function expectRefusal(rig: Rig, card: SmartCard, code: ErrorName, locale: Locale = 'en', detail?: RegExp): Promise<SwipeOutcome> {
  const seqBefore = rig.terminal.ledger.lastSeq();
  const refusedBefore = rig.terminal.status().refusals[code] ?? 0;
  const outcome = await rig.swipe(card);
  expect(outcome).toMatchObject({ ok: false, code, message: operatorMessage(code, locale) });
  if (detail && !outcome.ok) expect(outcome.detail).toMatch(detail);
  expect(rig.terminal.ledger.lastSeq()).toBe(seqBefore);
  expect(rig.terminal.status().refusals[code]).toBe(refusedBefore + 1);
  return outcome;
}

/** A card without our applet: answers 6A82 (file not found) to everything */
const foreignCard: SmartCard = {
  powerOn: () => SIMULATED_CARD_ATR,
  powerOff: () => undefined,
  transmit: () => Uint8Array.of(0x6a, 0x82),
};

describe.each(['en', 'zh'] as const)('swipe refusals (%s messages)', (locale) => {
  it('UNKNOWN_CARD: a card without the tallystick applet', async () => {
    const { rig } = await loadedRig({ locale });
    await expectRefusal(rig, foreignCard, 'UNKNOWN_CARD', locale);
  });

  it('CARD_BLANK: a blank card', async () => {
    const { rig } = await loadedRig({ locale });
    await expectRefusal(rig, SimulatedCard.blank(), 'CARD_BLANK', locale);
  });

  it('FORGED: one byte of a one-time record altered', async () => {
    const { rig, batch } = await loadedRig({ locale });
    const card = batch.oneTimeCards[0]!;
    const raw = recordOf(card).raw.slice();
    raw[8]! ^= 0x01; // first byte of the card id
    await expectRefusal(rig, withRecord(card, raw), 'FORGED', locale, /not signed by its batch key/);
    // the genuine card still works: the forgery spent nothing
    expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: 1 });
  });

  it('FORGED: the serial rewritten to another card of the batch', async () => {
    const { rig, batch } = await loadedRig({ locale });
    const raw = recordOf(batch.oneTimeCards[0]!).raw.slice();
    raw[raw.length - 66 - 1] = 2; // last byte of the serial, just before the signature TLV
    await expectRefusal(rig, withRecord(batch.oneTimeCards[0]!, raw), 'FORGED', locale);
  });

  it('FORGED: a malformed record (truncated)', async () => {
    const { rig, batch } = await loadedRig({ locale });
    const raw = recordOf(batch.oneTimeCards[0]!).raw;
    await expectRefusal(rig, withRecord(batch.oneTimeCards[0]!, raw.subarray(0, raw.length - 1)), 'FORGED', locale);
  });

  it('FORGED: a one-time card signed by the wrong key', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    const own = await makeOwnBatch(issuer, { clinicCode: 'CLINIC-A', count: 3 });
    expect(await rig.swipe(own.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    const card = await own.mint(1, { signWith: generateSigningKey().privateKey });
    await expectRefusal(rig, card, 'FORGED', locale, /not signed by its batch key/);
  });

  it('FORGED: a batch card whose white card is not signed by our root', async () => {
    const { rig } = await loadedRig({ locale });
    const otherInvestor = await newIssuer();
    const foreignBatch = await otherInvestor.makeBatch('CLINIC-A', 2);
    await expectRefusal(rig, foreignBatch.batchCard, 'FORGED', locale, /white card not signed by the investor root/);
  });

  it('WRONG_TIER: white and mother cards cannot be swiped', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    await expectRefusal(rig, issuer.white, 'WRONG_TIER', locale, /white/);
    await expectRefusal(rig, issuer.mother, 'WRONG_TIER', locale, /mother/);
  });

  it('WRONG_CLINIC: a batch card of another clinic', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    const other = await issuer.makeBatch('CLINIC-B', 2);
    await expectRefusal(rig, other.batchCard, 'WRONG_CLINIC', locale, /CLINIC-B/);
  });

  it('EXPIRED: a one-time card after its batch ran out', async () => {
    // a little ahead of the issuer, whose batch is valid from the second it is made
    const clock = new ManualClock(Date.now() + 5_000);
    const { rig, batch } = await loadedRig({ locale, clock });
    clock.advance(366 * DAY_MS);
    await expectRefusal(rig, batch.oneTimeCards[0]!, 'EXPIRED', locale);
  });

  it('EXPIRED: a clock reset to 1970 does not bring back an expired batch, and what it records is marked untrusted', async () => {
    const clock = new ManualClock(Date.now() + 5_000);
    const { issuer, rig, batch } = await loadedRig({ locale, clock, count: 3 });
    const longBatch = await issuer.makeBatch('CLINIC-A', 1, 800);
    clock.advance(366 * DAY_MS);
    await expectRefusal(rig, batch.oneTimeCards[0]!, 'EXPIRED', locale);
    expect(await rig.swipe(longBatch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    clock.set(Date.UTC(1970, 0, 2));
    // validity is judged at the last entry's time, never earlier
    await expectRefusal(rig, batch.oneTimeCards[1]!, 'EXPIRED', locale);
    expect(rig.terminal.status().clockTrusted).toBe(false);
    const use = await rig.swipe(longBatch.oneTimeCards[0]!);
    if (!use.ok) throw new Error(`refused: ${use.code}`);
    expect(entries(rig.terminal).find((e) => e.seq === use.seq)).toMatchObject({ type: EntryType.USE_RESERVED, clockTrusted: false });
  });

  it('EXPIRED: a batch card not yet valid', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    const future = await issuer.makeBatch('CLINIC-A', 2, 30, Math.floor(Date.now() / 1000) + 10 * 86_400);
    await expectRefusal(rig, future.batchCard, 'EXPIRED', locale);
  });

  it('REVOKED: a one-time card on the deny list, and every card of a revoked batch', async () => {
    const { rig, batch } = await loadedRig({ locale });
    const first = recordOf(batch.oneTimeCards[0]!);
    rig.terminal.ledger.applyDenyList({ full: false, add: [{ cardId: first.cardId, reason: 'reported stolen' }], version: 1 });
    await expectRefusal(rig, batch.oneTimeCards[0]!, 'REVOKED', locale, /reported stolen/);
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true, serial: 2 });
    rig.terminal.ledger.applyDenyList({ full: true, add: [{ cardId: recordOf(batch.batchCard).cardId, reason: 'batch recalled' }], version: 2 });
    await expectRefusal(rig, batch.oneTimeCards[2]!, 'REVOKED', locale, /batch recalled/);
  });

  it('OUT_OF_RANGE: serial count+1 and serial 0, signed by the real batch key', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    const own = await makeOwnBatch(issuer, { clinicCode: 'CLINIC-A', count: 3 });
    expect(await rig.swipe(own.batchCard)).toMatchObject({ ok: true });
    await expectRefusal(rig, await own.mint(4), 'OUT_OF_RANGE', locale, /serial 4 outside 1\.\.3/);
    await expectRefusal(rig, await own.mint(0), 'OUT_OF_RANGE', locale, /serial 0/);
    expect(await rig.swipe(await own.mint(3))).toMatchObject({ ok: true, serial: 3 });
  });

  it('ALREADY_USED: the same card swiped again, and a copy of a card', async () => {
    const { rig, batch } = await loadedRig({ locale, count: 5 });
    const card = batch.oneTimeCards[0]!;
    const copyBeforeUse = card.clone();
    expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: 1 });
    const copyAfterUse = card.clone();
    await expectRefusal(rig, card, 'ALREADY_USED', locale, /serial 1 used at seq 3/);
    await expectRefusal(rig, copyBeforeUse, 'ALREADY_USED', locale);
    await expectRefusal(rig, copyAfterUse, 'ALREADY_USED', locale);
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
  });

  it('ALREADY_USED: a batch card that already initialised another terminal', async () => {
    const { issuer, batch } = await loadedRig({ locale });
    // terminal ids are unique: a marker naming this terminal's own id would be a rollback witness
    const second = await provisionedRig(issuer, { locale, terminalId: 'T-2' });
    await expectRefusal(second, batch.batchCard, 'ALREADY_USED', locale, /already initialised a terminal/);
  });

  it('BATCH_NOT_LOADED: a one-time card whose batch this terminal never loaded', async () => {
    const { issuer, rig } = await loadedRig({ locale });
    const other = await issuer.makeBatch('CLINIC-A', 2);
    await expectRefusal(rig, other.oneTimeCards[0]!, 'BATCH_NOT_LOADED', locale);
  });

  it('BATCH_EXHAUSTED: a card of a batch that is used up', async () => {
    const { rig, batch } = await loadedRig({ locale, count: 2 });
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, remaining: 1 });
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true, remaining: 0 });
    await expectRefusal(rig, batch.oneTimeCards[0]!.clone(), 'BATCH_EXHAUSTED', locale);
  });

  it('BATCH_ALREADY_LOADED: the same batch card twice, and a copy of it', async () => {
    const { rig, batch } = await loadedRig({ locale });
    await expectRefusal(rig, batch.batchCard, 'BATCH_ALREADY_LOADED', locale);
    await expectRefusal(rig, batch.batchCard.clone(), 'BATCH_ALREADY_LOADED', locale);
  });

  it('NOT_PROVISIONED: a terminal fresh from the factory', async () => {
    const issuer = await newIssuer();
    const batch = await issuer.makeBatch('CLINIC-A', 1);
    const rig = openTerminal({ dataDir: scratch(), locale });
    const outcome = await rig.swipe(batch.batchCard);
    expect(outcome).toMatchObject({ ok: false, code: 'NOT_PROVISIONED', message: operatorMessage('NOT_PROVISIONED', locale) });
    expect(rig.terminal.ledger.lastSeq()).toBe(0);
  });

  it('messages are the configured language and carry the stable numeric code', () => {
    expect(operatorMessage('ALREADY_USED', locale)).toBe(locale === 'zh' ? '拒绝：卡片已使用' : 'Card refused: card already used');
    expect(ErrorCodes.ALREADY_USED.code).toBe(1008);
  });
});

describe('CARD_REMOVED: a card pulled at every APDU, before and after the card runs it', () => {
  const plans = [1, 2, 3, 4].flatMap((atApdu) => (['before', 'after'] as const).map((when) => ({ atApdu, when })));

  it.each(plans)('one-time card pulled $when APDU $atApdu: refused without a use, or used exactly once', async ({ atApdu, when }) => {
    const { rig, batch } = await loadedRig();
    const card = batch.oneTimeCards[0]!;
    const seqBefore = rig.terminal.ledger.lastSeq();
    rig.reader.pullDuringNextSession({ atApdu, when });
    const outcome = await rig.swipe(card);
    // a swipe is SELECT, INTERNAL AUTHENTICATE (version 2), then MARK CONSUMED; losing the marker write still grants the recorded use
    if (atApdu <= 2) {
      expect(outcome).toMatchObject({ ok: false, code: 'CARD_REMOVED', message: operatorMessage('CARD_REMOVED') });
      expect(rig.terminal.ledger.lastSeq()).toBe(seqBefore);
      expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: 1 });
    } else {
      expect(outcome).toMatchObject({ ok: true, serial: 1 });
    }
    expect(reservedUses(rig.terminal)).toBe(1);
    // whatever happened, the card is spent and its marker is on it after the next presentation
    expect((await rig.swipe(card)).ok).toBe(false);
    expect(card.snapshot().marker).toBeDefined();
    expect(rig.terminal.ledger.use(oneTimeOf(card).batchId, 1)?.markerWritten).toBe(true);
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
  });

  it.each(plans)('batch card pulled $when APDU $atApdu: loaded once or not at all', async ({ atApdu, when }) => {
    const issuer = await newIssuer();
    const batch = await issuer.makeBatch('CLINIC-A', 2);
    const rig = await provisionedRig(issuer);
    rig.reader.pullDuringNextSession({ atApdu, when });
    const outcome = await rig.swipe(batch.batchCard);
    // SELECT of a batch card needs GET RESPONSE (its FCI is longer than 256 bytes), then INTERNAL AUTHENTICATE, then MARK CONSUMED
    if (atApdu <= 3) {
      expect(outcome).toMatchObject({ ok: false, code: 'CARD_REMOVED' });
      expect(rig.terminal.ledger.batches()).toHaveLength(0);
      expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    } else {
      expect(outcome).toMatchObject({ ok: true, action: 'batch-loaded' });
    }
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: false, code: 'BATCH_ALREADY_LOADED' });
    expect(batch.batchCard.snapshot().marker).toBeDefined();
    expect(rig.terminal.ledger.batches()).toHaveLength(1);
    expect(rig.terminal.ledger.verify().ok).toBe(true);
  });
});

describe('STORAGE_FAULT: the terminal fails closed', () => {
  it('a read-only database: refused, device not enabled, nothing recorded, the card not burnt', async () => {
    const device = new SimulatedDevice();
    const { rig, batch } = await loadedRig({ device });
    const card = batch.oneTimeCards[0]!;
    rig.terminal.ledger.database.pragma('query_only = ON');
    const seqBefore = rig.terminal.ledger.lastSeq();
    const outcome = await rig.swipe(card);
    expect(outcome).toMatchObject({ ok: false, code: 'STORAGE_READ_ONLY', message: operatorMessage('STORAGE_READ_ONLY') });
    expect(device.sessions).toBe(0);
    expect(device.relayClosed).toBe(false);
    expect(card.snapshot().marker).toBeUndefined();
    expect(rig.terminal.ledger.lastSeq()).toBe(seqBefore);
    expect(rig.terminal.ledger.use(oneTimeOf(card).batchId, 1)).toBeUndefined();
    rig.terminal.ledger.database.pragma('query_only = OFF');
    expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: 1 });
    expect(device.sessions).toBe(1);
  });

  it('a full disk (max_page_count reached): every swipe that cannot commit is refused and enables nothing', async () => {
    const device = new SimulatedDevice();
    const { rig, batch } = await loadedRig({ device, count: 40 });
    device.behaviour = 'never-starts';
    const db = rig.terminal.ledger.database;
    // the disk is full for the swipe itself; the device events that follow a granted swipe get space
    const diskFull = (): unknown => db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const diskFreed = (): unknown => db.pragma('max_page_count = 1073741823');
    const outcomes: SwipeOutcome[] = [];
    diskFull();
    for (const card of batch.oneTimeCards) {
      const seqBefore = rig.terminal.ledger.lastSeq();
      const sessionsBefore = device.sessions;
      const outcome = await rig.swipe(card);
      outcomes.push(outcome);
      if (outcome.ok) {
        expect(device.sessions).toBe(sessionsBefore + 1);
        expect(rig.terminal.ledger.lastSeq()).toBe(seqBefore + 1);
        diskFreed();
        rig.terminal.onDeviceEvent({ type: 'started', useSeq: outcome.seq });
        rig.terminal.onDeviceEvent({ type: 'finished', useSeq: outcome.seq });
        diskFull();
      } else {
        expect(outcome).toMatchObject({ code: 'STORAGE_FULL', message: operatorMessage('STORAGE_FULL') });
        expect(device.sessions).toBe(sessionsBefore);
        expect(rig.terminal.ledger.lastSeq()).toBe(seqBefore);
        expect(card.snapshot().marker).toBeUndefined();
      }
    }
    const refused = outcomes.filter((o) => !o.ok).length;
    expect(refused).toBeGreaterThan(0);
    expect(rig.terminal.ledger.openUses()).toHaveLength(0);
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 40 - refused });
    // space again: the refused cards were never spent
    diskFreed();
    device.behaviour = 'normal';
    for (const [i, card] of batch.oneTimeCards.entries()) if (!outcomes[i]!.ok) expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: i + 1 });
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 40 });
  });

  it('a corrupted database file, or one from newer software: the terminal refuses to start', async () => {
    const { rig } = await loadedRig();
    rig.terminal.close();
    cleanups.pop();
    const dbPath = join(rig.dataDir, 'terminal.db');
    const original = readFileSync(dbPath);
    writeFileSync(dbPath, Buffer.alloc(8192, 0x5a));
    rmSync(`${dbPath}-wal`, { force: true });
    rmSync(`${dbPath}-shm`, { force: true });
    expect(() => Terminal.open({ dataDir: rig.dataDir })).toThrow(expect.objectContaining({ code: 'DATABASE_CORRUPT' }));
    writeFileSync(dbPath, original);
    const newer = new Database(dbPath);
    newer.pragma('user_version = 99');
    newer.close();
    expect(() => Terminal.open({ dataDir: rig.dataDir })).toThrow(/schema 99 is newer/);
  });
});

describe('provisioning refusals', () => {
  it('a wrong PIN: refused with tries left, nothing provisioned', async () => {
    const issuer = await newIssuer();
    const rig = openTerminal({ dataDir: scratch() });
    const error = await rig.terminal
      .provision(rig.reader.insert(issuer.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: '000000', expectedRootFingerprint: issuer.motherInfo.rootFingerprint })
      .catch((err: unknown) => err);
    expect(isTallyError(error, 'PIN_WRONG')).toBe(true);
    expect((error as { context: { triesLeft?: number } }).context.triesLeft).toBe(2);
    expect(rig.terminal.identity()).toBeUndefined();
    expect(rig.terminal.ledger.lastSeq()).toBe(0);
    expect(existsSync(join(rig.dataDir, 'device.key'))).toBe(false);
    // the right PIN afterwards works and resets the mother card's counter
    await rig.terminal.provision(rig.reader.insert(issuer.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN });
    expect(rig.terminal.identity()?.terminalId).toBe('T-1');
  });

  it('a mother card of another investor (wrong root fingerprint): refused before the PIN is tried', async () => {
    const issuer = await newIssuer();
    const other = await newIssuer();
    const rig = openTerminal({ dataDir: scratch() });
    const error = await rig.terminal
      .provision(rig.reader.insert(other.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint })
      .catch((err: unknown) => err);
    expect(isTallyError(error, 'ROOT_MISMATCH')).toBe(true);
    expect(rig.terminal.identity()).toBeUndefined();
    expect(other.mother.snapshot().pinTriesLeft).toBe(3);
    expect(other.mother.snapshot().signCounter).toBe(1); // only the white card it signed
  });

  it('a white card instead of the mother card, and provisioning twice', async () => {
    const issuer = await newIssuer();
    const rig = openTerminal({ dataDir: scratch() });
    await expect(rig.terminal.provision(rig.reader.insert(issuer.white), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN })).rejects.toMatchObject({ code: 'WRONG_TIER' });
    await rig.terminal.provision(rig.reader.insert(issuer.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN });
    await expect(rig.terminal.provision(rig.reader.insert(issuer.mother), { terminalId: 'T-2', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN })).rejects.toMatchObject({ code: 'ALREADY_PROVISIONED' });
    expect(rig.terminal.ledger.lastSeq()).toBe(1);
  });

  it('a blocked mother card', async () => {
    const issuer = await newIssuer();
    const rig = openTerminal({ dataDir: scratch() });
    const request = { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: '999999' };
    for (const tries of [2, 1]) await expect(rig.terminal.provision(rig.reader.insert(issuer.mother), request)).rejects.toMatchObject({ code: 'PIN_WRONG', context: { triesLeft: tries } });
    await expect(rig.terminal.provision(rig.reader.insert(issuer.mother), request)).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    await expect(rig.terminal.provision(rig.reader.insert(issuer.mother), { ...request, pin: DEMO_MOTHER_PIN })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
    expect(rig.terminal.identity()).toBeUndefined();
  });
});

describe('two-phase use with the device', () => {
  // the device's delays and the terminal's timers run on one manual scheduler: the test moves their time
  async function deviceRig(behaviour: DeviceBehaviour, startTimeoutMs = 30_000) {
    const timers = new ManualScheduler();
    const device = new SimulatedDevice({ startDelayMs: 1, runMs: 1 }, timers);
    const world = await loadedRig({ device, startTimeoutMs, scheduler: timers });
    device.behaviour = behaviour;
    return { device, timers, ...world };
  }
  const typesAfter = (terminal: Terminal, seq: number): { type: number; ref?: number; detail?: string }[] =>
    entries(terminal).filter((e) => e.seq > seq).map((e) => ({ type: e.type, ...(e.ref !== undefined ? { ref: e.ref } : {}), ...(e.detail !== undefined ? { detail: e.detail } : {}) }));

  it('a normal session: reserved, started, completed', async () => {
    const { rig, batch, timers } = await deviceRig('normal');
    const outcome = await rig.swipe(batch.oneTimeCards[0]!);
    expect(outcome).toMatchObject({ ok: true, seq: 3 });
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }]);
    timers.advance(2);
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }, { type: EntryType.USE_STARTED, ref: 3 }, { type: EntryType.USE_COMPLETED, ref: 3 }]);
    expect(rig.terminal.ledger.use(oneTimeOf(batch.oneTimeCards[0]!).batchId, 1)?.state).toBe('completed');
  });

  it('a fault before start: released, not charged, and the card can be used again', async () => {
    const { rig, batch, device, timers } = await deviceRig('fault-before-start');
    const card = batch.oneTimeCards[0]!;
    expect(await rig.swipe(card)).toMatchObject({ ok: true, seq: 3 });
    timers.advance(1);
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }, { type: EntryType.USE_RELEASED, ref: 3, detail: 'device fault before start: no patient detected' }]);
    expect(rig.terminal.status().batches[0]).toMatchObject({ used: 0, remaining: 3 });
    device.behaviour = 'normal';
    expect(await rig.swipe(card)).toMatchObject({ ok: true, seq: 5, serial: 1 });
    timers.advance(2);
    expect(rig.terminal.ledger.use(oneTimeOf(card).batchId, 1)).toMatchObject({ state: 'completed', reserveSeq: 5 });
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 2, releases: 1 });
    expect((await rig.swipe(card)).ok).toBe(false);
  });

  it('a fault while running: failed and charged', async () => {
    const { rig, batch, timers } = await deviceRig('fault-while-running');
    const card = batch.oneTimeCards[0]!;
    expect(await rig.swipe(card)).toMatchObject({ ok: true, seq: 3 });
    timers.advance(2);
    expect(typesAfter(rig.terminal, 2)).toEqual([
      { type: EntryType.USE_RESERVED },
      { type: EntryType.USE_STARTED, ref: 3 },
      { type: EntryType.USE_FAILED, ref: 3, detail: 'scanner fault E42' },
    ]);
    expect(rig.terminal.status().batches[0]).toMatchObject({ used: 1 });
    expect((await rig.swipe(card)).ok).toBe(false);
  });

  it('a device that never starts: released after the start timeout', async () => {
    const { rig, batch, device, timers } = await deviceRig('never-starts', 50);
    const card = batch.oneTimeCards[0]!;
    expect(await rig.swipe(card)).toMatchObject({ ok: true, seq: 3 });
    expect(device.relayClosed).toBe(true);
    timers.advance(49);
    expect(rig.terminal.ledger.use(oneTimeOf(card).batchId, 1)?.state).toBe('reserved');
    expect(device.relayClosed).toBe(true);
    timers.advance(1);
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }, { type: EntryType.USE_RELEASED, ref: 3, detail: 'device did not report a start in time' }]);
    expect(device.relayClosed).toBe(false);
    device.behaviour = 'normal';
    expect(await rig.swipe(card)).toMatchObject({ ok: true, serial: 1 });
  });

  it('a relay that will not close: DEVICE_FAULT, released, not charged', async () => {
    const { rig, batch } = await deviceRig('relay-broken');
    const card = batch.oneTimeCards[0]!;
    const outcome = await rig.swipe(card);
    expect(outcome).toMatchObject({ ok: false, code: 'DEVICE_FAULT', message: operatorMessage('DEVICE_FAULT') });
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }, { type: EntryType.USE_RELEASED, ref: 3, detail: 'relay could not be enabled: INTERNAL' }]);
    expect(card.snapshot().marker).toBeUndefined();
  });

  it('the use is committed before the relay closes: another connection already sees the entry when enable() is called', async () => {
    const issuer = await newIssuer();
    const batch = await issuer.makeBatch('CLINIC-A', 2);
    const seen: { useSeq: number; committedType: number | undefined }[] = [];
    let dataDir = '';
    const listeners = new Set<(event: DeviceEvent) => void>();
    const relay: DeviceControl = {
      enable: async (useSeq) => {
        const other = new Database(join(dataDir, 'terminal.db'), { readonly: true });
        try {
          const row = other.prepare<[number], { type: number }>('SELECT type FROM ledger WHERE seq = ?').get(useSeq);
          seen.push({ useSeq, committedType: row?.type });
        } finally {
          other.close();
        }
        for (const l of listeners) l({ type: 'started', useSeq });
      },
      disable: async () => undefined,
      onEvent: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    const rig = openTerminal({ dataDir: scratch(), device: relay });
    dataDir = rig.dataDir;
    await rig.terminal.provision(rig.reader.insert(issuer.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN });
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(seen).toEqual([{ useSeq: 3, committedType: EntryType.USE_RESERVED }]);
  });

  it('a finish report whose start was never recorded completes the use (start inferred), so a restart cannot refund it', async () => {
    const issuer = await newIssuer();
    const batch = await issuer.makeBatch('CLINIC-A', 2);
    const listeners = new Set<(event: DeviceEvent) => void>();
    const timers = new ManualScheduler();
    // a relay board whose "started" frame was lost (or could not be recorded): only "finished" arrives
    const relay: DeviceControl = {
      enable: async (useSeq) => {
        timers.setTimeout(() => listeners.forEach((l) => l({ type: 'finished', useSeq })), 1);
      },
      disable: async () => undefined,
      onEvent: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    const rig = openTerminal({ dataDir: scratch(), device: relay, scheduler: timers });
    await rig.terminal.provision(rig.reader.insert(issuer.mother), { terminalId: 'T-1', clinicCode: 'CLINIC-A', pin: DEMO_MOTHER_PIN });
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(typesAfter(rig.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }]);
    timers.advance(1);
    expect(typesAfter(rig.terminal, 2)).toEqual([
      { type: EntryType.USE_RESERVED },
      { type: EntryType.USE_STARTED, ref: 3, detail: 'start inferred from the finish report' },
      { type: EntryType.USE_COMPLETED, ref: 3 },
    ]);
    rig.terminal.close();
    cleanups.pop();
    const reopened = openTerminal({ dataDir: rig.dataDir });
    expect(reopened.terminal.ledger.use(oneTimeOf(batch.oneTimeCards[0]!).batchId, 1)?.state).toBe('completed');
    expect(reopened.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1, releases: 0 });
  });

  it('BUSY: a card swiped while the device session runs is refused and recorded nowhere', async () => {
    const { rig, batch } = await deviceRig('never-starts');
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true });
    await expectRefusal(rig, batch.oneTimeCards[1]!, 'BUSY');
    expect(batch.oneTimeCards[1]!.snapshot().marker).toBeUndefined();
  });

  it('a restart during a session: a reserved use waits for the board, then is released; a started one without a relay is recorded as failed', async () => {
    const { rig, batch, device, timers } = await deviceRig('never-starts');
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    rig.terminal.close();
    cleanups.pop();
    // with a relay: the board may still report the start it kept across the restart, so nothing is released at once
    const reopened = openTerminal({ dataDir: rig.dataDir, device, startTimeoutMs: 50, scheduler: timers });
    expect(typesAfter(reopened.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }]);
    timers.advance(49);
    expect(typesAfter(reopened.terminal, 2)).toEqual([{ type: EntryType.USE_RESERVED }]);
    timers.advance(1);
    expect(typesAfter(reopened.terminal, 2)).toEqual([
      { type: EntryType.USE_RESERVED },
      { type: EntryType.USE_RELEASED, ref: 3, detail: 'terminal restarted and the device never reported a start' },
    ]);
    device.behaviour = 'normal';
    expect(await reopened.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true, seq: 5 });
    reopened.terminal.onDeviceEvent({ type: 'started', useSeq: 5 });
    reopened.terminal.close();
    cleanups.pop();
    // without a relay nothing will ever report the end of the session: recorded as failed (charged) at once
    const again = openTerminal({ dataDir: rig.dataDir });
    expect(again.terminal.ledger.use(oneTimeOf(batch.oneTimeCards[1]!).batchId, 2)?.state).toBe('failed');
    expect(again.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 2, releases: 1 });
    expect(toHex(oneTimeOf(batch.oneTimeCards[1]!).batchId)).toBe(again.terminal.status().batches[0]!.batchId);
  });

  it('a start the board kept across a daemon restart keeps the use charged', async () => {
    const { rig, batch, device, timers } = await deviceRig('never-starts');
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    rig.terminal.close();
    cleanups.pop();
    const reopened = openTerminal({ dataDir: rig.dataDir, device, startTimeoutMs: 80, scheduler: timers });
    reopened.terminal.onDeviceEvent({ type: 'started', useSeq: 3 });
    reopened.terminal.onDeviceEvent({ type: 'finished', useSeq: 3 });
    // past the start timeout: the start reported ended the wait, nothing releases the use
    timers.advance(150);
    expect(typesAfter(reopened.terminal, 2).map((e) => e.type)).toEqual([EntryType.USE_RESERVED, EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(reopened.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1, releases: 0 });
  });

  it('a graceful stop releases a use whose device has not started and opens the relay', async () => {
    const { rig, batch, device } = await deviceRig('never-starts');
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(device.relayClosed).toBe(true);
    await rig.terminal.prepareStop();
    expect(device.relayClosed).toBe(false);
    expect(typesAfter(rig.terminal, 3)).toEqual([{ type: EntryType.USE_RELEASED, ref: 3, detail: 'terminal stopping before the device started' }]);
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, serial: 1 });
  });
});
