/**
 * The model health table (partition key `model`, sort key `sk`, TTL attribute
 * `expiresAt`), shared by every agent's model-turn functions:
 *
 * | `sk` | what |
 * | --- | --- |
 * | `B#<epoch seconds, 12 digits>` | one bucket of calls: `calls`, `errors`, and `b<bin>` latency counters, all updated with `ADD` |
 * | `STATE` | the circuit breaker: `state`, `since`, `reason`, `probeUntil`, `version` (conditional writes only) |
 *
 * One Query (`sk >= B#<window start>`) reads a model's window and its breaker,
 * since `STATE` sorts after every `B#` key.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { bucketStart, INITIAL_BREAKER, latencyBin, windowStart, windowStats, type Breaker, type HealthBucket, type WindowStats } from '../core/health';
import type { BreakerConfig } from '../core/routing';

/** Sort key of a model's breaker item. */
export const BREAKER_SK = 'STATE';
const BUCKET_PREFIX = 'B#';

/** One call's outcome, as counted in the health table. */
export interface HealthSample {
  /** When the call ended (its start plus `latencyMs`), ms since the epoch: the bucket it is counted in. */
  readonly at: number;
  /** Whether it answered (a transient fault is `false`; terminal faults are not samples). */
  readonly ok: boolean;
  /** How long it took, ms (counted in the latency histogram only when `ok`). */
  readonly latencyMs: number;
}

/** A model's health as read: its breaker and the statistics of its window. */
export interface HealthView {
  readonly breaker: Breaker;
  readonly stats: WindowStats;
}

/** The health operations the router uses (the DynamoDB store in Lambda). */
export interface HealthBook {
  /** The breaker and window of model `key` at `now` (ms). */
  read(key: string, now: number, config: BreakerConfig): Promise<HealthView>;
  /** Counts one call of model `key` in the bucket of `sample.at`. */
  record(key: string, sample: HealthSample, config: BreakerConfig): Promise<void>;
  /**
   * Moves model `key`'s breaker from `from` (as read) to `to`, if nobody moved it
   * since. @returns the new breaker, or undefined when another call changed it first.
   */
  transition(key: string, from: Breaker, to: Omit<Breaker, 'version'>): Promise<Breaker | undefined>;
}

/**
 * Reads and writes the model health table through the DynamoDB document client.
 * SDK errors propagate (the router treats a health-table fault as no health information).
 */
export class ModelHealthStore implements HealthBook {
  /** @param tableName the runtime's model health table (`ENV.healthTable`). */
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** One strongly consistent Query from the window's first bucket: the buckets and the breaker. @throws the SDK's errors. */
  async read(key: string, now: number, config: BreakerConfig): Promise<HealthView> {
    // The breaker first, to know where the window starts: but both come from one Query
    // reaching back a whole window; buckets before the breaker's `since` are dropped here.
    const earliest = windowStart(now, config);
    const items: Record<string, unknown>[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          // Strongly consistent: a breaker just changed by another function is seen (one partition, cheap).
          ConsistentRead: true,
          KeyConditionExpression: '#m = :m AND sk >= :from',
          ExpressionAttributeNames: { '#m': 'model' },
          ExpressionAttributeValues: { ':m': key, ':from': bucketKey(earliest) },
          ExclusiveStartKey,
        }),
      );
      items.push(...((page.Items ?? []) as Record<string, unknown>[]));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    const state = items.find((i) => i.sk === BREAKER_SK);
    const breaker = state ? breakerOf(state) : INITIAL_BREAKER;
    const buckets = items.filter((i) => typeof i.sk === 'string' && i.sk.startsWith(BUCKET_PREFIX)).map(bucketOf);
    return { breaker, stats: windowStats(buckets, windowStart(now, config, breaker.since)) };
  }

  /** One UpdateItem of `ADD`s on the bucket of `sample.at`, whose TTL is two windows and a bucket after its start. @throws the SDK's errors. */
  async record(key: string, sample: HealthSample, config: BreakerConfig): Promise<void> {
    const start = bucketStart(sample.at, config.bucketSeconds);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ':one': 1, ':err': sample.ok ? 0 : 1, ':ttl': start + config.windowSeconds * 2 + config.bucketSeconds };
    let add = 'calls :one, errors :err';
    if (sample.ok) {
      names['#bin'] = `b${latencyBin(sample.latencyMs)}`;
      add += ', #bin :one';
    }
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { model: key, sk: bucketKey(start) },
        UpdateExpression: `ADD ${add} SET expiresAt = :ttl`,
        ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: values,
      }),
    );
  }

  /**
   * One conditional UpdateItem: `attribute_not_exists(version)` from a breaker never written
   * (version 0), else `version = <from.version>`. @throws the SDK's errors but the refused condition.
   */
  async transition(key: string, from: Breaker, to: Omit<Breaker, 'version'>): Promise<Breaker | undefined> {
    const next: Breaker = { ...to, version: from.version + 1 };
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { model: key, sk: BREAKER_SK },
          UpdateExpression: 'SET #s = :s, since = :since, reason = :reason, probeUntil = :probe, version = :next',
          ConditionExpression: from.version === 0 ? 'attribute_not_exists(version)' : 'version = :v',
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: {
            ':s': next.state,
            ':since': next.since,
            ':reason': next.reason ?? '',
            ':probe': next.probeUntil ?? 0,
            ':next': next.version,
            ...(from.version === 0 ? {} : { ':v': from.version }),
          },
        }),
      );
      return next;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }
}

function bucketKey(start: number): string {
  return `${BUCKET_PREFIX}${String(start).padStart(12, '0')}`;
}

function breakerOf(item: Record<string, unknown>): Breaker {
  const state = item.state === 'open' || item.state === 'half_open' ? item.state : 'closed';
  const breaker: Breaker = { state, since: Number(item.since ?? 0), version: Number(item.version ?? 0) };
  const reason = typeof item.reason === 'string' && item.reason !== '' ? item.reason : undefined;
  const probeUntil = Number(item.probeUntil ?? 0);
  return { ...breaker, ...(reason ? { reason } : {}), ...(probeUntil > 0 ? { probeUntil } : {}) };
}

function bucketOf(item: Record<string, unknown>): HealthBucket {
  const latency: Record<number, number> = {};
  for (const [name, value] of Object.entries(item)) {
    if (/^b\d+$/.test(name)) latency[Number(name.slice(1))] = Number(value);
  }
  return { start: Number(String(item.sk).slice(BUCKET_PREFIX.length)), calls: Number(item.calls ?? 0), errors: Number(item.errors ?? 0), latency };
}
