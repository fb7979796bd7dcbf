/**
 * The proof a `clock.reset` ledger entry carries in its card field
 * (ledger-format.md, "Clock resets"): why the terminal's high-water mark may
 * go back to the entry's time. UTF-8 JSON, one of:
 *
 *   {"by":"server","checkpoint":CHECKPOINT}
 *       the server's signed checkpoint (codecs/checkpoint.ts) of a ledger
 *       holding this terminal's last clock.refused entry: it was signed after
 *       the terminal found its mark ahead of the server, so it cannot be replayed
 *       from before; its time is the reset entry's time.
 *   {"by":"mother-card","body":BODY,"signature":HEX}
 *       BODY a JSON string {format, terminalId, headSeq, headHash, time, motherCardId},
 *       signed by the mother card (the investor root) over SHA-256(utf8(BODY)).
 *       headSeq/headHash name the entry before the reset, so it is good once.
 *
 * Strict parsing; pure (the signatures are checked in crypto/clockReset.ts).
 */
import { CodecError } from '../errors.js';
import { jsonFields } from './jsonFields.js';
import { fromUtf8, utf8 } from './bytes.js';
import { parseCheckpoint, type Checkpoint, type SignedJson } from './checkpoint.js';

export const CLOCK_RESET_FORMAT = 'tallystick-clock-reset/1';
/** Largest proof accepted (a server proof is about 800 bytes) */
export const MAX_CLOCK_RESET_PROOF_BYTES = 4096;

export interface MotherClockResetFields {
  readonly terminalId: string;
  /** The seq of the entry the reset follows */
  readonly headSeq: number;
  /** Hex entry hash of that entry */
  readonly headHash: string;
  /** The time the mark goes to, ms since the epoch */
  readonly time: number;
  /** Hex card id of the mother card that signed */
  readonly motherCardId: string;
}

export type ClockResetProof = { readonly by: 'server'; readonly checkpoint: Checkpoint } | ({ readonly by: 'mother-card' } & SignedJson);

export class ClockResetError extends CodecError {
  override readonly name: string = 'ClockResetError';
  constructor(detail: string, path = '') {
    super('CLOCK_RESET_REFUSED', detail, path);
  }
}

const TERMINAL_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function encodeMotherClockResetBody(fields: MotherClockResetFields): string {
  return JSON.stringify({
    format: CLOCK_RESET_FORMAT,
    terminalId: fields.terminalId,
    headSeq: fields.headSeq,
    headHash: fields.headHash,
    time: fields.time,
    motherCardId: fields.motherCardId,
  });
}

export function parseMotherClockResetBody(body: string): MotherClockResetFields {
  const o = object(json(body, 'body'), 'body');
  if (o.format !== CLOCK_RESET_FORMAT) throw new ClockResetError(`body format ${String(o.format)}, expected ${CLOCK_RESET_FORMAT}`, 'body.format');
  return {
    terminalId: text(o, 'terminalId', 'body', TERMINAL_ID),
    headSeq: whole(o, 'headSeq', 'body', 1),
    headHash: hex(o, 'headHash', 'body', 32),
    time: whole(o, 'time', 'body', 0),
    motherCardId: hex(o, 'motherCardId', 'body', 8),
  };
}

export function encodeClockResetProof(proof: ClockResetProof): Uint8Array {
  const value =
    proof.by === 'server'
      ? { by: 'server', checkpoint: { format: proof.checkpoint.format, body: proof.checkpoint.body, signature: proof.checkpoint.signature, serverCertificate: proof.checkpoint.serverCertificate } }
      : { by: 'mother-card', body: proof.body, signature: proof.signature };
  return utf8(JSON.stringify(value));
}

export function parseClockResetProof(bytes: Uint8Array): ClockResetProof {
  if (bytes.length > MAX_CLOCK_RESET_PROOF_BYTES) throw new ClockResetError(`${bytes.length} bytes, at most ${MAX_CLOCK_RESET_PROOF_BYTES}`);
  let textValue: string;
  try {
    textValue = fromUtf8(bytes);
  } catch {
    throw new ClockResetError('proof is not UTF-8');
  }
  const o = object(json(textValue, 'proof'), 'proof');
  if (o.by === 'server') {
    try {
      return { by: 'server', checkpoint: parseCheckpoint(o.checkpoint) };
    } catch (err) {
      throw new ClockResetError(`checkpoint: ${(err as Error).message}`, 'checkpoint');
    }
  }
  if (o.by === 'mother-card') return { by: 'mother-card', body: text(o, 'body', 'proof'), signature: hex(o, 'signature', 'proof', 64) };
  throw new ClockResetError(`proof by ${String(o.by)}: expected server or mother-card`, 'by');
}

const { json, object, text, whole, hex } = jsonFields((detail, path) => new ClockResetError(detail, path));
