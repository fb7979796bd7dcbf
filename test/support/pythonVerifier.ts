/** Runs scripts/verify_ledger.py (the Python verifier) for the tests that compare it with the TypeScript one */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LedgerVerification } from '../../src/crypto/ledgerChain.js';

export const VERIFY_LEDGER_PY = fileURLToPath(new URL('../../scripts/verify_ledger.py', import.meta.url));

export function python(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('/usr/bin/python3', [VERIFY_LEDGER_PY, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The fields both verifiers must give alike (the problem's English text may differ) */
export function comparable(v: Partial<LedgerVerification> & { problem?: { seq: number; code: string } }) {
  return {
    ok: v.ok,
    entries: v.entries,
    lastSeq: v.lastSeq,
    headHash: v.headHash,
    uses: v.uses,
    releases: v.releases,
    untrustedClock: v.untrustedClock,
    terminalId: v.terminalId,
    problem: v.problem ? { seq: v.problem.seq, code: v.problem.code } : undefined,
  };
}

/** Many ledgers through the Python verifier in one run */
export function pythonVerdicts(dir: string, rootHex: string, ledgers: readonly (readonly Uint8Array[])[]): LedgerVerification[] {
  const job = join(dir, `many-${ledgers.length}.json`);
  writeFileSync(job, JSON.stringify({ root: rootHex, ledgers: ledgers.map((l) => l.map((e) => Buffer.from(e).toString('hex'))) }));
  const run = python('--many', job);
  if (run.stderr !== '') throw new Error(`verify_ledger.py --many: ${run.stderr}`);
  return JSON.parse(run.stdout) as LedgerVerification[];
}

/** A real terminal's ledger through both verifiers: the comparable verdicts of each (equal when they agree) */
export function bothVerdicts(dir: string, ledger: { entries(): Iterable<Uint8Array>; verify(): LedgerVerification; identity(): { rootPublicKey: Uint8Array } | undefined }): { ts: ReturnType<typeof comparable>; py: ReturnType<typeof comparable> } {
  const entries = [...ledger.entries()];
  const root = Buffer.from(ledger.identity()!.rootPublicKey).toString('hex');
  return { ts: comparable(ledger.verify()), py: comparable(pythonVerdicts(dir, root, [entries])[0]!) };
}
