/**
 * An ingest worker thread (started by ingestWorkerPool.ts): prepares reports
 * (parse and verify) and checks batches of signatures, so the main thread is
 * left with MQTT and the database.
 */
import { parentPort } from 'node:worker_threads';
import { PayloadError } from '../../codecs/mqtt/PayloadError.js';
import { verifyMessage } from '../../crypto/ed25519.js';
import type { WorkerReply, WorkerRequest } from './ingestWorkerPool.js';
import { encodeVerifiedReport, wireTransfers } from './preparedWire.js';
import { prepareReport } from './prepareReport.js';

function failure(err: unknown): WorkerReply['error'] {
  if (err instanceof PayloadError) return { message: err.message, payload: { reason: err.reason, detail: err.detail } };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** The reply, and the buffers it moves back to the main thread */
async function answer(request: WorkerRequest): Promise<[WorkerReply, ArrayBuffer[]]> {
  try {
    if (request.kind === 'verify') return [{ id: request.id, valid: request.jobs.map((j) => verifyMessage(j.publicKey, j.message, j.signature)) }, []];
    const { transaction, report, rejection } = await prepareReport(request.request);
    const wire = report ? encodeVerifiedReport(report) : undefined;
    const prepared = { transaction, ...(wire ? { report: wire } : {}), ...(rejection ? { rejection: { reason: rejection.reason, detail: rejection.detail } } : {}) };
    return [{ id: request.id, prepared }, wire ? wireTransfers(wire) : []];
  } catch (err) {
    return [{ id: request.id, error: failure(err) }, []];
  }
}

parentPort?.on('message', (request: WorkerRequest) => {
  void answer(request).then(([reply, transfer]) => parentPort!.postMessage(reply, transfer));
});
