/**
 * Tool manifests: what a valid manifest maps to, what the converted schemas
 * accept, and that every kind of mistake fails naming the file, the field and
 * the problem.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { TASK_RETRY } from '../../../lambdas/core/constants';
import { defineTool, toolSpec, type ToolDefinition } from '../../../lambdas/core/define';
import { ManifestError, ToolManifestSchema, toolFromManifest, toolsFromManifests, type ToolHandler } from '../../../lambdas/core/manifest';
import listAlertsText from '../../fixtures/manifests/list-alerts.tool.yaml';
import lookupIpText from '../../fixtures/manifests/lookup-ip.tool.yaml';
import minimalText from '../../fixtures/manifests/minimal.tool.yaml';
import searchWebText from '../../fixtures/manifests/search-web.tool.yaml';

const FIXTURES = 'test/fixtures/manifests';
const lookupIp = async (input: { ip: string }) => ({ ip: input.ip, owner: null });
const getTime = async () => ({ now: '2026-01-01T00:00:00Z' });
const HANDLERS: Readonly<Record<string, ToolHandler>> = { lookupIp, getTime };

const load = (text: string, file: string, handlers = HANDLERS): ToolDefinition => toolFromManifest(text, { source: `${FIXTURES}/${file}`, handlers });

/** The error a manifest fails with. @throws Error when it loads. */
function failure(text: string, source = 'tools/x.tool.yaml', handlers = HANDLERS): ManifestError {
  try {
    toolFromManifest(text, { source, handlers });
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    return err as ManifestError;
  }
  throw new Error(`${source} loaded`);
}

/** A bad fixture's error (`test/fixtures/manifests/bad/<file>`). */
const badFixture = (file: string): ManifestError => {
  const source = `${FIXTURES}/bad/${file}`;
  return failure(readFileSync(path.resolve(source), 'utf8'), source);
};

/** A valid handler manifest with `extra` appended (YAML lines), for one-problem cases. */
const withLines = (...extra: string[]): string =>
  ['name: get_time', 'version: 1.0.0', 'description: Returns the time.', 'input_schema: { type: object }', 'output_schema: { type: object }', 'implementation: { handler: getTime }', ...extra, ''].join('\n');

/** A valid HTTP manifest whose `implementation` and `input_schema` are given. */
const httpManifest = (implementation: string, inputSchema = '{ type: object }'): string =>
  ['name: search_web', 'version: 1.0.0', 'description: Searches.', `input_schema: ${inputSchema}`, 'output_schema: { type: object }', `implementation: ${implementation}`, ''].join('\n');

describe('toolFromManifest: an HTTP tool', () => {
  const tool = load(searchWebText, 'search-web.tool.yaml');

  it('maps name, version, description, source and the endpoint with the timeout', () => {
    expect(tool).toMatchObject({ name: 'search_web', version: '1.2.0', description: 'Searches the internal index.', source: `${FIXTURES}/search-web.tool.yaml` });
    expect(tool.http).toEqual({ url: 'https://internal-api.corp/v1/search', method: 'POST', headers: { 'x-api-version': '1' }, timeoutMs: 8000 });
    expect(tool.handler).toBeUndefined();
    expect(tool.timeoutSeconds).toBe(8);
  });

  it('maps retry, budget, idempotency, approval and policy', () => {
    expect(tool.retry).toEqual({ maxAttempts: 3, intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 20, jitter: 'full' });
    expect(tool.budget).toEqual({ callsPerSession: 20, costPerCallUsd: 0.0005 });
    expect(tool.idempotent).toBe(true);
    expect(tool.needsApproval).toBe(false);
    expect(tool.tags).toEqual(['web', 'external']);
    expect(tool.classification).toBe('internal');
  });

  it('shows the model the input schema as written', () => {
    const written = (parse(searchWebText) as { input_schema: unknown }).input_schema;
    expect(toolSpec(tool)).toEqual({ name: 'search_web', description: 'Searches the internal index.', inputSchema: written });
  });

  it('accepts the arguments the input schema allows and rejects the others', () => {
    expect(tool.input.safeParse({ query: 'ssh brute force' }).success).toBe(true);
    expect(tool.input.safeParse({ query: 'ssh', max_results: 50 }).success).toBe(true);
    expect(tool.input.safeParse({}).success).toBe(false);
    expect(tool.input.safeParse({ query: '' }).success).toBe(false);
    expect(tool.input.safeParse({ query: 'ssh', max_results: 0 }).success).toBe(false);
    expect(tool.input.safeParse({ query: 'ssh', max_results: 1.5 }).success).toBe(false);
    expect(tool.input.safeParse({ query: 'ssh', page: 2 }).success).toBe(false);
    expect(tool.input.safeParse({ query: 42 }).success).toBe(false);
  });

  it('validates results against the output schema', () => {
    expect(tool.output.safeParse({ results: [{ title: 'a' }], total_count: 1 }).success).toBe(true);
    expect(tool.output.safeParse({ results: ['a'], total_count: 1 }).success).toBe(false);
    expect(tool.output.safeParse({ results: [] }).success).toBe(false);
  });

  it('loads a GET tool, whose omitted timeout leaves the HTTP timeout to the tool timeout', () => {
    const alerts = load(listAlertsText, 'list-alerts.tool.yaml');
    expect(alerts.http).toEqual({ url: 'http://alerts.internal:8080/v2/alerts?state=open', method: 'GET' });
    expect(alerts.timeoutSeconds).toBe(30);
    // Only max_delay_ms given: the other retry fields keep their defaults.
    expect(alerts.retry).toEqual({ maxAttempts: TASK_RETRY.maxAttempts + 1, intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 60, jitter: 'full' });
    // A `default` applies; without additionalProperties: false, extra keys pass.
    expect(alerts.input.parse({ service: 'ssh' })).toEqual({ service: 'ssh', limit: 10 });
    expect(alerts.input.safeParse({ service: 'ssh', region: 'eu' }).success).toBe(true);
  });
});

