/**
 * The model router: a call goes down its route (primary, then fallbacks), with
 * retries of transient faults, the circuit breakers' shared state (an in-memory
 * health book with the DynamoDB store's semantics) and half-open probes.
 * Providers are fakes following a per-test script; the router's clock is
 * controlled (a slow call advances it inside `converse`).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MIN_CALL_MS, routeModelCall, transitionsOf, type RouterDeps, type RoutedCall } from '../../../lambdas/adapters/model-router';
import type { ModelProvider, ModelRequest, ModelResponse } from '../../../lambdas/core/contracts/model';
import { ModelProviderError, ModelRouteFailedError, ScriptMismatchError, TransientError, type ProviderFaultKind } from '../../../lambdas/core/errors';
import { binUpperBoundMs, latencyBin, type Breaker } from '../../../lambdas/core/health';
import { modelIdOf, modelKey, resolveRoute, type ModelRef, type ModelRoute, type ResolvedRoute } from '../../../lambdas/core/routing';
import { MemoryHealthBook } from '../support/fakes';
import { rejection } from '../support/rejection';

const GPT: ModelRef = { provider: 'openai', modelId: 'gpt-a' };
const CLAUDE: ModelRef = { provider: 'anthropic', modelId: 'claude-b' };
const NOVA: ModelRef = { provider: 'bedrock', modelId: 'nova-c' };
const GPT_KEY = modelKey(GPT);

const T0 = Date.parse('2026-03-02T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
/** Tiny delays, so retried tests stay fast. */
const FAST = { baseDelayMs: 1, maxDelayMs: 5 };

const REQUEST: ModelRequest = {
  modelId: 'placeholder',
  system: 'Be brief.',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'Look at alert 42.' }] }],
  tools: [{ name: 'echo', description: 'Returns its text.', inputSchema: { type: 'object' } }],
  maxTokens: 512,
};

/** One scripted answer of a fake model: an answer, a provider fault, or any error; each may take some time. */
type Turn =
  | { readonly answer: true; readonly latencyMs?: number; readonly gate?: Promise<void> }
  | { readonly fault: ProviderFaultKind; readonly status?: number; readonly retryAfterMs?: number; readonly latencyMs?: number }
  | { readonly error: Error; readonly latencyMs?: number };

const ANSWER: Turn = { answer: true };
const fault = (kind: ProviderFaultKind, fields: { status?: number; retryAfterMs?: number; latencyMs?: number } = {}): Turn => ({ fault: kind, ...fields });
const slow = (latencyMs: number): Turn => ({ answer: true, latencyMs });

/** The router's clock: moves only when a fake model says a call took time. */
class Clock {
  ms = T0;
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

interface FakeCall {
  readonly request: ModelRequest;
  /** The router's clock when the call began. */
  readonly clockMs: number;
  /** Real time when the call began (performance.now). */
  readonly realMs: number;
}

/** A model provider that follows its script, then `afterwards` for every further call; every call is recorded. */
class FakeModel implements ModelProvider {
  readonly name: string;
  readonly calls: FakeCall[] = [];

  constructor(
    private readonly ref: ModelRef,
    private readonly clock: Clock,
    private readonly script: Turn[],
    private readonly afterwards: Turn,
  ) {
    this.name = ref.provider;
  }

