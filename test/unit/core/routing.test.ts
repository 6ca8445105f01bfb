/**
 * Model routing, pure: routes with their defaults, the models an agent names,
 * the problems of a route declaration, the kind of a step, a provider's
 * Retry-After and the fault kind of an HTTP status.
 */
import { describe, expect, it } from 'vitest';
import type { ProviderFaultKind } from '../../../lambdas/core/errors';
import {
  DEFAULT_BREAKER,
  DEFAULT_MODEL_CALL_TIMEOUT_MS,
  DEFAULT_RETRY,
  defaultCallTimeoutMs,
  faultKindOfStatus,
  MODEL_TURN_MARGIN_MS,
  modelKey,
  modelsOf,
  resolveRoute,
  retryAfterMs,
  routeProblems,
  stepKindOf,
  STEP_KINDS,
  turnMarginMs,
  type ModelRef,
  type ModelRoute,
  type StepKind,
} from '../../../lambdas/core/routing';
import { inputRecord, modelRecord, text, toolRecord, toolUse } from '../support/records';

const GPT: ModelRef = { provider: 'openai', modelId: 'gpt-a' };
const CLAUDE: ModelRef = { provider: 'anthropic', modelId: 'claude-b' };
const NOVA: ModelRef = { provider: 'bedrock', modelId: 'nova-c', region: 'us-west-2' };
const SCRIPTED: ModelRef = {
  provider: 'scripted',
  script: { schemaVersion: 1, modelId: 'scripted/unit-v1', turns: [{ response: { content: [text('{}')], stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 1 } } }] },
};

/** A header lookup over a plain record, as `fetch`'s `Headers.get` answers: null when absent. */
const headers =
  (values: Record<string, string>) =>
  (name: string): string | null =>
    values[name] ?? null;

describe('turnMarginMs', () => {
  it('keeps MODEL_TURN_MARGIN_MS (5 s) of a model turn of 25 s or more', () => {
    expect(MODEL_TURN_MARGIN_MS).toBe(5_000);
    for (const seconds of [25, 60, 120, 900]) expect(turnMarginMs(seconds), `${seconds} s`).toBe(5_000);
  });

  it('keeps a fifth of a shorter model turn', () => {
    expect(turnMarginMs(5)).toBe(1_000);
    expect(turnMarginMs(1)).toBe(200);
    expect(turnMarginMs(10)).toBe(2_000);
    expect(turnMarginMs(24)).toBe(4_800);
  });
});

describe('defaultCallTimeoutMs', () => {
  it('is DEFAULT_MODEL_CALL_TIMEOUT_MS (50 s) without a model turn timeout, and for the default 120 s', () => {
    expect(DEFAULT_MODEL_CALL_TIMEOUT_MS).toBe(50_000);
    expect(defaultCallTimeoutMs()).toBe(50_000);
    expect(defaultCallTimeoutMs(undefined)).toBe(50_000);
    expect(defaultCallTimeoutMs(120)).toBe(50_000);
  });

  it('stays at 50 s for any model turn with room for it and the margin', () => {
    // 60 s leaves 55 s after its 5 s margin: still 50 s. 55 s is the shortest turn that leaves 50 s.
    expect(defaultCallTimeoutMs(60)).toBe(50_000);
    expect(defaultCallTimeoutMs(55)).toBe(50_000);
    expect(defaultCallTimeoutMs(900)).toBe(50_000);
  });

  it('is what a shorter model turn leaves after its margin', () => {
    expect(defaultCallTimeoutMs(54)).toBe(49_000);
    expect(defaultCallTimeoutMs(30)).toBe(25_000);
    expect(defaultCallTimeoutMs(5)).toBe(4_000);
    expect(defaultCallTimeoutMs(1)).toBe(800);
  });

  it('always fits with the margin in the model turn, so routeProblems accepts it declared', () => {
    const misfits: string[] = [];
    for (let seconds = 1; seconds <= 900; seconds++) {
      const timeoutMs = defaultCallTimeoutMs(seconds);
      if (timeoutMs < 1 || timeoutMs + turnMarginMs(seconds) > seconds * 1000) misfits.push(`${seconds} s: ${timeoutMs} ms`);
      misfits.push(...routeProblems({ primary: GPT, timeoutMs }, undefined, seconds).map((problem) => `${seconds} s: ${problem}`));
    }
    expect(misfits).toEqual([]);
  });
});

