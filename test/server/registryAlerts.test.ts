/**
 * The registry against the reports, through the real ingest: a batch loaded
 * that no station export knows, a terminal reporting for another clinic than
 * it is registered to, a retired terminal still reporting, an unlisted one in
 * a clinic the registry lists terminals for, each raised once as an alert; a
 * claimed batch counted from the registry.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { saveTerminal } from '../../src/server/registry/registryAdmin.js';
import { RegistryCheck } from '../../src/server/registry/registryCheck.js';
import { importRegistryExport } from '../../src/server/registry/verifyExport.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { ManualClock } from '../../src/util/clock.js';
import { makeBatch, makeInvestor, SignedLedger, type Investor } from '../support/signedLedger.js';
import { stationExport } from './registryFixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-registry-alerts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let investor: Investor;
let store: ServerStore;
let ingest: Ingest;
let check: RegistryCheck;
let clock: ManualClock;
let n = 0;

beforeEach(async () => {
  investor = makeInvestor();
  store = await createServerStore({ kind: 'sqlite', path: join(dir, `server-${++n}.db`) });
  clock = new ManualClock(Date.UTC(2026, 10, 1));
  ingest = new Ingest({ store, rootPublicKey: investor.rootPublicKey, clock });
  check = new RegistryCheck(store, clock);
});
afterEach(() => store.close());

async function report(ledger: SignedLedger): Promise<void> {
  const seqs = Array.from({ length: ledger.lastSeq }, (_, i) => i + 1);
  const outcome = await ingest.handle(terminalTopic(ledger.terminalId, 'report'), encodeReport({ transaction: 1, certificate: ledger.certificate, entries: seqs.map((s) => ledger.entry(s)) }));
  expect(outcome.accepted).toBe(true);
}

/** Each terminal loads a batch of its clinic and reports it */
async function loadedOn(terminals: ReadonlyArray<readonly [terminalId: string, clinicCode: string]>): Promise<void> {
  for (const [id, clinic] of terminals) {
    const ledger = new SignedLedger(investor, id, clinic);
    ledger.loadBatch(makeBatch(investor, clinic, 1, 5));
    await report(ledger);
  }
}

