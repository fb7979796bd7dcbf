/**
 * The cards as rollback witnesses: a consumed marker names the terminal and
 * the seq that consumed the card. On a ledger restored from an old copy, a
 * card marked by this terminal at a seq past the head, or at a seq that the
 * ledger now holds for another entry, is refused with LEDGER_ROLLBACK (not the
 * plain ALREADY_USED of before), and the finding is recorded as a signed
 * entry that goes to the server. A marker of another terminal stays
 * ALREADY_USED; this terminal's own genuine markers are no rollback.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { operatorMessage } from '../../src/errors.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { bothVerdicts } from '../support/pythonVerifier.js';

describe('consumed markers as rollback witnesses', () => {
  it('a card this terminal consumed after the copy the ledger was restored from is refused as a rollback and recorded', async () => {
    const dir = tempDir('tally-cardwitness-');
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 6);
    const late = await issuer.makeBatch('C1', 2);
    const dataDir = join(dir, 'data');
    const db = join(dataDir, 'terminal.db');

    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CW', clinicCode: 'C1' });
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, seq: 2 });
    rig.terminal.close();
    copyFileSync(db, join(dir, 'backup.db'));

    // after the copy: two uses (seq 3-5 and 6-8) and a second batch loaded (seq 9)
    const before = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CW', clinicCode: 'C1' });
    expect(await before.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(await before.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true, seq: 6 });
    expect(await before.swipe(late.batchCard)).toMatchObject({ ok: true, seq: 9 });
    // this terminal's own genuine markers: the same cards again are plain refusals, no rollback
    expect(await before.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: false, code: 'ALREADY_USED' });
    expect(await before.swipe(late.batchCard)).toMatchObject({ ok: false, code: 'BATCH_ALREADY_LOADED' });
    before.terminal.close();

    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    copyFileSync(join(dir, 'backup.db'), db);
    const restored = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CW', clinicCode: 'C1', locale: 'zh' });
    onTestFinished(() => restored.terminal.close());
    expect(restored.terminal.ledger.lastSeq()).toBe(2);

    // card 2's marker names seq 6, past the restored head 2
    const second = await restored.swipe(batch.oneTimeCards[1]!);
    expect(second).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK', message: operatorMessage('LEDGER_ROLLBACK', 'zh') });
    expect((second as { detail: string }).detail).toMatch(/marked consumed here at seq 6, past the ledger's head 2/);
    // a batch loaded after the copy: its card's marker (seq 9) is a witness too, though the batch is unknown here
    expect(await restored.swipe(late.oneTimeCards[0]!)).toMatchObject({ ok: false, code: 'BATCH_NOT_LOADED' });
    expect(await restored.swipe(late.batchCard)).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK' });

    // fresh cards still serve (a marker is not signed: one card does not put the terminal out of service)
    expect(await restored.swipe(batch.oneTimeCards[2]!)).toMatchObject({ ok: true, seq: 5 });
    // card 1's marker names seq 3, which the restored ledger now holds for another entry (the board witness's record)
    const first = await restored.swipe(batch.oneTimeCards[0]!);
    expect(first).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK' });
    expect((first as { detail: string }).detail).toMatch(/at seq 3, which the ledger holds for another entry/);

    const witnesses = [...restored.terminal.ledger.entries()].map(parseLedgerEntry).filter((e) => e.type === EntryType.WITNESS_ROLLBACK);
    expect(witnesses.map((e) => e.ref)).toEqual([6, 9, 3]);
    expect(witnesses[0]!.card && toHex(witnesses[0]!.card)).toBe(toHex(Buffer.from(batch.oneTimeCards[1]!.snapshot().record!, 'hex')));
    expect(restored.terminal.ledger.verify()).toMatchObject({ ok: true });
    // the Python verifier, from the spec alone, reads the three witness.rollback entries alike
    const both = bothVerdicts(dir, restored.terminal.ledger);
    expect(both.py).toEqual(both.ts);
    expect(restored.terminal.status().refusals).toMatchObject({ LEDGER_ROLLBACK: 3 });
  });

  it('a marker of another terminal is ALREADY_USED, not a rollback', async () => {
    const dir = tempDir('tally-cardwitness-other-');
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 2);
    const a = await provisionTerminal(issuer, { dataDir: join(dir, 'a'), terminalId: 'T-A', clinicCode: 'C1' });
    onTestFinished(() => a.terminal.close());
    const b = await provisionTerminal(issuer, { dataDir: join(dir, 'b'), terminalId: 'T-B', clinicCode: 'C1' });
    onTestFinished(() => b.terminal.close());
    expect(await a.swipe(batch.batchCard)).toMatchObject({ ok: true });
    expect(await b.swipe(batch.batchCard)).toMatchObject({ ok: false, code: 'ALREADY_USED' });
    expect([...b.terminal.ledger.entries()].map(parseLedgerEntry).some((e) => e.type === EntryType.WITNESS_ROLLBACK)).toBe(false);
  });
});