describe('resolveRoute', () => {
  it('makes a model reference a route of one model with every default', () => {
    const route = resolveRoute(GPT, undefined, 'act');
    expect(route).toEqual({ kind: 'act', models: [GPT], timeoutMs: DEFAULT_MODEL_CALL_TIMEOUT_MS, retry: DEFAULT_RETRY, breaker: DEFAULT_BREAKER });
    expect(route).not.toHaveProperty('sloP95Ms');
  });

  it('takes a route as the model: primary first, then the fallbacks in order, with its SLO and timeout', () => {
    const route = resolveRoute({ primary: GPT, fallbacks: [CLAUDE, NOVA], sloP95Ms: 2_500, timeoutMs: 30_000 }, undefined, 'plan');
    expect(route.kind).toBe('plan');
    expect(route.models).toEqual([GPT, CLAUDE, NOVA]);
    expect(route.sloP95Ms).toBe(2_500);
    expect(route.timeoutMs).toBe(30_000);
  });

  it('uses the route declared for the step kind, else the default, for every kind', () => {
    const routes: Partial<Record<StepKind, ModelRoute>> = { repair: { primary: CLAUDE, fallbacks: [NOVA] }, summarise: { primary: NOVA } };
    expect(resolveRoute(GPT, routes, 'repair').models).toEqual([CLAUDE, NOVA]);
    expect(resolveRoute(GPT, routes, 'summarise').models).toEqual([NOVA]);
    expect(resolveRoute(GPT, routes, 'plan').models).toEqual([GPT]);
    expect(resolveRoute(GPT, routes, 'act').models).toEqual([GPT]);
    expect(resolveRoute(GPT, {}, 'act').models).toEqual([GPT]);
  });

  it('takes nothing from the default route into a per-kind route: fallbacks, SLO, timeout and overrides are its own', () => {
    const model: ModelRoute = { primary: GPT, fallbacks: [NOVA], sloP95Ms: 900, timeoutMs: 5_000, retry: { maxAttempts: 1 }, breaker: { minCalls: 2 } };
    const route = resolveRoute(model, { act: { primary: CLAUDE } }, 'act');
    expect(route).toEqual({ kind: 'act', models: [CLAUDE], timeoutMs: DEFAULT_MODEL_CALL_TIMEOUT_MS, retry: DEFAULT_RETRY, breaker: DEFAULT_BREAKER });
  });

  it('merges retry and breaker overrides with the defaults field by field', () => {
    const route = resolveRoute(
      { primary: GPT, retry: { maxAttempts: 5, maxRetryAfterMs: 1_000 }, breaker: { minCalls: 3, halfOpenAfterSeconds: 10 } },
      { act: { primary: CLAUDE, retry: { baseDelayMs: 10 }, breaker: { errorRateThreshold: 0.25 } } },
      'plan',
    );
    expect(route.retry).toEqual({ maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 8_000, maxRetryAfterMs: 1_000 });
    expect(route.breaker).toEqual({ windowSeconds: 60, bucketSeconds: 5, minCalls: 3, errorRateThreshold: 0.5, halfOpenAfterSeconds: 10 });

    const act = resolveRoute(GPT, { act: { primary: CLAUDE, retry: { baseDelayMs: 10 }, breaker: { errorRateThreshold: 0.25 } } }, 'act');
    expect(act.retry).toEqual({ ...DEFAULT_RETRY, baseDelayMs: 10 });
    expect(act.breaker).toEqual({ ...DEFAULT_BREAKER, errorRateThreshold: 0.25 });
  });

  it('keeps a default where an override is explicitly undefined', () => {
    const route = resolveRoute({ primary: GPT, retry: { maxAttempts: undefined, baseDelayMs: 10 }, breaker: { minCalls: undefined } }, undefined, 'act');
    expect(route.retry).toEqual({ ...DEFAULT_RETRY, baseDelayMs: 10 });
    expect(route.breaker).toEqual(DEFAULT_BREAKER);
  });

  it('does not change the defaults it merges into', () => {
    const before = { retry: { ...DEFAULT_RETRY }, breaker: { ...DEFAULT_BREAKER } };
    const route = resolveRoute({ primary: GPT, retry: { maxAttempts: 1 }, breaker: { minCalls: 1 } }, undefined, 'act');
    expect(route.retry).not.toBe(DEFAULT_RETRY);
    expect({ retry: DEFAULT_RETRY, breaker: DEFAULT_BREAKER }).toEqual(before);
  });

  it('gives a route that declares no timeout the default call timeout of the model turn', () => {
    expect(resolveRoute(GPT, undefined, 'act', 5).timeoutMs).toBe(4_000);
    expect(resolveRoute(GPT, undefined, 'act', 60).timeoutMs).toBe(50_000);
    expect(resolveRoute(GPT, undefined, 'act', 120).timeoutMs).toBe(50_000);
    expect(resolveRoute(GPT, undefined, 'act', undefined).timeoutMs).toBe(DEFAULT_MODEL_CALL_TIMEOUT_MS);
    expect(resolveRoute({ primary: GPT, fallbacks: [CLAUDE] }, undefined, 'plan', 30).timeoutMs).toBe(25_000);
    expect(resolveRoute(GPT, { summarise: { primary: NOVA } }, 'summarise', 10).timeoutMs).toBe(8_000);
  });

  it('keeps a declared timeout whatever the model turn’s (routeProblems judges whether it fits)', () => {
    expect(resolveRoute({ primary: GPT, timeoutMs: 30_000 }, undefined, 'act', 5).timeoutMs).toBe(30_000);
    expect(resolveRoute({ primary: GPT, timeoutMs: 3_000 }, undefined, 'act', 120).timeoutMs).toBe(3_000);
    expect(resolveRoute(GPT, { repair: { primary: CLAUDE, timeoutMs: 70_000 } }, 'repair', 120).timeoutMs).toBe(70_000);
  });

  it('does not take the default route’s timeout into a per-kind route that declares none', () => {
    const model: ModelRoute = { primary: GPT, timeoutMs: 3_000 };
    expect(resolveRoute(model, { act: { primary: CLAUDE } }, 'act', 5).timeoutMs).toBe(4_000);
    expect(resolveRoute(model, { act: { primary: CLAUDE } }, 'plan', 5).timeoutMs).toBe(3_000);
  });
});

