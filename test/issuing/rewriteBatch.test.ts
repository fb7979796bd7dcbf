import { describe, expect, it } from 'vitest';
import { Issuer, DEMO_WHITE_PIN, directChannel, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import type { SmartCard } from '../../src/card/ApduChannel.js';

describe('a batch card pulled out while it was being written', () => {
  it('is rewritten from the registry onto a new blank card, once, without spending quota', async () => {
    const issuer = await new Issuer(tempDir()).init({ whiteQuota: 1 });
    const spoiled = SimulatedCard.blank(undefined, 1);
    const reader = new SimulatedReader();
    // the card leaves the slot after its profile is written (the 2nd APDU: SELECT, PUT DATA profile, ...)
    reader.pullDuringNextSession({ atApdu: 3, when: 'before' });
    const pulled = reader.insert(spoiled);
    const oneTime = Array.from({ length: 2 }, () => SimulatedCard.blank(undefined, 1));
    await expect(
      issuer.station.makeBatch({ channel: directChannel(issuer.white), pin: DEMO_WHITE_PIN }, pulled, { clinicCode: 'C1', count: 2, validDays: 30 }, async (serial) => directChannel(oneTime[serial - 1] as SmartCard)),
    ).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    expect(issuer.registry.cards(3)[0]).toMatchObject({ written: false });

    const replacement = SimulatedCard.blank(undefined, 1);
    await issuer.station.rewriteBatchCard(directChannel(replacement), 1);
    expect(issuer.registry.cards(3)[0]).toMatchObject({ written: true });
    await expect(issuer.station.rewriteBatchCard(directChannel(SimulatedCard.blank(undefined, 1)), 1)).rejects.toMatchObject({ code: 'ISSUE_NOT_BLANK' });

    // the one-time cards were never written either: they come from the registry too
    for (const serial of [1, 2]) await issuer.station.rewriteOneTime(directChannel(oneTime[serial - 1]!), 1, serial);
    const rig = await provisionTerminal(issuer, { dataDir: tempDir(), terminalId: 'T-R', clinicCode: 'C1', acceptVersion1Cards: true });
    expect(await rig.swipe(replacement)).toMatchObject({ ok: true, action: 'batch-loaded' });
    expect(await rig.swipe(oneTime[0]!)).toMatchObject({ ok: true, serial: 1 });
    rig.terminal.close();
    issuer.close();
  });
});
