/**
 * Connects the terminal's ledger to the server over MQTT: the ledger's outbox
 * is drained by the sync client, deny lists from the server are applied to the
 * ledger, and the last good server state is kept in the data folder so a
 * restart offline still has it.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, type ErrorName } from '../errors.js';
import type { Ledger } from '../ledger/Ledger.js';
import { createSyncClient, type SyncClient, type SyncPolicy } from '../sync/SyncClient.js';
import { loadSyncState, saveSyncState } from '../sync/syncStateFile.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';

export interface SyncSettings {
  readonly brokerUrl: string;
  readonly protocolVersion: 4 | 5;
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly password?: string;
  readonly maxEntriesPerSecond: number;
  readonly policy?: Partial<SyncPolicy>;
  readonly pollMs?: number;
}

export interface TerminalSync {
  readonly client: SyncClient;
  /** The online batch claim for Terminal's claimBatch: no wait at all when the link is down */
  claimBatch(claim: { batchId: Uint8Array; batchNo: number; clinicCode: string }): Promise<{ granted: boolean; holder?: string } | undefined>;
  /** The online voucher write-off claim for Terminal's claimVoucher: no wait at all when the link is down */
  claimVoucher(claim: { serial: number; keyId: number; clinicCode: string; examType: string }): Promise<{ granted: boolean; code?: ErrorName; detail?: string } | undefined>;
  /** Time of the last server acknowledgement (ms), if any since start */
  lastAckAt(): number | undefined;
  stop(): Promise<void>;
}

const STATE_FILE = 'sync-state.json';

export function startTerminalSync(options: {
  readonly ledger: Ledger;
  readonly dataDir: string;
  readonly settings: SyncSettings;
  readonly clock?: Clock;
  readonly log: Logger;
  readonly readerState?: () => string;
  readonly software?: string;
  /** The server's time arrived (the terminal's clock follows it); throwing refuses it */
  readonly onServerTime?: (serverTime: number) => void;
  /** An ack carried the server's signed checkpoint (the terminal checks and keeps it) */
  readonly onCheckpoint?: (checkpoint: unknown) => void;
  /** The server's voucher trust list (the terminal verifies and keeps it) */
  readonly onTrustList?: (raw: Uint8Array) => void;
}): TerminalSync {
  const { ledger, settings, log } = options;
  const tls = settings.tls;
  const statePath = join(options.dataDir, STATE_FILE);
  const loaded = loadSyncState(statePath);
  if (loaded.problem) log.warn({ problem: loaded.problem }, 'saved sync state unreadable; starting without it');
  const initialState = loaded.state;
  let lastAckAt: number | undefined;
  const reportBatchSize = settings.policy?.reportBatchSize ?? 100;
  const client = createSyncClient({
    outbox: {
      get terminalId() {
        return ledger.terminalId;
      },
      terminalCertificate: () => ledger.terminalCertificate(),
      pending: (limit, afterSeq) => ledger.pending(limit, afterSeq),
      acknowledge: (seqs) => {
        ledger.acknowledge(seqs);
        lastAckAt = Date.now();
      },
      entriesFrom: (seq, limit) => ledger.entriesFrom(seq, limit),
      pendingCount: () => ledger.pendingCount(),
    },
    brokerUrl: settings.brokerUrl,
    protocolVersion: settings.protocolVersion,
    ...(tls ? { tlsFiles: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } } : {}),
    mqttOptions: {
      ...(settings.password ? { username: ledger.terminalId, password: settings.password } : {}),
    },
    policy: { maxReportsPerSecond: Math.max(1, Math.floor(settings.maxEntriesPerSecond / reportBatchSize)), ...(settings.policy ?? {}) },
    ...(settings.pollMs !== undefined ? { pollMs: settings.pollMs } : {}),
    initialState,
    saveState: (state) => saveSyncState(statePath, state),
    onDenylist: (update) =>
      ledger.applyDenyList({
        full: update.full,
        version: update.version,
        add: update.add.map((hex) => ({ cardId: new Uint8Array(Buffer.from(hex, 'hex')), reason: `deny list v${update.version}` })),
        remove: update.remove.map((hex) => new Uint8Array(Buffer.from(hex, 'hex'))),
      }),
    heartbeatExtras: () => {
      const batch = ledger.batches().find((b) => b.used < b.count);
      const certExpiresAt = certificateExpiry(tls?.cert);
      return {
        lastSeq: ledger.lastSeq(),
        clockTrusted: ledger.clockTrusted(),
        ...(certExpiresAt !== undefined ? { certExpiresAt } : {}),
        ...(batch ? { batch: { batchNo: batch.batchNo, remaining: batch.count - batch.used } } : {}),
        ...(options.readerState ? { reader: options.readerState() } : {}),
      };
    },
    ...(options.software ? { software: options.software } : {}),
    ...(options.onServerTime ? { onServerTime: (serverTime: number) => options.onServerTime!(serverTime) } : {}),
    ...(options.onCheckpoint ? { onCheckpoint: (checkpoint: unknown) => options.onCheckpoint!(checkpoint) } : {}),
    ...(options.onTrustList ? { onTrustList: (raw: Uint8Array) => options.onTrustList!(raw) } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    logger: log,
  });
  return {
    client,
    claimBatch: async (claim) => (client.connected() ? client.claimBatch(Buffer.from(claim.batchId).toString('hex'), claim.batchNo, claim.clinicCode) : undefined),
    claimVoucher: async (claim) => {
      if (!client.connected()) return undefined;
      const answer = await client.claimVoucher(claim);
      if (!answer) return undefined;
      const code = answer.code && answer.code in ErrorCodes ? (answer.code as ErrorName) : undefined;
      return { granted: answer.granted, ...(code ? { code } : answer.granted ? {} : { code: 'VOUCHER_WRITTEN_OFF' as const }), ...(answer.detail ? { detail: answer.detail } : {}) };
    },
    lastAckAt: () => lastAckAt,
    stop: () => client.stop(),
  };
}

/** When the TLS client certificate at path expires (read at each heartbeat: a renewal shows at once); undefined without one */
function certificateExpiry(path: string | undefined): number | undefined {
  if (!path) return undefined;
  try {
    const at = Date.parse(new X509Certificate(readFileSync(path)).validTo);
    return Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}
