/**
 * The model router: sends one model call down a route (primary, then fallbacks in
 * order), with the circuit breakers' shared state and retries.
 *
 * For each model of the route, in order:
 * 1. Read its health (breaker and window, one DynamoDB Query). A closed circuit whose
 *    window breaks the rules (error rate, p95 above the route's SLO) is opened here,
 *    and the model skipped; an open circuit is skipped until `halfOpenAfterSeconds`,
 *    when one call takes the probe lease (conditional write) and probes it.
 * 2. Call it, retrying transient faults (429, 5xx, 529, timeouts, dropped
 *    connections, malformed bodies) with exponential backoff and full jitter
 *    (cockatiel's `ExponentialBackoff` with `fullJitterGenerator`), never sooner than
 *    the provider's `Retry-After`. Terminal faults (400-class, authentication) are not
 *    retried. A probe is not retried: its one outcome decides the circuit.
 * 3. Count each call's outcome and latency in the model's current bucket.
 * The first answer wins. When every model failed, the call throws
 * {@link TransientError} if any fault was transient (the state machine's Retry runs
 * the turn again later), else {@link ModelRouteFailedError}.
 *
 * Every skip, failure, fallback and circuit change is returned for the checkpoint
 * and the event log (`RoutedCall`).
 */
import { DelegateBackoff, ExponentialBackoff, fullJitterGenerator, handleWhen, retry, type IBackoff, type IRetryBackoffContext } from 'cockatiel';
import type { ModelProvider, ModelRequest, ModelResponse } from '../core/contracts/model';
import { AgentRuntimeError, ModelProviderError, ModelRouteFailedError, TransientError, TRANSIENT_PROVIDER_FAULTS, type ProviderFaultKind } from '../core/errors';
import { admit, INITIAL_BREAKER, probeVerdict, type Breaker, type CircuitState } from '../core/health';
import { modelIdOf, modelKey, type ModelRef, type ResolvedRoute } from '../core/routing';
import type { HealthBook, HealthView } from './model-health';

/** One model's part in a routed call. */
export interface RouteAttempt {
  readonly provider: string;
  /** The model id the route names. */
  readonly modelId: string;
  /** `answered`; `failed` after its retries (or at once, for a terminal fault); `skipped` (circuit open or probing elsewhere, or no time left). */
  readonly outcome: 'answered' | 'failed' | 'skipped';
  /** Calls made to it (1 + retries); 0 when skipped. */
  readonly calls: number;
  /** Whether this call probed a half-open circuit. */
  readonly probe?: boolean;
  /** Latency of the last call, ms (the adapter's loading excluded). */
  readonly latencyMs?: number;
  /** The last fault, when it failed. */
  readonly fault?: ProviderFaultKind;
  /** The last fault's HTTP status, when the provider answered one. */
  readonly status?: number;
  /** The provider's request id of the answer, or of the last fault. */
  readonly requestId?: string;
  /** Why it was skipped or how it failed, in words (never a key or the request's content). */
  readonly reason?: string;
}

/** A circuit breaker's change of state, made by this call. */
export interface CircuitTransition {
  readonly provider: string;
  readonly modelId: string;
  /** The model's health key (`modelKey`: provider, model id, and where it is served). */
  readonly model: string;
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly reason: string;
  /** ISO 8601. */
  readonly at: string;
  /** The window it was decided on (absent for a probe's verdict). */
  readonly stats?: HealthView['stats'];
}

/** The outcome of a routed call. */
export interface RoutedCall {
  readonly response: ModelResponse;
  /** The model that answered (index into the route's models). */
  readonly servedBy: { readonly provider: string; readonly modelId: string; readonly index: number };
  readonly attempts: RouteAttempt[];
  readonly transitions: CircuitTransition[];
}

/** What the router needs from the outside world. */
export interface RouterDeps {
  /** The shared health (the DynamoDB store in Lambda). */
  readonly health: HealthBook;
  /** The adapter of a model reference, whose calls give up after `timeoutMs`. */
  readonly provider: (ref: ModelRef, timeoutMs: number) => ModelProvider;
  /** @default Date.now */
  readonly now?: () => number;
  /** No call or retry starts less than {@link MIN_CALL_MS} before this time, ms since the epoch (the Lambda's remaining time less its margin). */
  readonly deadline?: number;
  /** Reports a fault of the health table (the call goes on without health information). */
  readonly onHealthError?: (error: unknown, key: string) => void;
}