describe('modelsOf', () => {
  it('lists every model of every route once, in step-kind order', () => {
    const models = modelsOf({ primary: GPT, fallbacks: [CLAUDE] }, { plan: { primary: NOVA, fallbacks: [GPT] }, repair: { primary: CLAUDE, fallbacks: [NOVA] } });
    expect(models).toEqual([NOVA, GPT, CLAUDE]);
  });

  it('treats references with the same health key as one model (the first one kept); the same model served elsewhere is another', () => {
    const same: ModelRef = { provider: 'openai', modelId: 'gpt-a', pricing: { inputUsdPerMillionTokens: 1, outputUsdPerMillionTokens: 1, source: 'test', asOf: '2026-11-21' } };
    const elsewhere: ModelRef = { provider: 'openai', modelId: 'gpt-a', baseUrl: 'https://llm.example.com/v1' };
    const models = modelsOf(GPT, { plan: { primary: same }, act: { primary: elsewhere }, summarise: { primary: { provider: 'anthropic', modelId: 'gpt-a' } } });
    // In step-kind order (plan first): `same` stands for GPT.
    expect(models).toEqual([same, elsewhere, { provider: 'anthropic', modelId: 'gpt-a' }]);
    expect(models.map(modelKey)).toEqual(['openai/gpt-a', 'openai/gpt-a@llm.example.com', 'anthropic/gpt-a']);
  });

  it('keys a model by where it is served: a Bedrock region or endpoint host, a base URL’s host', () => {
    expect(modelKey({ provider: 'bedrock', modelId: 'amazon.nova-pro-v1:0', region: 'eu-west-1' })).toBe('bedrock/amazon.nova-pro-v1:0@eu-west-1');
    expect(modelKey({ provider: 'bedrock', modelId: 'amazon.nova-pro-v1:0', endpoint: 'https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com' })).toBe(
      'bedrock/amazon.nova-pro-v1:0@vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com',
    );
    expect(modelKey({ provider: 'bedrock', modelId: 'amazon.nova-pro-v1:0' })).toBe('bedrock/amazon.nova-pro-v1:0');
    expect(modelKey({ provider: 'anthropic', modelId: 'claude-x', baseUrl: 'http://127.0.0.1:4611' })).toBe('anthropic/claude-x@127.0.0.1:4611');
  });

  it('names the scripted model by its script’s model id', () => {
    expect(modelsOf(SCRIPTED).map(modelKey)).toEqual(['scripted/scripted/unit-v1']);
  });
});

