/** Unit and CDK assertion tests. `.log` files load as text, as esbuild's text loader bundles them. */
import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vitest/config';

/** Loads text assets (`.log`) as a default-exported string. */
export const textAssets: Plugin = {
  name: 'text-assets',
  enforce: 'pre',
  load(id) {
    if (id.endsWith('.log')) return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
    return undefined;
  },
};

export default defineConfig({
  plugins: [textAssets],
  test: {
    include: ['test/unit/**/*.test.ts', 'test/infra/**/*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
