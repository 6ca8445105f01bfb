/**
 * In-memory fakes of the step dependencies other than the checkpoint store
 * (`handlers/memory-store.ts`): bodies by reference (the S3 `BodyStore`), calls
 * run once per idempotency key (Powertools idempotency), injected faults, the
 * policies in force (Cedar), HTTP tool calls, the recorded answers to output
 * reviews (the approval table) and the models' health table.
 * Strict, like the adapters they stand for: a body read back with another
 * SHA-256 or never stored fails with CorruptCheckpointError, an HTTP call no test
 * expects fails, and every call is recorded.
 */
import { createHash } from 'node:crypto';
import type { Once } from '../../../lambdas/adapters/idempotency';
import type { FaultPoint } from '../../../lambdas/adapters/fault-injection';
import { DEFAULT_BODY_INLINE_LIMIT_BYTES } from '../../../lambdas/core/constants';
import type { BodyRef } from '../../../lambdas/core/contracts/checkpoint';
import type { WaitDecision } from '../../../lambdas/core/contracts/loop';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';
import type { HttpImplementation } from '../../../lambdas/core/define';
import type { PolicyDecision } from '../../../lambdas/core/policy';
import type { PolicySnapshot, StepBodies, StepDeps } from '../../../lambdas/handlers/agent/deps';
import type { HealthBook, HealthSample, HealthView } from '../../../lambdas/adapters/model-health';
import { bucketStart, INITIAL_BREAKER, latencyBin, windowStart, windowStats, type Breaker, type HealthBucket } from '../../../lambdas/core/health';
import type { BreakerConfig } from '../../../lambdas/core/routing';

export const BODY_BUCKET = 'unit-bodies';

/** SHA-256 of a UTF-8 string, hex. */
export const sha256 = (body: string): string => createHash('sha256').update(body).digest('hex');

/**
 * The S3 body store in memory: content-addressed keys
 * (`<session>/<checkpoint key>/<sha256>.json`), as `BodyStore` writes them.
 */
export class MemoryBodyStore implements StepBodies {
  private readonly objects = new Map<string, string>();
  /** Keys written, in order (a rewrite of the same body is recorded again). */
  readonly puts: string[] = [];
  /** Keys read, in order. */
  readonly gets: string[] = [];

  constructor(readonly inlineLimitBytes: number = DEFAULT_BODY_INLINE_LIMIT_BYTES) {}

  exceedsInline(body: string): boolean {
    return Buffer.byteLength(body) > this.inlineLimitBytes;
  }

  async put(sessionId: string, sk: string, body: string): Promise<BodyRef> {
    const digest = sha256(body);
    const key = `${sessionId}/${sk}/${digest}.json`;
    this.objects.set(key, body);
    this.puts.push(key);
    return { bucket: BODY_BUCKET, key, bytes: Buffer.byteLength(body), sha256: digest };
  }

  async get(ref: BodyRef): Promise<string> {
    this.gets.push(ref.key);
    const body = ref.bucket === BODY_BUCKET ? this.objects.get(ref.key) : undefined;
    if (body === undefined) throw new CorruptCheckpointError(`body s3://${ref.bucket}/${ref.key} is empty`);
    const digest = sha256(body);
    if (digest !== ref.sha256) throw new CorruptCheckpointError(`body s3://${ref.bucket}/${ref.key} has SHA-256 ${digest}, the checkpoint says ${ref.sha256}`);
    return body;
  }

  /** The stored body of a key, or undefined. */
  object(key: string): string | undefined {
    return this.objects.get(key);
  }

  /** Replaces a stored body behind the store's back (a corrupted or tampered object). */
  tamper(key: string, body: string): void {
    if (!this.objects.has(key)) throw new Error(`tamper: no object ${key}`);
    this.objects.set(key, body);
  }
}

/**
 * Powertools idempotency in memory: the first call for a key runs and its result
 * is kept (as JSON, as the idempotency table keeps it); later calls get that
 * result without running. A call that throws keeps nothing, so it may run again.
 */
export class MemoryOnce {
  private readonly results = new Map<string, string>();
  /** Every key asked for, in order. */
  readonly keys: string[] = [];
  /** Keys whose function actually ran, in order. */
  readonly runs: string[] = [];

  readonly once: Once = async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    this.keys.push(key);
    const kept = this.results.get(key);
    if (kept !== undefined) return JSON.parse(kept) as T;
    this.runs.push(key);
    const value = await fn();
    this.results.set(key, JSON.stringify(value) ?? 'null');
    return JSON.parse(this.results.get(key) ?? 'null') as T;
  };

  /** Whether a result is kept for `key`. */
  has(key: string): boolean {
    return this.results.has(key);
  }
}

/** The error a scripted fault throws (the adapter's `InjectedFault` stands for it in Lambda). */
export class ScriptedFault extends Error {
  override readonly name = 'InjectedFault';
}

/**
 * Injected faults, scripted per point: `fail(point, n)` makes the next `n` steps
 * reaching `point` throw {@link ScriptedFault}. Every point reached is recorded.
 */
export class ScriptedFaults {
  private readonly planned = new Map<FaultPoint, number>();
  /** Every point reached, in order, with the session. */
  readonly reached: Array<{ point: FaultPoint; sessionId: string }> = [];

  fail(point: FaultPoint, times = 1): this {
    this.planned.set(point, (this.planned.get(point) ?? 0) + times);
    return this;
  }

