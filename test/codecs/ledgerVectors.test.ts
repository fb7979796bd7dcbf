/**
 * The ledger's golden vectors (firmware-protocol/vectors/ledger.json) are what
 * scripts/ledgerVectors.ts generates from the codecs today, and the TypeScript
 * verifier gives each the recorded verdict. Fails while the file is stale:
 * UPDATE_VECTORS=1 npx vitest run test/codecs/ledgerVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applyEdits, ledgerVectorsJson } from '../../scripts/ledgerVectors.js';
import { LEDGER_FAULTS, verifyLedgerEntries } from '../../src/crypto/ledgerChain.js';
import { ENTRY_TYPE_NAMES, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { sha256 } from '../../src/crypto/ed25519.js';
import { toHex } from '../../src/codecs/bytes.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/ledger.json', import.meta.url));

interface Vectors {
  rootPublicKey: string;
  ledger: { entries: { seq: number; hex: string; hash: string }[]; verdict: Record<string, unknown> };
  tampered: { name: string; edits: Parameters<typeof applyEdits>[1]; verdict: { ok: boolean; problem?: { seq: number; code: string } } }[];
}

describe('ledger golden vectors', () => {
  it('are what the generator makes from the codecs today', () => {
    const expected = ledgerVectorsJson();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, expected);
    expect(readFileSync(FILE, 'utf8'), 'firmware-protocol/vectors/ledger.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/ledgerVectors.test.ts').toBe(expected);
  });

  // read when the tests run, after the first may have rewritten the file
  const load = () => {
    const vectors = JSON.parse(readFileSync(FILE, 'utf8')) as Vectors;
    return { vectors, root: Buffer.from(vectors.rootPublicKey, 'hex'), valid: vectors.ledger.entries.map((e) => new Uint8Array(Buffer.from(e.hex, 'hex'))) };
  };

  it('hold a valid ledger of every entry type whose hashes and verdict the verifier reproduces', () => {
    const { vectors, root, valid } = load();
    expect(vectors.ledger.entries.length).toBeGreaterThanOrEqual(30);
    const types = new Set(valid.map((raw) => parseLedgerEntry(raw).type));
    expect([...types].sort((a, b) => a - b)).toEqual(Object.keys(ENTRY_TYPE_NAMES).map(Number));
    vectors.ledger.entries.forEach((e, i) => expect(toHex(sha256(valid[i]!))).toBe(e.hash));
    expect(verifyLedgerEntries(valid, root)).toMatchObject({ ...vectors.ledger.verdict, ok: true });
  });

  it('name every tampered variant with its recorded code and seq, and every code is a known one', () => {
    const { vectors, root, valid } = load();
    expect(vectors.tampered.length).toBeGreaterThanOrEqual(30);
    for (const variant of vectors.tampered) {
      const result = verifyLedgerEntries(applyEdits(valid, variant.edits), root);
      expect({ name: variant.name, ok: result.ok, problem: result.problem && { seq: result.problem.seq, code: result.problem.code } }).toEqual({ name: variant.name, ok: variant.verdict.ok, problem: variant.verdict.problem });
      if (variant.verdict.problem) expect(LEDGER_FAULTS).toContain(variant.verdict.problem.code);
    }
    // every rule of the verifier but the database one is exercised by a variant
    const named = new Set(vectors.tampered.flatMap((v) => (v.verdict.problem ? [v.verdict.problem.code] : [])));
    expect(LEDGER_FAULTS.filter((code) => !named.has(code))).toEqual(['DATABASE_UNREADABLE']);
  });
});