/**
 * Sends `request` down `route`. `request.modelId` is replaced by each model's id.
 * When every model's circuit is open (none was called, and time is left), the first
 * of them is called anyway, as a last resort: an open circuit shifts load, it never
 * fails a run that has no other model.
 * @throws TransientError when every model failed or was skipped and any fault was transient.
 * @throws ModelRouteFailedError when every model failed with a terminal fault.
 * @throws the runtime's own terminal errors from an adapter as they are (a scripted provider's `ScriptMismatchError`).
 * Circuit changes made before a throw are on the error: {@link transitionsOf}.
 */
export async function routeModelCall(route: ResolvedRoute, request: ModelRequest, deps: RouterDeps): Promise<RoutedCall> {
  const now = deps.now ?? Date.now;
  const attempts: RouteAttempt[] = [];
  const transitions: CircuitTransition[] = [];
  const open: number[] = [];
  for (const [index, ref] of route.models.entries()) {
    const key = modelKey(ref);
    const who = { provider: ref.provider, modelId: modelIdOf(ref) };
    if (!timeLeft(deps, now)) {
      attempts.push({ ...who, outcome: 'skipped', calls: 0, reason: NO_TIME });
      continue;
    }
    const view = await readHealth(deps, key, now(), route);
    const admission = admit(view.breaker, view.stats, route.breaker, route.sloP95Ms, now());
    if (admission.action === 'trip') {
      const opened = await change(deps, key, view.breaker, { state: 'open', since: now(), reason: admission.reason });
      if (opened) transitions.push({ ...who, model: key, from: view.breaker.state, to: 'open', reason: admission.reason, at: iso(now()), stats: view.stats });
      attempts.push({ ...who, outcome: 'skipped', calls: 0, reason: `circuit opened: ${admission.reason}` });
      open.push(index);
      continue;
    }
    if (admission.action === 'skip') {
      attempts.push({ ...who, outcome: 'skipped', calls: 0, reason: view.breaker.reason ? `${admission.reason} (${view.breaker.reason})` : admission.reason });
      open.push(index);
      continue;
    }
    let probing: Breaker | undefined;
    if (admission.action === 'probe') {
      // Loaded first: an SDK or a key that is slow to load must not outlive the probe's lease.
      const loading = await load(deps, ref, route);
      if (loading) {
        attempts.push(failedAttempt(who, { ok: false, error: loading, calls: 1, latencyMs: 0 }, false));
        continue;
      }
      const reason = 'probing recovery';
      probing = await change(deps, key, view.breaker, { state: 'half_open', since: now(), reason, probeUntil: now() + route.timeoutMs + PROBE_LEASE_MARGIN_MS });
      if (!probing) {
        attempts.push({ ...who, outcome: 'skipped', calls: 0, reason: 'circuit half-open: another call took the probe' });
        open.push(index);
        continue;
      }
      transitions.push({ ...who, model: key, from: view.breaker.state, to: 'half_open', reason, at: iso(now()), stats: view.stats });
    }
    const result = await callWithRetries(ref, key, { ...request, modelId: who.modelId }, route, deps, probing !== undefined);
    if (probing) {
      if (!result.ok && !result.error.retryable) {
        // A terminal fault says the request is wrong, not the model: the lease is released, no verdict.
        await change(deps, key, probing, { state: 'open', since: view.breaker.since, ...(view.breaker.reason ? { reason: view.breaker.reason } : {}) });
      } else {
        const verdict = probeVerdict({ ok: result.ok, latencyMs: result.latencyMs }, route.sloP95Ms);
        if (await change(deps, key, probing, { state: verdict.state, since: now(), reason: verdict.reason })) {
          transitions.push({ ...who, model: key, from: 'half_open', to: verdict.state, reason: verdict.reason, at: iso(now()) });
        }
      }
    }
    if (result.ok) {
      attempts.push({ ...who, outcome: 'answered', calls: result.calls, latencyMs: result.latencyMs, requestId: result.response.requestId, ...(probing ? { probe: true } : {}) });
      return { response: result.response, servedBy: { ...who, index }, attempts, transitions };
    }
    attempts.push(failedAttempt(who, result, probing !== undefined));
  }
  // Every model that had time was skipped for its circuit: the first of them, as a last resort.
  const lastResort = open[0];
  if (lastResort !== undefined && open.length === attempts.filter((a) => a.reason !== NO_TIME).length && timeLeft(deps, now)) {
    const ref = route.models[lastResort] as ModelRef;
    const who = { provider: ref.provider, modelId: modelIdOf(ref) };
    const result = await callWithRetries(ref, modelKey(ref), { ...request, modelId: who.modelId }, route, deps, false);
    if (result.ok) {
      attempts.push({ ...who, outcome: 'answered', calls: result.calls, latencyMs: result.latencyMs, requestId: result.response.requestId, reason: LAST_RESORT });
      return { response: result.response, servedBy: { ...who, index: lastResort }, attempts, transitions };
    }
    attempts.push({ ...failedAttempt(who, result, false), reason: `${LAST_RESORT}: ${result.error.message}` });
  }
  const summary = attempts.map((a) => `${a.provider}/${a.modelId}: ${a.outcome}${a.reason ? ` (${a.reason})` : ''}`).join('; ');
  const terminalOnly = attempts.length > 0 && attempts.every((a) => a.outcome === 'failed' && a.fault !== undefined && !TRANSIENT_PROVIDER_FAULTS.has(a.fault));
  const error = terminalOnly
    ? new ModelRouteFailedError(`every model of the ${route.kind} route failed: ${summary}`)
    : new TransientError(`no model of the ${route.kind} route answered: ${summary}`);
  failedTransitions.set(error, transitions);
  throw error;
}

