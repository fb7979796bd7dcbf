import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // suites that start pcscd or bind fixed system resources run one file at a time
    fileParallelism: true,
    pool: 'forks',
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
