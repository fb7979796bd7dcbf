/**
 * Signing and checking signed deny lists (codecs/signedDenylist.ts): the
 * server key must chain to the investor root, the body must be signed by it
 * and name the server of that certificate. The isolation gateway checks this
 * before a deny list enters the hospital's network.
 */
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../codecs/bytes.js';
import { parseServerKeyCertificateBody, type SignedJson } from '../codecs/checkpoint.js';
import { encodeSignedDenylistBody, parseSignedDenylistBody, SIGNED_DENYLIST_FORMAT, type SignedDenylist, type SignedDenylistFields } from '../codecs/signedDenylist.js';
import { TallyError, CodecError } from '../errors.js';
import { verifyServerKeyCertificate } from './checkpoint.js';
import { signMessage, verifyMessage } from './ed25519.js';

export function signDenylist(serverKey: KeyObject, certificate: SignedJson, fields: Omit<SignedDenylistFields, 'serverId'>): SignedDenylist {
  const { serverId } = parseServerKeyCertificateBody(certificate.body);
  const body = encodeSignedDenylistBody({ ...fields, serverId });
  return { format: SIGNED_DENYLIST_FORMAT, body, signature: toHex(signMessage(serverKey, utf8(body))), serverCertificate: certificate };
}

/** The list's fields, or a TallyError BAD_SIGNED_DENYLIST naming what failed */
export function verifySignedDenylist(list: SignedDenylist, rootPublicKey: Uint8Array): SignedDenylistFields {
  try {
    const server = verifyServerKeyCertificate(list.serverCertificate, rootPublicKey);
    const fields = parseSignedDenylistBody(list.body);
    if (fields.serverId !== server.serverId) throw new CodecError('BAD_SIGNED_DENYLIST', `list names server ${fields.serverId}, its certificate ${server.serverId}`);
    if (!verifyMessage(fromHex(server.publicKey), utf8(list.body), fromHex(list.signature))) throw new CodecError('BAD_SIGNED_DENYLIST', `not signed by server ${server.serverId}'s key (altered?)`);
    return fields;
  } catch (err) {
    throw new TallyError('BAD_SIGNED_DENYLIST', (err as Error).message.slice(0, 200));
  }
}