describe('routeProblems', () => {
  it('finds nothing wrong with well-formed routes', () => {
    expect(routeProblems(GPT)).toEqual([]);
    expect(
      routeProblems(
        { primary: GPT, fallbacks: [CLAUDE], sloP95Ms: 1_500.5, timeoutMs: 20_000, retry: { maxAttempts: 10, baseDelayMs: 0 }, breaker: { errorRateThreshold: 1, minCalls: 1 } },
        { repair: { primary: CLAUDE, fallbacks: [GPT] }, summarise: { primary: SCRIPTED } },
      ),
    ).toEqual([]);
  });

  it('names an empty model id, primary or fallback', () => {
    expect(routeProblems({ provider: 'openai', modelId: '' })).toEqual(['model.primary.modelId: must not be empty']);
    expect(routeProblems(GPT, { act: { primary: CLAUDE, fallbacks: [NOVA, { provider: 'bedrock', modelId: '   ' }] } })).toEqual([
      'routes.act.fallbacks[1].modelId: must not be empty',
    ]);
  });

  it('names a model that appears twice in one route (the same model in two routes is fine)', () => {
    const again: ModelRef = { provider: 'openai', modelId: 'gpt-a', apiKey: { envVar: 'OTHER_KEY' } };
    expect(routeProblems({ primary: GPT, fallbacks: [CLAUDE, again] })).toEqual(['model.fallbacks[1]: openai/gpt-a appears twice in the route']);
    // Served elsewhere, it is another model: a fallback to the same model in another region is fine.
    const otherRegion: ModelRef = { provider: 'bedrock', modelId: 'nova', region: 'eu-west-1' };
    expect(routeProblems({ primary: { provider: 'bedrock', modelId: 'nova', region: 'us-east-1' }, fallbacks: [otherRegion] })).toEqual([]);
    expect(routeProblems({ primary: GPT, fallbacks: [CLAUDE] }, { plan: { primary: CLAUDE, fallbacks: [GPT] } })).toEqual([]);
  });

  it('names a timeout that is not a positive integer', () => {
    for (const timeoutMs of [0, -1, 1.5, Number.NaN]) {
      expect(routeProblems({ primary: GPT, timeoutMs }), `timeoutMs ${timeoutMs}`).toEqual(['model.timeoutMs: must be a positive integer']);
    }
  });

  it('names an SLO that is not a positive finite number', () => {
    for (const sloP95Ms of [0, -100, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(routeProblems(GPT, { act: { primary: CLAUDE, sloP95Ms } }), `sloP95Ms ${sloP95Ms}`).toEqual(['routes.act.sloP95Ms: must be a positive number']);
    }
  });

  it('names a retry setting out of range, with its field', () => {
    const problems = routeProblems({ primary: GPT, retry: { maxAttempts: 0 } });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^model\.retry\.maxAttempts: /);
    expect(routeProblems({ primary: GPT, retry: { maxAttempts: 11, baseDelayMs: -1 } })).toEqual([
      expect.stringMatching(/^model\.retry\.maxAttempts: /),
      expect.stringMatching(/^model\.retry\.baseDelayMs: /),
    ]);
  });

  it('names a breaker setting out of range, with its field', () => {
    const problems = routeProblems(GPT, { repair: { primary: CLAUDE, breaker: { errorRateThreshold: 1.5 } } });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^routes\.repair\.breaker\.errorRateThreshold: /);
    expect(routeProblems({ primary: GPT, breaker: { errorRateThreshold: 0, bucketSeconds: 0.5 } })).toEqual([
      expect.stringMatching(/^model\.breaker\.bucketSeconds: /),
      expect.stringMatching(/^model\.breaker\.errorRateThreshold: /),
    ]);
  });

  it('names a route declared for something that is not a step kind, listing the kinds', () => {
    const routes = { act: { primary: CLAUDE }, review: { primary: NOVA } } as Partial<Record<StepKind, ModelRoute>>;
    expect(routeProblems(GPT, routes)).toEqual([`routes.review: not a step kind (${STEP_KINDS.join(', ')})`]);
    expect(STEP_KINDS.join(', ')).toBe('plan, act, repair, summarise');
  });

  it('reports every problem of every route, not just the first', () => {
    const problems = routeProblems(
      { primary: { provider: 'openai', modelId: '' }, fallbacks: [CLAUDE, CLAUDE], timeoutMs: 0 },
      { act: { primary: GPT, sloP95Ms: -1, retry: { maxAttempts: 0 } } },
    );
    expect(problems).toEqual([
      'model.primary.modelId: must not be empty',
      'model.fallbacks[1]: anthropic/claude-b appears twice in the route',
      'model.timeoutMs: must be a positive integer',
      'routes.act.sloP95Ms: must be a positive number',
      expect.stringMatching(/^routes\.act\.retry\.maxAttempts: /),
    ]);
  });

  it('names a declared timeout that, with the margin, does not fit in the model turn', () => {
    expect(routeProblems({ primary: GPT, timeoutMs: 116_000 }, undefined, 120)).toEqual([
      'model.timeoutMs: 116000 ms and the 5000 ms kept for the checkpoint do not fit in modelTimeoutSeconds (120 s): no call could start',
    ]);
    expect(routeProblems(GPT, { act: { primary: CLAUDE, timeoutMs: 4_001 } }, 5)).toEqual([
      'routes.act.timeoutMs: 4001 ms and the 1000 ms kept for the checkpoint do not fit in modelTimeoutSeconds (5 s): no call could start',
    ]);
  });

  it('accepts a declared timeout that fits with the margin, up to the millisecond', () => {
    expect(routeProblems({ primary: GPT, timeoutMs: 115_000 }, undefined, 120)).toEqual([]);
    expect(routeProblems({ primary: GPT, timeoutMs: 115_001 }, undefined, 120)).toEqual([expect.stringMatching(/^model\.timeoutMs: 115001 ms /)]);
    expect(routeProblems({ primary: GPT, timeoutMs: 4_000 }, { act: { primary: CLAUDE, timeoutMs: 1_000 } }, 5)).toEqual([]);
    expect(routeProblems({ primary: GPT, timeoutMs: 60_000 }, undefined, 120)).toEqual([]);
  });

  it('names each route whose timeout does not fit, and only those', () => {
    expect(
      routeProblems({ primary: GPT, timeoutMs: 20_000 }, { plan: { primary: CLAUDE, timeoutMs: 56_000 }, summarise: { primary: NOVA, timeoutMs: 55_000 } }, 60),
    ).toEqual(['routes.plan.timeoutMs: 56000 ms and the 5000 ms kept for the checkpoint do not fit in modelTimeoutSeconds (60 s): no call could start']);
  });

  it('does not judge a timeout against the model turn when none is given, nor an undeclared timeout', () => {
    expect(routeProblems({ primary: GPT, timeoutMs: 900_000 })).toEqual([]);
    expect(routeProblems(GPT, { act: { primary: CLAUDE } }, 1)).toEqual([]);
    expect(routeProblems({ primary: GPT, fallbacks: [CLAUDE] }, { repair: { primary: NOVA } }, 5)).toEqual([]);
  });

  it('names a timeout both not an integer and too long once for each', () => {
    expect(routeProblems({ primary: GPT, timeoutMs: 150_000.5 }, undefined, 120)).toEqual([
      'model.timeoutMs: must be a positive integer',
      expect.stringMatching(/^model\.timeoutMs: 150000\.5 ms and the 5000 ms kept for the checkpoint do not fit/),
    ]);
  });

  it('names a breaker window shorter than two buckets', () => {
    const problem = (field: string, bucketSeconds: number) =>
      `${field}.breaker.windowSeconds: must be at least twice bucketSeconds (${bucketSeconds}), or the window holds no whole bucket`;
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: 19, bucketSeconds: 10 } })).toEqual([problem('model', 10)]);
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: 20, bucketSeconds: 10 } })).toEqual([]);
    // Only one of the two overridden: the other is the default (window 60 s, buckets of 5 s).
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: 9 } })).toEqual([problem('model', 5)]);
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: 10 } })).toEqual([]);
    expect(routeProblems(GPT, { repair: { primary: CLAUDE, breaker: { bucketSeconds: 31 } } })).toEqual([problem('routes.repair', 31)]);
    expect(routeProblems(GPT, { repair: { primary: CLAUDE, breaker: { bucketSeconds: 30 } } })).toEqual([]);
    // An explicit undefined keeps the default.
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: undefined, bucketSeconds: 31 } })).toEqual([problem('model', 31)]);
    expect(routeProblems({ primary: GPT, breaker: { windowSeconds: 9, bucketSeconds: undefined } })).toEqual([problem('model', 5)]);
  });

  it('names a maximum retry delay under the base delay', () => {
    expect(routeProblems({ primary: GPT, retry: { maxDelayMs: 100 } })).toEqual(['model.retry.maxDelayMs: must be at least baseDelayMs (250)']);
    expect(routeProblems(GPT, { summarise: { primary: NOVA, retry: { baseDelayMs: 9_000 } } })).toEqual([
      'routes.summarise.retry.maxDelayMs: must be at least baseDelayMs (9000)',
    ]);
    expect(routeProblems({ primary: GPT, retry: { baseDelayMs: 1_000, maxDelayMs: 1_000 } })).toEqual([]);
    expect(routeProblems({ primary: GPT, retry: { baseDelayMs: 0, maxDelayMs: 0 } })).toEqual([]);
    expect(routeProblems({ primary: GPT, retry: { baseDelayMs: 8_000 } })).toEqual([]);
  });
});

