/**
 * The mother card's record certifying the investor's TLS CA, as it certifies
 * issuing stations (registryExport.ts): a JSON body naming the SHA-256 of the
 * CA certificate's DER, signed by the mother card over SHA-256(utf8(body)).
 *
 *   file {format, body, signature}      body: a JSON string, signed as it is
 *   body {format, caFingerprint, caSubject, motherCardId, issuedAt}
 *
 * The terminal trusts a broker only through a CA whose record verifies with the
 * root key it got at provisioning. Pure: no crypto here.
 */
import { CodecError } from '../errors.js';

export const TLS_CA_RECORD_FORMAT = 'tallystick-tls-ca-certificate/1';

export interface TlsCaRecordBody {
  readonly format: typeof TLS_CA_RECORD_FORMAT;
  /** SHA-256 of the CA certificate's DER, lower-case hex */
  readonly caFingerprint: string;
  /** The CA's subject, for people */
  readonly caSubject: string;
  readonly motherCardId: string;
  /** Unix seconds */
  readonly issuedAt: number;
}

export interface TlsCaRecordFile {
  readonly format: typeof TLS_CA_RECORD_FORMAT;
  readonly body: string;
  /** Hex signature of the mother card */
  readonly signature: string;
}

const bad = (detail: string, path = ''): CodecError => new CodecError('BAD_INPUT', `TLS CA record: ${detail}`, path);

export function encodeTlsCaRecordBody(body: Omit<TlsCaRecordBody, 'format'>): string {
  return JSON.stringify({ format: TLS_CA_RECORD_FORMAT, caFingerprint: body.caFingerprint, caSubject: body.caSubject, motherCardId: body.motherCardId, issuedAt: body.issuedAt });
}

export function encodeTlsCaRecordFile(body: string, signatureHex: string): string {
  return `${JSON.stringify({ format: TLS_CA_RECORD_FORMAT, body, signature: signatureHex }, null, 1)}\n`;
}

function parseJson(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad(`${where} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${where} is not an object`);
  return v as Record<string, unknown>;
}

export function parseTlsCaRecordFile(text: string): { file: TlsCaRecordFile; body: TlsCaRecordBody } {
  if (text.length > 16_384) throw bad('oversized');
  const o = parseJson(text, 'the file');
  if (o.format !== TLS_CA_RECORD_FORMAT) throw bad(`format ${String(o.format)}`, 'format');
  if (typeof o.body !== 'string') throw bad('body is not a string', 'body');
  if (typeof o.signature !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(o.signature)) throw bad('signature is not hex', 'signature');
  const b = parseJson(o.body, 'body');
  if (b.format !== TLS_CA_RECORD_FORMAT) throw bad(`body format ${String(b.format)}`, 'body.format');
  if (typeof b.caFingerprint !== 'string' || !/^[0-9a-f]{64}$/.test(b.caFingerprint)) throw bad('caFingerprint is not 32 bytes of hex', 'body.caFingerprint');
  if (typeof b.caSubject !== 'string' || typeof b.motherCardId !== 'string') throw bad('caSubject/motherCardId missing', 'body');
  if (typeof b.issuedAt !== 'number' || !Number.isSafeInteger(b.issuedAt)) throw bad('issuedAt is not a whole number', 'body.issuedAt');
  return {
    file: { format: TLS_CA_RECORD_FORMAT, body: o.body, signature: o.signature },
    body: { format: TLS_CA_RECORD_FORMAT, caFingerprint: b.caFingerprint, caSubject: b.caSubject, motherCardId: b.motherCardId, issuedAt: b.issuedAt },
  };
}
