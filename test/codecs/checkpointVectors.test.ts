/**
 * The checkpoint golden vectors (firmware-protocol/vectors/checkpoint.json) are
 * what scripts/checkpointVectors.ts makes today, and the TypeScript checker
 * gives each case its recorded verdict against the golden ledger (cut where the
 * case says) and refuses each invalid one with BAD_CHECKPOINT.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/checkpointVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkpointVectors, type CheckpointCase, type InvalidCheckpointCase } from '../../scripts/checkpointVectors.js';
import { parseCheckpoint } from '../../src/codecs/checkpoint.js';
import { checkLedgerAgainstCheckpoint, verifyCheckpoint } from '../../src/crypto/checkpoint.js';
import { verifyLedgerEntries } from '../../src/crypto/ledgerChain.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/checkpoint.json', import.meta.url));
const LEDGER = fileURLToPath(new URL('../../firmware-protocol/vectors/ledger.json', import.meta.url));

describe('checkpoint golden vectors', () => {
  it('are what the generator makes today', () => {
    const { json } = checkpointVectors();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, json);
    expect(readFileSync(FILE, 'utf8'), 'checkpoint.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/checkpointVectors.test.ts').toBe(json);
  });

  const vectors = JSON.parse(readFileSync(FILE, 'utf8')) as { rootPublicKey: string; cases: CheckpointCase[]; invalid: InvalidCheckpointCase[] };
  const ledger = JSON.parse(readFileSync(LEDGER, 'utf8')) as { ledger: { entries: { hex: string }[] } };
  const root = new Uint8Array(Buffer.from(vectors.rootPublicKey, 'hex'));
  const entries = ledger.ledger.entries.map((e) => new Uint8Array(Buffer.from(e.hex, 'hex')));

  it('has a truncation, a fork and a cut the checkpoint cannot see', () => {
    expect(vectors.cases.map((c) => c.verdict.problem?.code ?? 'ok')).toEqual(expect.arrayContaining(['ok', 'TRUNCATED', 'FORKED']));
    expect(vectors.cases.some((c) => c.ledgerLength !== undefined && c.verdict.ok)).toBe(true);
  });

  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const fields = verifyCheckpoint(parseCheckpoint(JSON.stringify(c.checkpoint)), root);
    const held = entries.slice(0, c.ledgerLength ?? entries.length);
    const verification = verifyLedgerEntries(held, root);
    expect(verification.ok).toBe(true);
    const verdict = checkLedgerAgainstCheckpoint(held, verification.lastSeq, verification.terminalId, fields);
    expect({ ok: verdict.ok, lastGoodSeq: verdict.lastGoodSeq, ...(verdict.problem ? { problem: { code: verdict.problem.code, seq: verdict.problem.seq } } : {}) }).toEqual(c.verdict);
  });

  it.each(vectors.invalid.map((c) => [c.name, c] as const))('refuses: %s', (_n, c) => {
    expect(() => verifyCheckpoint(parseCheckpoint(JSON.stringify(c.checkpoint)), root)).toThrow(expect.objectContaining({ code: c.error }));
  });
});
