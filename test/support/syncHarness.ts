/** Wiring for sync tests: a real Mosquitto, the ingest server on SQLite, terminals with signed ledgers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServerStore } from '../../src/server/createServerStore.js';
import { createIngestServer, type IngestServer, type IngestServerOptions } from '../../src/server/IngestServer.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { makeBatch, SignedLedger, type Investor } from './signedLedger.js';

/** A ledger of about `entries` entries: provisioning, a batch, then whole uses */
export function busyLedger(investor: Investor, terminalId: string, entries: number, clinicCode = 'CL-1'): SignedLedger {
  const ledger = new SignedLedger(investor, terminalId, clinicCode);
  const uses = Math.max(1, Math.floor((entries - 2) / 3));
  const batch = makeBatch(investor, clinicCode, 1, uses);
  ledger.loadBatch(batch);
  for (let serial = 1; serial <= uses; serial++) ledger.use(batch, serial);
  return ledger;
}

export interface ServerRig {
  store: ServerStore;
  server: IngestServer;
  dir: string;
  /** Stops the server and starts another on the same store */
  restart(overrides?: Partial<IngestServerOptions>): Promise<void>;
  close(): Promise<void>;
}

export async function startServerRig(options: Omit<IngestServerOptions, 'store'>): Promise<ServerRig> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-server-'));
  const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  const rig: ServerRig = {
    store,
    dir,
    server: await createIngestServer({ ...options, store }),
    async restart(overrides = {}) {
      await rig.server.stop();
      rig.server = await createIngestServer({ ...options, ...overrides, store });
    },
    async close() {
      await rig.server.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