describe('stepKindOf', () => {
  const tools = (step: number, id: string) => modelRecord(step, [toolUse(id, 'echo')]);
  const repair = (step: number) => modelRecord(step, [text('not json')], { outcome: 'repair', validationErrors: ['(root): not JSON'] });

  it('is plan for the first model turn', () => {
    expect(stepKindOf([], 1)).toBe('plan');
    expect(stepKindOf([inputRecord('q')], 1)).toBe('plan');
  });

  it('is act after a turn that asked for tools', () => {
    expect(stepKindOf([inputRecord('q'), tools(1, 'c1'), toolRecord(1, 'c1', '{}')], 2)).toBe('act');
  });

  it('is repair after a turn whose answer was sent back, and act again after that', () => {
    const records = [inputRecord('q'), tools(1, 'c1'), toolRecord(1, 'c1', '{}'), repair(2)];
    expect(stepKindOf(records, 3)).toBe('repair');
    expect(stepKindOf([...records, tools(3, 'c3'), toolRecord(3, 'c3', '{}')], 4)).toBe('act');
    expect(stepKindOf([inputRecord('q'), repair(1)], 2)).toBe('repair');
  });

  it('looks at the turn just before the step, not at the last record', () => {
    const records = [inputRecord('q'), repair(1), tools(2, 'c2'), toolRecord(2, 'c2', '{}')];
    // Replaying step 2 (after a resume): the turn before it was sent back for repair.
    expect(stepKindOf(records, 2)).toBe('repair');
    expect(stepKindOf(records, 3)).toBe('act');
  });

  it('does not take a tool record of the previous step for a model turn', () => {
    expect(stepKindOf([inputRecord('q'), toolRecord(1, 'c1', '{}')], 2)).toBe('plan');
  });
});

