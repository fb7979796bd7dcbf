/**
 * What the audit bundle tests share: an issuer whose mother card certified a
 * server key (tally server certify-key), the root as hex and fingerprint, and a
 * sync of a terminal's pending entries with the real ingest in one report
 * (taking the checkpoint its ack carries, as the terminal's SyncClient does).
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadServerKey } from '../../src/cli/commands/serverKey.js';
import { parseJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { Issuer } from '../../src/scenario/CardWorld.js';
import type { Ingest } from '../../src/server/ingest/Ingest.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import type { Terminal } from '../../src/terminal/Terminal.js';
import { tally } from './cliLedger.js';

export interface AuditIssuer {
  readonly issuer: Issuer;
  /** The server key file tally server certify-key wrote (server id SRV-1) */
  readonly keyFile: string;
  readonly rootHex: string;
  readonly fingerprint: string;
  readonly signer: ReturnType<typeof loadServerKey>;
}

/** The caller closes issuer */
export async function auditIssuer(dir: string): Promise<AuditIssuer> {
  const issuer = await new Issuer(dir).init();
  const motherFile = join(dir, 'mother.json');
  saveCardFile(motherFile, issuer.mother);
  const keyFile = join(dir, 'server-key.json');
  expect((await tally('server', 'certify-key', '--server-id', 'SRV-1', '--key', keyFile, '--mother', motherFile, '--mother-pin', '246810')).code).toBe(0);
  const root = issuer.motherInfo.rootPublicKey;
  const rootHex = typeof root === 'string' ? root : Buffer.from(root).toString('hex');
  return { issuer, keyFile, rootHex, fingerprint: issuer.motherInfo.rootFingerprint, signer: loadServerKey(keyFile, Buffer.from(rootHex, 'hex')) };
}

/** Sends the terminal's pending entries (but the seqs in `withhold`, which never reach the server) as one report */
export async function syncReport(ingest: Ingest, terminal: Terminal, transaction: number, withhold: readonly number[] = []): Promise<void> {
  const pending = terminal.ledger.pending(1000).filter((p) => !withhold.includes(p.seq));
  const payload = encodeReport({ transaction, certificate: terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) });
  const outcome = await ingest.handle(terminalTopic(terminal.ledger.terminalId, 'report'), payload);
  const ack = parseJsonPayload('ack', outcome.replies.find((r) => r.topic.endsWith('/ack'))!.payload);
  terminal.ledger.acknowledge(pending.map((p) => p.seq));
  if (ack.data.checkpoint) terminal.adoptCheckpoint(ack.data.checkpoint);
}
