/**
 * Integration tests: deploy to the local AWS cloud (or the endpoint in
 * AWS_ENDPOINT_URL) and execute the state machines. The global setup brings the
 * local cloud up and deploys the integration stack; it stops the cloud at the
 * end if it started it.
 */
import { defineConfig } from 'vitest/config';
import { textAssets } from './vitest.config';

export default defineConfig({
  plugins: [textAssets],
  test: {
    include: ['test/integ/**/*.test.ts'],
    globalSetup: ['test/integ/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 900_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