describe('toolFromManifest: a handler tool', () => {
  const tool = load(lookupIpText, 'lookup-ip.tool.yaml');

  it('binds the named handler', async () => {
    expect(tool.handler).toBe(lookupIp);
    expect(tool.http).toBeUndefined();
  });

  it('maps a fixed backoff, rounding intervals and timeouts up to whole seconds', () => {
    // initial_interval_ms 2500 → 3 s; max_delay_ms omitted → the default 20 s; jitter omitted → full.
    expect(tool.retry).toEqual({ maxAttempts: 5, intervalSeconds: 3, backoffRate: 1, maxDelaySeconds: 20, jitter: 'full' });
    expect(tool.timeoutSeconds).toBe(13);
    expect(tool).toMatchObject({ version: '2.0.1-beta.1', needsApproval: true, idempotent: false, classification: 'confidential', tags: [] });
    expect(tool.budget).toBeUndefined();
  });

  it('converts formats, enums, uniqueItems and type lists', () => {
    expect(tool.input.safeParse({ ip: '10.0.0.1', fields: ['owner', 'tags'] }).success).toBe(true);
    expect(tool.input.safeParse({ ip: '10.0.0.300' }).success).toBe(false);
    expect(tool.input.safeParse({ ip: '10.0.0.1', fields: ['owner', 'owner'] }).success).toBe(false);
    expect(tool.input.safeParse({ ip: '10.0.0.1', fields: ['colour'] }).success).toBe(false);
    expect(tool.output.safeParse({ ip: '10.0.0.1', owner: null }).success).toBe(true);
    expect(tool.output.safeParse({ ip: '10.0.0.1', owner: 'ops' }).success).toBe(true);
    expect(tool.output.safeParse({ ip: '10.0.0.1', owner: 3 }).success).toBe(false);
  });

  it('gives the model a JSON Schema it can read back', () => {
    const spec = toolSpec(tool).inputSchema;
    expect(spec).toMatchObject({ type: 'object', required: ['ip'], additionalProperties: false });
    expect(z.fromJSONSchema(spec).safeParse({ ip: '10.0.0.1' }).success).toBe(true);
  });

  it("takes defineTool's defaults for every optional field", () => {
    const minimal = load(minimalText, 'minimal.tool.yaml');
    const declared = defineTool({ name: 'get_time', version: '1.0.0', description: 'Returns the current time.', input: z.object({}), output: z.object({ now: z.string() }), handler: getTime });
    for (const field of ['retry', 'timeoutSeconds', 'needsApproval', 'idempotent', 'classification', 'tags', 'budget'] as const) {
      expect(minimal[field], field).toEqual(declared[field]);
    }
    expect(minimal.handler).toBe(getTime);
  });

  it('keeps the first retry interval within the maximum delay', () => {
    const tool = toolFromManifest(withLines('retry: { initial_interval_ms: 30000 }'), { source: 'x.yaml', handlers: HANDLERS });
    expect(tool.retry).toMatchObject({ intervalSeconds: 30, maxDelaySeconds: 30 });
    const small = toolFromManifest(withLines('retry: { initial_interval_ms: 10, max_delay_ms: 1 }'), { source: 'x.yaml', handlers: HANDLERS });
    expect(small.retry).toMatchObject({ intervalSeconds: 1, maxDelaySeconds: 1 });
  });
});