describe('retryAfterMs', () => {
  const NOW = Date.parse('2026-03-02T10:00:00.000Z');

  it('reads retry-after-ms as milliseconds, rounded, never negative', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '1500' }), NOW)).toBe(1_500);
    expect(retryAfterMs(headers({ 'retry-after-ms': '250.6' }), NOW)).toBe(251);
    expect(retryAfterMs(headers({ 'retry-after-ms': '-40' }), NOW)).toBe(0);
  });

  it('prefers retry-after-ms to retry-after', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '120', 'retry-after': '30' }), NOW)).toBe(120);
  });

  it('falls back to retry-after when retry-after-ms is empty or unreadable', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': 'soon', 'retry-after': '2' }), NOW)).toBe(2_000);
    expect(retryAfterMs(headers({ 'retry-after-ms': ' ', 'retry-after': '2' }), NOW)).toBe(2_000);
  });

  it('reads retry-after in whole or decimal seconds', () => {
    expect(retryAfterMs(headers({ 'retry-after': '30' }), NOW)).toBe(30_000);
    expect(retryAfterMs(headers({ 'retry-after': ' 7 ' }), NOW)).toBe(7_000);
    expect(retryAfterMs(headers({ 'retry-after': '1.5' }), NOW)).toBe(1_500);
    expect(retryAfterMs(headers({ 'retry-after': '0.0004' }), NOW)).toBe(0);
    expect(retryAfterMs(headers({ 'retry-after': '0' }), NOW)).toBe(0);
  });

  it('reads retry-after as an HTTP date, relative to now', () => {
    const at = new Date(NOW + 45_000).toUTCString();
    expect(at).toBe('Mon, 02 Mar 2026 10:00:45 GMT');
    expect(retryAfterMs(headers({ 'retry-after': at }), NOW)).toBe(45_000);
    expect(retryAfterMs(headers({ 'retry-after': at }), NOW + 40_000)).toBe(5_000);
  });

  it('reads an HTTP date already past as 0', () => {
    expect(retryAfterMs(headers({ 'retry-after': 'Mon, 02 Mar 2026 09:59:00 GMT' }), NOW)).toBe(0);
  });

  it('is undefined for an unreadable retry-after', () => {
    // Date.parse would read '-1', 'later 2' and '1,5' as dates in 2001: only the HTTP-date shape is a date.
    for (const value of ['soon', 'in a minute', '5 seconds', '1e3', 'Infinity', '', '-1', 'later 2', '1,5', '2026-03-02']) {
      expect(retryAfterMs(headers({ 'retry-after': value }), NOW), JSON.stringify(value)).toBeUndefined();
    }
  });

  it('is undefined without either header (null or undefined from the lookup)', () => {
    expect(retryAfterMs(headers({}), NOW)).toBeUndefined();
    expect(retryAfterMs(() => undefined, NOW)).toBeUndefined();
    expect(retryAfterMs(headers({ 'x-request-id': 'req-1' }), NOW)).toBeUndefined();
  });
});

