/**
 * The gateway's database from the event loop's side: a store thread
 * (storeWorker.ts) owns the write connection and runs the group commits;
 * this side keeps a read connection for lookups (passed keys, pending
 * crossings, stored MQTT packets, queries), which in WAL mode sees every
 * COMMIT the thread has answered for.
 *
 * The group commit: writers join the next commit (commitSoon); at most one
 * commit is in flight, and whatever joins while it is gathers for the next
 * one, so under load a commit takes more per fsync instead of queueing
 * fsyncs. Each writer learns its outcome in after(), once the COMMIT has
 * returned in the store thread: nothing is acknowledged or sent before.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TallyError, type ErrorName } from '../errors.js';
import { GatewayStore } from './GatewayStore.js';
import type { ArchiveItemWire, CommitReply, CommitRequest, DeliveryRun, PacketOp } from './storeCommit.js';

/** What a writer adds to the next commit */
export interface CommitParts {
  archive?: ArchiveItemWire[];
  packets?: PacketOp[];
  deliveries?: DeliveryRun;
  handedCrossings?: number[];
}

export interface CommitParticipant {
  /** Adds its writes to the request (must not throw) */
  write(parts: CommitParts): void;
  /** After the COMMIT, with the store thread's reply; failure set when it did not commit */
  after(reply: CommitReply | undefined, failure?: TallyError): void;
}

/** storeWorker.js next to this file when it runs compiled; under dist/ when tests run the sources */
export function storeWorkerEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, 'storeWorker.js'), resolve(here, '../../dist/src/gateway/storeWorker.js')]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new TallyError('CONFIG', 'dist/src/gateway/storeWorker.js not found: run npm run build first');
}

export class StoreThread {
  private worker!: Worker;
  /** The read connection (lookups, queries); every write goes through commitSoon */
  reader!: GatewayStore;
  private readonly participants = new Set<CommitParticipant>();
  private scheduled = false;
  private inFlight?: { id: number; participants: CommitParticipant[] };
  private nextId = 1;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  /** Commits answered, and the time the store thread spent in them */
  readonly figures = { commits: 0, commitMs: 0, faults: 0 };

  private constructor(private readonly dbPath: string) {}

  static async open(dbPath: string): Promise<StoreThread> {
    const t = new StoreThread(dbPath);
    await t.start();
    // the store thread made (and migrated) the database; the read connection comes second
    t.reader = new GatewayStore(dbPath);
    return t;
  }

  private start(): Promise<void> {
    const worker = new Worker(storeWorkerEntry(), { workerData: { dbPath: this.dbPath } });
    this.worker = worker;
    return new Promise((resolveStart, rejectStart) => {
      let started = false;
      worker.on('message', (m: CommitReply | { ready: boolean; message?: string; code?: string }) => {
        if ('ready' in m) {
          started = true;
          if (m.ready) resolveStart();
          else rejectStart(new TallyError((m.code as ErrorName | undefined) ?? 'GW_ARCHIVE_FAULT', m.message ?? 'store thread did not start'));
          return;
        }
        this.answered(m);
      });
      const stopped = (why: string): void => {
        if (this.worker !== worker) return;
        if (!started) return rejectStart(new TallyError('GW_ARCHIVE_FAULT', `store thread: ${why}`));
        // the thread's connection is gone with it, and with it any transaction not committed: fail what was in flight, start another
        const flight = this.inFlight;
        this.inFlight = undefined;
        if (flight) this.fail(flight.participants, new TallyError('GW_ARCHIVE_FAULT', `store thread stopped: ${why}`));
        if (this.closing) return this.wakeIdle();
        void this.start().then(
          () => this.schedule(),
          () => undefined,
        );
      };
      worker.on('error', (err) => stopped(err.message));
      worker.on('exit', (code) => stopped(`exit code ${code}`));
    });
  }

  /** Joins the next group commit */
  commitSoon(participant: CommitParticipant): void {
    this.participants.add(participant);
    this.schedule();
  }

  /** True while a commit is in flight or writers wait for the next */
  get busy(): boolean {
    return this.inFlight !== undefined || this.participants.size > 0;
  }

  /** Resolves once every writer that joined so far has had its after() */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private wakeIdle(): void {
    if (this.busy && !this.closing) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    if (this.inFlight || this.participants.size === 0) return;
    const participants = [...this.participants];
    this.participants.clear();
    const parts: CommitParts = {};
    for (const p of participants) p.write(parts);
    const id = this.nextId++;
    this.inFlight = { id, participants };
    this.worker.postMessage({ id, ...parts } satisfies CommitRequest);
  }

  private answered(reply: CommitReply): void {
    const flight = this.inFlight;
    if (!flight || flight.id !== reply.id) return;
    this.inFlight = undefined;
    this.figures.commits += 1;
    this.figures.commitMs += reply.commitMs;
    if (reply.fault) {
      this.fail(flight.participants, new TallyError(reply.fault.code as ErrorName, reply.fault.message));
    } else {
      for (const p of flight.participants) p.after(reply);
    }
    if (this.participants.size > 0) this.schedule();
    else this.wakeIdle();
  }

  private fail(participants: CommitParticipant[], failure: TallyError): void {
    this.figures.faults += 1;
    for (const p of participants) p.after(undefined, failure);
  }

  /** Commits what has joined, then stops the store thread and closes the read connection */
  async close(): Promise<void> {
    if (this.closing) return;
    await this.idle();
    this.closing = true;
    await new Promise<void>((r) => {
      this.worker.once('exit', () => r());
      this.worker.postMessage('close');
    });
    this.reader?.close();
  }
}
