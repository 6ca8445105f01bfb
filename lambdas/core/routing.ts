/**
 * Model routing, pure: which models a step may use and in what order, how a
 * provider's fault is retried, and the configuration of the circuit breakers.
 *
 * Routing is deterministic policy (design decision 10): each agent declares, per
 * step kind, a route of a primary model and ordered fallbacks. A model whose
 * circuit is open is skipped; a model that fails after its retries hands the call
 * to the next. No model chooses the model.
 */
import { z } from 'zod';
import type { ModelPrice } from './budget';
import type { ScriptedConversation } from './contracts/scripted';
import type { CheckpointRecord } from './contracts/checkpoint';
import type { ProviderFaultKind } from './errors';

/**
 * The kinds of step a route may be declared for:
 * - `plan`: the first model turn of a session (no model turn before it);
 * - `act`: a turn after tool results;
 * - `repair`: a turn after the runtime sent an invalid final answer back;
 * - `summarise`: a model call that summarises tool results the context limit replaces
 *   (the `summarise` context strategy; without a `summarise` route, the extractive summary).
 */
export const STEP_KINDS = ['plan', 'act', 'repair', 'summarise'] as const;
/** One of {@link STEP_KINDS}. */
export type StepKind = (typeof STEP_KINDS)[number];

/**
 * Where an Anthropic or OpenAI API key comes from: a Secrets Manager secret (in AWS:
 * the Agent construct grants the model-turn function read access to it), else the
 * environment variable (locally: `ANTHROPIC_API_KEY`, `OPENAI_API_KEY` by default).
 * The key is never logged, checkpointed or published.
 */
export interface ApiKeySource {
  /** Secrets Manager secret name or ARN holding the key as its plain SecretString. */
  readonly secretName?: string;
  /** Environment variable read when no secret is named. @default `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` */
  readonly envVar?: string;
}

/** The environment variable each provider's key is read from when no secret is named. */
export const DEFAULT_API_KEY_ENV: Readonly<Record<'anthropic' | 'openai', string>> = { anthropic: 'ANTHROPIC_API_KEY', openai: 'OPENAI_API_KEY' };

/** Fields every model reference has. */
interface ModelRefBase {
  /**
   * What the model's tokens cost, instead of the price table's figures (`core/budget.ts`):
   * for a model the table does not know, or a scripted model standing in for a real one.
   */
  readonly pricing?: ModelPrice;
}

/** A scripted model: replays a recorded conversation (`adapters/providers/scripted.ts`). */
export interface ScriptedModelRef extends ModelRefBase {
  readonly provider: 'scripted';
  /** The recorded conversation it replays, turn by turn; its `modelId` is the model's id (`contracts/scripted.ts`). */
  readonly script: ScriptedConversation;
}

/**
 * An Amazon Bedrock model, called with the Converse API (`bedrock:InvokeModel` is
 * granted on it). `modelId` is a model id or an inference profile id, e.g.
 * `anthropic.claude-sonnet-4-5-20250929-v1:0` or `us.amazon.nova-pro-v1:0`.
 */
export interface BedrockModelRef extends ModelRefBase {
  readonly provider: 'bedrock';
  readonly modelId: string;
  /** @default the function's region (`AWS_REGION`) */
  readonly region?: string;
  /** Endpoint URL override (a VPC endpoint, a test server). @default the SDK's (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, else the regional endpoint) */
  readonly endpoint?: string;
}

/** An Anthropic Messages API model, e.g. `claude-sonnet-4-5`. */
export interface AnthropicModelRef extends ModelRefBase {
  readonly provider: 'anthropic';
  readonly modelId: string;
  /** @default `https://api.anthropic.com` */
  readonly baseUrl?: string;
  /** @default the environment variable `ANTHROPIC_API_KEY` */
  readonly apiKey?: ApiKeySource;
}

/** An OpenAI Chat Completions model, e.g. `gpt-4.1`; also any OpenAI-compatible server (`baseUrl`). */
export interface OpenAiModelRef extends ModelRefBase {
  readonly provider: 'openai';
  readonly modelId: string;
  /** @default `https://api.openai.com/v1` */
  readonly baseUrl?: string;
  /** @default the environment variable `OPENAI_API_KEY` */
  readonly apiKey?: ApiKeySource;
}

