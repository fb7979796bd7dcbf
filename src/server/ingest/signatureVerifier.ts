/**
 * Ed25519 checks of ledger entries, in batches, on this thread or on a pool of
 * worker threads. A verify costs 0.13-0.4 ms of CPU here, most of an entry's
 * ingest cost, so with every-entry checking the pool lets the other core(s)
 * verify while the main thread talks to MQTT and the database.
 *
 * The worker is inline JavaScript over node:crypto only (no project imports),
 * so it runs the same from TypeScript sources under test and from dist/.
 */
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { verifyMessage } from '../../crypto/ed25519.js';

export interface SignatureJob {
  readonly publicKey: Uint8Array;
  /** The signed bytes; the signature is over their SHA-256 (src/crypto/ed25519.ts) */
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

export interface SignatureVerifier {
  verify(jobs: readonly SignatureJob[]): Promise<boolean[]>;
  close(): Promise<void>;
}

export const inlineVerifier: SignatureVerifier = {
  verify: async (jobs) => jobs.map((j) => verifyMessage(j.publicKey, j.message, j.signature)),
  close: async () => undefined,
};

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash, createPublicKey, verify } = require('node:crypto');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(raw) {
  const id = Buffer.from(raw).toString('hex');
  let key = keys.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keys.size > 4096) keys.clear();
    keys.set(id, key);
  }
  return key;
}
parentPort.on('message', ({ id, jobs }) => {
  const results = jobs.map((job) => {
    if (job.publicKey.length !== 32 || job.signature.length !== 64) return false;
    try {
      return verify(null, createHash('sha256').update(job.message).digest(), keyOf(job.publicKey), job.signature);
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ id, results });
});
`;

/** Small batches run inline: posting to a worker costs more than a few verifies */
const INLINE_BELOW = 8;

export function createVerifierPool(threads = cpus().length): SignatureVerifier {
  const workers = Array.from({ length: Math.max(1, threads) }, () => {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    return worker;
  });
  const pending = new Map<number, (results: boolean[]) => void>();
  let nextId = 0;
  let nextWorker = 0;
  for (const worker of workers) {
    worker.on('message', ({ id, results }: { id: number; results: boolean[] }) => {
      pending.get(id)?.(results);
      pending.delete(id);
    });
  }
  const run = (worker: Worker, jobs: readonly SignatureJob[]): Promise<boolean[]> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      worker.postMessage({ id, jobs });
    });
  return {
    async verify(jobs) {
      if (jobs.length < INLINE_BELOW) return inlineVerifier.verify(jobs);
      // spread one report over the workers, starting where the last one left off
      const share = Math.ceil(jobs.length / workers.length);
      const parts: Array<Promise<boolean[]>> = [];
      for (let start = 0; start < jobs.length; start += share) {
        const worker = workers[nextWorker++ % workers.length]!;
        parts.push(run(worker, jobs.slice(start, start + share)));
      }
      return (await Promise.all(parts)).flat();
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