describe('toolFromManifest: failures name the file, the field and the problem', () => {
  it('fails when the name is missing', () => {
    expect(badFixture('missing-name.tool.yaml').message).toBe(`${FIXTURES}/bad/missing-name.tool.yaml: name: missing (expected a tool name matching /^[a-zA-Z0-9_-]{1,64}$/)`);
  });

  it('fails when the version is not semver', () => {
    expect(badFixture('bad-version.tool.yaml').message).toBe(`${FIXTURES}/bad/bad-version.tool.yaml: version: expected a semantic version such as "1.2.0", got "1.2"`);
  });

  it('fails when the version is a YAML number, suggesting quotes', () => {
    expect(failure(withLines().replace('version: 1.0.0', 'version: 1.0')).message).toBe(
      'tools/x.tool.yaml: version: expected a semantic version such as "1.2.0", got 1 (a number: quote it)',
    );
  });

  it('fails when a budget is negative', () => {
    expect(badFixture('negative-budget.tool.yaml').message).toBe(`${FIXTURES}/bad/negative-budget.tool.yaml: budget.max_calls_per_session: expected a positive integer, got -1`);
  });

  it('fails on an unknown key, listing the known ones and the likely one', () => {
    const { message } = badFixture('unknown-key.tool.yaml');
    expect(message).toMatch(new RegExp(`^${FIXTURES}/bad/unknown-key.tool.yaml: timeout_sec: unknown key \\(expected one of: name, version, .*\\) \\(did you mean "timeout_ms"\\?\\)$`));
  });

  it('fails on an unknown nested key', () => {
    expect(failure(withLines('budget: { max_calls: 3 }')).message).toBe(
      'tools/x.tool.yaml: budget.max_calls: unknown key (expected one of: max_calls_per_session, cost_per_call_usd) (did you mean "max_calls_per_session"?)',
    );
  });

  it('fails when the handler was not given, listing those that were', () => {
    expect(badFixture('unknown-handler.tool.yaml').message).toBe(
      `${FIXTURES}/bad/unknown-handler.tool.yaml: implementation.handler: no handler named "lookupIpp" was given (have: lookupIp, getTime) (did you mean "lookupIp"?)`,
    );
    expect(failure(withLines(), 'tools/x.tool.yaml', {}).message).toBe('tools/x.tool.yaml: implementation.handler: no handler named "getTime" was given (have: none)');
  });

  it('fails when the implementation has both a handler and an endpoint, or neither', () => {
    expect(badFixture('handler-and-http.tool.yaml').message).toBe(`${FIXTURES}/bad/handler-and-http.tool.yaml: implementation: give either handler or http, not both`);
    expect(failure(withLines().replace('implementation: { handler: getTime }', 'implementation: {}')).message).toBe(
      'tools/x.tool.yaml: implementation: missing handler or http (one of them is required)',
    );
  });

  it('fails on an invalid JSON Schema type', () => {
    expect(badFixture('bad-json-schema.tool.yaml').message).toBe(
      `${FIXTURES}/bad/bad-json-schema.tool.yaml: input_schema.properties.query.type: not a valid JSON Schema (expected one of string, number, integer, boolean, object, array, null (or a list of them), got "strng")`,
    );
  });

  it('fails on a YAML syntax error, naming the line and column', () => {
    const { message } = badFixture('yaml-syntax.tool.yaml');
    expect(message).toMatch(new RegExp(`^${FIXTURES}/bad/yaml-syntax.tool.yaml:\\d+:\\d+: Flow sequence`));
    expect(failure('name: a\nname: b\n').message).toBe('tools/x.tool.yaml:2:1: Map keys must be unique');
  });

  it.each([
    ['a list', '- name: x\n', 'tools/x.tool.yaml: (root): expected a mapping of manifest fields, got a list'],
    ['empty', '# nothing\n', 'tools/x.tool.yaml: (root): expected a mapping of manifest fields, got an empty document'],
  ])('fails when the document is %s', (_, text, message) => {
    expect(failure(text).message).toBe(message);
  });

  it.each([
    ['timeout_ms: 500', 'timeout_ms: expected an integer from 1000 to 900000 (ms), got 500'],
    ['timeout_ms: 900001', 'timeout_ms: expected an integer from 1000 to 900000 (ms), got 900001'],
    ['retry: { backoff: linear }', 'retry.backoff: expected exponential or fixed, got "linear"'],
    ['retry: { max_attempts: 0 }', 'retry.max_attempts: expected an integer from 1 to 100, got 0'],
    ['retry: { jitter: half }', 'retry.jitter: expected full or none, got "half"'],
    ['retry: { initial_interval_ms: 1.5 }', 'retry.initial_interval_ms: expected a positive integer (ms), got 1.5'],
    ['budget: { cost_per_call_usd: -0.01 }', 'budget.cost_per_call_usd: expected a non-negative number (USD), got -0.01'],
    ['policy: { classification: secret }', 'policy.classification: expected one of public, internal, confidential, restricted, got "secret"'],
    ['policy: { tags: [web, ""] }', 'policy.tags[1]: expected a non-empty string, got ""'],
    ['needs_approval: yes', 'needs_approval: expected true or false, got "yes"'],
  ])('fails on %s', (line, problem) => {
    expect(failure(withLines(line)).message).toBe(`tools/x.tool.yaml: ${problem}`);
  });

  it.each([
    ['an input that is not an object', 'input_schema: { type: string }', 'input_schema.type: not a valid JSON Schema (a tool\'s input is a JSON object (the model\'s arguments): expected type "object", got "string")'],
    ['a misspelt keyword', 'input_schema: { type: object, properties: { q: { type: string, maxLenght: 3 } } }', 'input_schema.properties.q.maxLenght: not a valid JSON Schema (unknown keyword (did you mean "maxLength"?))'],
    ['a required name that is not a property', 'input_schema: { type: object, properties: { query: { type: string } }, required: [querry] }', 'input_schema.required[0]: not a valid JSON Schema ("querry" is not one of the properties (query) (did you mean "query"?))'],
    ['an invalid pattern', 'input_schema: { type: object, properties: { q: { type: string, pattern: "([a-z" } } }', 'input_schema.properties.q.pattern: not a valid JSON Schema (not a valid regular expression: Invalid regular expression: /([a-z/: Unterminated character class)'],
    ['a keyword zod cannot convert', 'output_schema: { if: { type: string }, then: { minLength: 1 } }', 'output_schema: not a valid JSON Schema (Conditional schemas (if/then/else) are not supported)'],
    ['a dangling $ref', 'output_schema: { type: object, properties: { a: { $ref: "#/$defs/missing" } } }', 'output_schema: not a valid JSON Schema (Reference not found: #/$defs/missing)'],
    ['a schema that is not a mapping', 'output_schema: [object]', 'output_schema: expected a JSON Schema (a mapping), got a list'],
  ])('fails on %s in a JSON Schema', (_, line, problem) => {
    const key = line.slice(0, line.indexOf(':'));
    const text = withLines().replace(new RegExp(`^${key}: .*$`, 'm'), line);
    expect(failure(text).message).toBe(`tools/x.tool.yaml: ${problem}`);
  });

  it.each([
    ['a URL that is not one', '{ http: { url: "internal-api/search", method: POST } }', 'implementation.http.url: expected an absolute http(s) URL, got "internal-api/search"'],
    ['a URL with credentials', '{ http: { url: "https://user:pw@api.corp/x", method: POST } }', 'implementation.http.url: credentials do not belong in the URL (they would be logged)'],
    ['a non-HTTP URL', '{ http: { url: "ftp://api.corp/x", method: POST } }', 'implementation.http.url: expected an http: or https: URL, got "ftp:"'],
    ['an unknown method', '{ http: { url: "https://api.corp/x", method: FETCH } }', 'implementation.http.method: expected one of GET, POST, PUT, PATCH, DELETE, got "FETCH"'],
    ['a header the runtime sets', '{ http: { url: "https://api.corp/x", method: POST, headers: { Idempotency-Key: abc } } }', 'implementation.http.headers.Idempotency-Key: the runtime sets Idempotency-Key; remove it'],
    ['a numeric header value', '{ http: { url: "https://api.corp/x", method: POST, headers: { x-api-version: 1 } } }', 'implementation.http.headers.x-api-version: expected a string (quote numbers: "1"), got 1 (a number: quote it)'],
    ['an invalid header name', '{ http: { url: "https://api.corp/x", method: POST, headers: { "x api": v } } }', 'implementation.http.headers.x api: "x api" is not a valid header name'],
  ])('fails on %s', (_, implementation, problem) => {
    expect(failure(httpManifest(implementation)).message).toBe(`tools/x.tool.yaml: ${problem}`);
  });

  it('fails when a GET tool declares an object property (it has no query form)', () => {
    const text = httpManifest('{ http: { url: "https://api.corp/x", method: GET } }', '{ type: object, properties: { q: { type: string }, filter: { type: object } } }');
    expect(failure(text).message).toBe(
      'tools/x.tool.yaml: input_schema.properties.filter.type: GET sends the input as query parameters, so a property must be a string, number, integer or boolean, got "object"',
    );
  });

  it('collects every problem of a manifest into one error, one line each', () => {
    const text = ['version: "1"', 'description: ""', 'input_schema: { type: object }', 'output_schema: { type: object }', 'implementation: { handler: nope }', 'budget: { max_calls_per_session: -1 }', 'extra: 1', ''].join('\n');
    const err = failure(text);
    expect(err.name).toBe('ManifestError');
    expect(err.problems).toEqual([
      'tools/x.tool.yaml: implementation.handler: no handler named "nope" was given (have: lookupIp, getTime)',
      'tools/x.tool.yaml: name: missing (expected a tool name matching /^[a-zA-Z0-9_-]{1,64}$/)',
      'tools/x.tool.yaml: version: expected a semantic version such as "1.2.0", got "1"',
      'tools/x.tool.yaml: description: expected a non-empty description, got ""',
      'tools/x.tool.yaml: budget.max_calls_per_session: expected a positive integer, got -1',
      'tools/x.tool.yaml: extra: unknown key (expected one of: name, version, description, input_schema, output_schema, implementation, retry, timeout_ms, budget, needs_approval, idempotent, policy)',
    ]);
    expect(err.message).toBe(err.problems.join('\n'));
  });
});