  async converse(request: ModelRequest): Promise<ModelResponse> {
    this.calls.push({ request: structuredClone(request), clockMs: this.clock.ms, realMs: performance.now() });
    const n = this.calls.length;
    const turn = this.script[n - 1] ?? this.afterwards;
    if ('gate' in turn && turn.gate) await turn.gate;
    this.clock.advance(turn.latencyMs ?? 0);
    const modelId = modelIdOf(this.ref);
    if ('error' in turn) throw turn.error;
    if ('fault' in turn) {
      throw new ModelProviderError(`${this.ref.provider} ${modelId}: ${turn.fault}`, {
        provider: this.ref.provider,
        modelId,
        kind: turn.fault,
        requestId: `${modelId}-req-${n}`,
        ...(turn.status === undefined ? {} : { status: turn.status }),
        ...(turn.retryAfterMs === undefined ? {} : { retryAfterMs: turn.retryAfterMs }),
      });
    }
    return { content: [{ type: 'text', text: `answer ${n} of ${modelId}` }], stopReason: 'end_turn', usage: { inputTokens: 10, outputTokens: 2 }, modelId, requestId: `${modelId}-req-${n}` };
  }
}

interface ModelScript {
  readonly script?: Turn[];
  /** What every call after the script gets. @default an answer at once */
  readonly afterwards?: Turn;
}

/** A health book, a clock and fake models (GPT, CLAUDE, NOVA) scripted per test. */
function harness(scripts: { gpt?: ModelScript; claude?: ModelScript; nova?: ModelScript } = {}) {
  const clock = new Clock();
  const health = new MemoryHealthBook();
  const fake = (ref: ModelRef, s: ModelScript = {}): FakeModel => new FakeModel(ref, clock, s.script ?? [], s.afterwards ?? ANSWER);
  const models = { gpt: fake(GPT, scripts.gpt), claude: fake(CLAUDE, scripts.claude), nova: fake(NOVA, scripts.nova) };
  const byKey = new Map<string, FakeModel>([
    [modelKey(GPT), models.gpt],
    [modelKey(CLAUDE), models.claude],
    [modelKey(NOVA), models.nova],
  ]);
  const adapters: Array<{ key: string; timeoutMs: number }> = [];
  const healthErrors: Array<{ error: unknown; key: string }> = [];
  const deps: RouterDeps = {
    health,
    now: clock.now,
    provider: (ref, timeoutMs) => {
      adapters.push({ key: modelKey(ref), timeoutMs });
      const model = byKey.get(modelKey(ref));
      if (!model) throw new Error(`no fake model ${modelKey(ref)}`);
      return model;
    },
    onHealthError: (error, key) => healthErrors.push({ error, key }),
  };
  return { clock, health, models, deps, adapters, healthErrors };
}

/** The act route of GPT with CLAUDE (and NOVA, if asked) as fallbacks, tiny retry delays, and the given overrides. */
function route(overrides: Partial<ModelRoute> = {}): ResolvedRoute {
  const { retry, ...rest } = overrides;
  return resolveRoute({ primary: GPT, fallbacks: [CLAUDE], retry: { ...FAST, ...retry }, ...rest }, undefined, 'act');
}

/** The breaker of GPT as the health book holds it. */
const breakerOf = (health: MemoryHealthBook): Breaker | undefined => health.breakers.get(GPT_KEY);

/** Opens GPT's circuit in the health book as a trip would have, `ago` ms before now. */
function seedOpen(h: ReturnType<typeof harness>, ago: number, reason = 'error rate 1.00 (5 of 5 calls) at or above 0.5'): Breaker {
  const breaker: Breaker = { state: 'open', since: h.clock.ms - ago, reason, version: 1 };
  h.health.breakers.set(GPT_KEY, breaker);
  return breaker;
}

/** The delays (ms) of the timers set while `fn` runs: the retries' backoff. */
async function timersDuring<T>(fn: () => Promise<T>): Promise<{ result: T; delays: number[] }> {
  const spy = vi.spyOn(globalThis, 'setTimeout');
  try {
    const result = await fn();
    return { result, delays: spy.mock.calls.map((call) => Number(call[1] ?? 0)) };
  } finally {
    spy.mockRestore();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('routeModelCall: the route', () => {
  it('returns the primary’s answer after one call when it answers', async () => {
    const h = harness({ gpt: { script: [slow(120)] } });
    const routed = await routeModelCall(route({ timeoutMs: 5_000 }), REQUEST, h.deps);
    expect(routed.response.content).toEqual([{ type: 'text', text: 'answer 1 of gpt-a' }]);
    expect(routed.servedBy).toEqual({ provider: 'openai', modelId: 'gpt-a', index: 0 });
    expect(routed.attempts).toEqual([{ provider: 'openai', modelId: 'gpt-a', outcome: 'answered', calls: 1, latencyMs: 120, requestId: 'gpt-a-req-1' }]);
    expect(routed.transitions).toEqual([]);
    expect(h.models.claude.calls).toHaveLength(0);
    expect(h.adapters).toEqual([{ key: GPT_KEY, timeoutMs: 5_000 }]);
  });

  it('sends each model the request with its own model id, leaving the caller’s request as it was', async () => {
    const h = harness({ gpt: { script: [fault('invalid_request', { status: 400 })] } });
    const request = structuredClone(REQUEST);
    const routed = await routeModelCall(route(), request, h.deps);
    expect(routed.servedBy.index).toBe(1);
    expect(h.models.gpt.calls.map((c) => c.request)).toEqual([{ ...REQUEST, modelId: 'gpt-a' }]);
    expect(h.models.claude.calls.map((c) => c.request)).toEqual([{ ...REQUEST, modelId: 'claude-b' }]);
    expect(request).toEqual(REQUEST);
  });

  it.each<[ProviderFaultKind, number]>([
    ['invalid_request', 400],
    ['authentication', 401],
    ['permission', 403],
    ['not_found', 404],
  ])('does not retry a terminal fault (%s, %i): the next model is called at once', async (kind, status) => {
    const h = harness({ gpt: { script: [fault(kind, { status })] } });
    const { result: routed, delays } = await timersDuring(() => routeModelCall(route({ retry: { maxAttempts: 3 } }), REQUEST, h.deps));
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(delays).toEqual([]);
    expect(routed.servedBy).toEqual({ provider: 'anthropic', modelId: 'claude-b', index: 1 });
    expect(routed.attempts).toEqual([
      { provider: 'openai', modelId: 'gpt-a', outcome: 'failed', calls: 1, latencyMs: 0, fault: kind, status, requestId: 'gpt-a-req-1', reason: `openai gpt-a: ${kind}` },
      { provider: 'anthropic', modelId: 'claude-b', outcome: 'answered', calls: 1, latencyMs: 0, requestId: 'claude-b-req-1' },
    ]);
  });

  it('moves to the next model when one fails its transient faults past its retries', async () => {
    const h = harness({ gpt: { afterwards: fault('overloaded', { status: 529 }) }, claude: { afterwards: fault('server_error', { status: 500 }) } });
    const routed = await routeModelCall(resolveRoute({ primary: GPT, fallbacks: [CLAUDE, NOVA], retry: { ...FAST, maxAttempts: 2 } }, undefined, 'act'), REQUEST, h.deps);
    expect(routed.servedBy).toEqual({ provider: 'bedrock', modelId: 'nova-c', index: 2 });
    expect(routed.attempts.map((a) => [a.modelId, a.outcome, a.calls, a.fault])).toEqual([
      ['gpt-a', 'failed', 2, 'overloaded'],
      ['claude-b', 'failed', 2, 'server_error'],
      ['nova-c', 'answered', 1, undefined],
    ]);
  });

  it('throws ModelRouteFailedError naming every model when every model failed with a terminal fault', async () => {
    const h = harness({ gpt: { afterwards: fault('authentication', { status: 401 }) }, claude: { afterwards: fault('not_found', { status: 404 }) } });
    const error = await rejection(routeModelCall(route(), REQUEST, h.deps));
    expect(error).toBeInstanceOf(ModelRouteFailedError);
    expect(error.name).toBe('ModelRouteFailedError');
    expect(error.message).toBe(
      'every model of the act route failed: openai/gpt-a: failed (openai gpt-a: authentication); anthropic/claude-b: failed (anthropic claude-b: not_found)',
    );
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(h.models.claude.calls).toHaveLength(1);
  });

  it('throws TransientError when any model’s failure was transient, whatever the order', async () => {
    const terminalThenTransient = harness({ gpt: { afterwards: fault('invalid_request', { status: 400 }) }, claude: { afterwards: fault('throttled', { status: 429 }) } });
    const first = await rejection(routeModelCall(route(), REQUEST, terminalThenTransient.deps));
    expect(first).toBeInstanceOf(TransientError);
    expect(first).not.toBeInstanceOf(ModelRouteFailedError);
    expect(first.message).toMatch(/^no model of the act route answered: openai\/gpt-a: failed .*; anthropic\/claude-b: failed /);
    expect(terminalThenTransient.models.claude.calls).toHaveLength(3);

    const transientThenTerminal = harness({ gpt: { afterwards: fault('timeout') }, claude: { afterwards: fault('permission', { status: 403 }) } });
    expect(await rejection(routeModelCall(route(), REQUEST, transientThenTerminal.deps))).toBeInstanceOf(TransientError);
  });

  it('rethrows the runtime’s own terminal error as it is, without trying the fallbacks or counting a sample', async () => {
    const mismatch = new ScriptMismatchError('x');
    const h = harness({ gpt: { script: [{ error: mismatch }] } });
    const error = await rejection(routeModelCall(route(), REQUEST, h.deps));
    expect(error).toBe(mismatch);
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(h.models.claude.calls).toHaveLength(0);
    expect(h.health.samples).toEqual([]);
  });

  it('counts an adapter’s unexpected error as a transient server error: retried, then the next model', async () => {
    const h = harness({ gpt: { afterwards: { error: new Error('socket hang up') } } });
    const routed = await routeModelCall(route({ retry: { maxAttempts: 2 } }), REQUEST, h.deps);
    expect(routed.servedBy.index).toBe(1);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 2, fault: 'server_error', reason: 'openai gpt-a: Error: socket hang up' });
    expect(h.health.samples.filter((s) => s.key === GPT_KEY).map((s) => s.sample.ok)).toEqual([false, false]);
  });
});

describe('routeModelCall: retries', () => {
  it('retries a transient fault on the same model and answers from it', async () => {
    const h = harness({ gpt: { script: [fault('throttled', { status: 429 }), slow(80)] } });
    const routed = await routeModelCall(route(), REQUEST, h.deps);
    expect(h.models.gpt.calls).toHaveLength(2);
    expect(h.models.claude.calls).toHaveLength(0);
    expect(routed.servedBy.index).toBe(0);
    expect(routed.attempts).toEqual([{ provider: 'openai', modelId: 'gpt-a', outcome: 'answered', calls: 2, latencyMs: 80, requestId: 'gpt-a-req-2' }]);
  });

  it('makes at most maxAttempts calls of one model', async () => {
    const h = harness({ gpt: { afterwards: fault('connection') } });
    const routed = await routeModelCall(route({ retry: { maxAttempts: 4 } }), REQUEST, h.deps);
    expect(h.models.gpt.calls).toHaveLength(4);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 4, fault: 'connection' });
  });

