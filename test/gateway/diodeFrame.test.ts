/** The one-way datagram against its golden vectors (firmware-protocol/vectors/gateway-diode.json), both ways */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DiodeFrameError, encodeDiodeFragments, encodeDiodeFrame, parseDiodeFragment, parseDiodeFrame, type DiodeKind } from '../../src/codecs/gateway/diodeFrame.js';
import { DiodeReassembler, type ReassemblyEvent } from '../../src/gateway/diodeReassembly.js';

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

interface FragmentVectors {
  fragmented: { name: string; frame: { kind: DiodeKind; gatewayId: string; seq: number; topic: string; payloadUtf8: string }; fragmentBytes: number; fragments: string[] }[];
  reassembly: { name: string; fragments: string[]; outcome: 'message' | 'incomplete' | 'mismatch'; message?: number; missing?: number[]; reason?: string; duplicateFragments?: number; lateFragments?: number; mismatched?: number }[];
  invalidFragments: { name: string; hex: string; reason: string }[];
}
const fragmentVectors = vectors as unknown as FragmentVectors;
const sha256 = (b: Uint8Array): Uint8Array => createHash('sha256').update(b).digest();

describe('gateway diode fragments (version 2)', () => {
  it.each(fragmentVectors.fragmented.map((v) => [v.name, v] as const))('%s: cut into exactly its datagrams', (_name, v) => {
    const frame = { ...v.frame, payload: new TextEncoder().encode(v.frame.payloadUtf8) };
    expect(encodeDiodeFragments(frame, sha256, v.fragmentBytes).map((d) => Buffer.from(d).toString('hex'))).toEqual(v.fragments);
    for (const [i, hex] of v.fragments.entries()) expect(parseDiodeFragment(Buffer.from(hex, 'hex'))).toMatchObject({ kind: v.frame.kind, gatewayId: v.frame.gatewayId, seq: v.frame.seq, index: i, count: v.fragments.length });
  });

  it.each(fragmentVectors.reassembly.map((v) => [v.name, v] as const))('reassembly, %s', (_name, v) => {
    let now = 0;
    const r = new DiodeReassembler({ sha256, now: () => now, timeoutMs: 100 });
    const events: ReassemblyEvent[] = [];
    for (const hex of v.fragments) {
      const bytes = Buffer.from(hex, 'hex');
      events.push(...r.push(parseDiodeFragment(bytes), bytes));
    }
    now = 100;
    events.push(...r.expire());
    const messages = events.filter((e) => e.kind === 'message');
    if (v.outcome === 'message') {
      const want = fragmentVectors.fragmented[v.message!]!.frame;
      expect(messages).toHaveLength(1);
      const frame = (messages[0] as Extract<ReassemblyEvent, { kind: 'message' }>).frame;
      expect({ ...frame, payload: new TextDecoder().decode(frame.payload) }).toEqual({ kind: want.kind, gatewayId: want.gatewayId, seq: want.seq, topic: want.topic, payload: want.payloadUtf8 });
    } else {
      // nothing of the message is handed on
      expect(messages).toHaveLength(0);
      const given = events.filter((e) => e.kind === v.outcome);
      expect(given).toHaveLength(1);
      if (v.outcome === 'incomplete') expect((given[0] as Extract<ReassemblyEvent, { kind: 'incomplete' }>).missing).toEqual(v.missing);
      else expect((given[0] as Extract<ReassemblyEvent, { kind: 'mismatch' }>).reason).toMatch(new RegExp(v.reason!));
    }
    expect(r.counts).toMatchObject({ duplicateFragments: v.duplicateFragments ?? 0, lateFragments: v.lateFragments ?? 0, mismatched: v.mismatched ?? (v.outcome === 'mismatch' ? 1 : 0) });
    expect(r.pendingMessages).toBe(0);
  });

  it.each(fragmentVectors.invalidFragments.map((v) => [v.name, v] as const))('refuses the fragment: %s', (_name, v) => {
    expect(() => parseDiodeFragment(Buffer.from(v.hex, 'hex'))).toThrow(DiodeFrameError);
    expect(() => parseDiodeFragment(Buffer.from(v.hex, 'hex'))).toThrow(new RegExp(v.reason));
  });

  it('a reassembly buffer past its bound gives up the oldest message, reported incomplete', () => {
    const r = new DiodeReassembler({ sha256, now: () => 0, maxPendingBytes: 40 });
    const cut = (seq: number) => encodeDiodeFragments({ kind: 'crossing', gatewayId: 'gw1', seq, topic: 't/x', payload: new Uint8Array(60) }, sha256, 30);
    const a = cut(1);
    const b = cut(2);
    expect(r.push(parseDiodeFragment(a[0]!), a[0]!)).toEqual([]);
    const events = r.push(parseDiodeFragment(b[0]!), b[0]!);
    expect(events).toMatchObject([{ kind: 'incomplete', seq: 1, missing: [1, 2], why: 'buffer full' }]);
  });
});
