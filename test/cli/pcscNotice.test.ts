/** npm install's postinstall says when pcsclite was left out, and how to get it; silent when it loads */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = join(process.cwd(), 'scripts', 'pcscNotice.mjs');
const bare = mkdtempSync(join(tmpdir(), 'tally-pcsc-notice-'));
afterAll(() => rmSync(bare, { recursive: true, force: true }));

describe('postinstall notice for pcsclite', () => {
  it('names libpcsclite-dev and scripts/setup.sh when pcsclite is missing, and does not fail the install', () => {
    // a copy of the script where no node_modules holds pcsclite: as after npm dropped it
    copyFileSync(script, join(bare, 'pcscNotice.mjs'));
    const r = spawnSync(process.execPath, [join(bare, 'pcscNotice.mjs')], { cwd: bare, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/pcsclite, the PC\/SC card reader addon, was not installed \(its build needs libpcsclite-dev\)/);
    expect(r.stderr).toContain('bash scripts/setup.sh');
    expect(r.stderr).toContain('npm run ensure-native');
  });

  it('says nothing where pcsclite loads', () => {
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
