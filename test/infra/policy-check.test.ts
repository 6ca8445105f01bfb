/**
 * Synth-time checks of Cedar policies (file, line, policy and problem in every
 * message), and the `cedar` bundle of RuntimeFunction: Cedar's WebAssembly
 * module is copied beside the bundle, and the bundle evaluates policies.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, policySchema } from '../../lambdas/core/policy';
import { CEDAR_WASM_FILE, PROJECT_ROOT, RuntimeFunction } from '../../lib/constructs/runtime-function';
import { checkPolicies, policyProblems } from '../../lib/policy-check';
import { POLICY_TOOLS, policyFile } from '../fixtures/policies/tools';
import { CDK_JSON_CONTEXT } from './support/stack';

const schema = policySchema(POLICY_TOOLS);
const tools = POLICY_TOOLS.map((t) => t.name);
const inline = (text: string) => ({ text, source: 'override.cedar' });

describe('checkPolicies', () => {
  it('accepts seed 003\'s policies against the schema of the agent\'s tools', () => {
    expect(policyProblems(policyFile('database-query.cedar'), schema, { tools })).toEqual([]);
    expect(() => checkPolicies(policyFile('database-query.cedar'), schema, { tools })).not.toThrow();
  });

  it('accepts the default policies', () => {
    expect(() => checkPolicies(inline(DEFAULT_POLICIES), schema, { tools })).not.toThrow();
  });

  it('fails when a policy reads an attribute the schema does not declare, naming file, line and policy', () => {
    expect(() => checkPolicies(policyFile('undeclared-attribute.cedar'), schema)).toThrow(
      'test/fixtures/policies/undeclared-attribute.cedar:4: policy0: attribute `role` on entity type `User` not found (did you mean `tenant`?)',
    );
  });

  it('fails on a syntax error, naming file and line (offsets counted in bytes, past non-ASCII text)', () => {
    expect(policyProblems(policyFile('syntax-error.cedar'), schema)).toEqual([
      expect.stringMatching(/^test\/fixtures\/policies\/syntax-error\.cedar:4: failed to parse policies from string: unexpected token `}`: expected /),
    ]);
  });

  it('fails when a policy reads an optional argument without `has`, naming the policy by its @id', () => {
    expect(() => checkPolicies(policyFile('unguarded-argument.cedar'), schema)).toThrow(
      /^test\/fixtures\/policies\/unguarded-argument\.cedar:3: select-only: unable to guarantee safety of access to optional attribute `arguments\.operation` .*\(try testing for the attribute's presence with `context\.arguments has operation && \.\.`\)$/,
    );
  });

  it('fails when an argument no tool declares is read, or with the wrong type', () => {
    const text = [
      'permit (principal, action == Action::"callTool", resource)',
      'when { context.arguments has table && context.arguments.table == "users" };',
      '',
      'permit (principal, action == Action::"callTool", resource)',
      'when { context.arguments has limit && context.arguments.limit == "10" };',
    ].join('\n');
    const problems = policyProblems(inline(text), policySchema([POLICY_TOOLS[0]!, POLICY_TOOLS[1]!]));
    expect(problems).toEqual([
      'override.cedar:1: policy0: policy is impossible: the policy expression evaluates to false for all valid requests',
      expect.stringMatching(/^override\.cedar:5: policy1: the types Long and String are not compatible/),
    ]);
  });

  it('fails on an unknown action and lists every problem, one line each', () => {
    const text = 'permit (principal, action == Action::"runTool", resource);\n\npermit (principal, action, resource) when { principal.role == "x" };';
    const message = (() => {
      try {
        checkPolicies(inline(text), schema);
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message.split('\n')).toEqual([
      expect.stringMatching(/^override\.cedar:1: policy0: unrecognized action `Action::"runTool"`/),
      expect.stringMatching(/^override\.cedar:3: policy1: attribute `role` on entity type `User` not found/),
    ]);
  });

  it('fails on a template (policies with slots), naming the file', () => {
    expect(() => checkPolicies(inline('permit (principal == ?principal, action, resource);'), schema)).toThrow('override.cedar: static policy set includes a template');
  });

  it('fails when two policies share an @id', () => {
    const text = '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);';
    expect(policyProblems(inline(text), schema)).toEqual(['override.cedar: policy1: @id("a") is also the id of policy0']);
  });

  it('fails, given the tool names, when a policy names a tool the agent does not have; comments and strings do not count', () => {
    const text = [
      '// Tool::"commented_out" is not a reference',
      'permit (principal, action, resource == Tool::"databse_query")',
      'when { resource.agent != "Tool::\\"in_a_string\\"" };',
      'permit (principal, action, resource) when { resource in [Tool :: "list_tables", Tool::"drop_tables"] };',
    ].join('\n');
    expect(policyProblems(inline(text), schema, { tools })).toEqual([
      'override.cedar:2: Tool::"databse_query" is not a tool of the agent (its tools: database_query, list_tables, drop_table)',
      'override.cedar:4: Tool::"drop_tables" is not a tool of the agent (its tools: database_query, list_tables, drop_table)',
    ]);
    expect(policyProblems(inline(text), schema)).toEqual([]);
  });
});

describe('RuntimeFunction: cedar', () => {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'cedar-bundle-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('bundles Cedar\'s WebAssembly module beside index.js, and the bundle evaluates policies', () => {
    // Bundling on (the other infra tests skip it): esbuild runs locally.
    const app = new App({ outdir, context: CDK_JSON_CONTEXT });
    const stack = new Stack(app, 'CedarBundle');
    new RuntimeFunction(stack, 'Cedar', {
      entry: path.join(PROJECT_ROOT, 'test/fixtures/policies/cedar-handler.ts'),
      description: 'Cedar bundle test',
      serviceName: 'cedar-bundle-test',
      loader: { '.cedar': 'text' },
      cedar: true,
    });
    app.synth();
    const assets = readdirSync(outdir).filter((d) => d.startsWith('asset.') && statSync(path.join(outdir, d)).isDirectory());
    expect(assets).toHaveLength(1);
    const bundle = path.join(outdir, assets[0]!);
    expect(readdirSync(bundle).sort()).toEqual(['cedar_wasm_bg.wasm', 'index.js', 'index.js.map']);
    expect(statSync(path.join(bundle, 'cedar_wasm_bg.wasm')).size).toBe(statSync(path.join(PROJECT_ROOT, CEDAR_WASM_FILE)).size);

    const script = `require(${JSON.stringify(path.join(bundle, 'index.js'))}).handler().then((r) => process.stdout.write(JSON.stringify(r)))`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: os.tmpdir(), encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      dbaSelect: { allowed: true, policies: ['dba-selects-in-production'], errors: [] },
      dbaDelete: { allowed: false, policies: [], errors: [] },
      analystSelect: { allowed: false, policies: [], errors: [] },
    });
  });
});
