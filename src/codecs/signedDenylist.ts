/**
 * The signed deny list (firmware-protocol/gateway-signed.md): the server's
 * deny list for one terminal, signed like its checkpoints and settlement
 * vouchers (the server key, certified by the investor root, over
 * SHA-256(utf8(body)), the certificate carried along), so the isolation
 * gateway checks it with the root alone before it lets it into the
 * hospital's network.
 *
 *   list  {format, body, signature, serverCertificate}
 *   body  a JSON string {format, terminalId, serverId, issuedAt, denylist}
 *         denylist: the MQTT deny-list payload (codecs/mqtt/messages.ts)
 *
 * Strict parsing; pure (the signatures are checked in crypto/signedDenylist.ts).
 */
import { CodecError } from '../errors.js';
import { parseSignedJson, type SignedJson } from './checkpoint.js';
import { jsonFields } from './jsonFields.js';
import { parseJsonPayload, type DenylistPayload } from './mqtt/messages.js';
import { MAX_DENYLIST_BYTES } from './mqtt/limits.js';

export const SIGNED_DENYLIST_FORMAT = 'tallystick-signed-denylist/1';
/** Largest signed list accepted: the deny list's own limit and the envelope */
export const MAX_SIGNED_DENYLIST_BYTES = MAX_DENYLIST_BYTES * 2 + 2_048;

export interface SignedDenylistFields {
  readonly terminalId: string;
  readonly serverId: string;
  /** ms since the epoch, server time */
  readonly issuedAt: number;
  readonly denylist: DenylistPayload;
}

export interface SignedDenylist extends SignedJson {
  readonly format: typeof SIGNED_DENYLIST_FORMAT;
  readonly serverCertificate: SignedJson;
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const fields = jsonFields((detail, path) => new CodecError('BAD_SIGNED_DENYLIST', detail, path ?? ''));

export function encodeSignedDenylistBody(f: SignedDenylistFields): string {
  return JSON.stringify({ format: SIGNED_DENYLIST_FORMAT, terminalId: f.terminalId, serverId: f.serverId, issuedAt: f.issuedAt, denylist: f.denylist });
}

export function parseSignedDenylistBody(body: string): SignedDenylistFields {
  const o = fields.object(fields.json(body, 'body'), 'body');
  if (o.format !== SIGNED_DENYLIST_FORMAT) throw new CodecError('BAD_SIGNED_DENYLIST', `body format ${String(o.format)}, expected ${SIGNED_DENYLIST_FORMAT}`, 'body.format');
  let denylist: DenylistPayload;
  try {
    denylist = parseJsonPayload('denylist', new TextEncoder().encode(JSON.stringify(o.denylist ?? null)));
  } catch (err) {
    throw new CodecError('BAD_SIGNED_DENYLIST', `body.denylist: ${(err as Error).message}`.slice(0, 200), 'body.denylist');
  }
  return { terminalId: fields.text(o, 'terminalId', 'body', ID), serverId: fields.text(o, 'serverId', 'body', ID), issuedAt: fields.whole(o, 'issuedAt', 'body', 0), denylist };
}

/** The envelope from its JSON bytes; the signatures are not checked here */
export function parseSignedDenylist(bytes: Uint8Array): SignedDenylist {
  if (bytes.length > MAX_SIGNED_DENYLIST_BYTES) throw new CodecError('BAD_SIGNED_DENYLIST', `${bytes.length} bytes, at most ${MAX_SIGNED_DENYLIST_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CodecError('BAD_SIGNED_DENYLIST', 'not UTF-8');
  }
  const o = fields.object(fields.json(text, 'list'), 'list');
  if (o.format !== SIGNED_DENYLIST_FORMAT) throw new CodecError('BAD_SIGNED_DENYLIST', `format ${String(o.format)}, expected ${SIGNED_DENYLIST_FORMAT}`, 'format');
  const signed = parseSignedJson(o, 'list');
  return { format: SIGNED_DENYLIST_FORMAT, ...signed, serverCertificate: parseSignedJson(o.serverCertificate, 'serverCertificate') };
}

export function encodeSignedDenylist(list: SignedDenylist): string {
  return JSON.stringify({ format: list.format, body: list.body, signature: list.signature, serverCertificate: { body: list.serverCertificate.body, signature: list.serverCertificate.signature } });
}
