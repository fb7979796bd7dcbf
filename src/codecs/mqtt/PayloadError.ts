/**
 * Why an MQTT payload was refused. `reason` is stable (tests and the server's
 * rejection log assert on it); the message says where and `path` names the
 * bad field. A CodecError with the code BAD_MESSAGE.
 */
import { CodecError } from '../../errors.js';

export type PayloadRejection =
  | 'oversized'
  | 'malformed'
  | 'unsupported-version'
  | 'schema'
  | 'unknown-topic';

/** An MQTT payload or topic we refuse: `reason` is what the server records, `path` the bad field ('' for all of it) */
export class PayloadError extends CodecError {
  override readonly name: string = 'PayloadError';
  constructor(
    readonly reason: PayloadRejection,
    override readonly detail: string,
    path = '',
  ) {
    super('BAD_MESSAGE', `${reason}: ${detail}`, path);
  }
}
