/**
 * Worker threads for the ingest's CPU work: preparing reports (parse, the
 * certificate, hash links, signatures: about 13 us an entry, more than the
 * database's share) and the background signature audit. The main thread
 * keeps MQTT and the database, and stores one report while the workers
 * prepare the next ones.
 *
 * A report goes to the worker with the fewest jobs waiting. A worker that dies
 * fails its jobs (the reports get no ack, so the terminals send them again)
 * and is replaced.
 */
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PayloadError, type PayloadRejection } from '../../codecs/mqtt/PayloadError.js';
import { TallyError } from '../../errors.js';
import type { PreparedReport, PrepareRequest, ReportPreparer } from './prepareReport.js';
import { inlineVerifier, type SignatureJob, type SignatureVerifier } from './signatureVerifier.js';
import { decodeVerifiedReport, type VerifiedReportWire } from './preparedWire.js';
import { ReportRejection } from './verifyReport.js';

export type WorkerRequest = { readonly id: number } & ({ readonly kind: 'prepare'; readonly request: PrepareRequest } | { readonly kind: 'verify'; readonly jobs: readonly SignatureJob[] });

export interface WorkerReply {
  readonly id: number;
  readonly valid?: boolean[];
  readonly prepared?: { transaction: number; report?: VerifiedReportWire; rejection?: { reason: ReportRejection['reason']; detail: string } };
  readonly error?: { message: string; payload?: { reason: PayloadRejection; detail: string } };
}

export interface IngestWorkerPool extends SignatureVerifier, ReportPreparer {
  readonly threads: number;
  /** Resolves once every thread has started (or ended trying): the server says it runs only after this */
  ready(): Promise<void>;
}

/** Small signature batches run inline: posting to a worker costs more than a few verifies */
const INLINE_BELOW = 8;

/** ingestWorker.js next to this file when it runs compiled; under dist/ when tests run the sources */
export function workerEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, 'ingestWorker.js'), resolve(here, '../../../dist/src/server/ingest/ingestWorker.js')]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new TallyError('CONFIG', 'dist/src/server/ingest/ingestWorker.js not found: run npm run build first');
}

interface Job {
  readonly resolve: (reply: WorkerReply) => void;
  readonly reject: (err: Error) => void;
}

class PoolThread {
  worker: Worker;
  started!: Promise<void>;
  readonly jobs = new Map<number, Job>();

  constructor(
    private readonly entry: string,
    private readonly closing: () => boolean,
  ) {
    this.worker = this.start();
  }

  private start(): Worker {
    const worker = new Worker(this.entry);
    worker.unref();
    this.started = new Promise((resolve) => {
      worker.once('online', resolve);
      worker.once('exit', () => resolve());
    });
    worker.on('message', (reply: WorkerReply) => {
      const job = this.jobs.get(reply.id);
      this.jobs.delete(reply.id);
      job?.resolve(reply);
    });
    const fail = (why: string): void => {
      if (this.worker !== worker) return;
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      for (const job of jobs) job.reject(new Error(`ingest worker stopped: ${why}`));
      if (!this.closing()) this.worker = this.start();
    };
    worker.on('error', (err) => fail(err.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    return worker;
  }

  run(message: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      this.jobs.set(message.id, { resolve, reject });
      this.worker.postMessage(message, transfer);
    });
  }
}

function fromReply(reply: WorkerReply): PreparedReport {
  if (reply.error) {
    if (reply.error.payload) throw new PayloadError(reply.error.payload.reason, reply.error.payload.detail);
    throw new TallyError('INTERNAL', reply.error.message);
  }
  const { transaction, report, rejection } = reply.prepared!;
  return { transaction, ...(report ? { report: decodeVerifiedReport(report) } : {}), ...(rejection ? { rejection: new ReportRejection(rejection.reason, rejection.detail) } : {}) };
}

/** `entry` is the worker script: ingestWorker.js unless a test wraps it */
export function createIngestWorkerPool(threads = cpus().length, entry = workerEntry()): IngestWorkerPool & { close(): Promise<void> } {
  let closed = false;
  const pool = Array.from({ length: Math.max(1, threads) }, () => new PoolThread(entry, () => closed));
  let nextId = 0;
  let nextThread = 0;
  const leastBusy = (): PoolThread => pool.reduce((best, t) => (t.jobs.size < best.jobs.size ? t : best));
  return {
    threads: pool.length,
    async ready() {
      await Promise.all(pool.map((t) => t.started));
    },
    async prepare(request) {
      // a copy of the payload alone (the MQTT buffer may hold more), handed over without a second copy
      const payload = new Uint8Array(request.payload);
      return fromReply(await leastBusy().run({ id: nextId++, kind: 'prepare', request: { ...request, payload } }, [payload.buffer]));
    },
    async verify(jobs) {
      if (jobs.length < INLINE_BELOW) return inlineVerifier.verify(jobs);
      // one batch spread over the threads, starting where the last one left off
      const share = Math.ceil(jobs.length / pool.length);
      const parts: Array<Promise<boolean[]>> = [];
      for (let start = 0; start < jobs.length; start += share) {
        const thread = pool[nextThread++ % pool.length]!;
        parts.push(
          thread.run({ id: nextId++, kind: 'verify', jobs: jobs.slice(start, start + share) }).then((reply) => {
            if (!reply.valid) throw new TallyError('INTERNAL', reply.error?.message ?? 'ingest worker gave no answer');
            return reply.valid;
          }),
        );
      }
      return (await Promise.all(parts)).flat();
    },
    async close() {
      closed = true;
      await Promise.all(pool.map((t) => t.worker.terminate()));
    },
  };
}
