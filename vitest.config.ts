/**
 * Unit and CDK assertion tests. Text assets (`TEXT_ASSET_EXTENSIONS`: `.log`,
 * `.yaml`, `.cedar`...) load as text, as esbuild's text loader bundles them.
 */
import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vitest/config';
import { TEXT_ASSET_EXTENSIONS } from './lib/text-assets';

/** Loads text assets (`TEXT_ASSET_EXTENSIONS`) as a default-exported string. */
export const textAssets: Plugin = {
  name: 'text-assets',
  enforce: 'pre',
  load(id) {
    if (TEXT_ASSET_EXTENSIONS.some((ext) => id.endsWith(ext))) return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
    return undefined;
  },
};

export default defineConfig({
  plugins: [textAssets],
  test: {
    include: ['test/unit/**/*.test.ts', 'test/infra/**/*.test.ts'],
    testTimeout: 60_000,
    // CDK assertion suites synthesise (and bundle) whole stacks in beforeAll.
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
