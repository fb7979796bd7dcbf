/** Temporary folders and cleanups that a test file releases after each test (once its databases are closed) */
import { rmSync } from 'node:fs';
import { afterEach } from 'vitest';
import { tempDir } from '../../src/scenario/CardWorld.js';

export function useScratch(): { cleanups: (() => void)[]; scratch: (prefix?: string) => string } {
  const cleanups: (() => void)[] = [];
  const scratchDirs: string[] = [];
  afterEach(() => {
    for (const fn of cleanups.splice(0)) fn();
    for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    cleanups,
    scratch: (prefix) => {
      const dir = tempDir(prefix);
      scratchDirs.push(dir);
      return dir;
    },
  };
}
