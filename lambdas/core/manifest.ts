/**
 * Tool manifests, pure: a tool declared in a versioned YAML file (name, semver,
 * JSON Schemas of its input and output, a handler or an HTTP endpoint, retry,
 * timeout, budget, policy), checked field by field and turned into the
 * {@link ToolDefinition} that {@link defineTool} would return. Every problem
 * names the file, the field and what is wrong, so a bad manifest fails `cdk
 * synth` with a message that says where to look.
 */
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { LAMBDA_MAX_TIMEOUT_SECONDS, TASK_RETRY } from './constants';
import { defineTool, SEMVER_PATTERN, TOOL_NAME_PATTERN, type HttpImplementation, type ToolContext, type ToolDefinition, type ToolRetry } from './define';
import { DataClassificationSchema } from './policy';

/** Shortest tool timeout a manifest may declare, ms (the Lambda timeout is whole seconds). */
export const MANIFEST_MIN_TIMEOUT_MS = 1_000;
/** Longest tool timeout a manifest may declare, ms: 900,000, the Lambda maximum ({@link LAMBDA_MAX_TIMEOUT_SECONDS}). */
export const MANIFEST_MAX_TIMEOUT_MS = LAMBDA_MAX_TIMEOUT_SECONDS * 1000;
/** Aliases a manifest may expand (YAML anchors), against alias-bomb documents. */
const MAX_YAML_ALIASES = 100;

/** An HTTP header name (RFC 9110 `token`). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the runtime sets on every request; a manifest may not override them. */
const RUNTIME_HEADERS = ['content-type', 'idempotency-key', 'content-length', 'host'];
const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Methods that send the input as query parameters, so its properties must be scalars. */
const QUERY_METHODS: ReadonlySet<string> = new Set(['GET', 'DELETE']);

/** `{error: "expected <what>"}`: the message of a failed check, to which `, got <value>` is added. */
const expected = (what: string) => ({ error: `expected ${what}` });

const positiveInteger = (what = 'a positive integer') => z.number(expected(what)).int(expected(what)).positive(expected(what));

const integerFrom = (min: number, max: number, unit = '') => {
  const what = expected(`an integer from ${min} to ${max}${unit}`);
  return z.number(what).int(what).min(min, what).max(max, what);
};

/** A JSON Schema field: a mapping whose keywords {@link jsonSchemaProblems} checks, and that zod can convert. */
const jsonSchemaField = (side: 'input' | 'output') =>
  z.record(z.string(), z.unknown(), expected('a JSON Schema (a mapping)')).superRefine((schema, ctx) => {
    const problems = jsonSchemaProblems(schema, []);
    if (side === 'input' && schema.type !== 'object') {
      problems.push({
        path: ['type'],
        detail: `a tool's input is a JSON object (the model's arguments): expected type "object", got ${schema.type === undefined ? 'none' : render(schema.type)}`,
      });
    }
    if (problems.length === 0) {
      try {
        // A throwaway registry: this conversion only proves that it succeeds.
        const converted = z.fromJSONSchema(schema as z.core.JSONSchema.JSONSchema, { registry: z.registry() });
        z.toJSONSchema(converted, { io: side, unrepresentable: 'any' });
      } catch (error) {
        problems.push({ path: [], detail: error instanceof Error ? error.message : String(error) });
      }
    }
    for (const problem of problems) ctx.addIssue({ code: 'custom', path: problem.path, message: `not a valid JSON Schema (${problem.detail})` });
  });

