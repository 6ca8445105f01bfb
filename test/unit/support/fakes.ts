/**
 * In-memory fakes of the step dependencies other than the checkpoint store
 * (`handlers/memory-store.ts`): bodies by reference (the S3 `BodyStore`), calls
 * run once per idempotency key (Powertools idempotency) and injected faults.
 * Strict, like the adapters they stand for: a body read back with another
 * SHA-256 or never stored fails with CorruptCheckpointError, and every call is recorded.
 */
import { createHash } from 'node:crypto';
import type { Once } from '../../../lambdas/adapters/idempotency';
import type { FaultPoint } from '../../../lambdas/adapters/fault-injection';
import { DEFAULT_BODY_INLINE_LIMIT_BYTES } from '../../../lambdas/core/constants';
import type { BodyRef } from '../../../lambdas/core/contracts/checkpoint';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';
import type { StepBodies } from '../../../lambdas/handlers/agent/deps';

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