/** Which model serves a call. */
export type ModelRef = ScriptedModelRef | BedrockModelRef | AnthropicModelRef | OpenAiModelRef;

/**
 * How a transient fault is retried on the same model before the route moves on:
 * exponential backoff with full jitter (a delay drawn uniformly from 0 up to
 * `min(maxDelayMs, baseDelayMs × 2^(retry−1))`, as in "Exponential Backoff And Jitter",
 * AWS Architecture Blog, 2015), but never less than the provider's `Retry-After`.
 * A `Retry-After` longer than `maxRetryAfterMs` is not waited for in the function:
 * the call moves to the next model at once.
 */
export const RetryConfigSchema = z.object({
  /** Calls of one model per step, the first included. @default 3 */
  maxAttempts: z.number().int().min(1).max(10),
  /** Milliseconds of the first retry's backoff ceiling, doubling per retry. @default 250 */
  baseDelayMs: z.number().int().nonnegative(),
  /** Largest backoff ceiling, ms (at least `baseDelayMs`). @default 8000 */
  maxDelayMs: z.number().int().nonnegative(),
  /** Longest `Retry-After` waited for in the function, ms; a longer one moves the call on. @default 20000 */
  maxRetryAfterMs: z.number().int().nonnegative(),
});
/** See {@link RetryConfigSchema}. */
export type RetryConfig = z.infer<typeof RetryConfigSchema>;

/**
 * The retry configuration of every route that does not override it: the runtime's
 * choice. 3 attempts and an 8 s ceiling are the Anthropic and OpenAI SDKs' own defaults
 * (2 retries, 0.5 s doubling to 8 s), whose retries the providers turn off so that the
 * router does them; the 250 ms base keeps one model's retries short against its 50 s
 * call timeout ({@link DEFAULT_MODEL_CALL_TIMEOUT_MS}), leaving time for a fallback; a
 * `Retry-After` above 20 s is better spent on the next model than waiting in the function.
 */
export const DEFAULT_RETRY: RetryConfig = { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 8_000, maxRetryAfterMs: 20_000 };

/**
 * A circuit breaker per provider and model, its state shared by every function in
 * DynamoDB (`adapters/model-health.ts`). Calls are counted in buckets of
 * `bucketSeconds`; the window is the last `windowSeconds` since the circuit last
 * changed state. It opens when the window holds at least `minCalls` calls and
 * their error rate reaches `errorRateThreshold`, or their p95 latency exceeds the
 * route's `sloP95Ms`. After `halfOpenAfterSeconds` one call probes the model:
 * an answer within the SLO closes the circuit, anything else opens it again.
 */
export const BreakerConfigSchema = z.object({
  /** Seconds of calls the statistics cover (at least two buckets). @default 60 */
  windowSeconds: z.number().int().min(1).max(3600),
  /** Seconds per bucket of counts (one DynamoDB item per model and bucket). @default 5 */
  bucketSeconds: z.number().int().min(1).max(300),
  /** Calls the window must hold before it may open the circuit. @default 5 */
  minCalls: z.number().int().min(1),
  /** Fraction (0 to 1] of the window's calls that failed with a transient fault, at which the circuit opens. @default 0.5 */
  errorRateThreshold: z.number().gt(0).max(1),
  /** Seconds an open circuit waits before one call probes the model. @default 30 */
  halfOpenAfterSeconds: z.number().int().min(1),
});
/** See {@link BreakerConfigSchema}. */
export type BreakerConfig = z.infer<typeof BreakerConfigSchema>;

/**
 * The breaker configuration of every route that does not override it: the runtime's
 * choice. A 60 s window of 5 s buckets reads 12 small items per model and forgets an
 * outage within a minute; 5 calls at least, so that one or two failures of a quiet model
 * do not open it; half of them failing opens it; 30 s open before a probe, so that a
 * model that recovered is back within a minute.
 */
export const DEFAULT_BREAKER: BreakerConfig = { windowSeconds: 60, bucketSeconds: 5, minCalls: 5, errorRateThreshold: 0.5, halfOpenAfterSeconds: 30 };

/** A route's `retry` and `breaker` overrides: any of the fields (checked by {@link routeProblems}). */
const RetryOverrideSchema = RetryConfigSchema.partial();
const BreakerOverrideSchema = BreakerConfigSchema.partial();

