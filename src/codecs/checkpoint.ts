/**
 * The server's signed checkpoint (ledger-format.md, "Server checkpoints"): the
 * server states that it holds a terminal's ledger up to seq with that entry's
 * hash, at a time, signed by a server key that the investor root (the mother
 * card) certified. A terminal keeps the latest it was sent; `tally ledger
 * verify --checkpoint` proves a ledger still holds that head.
 *
 *   checkpoint  {format, body, signature, serverCertificate}
 *   body        a JSON string {format, terminalId, seq, headHash, time, serverId}, signed as it is:
 *               the server key over SHA-256(utf8(body))
 *   serverCertificate {body, signature}   body a JSON string {format, serverId, publicKey, motherCardId, issuedAt},
 *               signed by the mother card over SHA-256(utf8(body))
 *
 * The same server key signs the server's statements (the audit bundle). Strict
 * parsing; pure (the signatures are checked in crypto/checkpoint.ts).
 */
import { CodecError } from '../errors.js';
import { jsonFields } from './jsonFields.js';

export const CHECKPOINT_FORMAT = 'tallystick-checkpoint/1';
export const SERVER_KEY_CERTIFICATE_FORMAT = 'tallystick-server-key/1';

export interface CheckpointFields {
  readonly terminalId: string;
  /** Every entry 1..seq of the terminal's ledger is stored at the server */
  readonly seq: number;
  /** Hex SHA-256 of the entry at seq (its entry hash, signature included) */
  readonly headHash: string;
  /** Server time, ms since the epoch */
  readonly time: number;
  readonly serverId: string;
}

export interface ServerKeyCertificateFields {
  readonly serverId: string;
  /** Hex Ed25519 public key of the server */
  readonly publicKey: string;
  /** Hex card id of the mother card that certified it */
  readonly motherCardId: string;
  /** Unix seconds */
  readonly issuedAt: number;
}

export interface SignedJson {
  /** The signed text, exactly as signed */
  readonly body: string;
  /** Hex Ed25519 signature over SHA-256(utf8(body)) */
  readonly signature: string;
}

export interface Checkpoint extends SignedJson {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly serverCertificate: SignedJson;
}

export class CheckpointError extends CodecError {
  override readonly name: string = 'CheckpointError';
  constructor(detail: string, path = '') {
    super('BAD_CHECKPOINT', detail, path);
  }
}

const SERVER_ID = /^[A-Za-z0-9._-]{1,64}$/;
const TERMINAL_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Largest checkpoint accepted (a real one is about 700 bytes) */
export const MAX_CHECKPOINT_BYTES = 4096;

export function encodeCheckpointBody(fields: CheckpointFields): string {
  return JSON.stringify({ format: CHECKPOINT_FORMAT, terminalId: fields.terminalId, seq: fields.seq, headHash: fields.headHash, time: fields.time, serverId: fields.serverId });
}

export function encodeServerKeyCertificateBody(fields: ServerKeyCertificateFields): string {
  return JSON.stringify({ format: SERVER_KEY_CERTIFICATE_FORMAT, serverId: fields.serverId, publicKey: fields.publicKey, motherCardId: fields.motherCardId, issuedAt: fields.issuedAt });
}

export function parseCheckpointBody(body: string): CheckpointFields {
  const o = object(json(body, 'body'), 'body');
  if (o.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`body format ${String(o.format)}, expected ${CHECKPOINT_FORMAT}`, 'body.format');
  return {
    terminalId: text(o, 'terminalId', 'body', TERMINAL_ID),
    seq: whole(o, 'seq', 'body', 1),
    headHash: hex(o, 'headHash', 'body', 32),
    time: whole(o, 'time', 'body', 0),
    serverId: text(o, 'serverId', 'body', SERVER_ID),
  };
}

export function parseServerKeyCertificateBody(body: string): ServerKeyCertificateFields {
  const o = object(json(body, 'serverCertificate.body'), 'serverCertificate.body');
  const where = 'serverCertificate.body';
  if (o.format !== SERVER_KEY_CERTIFICATE_FORMAT) throw new CheckpointError(`server key certificate format ${String(o.format)}, expected ${SERVER_KEY_CERTIFICATE_FORMAT}`, `${where}.format`);
  return {
    serverId: text(o, 'serverId', where, SERVER_ID),
    publicKey: hex(o, 'publicKey', where, 32),
    motherCardId: hex(o, 'motherCardId', where, 8),
    issuedAt: whole(o, 'issuedAt', where, 0),
  };
}

/** A signed JSON pair (a certificate) from a parsed value */
export function parseSignedJson(value: unknown, where: string): SignedJson {
  const o = object(value, where);
  return { body: text(o, 'body', where), signature: hex(o, 'signature', where, 64) };
}

/** The checkpoint envelope from a parsed value (an ack's field) or a file's text; the signatures are not checked here */
export function parseCheckpoint(input: unknown): Checkpoint {
  let value = input;
  if (typeof input === 'string') {
    if (input.length > MAX_CHECKPOINT_BYTES) throw new CheckpointError(`${input.length} bytes, at most ${MAX_CHECKPOINT_BYTES}`);
    value = json(input, 'checkpoint');
  }
  const o = object(value, 'checkpoint');
  if (o.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`format ${String(o.format)}, expected ${CHECKPOINT_FORMAT}`, 'format');
  const signed = parseSignedJson(o, 'checkpoint');
  if (signed.body.length > MAX_CHECKPOINT_BYTES) throw new CheckpointError('body too long', 'body');
  return { format: CHECKPOINT_FORMAT, ...signed, serverCertificate: parseSignedJson(o.serverCertificate, 'serverCertificate') };
}

/** The file `tally ledger checkpoint` writes and `--checkpoint` reads */
export function encodeCheckpointFile(checkpoint: Checkpoint): string {
  return `${JSON.stringify({ format: checkpoint.format, body: checkpoint.body, signature: checkpoint.signature, serverCertificate: checkpoint.serverCertificate }, null, 1)}\n`;
}

const { json, object, text, whole, hex } = jsonFields((detail, path) => new CheckpointError(detail, path));
