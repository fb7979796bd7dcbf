/**
 * Issue 13: a copy of a card's record and marker on another chip, without the
 * key the genuine chip made, is refused as a cloned card on any terminal,
 * offline; version 1 cards only pass under the migration setting.
 */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { parseCardRecord, recordVersion, type BatchFields, type OneTimeFields, type SignedRecord } from '../../src/codecs/cardRecord.js';
import { ENTRY_TYPE_NAMES, EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { terminalTag, verifyCardChallenge } from '../../src/crypto/cardAuth.js';
import { VERSION1_ACCEPTED_DETAIL } from '../../src/ledger/Ledger.js';
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
    const dataDir = scratch();
    const migrating = await provisionTerminal(issuer, { dataDir, terminalId: 'T-MIGRATING', clinicCode: 'CLINIC-1', acceptVersion1Cards: true });
    cleanups.push(() => strict.terminal.close(), () => migrating.terminal.close());
    const old = await issuer.makeBatch('CLINIC-1', 2, 365, undefined, 1);
    expect(old.batchCard.appletVersion).toBe(1);
    expect(recordVersion(parseCardRecord(Buffer.from(old.oneTimeCards[0]!.snapshot().record!, 'hex')))).toBe(1);
    const refused = await strict.swipe(old.batchCard);
    expect(refused).toMatchObject({ ok: false, code: 'VERSION1_CARD' });
    expect(refused.ok ? '' : refused.detail).toMatch(/cards\.acceptVersion1/);
    expect(await migrating.swipe(old.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    expect(await migrating.swipe(old.oneTimeCards[0]!)).toMatchObject({ ok: true, action: 'use' });
    // the ledger shows the setting, then each version 1 card accepted under it, and no card answer
    const entries = () => migrating.terminal.ledger.entriesFrom(1, 100).map((e) => parseLedgerEntry(e.raw));
    const shown = entries().slice(1).map((e) => [ENTRY_TYPE_NAMES[e.type], e.detail, e.cardChallenge]);
    expect(shown.slice(0, 3)).toEqual([
      ['terminal.setting', 'cards.acceptVersion1=true', undefined],
      ['batch.loaded', VERSION1_ACCEPTED_DETAIL, undefined],
      ['use.reserved', VERSION1_ACCEPTED_DETAIL, undefined],
    ]);
    expect(migrating.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
    // the setting is recorded once, and again when the migration ends
    expect(await migrating.swipe(old.oneTimeCards[1]!)).toMatchObject({ ok: true, action: 'use' });
    expect(entries().filter((e) => e.type === EntryType.TERMINAL_SETTING)).toHaveLength(1);
    migrating.terminal.close();
    const after = await provisionTerminal(issuer, { dataDir, terminalId: 'T-MIGRATING', clinicCode: 'CLINIC-1' });
    cleanups.push(() => after.terminal.close());
    expect(await after.swipe(old.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'VERSION1_CARD' });
    const settings = after.terminal.ledger.entriesFrom(1, 100).map((e) => parseLedgerEntry(e.raw)).filter((e) => e.type === EntryType.TERMINAL_SETTING);
    expect(settings.map((e) => e.detail)).toEqual(['cards.acceptVersion1=true', 'cards.acceptVersion1=false']);
    expect(after.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 2 });
  });

  it("the ledger records each card's challenge and answer, which verify with the card key its record names", async () => {
    const { issuer, first } = await world();
    const batch = await issuer.makeBatch('CLINIC-1', 2);
    expect(await first.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
    const use = await first.swipe(batch.oneTimeCards[0]!);
    expect(use).toMatchObject({ ok: true, action: 'use' });
    const authenticated = first.terminal.ledger.entriesFrom(1, 100).map((e) => parseLedgerEntry(e.raw)).filter((e) => e.type === EntryType.BATCH_LOADED || e.type === EntryType.USE_RESERVED);
    expect(authenticated).toHaveLength(2);
    const nonces = new Set<string>();
    for (const entry of authenticated) {
      const record = parseCardRecord(entry.card!) as SignedRecord<BatchFields | OneTimeFields>;
      expect(entry.cardChallenge!.subarray(0, 8)).toEqual(terminalTag('T-FIRST'));
      expect(verifyCardChallenge(record.cardKey, record.cardId, entry.cardChallenge!, entry.cardAnswer!)).toBe(true);
      expect(entry.detail).toBeUndefined();
      nonces.add(toHex(entry.cardChallenge!.subarray(8)));
    }
    expect(nonces.size).toBe(2);
    expect(first.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
  });
});
