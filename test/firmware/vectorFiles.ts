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
const BYTE_FIELDS = new Set(['atr', 'apdu', 'response', 'nonce']);

export function loadMessageVectors(family: string): MessageVector[] {
  return (JSON.parse(readFileSync(`${VECTOR_DIR}${family}.json`, 'utf8')) as { vectors: MessageVector[] }).vectors;
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
  for (const [key, value] of Object.entries(vector.message.body)) body[key] = BYTE_FIELDS.has(key) ? hexBytes(value as string) : value;
  return { ...vector.message, body } as unknown as FirmwareMessage;
}
