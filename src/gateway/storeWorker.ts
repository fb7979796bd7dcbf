/**
 * The gateway's store thread (started by StoreThread.ts): the one owner of
 * the database's write connection. It runs each group commit (storeCommit.ts)
 * with synchronous=FULL, so the COMMIT's fsync blocks this thread and not the
 * event loop that inspects, answers and publishes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GatewayStore } from './GatewayStore.js';
import { runCommit, type CommitRequest } from './storeCommit.js';

const port = parentPort!;
const { dbPath } = workerData as { dbPath: string };
let store: GatewayStore;
try {
  store = new GatewayStore(dbPath);
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, message: (err as Error).message, code: (err as { code?: string }).code });
  process.exit(1);
}

port.on('message', (request: CommitRequest | 'close') => {
  if (request === 'close') {
    store.close();
    port.close();
    return;
  }
  port.postMessage(runCommit(store, request));
});