  it('waits a full-jitter delay: uniform below min(maxDelayMs, baseDelayMs × 2^(retry−1))', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const h = harness({ gpt: { script: [fault('server_error'), fault('server_error'), fault('server_error'), fault('server_error'), fault('server_error')] } });
    const { result: routed, delays } = await timersDuring(() =>
      routeModelCall(route({ retry: { maxAttempts: 6, baseDelayMs: 2, maxDelayMs: 10 } }), REQUEST, h.deps),
    );
    expect(routed.attempts[0]).toMatchObject({ outcome: 'answered', calls: 6 });
    // Ceilings 2, 4, 8, 10, 10 (capped by maxDelayMs), times the random draw, rounded down.
    expect(delays).toEqual([1, 3, 7, 9, 9]);
    for (const delay of delays) expect(delay).toBeLessThanOrEqual(10);
  });

  it('draws each delay anew between 0 and its ceiling', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const h = harness({ gpt: { script: [fault('server_error'), fault('overloaded')] } });
    const { delays } = await timersDuring(() => routeModelCall(route({ retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 400 } }), REQUEST, h.deps));
    expect(delays).toEqual([0, 0]);
  });

  it('keeps real delays within maxDelayMs', async () => {
    const h = harness({ gpt: { script: [fault('server_error'), fault('server_error'), fault('server_error')] } });
    const { delays } = await timersDuring(() => routeModelCall(route({ retry: { maxAttempts: 4, baseDelayMs: 4, maxDelayMs: 5 } }), REQUEST, h.deps));
    expect(delays).toHaveLength(3);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(5);
    }
  });

  it('waits at least the Retry-After the provider asked for', async () => {
    const h = harness({ gpt: { script: [fault('throttled', { status: 429, retryAfterMs: 50 })] } });
    const { result: routed, delays } = await timersDuring(() => routeModelCall(route(), REQUEST, h.deps));
    expect(routed.servedBy.index).toBe(0);
    expect(delays).toEqual([50]);
    const [first, second] = h.models.gpt.calls;
    // One millisecond of slack: Node schedules timers from its cached loop time.
    expect((second?.realMs ?? 0) - (first?.realMs ?? 0)).toBeGreaterThanOrEqual(49);
  });

  it('does not wait out a Retry-After above maxRetryAfterMs: the next model is called at once', async () => {
    const h = harness({ gpt: { script: [fault('throttled', { status: 429, retryAfterMs: 60_000 })] } });
    const started = performance.now();
    const { result: routed, delays } = await timersDuring(() => routeModelCall(route({ retry: { maxRetryAfterMs: 20_000 } }), REQUEST, h.deps));
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(delays).toEqual([]);
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(routed.servedBy.index).toBe(1);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 1, fault: 'throttled', status: 429 });
  });

  it('does not retry when the Retry-After leaves less than MIN_CALL_MS before the deadline', async () => {
    const h = harness({ gpt: { afterwards: fault('throttled', { status: 429, retryAfterMs: 100, latencyMs: 100 }) } });
    // After the first call (100 ms): a retry at once would have its second (T0+100+1000), one after the Retry-After would not (T0+1200).
    const deadline = T0 + 1_150;
    const routed = await routeModelCall(route({ timeoutMs: 1_000 }), REQUEST, { ...h.deps, deadline });
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 1, fault: 'throttled' });
    expect(routed.servedBy.index).toBe(1);
  });
});

