/**
 * Model health, pure: latency bins, window statistics over time buckets, and the
 * circuit breaker's decisions (trip, admit, probe verdict).
 */
import { describe, expect, it } from 'vitest';
import {
  admit,
  binUpperBoundMs,
  bucketStart,
  INITIAL_BREAKER,
  LATENCY_BIN_COUNT,
  LATENCY_BIN_FACTOR,
  latencyBin,
  probeVerdict,
  tripReason,
  windowStart,
  windowStats,
  type Breaker,
  type HealthBucket,
  type WindowStats,
} from '../../../lambdas/core/health';
import { DEFAULT_BREAKER, type BreakerConfig } from '../../../lambdas/core/routing';

/** Whole-millisecond latencies from 1 ms to 20 minutes, denser where the bins are narrow. */
const LATENCIES: number[] = (() => {
  const all = new Set<number>();
  for (let ms = 1; ms <= 5_000; ms++) all.add(ms);
  for (let ms = 5_000; ms <= 1_200_000; ms = Math.ceil(ms * 1.013) + 1) all.add(ms);
  return [...all].sort((a, b) => a - b);
})();

/** A bucket of `fast` answers at 100 ms, `slow` answers at 2000 ms and `failed` transient faults. */
const bucket = (start: number, counts: { fast?: number; slow?: number; failed?: number }): HealthBucket => {
  const latency: Record<number, number> = {};
  if (counts.fast) latency[latencyBin(100)] = counts.fast;
  if (counts.slow) latency[latencyBin(2_000)] = (latency[latencyBin(2_000)] ?? 0) + counts.slow;
  const answered = (counts.fast ?? 0) + (counts.slow ?? 0);
  return { start, calls: answered + (counts.failed ?? 0), errors: counts.failed ?? 0, latency };
};

const FAST_BOUND = binUpperBoundMs(latencyBin(100));
const SLOW_BOUND = binUpperBoundMs(latencyBin(2_000));

const stats = (calls: number, errors: number, p95Ms?: number): WindowStats => ({
  calls,
  errors,
  errorRate: calls === 0 ? 0 : errors / calls,
  ...(p95Ms === undefined ? {} : { p50Ms: p95Ms, p95Ms }),
});

const HEALTHY = stats(20, 1, 300);
const NOW = Date.parse('2026-03-02T10:00:00.000Z');
const CONFIG: BreakerConfig = { ...DEFAULT_BREAKER, minCalls: 5, errorRateThreshold: 0.5, halfOpenAfterSeconds: 30 };

describe('latencyBin and binUpperBoundMs', () => {
  it('puts 1 ms or less (and nonsense) in bin 0, whose bound is 1 ms', () => {
    for (const ms of [0, 0.5, 1, -3, Number.NaN]) expect(latencyBin(ms)).toBe(0);
    expect(binUpperBoundMs(0)).toBe(1);
    expect(latencyBin(1.0001)).toBe(1);
  });

  it('is monotonic: a longer latency never lands in a lower bin, a higher bin never has a lower bound', () => {
    for (let i = 1; i < LATENCIES.length; i++) expect(latencyBin(LATENCIES[i] ?? 0)).toBeGreaterThanOrEqual(latencyBin(LATENCIES[i - 1] ?? 0));
    for (let bin = 1; bin < LATENCY_BIN_COUNT; bin++) expect(binUpperBoundMs(bin)).toBeGreaterThanOrEqual(binUpperBoundMs(bin - 1));
    // Once a bin is wider than a millisecond, the rounded bounds grow strictly.
    for (let bin = 26; bin < LATENCY_BIN_COUNT; bin++) expect(binUpperBoundMs(bin)).toBeGreaterThan(binUpperBoundMs(bin - 1));
  });

  it('puts a latency in (1.1^(i−1), 1.1^i]: at most its bin bound, above the previous bin', () => {
    for (const ms of LATENCIES.filter((l) => l > 1 && l <= LATENCY_BIN_FACTOR ** (LATENCY_BIN_COUNT - 1))) {
      const bin = latencyBin(ms);
      expect(ms, `${ms} ms in bin ${bin}`).toBeLessThanOrEqual(binUpperBoundMs(bin));
      expect(ms, `${ms} ms in bin ${bin}`).toBeGreaterThan(LATENCY_BIN_FACTOR ** (bin - 1));
      // Bounds are rounded up to whole milliseconds: a whole-ms latency is never below the previous bin's rounded bound.
      expect(ms, `${ms} ms in bin ${bin}`).toBeGreaterThanOrEqual(binUpperBoundMs(bin - 1));
    }
  });

  it('puts a latency exactly on a bin boundary in that bin, not the next', () => {
    for (const bin of [1, 10, 50, 73, 120]) expect(latencyBin(LATENCY_BIN_FACTOR ** bin)).toBe(bin);
    expect(latencyBin(binUpperBoundMs(73))).toBe(74);
    expect(latencyBin(1_000)).toBe(73);
  });

  it('overstates a latency by at most 10%, plus the rounding up to a whole millisecond', () => {
    let worstAbove100 = 0;
    for (const ms of LATENCIES.filter((l) => l > 1 && l <= LATENCY_BIN_FACTOR ** (LATENCY_BIN_COUNT - 1))) {
      const bound = binUpperBoundMs(latencyBin(ms));
      expect(LATENCY_BIN_FACTOR ** latencyBin(ms), `${ms} ms`).toBeLessThanOrEqual(ms * LATENCY_BIN_FACTOR);
      expect(bound, `${ms} ms`).toBeLessThan(ms * LATENCY_BIN_FACTOR + 1);
      if (ms >= 100) worstAbove100 = Math.max(worstAbove100, bound / ms);
    }
    expect(worstAbove100).toBeLessThan(1.11);
    expect(binUpperBoundMs(latencyBin(1_000))).toBe(1_052);
    expect(binUpperBoundMs(latencyBin(2_000))).toBe(2_049);
  });

  it('keeps everything above the second-to-last bound in the last bin', () => {
    expect(latencyBin(LATENCY_BIN_FACTOR ** (LATENCY_BIN_COUNT - 2) + 1)).toBe(LATENCY_BIN_COUNT - 1);
    expect(latencyBin(3_600_000)).toBe(LATENCY_BIN_COUNT - 1);
    expect(latencyBin(Number.MAX_SAFE_INTEGER)).toBe(LATENCY_BIN_COUNT - 1);
    // A Lambda function runs for at most 15 minutes: its latencies never reach the last bin.
    expect(latencyBin(15 * 60_000)).toBeLessThan(LATENCY_BIN_COUNT - 1);
  });
});

