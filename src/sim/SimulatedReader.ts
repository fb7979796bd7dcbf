/**
 * An in-process reader with one slot: insert and remove SmartCards at will.
 * It implements the same CardReader contract as the PC/SC and serial
 * backends, with fault switches for tests: pull the card before or after the
 * card executes a given APDU (a torn transaction).
 */
import type { SmartCard } from '../card/ApduChannel.js';
import { TallyError } from '../errors.js';
import type { CardReader, CardSession, ReaderEvent, ReaderState } from '../readers/CardReader.js';
import { systemClock, type Clock } from '../util/clock.js';

export interface PullPlan {
  /** Pull the card at this APDU of the session (1-based) */
  readonly atApdu: number;
  /** before: the card never sees the command; after: the card executes it and the answer is lost */
  readonly when: 'before' | 'after';
}

export class SimulatedReader implements CardReader {
  readonly name: string;
  state: ReaderState = 'stopped';
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private session: (CardSession & { card: SmartCard }) | undefined;
  private nextId = 1;
  private pullPlan: PullPlan | undefined;
  apduCount = 0;

  constructor(options: { name?: string; clock?: Clock } = {}) {
    this.name = options.name ?? 'Simulated reader';
    this.clock = options.clock ?? systemClock;
  }

  private readonly clock: Clock;

  async start(): Promise<void> {
    this.setState('ready');
  }

  async stop(): Promise<void> {
    this.remove();
    this.setState('stopped');
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  currentSession(): CardSession | undefined {
    return this.session;
  }

  private emit(event: ReaderEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private setState(state: ReaderState): void {
    this.state = state;
    this.emit({ type: 'reader-state', state });
  }

  /** Arms a pull for the next inserted card */
  pullDuringNextSession(plan: PullPlan | undefined): void {
    this.pullPlan = plan;
  }

  insert(card: SmartCard): CardSession {
    this.remove();
    const atr = card.powerOn();
    const id = this.nextId++;
    const plan = this.pullPlan;
    this.pullPlan = undefined;
    let apdus = 0;
    let present = true;
    const session = {
      id,
      atr,
      presentAt: this.clock.now(),
      card,
      transmit: async (apdu: Uint8Array): Promise<Uint8Array> => {
        if (!present || this.session?.id !== id) throw new TallyError('CARD_REMOVED');
        apdus++;
        this.apduCount++;
        if (plan && plan.atApdu === apdus && plan.when === 'before') {
          present = false;
          this.remove();
          throw new TallyError('CARD_REMOVED', `pulled before APDU ${apdus}`);
        }
        const response = card.transmit(apdu);
        if (plan && plan.atApdu === apdus && plan.when === 'after') {
          present = false;
          this.remove();
          throw new TallyError('CARD_REMOVED', `pulled after APDU ${apdus}`);
        }
        return response;
      },
    };
    this.session = session;
    this.emit({ type: 'card-inserted', session });
    return session;
  }

  remove(): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    session.card.powerOff();
    this.emit({ type: 'card-removed', sessionId: session.id });
  }
}
