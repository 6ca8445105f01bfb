/**
 * Lets the CDK app load agent modules that import text assets (`import text from
 * './data/x.log'`, `import manifest from './search.tool.yaml'`), as esbuild's
 * `text` loader does in the Lambda bundles and the vitest config's plugin does in
 * tests. Import it before any agent module.
 */
import * as fs from 'node:fs';

/**
 * Extensions loaded as text: the default export is the file's content (UTF-8).
 * The one list read by this require hook, the Agent construct's esbuild loaders
 * and the vitest config: data files (`.log`, `.txt`, `.md`), tool manifests
 * (`.yaml`, `.yml`) and Cedar policies (`.cedar`).
 */
export const TEXT_ASSET_EXTENSIONS = ['.log', '.txt', '.md', '.yaml', '.yml', '.cedar'] as const;

type Loader = (module: { exports: unknown }, filename: string) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const extensions = (require('node:module') as { _extensions: Record<string, Loader> })._extensions;
for (const ext of TEXT_ASSET_EXTENSIONS) {
  extensions[ext] ??= (module, filename) => {
    module.exports = { __esModule: true, default: fs.readFileSync(filename, 'utf8') };
  };
}