describe('toolsFromManifests', () => {
  it('loads every manifest, in order', () => {
    const tools = toolsFromManifests(
      [
        { text: searchWebText, source: 'a.tool.yaml' },
        { text: lookupIpText, source: 'b.tool.yaml' },
      ],
      HANDLERS,
    );
    expect(tools.map((t) => [t.name, t.source])).toEqual([
      ['search_web', 'a.tool.yaml'],
      ['lookup_ip', 'b.tool.yaml'],
    ]);
  });

  it('fails with the problems of every manifest and duplicate names', () => {
    let err: unknown;
    try {
      toolsFromManifests(
        [
          { text: searchWebText, source: 'a.tool.yaml' },
          { text: withLines('timeout_ms: 5'), source: 'b.tool.yaml' },
          { text: searchWebText, source: 'c.tool.yaml' },
          { text: withLines('policy: { classification: top }'), source: 'd.tool.yaml' },
        ],
        HANDLERS,
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).problems).toEqual([
      'b.tool.yaml: timeout_ms: expected an integer from 1000 to 900000 (ms), got 5',
      'c.tool.yaml: name: "search_web" is also declared in a.tool.yaml',
      'd.tool.yaml: policy.classification: expected one of public, internal, confidential, restricted, got "top"',
    ]);
  });
});

describe('ToolManifestSchema', () => {
  it('parses a manifest as written (snake_case)', () => {
    const manifest = ToolManifestSchema.parse(parse(searchWebText));
    expect(manifest.budget).toEqual({ max_calls_per_session: 20, cost_per_call_usd: 0.0005 });
    expect(manifest.implementation.http?.method).toBe('POST');
  });
});
