/**
 * The audit bundle's golden vectors (firmware-protocol/vectors/audit-bundle.json)
 * are what scripts/auditBundleVectors.ts makes today; the TypeScript verifier
 * gives each bundle its recorded verdict and each comparison its differences,
 * and the Python verifier (scripts/verify_ledger.py --bundle-vectors) agrees.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/auditBundleVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { auditBundleVectorsJson, bundleVerdictSummary, comparisonSummary } from '../../scripts/auditBundleVectors.js';
import { parseAuditBundle } from '../../src/codecs/auditBundle.js';
import { compareBundles, verifyAuditBundle } from '../../src/crypto/auditBundle.js';
import { python } from '../support/pythonVerifier.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/audit-bundle.json', import.meta.url));

interface Vectors {
  rootPublicKey: string;
  bundles: { name: string; bundle: unknown; verdict: Record<string, unknown> }[];
  comparisons: ({ terminal: string; server: string } & Record<string, unknown>)[];
}

describe('audit bundle golden vectors', () => {
  it('are what the generator makes today', () => {
    const expected = auditBundleVectorsJson();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, expected);
    expect(readFileSync(FILE, 'utf8'), 'stale: UPDATE_VECTORS=1 npx vitest run test/codecs/auditBundleVectors.test.ts').toBe(expected);
  });

  it('the TypeScript verifier gives every bundle its verdict and every comparison its differences', () => {
    const v = JSON.parse(readFileSync(FILE, 'utf8')) as Vectors;
    const root = new Uint8Array(Buffer.from(v.rootPublicKey, 'hex'));
    const byName = new Map(v.bundles.map((b) => [b.name, parseAuditBundle(JSON.stringify(b.bundle))]));
    for (const b of v.bundles) expect({ name: b.name, verdict: bundleVerdictSummary(verifyAuditBundle(byName.get(b.name)!, root)) }).toEqual({ name: b.name, verdict: b.verdict });
    expect(v.bundles.filter((b) => b.verdict.ok).map((b) => b.name)).toEqual(['server', 'terminal', 'server-behind', 'server-march', 'terminal-march', 'server-format2', 'terminal-format2']);
    expect(v.bundles.find((b) => b.name === 'server-gap')!.verdict).toMatchObject({ ok: false, ledger: { ok: false, entries: 16, problem: { code: 'GAP', seq: 17 } }, checkpoint: { ok: true }, statement: { ok: true } });
    for (const c of v.comparisons) expect(comparisonSummary(c.terminal, c.server, compareBundles(byName.get(c.terminal)!, byName.get(c.server)!))).toEqual(c);
  });

  it('the Python verifier agrees on every bundle', () => {
    const run = python('--bundle-vectors', FILE);
    const v = JSON.parse(readFileSync(FILE, 'utf8')) as Vectors;
    expect(run.stdout).toContain(`${v.bundles.length} bundles, ${v.comparisons.length} comparisons, 0 failures`);
    expect(run.status).toBe(0);
  });
});