const HttpManifestSchema = z.strictObject(
  {
    /** The endpoint, `http:` or `https:`, without credentials. */
    url: z.string(expected('a URL')).superRefine((value, ctx) => {
      const problem = urlProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    method: z.enum(HTTP_METHODS, expected(`one of ${HTTP_METHODS.join(', ')}`)),
    /** Extra request headers (not `content-type`, `idempotency-key`: the runtime sets them). */
    headers: z
      .record(z.string(), z.string(expected('a string (quote numbers: "1")')).regex(/^[^\r\n]*$/, expected('a single line')), expected('a mapping of header names to values'))
      .superRefine((headers, ctx) => {
        for (const name of Object.keys(headers)) {
          if (!HEADER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is not a valid header name` });
          else if (RUNTIME_HEADERS.includes(name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [name], message: `the runtime sets ${name}; remove it` });
        }
      })
      .optional(),
  },
  expected('a mapping with url, method and optionally headers'),
);

const ImplementationManifestSchema = z
  .strictObject(
    {
      /** Key into the `handlers` given to {@link toolFromManifest}. */
      handler: z.string(expected('a handler name')).min(1, expected('a handler name')).optional(),
      http: HttpManifestSchema.optional(),
    },
    expected('a mapping with handler or http'),
  )
  .superRefine((impl, ctx) => {
    if (impl.handler !== undefined && impl.http !== undefined) ctx.addIssue({ code: 'custom', message: 'give either handler or http, not both' });
    if (impl.handler === undefined && impl.http === undefined) ctx.addIssue({ code: 'custom', message: 'missing handler or http (one of them is required)' });
  });

const RetryManifestSchema = z.strictObject(
  {
    /** Every attempt, the first included. */
    max_attempts: integerFrom(1, 100).optional(),
    backoff: z.enum(['exponential', 'fixed'], expected('exponential or fixed')).optional(),
    initial_interval_ms: positiveInteger('a positive integer (ms)').optional(),
    max_delay_ms: positiveInteger('a positive integer (ms)').optional(),
    jitter: z.enum(['full', 'none'], expected('full or none')).optional(),
  },
  expected('a mapping'),
);

const BudgetManifestSchema = z.strictObject(
  {
    max_calls_per_session: positiveInteger().optional(),
    cost_per_call_usd: z.number(expected('a non-negative number (USD)')).nonnegative(expected('a non-negative number (USD)')).optional(),
  },
  expected('a mapping'),
);

const PolicyManifestSchema = z.strictObject(
  {
    tags: z.array(z.string(expected('a non-empty string')).min(1, expected('a non-empty string')), expected('a list of tags')).optional(),
    classification: z.enum(DataClassificationSchema.options, expected(`one of ${DataClassificationSchema.options.join(', ')}`)).optional(),
  },
  expected('a mapping'),
);

const MANIFEST_SHAPE = {
  /** `^[a-zA-Z0-9_-]{1,64}$`: what the model calls. */
  name: z.string(expected(`a tool name matching ${TOOL_NAME_PATTERN}`)).regex(TOOL_NAME_PATTERN, expected(`a tool name matching ${TOOL_NAME_PATTERN}`)),
  /** Semantic version of the tool's contract. */
  version: z.string(expected('a semantic version such as "1.2.0"')).regex(SEMVER_PATTERN, expected('a semantic version such as "1.2.0"')),
  /** What the tool does, for the model. */
  description: z.string(expected('a description')).min(1, expected('a non-empty description')),
  input_schema: jsonSchemaField('input'),
  output_schema: jsonSchemaField('output'),
  implementation: ImplementationManifestSchema,
  retry: RetryManifestSchema.optional(),
  timeout_ms: integerFrom(MANIFEST_MIN_TIMEOUT_MS, MANIFEST_MAX_TIMEOUT_MS, ' (ms)').optional(),
  budget: BudgetManifestSchema.optional(),
  needs_approval: z.boolean(expected('true or false')).optional(),
  idempotent: z.boolean(expected('true or false')).optional(),
  policy: PolicyManifestSchema.optional(),
};

/**
 * A tool manifest (YAML, snake_case, unknown keys rejected). Fields:
 * - `name` (required): `^[a-zA-Z0-9_-]{1,64}$`, what the model calls.
 * - `version` (required): semver of the tool's contract, recorded with every call.
 * - `description` (required): what the tool does, for the model.
 * - `input_schema` (required): JSON Schema (draft 2020-12) of the arguments, `type: object`;
 *   what the model sees and what every call is validated against. Keywords zod cannot
 *   convert (`if`/`then`/`else`, `not`, `dependentSchemas`, external `$ref`) and unknown
 *   keywords (other than `x-…`) are errors.
 * - `output_schema` (required): JSON Schema of the result; a result that fails it is a tool failure.
 * - `implementation` (required): exactly one of `handler` (the name of a function given
 *   to {@link toolFromManifest}) and `http` (`url`, `method` GET|POST|PUT|PATCH|DELETE,
 *   optional `headers`). GET and DELETE send the input as query parameters, so the input's
 *   properties may not be of type object or array.
 * - `retry`: `max_attempts` (1..100, every attempt, the first included), `backoff`
 *   exponential|fixed, `initial_interval_ms`, `max_delay_ms`, `jitter` full|none.
 *   @default 3 attempts, 1 s doubling, at most 20 s apart, full jitter
 * - `timeout_ms`: one call, 1000..900000 ms. @default 30000
 * - `budget`: `max_calls_per_session` (positive integer), `cost_per_call_usd` (≥ 0). @default no limit, no cost
 * - `needs_approval`: a human approves each call first. @default false
 * - `idempotent`: running a call twice has the effect of running it once. @default false
 * - `policy`: `tags` (Cedar `Tool` tags) and `classification` public|internal|confidential|restricted.
 *   @default no tags, internal
 *
 * Example:
 * ```yaml
 * name: search_web
 * version: 1.2.0
 * description: Searches the internal index.
 * input_schema:
 *   type: object
 *   properties:
 *     query: { type: string, minLength: 1 }
 *     max_results: { type: integer, minimum: 1, maximum: 50 }
 *   required: [query]
 *   additionalProperties: false
 * output_schema:
 *   type: object
 *   properties: { results: { type: array }, total_count: { type: integer } }
 *   required: [results, total_count]
 * implementation:
 *   http: { url: https://internal-api.corp/v1/search, method: POST, headers: { x-api-version: "1" } }
 * retry: { max_attempts: 3, backoff: exponential, initial_interval_ms: 1000, max_delay_ms: 20000, jitter: full }
 * timeout_ms: 8000
 * budget: { max_calls_per_session: 20, cost_per_call_usd: 0.0005 }
 * idempotent: true
 * policy: { tags: [web, external], classification: internal }
 * ```
 */
export const ToolManifestSchema = z
  .strictObject(MANIFEST_SHAPE, expected('a mapping of manifest fields'))
  .superRefine((manifest, ctx) => {
    const method = manifest.implementation.http?.method;
    if (method === undefined || !QUERY_METHODS.has(method)) return;
    const properties = manifest.input_schema.properties;
    if (typeof properties !== 'object' || properties === null) return;
    for (const [key, property] of Object.entries(properties as Record<string, unknown>)) {
      const type = isRecord(property) ? property.type : undefined;
      const types: unknown[] = Array.isArray(type) ? type : [type];
      const nested = types.find((t) => t === 'object' || t === 'array');
      if (nested !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['input_schema', 'properties', key, 'type'],
          message: `${method} sends the input as query parameters, so a property must be a string, number, integer or boolean, got "${String(nested)}"`,
        });
      }
    }
  });

/** A tool manifest, as parsed (snake_case, as written in the YAML). */
export type ToolManifest = z.infer<typeof ToolManifestSchema>;

/**
 * A manifest tool's handler. The runtime validates the input against the
 * manifest's `input_schema` before the call and the result against its
 * `output_schema` after, so a handler may declare the input type it expects
 * (`async (input: {query: string}) => ...`). Throw `ToolError` for a failure the
 * model should see.
 */
// A method signature: its parameters are bivariant, so handlers with a narrower input type fit.
export type ToolHandler = { bivarianceHack(input: unknown, context: ToolContext): Promise<unknown> }['bivarianceHack'];

/** A manifest's text and the file it came from. */
export interface ManifestSource {
  /** The YAML text. */
  readonly text: string;
  /** The file, as shown in messages, e.g. `tools/search.tool.yaml`. */
  readonly source: string;
}

/** Options of {@link toolFromManifest}. */
export interface ToolFromManifestOptions {
  /** The file the manifest came from, as shown in messages and recorded as the tool's `source`. */
  readonly source: string;
  /** The functions `implementation.handler` names. @default none (only HTTP tools load) */
  readonly handlers?: Readonly<Record<string, ToolHandler>>;
}

/**
 * A manifest that cannot become a tool. The message has one line per problem,
 * each `<source>: <field.path>: <problem>` (or `<source>:<line>:<column>: <problem>`
 * for YAML syntax), e.g. `tools/search.tool.yaml: budget.max_calls_per_session:
 * expected a positive integer, got -1`.
 */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  /** The problems, one line each, as in the message. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[], options?: { cause?: unknown }) {
    super(problems.join('\n'), options);
    this.problems = problems;
  }
}

/**
 * Reads a tool manifest (see {@link ToolManifestSchema}) and declares its tool
 * with {@link defineTool}. The JSON Schemas become zod schemas (`z.fromJSONSchema`);
 * `retry` becomes {@link ToolRetry} (`intervalSeconds` = ⌈initial_interval_ms / 1000⌉
 * (at least 1), `backoffRate` 2 for exponential and 1 for fixed, `maxDelaySeconds` =
 * ⌈max_delay_ms / 1000⌉ (at least `intervalSeconds`), omitted fields keeping
 * defineTool's defaults); `timeout_ms` becomes `timeoutSeconds` = ⌈timeout_ms / 1000⌉
 * and, for HTTP tools, `http.timeoutMs`; `budget` and `policy` map field by field;
 * the tool's `source` is `options.source`.
 * @param text the YAML text
 * @throws ManifestError listing every problem found: YAML syntax (with line and
 *   column), a missing, mistyped or unknown field, an invalid JSON Schema, a handler
 *   name missing from `options.handlers`, and anything defineTool rejects.
 */
export function toolFromManifest(text: string, options: ToolFromManifestOptions): ToolDefinition {
  const { source } = options;
  const handlers = options.handlers ?? {};
  const raw = parseYaml(text, source);
  if (!raw.ok) throw new ManifestError(raw.problems);
  const problems = handlerProblems(raw.value, handlers).map((p) => `${source}: ${p}`);
  const parsed = ToolManifestSchema.safeParse(raw.value, { reportInput: true });
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue).map((p) => `${source}: ${p}`)));
  if (problems.length > 0 || !parsed.success) throw new ManifestError(problems);
  try {
    return toTool(parsed.data, source, handlers);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ManifestError([`${source}: ${message}`], { cause: error });
  }
}

/**
 * Reads several manifests (see {@link toolFromManifest}), in order.
 * @param handlers the functions the manifests' `implementation.handler` names, shared by all
 *   of them @default none (only HTTP tools load)
 * @throws ManifestError listing the problems of every manifest at once, and tool
 *   names declared by more than one manifest.
 */
export function toolsFromManifests(manifests: readonly ManifestSource[], handlers?: Readonly<Record<string, ToolHandler>>): ToolDefinition[] {
  const tools: ToolDefinition[] = [];
  const problems: string[] = [];
  const declaredIn = new Map<string, string>();
  for (const { text, source } of manifests) {
    let tool: ToolDefinition;
    try {
      tool = toolFromManifest(text, { source, handlers });
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      problems.push(...error.problems);
      continue;
    }
    const first = declaredIn.get(tool.name);
    if (first !== undefined) problems.push(`${source}: name: "${tool.name}" is also declared in ${first}`);
    else declaredIn.set(tool.name, source);
    tools.push(tool);
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return tools;
}

/** The manifest as defineTool props. */
function toTool(manifest: ToolManifest, source: string, handlers: Readonly<Record<string, ToolHandler>>): ToolDefinition {
  const { implementation: impl, timeout_ms: timeoutMs } = manifest;
  const http: HttpImplementation | undefined = impl.http && {
    url: impl.http.url,
    method: impl.http.method,
    ...(impl.http.headers ? { headers: impl.http.headers } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  };
  const handler = impl.handler === undefined ? undefined : handlers[impl.handler];
  return defineTool({
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    input: z.fromJSONSchema(manifest.input_schema as z.core.JSONSchema.JSONSchema),
    output: z.fromJSONSchema(manifest.output_schema as z.core.JSONSchema.JSONSchema),
    ...(handler ? { handler } : {}),
    ...(http ? { http } : {}),
    ...(manifest.needs_approval !== undefined ? { needsApproval: manifest.needs_approval } : {}),
    ...(manifest.idempotent !== undefined ? { idempotent: manifest.idempotent } : {}),
    ...(timeoutMs !== undefined ? { timeoutSeconds: Math.ceil(timeoutMs / 1000) } : {}),
    ...(manifest.retry ? { retry: toRetry(manifest.retry) } : {}),
    ...(manifest.budget ? { budget: toBudget(manifest.budget) } : {}),
    ...(manifest.policy?.classification ? { classification: manifest.policy.classification } : {}),
    ...(manifest.policy?.tags ? { tags: manifest.policy.tags } : {}),
    source,
  });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function toRetry(retry: NonNullable<ToolManifest['retry']>): Partial<ToolRetry> {
  const out: Partial<Mutable<ToolRetry>> = {};
  if (retry.max_attempts !== undefined) out.maxAttempts = retry.max_attempts;
  if (retry.initial_interval_ms !== undefined) out.intervalSeconds = Math.max(1, Math.ceil(retry.initial_interval_ms / 1000));
  if (retry.backoff !== undefined) out.backoffRate = retry.backoff === 'exponential' ? 2 : 1;
  if (retry.max_delay_ms !== undefined || out.intervalSeconds !== undefined) {
    // Never below the first interval, which defineTool would reject.
    const delay = retry.max_delay_ms === undefined ? TASK_RETRY.maxDelaySeconds : Math.ceil(retry.max_delay_ms / 1000);
    out.maxDelaySeconds = Math.max(out.intervalSeconds ?? TASK_RETRY.intervalSeconds, delay);
  }
  if (retry.jitter !== undefined) out.jitter = retry.jitter;
  return out;
}

function toBudget(budget: NonNullable<ToolManifest['budget']>): NonNullable<ToolDefinition['budget']> {
  return {
    ...(budget.max_calls_per_session !== undefined ? { callsPerSession: budget.max_calls_per_session } : {}),
    ...(budget.cost_per_call_usd !== undefined ? { costPerCallUsd: budget.cost_per_call_usd } : {}),
  };
}

/** `implementation.handler` names a function that was not given (checked on the raw document, beside the zod issues). */
function handlerProblems(raw: unknown, handlers: Readonly<Record<string, ToolHandler>>): string[] {
  const impl = isRecord(raw) ? raw.implementation : undefined;
  const name = isRecord(impl) ? impl.handler : undefined;
  if (typeof name !== 'string' || name === '' || Object.hasOwn(handlers, name)) return [];
  const have = Object.keys(handlers);
  return [`implementation.handler: no handler named "${name}" was given (have: ${have.length > 0 ? have.join(', ') : 'none'})${didYouMean(name, have)}`];
}

type YamlResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problems: string[] };

/** The YAML document as plain data, or its errors and warnings with line and column. */
function parseYaml(text: string, source: string): YamlResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings].map((e) => {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    return `${source}:${line}:${col}: ${e.message}`;
  });
  if (problems.length > 0) return { ok: false, problems };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (error) {
    return { ok: false, problems: [`${source}: ${error instanceof Error ? error.message : String(error)}`] };
  }
  if (!isRecord(value)) {
    return { ok: false, problems: [`${source}: (root): expected a mapping of manifest fields, got ${value === null || value === undefined ? 'an empty document' : render(value)}`] };
  }
  return { ok: true, value };
}

/** The keys each object of the manifest accepts, by dotted path (for unknown-key messages). */
const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(MANIFEST_SHAPE),
  implementation: Object.keys(ImplementationManifestSchema.shape),
  'implementation.http': Object.keys(HttpManifestSchema.shape),
  retry: Object.keys(RetryManifestSchema.shape),
  budget: Object.keys(BudgetManifestSchema.shape),
  policy: Object.keys(PolicyManifestSchema.shape),
};

/** One zod issue as `field.path: problem` lines (an unknown-keys issue gives one line per key). */
function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    const known = KNOWN_KEYS[issue.path.join('.')] ?? [];
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key${known.length > 0 ? ` (expected one of: ${known.join(', ')})` : ''}${didYouMean(key, known)}`);
  }
  const path = formatPath(issue.path);
  if (issue.code === 'custom') return [`${path}: ${issue.message}`];
  if (issue.code === 'invalid_type' && issue.input === undefined) return [`${path}: missing (${issue.message})`];
  if (!('input' in issue)) return [`${path}: ${issue.message}`];
  const hint = issue.code === 'invalid_type' && issue.expected === 'string' && typeof issue.input === 'number' ? ' (a number: quote it)' : '';
  return [`${path}: ${issue.message}, got ${render(issue.input)}${hint}`];
}

/** `budget.max_calls_per_session`, `policy.tags[0]`; `(root)` for the document itself. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out === '' ? '' : '.'}${String(part)}`;
  return out === '' ? '(root)' : out;
}

/** A value as shown in a message: JSON for scalars (at most 60 characters), "a list" or "a mapping" otherwise. */
function render(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * ` (did you mean "x"?)` when a candidate is within a small edit distance of `word`,
 * or is the only one that starts with it (`max_calls` → `max_calls_per_session`).
 */
function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best === undefined && word.length >= 3) {
    const extending = candidates.filter((c) => c.toLowerCase().startsWith(word.toLowerCase()));
    if (extending.length === 1) best = extending[0];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Why a URL cannot be an HTTP tool's endpoint, if it cannot. */
function urlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `expected an absolute http(s) URL, got ${render(value)}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `expected an http: or https: URL, got ${render(url.protocol)}`;
  if (url.username !== '' || url.password !== '') return 'credentials do not belong in the URL (they would be logged)';
  return undefined;
}

// --- JSON Schema keywords -------------------------------------------------------------

type KeywordKind =
  | 'schema'
  | 'schemaMap'
  | 'schemaList'
  | 'schemaOrList'
  | 'type'
  | 'string'
  | 'regex'
  | 'boolean'
  | 'number'
  | 'numberOrBoolean'
  | 'positiveNumber'
  | 'count'
  | 'stringList'
  | 'nonEmptyList'
  | 'list'
  | 'any';

/**
 * The keywords a manifest's JSON Schemas may use, and what each takes: those
 * `z.fromJSONSchema` reads, the annotations, and those it rejects (so that its
 * own message says so). Any other keyword is reported as unknown, so that a typo
 * (`maxLenght`) does not silently drop a constraint.
 */
const KEYWORDS: Readonly<Record<string, KeywordKind>> = {
  $schema: 'string',
  $id: 'string',
  $ref: 'string',
  $defs: 'schemaMap',
  definitions: 'schemaMap',
  $comment: 'string',
  $anchor: 'string',
  $dynamicRef: 'string',
  $dynamicAnchor: 'string',
  $vocabulary: 'any',
  type: 'type',
  enum: 'nonEmptyList',
  const: 'any',
  anyOf: 'schemaList',
  oneOf: 'schemaList',
  allOf: 'schemaList',
  not: 'schema',
  properties: 'schemaMap',
  required: 'stringList',
  additionalProperties: 'schema',
  patternProperties: 'schemaMap',
  propertyNames: 'schema',
  minProperties: 'count',
  maxProperties: 'count',
  items: 'schemaOrList',
  prefixItems: 'schemaList',
  additionalItems: 'schema',
  minItems: 'count',
  maxItems: 'count',
  uniqueItems: 'boolean',
  contains: 'schema',
  minContains: 'count',
  maxContains: 'count',
  minLength: 'count',
  maxLength: 'count',
  pattern: 'regex',
  format: 'string',
  minimum: 'number',
  maximum: 'number',
  exclusiveMinimum: 'numberOrBoolean',
  exclusiveMaximum: 'numberOrBoolean',
  multipleOf: 'positiveNumber',
  title: 'string',
  description: 'string',
  default: 'any',
  examples: 'list',
  deprecated: 'boolean',
  readOnly: 'boolean',
  writeOnly: 'boolean',
  nullable: 'boolean',
  contentEncoding: 'string',
  contentMediaType: 'string',
  contentSchema: 'schema',
  if: 'schema',
  then: 'schema',
  else: 'schema',
  dependentSchemas: 'schemaMap',
  dependentRequired: 'any',
  unevaluatedItems: 'schema',
  unevaluatedProperties: 'schema',
};

const JSON_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'];

interface SchemaProblem {
  readonly path: PropertyKey[];
  readonly detail: string;
}

/**
 * What is structurally wrong with a JSON Schema: unknown keywords, keywords of the
 * wrong type, invalid `pattern`s, `required` names that are not among the
 * `properties`. Walks every subschema.
 */
function jsonSchemaProblems(schema: unknown, path: PropertyKey[]): SchemaProblem[] {
  if (typeof schema === 'boolean') return [];
  if (!isRecord(schema)) return [{ path, detail: `a schema is a mapping or a boolean, got ${render(schema)}` }];
  const problems: SchemaProblem[] = [];
  const keys = Object.keys(KEYWORDS);
  for (const [keyword, value] of Object.entries(schema)) {
    const at = [...path, keyword];
    const kind = KEYWORDS[keyword];
    if (kind === undefined) {
      if (!keyword.startsWith('x-')) problems.push({ path: at, detail: `unknown keyword${didYouMean(keyword, keys)}` });
      continue;
    }
    problems.push(...keywordProblems(kind, value, at));
  }
  const { properties, required, patternProperties } = schema;
  if (isRecord(properties) && Array.isArray(required) && patternProperties === undefined) {
    required.forEach((name, i) => {
      if (typeof name === 'string' && !Object.hasOwn(properties, name)) {
        const names = Object.keys(properties);
        problems.push({ path: [...path, 'required', i], detail: `"${name}" is not one of the properties (${names.join(', ') || 'none'})${didYouMean(name, names)}` });
      }
    });
  }
  return problems;
}

function keywordProblems(kind: KeywordKind, value: unknown, at: PropertyKey[]): SchemaProblem[] {
  const wrong = (what: string): SchemaProblem[] => [{ path: at, detail: `expected ${what}, got ${render(value)}` }];
  switch (kind) {
    case 'schema':
      return jsonSchemaProblems(value, at);
    case 'schemaMap':
      if (!isRecord(value)) return wrong('a mapping of names to schemas');
      return Object.entries(value).flatMap(([name, sub]) => jsonSchemaProblems(sub, [...at, name]));
    case 'schemaList':
      if (!Array.isArray(value) || value.length === 0) return wrong('a non-empty list of schemas');
      return value.flatMap((sub, i) => jsonSchemaProblems(sub, [...at, i]));
    case 'schemaOrList':
      return Array.isArray(value) ? value.flatMap((sub, i) => jsonSchemaProblems(sub, [...at, i])) : jsonSchemaProblems(value, at);
    case 'type': {
      const types: unknown[] = Array.isArray(value) ? value : [value];
      if (types.length === 0 || types.some((t) => typeof t !== 'string' || !JSON_TYPES.includes(t))) {
        return wrong(`one of ${JSON_TYPES.join(', ')} (or a list of them)`);
      }
      return [];
    }
    case 'string':
      return typeof value === 'string' ? [] : wrong('a string');
    case 'regex':
      if (typeof value !== 'string') return wrong('a regular expression');
      try {
        new RegExp(value);
        return [];
      } catch (error) {
        return [{ path: at, detail: `not a valid regular expression: ${error instanceof Error ? error.message : String(error)}` }];
      }
    case 'boolean':
      return typeof value === 'boolean' ? [] : wrong('true or false');
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? [] : wrong('a number');
    case 'numberOrBoolean':
      return typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)) ? [] : wrong('a number');
    case 'positiveNumber':
      return typeof value === 'number' && Number.isFinite(value) && value > 0 ? [] : wrong('a positive number');
    case 'count':
      return Number.isInteger(value) && (value as number) >= 0 ? [] : wrong('a non-negative integer');
    case 'stringList':
      return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [] : wrong('a list of strings');
    case 'nonEmptyList':
      return Array.isArray(value) && value.length > 0 ? [] : wrong('a non-empty list');
    case 'list':
      return Array.isArray(value) ? [] : wrong('a list');
    case 'any':
      return [];
  }
}
