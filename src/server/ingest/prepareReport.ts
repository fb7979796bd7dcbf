/**
 * A report from its MQTT payload to what the store needs: parsed, the
 * certificate verified, every entry checked (verifyReport.ts). Needs no order
 * and no store, so it runs on this thread or on the ingest worker threads
 * (ingestWorkerPool.ts) while the main thread talks to MQTT and the database.
 */
import { parseReport } from '../../codecs/mqtt/report.js';
import { inlineVerifier, type SignatureVerifier } from './signatureVerifier.js';
import { ReportRejection, verifyReport, type SignatureCheck, type VerifiedReport } from './verifyReport.js';

export interface PrepareRequest {
  /** The terminal named by the topic the report came on */
  readonly terminalId: string;
  readonly payload: Uint8Array;
  readonly rootPublicKey: Uint8Array;
  readonly signatureCheck: SignatureCheck;
}

/** A parsed report, verified (report) or refused as a whole (rejection) */
export interface PreparedReport {
  /** Chosen by the terminal; its ack carries it back */
  readonly transaction: number;
  readonly report?: VerifiedReport;
  readonly rejection?: ReportRejection;
}

export interface ReportPreparer {
  /** Rejects with a PayloadError when the payload is not a report frame */
  prepare(request: PrepareRequest): Promise<PreparedReport>;
}

export async function prepareReport(request: PrepareRequest, verifier: SignatureVerifier = inlineVerifier): Promise<PreparedReport> {
  const frame = parseReport(request.payload);
  try {
    return { transaction: frame.transaction, report: await verifyReport(frame, request.terminalId, request.rootPublicKey, request.signatureCheck, verifier) };
  } catch (err) {
    if (err instanceof ReportRejection) return { transaction: frame.transaction, rejection: err };
    throw err;
  }
}
