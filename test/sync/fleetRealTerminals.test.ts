/**
 * The fleet simulator end to end with real terminals: each has its own SQLite
 * ledger and device key and swipes real one-time cards; all report through a
 * real Mosquitto to the ingest server while terminals drop offline and
 * restart, the broker restarts and the server restarts. At the end the
 * server holds every terminal's ledger, entry for entry.
 * test/sync/fleet.test.ts runs the same scale on synthetic ledgers, with more
 * restarts of the sync clients.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import { createIngestServer, type IngestServer } from '../../src/server/IngestServer.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { FleetSimulator } from '../../src/scenario/fleet.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';

// the scale, 50 terminals x 400 uses, under SOAK=1 (about 70 s on a quiet machine, past 600 s on a loaded
// one); CI runs 25 terminals through the same restarts. test/sync/fleet.test.ts runs 50 x 400 on synthetic ledgers.
const TERMINALS = Number(process.env.FLEET_TERMINALS ?? (process.env.SOAK ? 50 : 25));
const USES = Number(process.env.FLEET_USES ?? 400);

let broker: RunningMosquitto;
let store: ServerStore;
let server: IngestServer | undefined;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await server?.stop();
  await store?.close();
  await broker?.close();
});

describe('fleet of real terminals', () => {
  it(`${TERMINALS} terminals x ${USES} uses through Mosquitto, with offline periods, terminal, broker and server restarts: nothing lost, doubled or altered`, async () => {
    const dir = tempDir('tally-fleet-');
    let brokerRestarts = 0;
    let serverRestarts = 0;
    const sim = await FleetSimulator.create({
      dir,
      brokerUrl: broker.url,
      terminals: TERMINALS,
      usesPerTerminal: USES,
      rounds: 6,
      offlineChance: 0.25,
      restartChance: 0.1,
      betweenRounds: async (round) => {
        if (round === 1) {
          await broker.restart();
          brokerRestarts++;
        }
        if (round === 3) {
          await server!.stop();
          server = await createIngestServer({ store, rootPublicKey: sim.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 500 });
          serverRestarts++;
        }
      },
    });
    store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
    server = await createIngestServer({ store, rootPublicKey: sim.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 500 });
    await sim.provision();
    const result = await sim.run(store);
    await server.idle();
    const after = await sim.compare(store);
    await sim.close();
    console.log(
      `fleet: ${result.terminals} terminals, ${result.usesGranted} uses, ${after.entries} entries, ${result.offlinePeriods} offline periods, ` +
        `${result.restarts} terminal restarts, ${brokerRestarts} broker and ${serverRestarts} server restarts; server ${after.serverEntries}, lost ${after.lost}, doubled ${after.doubled}, altered ${after.mismatched}`,
    );
    expect(result.usesGranted).toBe(TERMINALS * USES);
    expect(after).toMatchObject({ lost: 0, doubled: 0, mismatched: 0 });
    expect(after.serverEntries).toBe(after.entries);
    expect(await store.alerts()).toEqual([]);
    const uses = (await store.usesPerDay()).reduce((n, d) => n + d.uses, 0);
    expect(uses).toBe(TERMINALS * USES);
  }, 600_000);
});
