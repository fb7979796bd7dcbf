/**
 * The layer rule holds at every folder depth (probe imports linted as files
 * of the layers they would live in), every folder of src/ belongs to a layer,
 * and docs/architecture.md shows the table lint/layers.mjs enforces.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM module without types
import { layerOf, layersMarkdown } from '../../lint/layers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOC = join(ROOT, 'docs/architecture.md');
const eslint = new ESLint({ cwd: ROOT });

async function lintProbe(filePath: string, specifier: string): Promise<string[]> {
  const code = `import * as probe from '${specifier}';\nexport const used = probe;\n`;
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, filePath) });
  return result!.messages.filter((m) => m.ruleId === 'tally/layers').map((m) => m.message);
}

describe('layer rules', () => {
  it.each([
    ['src/server/ingest/probe.ts', '../../ledger/Ledger.js', 'server must not import ledger'],
    ['src/readers/serial/probe.ts', '../../terminal/Terminal.js', 'readers/serial must not import terminal'],
    ['src/server/store/probe.ts', '../../sync/SyncClient.js', 'server must not import sync'],
    ['src/terminal/probe.ts', '../readers/serial/SerialReaderBackend.js', 'terminal must not import readers/serial'],
    ['src/codecs/mqtt/probe.ts', 'node:fs', "codecs must not use the package 'node:fs'"],
    ['src/ledger/deep/er/probe.ts', '../../../sync/SyncClient.js', 'ledger must not import sync'],
    ['src/server/probe.ts', '../cli/tally.js', 'server must not import cli'],
    ['src/daemon/probe.ts', '../scenario/CardWorld.js', 'daemon must not import scenario'],
  ])('%s importing %s fails lint', async (file, specifier, message) => {
    const messages = await lintProbe(file, specifier);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(message);
  });

  it.each([
    ['src/codecs/mqtt/probe.ts', '../../errors.js'],
    ['src/codecs/firmware/probe.ts', '../tlv.js'],
    ['src/server/ingest/probe.ts', '../../crypto/chain.js'],
    ['src/terminal/probe.ts', '../readers/CardReader.js'],
    ['src/cli/commands/probe.ts', '../../scenario/demo.js'],
  ])('%s importing %s passes', async (file, specifier) => {
    expect(await lintProbe(file, specifier)).toEqual([]);
  });

  it('every folder under src/ belongs to a layer', () => {
    const folders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        folders.push(relative(join(ROOT, 'src'), join(dir, entry.name)));
        walk(join(dir, entry.name));
      }
    };
    walk(join(ROOT, 'src'));
    expect(folders.length).toBeGreaterThan(10);
    expect(folders.filter((f) => layerOf(`${f}/x.ts`) === undefined)).toEqual([]);
  });

  it('docs/architecture.md shows the table lint/layers.mjs enforces', () => {
    const doc = readFileSync(DOC, 'utf8');
    const begin = '<!-- layers:begin -->\n';
    const end = '<!-- layers:end -->';
    const start = doc.indexOf(begin);
    const stop = doc.indexOf(end);
    expect(start, 'architecture.md lost its layers markers').toBeGreaterThan(0);
    const expected = `${begin}${layersMarkdown()}\n${end}`;
    const actual = doc.slice(start, stop + end.length);
    if (process.env.UPDATE_DOCS === '1' && actual !== expected) writeFileSync(DOC, doc.replace(actual, expected));
    else expect(actual, 'docs/architecture.md is stale: UPDATE_DOCS=1 npx vitest run test/lint/layers.test.ts').toBe(expected);
  });
});
