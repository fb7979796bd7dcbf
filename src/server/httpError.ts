/**
 * A refusal the HTTP API answers as {status: 'error', error: {code, message, field?, number?, zh?}} with its status:
 * a TallyError (its code the project's error given, else the status's: BAD_INPUT, UNAUTHENTICATED, FORBIDDEN,
 * HTTP_NOT_FOUND, HTTP_UNAVAILABLE) whose message is the answer's message and whose `answerCode` is the answer's code.
 */
import { ErrorCodes, TallyError, type ErrorName } from '../errors.js';

function codeForStatus(status: number): ErrorName {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'HTTP_NOT_FOUND';
  if (status >= 500) return 'HTTP_UNAVAILABLE';
  return 'BAD_INPUT';
}

export class HttpError extends TallyError {
  override readonly name: string = 'HttpError';
  constructor(
    readonly status: number,
    /** The answer's code ('invalid', 'forbidden', a project code ...) */
    readonly answerCode: string,
    message: string,
    readonly field?: string,
    /** The project's error (src/errors.ts): its number and Chinese message ride along in the answer */
    readonly tally?: ErrorName,
  ) {
    super(tally ?? codeForStatus(status), message, { status, answerCode, ...(field !== undefined ? { field } : {}) });
    this.message = message;
  }

  /** The project code's number and operator messages, for the answer (only when the refusal named one) */
  get operator(): { number: number; en: string; zh: string } | undefined {
    if (!this.tally) return undefined;
    const info = ErrorCodes[this.tally];
    return { number: info.code, en: info.en, zh: info.zh };
  }
}
