/** Loads the golden vectors of firmware-protocol/vectors for the TS and C tests */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FirmwareMessage } from '../../src/codecs/firmware/messages.js';

export const VECTOR_DIR = fileURLToPath(new URL('../../firmware-protocol/vectors/', import.meta.url));
export const MESSAGE_FAMILIES = ['link', 'system', 'card', 'panel', 'relay'] as const;

export interface MessageVector {
  readonly description: string;
  readonly message: { kind: string; seq: number; name?: string; body: Record<string, unknown> };
  readonly frame: { seq: number; command: number; commandName: string; payload: string };
  readonly hex: string;
}

export interface FramingVectors {
  readonly crc: { description: string; hex: string; crc: number }[];
  readonly frames: { description: string; frame: { seq: number; command: number; payload: string }; hex: string }[];
  readonly invalid: { description: string; hex: string; error: string }[];
  readonly streams: { description: string; chunks: string[]; frames: string[]; discardedBytes: number }[];
}

/** Body fields that the JSON carries as hex strings */
const BYTE_FIELDS = new Set(['atr', 'apdu', 'response', 'nonce', 'hash']);

/** A body field as the codec sees it: hex strings of BYTE_FIELDS become bytes, nested heads too */
function typed(key: string, value: unknown): unknown {
  if (BYTE_FIELDS.has(key)) return hexBytes(value as string);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, typed(k, v)]));
  }
  return value;
}

export function loadMessageVectors(family: string): MessageVector[] {
  return (JSON.parse(readFileSync(`${VECTOR_DIR}${family}.json`, 'utf8')) as { vectors: MessageVector[] }).vectors;
}

interface HeadJson {
  readonly seq: number;
  readonly hash: string;
}

/** vectors/head.json: the board's acceptance rule and its NVM record and image (serial-protocol.md §6.5) */
export interface HeadVectors {
  readonly accept: { description: string; held: HeadJson; proposed: HeadJson; accepted: boolean }[];
  readonly records: { description: string; generation: number; head: HeadJson; hex: string }[];
  readonly images: { description: string; hex: string; generation: number; head: HeadJson }[];
  readonly writes: { description: string; before: string; head: HeadJson; after: string; slot: 0 | 1 }[];
}

export function loadHeadVectors(): HeadVectors {
  return JSON.parse(readFileSync(`${VECTOR_DIR}head.json`, 'utf8')) as HeadVectors;
}

export function loadFramingVectors(): FramingVectors {
  return JSON.parse(readFileSync(`${VECTOR_DIR}framing.json`, 'utf8')) as FramingVectors;
}

export function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The typed message a vector describes */
export function messageOf(vector: MessageVector): FirmwareMessage {
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(vector.message.body)) body[key] = typed(key, value);
  return { ...vector.message, body } as unknown as FirmwareMessage;
}
