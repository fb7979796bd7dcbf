/**
 * Why an MQTT payload was refused. `reason` is stable (tests and the server's
 * rejection log assert on it); the message says where. The MQTT codecs are a
 * leaf: the layer rules keep src/codecs/mqtt from importing outside itself, so
 * callers map this to TallyError at their edge.
 */
export type PayloadRejection =
  | 'oversized'
  | 'malformed'
  | 'unsupported-version'
  | 'schema'
  | 'unknown-topic';

export class PayloadError extends Error {
  override readonly name = 'PayloadError';
  constructor(
    readonly reason: PayloadRejection,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}
