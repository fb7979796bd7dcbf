/**
 * The virtual card (VirtualCard answering with a SimulatedCard) in a process
 * of its own, as a real card is a device of its own: the process that talks
 * to pcscd (the daemon, a benchmark) then does none of the card's work per
 * APDU. The card's EEPROM travels to the child on insert and comes back on
 * remove, so the caller's SimulatedCard ends up as the card left the reader.
 * The child is VirtualCardChild.js, compiled (npm run build).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { CardTimingModel } from './cardTiming.js';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, TallyError, type ErrorName } from '../errors.js';
import type { SimulatedCard, SimulatedCardState } from './SimulatedCard.js';
import type { VirtualCardStats, VpcdEndpoint } from './VirtualCard.js';

export type VirtualCardRequest =
  | { readonly id: number; readonly op: 'insert'; readonly state: SimulatedCardState; readonly timeoutMs: number; readonly pullAtFirstApdu: boolean }
  | { readonly id: number; readonly op: 'remove' }
  | { readonly id: number; readonly op: 'close' };

export type VirtualCardReply =
  | { readonly id: number; readonly ok: true; readonly stats: VirtualCardStats; readonly state?: SimulatedCardState }
  | { readonly id: number; readonly ok: false; readonly code: string; /** the detail, without the code's own words */ readonly message: string };

/** Sent once by the child when its slot is set up */
export const CHILD_READY = 'virtual-card-ready';

export interface VirtualCardProcessOptions {
  readonly endpoint: VpcdEndpoint;
  readonly answerDelayMs?: number;
  readonly cardTiming?: CardTimingModel;
}

/** dist/src/sim/VirtualCardChild.js: next to this file when it runs compiled, under dist/ when tests run the sources */
function childEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, 'VirtualCardChild.js'), resolve(here, '../../dist/src/sim/VirtualCardChild.js')]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new TallyError('CONFIG', 'dist/src/sim/VirtualCardChild.js not found: run npm run build first');
}

export class VirtualCardProcess {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (reply: VirtualCardReply) => void; reject: (err: Error) => void }>();
  private inserted: SimulatedCard | undefined;
  private exited = false;
  /** The child's counters as of its last answer (insert or remove) */
  stats: VirtualCardStats = { connections: 0, apdus: 0, powerOns: 0, powerOffs: 0, resets: 0, atrRequests: 0 };

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: VirtualCardReply) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      waiter.resolve(message);
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const waiter of this.pending.values()) waiter.reject(new TallyError('INTERNAL', `virtual card process exited (${signal ?? code})`));
      this.pending.clear();
    });
  }

  static async start(options: VirtualCardProcessOptions): Promise<VirtualCardProcess> {
    // no inherited flags: under vitest they name loaders the child has no use for
    const child = fork(childEntry(), [JSON.stringify(options)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolveReady, reject) => {
      const onExit = (code: number | null): void => reject(new TallyError('INTERNAL', `virtual card process exited at start (${code})`));
      child.once('exit', onExit);
      child.once('message', (message) => {
        child.off('exit', onExit);
        if (message === CHILD_READY) resolveReady();
        else reject(new TallyError('INTERNAL', `virtual card process said ${JSON.stringify(message)} at start`));
      });
    });
    return new VirtualCardProcess(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** As VirtualCard.insert; pullAtFirstApdu arms the pull once vpcd has polled the card */
  async insert(card: SimulatedCard, options: { timeoutMs?: number; pullAtFirstApdu?: boolean } = {}): Promise<void> {
    if (this.inserted) throw new TallyError('USAGE', 'a card is already inserted; remove it first');
    this.inserted = card;
    await this.request({ op: 'insert', state: card.snapshot(), timeoutMs: options.timeoutMs ?? 5000, pullAtFirstApdu: options.pullAtFirstApdu === true });
  }

  /** Pulls the card out and gives the caller's card object the state the card was left in */
  async remove(): Promise<void> {
    const card = this.inserted;
    this.inserted = undefined;
    const reply = await this.request({ op: 'remove' });
    if (card && reply.state) card.restore(reply.state);
  }

  async close(): Promise<void> {
    if (this.exited) return;
    await this.remove();
    const exited = new Promise<void>((resolveExit) => this.child.once('exit', () => resolveExit()));
    await this.request({ op: 'close' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }

  private async request(body: { op: VirtualCardRequest['op'] } & Record<string, unknown>): Promise<VirtualCardReply & { ok: true }> {
    if (this.exited) throw new TallyError('INTERNAL', 'virtual card process has exited');
    const id = this.nextId++;
    const reply = await new Promise<VirtualCardReply>((resolveReply, reject) => {
      this.pending.set(id, { resolve: resolveReply, reject });
      this.child.send({ ...body, id });
    });
    if (!reply.ok) throw new TallyError(reply.code in ErrorCodes ? (reply.code as ErrorName) : 'INTERNAL', reply.message);
    this.stats = reply.stats;
    return reply;
  }
}
