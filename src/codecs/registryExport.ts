/**
 * What an issuing station hands the server: its registry (the mother, white and
 * batch cards it made, and how many one-time cards of each batch it wrote) as
 * one JSON file, signed by the station's own key. The station key is in turn
 * certified by the mother card (the investor root), so the server trusts an
 * export with nothing but the root public key it already has.
 *
 *   file    {format, payload, signature}   signature: station key over SHA-256(utf8(payload))
 *   payload {format, stationId, exportedAt, certificate, cards, oneTime}   (a JSON string, signed as it is)
 *   certificate {body, signature}          signature: the mother card over SHA-256(utf8(body))
 *
 * The card records inside carry their own signatures (root -> white -> batch),
 * so even the station key cannot make the server believe in a card the mother
 * and white cards did not sign. Strict parsing; pure (no crypto here).
 */
import { CodecError } from '../errors.js';
import { utf8 } from './bytes.js';

export const REGISTRY_EXPORT_FORMAT = 'tallystick-registry-export/1';
export const STATION_CERTIFICATE_FORMAT = 'tallystick-station-certificate/1';
/** The largest export a server reads (a station with thousands of batches stays far below) */
export const MAX_REGISTRY_EXPORT_BYTES = 32 * 1024 * 1024;

export interface StationCertificateBody {
  readonly format: typeof STATION_CERTIFICATE_FORMAT;
  readonly stationId: string;
  /** Hex Ed25519 public key of the station */
  readonly publicKey: string;
  /** Hex card id of the mother card that certified it */
  readonly motherCardId: string;
  /** Unix seconds */
  readonly issuedAt: number;
}

export interface StationCertificate {
  /** The certificate body as signed (a JSON string of StationCertificateBody) */
  readonly body: string;
  /** Hex signature of the mother card */
  readonly signature: string;
}

export interface ExportedCard {
  /** Hex of the complete signed card record (mother, white or batch) */
  readonly record: string;
  readonly written: boolean;
  readonly chipUid?: string;
  /** Hex card id of the card that signed it (the mother card for a white card) */
  readonly parentCardId?: string;
}

export interface ExportedOneTimeBatch {
  /** Hex card id of the batch card */
  readonly batchId: string;
  /** Serials 1..count */
  readonly count: number;
  /** How many of them the station wrote onto cards */
  readonly written: number;
}

export interface RegistryExportPayload {
  readonly format: typeof REGISTRY_EXPORT_FORMAT;
  readonly stationId: string;
  /** ms */
  readonly exportedAt: number;
  readonly certificate: StationCertificate;
  readonly cards: readonly ExportedCard[];
  readonly oneTime: readonly ExportedOneTimeBatch[];
}

export interface RegistryExportFile {
  readonly format: typeof REGISTRY_EXPORT_FORMAT;
  readonly payload: string;
  readonly signature: string;
}

export type RegistryExportProblem = 'malformed' | 'unsupported-format' | 'oversized';

export class RegistryExportError extends CodecError {
  override readonly name: string = 'RegistryExportError';
  constructor(
    readonly reason: RegistryExportProblem,
    detail: string,
    path = '',
  ) {
    super('BAD_REGISTRY_EXPORT', `${reason}: ${detail}`, path);
  }
}

const HEX = /^(?:[0-9a-f]{2})*$/;
const STATION_ID = /^[A-Za-z0-9._-]{1,64}$/;

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RegistryExportError('malformed', `${where} is not an object`);
  return value as Json;
}

function text(o: Json, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new RegistryExportError('malformed', `${where}.${key} is not a string`);
  return v;
}

function hex(o: Json, key: string, where: string, bytes?: number): string {
  const v = text(o, key, where);
  if (!HEX.test(v) || (bytes !== undefined && v.length !== bytes * 2)) throw new RegistryExportError('malformed', `${where}.${key} is not ${bytes ? `${bytes} bytes of ` : ''}lower-case hex`);
  return v;
}

function whole(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new RegistryExportError('malformed', `${where}.${key} is not a whole number`);
  return v;
}

function json(textValue: string, where: string): unknown {
  try {
    return JSON.parse(textValue);
  } catch {
    throw new RegistryExportError('malformed', `${where} is not JSON`);
  }
}

