/** Compiles a crash test's child process and what it imports into a private folder under dist/ (node_modules resolve from there) */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Builds test/crash/<name>.ts; returns the compiled file and a function that removes the build */
export function buildWorker(name: string): { worker: string; remove(): void } {
  const buildDir = join(REPO, 'dist', `.${name}-${process.pid}`);
  const worker = join(buildDir, 'test', 'crash', `${name}.js`);
  const tsc = join(REPO, 'node_modules', '.bin', 'tsc');
  const args = ['--ignoreConfig', '--outDir', buildDir, '--rootDir', REPO, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--lib', 'ES2023', '--types', 'node', '--skipLibCheck', '--esModuleInterop', '--resolveJsonModule', join(REPO, 'test', 'crash', `${name}.ts`)];
  const result = spawnSync(tsc, args, { encoding: 'utf8', cwd: REPO });
  if (!existsSync(worker)) throw new Error(`worker did not compile:\n${result.stdout}${result.stderr}`);
  return { worker, remove: () => rmSync(buildDir, { recursive: true, force: true }) };
}
