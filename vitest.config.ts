import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // expect.poll's own default is 1 s; under a loaded 2-core machine a first delivery also starts the delivery worker
    // thread (a few hundred ms): waiting longer for a condition that will come costs nothing when it comes at once
    expect: { poll: { timeout: 10_000 } },
    // Tests bind their own loopback ports (port 0) and own data dirs, so files may run in parallel.
    pool: 'forks',
    maxWorkers: 2,
  },
});
