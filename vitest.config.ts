import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests bind their own loopback ports (port 0) and own data dirs, so files may run in parallel.
    pool: 'forks',
    maxWorkers: 2,
  },
});
