import { describe, expect, it } from 'vitest';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';

describe('the card hierarchy end to end', () => {
  it('issues cards, provisions a terminal, loads a batch and deducts each card once', async () => {
    const issuer = await new Issuer(tempDir()).init();
    const batch = await issuer.makeBatch('CLINIC-A', 5);
    expect(batch.result.written).toEqual([1, 2, 3, 4, 5]);
    const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: 'T-1', clinicCode: 'CLINIC-A' });

    const load = await rig.swipe(batch.batchCard);
    expect(load).toMatchObject({ ok: true, action: 'batch-loaded', count: 5 });

    for (const [i, card] of batch.oneTimeCards.entries()) {
      const outcome = await rig.swipe(card);
      expect(outcome).toMatchObject({ ok: true, action: 'use', serial: i + 1, remaining: 4 - i });
    }
    const replay = await rig.swipe(batch.oneTimeCards[0]!);
    expect(replay).toMatchObject({ ok: false });
    const verification = rig.terminal.ledger.verify();
    // provisioning + batch + (reserved, started, completed) per use
    expect(verification).toMatchObject({ ok: true, uses: 5, lastSeq: 2 + 5 * 3 });
    rig.terminal.close();
    issuer.close();
  });
});