/**
 * Milliseconds one call may take before it counts as a `timeout` fault: 50 s, so that
 * a primary that times out still leaves a fallback its whole timeout within the default
 * 120 s model turn (50 + 50 + the 5 s kept for the checkpoint).
 */
export const DEFAULT_MODEL_CALL_TIMEOUT_MS = 50_000;

/** Milliseconds of a model turn's invocation kept for the work after its model calls (checkpoint, notices), at most. */
export const MODEL_TURN_MARGIN_MS = 5_000;

/**
 * The milliseconds a model turn keeps for its work after the model calls:
 * {@link MODEL_TURN_MARGIN_MS}, or a fifth of a shorter invocation.
 * @param modelTimeoutSeconds the model turn's Lambda timeout.
 */
export function turnMarginMs(modelTimeoutSeconds: number): number {
  return Math.min(MODEL_TURN_MARGIN_MS, Math.floor((modelTimeoutSeconds * 1000) / 5));
}

/**
 * The call timeout of a route that declares none: {@link DEFAULT_MODEL_CALL_TIMEOUT_MS},
 * or what a shorter model turn leaves after its margin ({@link turnMarginMs}).
 */
export function defaultCallTimeoutMs(modelTimeoutSeconds?: number): number {
  if (modelTimeoutSeconds === undefined) return DEFAULT_MODEL_CALL_TIMEOUT_MS;
  return Math.min(DEFAULT_MODEL_CALL_TIMEOUT_MS, modelTimeoutSeconds * 1000 - turnMarginMs(modelTimeoutSeconds));
}

/** A route: the primary model, its fallbacks in order, and how calls on it are judged. */
export interface ModelRoute {
  /** The model tried first. */
  readonly primary: ModelRef;
  /** Tried in order when the models before them are open or fail. @default none */
  readonly fallbacks?: readonly ModelRef[];
  /** p95 latency (ms) above which a model's circuit opens. @default none (errors only) */
  readonly sloP95Ms?: number;
  /** Milliseconds one call may take. @default {@link DEFAULT_MODEL_CALL_TIMEOUT_MS} (or what a shorter model turn leaves) */
  readonly timeoutMs?: number;
  /**
   * Sampling temperature of the route's calls, 0 to 2 (the widest range a provider takes: OpenAI API
   * reference, `temperature`); at most 1 when the route holds a Claude model (Anthropic accepts 0 to 1). @default the provider's
   */
  readonly temperature?: number;
  /** Overrides of {@link DEFAULT_RETRY}, field by field. */
  readonly retry?: Partial<RetryConfig>;
  /** Overrides of {@link DEFAULT_BREAKER}, field by field. */
  readonly breaker?: Partial<BreakerConfig>;
}

/** A route with every default applied. */
export interface ResolvedRoute {
  /** The step kind it serves. */
  readonly kind: StepKind;
  /** The primary, then the fallbacks, in order. */
  readonly models: readonly ModelRef[];
  /** p95 latency (ms) above which a model's circuit opens; absent: errors only. */
  readonly sloP95Ms?: number;
  /** Milliseconds one call may take. */
  readonly timeoutMs: number;
  /** Sampling temperature; absent: the provider's default. */
  readonly temperature?: number;
  /** {@link DEFAULT_RETRY} with the route's overrides. */
  readonly retry: RetryConfig;
  /** {@link DEFAULT_BREAKER} with the route's overrides. */
  readonly breaker: BreakerConfig;
}

/** The id a model reference names (`script.modelId` for a scripted model). */
export function modelIdOf(ref: ModelRef): string {
  return ref.provider === 'scripted' ? ref.script.modelId : ref.modelId;
}

/**
 * The health key of a model: `<provider>/<model id>`, e.g. `anthropic/claude-sonnet-4-5`,
 * then `@<where>` when the reference names where it is served: a Bedrock `region` (or
 * its `endpoint`'s host), an Anthropic or OpenAI `baseUrl`'s host, e.g.
 * `bedrock/amazon.nova-pro-v1:0@eu-west-1`, `openai/llama-3@127.0.0.1:8080`. The same
 * model served in two places has two circuits.
 */