describe('windowStats', () => {
  it('has no calls, no error rate and no percentiles for an empty window', () => {
    expect(windowStats([], 0)).toEqual({ calls: 0, errors: 0, errorRate: 0 });
    const result = windowStats([bucket(100, { fast: 3 })], 105);
    expect(result).toEqual({ calls: 0, errors: 0, errorRate: 0 });
    expect(result).not.toHaveProperty('p95Ms');
  });

  it('merges the calls, errors and latency histograms of every bucket', () => {
    const result = windowStats([bucket(100, { fast: 4, failed: 1 }), bucket(105, { fast: 3, slow: 1, failed: 3 }), bucket(110, { slow: 1 })], 0);
    expect(result.calls).toBe(13);
    expect(result.errors).toBe(4);
    expect(result.errorRate).toBeCloseTo(4 / 13, 12);
    expect(result.p50Ms).toBe(FAST_BOUND);
    // 7 fast and 2 slow answers: the 95th percentile (rank 9 of 9) is slow.
    expect(result.p95Ms).toBe(SLOW_BOUND);
  });

  it('leaves out the buckets that start before `from`, and keeps the one starting at it', () => {
    const buckets = [bucket(95, { failed: 10 }), bucket(100, { fast: 2 }), bucket(105, { fast: 1, failed: 1 })];
    expect(windowStats(buckets, 100)).toEqual({ calls: 4, errors: 1, errorRate: 0.25, p50Ms: FAST_BOUND, p95Ms: FAST_BOUND });
    expect(windowStats(buckets, 101)).toMatchObject({ calls: 2, errors: 1, errorRate: 0.5 });
  });

  it('reads p95 as the fast bound with 95 fast and 5 slow answers', () => {
    const result = windowStats([bucket(0, { fast: 95, slow: 5 })], 0);
    expect(result.p95Ms).toBe(FAST_BOUND);
    expect(result.p50Ms).toBe(FAST_BOUND);
  });

  it('reads p95 as the slow bound with 90 fast and 10 slow answers', () => {
    const result = windowStats([bucket(0, { fast: 90, slow: 10 })], 0);
    expect(result.p95Ms).toBe(SLOW_BOUND);
    expect(result.p50Ms).toBe(FAST_BOUND);
  });

  it('reads p50 as the slow bound when most answers are slow, whichever order the bins are stored in', () => {
    const latency: Record<number, number> = { [latencyBin(2_000)]: 6, [latencyBin(100)]: 4 };
    const result = windowStats([{ start: 0, calls: 10, errors: 0, latency }], 0);
    expect(result.p50Ms).toBe(SLOW_BOUND);
    expect(result.p95Ms).toBe(SLOW_BOUND);
  });

  it('computes percentiles from answered calls only: transient faults count in the error rate, not the latency', () => {
    const result = windowStats([bucket(0, { fast: 1, failed: 99 })], 0);
    expect(result).toEqual({ calls: 100, errors: 99, errorRate: 0.99, p50Ms: FAST_BOUND, p95Ms: FAST_BOUND });
  });

  it('has an error rate but no percentiles when every call failed', () => {
    const result = windowStats([bucket(0, { failed: 4 })], 0);
    expect(result).toEqual({ calls: 4, errors: 4, errorRate: 1 });
  });
});

