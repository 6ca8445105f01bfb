/**
 * Model health, pure: latency histograms in time buckets, window statistics
 * (calls, error rate, p50, p95), and the circuit breaker's decisions.
 *
 * The state lives in DynamoDB (`adapters/model-health.ts`) so every Lambda
 * instance sees the same health: one item per model and bucket, updated with
 * atomic `ADD`s (a call count, an error count, and one counter per latency bin),
 * and one breaker item per model changed only by conditional writes.
 *
 * Latency bins grow by {@link LATENCY_BIN_FACTOR}: bin `i` holds latencies in
 * (1.1^(i−1), 1.1^i] ms, so a percentile read from the histogram (the bin's upper
 * bound, rounded up to a whole ms) overstates the true value by at most 10% and 1 ms.
 * A histogram's size does not depend on the traffic, which per-sample items would.
 * The SLO is compared bin to bin: p95 breaks it when its bin is above the SLO's, so
 * calls that all meet the SLO never trip the breaker (the resolution is 10%).
 */
import type { BreakerConfig } from './routing';

/** Each latency bin's upper bound is this factor times the previous one's. */
export const LATENCY_BIN_FACTOR = 1.1;
/** Bins 0 .. LATENCY_BIN_COUNT−1; the last holds everything above 1.1^(count−2) ms (about 22 minutes). */
export const LATENCY_BIN_COUNT = 150;

/** The bin of a latency in milliseconds (0 for 1 ms or less). */
export function latencyBin(ms: number): number {
  if (!(ms > 1)) return 0;
  const bin = Math.ceil(Math.log(ms) / Math.log(LATENCY_BIN_FACTOR) - 1e-9);
  return Math.min(LATENCY_BIN_COUNT - 1, Math.max(0, bin));
}

/** The upper bound of a bin, in whole milliseconds (rounded up). */
export function binUpperBoundMs(bin: number): number {
  return Math.ceil(LATENCY_BIN_FACTOR ** bin - 1e-9);
}

/** One bucket of a model's calls: those that ended in [start, start + bucketSeconds) (the router counts a call when it ends). */
export interface HealthBucket {
  /** Epoch seconds, a multiple of `bucketSeconds`. */
  readonly start: number;
  /** Calls that answered or failed with a transient fault. */
  readonly calls: number;
  /** Of those, the ones that failed. */
  readonly errors: number;
  /** Latency bin → answered calls in it. */
  readonly latency: Readonly<Record<number, number>>;
}

/** A model's health over a window. Example: `{"calls":12,"errors":3,"errorRate":0.25,"p50Ms":790,"p95Ms":1863}` */
export interface WindowStats {
  /** Calls in the window that answered or failed with a transient fault. */
  readonly calls: number;
  /** Of those, the ones that failed. */
  readonly errors: number;
  /** errors / calls; 0 with no calls. */
  readonly errorRate: number;
  /** Median latency of the answered calls (bin upper bound), ms; absent with none. */
  readonly p50Ms?: number;
  /** 95th percentile latency of the answered calls (bin upper bound), ms; absent with none. */
  readonly p95Ms?: number;
}

/** The start (epoch seconds) of the bucket holding `nowMs`. */
export function bucketStart(nowMs: number, bucketSeconds: number): number {
  const seconds = Math.floor(nowMs / 1000);
  return seconds - (seconds % bucketSeconds);
}

/**
 * The first bucket start (epoch seconds) of the window at `nowMs`: the last
 * `windowSeconds`, but none before the circuit's last change (`sinceMs`), whose
 * bucket is left out (it may hold calls from before the change).
 */
export function windowStart(nowMs: number, config: Pick<BreakerConfig, 'windowSeconds' | 'bucketSeconds'>, sinceMs = 0): number {
  const byWindow = bucketStart(nowMs - config.windowSeconds * 1000, config.bucketSeconds) + config.bucketSeconds;
  const bySince = sinceMs > 0 ? bucketStart(sinceMs, config.bucketSeconds) + config.bucketSeconds : 0;
  return Math.max(byWindow, bySince);
}

/** The statistics of the buckets that start at or after `from` (epoch seconds). */
export function windowStats(buckets: readonly HealthBucket[], from: number): WindowStats {
  let calls = 0;
  let errors = 0;
  const latency = new Map<number, number>();
  for (const bucket of buckets) {
    if (bucket.start < from) continue;
    calls += bucket.calls;
    errors += bucket.errors;
    for (const [bin, count] of Object.entries(bucket.latency)) latency.set(Number(bin), (latency.get(Number(bin)) ?? 0) + count);
  }
  const stats = { calls, errors, errorRate: calls === 0 ? 0 : errors / calls };
  const answered = [...latency.values()].reduce((a, b) => a + b, 0);
  if (answered === 0) return stats;
  return { ...stats, p50Ms: percentile(latency, answered, 0.5), p95Ms: percentile(latency, answered, 0.95) };
}

