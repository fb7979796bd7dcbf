/**
 * The second checker of the server's checkpoints (scripts/verify_checkpoint.py,
 * Python 3 with Debian's python3-cryptography, written from ledger-format.md
 * 8.3) agrees with the TypeScript one on every golden case, refuses every
 * invalid one, and over its command line names a cut ledger TRUNCATED with the
 * last good seq (exit 4) and a forged checkpoint BAD_CHECKPOINT (exit 3).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../src/scenario/CardWorld.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/verify_checkpoint.py', import.meta.url));
const VECTORS = fileURLToPath(new URL('../../firmware-protocol/vectors/checkpoint.json', import.meta.url));
const LEDGER = fileURLToPath(new URL('../../firmware-protocol/vectors/ledger.json', import.meta.url));

function python(...args: string[]): { status: number | null; stdout: string } {
  const run = spawnSync('/usr/bin/python3', [SCRIPT, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout + run.stderr };
}

describe('the Python checkpoint checker', () => {
  const vectors = JSON.parse(readFileSync(VECTORS, 'utf8')) as { rootPublicKey: string; cases: { name: string; checkpoint: unknown }[]; invalid: { name: string; checkpoint: unknown }[] };

  it('agrees with every golden case and refuses every invalid one', () => {
    const run = python('--vectors', VECTORS);
    expect(run.stdout).toContain(`${vectors.cases.length + vectors.invalid.length} cases, 0 failures`);
    expect(run.status).toBe(0);
    for (const c of [...vectors.cases, ...vectors.invalid]) expect(run.stdout).toMatch(new RegExp(`^ok .*${c.name}$`, 'm'));
  });

  it('names a cut ledger TRUNCATED with its last good seq, and refuses a forged checkpoint', () => {
    const dir = tempDir('tally-pycheckpoint-');
    const ledger = JSON.parse(readFileSync(LEDGER, 'utf8')) as { ledger: { entries: { hex: string }[] } };
    const entries = join(dir, 'entries.hex');
    writeFileSync(entries, ledger.ledger.entries.slice(0, 25).map((e) => e.hex).join('\n'));
    const head = join(dir, 'head.json');
    writeFileSync(head, JSON.stringify(vectors.cases.find((c) => c.name === 'head')!.checkpoint));
    const cut = python('--checkpoint', head, '--root', vectors.rootPublicKey, '--entries', entries, '--json');
    expect(cut.status).toBe(4);
    expect(JSON.parse(cut.stdout)).toMatchObject({ ok: false, lastGoodSeq: 25, problem: { code: 'TRUNCATED', seq: 26 } });
    const forged = join(dir, 'forged.json');
    writeFileSync(forged, JSON.stringify(vectors.invalid.find((c) => c.name === 'certificate-foreign-root')!.checkpoint));
    const refused = python('--checkpoint', forged, '--root', vectors.rootPublicKey, '--entries', entries);
    expect(refused.status).toBe(3);
    expect(refused.stdout).toMatch(/^BAD_CHECKPOINT: .*not certified/m);
  });
});
