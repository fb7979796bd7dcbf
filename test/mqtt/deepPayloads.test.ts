/**
 * Hostile JSON on a terminal's topics (issue 10, finding 3): payloads nested thousands deep, or with
 * tens of thousands of keys, or random nesting, are refused as malformed by the codec (never a
 * RangeError from a recursion), and the server records them as a malformed report, not `internal`.
 */
import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MAX_JSON_BYTES, MAX_JSON_DEPTH } from '../../src/codecs/mqtt/limits.js';
import { jsonDepth, parseJsonPayload, type JsonKind } from '../../src/codecs/mqtt/messages.js';
import { PayloadError } from '../../src/codecs/mqtt/PayloadError.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { systemClock } from '../../src/util/clock.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';

const KINDS: JsonKind[] = ['ack', 'config', 'denylist', 'time', 'resend', 'claim-result', 'status', 'heartbeat', 'claim', 'response', 'voucher-claim', 'voucher-claim-result', 'trust-list'];
const enc = (s: string) => new TextEncoder().encode(s);
const nested = (depth: number, open = '{"a":', close = '}') => open.repeat(depth) + '1' + close.repeat(depth);

function refusedAsMalformed(kind: JsonKind, text: string): void {
  let caught: unknown;
  try {
    parseJsonPayload(kind, enc(text));
  } catch (err) {
    caught = err;
  }
  expect(caught, `${kind}: ${text.slice(0, 40)}`).toBeInstanceOf(PayloadError);
}

describe('hostile JSON payloads', () => {
  it('nested 6,000 deep (objects, arrays, inside a known field) is malformed for every kind, never a stack overflow', () => {
    for (const kind of KINDS) {
      for (const text of [nested(6000), nested(6000, '[', ']'), `{"transaction":1,"state":${nested(6000)}}`]) refusedAsMalformed(kind, text);
    }
    expect(jsonDepth(nested(MAX_JSON_DEPTH + 1))).toBe(MAX_JSON_DEPTH + 1);
    // brackets inside strings are not nesting
    expect(jsonDepth('{"a":"[[[[{{{{\\"]]]"}')).toBe(1);
  });

  it('huge numbers of keys, up to the size limit, are refused for every kind', () => {
    const keys = Math.floor(MAX_JSON_BYTES / 10);
    const many = `{${Array.from({ length: keys }, (_, i) => `"k${i}":1`).join(',')}}`.slice(0, MAX_JSON_BYTES - 1);
    const manyValid = many.slice(0, many.lastIndexOf(',')) + '}';
    for (const kind of KINDS) refusedAsMalformed(kind, manyValid);
  });

  it('fuzz: random nesting and junk never escapes as anything but a PayloadError (300 runs)', () => {
    const tree: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'large', withCrossShrink: true }, fc.integer(), fc.string(), fc.constant(null), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 6 }), tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), tree, fc.integer({ min: 0, max: 3000 }), (kind, value, depth) => {
        const text = '['.repeat(depth) + JSON.stringify(value) + ']'.repeat(depth);
        try {
          parseJsonPayload(kind, enc(text));
        } catch (err) {
          if (!(err instanceof PayloadError)) throw err;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('the server records a 6,000-deep status on a terminal topic as malformed, not internal', async () => {
    const dir = tempDir('tally-deep-');
    const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
    onTestFinished(() => store.close());
    const ingest = new Ingest({ store, rootPublicKey: generateSigningKey().publicKey, clock: systemClock });
    for (const kind of ['status', 'heartbeat', 'claim', 'response'] as const) {
      const outcome = await ingest.handle(terminalTopic('T-1', kind), enc(nested(6000)));
      expect(outcome, kind).toMatchObject({ accepted: false, reason: 'malformed' });
    }
  });
});