describe('bucketStart and windowStart', () => {
  const config = { windowSeconds: 60, bucketSeconds: 5 };

  it('starts a bucket at a multiple of bucketSeconds, in epoch seconds', () => {
    expect(bucketStart(102_300, 5)).toBe(100);
    expect(bucketStart(104_999, 5)).toBe(100);
    expect(bucketStart(105_000, 5)).toBe(105);
  });

  it('covers the last windowSeconds in whole buckets, the current one included', () => {
    const from = windowStart(102_300, config);
    expect(from).toBe(45);
    // 45, 50, ..., 100: twelve buckets of five seconds.
    expect((bucketStart(102_300, 5) - from) / 5 + 1).toBe(12);
    const buckets = [bucket(40, { failed: 7 }), bucket(45, { fast: 1 }), bucket(100, { fast: 2 })];
    expect(windowStats(buckets, from)).toMatchObject({ calls: 3, errors: 0 });
  });

  it('starts after the bucket of the circuit’s last change, leaving that bucket out', () => {
    const since = 70_500;
    const from = windowStart(102_300, config, since);
    expect(from).toBe(75);
    const buckets = [bucket(65, { failed: 5 }), bucket(70, { failed: 5 }), bucket(75, { fast: 1 }), bucket(100, { fast: 1, failed: 1 })];
    expect(windowStats(buckets, from)).toEqual({ calls: 3, errors: 1, errorRate: 1 / 3, p50Ms: FAST_BOUND, p95Ms: FAST_BOUND });
  });

  it('ignores a change older than the window, and a breaker that never changed (since 0)', () => {
    expect(windowStart(102_300, config, 10_000)).toBe(45);
    expect(windowStart(102_300, config, 0)).toBe(45);
  });

  it('is empty right after a change: the window starts in the next bucket', () => {
    const now = 102_300;
    expect(windowStart(now, config, now)).toBe(105);
    expect(windowStats([bucket(100, { failed: 9 })], windowStart(now, config, now))).toEqual({ calls: 0, errors: 0, errorRate: 0 });
  });
});

describe('tripReason', () => {
  const config = { minCalls: 5, errorRateThreshold: 0.5 };

  it('never trips below minCalls, whatever the errors or latency', () => {
    expect(tripReason(stats(4, 4, 50_000), config, 1_000)).toBeUndefined();
    expect(tripReason(stats(0, 0), config, 1)).toBeUndefined();
  });

  it('trips at an error rate equal to the threshold, naming the rate and the counts', () => {
    const reason = tripReason(stats(10, 5, 100), config);
    expect(reason).toBe('error rate 0.50 (5 of 10 calls) at or above 0.5');
  });

  it('does not trip just below the threshold', () => {
    expect(tripReason(stats(10, 4, 100), config)).toBeUndefined();
    expect(tripReason(stats(5, 2, 100), config)).toBeUndefined();
  });

  it('trips on a p95 in a bin above the SLO’s, naming both', () => {
    expect(tripReason(stats(5, 0, 1_157), config, 1_000)).toBe('p95 latency 1157 ms above the SLO of 1000 ms over 5 calls');
  });

  it('does not trip on a p95 equal to the SLO, nor on a window without answers', () => {
    expect(tripReason(stats(5, 0, 1_000), config, 1_000)).toBeUndefined();
    // 1,052 ms is the bound of the SLO’s own bin: within the breaker’s 10% resolution.
    expect(tripReason(stats(5, 0, 1_052), config, 1_000)).toBeUndefined();
    expect(tripReason(stats(5, 1), config, 1_000)).toBeUndefined();
  });

  it('never trips on latency without an SLO', () => {
    expect(tripReason(stats(100, 0, 1_470_653), config)).toBeUndefined();
    expect(tripReason(stats(100, 0, 1_470_653), config, undefined)).toBeUndefined();
  });

  it('gives the error rate as the reason when both rules are broken', () => {
    expect(tripReason(stats(10, 10, 5_000), config, 1_000)).toMatch(/^error rate 1\.00 /);
  });
});