describe('registry alerts', () => {
  it('a batch loaded that no imported export knows: batch-not-registered, once; a registered one: none', async () => {
    const registered = makeBatch(investor, 'CL-1', 1, 10);
    const stray = makeBatch(investor, 'CL-1', 2, 10);
    const ledger = new SignedLedger(investor, 'T-0001', 'CL-1');
    ledger.loadBatch(registered);
    ledger.use(registered, 1);
    ledger.loadBatch(stray);
    await report(ledger);
    // no export imported yet: the registry is not in use, an unknown batch is no news
    expect(await check.check()).toEqual([]);

    await importRegistryExport(store.registry, stationExport(investor, 'ST-1', [registered]), investor.rootPublicKey, clock.now());
    const raised = await check.check();
    expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['batch-not-registered', 'T-0001']]);
    expect(raised[0]!.detail).toContain(stray.batchIdHex);
    expect(await check.check()).toEqual([]);
    // a new check (a restarted server) finds the alert stored already
    expect(await new RegistryCheck(store, clock).check()).toEqual([]);
    expect((await store.alerts()).filter((a) => a.kind === 'batch-not-registered')).toHaveLength(1);

    // the station's next export brings the batch: nothing more is raised
    await importRegistryExport(store.registry, stationExport(investor, 'ST-1', [registered, stray]), investor.rootPublicKey, clock.now());
    expect((await store.registry.findings()).unregisteredBatches).toEqual([]);
  });

  it('a terminal reporting for another clinic than registered: terminal-wrong-clinic; its own clinic or retired: none', async () => {
    await loadedOn([
      ['T-A', 'CL-1'],
      ['T-B', 'CL-1'],
      ['T-C', 'CL-1'],
    ]);
    await store.registry.putTerminal({ terminalId: 'T-A', clinicCode: 'CL-1', status: 'expected', addedAt: 1 });
    await store.registry.putTerminal({ terminalId: 'T-B', clinicCode: 'CL-2', status: 'expected', addedAt: 1 });
    await store.registry.putTerminal({ terminalId: 'T-C', clinicCode: 'CL-2', status: 'retired', addedAt: 1 });
    const raised = await check.check();
    expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-wrong-clinic', 'T-B']]);
    expect(raised[0]!.detail).toBe('terminal T-B is registered to clinic CL-2 but reports for clinic CL-1');
    expect((await store.registry.terminalRegistry()).map((t) => [t.terminalId, t.state])).toEqual([
      ['T-A', 'active'],
      ['T-B', 'wrong-clinic'],
      ['T-C', 'retired'],
    ]);
  });

  it('a retired terminal whose entries keep arriving: terminal-retired-reporting, once; an active one: none', async () => {
    const retired = new SignedLedger(investor, 'T-OLD', 'CL-1');
    const active = new SignedLedger(investor, 'T-NEW', 'CL-1');
    const batch = makeBatch(investor, 'CL-1', 1, 10);
    const other = makeBatch(investor, 'CL-1', 2, 10);
    retired.loadBatch(batch);
    retired.use(batch, 1);
    active.loadBatch(other);
    await report(retired);
    await report(active);
    clock.advance(1_000);
    // retired as the CLI and the HTTP API do it: stamped with the time
    await saveTerminal(store.registry, { terminalId: 'T-OLD', clinicCode: 'CL-1', status: 'retired' }, clock.now());
    await saveTerminal(store.registry, { terminalId: 'T-NEW', clinicCode: 'CL-1' }, clock.now());
    // what it reported before it was retired is no news
    expect(await check.check()).toEqual([]);

    clock.advance(60_000);
    retired.use(batch, 2);
    active.use(other, 1);
    await report(retired);
    await report(active);
    const raised = await check.check();
    expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-retired-reporting', 'T-OLD']]);
    expect(raised[0]!.detail).toContain(`seq ${retired.lastSeq}`);

    clock.advance(60_000);
    retired.use(batch, 3);
    await report(retired);
    expect(await check.check()).toEqual([]);
    expect((await store.alerts()).filter((a) => a.kind === 'terminal-retired-reporting')).toHaveLength(1);
    expect((await store.registry.terminalRegistry()).map((t) => [t.terminalId, t.state])).toEqual([
      ['T-NEW', 'active'],
      ['T-OLD', 'retired'],
    ]);
  });

  it('a terminal the registry does not list, reporting for a clinic it lists terminals for: terminal-not-registered; a clinic it lists none for: none', async () => {
    await store.registry.putTerminal({ terminalId: 'T-LISTED', clinicCode: 'CL-1', status: 'expected', addedAt: 1 });
    await loadedOn([
      ['T-LISTED', 'CL-1'],
      ['T-STRAY', 'CL-1'],
      ['T-ELSEWHERE', 'CL-9'],
    ]);
    const raised = await check.check();
    expect(raised.map((a) => [a.kind, a.terminalId])).toEqual([['terminal-not-registered', 'T-STRAY']]);
    expect(await check.check()).toEqual([]);
    expect((await store.registry.terminalRegistry()).find((t) => t.terminalId === 'T-STRAY')?.state).toBe('unregistered');
  });

  it("an online claim (count 0 until the batch.loaded entry arrives) is reconciled with the registry's count", async () => {
    const batch = makeBatch(investor, 'CL-1', 4, 25);
    await importRegistryExport(store.registry, stationExport(investor, 'ST-1', [batch]), investor.rootPublicKey, clock.now());
    const claim = encodeJsonPayload('claim', { transaction: 7, batchId: batch.batchIdHex, batchNo: 4, clinicCode: 'CL-1' });
    expect((await ingest.handle(terminalTopic('T-0009', 'claim'), claim)).accepted).toBe(true);
    expect((await store.batchReconciliation()).find((b) => b.batchId === batch.batchIdHex)).toMatchObject({ count: 25, terminalId: 'T-0009', used: 0, remaining: 25 });
  });
});
