/**
 * The fleet simulator: many real terminals (each its own SQLite ledger, device
 * key and simulated reader) swiping real one-time cards, each reporting to the
 * server over MQTT, dropping offline and coming back. At the end it checks the
 * server against every terminal's ledger, entry for entry.
 */
import { TallyError } from '../errors.js';
import { join } from 'node:path';
import { bytesEqual } from '../codecs/bytes.js';
import { sha256 } from '../crypto/ed25519.js';
import { startTerminalSync, type TerminalSync } from '../daemon/startSync.js';
import type { ServerStore } from '../server/ServerStore.js';
import { silentLogger } from '../util/logger.js';
import { Issuer, provisionTerminal, type IssuedBatch, type TerminalRig } from './CardWorld.js';

export interface FleetOptions {
  readonly dir: string;
  readonly brokerUrl: string;
  readonly protocolVersion?: 4 | 5;
  readonly terminals: number;
  readonly usesPerTerminal: number;
  /** Swipe rounds; between rounds terminals may drop offline or come back */
  readonly rounds?: number;
  /** Chance a terminal is offline in a round */
  readonly offlineChance?: number;
  /** Between rounds, a chance a terminal restarts (its ledger closed and reopened) */
  readonly restartChance?: number;
  readonly onProgress?: (line: string) => void;
  /** Called between rounds, e.g. to restart the broker or the server */
  readonly betweenRounds?: (round: number) => Promise<void>;
}

interface FleetTerminal {
  readonly id: string;
  readonly dataDir: string;
  rig: TerminalRig;
  readonly batch: IssuedBatch;
  sync: TerminalSync | undefined;
  next: number;
}

export interface FleetResult {
  readonly terminals: number;
  readonly usesGranted: number;
  readonly entries: number;
  readonly offlinePeriods: number;
  readonly restarts: number;
  readonly serverEntries: number;
  readonly lost: number;
  readonly doubled: number;
  readonly mismatched: number;
  readonly drainSeconds: number;
}

export class FleetSimulator {
  private readonly issuer: Issuer;
  private readonly fleet: FleetTerminal[] = [];

  private constructor(private readonly options: FleetOptions) {
    this.issuer = new Issuer(options.dir);
  }

  get rootPublicKey(): Uint8Array {
    return this.issuer.motherInfo.rootPublicKey;
  }

  static async create(options: FleetOptions): Promise<FleetSimulator> {
    const sim = new FleetSimulator(options);
    await sim.issuer.init({ whiteQuota: options.terminals + 10 });
    return sim;
  }

  private connect(t: FleetTerminal): TerminalSync {
    return startTerminalSync({
      ledger: t.rig.terminal.ledger,
      dataDir: t.dataDir,
      settings: { brokerUrl: this.options.brokerUrl, protocolVersion: this.options.protocolVersion ?? 5, maxEntriesPerSecond: 1_000_000, pollMs: 100, policy: { reportBatchSize: 100, ackTimeoutMs: 3000 } },
      log: silentLogger,
    });
  }

  /** Provisions every terminal and loads its batch */
  async provision(): Promise<void> {
    const say = this.options.onProgress ?? (() => undefined);
    for (let i = 0; i < this.options.terminals; i++) {
      const id = `T-FLEET-${String(i + 1).padStart(3, '0')}`;
      const clinic = `CL-${String((i % 7) + 1).padStart(2, '0')}`;
      const dataDir = join(this.options.dir, id);
      const batch = await this.issuer.makeBatch(clinic, this.options.usesPerTerminal, 3650);
      const rig = await provisionTerminal(this.issuer, { dataDir, terminalId: id, clinicCode: clinic });
      const loaded = await rig.swipe(batch.batchCard);
      if (!loaded.ok) throw new TallyError('INTERNAL', `${id}: batch load refused: ${loaded.code}`);
      const t: FleetTerminal = { id, dataDir, rig, batch, sync: undefined, next: 0 };
      t.sync = this.connect(t);
      this.fleet.push(t);
    }
    say(`${this.fleet.length} terminals provisioned, each with a batch of ${this.options.usesPerTerminal}`);
  }

  async run(store: ServerStore): Promise<FleetResult> {
    const say = this.options.onProgress ?? (() => undefined);
    const rounds = this.options.rounds ?? 8;
    const perRound = Math.ceil(this.options.usesPerTerminal / rounds);
    let usesGranted = 0;
    let offlinePeriods = 0;
    let restarts = 0;
    for (let round = 0; round < rounds; round++) {
      for (const t of this.fleet) {
        const offline = Math.random() < (this.options.offlineChance ?? 0.2);
        if (offline && t.sync) {
          await t.sync.stop();
          t.sync = undefined;
          offlinePeriods++;
        } else if (!offline && !t.sync) {
          t.sync = this.connect(t);
        }
        for (let k = 0; k < perRound && t.next < t.batch.oneTimeCards.length; k++) {
          const outcome = await t.rig.swipe(t.batch.oneTimeCards[t.next++]!);
          if (!outcome.ok) throw new TallyError('INTERNAL', `${t.id}: swipe refused: ${outcome.code}`);
          usesGranted++;
        }
        t.sync?.client.notify();
        if (Math.random() < (this.options.restartChance ?? 0.05)) {
          await t.sync?.stop();
          t.rig.terminal.close();
          t.rig = await provisionTerminal(this.issuer, { dataDir: t.dataDir, terminalId: t.id, clinicCode: t.batch.result.clinicCode });
          t.sync = this.connect(t);
          restarts++;
        }
      }
      await this.options.betweenRounds?.(round);
      say(`round ${round + 1}/${rounds}: ${usesGranted} uses granted, ${this.fleet.filter((t) => !t.sync).length} terminals offline`);
    }
    const drainStart = Date.now();
    for (const t of this.fleet) t.sync ??= this.connect(t);
    await Promise.all(this.fleet.map((t) => t.sync!.client.drained(120_000)));
    const drainSeconds = (Date.now() - drainStart) / 1000;
    say(`all terminals online; outboxes drained in ${drainSeconds.toFixed(1)} s`);
    return { ...(await this.compare(store)), usesGranted, offlinePeriods, restarts, drainSeconds, terminals: this.fleet.length };
  }

  /** Every terminal's ledger against the server's copy, entry for entry */
  async compare(store: ServerStore): Promise<{ entries: number; serverEntries: number; lost: number; doubled: number; mismatched: number }> {
    let entries = 0;
    let serverEntries = 0;
    let lost = 0;
    let doubled = 0;
    let mismatched = 0;
    for (const t of this.fleet) {
      const local = [...t.rig.terminal.ledger.entries()];
      const stored = await store.entries(t.id, 1, local.length + 1000);
      entries += local.length;
      serverEntries += stored.length;
      const seen = new Set<number>();
      for (const row of stored) {
        if (seen.has(row.seq)) doubled++;
        seen.add(row.seq);
        const mine = local[row.seq - 1];
        if (!mine || !bytesEqual(mine, row.raw) || !bytesEqual(sha256(mine), row.hash)) mismatched++;
      }
      for (let seq = 1; seq <= local.length; seq++) if (!seen.has(seq)) lost++;
    }
    return { entries, serverEntries, lost, doubled, mismatched };
  }

  async close(): Promise<void> {
    for (const t of this.fleet) {
      await t.sync?.stop();
      t.rig.terminal.close();
    }
    this.issuer.close();
  }
}
