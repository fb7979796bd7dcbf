/**
 * Findings of the test engineers, fixed and kept fixed: a use without a relay
 * is one transaction; a clock reset cannot revive an expired batch.
 */
import { describe, expect, it } from 'vitest';
import { EntryType } from '../../src/codecs/ledgerEntry.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { ManualClock } from '../../src/util/clock.js';

describe('a use without a relay', () => {
  it('is reserved, started and completed in one transaction: a fault on its last write leaves no trace and the card still works', async () => {
    const issuer = await new Issuer(tempDir()).init();
    const batch = await issuer.makeBatch('C1', 2);
    const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: 'T-A', clinicCode: 'C1' });
    await rig.swipe(batch.batchCard);
    const db = rig.terminal.ledger.database;
    // the disk fails exactly when the completion entry is written
    db.exec(`CREATE TRIGGER fail_completion BEFORE INSERT ON ledger WHEN NEW.type = ${EntryType.USE_COMPLETED} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
    const before = rig.terminal.ledger.lastSeq();
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: false, code: 'STORAGE_FAULT' });
    expect(rig.terminal.ledger.lastSeq()).toBe(before);
    expect(rig.terminal.ledger.openUses()).toHaveLength(0);
    expect(rig.terminal.status().batches[0]).toMatchObject({ used: 0 });
    db.exec('DROP TRIGGER fail_completion');
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, serial: 1 });
    expect(rig.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
    rig.terminal.close();
    issuer.close();
  });
});

describe('the clock', () => {
  it('reset to 1970 after a batch expired, with no entry written since: the batch stays expired', async () => {
    const start = Date.UTC(2026, 5, 1);
    const clock = new ManualClock(start);
    const issuer = await new Issuer(tempDir(), clock).init();
    const batch = await issuer.makeBatch('C1', 3, 10);
    const dataDir = tempDir();
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-C', clinicCode: 'C1', clock });
    await rig.swipe(batch.batchCard);
    expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true });
    // 11 days later the batch has expired; a swipe is refused (no entry is written for a refusal)
    clock.advance(11 * 86_400_000);
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'EXPIRED' });
    rig.terminal.close();
    // power cut, the RTC battery is flat: the board boots in 1970
    clock.set(0);
    const again = await provisionTerminal(issuer, { dataDir, terminalId: 'T-C', clinicCode: 'C1', clock });
    expect(await again.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'EXPIRED' });
    expect(again.terminal.status().clockTrusted).toBe(false);
    again.terminal.close();
    issuer.close();
  });
});