const NO_TIME = 'not enough time left in the invocation for a call';
const LAST_RESORT = "every model's circuit is open: called as a last resort";

/** The circuit changes a failed {@link routeModelCall} made before it threw (none for other errors). */
export function transitionsOf(error: unknown): CircuitTransition[] {
  return (error instanceof Error && failedTransitions.get(error)) || [];
}
const failedTransitions = new WeakMap<Error, CircuitTransition[]>();

/**
 * Whether a call may start: at least {@link MIN_CALL_MS} before the deadline. A call
 * that then runs past it is cut off by the invocation's own timeout, and the state
 * machine's Retry runs the turn again (its samples, counted, may have opened the circuit).
 */
function timeLeft(deps: RouterDeps, now: () => number, wait = 0): boolean {
  return deps.deadline === undefined || now() + wait + MIN_CALL_MS <= deps.deadline;
}

/** Milliseconds that must be left before the deadline for a call (or a retry) to start. */
export const MIN_CALL_MS = 1_000;

/**
 * Milliseconds a probe's lease (`probeUntil`) outlasts the probe's one call (`timeoutMs`):
 * time for the probe to write its verdict on the breaker after the call ends, and for
 * clocks of other Lambda instances that run a little ahead. Past the lease, another call
 * may probe (a probe whose function died never releases it).
 */
export const PROBE_LEASE_MARGIN_MS = 1_000;

/** Loads a model's adapter (SDK, key): the fault, when it fails. */
async function load(deps: RouterDeps, ref: ModelRef, route: ResolvedRoute): Promise<ModelProviderError | undefined> {
  try {
    await deps.provider(ref, route.timeoutMs).ready?.();
    return undefined;
  } catch (error) {
    return asProviderError(error, ref);
  }
}

function failedAttempt(who: { provider: string; modelId: string }, result: Extract<CallResult, { ok: false }>, probe: boolean): RouteAttempt {
  const fault = result.error;
  return {
    ...who,
    outcome: 'failed',
    calls: result.calls,
    latencyMs: result.latencyMs,
    fault: fault.kind,
    reason: fault.message,
    ...(fault.status !== undefined ? { status: fault.status } : {}),
    ...(fault.requestId !== undefined ? { requestId: fault.requestId } : {}),
    ...(probe ? { probe: true } : {}),
  };
}

type CallResult = { ok: true; response: ModelResponse; calls: number; latencyMs: number } | { ok: false; error: ModelProviderError; calls: number; latencyMs: number };

