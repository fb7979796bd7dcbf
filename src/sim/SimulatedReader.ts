/**
 * An in-process reader with one slot: insert and remove SmartCards at will.
 * It implements the same CardReader contract as the PC/SC and serial
 * backends, with fault switches for tests: pull the card before or after the
 * card executes a given APDU (a torn transaction).
 */
import type { SmartCard } from '../card/ApduChannel.js';
import { TallyError } from '../errors.js';
import type { CardReader, CardSession, ReaderEvent, ReaderState } from '../readers/CardReader.js';
import { ReaderSlot } from '../readers/ReaderSlot.js';
import { systemClock, type Clock } from '../util/clock.js';

export interface PullPlan {
  /** Pull the card at this APDU of the session (1-based) */
  readonly atApdu: number;
  /** before: the card never sees the command; after: the card executes it and the answer is lost */
  readonly when: 'before' | 'after';
}

export class SimulatedReader implements CardReader {
  readonly name: string;
  private readonly slot = new ReaderSlot<CardSession & { card: SmartCard }>();
  private pullPlan: PullPlan | undefined;
  apduCount = 0;

  constructor(options: { name?: string; clock?: Clock } = {}) {
    this.name = options.name ?? 'Simulated reader';
    this.clock = options.clock ?? systemClock;
  }

  private readonly clock: Clock;

  get state(): ReaderState {
    return this.slot.state;
  }

  async start(): Promise<void> {
    this.slot.setState('ready');
  }

  async stop(): Promise<void> {
    this.remove();
    this.slot.setState('stopped');
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    return this.slot.onEvent(listener);
  }

  currentSession(): CardSession | undefined {
    return this.slot.session();
  }

  /** Arms a pull for the next inserted card */
  pullDuringNextSession(plan: PullPlan | undefined): void {
    this.pullPlan = plan;
  }

  insert(card: SmartCard): CardSession {
    this.remove();
    const atr = card.powerOn();
    const id = this.slot.nextSessionId();
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
        if (!present || this.slot.session()?.id !== id) throw new TallyError('CARD_REMOVED');
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
    this.slot.begin(session);
    return session;
  }

  remove(): void {
    this.slot.end((session) => session.card.powerOff());
  }
}
