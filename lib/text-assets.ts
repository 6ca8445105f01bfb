/**
 * Lets the CDK app load agent modules that import text assets (`import text from
 * './data/x.log'`), as esbuild's `text` loader does in the Lambda bundles.
 * Import it before any agent module.
 */
import * as fs from 'node:fs';

/** Extensions loaded as text (the same list as the Agent construct's esbuild loaders). */
export const TEXT_ASSET_EXTENSIONS = ['.log', '.txt', '.md'] as const;

type Loader = (module: { exports: unknown }, filename: string) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const extensions = (require('node:module') as { _extensions: Record<string, Loader> })._extensions;
for (const ext of TEXT_ASSET_EXTENSIONS) {
  extensions[ext] ??= (module, filename) => {
    module.exports = { __esModule: true, default: fs.readFileSync(filename, 'utf8') };
  };
}
