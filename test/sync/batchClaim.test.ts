/**
 * Property 4 of the brief: a batch card initialises one terminal once. A copy
 * loaded on a second terminal is refused at once where the link is up (online
 * claim), and flagged at the server later where it was not.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTerminalSync, type TerminalSync } from '../../src/daemon/startSync.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { startEmbeddedServer, type EmbeddedServer } from '../../src/scenario/embeddedServer.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { silentLogger } from '../../src/util/logger.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanups.reverse()) await step();
});

async function onlineTerminal(issuer: Issuer, server: EmbeddedServer | undefined, id: string): Promise<{ terminal: Terminal; sync?: TerminalSync }> {
  const dataDir = tempDir();
  (await provisionTerminal(issuer, { dataDir, terminalId: id, clinicCode: 'C1' })).terminal.close();
  let sync: TerminalSync | undefined;
  const terminal = Terminal.open({ dataDir, claimBatch: (claim) => sync?.claimBatch(claim) ?? Promise.resolve(undefined) });
  if (server) {
    sync = startTerminalSync({ ledger: terminal.ledger, dataDir, settings: { brokerUrl: server.broker.url, protocolVersion: 4, maxEntriesPerSecond: 100_000, pollMs: 50 }, log: silentLogger });
    for (let i = 0; i < 200 && !sync.client.connected(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(sync.client.connected()).toBe(true);
  }
  cleanups.push(async () => {
    await sync?.stop();
    terminal.close();
  });
  return { terminal, ...(sync ? { sync } : {}) };
}

describe('a copied batch card on a second terminal', () => {
  it('is refused online at load time, and a copy loaded offline is flagged by the server when it reports', async () => {
    const dir = tempDir('tally-claim-');
    const issuer = await new Issuer(dir).init();
    cleanups.push(() => issuer.close());
    const server = await startEmbeddedServer({ dir, rootPublicKey: issuer.motherInfo.rootPublicKey });
    cleanups.push(() => server.close());
    const batch = await issuer.makeBatch('C1', 5);
    // copies made before the original is ever used carry no consumed marker
    const onlineCopy = batch.batchCard.clone();
    const offlineCopy = batch.batchCard.clone();
    const reader = new SimulatedReader();

    const first = await onlineTerminal(issuer, server, 'T-FIRST');
    expect(await first.terminal.handleCard(reader.insert(batch.batchCard))).toMatchObject({ ok: true, action: 'batch-loaded' });

    const second = await onlineTerminal(issuer, server, 'T-SECOND');
    const refused = await second.terminal.handleCard(reader.insert(onlineCopy));
    expect(refused).toMatchObject({ ok: false, code: 'ALREADY_USED' });
    expect(refused.ok ? '' : refused.detail).toContain('T-FIRST');
    expect(second.terminal.status().batches).toHaveLength(0);

    // no link: the terminal decides offline and loads it; the server catches it when the entries arrive
    const offline = await onlineTerminal(issuer, undefined, 'T-OFFLINE');
    expect(await offline.terminal.handleCard(reader.insert(offlineCopy))).toMatchObject({ ok: true, action: 'batch-loaded' });
    const late = startTerminalSync({ ledger: offline.terminal.ledger, dataDir: tempDir(), settings: { brokerUrl: server.broker.url, protocolVersion: 4, maxEntriesPerSecond: 100_000, pollMs: 50 }, log: silentLogger });
    cleanups.push(() => late.stop());
    await late.client.drained(10_000);
    await server.ingest.idle();
    const alerts = await server.store.alerts();
    expect(alerts.some((a) => a.kind === 'batch-on-two-terminals' && a.terminalId === 'T-OFFLINE')).toBe(true);
  }, 60_000);
});
