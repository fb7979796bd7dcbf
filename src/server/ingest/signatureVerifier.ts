/**
 * Ed25519 checks of ledger entries, in batches: on this thread (inlineVerifier)
 * or on the ingest worker threads (ingestWorkerPool.ts). A verify costs
 * 0.13-0.4 ms of CPU here.
 */
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