  readonly fire = async (point: FaultPoint, sessionId: string): Promise<void> => {
    this.reached.push({ point, sessionId });
    const left = this.planned.get(point) ?? 0;
    if (left > 0) {
      this.planned.set(point, left - 1);
      throw new ScriptedFault(`injected throw fault at ${point}`);
    }
  };
}

/** A policy request as the steps make it (`PolicySnapshot.decide`). */
export type PolicyRequest = Parameters<PolicySnapshot['decide']>[0];

/** Allows a request, as the default policy (`permit (principal, action, resource);`) does; no policy determined it. */
export const ALLOW: PolicyDecision = { allowed: true, policies: [], errors: [] };

/** A snapshot that allows everything (the default policies), under version `test`. */
export const allowAll = async (): Promise<PolicySnapshot> => ({ version: 'test', decide: () => ALLOW });

/**
 * The policies in force, scripted: `rule` decides each request (everything allowed
 * until a test sets it), `version` names the snapshot; both may change between steps,
 * as an operator's override does. Every request decided is recorded, with the version
 * of the snapshot that decided it.
 */
export class ScriptedPolicies {
  version = 'test';
  rule: (request: PolicyRequest) => PolicyDecision = () => ALLOW;
  /** Every request decided, in order. */
  readonly requests: Array<PolicyRequest & { version: string }> = [];

  readonly snapshot = async (): Promise<PolicySnapshot> => {
    const { version, rule } = this;
    return {
      version,
      decide: (request) => {
        this.requests.push({ ...request, version });
        return rule(request);
      },
    };
  };
}

/** One HTTP tool call as the runtime made it. */
export interface HttpCall {
  readonly http: HttpImplementation;
  readonly input: unknown;
  readonly context: Parameters<StepDeps['callHttp']>[2];
}

/** HTTP tool calls: every call is recorded; a call fails unless a test set `answer`. */
export class ScriptedHttp {
  readonly calls: HttpCall[] = [];
  answer: ((call: HttpCall) => Promise<unknown>) | undefined = undefined;

  readonly call: StepDeps['callHttp'] = async (http, input, context) => {
    const made = { http, input, context };
    this.calls.push(made);
    if (!this.answer) throw new Error(`unexpected HTTP call of ${context.toolName} (${http.method} ${http.url}): no test expects one`);
    return this.answer(made);
  };
}

/**
 * The recorded answers to output reviews (the approval records the model turn reads
 * after a continue-as-new or a resume), scripted: none until a test records one with
 * `answer`, so a review reads as pending. Every read is recorded.
 */
export class ScriptedReviews {
  private readonly answers = new Map<string, WaitDecision>();
  /** Every read, in order. */
  readonly reads: Array<{ sessionId: string; step: number }> = [];

  /** Records the answer to the review of model turn `step` (as the approval record holds it once decided). */
  answer(sessionId: string, step: number, decision: WaitDecision): this {
    this.answers.set(`${sessionId}#${step}`, decision);
    return this;
  }

  readonly decision: StepDeps['reviewDecision'] = async (sessionId, step) => {
    this.reads.push({ sessionId, step });
    const answer = this.answers.get(`${sessionId}#${step}`);
    return answer && structuredClone(answer);
  };
}

/**
 * The model health table in memory, with the DynamoDB store's semantics: calls
 * counted per bucket (`core/health.ts`), the breaker changed only when its version
 * is the one read (a conditional write). `failing` makes every operation throw (a
 * health-table outage).
 */
export class MemoryHealthBook implements HealthBook {
  readonly buckets = new Map<string, Map<number, { calls: number; errors: number; latency: Record<number, number> }>>();
  readonly breakers = new Map<string, Breaker>();
  readonly samples: { key: string; sample: HealthSample }[] = [];
  failing = false;

  read = async (key: string, now: number, config: BreakerConfig): Promise<HealthView> => {
    this.check();
    const breaker = this.breakers.get(key) ?? INITIAL_BREAKER;
    const buckets = [...(this.buckets.get(key) ?? new Map<number, HealthBucket>()).entries()].map(([start, b]) => ({ start, ...b }));
    return { breaker, stats: windowStats(buckets, windowStart(now, config, breaker.since)) };
  };

  record = async (key: string, sample: HealthSample, config: BreakerConfig): Promise<void> => {
    this.check();
    this.samples.push({ key, sample });
    type Counts = { calls: number; errors: number; latency: Record<number, number> };
    const byStart = this.buckets.get(key) ?? new Map<number, Counts>();
    this.buckets.set(key, byStart);
    const start = bucketStart(sample.at, config.bucketSeconds);
    const bucket: Counts = byStart.get(start) ?? { calls: 0, errors: 0, latency: {} };
    bucket.calls += 1;
    if (!sample.ok) bucket.errors += 1;
    else {
      const bin = latencyBin(sample.latencyMs);
      bucket.latency[bin] = (bucket.latency[bin] ?? 0) + 1;
    }
    byStart.set(start, bucket);
  };

  transition = async (key: string, from: Breaker, to: Omit<Breaker, 'version'>): Promise<Breaker | undefined> => {
    this.check();
    if ((this.breakers.get(key) ?? INITIAL_BREAKER).version !== from.version) return undefined;
    const next = { ...to, version: from.version + 1 };
    this.breakers.set(key, next);
    return next;
  };

  private check(): void {
    if (this.failing) throw new Error('health table unavailable');
  }
}
