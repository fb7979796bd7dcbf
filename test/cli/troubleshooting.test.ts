/**
 * docs/troubleshooting.md lists every code of src/errors.ts, with the
 * operator messages as errors.ts has them today. UPDATE_DOCS=1 rewrites it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { troubleshootingMarkdown } from '../../scripts/troubleshooting.js';

const DOC = fileURLToPath(new URL('../../docs/troubleshooting.md', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));

describe('troubleshooting table', () => {
  it('is generated from src/errors.ts and up to date', () => {
    const expected = troubleshootingMarkdown();
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, expected);
    const actual = readFileSync(DOC, 'utf8');
    expect(actual, 'docs/troubleshooting.md is stale: UPDATE_DOCS=1 npx vitest run test/cli/troubleshooting.test.ts').toBe(expected);
  });

  it('has one row per code, with its number and English message', () => {
    const rows = readFileSync(DOC, 'utf8').split('\n').filter((line) => line.startsWith('| `'));
    expect(rows).toHaveLength(Object.keys(ErrorCodes).length);
    for (const [name, code] of Object.entries(ErrorCodes)) {
      const row = rows.find((r) => r.startsWith(`| \`${name}\` |`));
      expect(row, name).toBeDefined();
      expect(row).toContain(` ${code.code} `);
      expect(row).toContain(code.en.replace(/\|/g, '\\|'));
      const cells = row!.split(' | ');
      expect(cells[3]!.length, `${name} cause`).toBeGreaterThan(20);
      expect(cells[4]!.length, `${name} remedy`).toBeGreaterThan(10);
    }
  });

  it('is linked from the README', () => {
    expect(readFileSync(README, 'utf8')).toContain('docs/troubleshooting.md');
  });
});