function stationId(o: Json, where: string): string {
  const id = text(o, 'stationId', where);
  if (!STATION_ID.test(id)) throw new RegistryExportError('malformed', `${where}.stationId must be 1..64 of A-Z a-z 0-9 . _ -`);
  return id;
}

export function isStationId(value: string): boolean {
  return STATION_ID.test(value);
}

export function encodeStationCertificateBody(body: Omit<StationCertificateBody, 'format'>): string {
  return JSON.stringify({ format: STATION_CERTIFICATE_FORMAT, stationId: body.stationId, publicKey: body.publicKey, motherCardId: body.motherCardId, issuedAt: body.issuedAt });
}

export function parseStationCertificateBody(body: string): StationCertificateBody {
  const o = object(json(body, 'certificate body'), 'certificate body');
  if (o.format !== STATION_CERTIFICATE_FORMAT) throw new RegistryExportError('unsupported-format', `certificate format ${String(o.format)}`);
  return {
    format: STATION_CERTIFICATE_FORMAT,
    stationId: stationId(o, 'certificate'),
    publicKey: hex(o, 'publicKey', 'certificate', 32),
    motherCardId: hex(o, 'motherCardId', 'certificate', 8),
    issuedAt: whole(o, 'issuedAt', 'certificate'),
  };
}

export function encodeRegistryExport(payload: Omit<RegistryExportPayload, 'format'>, sign: (payloadBytes: Uint8Array) => string): string {
  const payloadText = JSON.stringify({ format: REGISTRY_EXPORT_FORMAT, ...payload });
  const file: RegistryExportFile = { format: REGISTRY_EXPORT_FORMAT, payload: payloadText, signature: sign(utf8(payloadText)) };
  return `${JSON.stringify(file, null, 1)}\n`;
}

/** The envelope: what is signed (payload, as bytes) and the signature. The payload is not trusted yet. */
export function parseRegistryExportFile(fileText: string): RegistryExportFile {
  if (fileText.length > MAX_REGISTRY_EXPORT_BYTES) throw new RegistryExportError('oversized', `${fileText.length} bytes, at most ${MAX_REGISTRY_EXPORT_BYTES}`);
  const o = object(json(fileText, 'the export'), 'the export');
  if (o.format !== REGISTRY_EXPORT_FORMAT) throw new RegistryExportError('unsupported-format', `format ${String(o.format)}; this server reads ${REGISTRY_EXPORT_FORMAT}`);
  return { format: REGISTRY_EXPORT_FORMAT, payload: text(o, 'payload', 'export'), signature: hex(o, 'signature', 'export', 64) };
}

export function parseRegistryExportPayload(payloadText: string): RegistryExportPayload {
  const o = object(json(payloadText, 'payload'), 'payload');
  if (o.format !== REGISTRY_EXPORT_FORMAT) throw new RegistryExportError('unsupported-format', `payload format ${String(o.format)}`);
  const certificate = object(o.certificate, 'payload.certificate');
  if (!Array.isArray(o.cards) || !Array.isArray(o.oneTime)) throw new RegistryExportError('malformed', 'payload.cards and payload.oneTime must be arrays');
  const cards = o.cards.map((value, i): ExportedCard => {
    const where = `cards[${i}]`;
    const c = object(value, where);
    if (typeof c.written !== 'boolean') throw new RegistryExportError('malformed', `${where}.written is not true or false`);
    return {
      record: hex(c, 'record', where),
      written: c.written,
      ...(c.chipUid !== undefined ? { chipUid: hex(c, 'chipUid', where) } : {}),
      ...(c.parentCardId !== undefined ? { parentCardId: hex(c, 'parentCardId', where, 8) } : {}),
    };
  });
  const oneTime = o.oneTime.map((value, i): ExportedOneTimeBatch => {
    const where = `oneTime[${i}]`;
    const b = object(value, where);
    return { batchId: hex(b, 'batchId', where, 8), count: whole(b, 'count', where), written: whole(b, 'written', where) };
  });
  return {
    format: REGISTRY_EXPORT_FORMAT,
    stationId: stationId(o, 'payload'),
    exportedAt: whole(o, 'exportedAt', 'payload'),
    certificate: { body: text(certificate, 'body', 'certificate'), signature: hex(certificate, 'signature', 'certificate', 64) },
    cards,
    oneTime,
  };
}