describe('routeModelCall: retries and the deadline', () => {
  it('does not make a retry whose backoff leaves too little time before the deadline', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const h = harness({ gpt: { afterwards: fault('server_error', { status: 500 }) } });
    // The clock is real here: a 300 ms backoff (full jitter at its ceiling) leaves less than MIN_CALL_MS before the deadline.
    const started = Date.now();
    const error = await rejection(routeModelCall(route({ timeoutMs: 1_000, retry: { baseDelayMs: 300, maxDelayMs: 300 } }), REQUEST, { ...h.deps, now: Date.now, deadline: started + MIN_CALL_MS + 50 }));
    expect(h.models.gpt.calls).toHaveLength(1);
    // The fault is kept (transient: the turn is retried later), and the fallback had no time left either.
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain('openai/gpt-a: failed');
    expect((error as Error).message).toContain('anthropic/claude-b: skipped (not enough time left in the invocation for a call)');
    expect(h.models.claude.calls).toHaveLength(0);
  });
});

describe('routeModelCall: health samples', () => {
  it('counts each answer with its latency and each transient fault, in the bucket of the call’s end (a slow call stays in the window as long as a fast one)', async () => {
    const h = harness({ gpt: { script: [fault('server_error', { latencyMs: 30 }), slow(250)] } });
    await routeModelCall(route(), REQUEST, h.deps);
    expect(h.health.samples).toEqual([
      { key: GPT_KEY, sample: { at: T0 + 30, ok: false, latencyMs: 30 } },
      { key: GPT_KEY, sample: { at: T0 + 280, ok: true, latencyMs: 250 } },
    ]);
    const view = await h.health.read(GPT_KEY, h.clock.ms, route().breaker);
    expect(view.stats).toEqual({ calls: 2, errors: 1, errorRate: 0.5, p50Ms: binUpperBoundMs(latencyBin(250)), p95Ms: binUpperBoundMs(latencyBin(250)) });
  });

  it('does not count the adapter’s loading (ready: the SDK, the API key) as the model’s latency', async () => {
    const h = harness({ gpt: { script: [slow(120)] } });
    const loading: ModelProvider = { name: 'openai', ready: async () => h.clock.advance(5_000), converse: (request) => h.models.gpt.converse(request) };
    const routed = await routeModelCall(route({ sloP95Ms: 400 }), REQUEST, { ...h.deps, provider: () => loading });
    expect(routed.attempts[0]).toMatchObject({ outcome: 'answered', latencyMs: 120 });
    expect(h.health.samples.map((s) => s.sample.latencyMs)).toEqual([120]);
  });

  it('does not count a terminal fault (the model is not unhealthy, the request is wrong)', async () => {
    const h = harness({ gpt: { script: [fault('invalid_request', { status: 400 })] } });
    await routeModelCall(route(), REQUEST, h.deps);
    expect(h.health.samples).toEqual([{ key: modelKey(CLAUDE), sample: { at: T0, ok: true, latencyMs: 0 } }]);
  });

  it('goes on without health information when the health table fails, reporting each fault', async () => {
    const h = harness({ gpt: { script: [slow(40)] } });
    seedOpen(h, 1_000);
    h.health.failing = true;
    const routed = await routeModelCall(route(), REQUEST, h.deps);
    expect(routed.servedBy.index).toBe(0);
    expect(routed.attempts).toEqual([{ provider: 'openai', modelId: 'gpt-a', outcome: 'answered', calls: 1, latencyMs: 40, requestId: 'gpt-a-req-1' }]);
    // The read and the sample failed; the open circuit could not be seen.
    expect(h.healthErrors.map((e) => [e.key, (e.error as Error).message])).toEqual([
      [GPT_KEY, 'health table unavailable'],
      [GPT_KEY, 'health table unavailable'],
    ]);
  });

  it('goes on when the health table fails while a circuit is being tripped', async () => {
    const h = harness({ gpt: { afterwards: fault('server_error') } });
    const config = route({ retry: { maxAttempts: 1 }, breaker: { minCalls: 2 } });
    await routeModelCall(config, REQUEST, h.deps);
    await routeModelCall(config, REQUEST, h.deps);
    h.health.transition = async () => {
      throw new Error('throttled by DynamoDB');
    };
    const routed = await routeModelCall(config, REQUEST, h.deps);
    expect(routed.servedBy.index).toBe(1);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'skipped', calls: 0 });
    expect(routed.transitions).toEqual([]);
    expect(h.healthErrors.map((e) => (e.error as Error).message)).toEqual(['throttled by DynamoDB']);
  });
});