function percentile(latency: ReadonlyMap<number, number>, total: number, p: number): number {
  const rank = Math.ceil(p * total);
  let seen = 0;
  for (const bin of [...latency.keys()].sort((a, b) => a - b)) {
    seen += latency.get(bin) ?? 0;
    if (seen >= rank) return binUpperBoundMs(bin);
  }
  return binUpperBoundMs(LATENCY_BIN_COUNT - 1);
}

/** A circuit's states: `closed` (calls go through), `open` (skipped), `half_open` (one probe at a time). */
export const CIRCUIT_STATES = ['closed', 'open', 'half_open'] as const;
/** A circuit's state, one of {@link CIRCUIT_STATES}. */
export type CircuitState = (typeof CIRCUIT_STATES)[number];

/** A model's circuit breaker as stored. */
export interface Breaker {
  readonly state: CircuitState;
  /** When it entered this state, ms since the epoch (0: never changed). */
  readonly since: number;
  /** Why it entered this state. */
  readonly reason?: string;
  /** While half-open: until when (ms) the current probe holds the lease. */
  readonly probeUntil?: number;
  /** Incremented by every change (the conditional write's guard). */
  readonly version: number;
}

/** A circuit that has never changed. */
export const INITIAL_BREAKER: Breaker = { state: 'closed', since: 0, version: 0 };

/**
 * Whether a latency read as a bin's upper bound (ms, as `p95Ms` is) is above the upper
 * bound of the SLO's bin: how both the trip and the probe judge the SLO, so that
 * latencies in the SLO's bin (up to 10% above it) pass.
 */
function aboveSloBin(binBoundMs: number, sloP95Ms: number): boolean {
  return binBoundMs > binUpperBoundMs(latencyBin(sloP95Ms));
}

/**
 * Why a closed circuit must open, or undefined: at least `minCalls` calls in the
 * window, and an error rate at or above the threshold, or a p95 in a latency bin
 * above the SLO's (so above the SLO by up to 10% does not trip it).
 */
export function tripReason(stats: WindowStats, config: Pick<BreakerConfig, 'minCalls' | 'errorRateThreshold'>, sloP95Ms?: number): string | undefined {
  if (stats.calls < config.minCalls) return undefined;
  if (stats.errorRate >= config.errorRateThreshold) {
    return `error rate ${stats.errorRate.toFixed(2)} (${stats.errors} of ${stats.calls} calls) at or above ${config.errorRateThreshold}`;
  }
  if (sloP95Ms !== undefined && stats.p95Ms !== undefined && aboveSloBin(stats.p95Ms, sloP95Ms)) {
    return `p95 latency ${stats.p95Ms} ms above the SLO of ${sloP95Ms} ms over ${stats.calls} calls`;
  }
  return undefined;
}

/**
 * What to do with a model before calling it:
 * - `call`: the circuit is closed and healthy;
 * - `trip`: the circuit is closed but the window says open it (`reason`), and skip the model;
 * - `probe`: the circuit has been open for `halfOpenAfterSeconds` (or a half-open probe's
 *   lease ran out): take the probe lease and make this call the probe;
 * - `skip`: the circuit is open, or another call holds the probe.
 */
export type Admission = { action: 'call' } | { action: 'trip'; reason: string } | { action: 'probe' } | { action: 'skip'; reason: string };

/** Decides {@link Admission} from the breaker and the window at `now` (ms). */
export function admit(breaker: Breaker, stats: WindowStats, config: BreakerConfig, sloP95Ms: number | undefined, now: number): Admission {
  if (breaker.state === 'closed') {
    const reason = tripReason(stats, config, sloP95Ms);
    return reason ? { action: 'trip', reason } : { action: 'call' };
  }
  if (breaker.state === 'open') {
    return now - breaker.since >= config.halfOpenAfterSeconds * 1000 ? { action: 'probe' } : { action: 'skip', reason: 'circuit open' };
  }
  return (breaker.probeUntil ?? 0) < now ? { action: 'probe' } : { action: 'skip', reason: 'circuit half-open: another call is probing' };
}

/**
 * The state a probe's outcome leads to: `closed` when it answered within the SLO
 * (its latency in the SLO's bin or below, as {@link tripReason} judges; any latency
 * without an SLO), else `open` again.
 */
export function probeVerdict(outcome: { ok: boolean; latencyMs: number }, sloP95Ms?: number): { state: 'closed' | 'open'; reason: string } {
  if (!outcome.ok) return { state: 'open', reason: 'the probe failed' };
  if (sloP95Ms !== undefined && aboveSloBin(binUpperBoundMs(latencyBin(outcome.latencyMs)), sloP95Ms)) {
    return { state: 'open', reason: `the probe took ${outcome.latencyMs} ms, above the SLO of ${sloP95Ms} ms` };
  }
  return { state: 'closed', reason: `the probe answered in ${outcome.latencyMs} ms` };
}