describe('faultKindOfStatus', () => {
  const cases: Array<[number, ProviderFaultKind]> = [
    [400, 'invalid_request'],
    [401, 'authentication'],
    [403, 'permission'],
    [404, 'not_found'],
    [408, 'timeout'],
    [413, 'invalid_request'],
    [422, 'invalid_request'],
    [429, 'throttled'],
    [500, 'server_error'],
    [502, 'server_error'],
    [503, 'overloaded'],
    [504, 'timeout'],
    [529, 'overloaded'],
  ];

  it.each(cases)('maps HTTP %i to %s', (status, kind) => {
    expect(faultKindOfStatus(status)).toBe(kind);
  });
});

describe('route temperature', () => {
  it('carries a declared temperature into the resolved route, and none otherwise', () => {
    expect(resolveRoute({ primary: { provider: 'openai', modelId: 'gpt-t' }, temperature: 0.3 }, undefined, 'act').temperature).toBe(0.3);
    expect(resolveRoute({ provider: 'openai', modelId: 'gpt-t' }, undefined, 'act')).not.toHaveProperty('temperature');
  });

  it('names a temperature above 1 in a route with a Claude model, directly or on Bedrock', () => {
    const claude = { provider: 'anthropic', modelId: 'claude-t' } as const;
    expect(routeProblems({ primary: { provider: 'openai', modelId: 'gpt-t' }, fallbacks: [claude], temperature: 1.5 })).toEqual([
      'model.temperature: 1.5 is above 1, the most Anthropic accepts (anthropic/claude-t)',
    ]);
    expect(routeProblems({ primary: { provider: 'bedrock', modelId: 'us.anthropic.claude-t-v1:0', region: 'us-east-1' }, temperature: 1.2 })[0]).toMatch(/^model\.temperature: 1\.2 is above 1/);
    expect(routeProblems({ primary: claude, temperature: 1 })).toEqual([]);
    expect(routeProblems({ primary: { provider: 'bedrock', modelId: 'amazon.nova-t-v1:0', region: 'us-east-1' }, temperature: 1.5 })).toEqual([]);
  });

  it('names a temperature outside 0 to 2', () => {
    expect(routeProblems({ primary: { provider: 'openai', modelId: 'gpt-t' }, temperature: 2.5 })).toEqual(['model.temperature: must be from 0 to 2']);
    expect(routeProblems({ provider: 'openai', modelId: 'gpt-t' }, { repair: { primary: { provider: 'openai', modelId: 'gpt-t' }, temperature: -1 } })).toEqual([
      'routes.repair.temperature: must be from 0 to 2',
    ]);
  });
});
