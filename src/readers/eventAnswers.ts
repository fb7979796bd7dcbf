/**
 * Listeners that answer whether they took an event (a device session event:
 * recorded in the ledger): true or nothing yes; false, a throw or a rejection
 * no; or a promise of either. The serial link ACKs a relay board's event only
 * on yes (serial-protocol.md §5).
 */
export type EventAnswer = boolean | void | Promise<boolean | void>;

/** Calls every listener; true when all took the event, false when one did not; a promise when any answered with one */
export function askListeners<E>(listeners: Iterable<(event: E) => EventAnswer>, event: E, onError: (err: unknown) => void = () => undefined): boolean | Promise<boolean> {
  const answers: EventAnswer[] = [];
  for (const listener of [...listeners]) {
    try {
      answers.push(listener(event));
    } catch (err) {
      onError(err);
      answers.push(false);
    }
  }
  const taken = (answer: boolean | void): boolean => answer !== false;
  if (!answers.some(isPromise)) return answers.every((a) => taken(a as boolean | void));
  return Promise.all(
    answers.map((a) =>
      Promise.resolve(a).catch((err: unknown) => {
        onError(err);
        return false;
      }),
    ),
  ).then((results) => results.every(taken));
}

function isPromise(value: EventAnswer): value is Promise<boolean | void> {
  return typeof (value as Promise<unknown> | undefined)?.then === 'function';
}