export function modelKey(ref: ModelRef): string {
  const base = `${ref.provider}/${modelIdOf(ref)}`;
  const where = ref.provider === 'bedrock' ? (ref.region ?? hostOf(ref.endpoint)) : ref.provider === 'scripted' ? undefined : hostOf(ref.baseUrl);
  return where ? `${base}@${where}` : base;
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Whether a value is a route (has `primary`) rather than a model reference. */
function isRoute(value: ModelRef | ModelRoute): value is ModelRoute {
  return 'primary' in value;
}

/**
 * The route of a step kind: the agent's route for that kind, else its default
 * (`model`, a reference or a route), with the defaults applied (the call timeout's
 * from the agent's `modelTimeoutSeconds`, when given: {@link defaultCallTimeoutMs}).
 */
export function resolveRoute(
  model: ModelRef | ModelRoute,
  routes: Partial<Record<StepKind, ModelRoute>> | undefined,
  kind: StepKind,
  modelTimeoutSeconds?: number,
): ResolvedRoute {
  const declared = routes?.[kind] ?? (isRoute(model) ? model : { primary: model });
  return {
    kind,
    models: [declared.primary, ...(declared.fallbacks ?? [])],
    ...(declared.sloP95Ms === undefined ? {} : { sloP95Ms: declared.sloP95Ms }),
    timeoutMs: declared.timeoutMs ?? defaultCallTimeoutMs(modelTimeoutSeconds),
    ...(declared.temperature === undefined ? {} : { temperature: declared.temperature }),
    retry: { ...DEFAULT_RETRY, ...defined(declared.retry) },
    breaker: { ...DEFAULT_BREAKER, ...defined(declared.breaker) },
  };
}

/** The fields of an override that are set (an explicit `undefined` keeps the default). */
function defined<T extends object>(override: Partial<T> | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(override ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Every model reference an agent names (default route, per-kind routes), each once by {@link modelKey}. */
export function modelsOf(model: ModelRef | ModelRoute, routes?: Partial<Record<StepKind, ModelRoute>>): ModelRef[] {
  const all = [...STEP_KINDS.flatMap((kind) => resolveRoute(model, routes, kind).models)];
  const seen = new Map<string, ModelRef>();
  for (const ref of all) if (!seen.has(modelKey(ref))) seen.set(modelKey(ref), ref);
  return [...seen.values()];
}

/**
 * Whether `ref` is served by Anthropic's Messages API, directly or as a Claude model on
 * Bedrock (model ids `anthropic.…`, inference profiles `us.anthropic.…`): those take a
 * temperature from 0 to 1 (Anthropic Messages API reference, `temperature`).
 */
const isClaude = (ref: ModelRef): boolean => ref.provider === 'anthropic' || (ref.provider === 'bedrock' && /(^|[.:/])anthropic\./.test(ref.modelId));

/**
 * Problems with an agent's routes, each naming its field: a timeout, SLO, retry or
 * breaker setting out of range (a window shorter than two buckets, a maximum delay under
 * the base delay); a call timeout that leaves no room in the model turn's
 * `modelTimeoutSeconds`; a model id that is empty; a fallback repeating a model of its route; a
 * temperature above 1 for a Claude model.
 */
export function routeProblems(model: ModelRef | ModelRoute, routes?: Partial<Record<StepKind, ModelRoute>>, modelTimeoutSeconds?: number): string[] {
  const problems: string[] = [];
  const check = (route: ModelRoute, field: string): void => {
    const models = [route.primary, ...(route.fallbacks ?? [])];
    const keys = new Set<string>();
    models.forEach((ref, i) => {
      const where = i === 0 ? `${field}.primary` : `${field}.fallbacks[${i - 1}]`;
      if (modelIdOf(ref).trim() === '') problems.push(`${where}.modelId: must not be empty`);
      if (keys.has(modelKey(ref))) problems.push(`${where}: ${modelKey(ref)} appears twice in the route`);
      keys.add(modelKey(ref));
    });
    if (route.timeoutMs !== undefined && (!Number.isInteger(route.timeoutMs) || route.timeoutMs < 1)) problems.push(`${field}.timeoutMs: must be a positive integer`);
    if (modelTimeoutSeconds !== undefined && route.timeoutMs !== undefined) {
      const margin = turnMarginMs(modelTimeoutSeconds);
      if (route.timeoutMs + margin > modelTimeoutSeconds * 1000) {
        problems.push(`${field}.timeoutMs: ${route.timeoutMs} ms and the ${margin} ms kept for the checkpoint do not fit in modelTimeoutSeconds (${modelTimeoutSeconds} s): no call could start`);
      }
    }
    const breakerSettings = { ...DEFAULT_BREAKER, ...defined(route.breaker) };
    if (breakerSettings.windowSeconds < 2 * breakerSettings.bucketSeconds) {
      problems.push(`${field}.breaker.windowSeconds: must be at least twice bucketSeconds (${breakerSettings.bucketSeconds}), or the window holds no whole bucket`);
    }
    const retrySettings = { ...DEFAULT_RETRY, ...defined(route.retry) };
    if (retrySettings.maxDelayMs < retrySettings.baseDelayMs) problems.push(`${field}.retry.maxDelayMs: must be at least baseDelayMs (${retrySettings.baseDelayMs})`);
    if (route.sloP95Ms !== undefined && (!Number.isFinite(route.sloP95Ms) || route.sloP95Ms <= 0)) problems.push(`${field}.sloP95Ms: must be a positive number`);
    if (route.temperature !== undefined && !(route.temperature >= 0 && route.temperature <= 2)) problems.push(`${field}.temperature: must be from 0 to 2`);
    else if (route.temperature !== undefined && route.temperature > 1) {
      const claude = models.find(isClaude);
      if (claude) problems.push(`${field}.temperature: ${route.temperature} is above 1, the most Anthropic accepts (${modelKey(claude)})`);
    }
    const retry = RetryOverrideSchema.safeParse(route.retry ?? {});
    if (!retry.success) for (const issue of retry.error.issues) problems.push(`${field}.retry.${issue.path.join('.')}: ${issue.message}`);
    const breaker = BreakerOverrideSchema.safeParse(route.breaker ?? {});
    if (!breaker.success) for (const issue of breaker.error.issues) problems.push(`${field}.breaker.${issue.path.join('.')}: ${issue.message}`);
  };
  check(isRoute(model) ? model : { primary: model }, 'model');
  for (const kind of STEP_KINDS) {
    const route = routes?.[kind];
    if (route) check(route, `routes.${kind}`);
  }
  for (const kind of Object.keys(routes ?? {})) {
    if (!(STEP_KINDS as readonly string[]).includes(kind)) problems.push(`routes.${kind}: not a step kind (${STEP_KINDS.join(', ')})`);
  }
  return problems;
}

/**
 * The kind of model turn `step` (1-based) is, from the session's checkpoints:
 * `plan` with no model turn before it, `repair` after a turn whose answer was sent
 * back, else `act`.
 */
export function stepKindOf(records: readonly CheckpointRecord[], step: number): StepKind {
  const previous = records.find((r) => r.kind === 'model' && r.step === step - 1);
  if (!previous || previous.kind !== 'model') return 'plan';
  return previous.outcome === 'repair' ? 'repair' : 'act';
}

/**
 * The delay a provider asked for, in milliseconds, from its response headers:
 * `retry-after-ms` (Anthropic, OpenAI), else `retry-after` in seconds or as an
 * HTTP date (RFC 9110 §10.2.3). Undefined when absent or unreadable; never negative.
 * @param header reads a response header by its lower-case name.
 * @param now the current time, ms since the epoch (an HTTP date's delay is counted from it).
 */
export function retryAfterMs(header: (name: string) => string | null | undefined, now: number): number | undefined {
  const ms = header('retry-after-ms');
  if (ms != null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Math.round(Number(ms)));
  const value = header('retry-after');
  if (value == null || value.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  // Only the HTTP-date shape ("Sun, 06 Nov 1994 08:49:37 GMT"): Date.parse takes much else.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value.trim())) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The fault kind of an HTTP status from a provider (see `ProviderFaultKind`):
 * 429 `throttled`; 529 and 503 `overloaded` (529 is Anthropic's `overloaded_error`,
 * Anthropic API "Errors" page); 408 and 504 `timeout`; other 5xx `server_error`;
 * 401 `authentication`; 403 `permission`; 404 `not_found`; other 4xx `invalid_request`.
 */
export function faultKindOfStatus(status: number): ProviderFaultKind {
  if (status === 429) return 'throttled';
  if (status === 529 || status === 503) return 'overloaded';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'server_error';
  if (status === 401) return 'authentication';
  if (status === 403) return 'permission';
  if (status === 404) return 'not_found';
  return 'invalid_request';
}
