/**
 * One error scheme (issue 11): every error src/ throws is a TallyError with a code of src/errors.ts. Fails on a
 * new `class ... extends Error` outside src/errors.ts, on a bare `throw new Error(` (the phone page's own
 * browser script aside: it runs in the phone's browser, not in Node), and on a code that nothing in src/ or
 * web/ uses (every code defined is one a user can meet).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|js)$/.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** Bare throws allowed, by file: the count there and why */
const BROWSER_SCRIPTS: Record<string, number> = { 'src/server/insurance/insurancePhonePage.ts': 1 };

describe('one error scheme', () => {
  const files = sources('src').map((path) => ({ path, text: readFileSync(join(ROOT, path), 'utf8') }));

  it('no Error subclass outside src/errors.ts', () => {
    const found = files.filter((f) => f.path !== 'src/errors.ts').flatMap((f) => [...f.text.matchAll(/class (\w+) extends Error\b/g)].map((m) => `${f.path}: ${m[1]}`));
    expect(found).toEqual([]);
    // the check can fail: TallyError itself is found
    expect(files.find((f) => f.path === 'src/errors.ts')!.text).toMatch(/class TallyError extends Error\b/);
  });

  it('no bare throw new Error( in src/: each is a TallyError with its code', () => {
    const found = files.flatMap((f) => {
      const n = f.text.split('throw new Error(').length - 1;
      return n > (BROWSER_SCRIPTS[f.path] ?? 0) ? [`${f.path}: ${n}`] : [];
    });
    expect(found).toEqual([]);
    for (const [path, n] of Object.entries(BROWSER_SCRIPTS)) expect(files.find((f) => f.path === path)!.text.split('throw new Error(').length - 1, path).toBe(n);
  });

  it('every code of src/errors.ts is used in src/ or web/', () => {
    const others = [...files.filter((f) => f.path !== 'src/errors.ts'), ...sources('web').map((path) => ({ path, text: readFileSync(join(ROOT, path), 'utf8') }))].map((f) => f.text).join('\n');
    const own = files.find((f) => f.path === 'src/errors.ts')!.text.replace(/^ {2}[A-Z0-9_]+: info\(.*$/gm, '');
    const unused = Object.keys(ErrorCodes).filter((name) => !new RegExp(`\\b${name}\\b`).test(others) && !new RegExp(`\\b${name}\\b`).test(own));
    expect(unused).toEqual([]);
  });
});