describe('routeModelCall: the deadline', () => {
  it('skips every model when less than MIN_CALL_MS is left, calling none', async () => {
    const h = harness();
    const error = await rejection(routeModelCall(route({ timeoutMs: 10_000 }), REQUEST, { ...h.deps, deadline: T0 + MIN_CALL_MS - 1 }));
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toBe(
      'no model of the act route answered: openai/gpt-a: skipped (not enough time left in the invocation for a call); anthropic/claude-b: skipped (not enough time left in the invocation for a call)',
    );
    expect(h.models.gpt.calls).toHaveLength(0);
    expect(h.models.claude.calls).toHaveLength(0);
  });

  it('calls a model with MIN_CALL_MS left, though its timeout is longer (the invocation’s own timeout cuts it off)', async () => {
    const h = harness();
    const routed = await routeModelCall(route({ timeoutMs: 10_000 }), REQUEST, { ...h.deps, deadline: T0 + MIN_CALL_MS });
    expect(routed.servedBy.index).toBe(0);
  });

  it('skips a fallback when the models before it used up the time', async () => {
    const h = harness({ gpt: { script: [fault('invalid_request', { status: 400, latencyMs: 500 })] } });
    const error = await rejection(routeModelCall(route({ timeoutMs: 1_000 }), REQUEST, { ...h.deps, deadline: T0 + MIN_CALL_MS + 200 }));
    expect(error).toBeInstanceOf(TransientError);
    expect(h.models.claude.calls).toHaveLength(0);
    expect(error.message).toBe(
      'no model of the act route answered: openai/gpt-a: failed (openai gpt-a: invalid_request); anthropic/claude-b: skipped (not enough time left in the invocation for a call)',
    );
  });
});

