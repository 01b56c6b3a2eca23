import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['server/src/**/*.test.ts', 'scripts/**/*.test.ts', 'viewer/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'viewer/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: run files in parallel but not more than the machine has.
    maxWorkers: 2,
    // Collects every server log line of the run and fails it if one names a patient of the test corpus.
    globalSetup: ['server/src/test-support/log-phi-global.ts'],
  },
});
