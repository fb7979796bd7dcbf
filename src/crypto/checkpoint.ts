/**
 * Signing and checking the server's checkpoints (codecs/checkpoint.ts): the
 * server key must be certified by the investor root (the mother card's key),
 * and the checkpoint signed by that server key. Only public keys are needed
 * to check one.
 */
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../codecs/bytes.js';
import {
  CHECKPOINT_FORMAT,
  CheckpointError,
  encodeCheckpointBody,
  parseCheckpointBody,
  parseServerKeyCertificateBody,
  type Checkpoint,
  type CheckpointFields,
  type ServerKeyCertificateFields,
  type SignedJson,
} from '../codecs/checkpoint.js';
import { sha256, signMessage, verifyMessage } from './ed25519.js';

/** The server key's certificate, checked against the root: its fields */
export function verifyServerKeyCertificate(certificate: SignedJson, rootPublicKey: Uint8Array): ServerKeyCertificateFields {
  const fields = parseServerKeyCertificateBody(certificate.body);
  if (!verifyMessage(rootPublicKey, utf8(certificate.body), fromHex(certificate.signature))) {
    throw new CheckpointError(`server key of ${fields.serverId} is not certified by this investor root`, 'serverCertificate.signature');
  }
  return fields;
}

/** Signs a checkpoint with the server key its certificate names */
export function signCheckpoint(serverKey: KeyObject, certificate: SignedJson, fields: Omit<CheckpointFields, 'serverId'>): Checkpoint {
  const { serverId } = parseServerKeyCertificateBody(certificate.body);
  const body = encodeCheckpointBody({ ...fields, serverId });
  return { format: CHECKPOINT_FORMAT, body, signature: toHex(signMessage(serverKey, utf8(body))), serverCertificate: certificate };
}

/** Checks a checkpoint against the investor root: its fields, or CheckpointError (BAD_CHECKPOINT) */
export function verifyCheckpoint(checkpoint: Checkpoint, rootPublicKey: Uint8Array): CheckpointFields & { readonly serverPublicKey: string } {
  const server = verifyServerKeyCertificate(checkpoint.serverCertificate, rootPublicKey);
  const fields = parseCheckpointBody(checkpoint.body);
  if (fields.serverId !== server.serverId) throw new CheckpointError(`checkpoint names server ${fields.serverId}, its certificate ${server.serverId}`, 'body.serverId');
  if (!verifyMessage(fromHex(server.publicKey), utf8(checkpoint.body), fromHex(checkpoint.signature))) {
    throw new CheckpointError(`checkpoint not signed by server ${server.serverId}'s key (altered?)`, 'signature');
  }
  return { ...fields, serverPublicKey: server.publicKey };
}

/** What a ledger says against a checkpoint (ledger-format.md, server checkpoints) */
export interface CheckpointVerdict {
  readonly ok: boolean;
  readonly serverId: string;
  readonly terminalId: string;
  readonly seq: number;
  readonly headHash: string;
  /** ISO 8601, the server's time when it signed */
  readonly time: string;
  /** The ledger's last good seq */
  readonly lastGoodSeq: number;
  /** TRUNCATED: the ledger ends (or breaks) before the checkpoint's seq; FORKED: another entry stands there; OTHER_TERMINAL */
  readonly problem?: { readonly code: 'TRUNCATED' | 'FORKED' | 'OTHER_TERMINAL'; readonly seq: number; readonly problem: string };
}

/**
 * Does the ledger still hold the checkpoint's head? `entries` are the ledger's raw entries in seq order and
 * `lastGoodSeq` the seq up to which they verify (the verifier's lastSeq). A tail cut after the checkpoint is
 * invisible here (section 8 names the witnesses that see it).
 */
export function checkLedgerAgainstCheckpoint(entries: readonly Uint8Array[], lastGoodSeq: number, terminalId: string | undefined, fields: CheckpointFields): CheckpointVerdict {
  const base = { serverId: fields.serverId, terminalId: fields.terminalId, seq: fields.seq, headHash: fields.headHash, time: new Date(fields.time).toISOString(), lastGoodSeq };
  if (terminalId !== undefined && terminalId !== fields.terminalId) {
    return { ...base, ok: false, problem: { code: 'OTHER_TERMINAL', seq: fields.seq, problem: `the checkpoint is for terminal ${fields.terminalId}, the ledger is ${terminalId}'s` } };
  }
  if (lastGoodSeq < fields.seq) {
    return {
      ...base,
      ok: false,
      problem: { code: 'TRUNCATED', seq: lastGoodSeq + 1, problem: `the ledger's last good seq is ${lastGoodSeq}; server ${fields.serverId} signed that it held seq ${fields.seq}: seq ${lastGoodSeq + 1}..${fields.seq} were cut off or lost` },
    };
  }
  const raw = entries[fields.seq - 1];
  const hash = raw ? toHex(sha256(raw)) : '';
  if (hash !== fields.headHash) {
    return { ...base, ok: false, problem: { code: 'FORKED', seq: fields.seq, problem: `seq ${fields.seq} is not the entry server ${fields.serverId} signed (${fields.headHash.slice(0, 16)}...): replaced after the server saw it` } };
  }
  return { ...base, ok: true };
}