describe('routeModelCall: the circuit breaker', () => {
  it('opens a circuit on its error rate after minCalls failures across calls, then skips the model', async () => {
    const h = harness({ gpt: { afterwards: fault('server_error', { status: 500 }) } });
    const config = route({ retry: { maxAttempts: 1 }, breaker: { minCalls: 3 } });
    for (let i = 0; i < 3; i++) {
      const routed = await routeModelCall(config, REQUEST, h.deps);
      expect(routed.servedBy.index).toBe(1);
      expect(routed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 1, fault: 'server_error', status: 500 });
      expect(routed.transitions).toEqual([]);
    }
    expect(breakerOf(h.health)).toBeUndefined();

    const tripped = await routeModelCall(config, REQUEST, h.deps);
    const reason = 'error rate 1.00 (3 of 3 calls) at or above 0.5';
    expect(h.models.gpt.calls).toHaveLength(3);
    expect(tripped.servedBy.index).toBe(1);
    expect(tripped.attempts[0]).toEqual({ provider: 'openai', modelId: 'gpt-a', outcome: 'skipped', calls: 0, reason: `circuit opened: ${reason}` });
    expect(tripped.transitions).toEqual([
      { provider: 'openai', modelId: 'gpt-a', model: 'openai/gpt-a', from: 'closed', to: 'open', reason, at: iso(T0), stats: { calls: 3, errors: 3, errorRate: 1 } },
    ]);
    expect(breakerOf(h.health)).toEqual({ state: 'open', since: T0, reason, version: 1 });

    const skipped = await routeModelCall(config, REQUEST, h.deps);
    expect(h.models.gpt.calls).toHaveLength(3);
    expect(skipped.attempts[0]).toEqual({ provider: 'openai', modelId: 'gpt-a', outcome: 'skipped', calls: 0, reason: `circuit open (${reason})` });
    expect(skipped.transitions).toEqual([]);
  });

  it('counts every retry of a call towards minCalls', async () => {
    const h = harness({ gpt: { afterwards: fault('throttled', { status: 429 }) } });
    const config = route({ retry: { maxAttempts: 3 }, breaker: { minCalls: 3 } });
    await routeModelCall(config, REQUEST, h.deps);
    const routed = await routeModelCall(config, REQUEST, h.deps);
    expect(routed.transitions.map((t) => [t.from, t.to, t.stats])).toEqual([['closed', 'open', { calls: 3, errors: 3, errorRate: 1 }]]);
  });

  it('does not open a circuit on terminal faults, however many', async () => {
    const h = harness({ gpt: { afterwards: fault('invalid_request', { status: 422 }) } });
    const config = route({ breaker: { minCalls: 2 } });
    for (let i = 0; i < 4; i++) await routeModelCall(config, REQUEST, h.deps);
    expect(h.models.gpt.calls).toHaveLength(4);
    expect(breakerOf(h.health)).toBeUndefined();
  });

  it('opens a circuit when the p95 of successful calls is above the SLO', async () => {
    const h = harness({ gpt: { afterwards: slow(2_000) } });
    const config = route({ sloP95Ms: 1_000, breaker: { minCalls: 3 } });
    for (let i = 0; i < 3; i++) expect((await routeModelCall(config, REQUEST, h.deps)).servedBy.index).toBe(0);

    const tripped = await routeModelCall(config, REQUEST, h.deps);
    const p95 = binUpperBoundMs(latencyBin(2_000));
    const reason = `p95 latency ${p95} ms above the SLO of 1000 ms over 3 calls`;
    expect(tripped.servedBy.index).toBe(1);
    expect(tripped.attempts[0]).toMatchObject({ outcome: 'skipped', calls: 0, reason: `circuit opened: ${reason}` });
    expect(tripped.transitions).toEqual([
      { provider: 'openai', modelId: 'gpt-a', model: 'openai/gpt-a', from: 'closed', to: 'open', reason, at: iso(T0 + 6_000), stats: { calls: 3, errors: 0, errorRate: 0, p50Ms: p95, p95Ms: p95 } },
    ]);
    expect(h.models.gpt.calls).toHaveLength(3);
  });

  it('does not open a circuit on calls that all meet the SLO, though their bin’s bound is above it', async () => {
    // 960 ms is in the bin whose upper bound (1,052 ms) is above a 1,000 ms SLO: compared bin to bin, it meets it.
    const h = harness({ gpt: { afterwards: slow(960) } });
    const config = route({ sloP95Ms: 1_000, breaker: { minCalls: 3 } });
    for (let i = 0; i < 6; i++) expect((await routeModelCall(config, REQUEST, h.deps)).servedBy.index).toBe(0);
    expect(breakerOf(h.health)).toBeUndefined();
  });

  it('does not open a circuit on latency without an SLO', async () => {
    const h = harness({ gpt: { afterwards: slow(30_000) } });
    const config = route({ breaker: { minCalls: 2 } });
    for (let i = 0; i < 4; i++) expect((await routeModelCall(config, REQUEST, h.deps)).servedBy.index).toBe(0);
    expect(breakerOf(h.health)).toBeUndefined();
  });

  it('skips an open circuit until halfOpenAfterSeconds, then probes: an answer within the SLO closes it', async () => {
    const h = harness({ gpt: { script: [fault('server_error'), fault('server_error')], afterwards: slow(100) } });
    const config = route({ sloP95Ms: 1_000, retry: { maxAttempts: 1 }, breaker: { minCalls: 2, halfOpenAfterSeconds: 10 } });
    await routeModelCall(config, REQUEST, h.deps);
    await routeModelCall(config, REQUEST, h.deps);
    expect((await routeModelCall(config, REQUEST, h.deps)).transitions.map((t) => t.to)).toEqual(['open']);

    h.clock.advance(9_999);
    const early = await routeModelCall(config, REQUEST, h.deps);
    expect(early.attempts[0]).toMatchObject({ outcome: 'skipped', calls: 0 });
    expect(early.attempts[0]?.reason).toMatch(/^circuit open \(error rate 1\.00 \(2 of 2 calls\)/);
    expect(h.models.gpt.calls).toHaveLength(2);

    h.clock.advance(1);
    const probeAt = h.clock.ms;
    const probed = await routeModelCall(config, REQUEST, h.deps);
    expect(h.models.gpt.calls).toHaveLength(3);
    expect(probed.servedBy.index).toBe(0);
    expect(probed.attempts).toEqual([{ provider: 'openai', modelId: 'gpt-a', outcome: 'answered', calls: 1, latencyMs: 100, requestId: 'gpt-a-req-3', probe: true }]);
    expect(probed.transitions).toEqual([
      { provider: 'openai', modelId: 'gpt-a', model: 'openai/gpt-a', from: 'open', to: 'half_open', reason: 'probing recovery', at: iso(probeAt), stats: { calls: 0, errors: 0, errorRate: 0 } },
      { provider: 'openai', modelId: 'gpt-a', model: 'openai/gpt-a', from: 'half_open', to: 'closed', reason: 'the probe answered in 100 ms', at: iso(probeAt + 100) },
    ]);
    expect(breakerOf(h.health)).toEqual({ state: 'closed', since: probeAt + 100, reason: 'the probe answered in 100 ms', version: 3 });

    // The failures before the circuit closed are out of the window: the primary serves again.
    const next = await routeModelCall(config, REQUEST, h.deps);
    expect(next.servedBy.index).toBe(0);
    expect(next.attempts).toEqual([expect.objectContaining({ outcome: 'answered', calls: 1 })]);
    expect(next.attempts[0]).not.toHaveProperty('probe');
    expect(next.transitions).toEqual([]);
  });

  it('holds the probe lease while the probe runs: the others skip the model', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const h = harness({ gpt: { script: [{ answer: true, gate, latencyMs: 50 }] } });
    seedOpen(h, 30_000);
    const config = route({ timeoutMs: 20_000 });
    const probing = routeModelCall(config, REQUEST, h.deps);
    await vi.waitFor(() => expect(h.models.gpt.calls).toHaveLength(1));
    expect(breakerOf(h.health)).toMatchObject({ state: 'half_open', since: T0, reason: 'probing recovery', probeUntil: T0 + 21_000, version: 2 });

    const meanwhile = await routeModelCall(config, REQUEST, h.deps);
    expect(meanwhile.servedBy.index).toBe(1);
    expect(meanwhile.attempts[0]).toEqual({
      provider: 'openai',
      modelId: 'gpt-a',
      outcome: 'skipped',
      calls: 0,
      reason: 'circuit half-open: another call is probing (probing recovery)',
    });
    expect(meanwhile.transitions).toEqual([]);

    release();
    const probed = await probing;
    expect(probed.servedBy.index).toBe(0);
    expect(probed.transitions.map((t) => `${t.from}→${t.to}`)).toEqual(['open→half_open', 'half_open→closed']);
    expect(h.models.gpt.calls).toHaveLength(1);
  });

  it('takes over a probe whose lease ran out', async () => {
    const h = harness({ gpt: { script: [slow(10)] } });
    h.health.breakers.set(GPT_KEY, { state: 'half_open', since: T0 - 90_000, reason: 'probing recovery', probeUntil: T0 - 1, version: 2 });
    const routed = await routeModelCall(route(), REQUEST, h.deps);
    expect(routed.servedBy.index).toBe(0);
    expect(routed.attempts[0]).toMatchObject({ outcome: 'answered', probe: true });
    expect(routed.transitions.map((t) => `${t.from}→${t.to}`)).toEqual(['half_open→half_open', 'half_open→closed']);
    expect(breakerOf(h.health)).toMatchObject({ state: 'closed', version: 4 });
  });

  it('opens the circuit again after a probe slower than the SLO, though its answer is used', async () => {
    const h = harness({ gpt: { script: [slow(1_500)] } });
    seedOpen(h, 30_000);
    const config = route({ sloP95Ms: 1_000 });
    const probed = await routeModelCall(config, REQUEST, h.deps);
    const reason = 'the probe took 1500 ms, above the SLO of 1000 ms';
    expect(probed.servedBy.index).toBe(0);
    expect(probed.attempts[0]).toMatchObject({ outcome: 'answered', latencyMs: 1_500, probe: true });
    expect(probed.transitions.slice(1)).toEqual([{ provider: 'openai', modelId: 'gpt-a', model: 'openai/gpt-a', from: 'half_open', to: 'open', reason, at: iso(T0 + 1_500) }]);
    expect(breakerOf(h.health)).toEqual({ state: 'open', since: T0 + 1_500, reason, version: 3 });

    const next = await routeModelCall(config, REQUEST, h.deps);
    expect(next.servedBy.index).toBe(1);
    expect(next.attempts[0]).toMatchObject({ outcome: 'skipped', reason: `circuit open (${reason})` });
    expect(h.models.gpt.calls).toHaveLength(1);
  });

  it('does not retry a failing probe: the circuit opens again and the next model answers', async () => {
    const h = harness({ gpt: { afterwards: fault('server_error', { status: 502 }) } });
    seedOpen(h, 30_000);
    const { result: probed, delays } = await timersDuring(() => routeModelCall(route({ retry: { maxAttempts: 5 } }), REQUEST, h.deps));
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(delays).toEqual([]);
    expect(probed.servedBy.index).toBe(1);
    expect(probed.attempts[0]).toMatchObject({ outcome: 'failed', calls: 1, fault: 'server_error', status: 502, probe: true });
    expect(probed.transitions.map((t) => [t.from, t.to, t.reason])).toEqual([
      ['open', 'half_open', 'probing recovery'],
      ['half_open', 'open', 'the probe failed'],
    ]);
    expect(breakerOf(h.health)).toMatchObject({ state: 'open', since: T0, reason: 'the probe failed', version: 3 });
  });

  it('lets only one of two concurrent calls take the probe lease', async () => {
    const h = harness({ gpt: { afterwards: slow(20) } });
    seedOpen(h, 30_000);
    const config = route();
    const results: RoutedCall[] = await Promise.all([routeModelCall(config, REQUEST, h.deps), routeModelCall(config, REQUEST, h.deps)]);
    expect(h.models.gpt.calls).toHaveLength(1);
    const probe = results.filter((r) => r.attempts[0]?.probe === true);
    const other = results.filter((r) => r.attempts[0]?.probe !== true);
    expect(probe).toHaveLength(1);
    expect(probe[0]?.servedBy.index).toBe(0);
    expect(other).toHaveLength(1);
    expect(other[0]?.servedBy.index).toBe(1);
    expect(other[0]?.attempts[0]).toEqual({ provider: 'openai', modelId: 'gpt-a', outcome: 'skipped', calls: 0, reason: 'circuit half-open: another call took the probe' });
    expect(other[0]?.transitions).toEqual([]);
    expect(breakerOf(h.health)).toMatchObject({ state: 'closed', version: 3 });
  });

  it('keeps each model’s circuit apart: an open primary does not stop its fallback', async () => {
    const h = harness();
    seedOpen(h, 1_000);
    const routed = await routeModelCall(route(), REQUEST, h.deps);
    expect(routed.servedBy.index).toBe(1);
    expect(h.health.breakers.get(modelKey(CLAUDE))).toBeUndefined();
  });

  it('calls the first model anyway when every circuit of the route is open (an open circuit never fails a run alone)', async () => {
    const h = harness();
    seedOpen(h, 1_000);
    h.health.breakers.set(modelKey(CLAUDE), { state: 'open', since: T0 - 1_000, reason: 'the probe failed', version: 5 });
    const routed = await routeModelCall(route(), REQUEST, h.deps);
    expect(routed.servedBy).toEqual({ provider: 'openai', modelId: 'gpt-a', index: 0 });
    expect(routed.attempts.map((a) => [a.modelId, a.outcome])).toEqual([
      ['gpt-a', 'skipped'],
      ['claude-b', 'skipped'],
      ['gpt-a', 'answered'],
    ]);
    expect(routed.attempts[2]?.reason).toBe("every model's circuit is open: called as a last resort");
    expect(h.models.gpt.calls).toHaveLength(1);
    expect(h.models.claude.calls).toHaveLength(0);
    // The circuits are left as they were: only a probe closes one.
    expect(breakerOf(h.health)?.state).toBe('open');
  });

  it('throws TransientError, with the circuit changes it made, when the last resort fails too', async () => {
    const h = harness({ gpt: { afterwards: fault('overloaded', { status: 529 }) } });
    h.health.breakers.set(modelKey(CLAUDE), { state: 'open', since: T0 - 1_000, reason: 'the probe failed', version: 5 });
    // GPT's window trips it at the call: then both circuits are open.
    for (let i = 0; i < 5; i++) await h.health.record(GPT_KEY, { at: T0 - 100, ok: false, latencyMs: 10 }, route().breaker);
    const error = await rejection(routeModelCall(route(), REQUEST, h.deps));
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toContain('anthropic/claude-b: skipped (circuit open (the probe failed))');
    expect(error.message).toContain("gpt-a: failed (every model's circuit is open: called as a last resort: ");
    expect(transitionsOf(error)).toEqual([expect.objectContaining({ modelId: 'gpt-a', from: 'closed', to: 'open' })]);
    expect(h.models.claude.calls).toHaveLength(0);
  });
});