describe('admit', () => {
  const open = (since: number): Breaker => ({ state: 'open', since, reason: 'error rate 1.00', version: 1 });
  const halfOpen = (probeUntil?: number): Breaker => ({ state: 'half_open', since: NOW - 5_000, version: 2, ...(probeUntil === undefined ? {} : { probeUntil }) });

  it('calls a model whose circuit is closed and healthy', () => {
    expect(admit(INITIAL_BREAKER, HEALTHY, CONFIG, 1_000, NOW)).toEqual({ action: 'call' });
    expect(admit(INITIAL_BREAKER, stats(0, 0), CONFIG, undefined, NOW)).toEqual({ action: 'call' });
  });

  it('trips a closed circuit whose window breaks the rules, with the reason', () => {
    expect(admit(INITIAL_BREAKER, stats(6, 3), CONFIG, undefined, NOW)).toEqual({ action: 'trip', reason: 'error rate 0.50 (3 of 6 calls) at or above 0.5' });
    expect(admit(INITIAL_BREAKER, stats(6, 0, 2_144), CONFIG, 2_000, NOW)).toEqual({
      action: 'trip',
      reason: 'p95 latency 2144 ms above the SLO of 2000 ms over 6 calls',
    });
  });

  it('skips an open circuit until halfOpenAfterSeconds have passed, whatever the window says', () => {
    expect(admit(open(NOW - 29_999), HEALTHY, CONFIG, undefined, NOW)).toEqual({ action: 'skip', reason: 'circuit open' });
    expect(admit(open(NOW), stats(0, 0), CONFIG, undefined, NOW)).toEqual({ action: 'skip', reason: 'circuit open' });
  });

  it('probes an open circuit once halfOpenAfterSeconds have passed, whatever the window says', () => {
    expect(admit(open(NOW - 30_000), stats(50, 50), CONFIG, undefined, NOW)).toEqual({ action: 'probe' });
    expect(admit(open(NOW - 3_600_000), HEALTHY, CONFIG, undefined, NOW)).toEqual({ action: 'probe' });
    expect(admit(open(NOW - 10_000), HEALTHY, { ...CONFIG, halfOpenAfterSeconds: 10 }, undefined, NOW)).toEqual({ action: 'probe' });
  });

  it('skips a half-open circuit while another call holds the probe lease (up to its last millisecond)', () => {
    const skip = { action: 'skip', reason: 'circuit half-open: another call is probing' };
    expect(admit(halfOpen(NOW + 60_000), HEALTHY, CONFIG, undefined, NOW)).toEqual(skip);
    expect(admit(halfOpen(NOW), HEALTHY, CONFIG, undefined, NOW)).toEqual(skip);
  });

  it('probes a half-open circuit whose probe lease ran out (the probe died), or that has none', () => {
    expect(admit(halfOpen(NOW - 1), HEALTHY, CONFIG, undefined, NOW)).toEqual({ action: 'probe' });
    expect(admit(halfOpen(), stats(50, 50), CONFIG, undefined, NOW)).toEqual({ action: 'probe' });
  });
});

describe('probeVerdict', () => {
  it('opens the circuit again when the probe failed, whatever its latency', () => {
    expect(probeVerdict({ ok: false, latencyMs: 3 }, 1_000)).toEqual({ state: 'open', reason: 'the probe failed' });
    expect(probeVerdict({ ok: false, latencyMs: 3 })).toEqual({ state: 'open', reason: 'the probe failed' });
  });

  it('closes the circuit when the probe answered within the SLO (at it included)', () => {
    expect(probeVerdict({ ok: true, latencyMs: 400 }, 1_000)).toEqual({ state: 'closed', reason: 'the probe answered in 400 ms' });
    expect(probeVerdict({ ok: true, latencyMs: 1_000 }, 1_000)).toMatchObject({ state: 'closed' });
  });

  it('opens the circuit again when the probe answered above the SLO', () => {
    expect(probeVerdict({ ok: true, latencyMs: 1_200 }, 1_000)).toEqual({ state: 'open', reason: 'the probe took 1200 ms, above the SLO of 1000 ms' });
    // Within the SLO's bin (10% resolution), as a trip is judged: closed.
    expect(probeVerdict({ ok: true, latencyMs: 1_040 }, 1_000).state).toBe('closed');
  });

  it('closes the circuit on any answer without an SLO', () => {
    expect(probeVerdict({ ok: true, latencyMs: 600_000 })).toEqual({ state: 'closed', reason: 'the probe answered in 600000 ms' });
  });
});
