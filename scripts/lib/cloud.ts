/**
 * Client-side plumbing shared by the CLI, the integration tests and the
 * benchmarks: the local cloud's lifecycle, deploying a CDK app, reading stack
 * outputs, and the endpoint configuration. The runtime itself knows none of this:
 * the endpoint is configuration (AWS_ENDPOINT_URL), as for any AWS SDK client.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
const LOCAL_CLOUD = path.join(ROOT, 'scripts', 'local-cloud.sh');

/** Settings of the local cloud (MiniStack on 127.0.0.1). */
export const LOCAL_ENDPOINT = `http://127.0.0.1:${process.env.LOCAL_CLOUD_PORT ?? '4566'}`;
const LOCAL_ENV = {
  AWS_ENDPOINT_URL: LOCAL_ENDPOINT,
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  CDK_DISABLE_CLI_TELEMETRY: 'true',
};

/**
 * Whether this process targets the local cloud: true unless `AGENT_RUNTIME_TARGET=aws`
 * (a real account, with the ambient credentials) or AWS_ENDPOINT_URL names another endpoint
 * (e.g. LocalStack).
 */
export function targetsLocalCloud(): boolean {
  if (process.env.AGENT_RUNTIME_TARGET === 'aws') return false;
  return process.env.AWS_ENDPOINT_URL === undefined || process.env.AWS_ENDPOINT_URL === LOCAL_ENDPOINT;
}

/** Points this process's AWS SDK at the local cloud (when targeted). */
export function useLocalCloudEnv(): void {
  if (!targetsLocalCloud()) return;
  for (const [k, v] of Object.entries(LOCAL_ENV)) process.env[k] = v;
}

function run(cmd: string, args: string[], opts: { quiet?: boolean } = {}): string {
  const out = spawnSync(cmd, args, { cwd: ROOT, env: process.env, encoding: 'utf8', stdio: opts.quiet ? 'pipe' : ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 });
  if (out.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${out.status})\n${out.stdout ?? ''}${opts.quiet ? (out.stderr ?? '') : ''}`);
  }
  return out.stdout;
}

/** Starts the local cloud unless it runs. @returns whether this call started it. */
export function localCloudUp(): boolean {
  const before = run('bash', [LOCAL_CLOUD, 'status'], { quiet: true }).trim();
  run('bash', [LOCAL_CLOUD, 'up']);
  return !before.startsWith('running');
}

/** Stops the local cloud (its whole process group). */
export function localCloudDown(): void {
  run('bash', [LOCAL_CLOUD, 'down']);
}

/** Stack outputs, as `cdk deploy --outputs-file` wrote them. */
export type StackOutputs = Record<string, string>;

/**
 * Deploys a CDK app's stack with the pinned aws-cdk CLI (bootstrapping first, once per endpoint).
 * Reuses the deployed stack when nothing changed (CDK skips an unchanged stack).
 * @param app the `--app` command, e.g. `npx tsx bin/app.ts`
 * @returns the stack's outputs
 */
export function deploy(app: string, stackName: string, log: (line: string) => void = () => undefined): StackOutputs {
  const stateDir = path.join(ROOT, '.local-cloud');
  fs.mkdirSync(stateDir, { recursive: true });
  const cdk = path.join(ROOT, 'node_modules', '.bin', 'cdk');
  const outDir = path.join('cdk.out', stackName);
  const bootstrapped = path.join(stateDir, `bootstrapped-${(process.env.AWS_ENDPOINT_URL ?? 'aws').replace(/[^A-Za-z0-9]/g, '_')}`);
  if (targetsLocalCloud() && !fs.existsSync(bootstrapped)) {
    log('bootstrapping the CDK environment');
    run(cdk, ['bootstrap', 'aws://000000000000/us-east-1', '--app', app, '--output', outDir, '--progress', 'events'], { quiet: true });
    fs.writeFileSync(bootstrapped, new Date().toISOString());
  }
  const outputsFile = path.join(stateDir, `${stackName}-outputs.json`);
  log(`deploying ${stackName} (cdk deploy)`);
  run(cdk, ['deploy', stackName, '--app', app, '--output', outDir, '--require-approval', 'never', '--outputs-file', outputsFile, '--progress', 'events'], { quiet: true });
  const all = JSON.parse(fs.readFileSync(outputsFile, 'utf8')) as Record<string, StackOutputs>;
  const outputs = all[stackName];
  if (!outputs) throw new Error(`no outputs for ${stackName} in ${outputsFile}`);
  return outputs;
}

/**
 * The invoke URL of a REST API from its `execute-api` URL: unchanged on AWS; on an
 * emulator endpoint, the LocalStack-style path `{endpoint}/restapis/{id}/{stage}/_user_request_/`.
 */
export function apiBaseUrl(apiUrl: string): string {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) return apiUrl;
  const m = /^https:\/\/([a-z0-9]+)\.execute-api\.[^/]+\/([^/]+)\/?$/.exec(apiUrl);
  if (!m) throw new Error(`unexpected API URL ${apiUrl}`);
  return `${endpoint.replace(/\/$/, '')}/restapis/${m[1]}/${m[2]}/_user_request_/`;
}

/** An SQS queue URL reachable from here (emulators answer with `localhost`; use 127.0.0.1). */
export function queueUrl(url: string): string {
  return process.env.AWS_ENDPOINT_URL ? url.replace('//localhost:', '//127.0.0.1:') : url;
}
