/**
 * The registry page in a real browser, through to a real terminal: a Mosquitto the test starts, the ingest server
 * on it, and a provisioned Terminal with its daemon's SyncClient (startTerminalSync: the deny list goes into its
 * ledger, heartbeats every 200 ms). The terminal loads a batch and serves one card. The card issuer logs in
 * (chromium through playwright-core), sees the registry's clinics, terminals and cards as the store has them,
 * and revokes a second one-time card by its id on the page: the store has it at deny-list version 1, audit-logged
 * as the issuer; the server publishes the list; the terminal's ledger holds version 1; its heartbeat says so and
 * the page's deny-list section then shows the terminal received it; the terminal refuses the card REVOKED while
 * the next card still works. The terminals page shows the heartbeat's clock trust, software and deny-list version.
 * A clinic's user sees no card section and no revoke button. Screenshots go to test-output/registry/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { parseCardRecord } from '../../src/codecs/cardRecord.js';
import { startTerminalSync, type TerminalSync } from '../../src/daemon/startSync.js';
import { Issuer, provisionTerminal, tempDir, type IssuedBatch } from '../../src/scenario/CardWorld.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { DEFAULT_PRICING, startHttpApi, type HttpApi } from '../../src/server/httpApi.js';
import { createIngestServer, type IngestServer } from '../../src/server/IngestServer.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import type { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { silentLogger } from '../../src/util/logger.js';
import { buildDashboard } from '../../scripts/buildDashboard.mjs';
import { cells, launchChromium, logIn, openPage, redrawn } from '../support/consoleBrowser.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/syncHarness.js';

const OUT = fileURLToPath(new URL('../../test-output/registry/', import.meta.url));
const PASSWORD = 'correct horse battery staple';
const dir = tempDir('tally-registry-page-');
let broker: RunningMosquitto;
let store: ServerStore;
let ingest: IngestServer;
let api: HttpApi;
let browser: Browser;
let issuer: Issuer;
let terminal: Terminal;
let sync: TerminalSync;
let batch: IssuedBatch;
const reader = new SimulatedReader();

const cardIdOf = (card: SimulatedCard): string => toHex(parseCardRecord(fromHex(card.snapshot().record!)).cardId);

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  const dashboardDir = await buildDashboard(join(dir, 'dashboard/'));
  issuer = await new Issuer(dir).init();
  broker = await startMosquitto();
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await store.registry.putClinic({ clinicCode: 'C1', name: 'Clinic one', addedAt: Date.now() });
  await store.registry.putTerminal({ terminalId: 'T-1', clinicCode: 'C1', status: 'expected', addedAt: Date.now() });
  ingest = await createIngestServer({ store, rootPublicKey: issuer.motherInfo.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 500, workerThreads: 0 });
  api = await startHttpApi({ store, pricing: DEFAULT_PRICING, dashboardDir, publishDenylist: (terminalId, list) => ingest.publishDenylist(terminalId, list) });
  await addUser(store, { username: 'issuer', role: 'issuer', password: PASSWORD }, Date.now());
  await addUser(store, { username: 'clinic-1', role: 'clinic', clinic: 'C1', password: PASSWORD }, Date.now());

  const dataDir = join(dir, 'T-1');
  (await provisionTerminal(issuer, { dataDir, terminalId: 'T-1', clinicCode: 'C1' })).terminal.close();
  terminal = Terminal.open({ dataDir });
  sync = startTerminalSync({ ledger: terminal.ledger, dataDir, settings: { brokerUrl: broker.url, protocolVersion: 5, maxEntriesPerSecond: 100_000, pollMs: 50, policy: { heartbeatMs: 200 } }, software: 'tallystick test-1', log: silentLogger });
  batch = await issuer.makeBatch('C1', 5);
  expect(await terminal.handleCard(reader.insert(batch.batchCard))).toMatchObject({ ok: true, action: 'batch-loaded' });
  expect(await terminal.handleCard(reader.insert(batch.oneTimeCards[0]!))).toMatchObject({ ok: true });
  await sync.client.drained(20_000);
  // the terminal is known to the server (its entries arrived) and its heartbeat has come in
  await waitFor(async () => (await store.terminals()).some((t) => t.terminalId === 'T-1') && (await store.heartbeats()).some((h) => h.terminalId === 'T-1'), 20_000, 'T-1 reported');
  browser = await launchChromium();
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await sync?.stop();
  terminal?.close();
  await api?.close();
  await ingest?.stop();
  await store?.close();
  await broker?.close();
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the registry page in chromium, through to a terminal', () => {
  it('the card issuer revokes a card: deny list v1 in the store, received by the terminal, which refuses the card REVOKED', async () => {
    const page = await logIn(browser, api.url, 'issuer', PASSWORD);
    await openPage(page, 'registry');
    expect(await cells(page, 'clinics-table', 'clinicCode')).toEqual((await store.registry.clinics()).map((c) => c.clinicCode));
    expect(await cells(page, 'cards-table', 'cardId')).toEqual((await store.registry.cards()).map((c) => c.cardId));
    // an issuer manages cards, not terminals or agents
    expect(await page.textContent('#registry-terminals')).toContain('may not');
    expect(await page.textContent('#registry-agents')).toContain('may not');
    expect(await page.$('#clinic-save'), 'an issuer does not write clinics').toBeNull();
    expect(await page.textContent('#denylist-version')).toBe('0');
    expect(await cells(page, 'denylist-terminals', 'received')).toEqual(['yes']);

    const revoked = batch.oneTimeCards[1]!;
    const cardId = cardIdOf(revoked);
    await page.fill('#revoke-card', cardId);
    await page.fill('#revoke-reason', 'reported stolen');
    await redrawn(page, 'registry', () => page.click('#revoke-submit'));
    expect(await page.textContent('#denylist-version')).toBe('1');
    expect(await cells(page, 'denylist-table', 'cardId')).toEqual([cardId]);
    expect(await store.denylist()).toEqual([expect.objectContaining({ cardId, version: 1, reason: 'reported stolen', revokedBy: 'issuer' })]);
    expect((await store.access.audit()).find((a) => a.action === 'card.revoke')).toMatchObject({ username: 'issuer', target: cardId, address: '127.0.0.1' });
    await page.screenshot({ path: `${OUT}issuer-registry-revoked.png`, fullPage: true });

    // the terminal takes the list into its ledger; its next heartbeats name version 1, and the page says received
    await waitFor(() => terminal.ledger.denyListVersion() === 1, 20_000, 'the terminal holds deny list 1');
    await waitFor(async () => (await store.heartbeats()).find((h) => h.terminalId === 'T-1')?.denylistVersion === 1, 20_000, 'a heartbeat naming version 1');
    await redrawn(page, 'registry', () => page.click('#denylist-refresh'));
    expect(await cells(page, 'denylist-terminals', 'terminalId')).toEqual(['T-1']);
    expect(await cells(page, 'denylist-terminals', 'denylistVersion')).toEqual(['1']);
    expect(await cells(page, 'denylist-terminals', 'received')).toEqual(['yes']);
    await page.screenshot({ path: `${OUT}issuer-registry-received.png`, fullPage: true });

    // the card is refused at the terminal; the next one still works
    expect(await terminal.handleCard(reader.insert(revoked))).toMatchObject({ ok: false, code: 'REVOKED' });
    expect(await terminal.handleCard(reader.insert(batch.oneTimeCards[2]!))).toMatchObject({ ok: true });
    await page.context().close();
  });

  it("the terminals page shows the heartbeat's clock trust, software and deny-list version; a clinic may not revoke", async () => {
    const page = await logIn(browser, api.url, 'clinic-1', PASSWORD);
    await openPage(page, 'terminals');
    expect(await cells(page, 'terminals-table', 'terminalId')).toEqual(['T-1']);
    await openPage(page, 'registry');
    expect(await cells(page, 'registry-terminals-table', 'terminalId')).toEqual((await store.registry.terminalRegistry()).map((t) => t.terminalId));
    await openPage(page, 'terminals');
    expect(await cells(page, 'terminals-table', 'clockTrusted')).toEqual(['trusted']);
    expect(await cells(page, 'terminals-table', 'software')).toEqual(['tallystick test-1']);
    expect(await cells(page, 'terminals-table', 'denylistVersion')).toEqual([String(terminal.ledger.denyListVersion())]);
    await page.screenshot({ path: `${OUT}clinic-terminals.png`, fullPage: true });
    await openPage(page, 'registry');
    expect(await page.textContent('#registry-cards')).toContain('may not');
    expect(await page.$('button.revoke, #revoke-submit')).toBeNull();
    await page.screenshot({ path: `${OUT}clinic-registry.png`, fullPage: true });
    await page.context().close();
  });
});
