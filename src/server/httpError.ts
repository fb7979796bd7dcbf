/** A refusal the HTTP API answers as {status: 'error', error: {code, message, field?, number?, zh?}} with its status. */
import { ErrorCodes, type ErrorName } from '../errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** The project's error (src/errors.ts): its number and Chinese message ride along in the answer */
    readonly tally?: ErrorName,
  ) {
    super(message);
  }

  /** The project code's number and operator messages, for the answer */
  get operator(): { number: number; en: string; zh: string } | undefined {
    if (!this.tally) return undefined;
    const info = ErrorCodes[this.tally];
    return { number: info.code, en: info.en, zh: info.zh };
  }
}
