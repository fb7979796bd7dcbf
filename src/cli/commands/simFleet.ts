import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServerStore } from '../../server/createServerStore.js';
import { createIngestServer } from '../../server/IngestServer.js';
import { startEmbeddedBroker } from '../../scenario/embeddedServer.js';
import { FleetSimulator } from '../../scenario/fleet.js';
import { tempDir } from '../../scenario/CardWorld.js';
import { integer } from '../args.js';
import { defineCommand } from '../command.js';
import { valueOption } from '../options.js';

export const simFleetCommand = defineCommand(
  {
    path: 'sim fleet',
    summary: 'many terminals swiping, dropping offline and coming back, against a server',
    about: `Provisions N real terminals (each its own SQLite ledger and device key), gives
each a batch of --uses one-time cards, and swipes them all over --rounds rounds
while terminals drop offline (chance --offline per round) and restart. An
ingest server with a SQLite store runs beside them; at the end every
terminal's ledger is compared with the server's, entry for entry.
Exit 0 when nothing was lost, doubled or altered.`,
    options: {
      terminals: valueOption('N', 'how many terminals', { default: '10' }),
      uses: valueOption('N', 'one-time cards a terminal', { default: '100' }),
      rounds: valueOption('N', 'rounds of swiping', { default: '8' }),
      offline: valueOption('P', 'the chance a terminal drops offline in a round', { default: '0.2' }),
      broker: valueOption('URL', 'an MQTT broker to use (e.g. a Mosquitto)', { default: 'an in-process one' }),
      mqtt: valueOption('4|5', 'the MQTT protocol version', { default: '5 with --broker, else 4' }),
      dir: valueOption('DIR', 'where the terminals and the server keep their data', { default: 'a new temporary directory' }),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
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
);
