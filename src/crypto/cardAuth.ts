/**
 * Card authentication (applet version 2): each batch and one-time card holds
 * an ECDSA P-256 key made on the chip, named in its signed record; it signs a
 * fresh challenge bound to the terminal. P-256 because every current Java
 * Card signs with it (Signature.ALG_ECDSA_SHA_256); Ed25519 is not universal.
 * A copy of the record on another chip cannot answer.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { CARD_AUTH_ANSWER_MAX, CHALLENGE_NONCE_LENGTH, cardAuthMessage, TERMINAL_TAG_LENGTH } from '../codecs/applet.js';
import { utf8 } from '../codecs/bytes.js';
import { CARD_KEY_LENGTH } from '../codecs/cardRecord.js';
import { sha256 } from './ed25519.js';

/** SubjectPublicKeyInfo header of an uncompressed P-256 point (id-ecPublicKey, prime256v1) */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

export interface CardKeyPair {
  /** 65 bytes: 04 || X || Y */
  readonly publicKey: Uint8Array;
  /** 32-byte private scalar (the simulated card keeps it in its EEPROM) */
  readonly privateScalar: Uint8Array;
}

/** The order n of the P-256 group: a private scalar is in [1, n-1] */
const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/**
 * A fresh card key, drawn as a random scalar in [1, n-1] (rejection sampling).
 * Not generateKeyPairSync + export({format:'jwk'}): on Node 20 a GC during the
 * JWK export can finalise the key-generation job, whose destructor takes the
 * mutex the export holds, and the process hangs for ever (seen in CI).
 */
export function generateCardKey(): CardKeyPair {
  for (;;) {
    const scalar = new Uint8Array(randomBytes(32));
    const value = BigInt('0x' + Buffer.from(scalar).toString('hex'));
    if (value === 0n || value >= P256_ORDER) continue;
    return { publicKey: cardPublicKey(scalar), privateScalar: scalar };
  }
}

function cardPublicKeyOf(key: KeyObject): Uint8Array {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - CARD_KEY_LENGTH));
}

const privateKeyCache = new Map<string, KeyObject>();

/** The private key of a stored scalar; the public point is recomputed from it */
export function cardPrivateKey(scalar: Uint8Array): KeyObject {
  const id = Buffer.from(scalar).toString('hex');
  let key = privateKeyCache.get(id);
  if (!key) {
    // build from the scalar alone: a PKCS#8 ECPrivateKey without the optional public key
    const der = Buffer.concat([Buffer.from('3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420', 'hex'), Buffer.from(scalar)]);
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    if (privateKeyCache.size > 1024) privateKeyCache.clear();
    privateKeyCache.set(id, key);
  }
  return key;
}

export function cardPublicKey(scalar: Uint8Array): Uint8Array {
  return cardPublicKeyOf(cardPrivateKey(scalar));
}

/** What the card does for INTERNAL AUTHENTICATE: ECDSA P-256 / SHA-256, DER */
export function signCardChallenge(scalar: Uint8Array, cardId: Uint8Array, challenge: Uint8Array): Uint8Array {
  return new Uint8Array(sign('sha256', cardAuthMessage(cardId, challenge), cardPrivateKey(scalar)));
}

/** The 8 bytes that name a terminal in a challenge (and in a consumed marker) */
export function terminalTag(terminalId: string): Uint8Array {
  return sha256(utf8(terminalId)).subarray(0, TERMINAL_TAG_LENGTH);
}

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(CHALLENGE_NONCE_LENGTH));
}

export function challengeFor(terminalId: string, nonce: Uint8Array): Uint8Array {
  const challenge = new Uint8Array(TERMINAL_TAG_LENGTH + CHALLENGE_NONCE_LENGTH);
  challenge.set(terminalTag(terminalId), 0);
  challenge.set(nonce, TERMINAL_TAG_LENGTH);
  return challenge;
}

/** The card key as node:crypto needs it (about 0.3 ms: decoding the point); made while the card signs. undefined when malformed */
export function prepareCardKey(cardKey: Uint8Array): KeyObject | undefined {
  if (cardKey.length !== CARD_KEY_LENGTH) return undefined;
  try {
    return createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, cardKey]), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/** Verifies a card's answer (about 0.15 ms with a prepared key); false on any malformed key or signature */
export function verifyCardAnswer(cardKey: Uint8Array | KeyObject | undefined, cardId: Uint8Array, terminalId: string, nonce: Uint8Array, answer: Uint8Array): boolean {
  if (nonce.length !== CHALLENGE_NONCE_LENGTH) return false;
  return verifyCardChallenge(cardKey, cardId, challengeFor(terminalId, nonce), answer);
}

/** Verifies an answer to a whole challenge (terminal tag || nonce), as a ledger verifier reads it from a use entry */
export function verifyCardChallenge(cardKey: Uint8Array | KeyObject | undefined, cardId: Uint8Array, challenge: Uint8Array, answer: Uint8Array): boolean {
  const key = cardKey instanceof Uint8Array ? prepareCardKey(cardKey) : cardKey;
  if (!key || challenge.length !== TERMINAL_TAG_LENGTH + CHALLENGE_NONCE_LENGTH || answer.length === 0 || answer.length > CARD_AUTH_ANSWER_MAX) return false;
  try {
    return verify('sha256', cardAuthMessage(cardId, challenge), key, answer);
  } catch {
    return false;
  }
}
