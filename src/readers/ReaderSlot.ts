/**
 * What every CardReader keeps the same way, whatever its backend: its state,
 * the card present in its one slot, the session ids and the listeners of its
 * events. The backends (PC/SC, serial board, simulated) own one each.
 */
import type { CardSession, ReaderEvent, ReaderState } from './CardReader.js';

export class ReaderSlot<S extends CardSession> {
  private currentState: ReaderState = 'stopped';
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private present: S | undefined;
  private lastSessionId = 0;

  /** onListenerError: a listener that throws is reported there and the others still hear the event; without it the throw goes to the emitter */
  constructor(private readonly onListenerError?: (err: unknown, event: ReaderEvent) => void) {}

  get state(): ReaderState {
    return this.currentState;
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The card present now, if any */
  session(): S | undefined {
    return this.present;
  }

  /** The id of the next insertion: it increases with every one */
  nextSessionId(): number {
    return ++this.lastSessionId;
  }

  setState(state: ReaderState, detail?: string): void {
    this.currentState = state;
    this.emit(detail === undefined ? { type: 'reader-state', state } : { type: 'reader-state', state, detail });
  }

  /** A card came: it is the present one, and the listeners hear of it */
  begin(session: S): void {
    this.present = session;
    this.emit({ type: 'card-inserted', session });
  }

  /**
   * The present card is gone: `beforeTelling` runs with it once it is no longer
   * the present one and before the listeners hear of it. Returns it, or undefined when none was present.
   */
  end(beforeTelling?: (session: S) => void): S | undefined {
    const session = this.present;
    if (!session) return undefined;
    this.present = undefined;
    beforeTelling?.(session);
    this.emit({ type: 'card-removed', sessionId: session.id });
    return session;
  }

  private emit(event: ReaderEvent): void {
    for (const listener of [...this.listeners]) {
      if (!this.onListenerError) {
        listener(event);
        continue;
      }
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }
}
