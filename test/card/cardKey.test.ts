import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { challengeFor, generateCardKey, newNonce, signCardChallenge, verifyCardAnswer } from '../../src/crypto/cardAuth.js';
import { cardAuthMessage } from '../../src/codecs/applet.js';

const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

describe('card keys (P-256, made as the chip makes them)', () => {
  it('2000 fresh keys: distinct 32-byte scalars, uncompressed points on the curve, each answers its own challenge and no other key', () => {
    const seen = new Set<string>();
    const cardId = new Uint8Array(8).fill(7);
    let previous: Uint8Array | undefined;
    for (let i = 0; i < 2000; i++) {
      const key = generateCardKey();
      expect(key.privateScalar).toHaveLength(32);
      expect(key.publicKey).toHaveLength(65);
      expect(key.publicKey[0]).toBe(0x04);
      // node refuses a point that is not on P-256
      createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, key.publicKey]), format: 'der', type: 'spki' });
      const hex = Buffer.from(key.privateScalar).toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
      if (i % 50 === 0) {
        const nonce = newNonce();
        const answer = signCardChallenge(key.privateScalar, cardId, challengeFor('T-1', nonce));
        expect(verifyCardAnswer(key.publicKey, cardId, 'T-1', nonce, answer)).toBe(true);
        if (previous) expect(verifyCardAnswer(previous, cardId, 'T-1', nonce, answer)).toBe(false);
        const spki = createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, key.publicKey]), format: 'der', type: 'spki' });
        expect(verify('sha256', cardAuthMessage(cardId, challengeFor('T-1', nonce)), spki, answer)).toBe(true);
        previous = key.publicKey;
      }
    }
  });
});
