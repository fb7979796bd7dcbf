/**
 * Issue 13: a copy of a card's record and marker on another chip, without the
 * key the genuine chip made, is refused as a cloned card on any terminal,
 * offline; version 1 cards only pass under the migration setting.
 */
import { describe, expect, it } from 'vitest';
import { parseCardRecord, recordVersion } from '../../src/codecs/cardRecord.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { operatorMessage } from '../../src/errors.js';
import { Issuer, provisionTerminal } from '../../src/scenario/CardWorld.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();

async function world() {
  const issuer = await new Issuer(scratch()).init();
  cleanups.push(() => issuer.close());
  const first = await provisionTerminal(issuer, { dataDir: scratch(), terminalId: 'T-FIRST', clinicCode: 'CLINIC-1' });
  const second = await provisionTerminal(issuer, { dataDir: scratch(), terminalId: 'T-SECOND', clinicCode: 'CLINIC-1', locale: 'zh' });
  cleanups.push(() => first.terminal.close(), () => second.terminal.close());
  return { issuer, first, second };
}

describe('cloned cards (record and marker copied, not the key)', () => {
  it('a cloned batch card is refused on a second terminal offline, and loads nothing', async () => {
    const { issuer, first, second } = await world();
    const batch = await issuer.makeBatch('CLINIC-1', 3);
    expect(recordVersion(parseCardRecord(Buffer.from(batch.batchCard.snapshot().record!, 'hex')))).toBe(2);
    const copyBeforeLoad = batch.batchCard.copyWithoutKey();
    expect(await first.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    const lastSeq = second.terminal.ledger.lastSeq();
    const refused = await second.swipe(copyBeforeLoad);
    expect(refused).toMatchObject({ ok: false, code: 'CLONED_CARD', message: operatorMessage('CLONED_CARD', 'zh') });
    // the copy taken after the load carries the marker too, and a chip with a key of its own answers wrongly
    expect(await second.swipe(batch.batchCard.copyWithoutKey({ ownKey: true }))).toMatchObject({ ok: false, code: 'CLONED_CARD' });
    expect(second.terminal.ledger.lastSeq()).toBe(lastSeq);
    expect(second.terminal.status().batches).toHaveLength(0);
    expect(second.terminal.status().refusals).toMatchObject({ CLONED_CARD: 2 });
  });

  it('a cloned one-time card is refused offline on a second terminal, before and after the genuine card is spent', async () => {
    const { issuer, first, second } = await world();
    // two batch cards are not possible, so the second terminal gets the batch first and the first a second batch: the copies go to the second
    const batch = await issuer.makeBatch('CLINIC-1', 3);
    expect(await second.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    const [card1, card2] = batch.oneTimeCards;
    const copyBeforeUse = card1!.copyWithoutKey();
    const lastSeq = second.terminal.ledger.lastSeq();
    expect(await second.swipe(copyBeforeUse)).toMatchObject({ ok: false, code: 'CLONED_CARD' });
    expect(await second.swipe(copyBeforeUse.copyWithoutKey({ ownKey: true }))).toMatchObject({ ok: false, code: 'CLONED_CARD' });
    expect(second.terminal.ledger.lastSeq()).toBe(lastSeq);
    // the genuine card still works, once
    expect(await second.swipe(card1!)).toMatchObject({ ok: true, action: 'use', serial: 1 });
    // a copy of the spent card (its marker copied too) is a clone, not merely used
    expect(await second.swipe(card1!.copyWithoutKey())).toMatchObject({ ok: false, code: 'CLONED_CARD' });
    expect(await second.swipe(card2!)).toMatchObject({ ok: true, serial: 2 });
    // the first terminal, which never loaded the batch, says so for the genuine card
    expect(await first.swipe(batch.oneTimeCards[2]!)).toMatchObject({ ok: false, code: 'BATCH_NOT_LOADED' });
  });

  it('version 1 cards are refused unless the migration setting accepts them', async () => {
    const issuer = await new Issuer(scratch()).init();
    cleanups.push(() => issuer.close());
    const strict = await provisionTerminal(issuer, { dataDir: scratch(), terminalId: 'T-STRICT', clinicCode: 'CLINIC-1' });
    const migrating = await provisionTerminal(issuer, { dataDir: scratch(), terminalId: 'T-MIGRATING', clinicCode: 'CLINIC-1', acceptVersion1Cards: true });
    cleanups.push(() => strict.terminal.close(), () => migrating.terminal.close());
    const old = await issuer.makeBatch('CLINIC-1', 2, 365, undefined, 1);
    expect(old.batchCard.appletVersion).toBe(1);
    expect(recordVersion(parseCardRecord(Buffer.from(old.oneTimeCards[0]!.snapshot().record!, 'hex')))).toBe(1);
    const refused = await strict.swipe(old.batchCard);
    expect(refused).toMatchObject({ ok: false, code: 'VERSION1_CARD' });
    expect(refused.ok ? '' : refused.detail).toMatch(/cards\.acceptVersion1/);
    expect(await migrating.swipe(old.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    expect(await migrating.swipe(old.oneTimeCards[0]!)).toMatchObject({ ok: true, action: 'use' });
    expect(migrating.terminal.ledger.entriesFrom(1, 100).map((e) => parseLedgerEntry(e.raw).type)).toContain(EntryType.USE_RESERVED);
  });
});
