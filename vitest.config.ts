import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // The suites start worker pools of their own; forks keep native modules isolated.
    pool: 'forks',
  },
});
