/**
 * The auditor's check of a ledger follows each use through its states
 * (reserved -> started -> completed | failed, or reserved -> released), so an
 * entry signed with the terminal's key that releases a use after the device ran
 * (a silent refund) or restarts a finished use is caught, with its seq.
 */
import { describe, expect, it } from 'vitest';
import { EntryType, encodeLedgerEntry, encodeLedgerEntryBody, parseLedgerEntry, type EntryTypeValue, type LedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { directChannel } from '../../src/card/ApduChannel.js';
import { CardClient } from '../../src/card/CardClient.js';
import { challengeFor, newNonce } from '../../src/crypto/cardAuth.js';
import { sha256, signMessage } from '../../src/crypto/ed25519.js';
import { verifyLedgerEntries } from '../../src/crypto/ledgerChain.js';
import { Issuer, provisionTerminal } from '../../src/scenario/CardWorld.js';
import { loadDeviceKey } from '../../src/terminal/deviceKey.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();

/** A terminal that granted one use (no relay: reserved, started, completed) and the means to append signed entries */
async function ledgerWithOneUse() {
  const issuer = await new Issuer(scratch()).init();
  const batch = await issuer.makeBatch('CLINIC-A', 2);
  const dataDir = scratch();
  const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'CLINIC-A' });
  cleanups.push(() => {
    rig.terminal.close();
    issuer.close();
  });
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true });
  const use = await rig.swipe(batch.oneTimeCards[0]!);
  if (!use.ok) throw new Error(`use refused: ${use.code}`);
  const raws = [...rig.terminal.ledger.entries()];
  const reserve = parseLedgerEntry(raws[use.seq - 1]!);
  const deviceKey = loadDeviceKey(dataDir)!;
  const root = rig.terminal.identity()!.rootPublicKey;
  const chain = [...raws];
  /** Appends an entry signed with the terminal's own key, correctly chained */
  const append = (type: EntryTypeValue, extra: Partial<LedgerEntry> = {}): number => {
    const seq = chain.length + 1;
    const body = encodeLedgerEntryBody({ seq, prevHash: sha256(chain.at(-1)!), type, time: Date.now(), clockTrusted: true, terminalId: 'T-1', ...extra });
    chain.push(encodeLedgerEntry(body, signMessage(deviceKey, body)));
    return seq;
  };
  expect(verifyLedgerEntries(chain, root)).toMatchObject({ ok: true, uses: 1 });
  // a use entry of a version 2 card carries its answer to a challenge for this terminal, as the terminal records it
  const client = new CardClient(directChannel(batch.oneTimeCards[1]!));
  const fci = await client.select();
  const cardChallenge = challengeFor('T-1', newNonce());
  const secondCard = { card: fci.record!, cardChallenge, cardAnswer: await client.authenticate(cardChallenge) };
  return { chain, root, append, reserve, reserveSeq: use.seq, secondCard };
}

describe('ledger audit: the states of a use', () => {
  it('a release after the use completed (a silent refund), then the serial used again, is caught at the release', async () => {
    const { chain, root, append, reserve, reserveSeq } = await ledgerWithOneUse();
    const forged = append(EntryType.USE_RELEASED, { ref: reserveSeq, detail: 'forged refund' });
    append(EntryType.USE_RESERVED, { card: reserve.card!, chipUid: reserve.chipUid! });
    expect(verifyLedgerEntries(chain, root)).toMatchObject({ ok: false, problem: { seq: forged, problem: expect.stringMatching(/use at seq 3 released after it was completed/) } });
  });

  it('a second start or completion of a finished use is caught', async () => {
    const started = await ledgerWithOneUse();
    const again = started.append(EntryType.USE_STARTED, { ref: started.reserveSeq });
    expect(verifyLedgerEntries(started.chain, started.root)).toMatchObject({ ok: false, problem: { seq: again, problem: expect.stringMatching(/started after it was completed/) } });
    const completed = await ledgerWithOneUse();
    const twice = completed.append(EntryType.USE_COMPLETED, { ref: completed.reserveSeq });
    expect(verifyLedgerEntries(completed.chain, completed.root)).toMatchObject({ ok: false, problem: { seq: twice } });
  });

  it('a failure after completion is caught', async () => {
    const { chain, root, append, reserveSeq } = await ledgerWithOneUse();
    const late = append(EntryType.USE_FAILED, { ref: reserveSeq, detail: 'late fault' });
    expect(verifyLedgerEntries(chain, root)).toMatchObject({ ok: false, problem: { seq: late, problem: expect.stringMatching(/failed after it was completed/) } });
  });

  it('the legitimate paths pass: reserved -> released, the serial reserved again -> started -> failed', async () => {
    const { chain, root, append, secondCard } = await ledgerWithOneUse();
    const first = append(EntryType.USE_RESERVED, secondCard);
    append(EntryType.USE_RELEASED, { ref: first, detail: 'device fault before start' });
    const again = append(EntryType.USE_RESERVED, secondCard);
    append(EntryType.USE_STARTED, { ref: again });
    append(EntryType.USE_FAILED, { ref: again, detail: 'scanner fault' });
    expect(verifyLedgerEntries(chain, root)).toMatchObject({ ok: true, uses: 3, releases: 1 });
  });

  it('a use completed without a start, or released after it started, is caught', async () => {
    const world = await ledgerWithOneUse();
    const reserved = world.append(EntryType.USE_RESERVED, world.secondCard);
    const completed = world.append(EntryType.USE_COMPLETED, { ref: reserved });
    expect(verifyLedgerEntries(world.chain, world.root)).toMatchObject({ ok: false, problem: { seq: completed, problem: expect.stringMatching(/completed after it was reserved/) } });
    const other = await ledgerWithOneUse();
    const seq = other.append(EntryType.USE_RESERVED, other.secondCard);
    other.append(EntryType.USE_STARTED, { ref: seq });
    const refund = other.append(EntryType.USE_RELEASED, { ref: seq });
    expect(verifyLedgerEntries(other.chain, other.root)).toMatchObject({ ok: false, problem: { seq: refund, problem: expect.stringMatching(/released after it was started/) } });
  });
});
