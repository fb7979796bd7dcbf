/**
 * Passwords as scrypt hashes (node:crypto, memory-hard: N=2^15, r=8, p=1 needs 32 MiB a try), stored as
 * `scrypt$N$r$p$salt$hash` (base64) so the cost can rise later without breaking old hashes. No default
 * password exists: a user gets one only from tally server user add, typed or read from standard input.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { TallyError } from '../../errors.js';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 200;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r * p }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export function checkPasswordStrength(username: string, password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new TallyError('WEAK_PASSWORD', `at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new TallyError('WEAK_PASSWORD', `at most ${MAX_PASSWORD_LENGTH} characters`);
  if (password.toLowerCase() === username.toLowerCase()) throw new TallyError('WEAK_PASSWORD', 'it is the user name');
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** A hash of a password nobody has: unknown users are checked against it, so their answer takes as long */
let decoy: Promise<string> | undefined;

export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const hash = stored ?? (await (decoy ??= hashPassword(randomBytes(18).toString('base64'))));
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every(Number.isInteger) || n > 1 << 20) return false;
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await derive(password, Buffer.from(parts[4]!, 'base64'), n, r, p);
  return stored !== undefined && key.length === expected.length && timingSafeEqual(key, expected);
}
