/**
 * The terminal never trusts an unsigned column when it appends (ledger-format.md
 * section 5): a zeroed `hash` column of the last row does not become the next
 * entry's previous hash, and a tail changed behind a running terminal makes it
 * refuse (LEDGER_BROKEN) instead of chaining onto it.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Issuer, provisionTerminal } from '../../src/scenario/CardWorld.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();

async function world() {
  const issuer = await new Issuer(scratch()).init();
  const batch = await issuer.makeBatch('CLINIC-A', 4);
  const dataDir = scratch();
  const open = () => provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'CLINIC-A' });
  const rig = await open();
  cleanups.push(() => issuer.close());
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
  expect(await rig.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true });
  return { batch, rig, open, db: join(dataDir, 'terminal.db') };
}

function tamper(path: string, sql: string): void {
  const db = new Database(path);
  db.exec(sql);
  db.close();
}

describe('appending after unsigned columns were changed', () => {
  it('a zeroed hash column of the last row: after a restart the next entry still chains to the real entry', async () => {
    const { batch, rig, open, db } = await world();
    rig.terminal.close();
    tamper(db, 'UPDATE ledger SET hash = zeroblob(32), time = 0 WHERE seq = (SELECT MAX(seq) FROM ledger)');
    const again = await open();
    cleanups.push(() => again.terminal.close());
    expect(await again.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true });
    expect(again.terminal.ledger.verify()).toMatchObject({ ok: true, uses: 2 });
  });

  it('the last row deleted behind a running terminal: the next swipe is refused, nothing is chained onto the cut tail', async () => {
    const { batch, rig, db } = await world();
    cleanups.push(() => rig.terminal.close());
    const before = rig.terminal.ledger.lastSeq();
    tamper(db, `DELETE FROM outbox WHERE seq = ${before}; DELETE FROM ledger WHERE seq = ${before}`);
    expect(await rig.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: false, code: 'LEDGER_BROKEN' });
    const check = new Database(db, { readonly: true });
    expect(check.prepare('SELECT MAX(seq) AS s FROM ledger').get()).toEqual({ s: before - 1 });
    check.close();
  });
});
