/**
 * The investor's side in one process, for the demo and for trying things on a
 * laptop: an aedes MQTT broker on a free loopback port (MQTT 3.1.1) and the
 * ingest server with its SQLite store. Production runs Mosquitto with mutual
 * TLS and `tally server` (see config/).
 */
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { createServerStore } from '../server/createServerStore.js';
import { createIngestServer, type IngestServer } from '../server/IngestServer.js';
import type { ServerStore } from '../server/ServerStore.js';
import type { VoucherKey } from '../server/voucher/VoucherOffice.js';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(port = 0): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

export interface EmbeddedServer {
  readonly broker: EmbeddedBroker;
  readonly store: ServerStore;
  readonly ingest: IngestServer;
  close(): Promise<void>;
}

export async function startEmbeddedServer(options: { dir: string; rootPublicKey: Uint8Array; httpPort?: number; voucherKey?: VoucherKey }): Promise<EmbeddedServer> {
  const broker = await startEmbeddedBroker();
  const store = await createServerStore({ kind: 'sqlite', path: join(options.dir, 'server.db') });
  const ingest = await createIngestServer({
    store,
    rootPublicKey: options.rootPublicKey,
    brokerUrl: broker.url,
    protocolVersion: 4,
    gapCheckMs: 500,
    ...(options.httpPort !== undefined ? { httpPort: options.httpPort } : {}),
    ...(options.voucherKey ? { voucherKey: options.voucherKey } : {}),
  });
  return {
    broker,
    store,
    ingest,
    close: async () => {
      await ingest.stop();
      await store.close();
      await broker.close();
    },
  };
}
