import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServerStore } from '../../server/createServerStore.js';
import { createIngestServer } from '../../server/IngestServer.js';
import { startEmbeddedBroker } from '../../scenario/embeddedServer.js';
import { FleetSimulator } from '../../scenario/fleet.js';
import { tempDir } from '../../scenario/CardWorld.js';
import { integer, parse } from '../args.js';
import type { CliCommand } from '../command.js';

export const simFleetCommand: CliCommand = {
  path: ['sim', 'fleet'],
  summary: 'many terminals swiping, dropping offline and coming back, against a server',
  help: `tally sim fleet [--terminals N] [--uses N] [--rounds N] [--offline P] [--broker URL] [--mqtt 4|5] [--dir DIR]

Provisions N real terminals (each its own SQLite ledger and device key), gives
each a batch of --uses one-time cards, and swipes them all over --rounds rounds
while terminals drop offline (chance --offline per round) and restart. An
ingest server with a SQLite store runs beside them; at the end every
terminal's ledger is compared with the server's, entry for entry.
  --broker URL   an MQTT broker to use (e.g. a Mosquitto); default: an in-process one
Exit 0 when nothing was lost, doubled or altered.`,
  async run(args, io) {
    const values = parse(args, {
      terminals: { type: 'string' },
      uses: { type: 'string' },
      rounds: { type: 'string' },
      offline: { type: 'string' },
      broker: { type: 'string' },
      mqtt: { type: 'string' },
      dir: { type: 'string' },
    });
    const dir = typeof values.dir === 'string' ? values.dir : tempDir('tally-fleet-');
    mkdirSync(dir, { recursive: true });
    const protocolVersion = integer(values, 'mqtt', typeof values.broker === 'string' ? 5 : 4) === 4 ? 4 : 5;
    const embedded = typeof values.broker === 'string' ? undefined : await startEmbeddedBroker();
    const brokerUrl = typeof values.broker === 'string' ? values.broker : embedded!.url;
    let cleanup: (() => Promise<void>)[] = [async () => embedded?.close()];
    try {
      const sim = await FleetSimulator.create({
        dir,
        brokerUrl,
        protocolVersion,
        terminals: integer(values, 'terminals', 10),
        usesPerTerminal: integer(values, 'uses', 100),
        rounds: integer(values, 'rounds', 8),
        offlineChance: typeof values.offline === 'string' ? Number(values.offline) : 0.2,
        onProgress: (line) => io.out(line),
      });
      cleanup = [() => sim.close(), ...cleanup];
      const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
      cleanup = [() => store.close(), ...cleanup];
      const server = await createIngestServer({ store, rootPublicKey: sim.rootPublicKey, brokerUrl, protocolVersion, gapCheckMs: 1000 });
      cleanup = [() => server.stop(), ...cleanup];
      io.out(`fleet in ${dir}, broker ${brokerUrl}`);
      await sim.provision();
      const result = await sim.run(store);
      await server.idle();
      const after = await sim.compare(store);
      io.out(
        `${result.terminals} terminals, ${result.usesGranted} uses, ${after.entries} ledger entries, ${result.offlinePeriods} offline periods, ${result.restarts} restarts: ` +
          `server holds ${after.serverEntries}; lost ${after.lost}, doubled ${after.doubled}, altered ${after.mismatched}`,
      );
      return after.lost === 0 && after.doubled === 0 && after.mismatched === 0 && after.serverEntries === after.entries ? 0 : 1;
    } finally {
      for (const step of cleanup) await step().catch(() => undefined);
    }
  },
};