/** Calls one model, retrying its transient faults (none for a probe); counts each call in its health. */
async function callWithRetries(ref: ModelRef, key: string, request: ModelRequest, route: ResolvedRoute, deps: RouterDeps, probe: boolean): Promise<CallResult> {
  const now = deps.now ?? Date.now;
  const provider = deps.provider(ref, route.timeoutMs);
  const config = route.retry;
  let calls = 0;
  let latencyMs = 0;
  const policy = retry(
    handleWhen((error) => {
      if (!(error instanceof ModelProviderError) || !error.retryable) return false;
      // A long Retry-After is not waited out here: the next model is tried at once.
      if ((error.retryAfterMs ?? 0) > config.maxRetryAfterMs) return false;
      return timeLeft(deps, now, error.retryAfterMs ?? 0);
    }),
    { maxAttempts: probe ? 0 : config.maxAttempts - 1, backoff: retryAfterBackoff(config.baseDelayMs, config.maxDelayMs) },
  );
  let last: ModelProviderError | undefined;
  try {
    const response = await policy.execute(async () => {
      // After the backoff: a retry with too little time left is not made.
      if (last && !timeLeft(deps, now)) throw new OutOfTime(last);
      calls += 1;
      // The SDK's loading and the key's reading are not the model's latency (nor, failing, a sample of its health).
      try {
        await provider.ready?.();
      } catch (error) {
        last = asProviderError(error, ref);
        throw last;
      }
      const started = now();
      try {
        const answer = await provider.converse(request);
        latencyMs = now() - started;
        // Counted when it ended: a slow call stays in the window as long as a fast one.
        await recordSample(deps, key, { at: started + latencyMs, ok: true, latencyMs }, route);
        return answer;
      } catch (error) {
        latencyMs = now() - started;
        last = asProviderError(error, ref);
        if (last.retryable) await recordSample(deps, key, { at: started + latencyMs, ok: false, latencyMs }, route);
        throw last;
      }
    });
    return { ok: true, response, calls, latencyMs };
  } catch (error) {
    return { ok: false, error: error instanceof OutOfTime ? error.fault : asProviderError(error, ref), calls, latencyMs };
  }
}

/** A retry given up for lack of time before the deadline: carries the fault it would have retried. */
class OutOfTime extends Error {
  constructor(readonly fault: ModelProviderError) {
    super('no time left for a retry');
  }
}

/**
 * Exponential backoff with full jitter (cockatiel), never shorter than the
 * provider's `Retry-After` carried by the fault being retried.
 */
function retryAfterBackoff(initialDelay: number, maxDelay: number): DelegateBackoff<IRetryBackoffContext<unknown>, IBackoff<unknown>> {
  const exponential = new ExponentialBackoff({ generator: fullJitterGenerator, initialDelay, maxDelay });
  return new DelegateBackoff<IRetryBackoffContext<unknown>, IBackoff<unknown>>((context, state) => {
    const next = state ? state.next(context) : exponential.next();
    const fault = 'error' in context.result ? context.result.error : undefined;
    const asked = fault instanceof ModelProviderError ? (fault.retryAfterMs ?? 0) : 0;
    return { delay: Math.max(next.duration, asked), state: next };
  });
}

/**
 * Any error from an adapter as a provider fault (an adapter's unexpected error counts
 * as a server error: transient). The runtime's own terminal errors (a scripted
 * provider's `ScriptMismatchError`) are not provider faults: they are rethrown as they are.
 */
function asProviderError(error: unknown, ref: ModelRef): ModelProviderError {
  if (error instanceof ModelProviderError) return error;
  if (error instanceof AgentRuntimeError && !error.retryable) throw error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new ModelProviderError(`${ref.provider} ${modelIdOf(ref)}: ${message}`, { provider: ref.provider, modelId: modelIdOf(ref), kind: 'server_error', cause: error });
}

async function readHealth(deps: RouterDeps, key: string, now: number, route: ResolvedRoute): Promise<HealthView> {
  try {
    return await deps.health.read(key, now, route.breaker);
  } catch (error) {
    deps.onHealthError?.(error, key);
    return { breaker: INITIAL_BREAKER, stats: { calls: 0, errors: 0, errorRate: 0 } };
  }
}

async function recordSample(deps: RouterDeps, key: string, sample: Parameters<HealthBook['record']>[1], route: ResolvedRoute): Promise<void> {
  try {
    await deps.health.record(key, sample, route.breaker);
  } catch (error) {
    deps.onHealthError?.(error, key);
  }
}

async function change(deps: RouterDeps, key: string, from: Breaker, to: Omit<Breaker, 'version'>): Promise<Breaker | undefined> {
  try {
    return await deps.health.transition(key, from, to);
  } catch (error) {
    deps.onHealthError?.(error, key);
    return undefined;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
