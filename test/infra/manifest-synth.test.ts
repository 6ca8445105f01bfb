/**
 * Tool manifests at synth time: the fixture app (`test/fixtures/manifest-app`)
 * run with `npx tsx`, as `cdk synth` runs an app, fails on a bad manifest with a
 * message naming the file, the field and the problem, and synthesises and bundles
 * the manifests' tools when they are valid (about 15 s). And a bundle of the
 * agent module, built with the text loaders, declares the tools when it runs.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/constructs/runtime-function';
import { TEXT_ASSET_EXTENSIONS } from '../../lib/text-assets';

const APP = 'test/fixtures/manifest-app/app.ts';
const AGENT_MODULE = 'test/fixtures/manifest-app/agent.ts';
const TEMPLATE = 'ManifestSynth.template.json';
const SYNTH_TIMEOUT_MS = 110_000;

const scratch: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'manifest-synth-'));
  scratch.push(dir);
  return dir;
};

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** Runs the fixture app with `MANIFEST` set to `manifest` (unset: the default manifests), into a fresh output directory. */
function synth(manifest?: string): SpawnSyncReturns<string> & { outdir: string } {
  const outdir = tempDir();
  const env: NodeJS.ProcessEnv = { ...process.env, CDK_OUTDIR: outdir };
  delete env.MANIFEST;
  if (manifest !== undefined) env.MANIFEST = manifest;
  const result = spawnSync('npx', ['tsx', APP], { cwd: PROJECT_ROOT, env, encoding: 'utf8', timeout: SYNTH_TIMEOUT_MS });
  return Object.assign(result, { outdir });
}

interface CfnResource {
  readonly Type: string;
  readonly Properties?: { readonly Description?: string; readonly Timeout?: number; readonly Code?: { readonly S3Key?: string } };
}

describe('a tool manifest at synth', () => {
  it.each([
    ['a negative budget', 'test/fixtures/manifests/bad/negative-budget.tool.yaml', ['budget.max_calls_per_session', 'expected a positive integer, got -1']],
    ['an unknown handler', 'test/fixtures/manifests/bad/unknown-handler.tool.yaml', ['implementation.handler', 'no handler named "lookupIpp" was given']],
  ])(
    'fails when the manifest has %s, naming the file, the field and the problem',
    (_, manifest, [field, problem]) => {
      const result = synth(manifest);
      expect(result.error).toBeUndefined();
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('ManifestError');
      expect(result.stderr).toContain(`${manifest}: ${field}: ${problem}`);
      expect(existsSync(path.join(result.outdir, TEMPLATE))).toBe(false);
    },
    SYNTH_TIMEOUT_MS + 10_000,
  );

  it(
    'synthesises the tools of valid manifests, one function each with the declared timeout',
    () => {
      const result = synth();
      expect(result.error).toBeUndefined();
      expect(result.status, result.stderr).toBe(0);
      const template = JSON.parse(readFileSync(path.join(result.outdir, TEMPLATE), 'utf8')) as { Resources: Record<string, CfnResource> };
      const toolFunctions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function' && r.Properties?.Description?.includes(': tool '));
      expect(toolFunctions.map((r) => [r.Properties?.Description, r.Properties?.Timeout])).toEqual(
        expect.arrayContaining([
          // An HTTP tool's function outlives its 8 s request by a second (HTTP_TOOL_RECORD_SECONDS).
          ['manifest-synth: tool search_web@1.2.0', 9],
          ['manifest-synth: tool lookup_ip@2.0.1-beta.1', 13],
        ]),
      );
      expect(toolFunctions).toHaveLength(2);
      // The tools' bundle (esbuild with the Agent construct's text loaders) embeds the manifests.
      const key = toolFunctions[0]?.Properties?.Code?.S3Key ?? '';
      const bundle = readFileSync(path.join(result.outdir, `asset.${key.replace(/\.zip$/, '')}`, 'index.js'), 'utf8');
      expect(bundle).toContain('url: https://internal-api.corp/v1/search');
      expect(bundle).toContain('handler: lookupIp');
    },
    SYNTH_TIMEOUT_MS + 10_000,
  );
});

describe('a Lambda bundle of an agent module that imports manifests', () => {
  it('embeds the manifests as text (the Agent construct’s loaders) and declares their tools', () => {
    const loader = Object.fromEntries(TEXT_ASSET_EXTENSIONS.map((ext) => [ext, 'text' as const]));
    const built = buildSync({
      entryPoints: [path.join(PROJECT_ROOT, AGENT_MODULE)],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      loader,
      logLevel: 'silent',
    });
    const code = built.outputFiles[0]?.text ?? '';
    expect(code).toContain('url: https://internal-api.corp/v1/search');
    const bundle = path.join(tempDir(), 'agent.js');
    writeFileSync(bundle, code);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.MANIFEST;
    const run = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(bundle)}).agent.tools.map((t) => [t.name, t.version, t.source])))`], { encoding: 'utf8', env });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual([
      ['search_web', '1.2.0', 'test/fixtures/manifests/search-web.tool.yaml'],
      ['lookup_ip', '2.0.1-beta.1', 'test/fixtures/manifests/lookup-ip.tool.yaml'],
    ]);
  });
});
