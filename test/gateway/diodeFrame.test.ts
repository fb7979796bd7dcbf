/** The one-way datagram against its golden vectors (firmware-protocol/vectors/gateway-diode.json), both ways */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DiodeFrameError, encodeDiodeFrame, parseDiodeFrame, type DiodeKind } from '../../src/codecs/gateway/diodeFrame.js';

interface Vectors {
  valid: { name: string; frame: { kind: DiodeKind; gatewayId: string; seq: number; topic: string; payloadUtf8: string }; hex: string }[];
  invalid: { name: string; hex: string; reason: string }[];
}
const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../firmware-protocol/vectors/gateway-diode.json', import.meta.url)), 'utf8')) as Vectors;

describe('gateway diode datagram', () => {
  it.each(vectors.valid.map((v) => [v.name, v] as const))('%s encodes to its bytes and parses back', (_name, v) => {
    const frame = { ...v.frame, payload: new TextEncoder().encode(v.frame.payloadUtf8) };
    expect(Buffer.from(encodeDiodeFrame(frame)).toString('hex')).toBe(v.hex);
    const parsed = parseDiodeFrame(Buffer.from(v.hex, 'hex'));
    expect({ ...parsed, payload: new TextDecoder().decode(parsed.payload) }).toEqual({ ...v.frame, payload: v.frame.payloadUtf8, payloadUtf8: undefined });
  });

  it.each(vectors.invalid.map((v) => [v.name, v] as const))('refuses %s', (_name, v) => {
    expect(() => parseDiodeFrame(Buffer.from(v.hex, 'hex'))).toThrow(DiodeFrameError);
    expect(() => parseDiodeFrame(Buffer.from(v.hex, 'hex'))).toThrow(new RegExp(v.reason));
  });
});
