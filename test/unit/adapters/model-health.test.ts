/**
 * ModelHealthStore against a strict scripted DynamoDB document client: the bucket
 * update a sample makes (`ADD` of the call, error and latency-bin counters, the TTL
 * in epoch seconds), the Query that reads a model's window and breaker (pages
 * followed, buckets from before the breaker's last change left out), and the
 * conditional writes that move the breaker (a lost race answers undefined).
 * The router tests use the in-memory health book (`support/fakes.ts`); this pins
 * the real store's side of the same contract.
 */
import { ConditionalCheckFailedException, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { QueryCommand, UpdateCommand, type QueryCommandInput, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { BREAKER_SK, ModelHealthStore, type HealthSample } from '../../../lambdas/adapters/model-health';
import { bucketStart, INITIAL_BREAKER, latencyBin, windowStart, type Breaker } from '../../../lambdas/core/health';
import { DEFAULT_BREAKER, type BreakerConfig } from '../../../lambdas/core/routing';
import { rejection } from '../support/rejection';
import { ScriptedDocumentClient } from '../support/scripted-document-client';

const TABLE = 'unit-model-health';
const MODEL = 'anthropic:claude-sonnet-4-5';
/** 2024-12-10T11:15:03.500Z: in the 5-second bucket of 11:15:00 (epoch second 1733829300). */
const NOW = Date.UTC(2024, 11, 10, 11, 15, 3, 500);
/** The bucket of {@link NOW} with the default 5-second buckets. */
const NOW_BUCKET = 1_733_829_300;
/** The first bucket of the default 60-second window at {@link NOW}: 11:14:05. */
const WINDOW_START = 1_733_829_245;

type Sent = QueryCommand | UpdateCommand;
type Item = Record<string, unknown>;

/**
 * The document client, scripted: each `send` takes the next expected answer, which
 * checks the command's type; a command no answer expects fails the test. Every
 * command is recorded.
 */
class ScriptedStoreClient extends ScriptedDocumentClient<Sent> {

  /** The next Query: one page of `items`, with `lastKey` as its LastEvaluatedKey (more to read). */
  page(items: readonly Item[], lastKey?: Item): this {
    this.next((command) => {
      expect(command).toBeInstanceOf(QueryCommand);
      return { Items: structuredClone(items), Count: items.length, ...(lastKey ? { LastEvaluatedKey: lastKey } : {}) };
    });
    return this;
  }

  /** The next Query: fails with `error`. */
  queryFails(error: Error): this {
    this.next((command) => {
      expect(command).toBeInstanceOf(QueryCommand);
      throw error;
    });
    return this;
  }

  /** The next UpdateItem: succeeds, or throws `error`. */
  update(error?: Error): this {
    this.next((command) => {
      expect(command).toBeInstanceOf(UpdateCommand);
      if (error) throw error;
      return {};
    });
    return this;
  }


  /** The input of the `index`th command sent, which must be a Query. */
  query(index: number): QueryCommandInput {
    const command = this.sent[index];
    expect(command).toBeInstanceOf(QueryCommand);
    return (command as QueryCommand).input;
  }

  /** The input of the `index`th command sent, which must be an UpdateItem. */
  updated(index: number): UpdateCommandInput {
    const command = this.sent[index];
    expect(command).toBeInstanceOf(UpdateCommand);
    return (command as UpdateCommand).input;
  }
}

const store = (dynamo: ScriptedStoreClient): ModelHealthStore => new ModelHealthStore(dynamo.client, TABLE);

/** A bucket item as the table holds it (the key, the TTL and the counters). */
const bucket = (start: number, counters: { calls: number; errors: number } & Record<`b${number}`, number>): Item => ({
  model: MODEL,
  sk: `B#${String(start).padStart(12, '0')}`,
  expiresAt: start + DEFAULT_BREAKER.windowSeconds * 2 + DEFAULT_BREAKER.bucketSeconds,
  ...counters,
});

/** A breaker item as the table holds it (written by `transition`: no reason is '', no probe lease is 0). */
const stateItem = (fields: { state: string; since: number; reason: string; probeUntil: number; version: number }): Item => ({ model: MODEL, sk: BREAKER_SK, ...fields });

async function recordWith(dynamo: ScriptedStoreClient, sample: HealthSample, config: BreakerConfig = DEFAULT_BREAKER): Promise<UpdateCommandInput> {
  await store(dynamo).record(MODEL, sample, config);
  expect(dynamo.left).toBe(0);
  expect(dynamo.sent).toHaveLength(1);
  return dynamo.updated(0);
}

describe('ModelHealthStore.record', () => {
  it("adds an answered call to its bucket: calls 1, errors 0 and its latency bin 1, with the TTL in epoch seconds two windows and a bucket after the bucket's start", async () => {
    const update = await recordWith(new ScriptedStoreClient().update(), { at: NOW, ok: true, latencyMs: 250 });

    expect(latencyBin(250)).toBe(58);
    expect(update).toStrictEqual({
      TableName: TABLE,
      Key: { model: MODEL, sk: 'B#001733829300' },
      UpdateExpression: 'ADD calls :one, errors :err, #bin :one SET expiresAt = :ttl',
      ExpressionAttributeNames: { '#bin': 'b58' },
      ExpressionAttributeValues: { ':one': 1, ':err': 0, ':ttl': NOW_BUCKET + 60 * 2 + 5 },
    });
    // Seconds, not milliseconds: DynamoDB's TTL ignores (never expires) a value in ms.
    const ttl = update.ExpressionAttributeValues?.[':ttl'] as number;
    expect(ttl).toBeGreaterThan(NOW / 1000);
    expect(ttl).toBeLessThan(NOW / 1000 + 3600);
  });

  it('adds a failed call as calls 1, errors 1 and no latency bin (no attribute names at all)', async () => {
    const update = await recordWith(new ScriptedStoreClient().update(), { at: NOW, ok: false, latencyMs: 250 });

    expect(update).toStrictEqual({
      TableName: TABLE,
      Key: { model: MODEL, sk: 'B#001733829300' },
      UpdateExpression: 'ADD calls :one, errors :err SET expiresAt = :ttl',
      ExpressionAttributeValues: { ':one': 1, ':err': 1, ':ttl': NOW_BUCKET + 125 },
    });
    expect(update).not.toHaveProperty('ExpressionAttributeNames');
  });

  it.each([
    ['a call inside a bucket', Date.UTC(2024, 11, 10, 11, 15, 59, 999), 1_733_829_300],
    ['a call on the first millisecond of a bucket', Date.UTC(2024, 11, 10, 11, 16, 0, 0), 1_733_829_360],
    ['a call on the last millisecond before a bucket', Date.UTC(2024, 11, 10, 11, 14, 59, 999), 1_733_829_240],
  ])("keys %s by its bucket's start under the config's bucketSeconds, and sets its TTL from that config", async (_why, at, start) => {
    const config: BreakerConfig = { ...DEFAULT_BREAKER, windowSeconds: 300, bucketSeconds: 60 };
    expect(bucketStart(at, 60)).toBe(start);

    const update = await recordWith(new ScriptedStoreClient().update(), { at, ok: true, latencyMs: 120 }, config);

    expect(update.Key).toStrictEqual({ model: MODEL, sk: `B#00${start}` });
    expect(update.ExpressionAttributeValues).toStrictEqual({ ':one': 1, ':err': 0, ':ttl': start + 300 * 2 + 60 });
  });

  it('pads the bucket start to 12 digits, so keys sort by time', async () => {
    const update = await recordWith(new ScriptedStoreClient().update(), { at: 12_345_678, ok: false, latencyMs: 5 });
    expect(update.Key).toStrictEqual({ model: MODEL, sk: 'B#000000012345' });
  });

  it.each([
    [0, 'b0'],
    [1, 'b0'],
    [2, 'b8'],
    [120, 'b51'],
    [900, 'b72'],
    [1e9, 'b149'],
  ])('counts an answer of %d ms in bin %s', async (latencyMs, name) => {
    const update = await recordWith(new ScriptedStoreClient().update(), { at: NOW, ok: true, latencyMs });
    expect(update.ExpressionAttributeNames).toStrictEqual({ '#bin': name });
    expect(name).toBe(`b${latencyBin(latencyMs)}`);
  });

  it('fails with the SDK error as it came', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    const dynamo = new ScriptedStoreClient().update(throttled);
    await expect(store(dynamo).record(MODEL, { at: NOW, ok: true, latencyMs: 10 }, DEFAULT_BREAKER)).rejects.toBe(throttled);
  });
});

describe('ModelHealthStore.read', () => {
  /** Two buckets in the window: 12 calls, 2 errors; 10 answers, 8 in bin 51 (≤ 130 ms), 2 in bin 72 (≤ 956 ms). */
  const WINDOW = [bucket(1_733_829_280, { calls: 4, errors: 1, b51: 3 }), bucket(NOW_BUCKET, { calls: 8, errors: 1, b51: 5, b72: 2 })];

  it("queries the model's whole window, from the bucket after the one a window ago, which also reaches the STATE item", async () => {
    const dynamo = new ScriptedStoreClient().page(WINDOW);

    await store(dynamo).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(dynamo.left).toBe(0);
    expect(dynamo.sent).toHaveLength(1);
    expect(windowStart(NOW, DEFAULT_BREAKER)).toBe(WINDOW_START);
    const query = dynamo.query(0);
    expect(query).toMatchObject({
      TableName: TABLE,
      KeyConditionExpression: '#m = :m AND sk >= :from',
      ExpressionAttributeNames: { '#m': 'model' },
      ExpressionAttributeValues: { ':m': MODEL, ':from': 'B#001733829245' },
    });
    expect(query.ExclusiveStartKey).toBeUndefined();
    expect(query.FilterExpression).toBeUndefined();
    // STATE sorts after every B# key, so `sk >= B#…` always reaches it.
    expect([BREAKER_SK, 'B#999999999999'].sort()).toEqual(['B#999999999999', BREAKER_SK]);
  });

  it('answers the initial breaker without a STATE item, and the statistics of every bucket in the window, percentiles from the latency bins', async () => {
    const view = await store(new ScriptedStoreClient().page(WINDOW)).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.breaker).toStrictEqual(INITIAL_BREAKER);
    expect(view.stats).toStrictEqual({ calls: 12, errors: 2, errorRate: 2 / 12, p50Ms: 130, p95Ms: 956 });
  });

  it('answers no calls, an error rate of 0 and no percentiles for an empty window', async () => {
    const view = await store(new ScriptedStoreClient().page([])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view).toStrictEqual({ breaker: INITIAL_BREAKER, stats: { calls: 0, errors: 0, errorRate: 0 } });
  });

  it('answers no percentiles when every call in the window failed', async () => {
    const view = await store(new ScriptedStoreClient().page([bucket(NOW_BUCKET, { calls: 3, errors: 3 })])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.stats).toStrictEqual({ calls: 3, errors: 3, errorRate: 1 });
  });

  it('counts the bucket that starts the window and no earlier one the page might hold', async () => {
    const items = [bucket(WINDOW_START - 5, { calls: 7, errors: 7 }), bucket(WINDOW_START, { calls: 2, errors: 0, b51: 2 })];

    const view = await store(new ScriptedStoreClient().page(items)).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.stats).toStrictEqual({ calls: 2, errors: 0, errorRate: 0, p50Ms: 130, p95Ms: 130 });
  });

  it('follows LastEvaluatedKey: the next page starts there, and the items of every page count, the STATE item on the last', async () => {
    const lastKey = { model: MODEL, sk: 'B#001733829280' };
    const state = stateItem({ state: 'closed', since: 0, reason: '', probeUntil: 0, version: 2 });
    const dynamo = new ScriptedStoreClient().page([WINDOW[0] as Item], lastKey).page([WINDOW[1] as Item, state]);

    const view = await store(dynamo).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(dynamo.left).toBe(0);
    expect(dynamo.sent).toHaveLength(2);
    expect(dynamo.query(0).ExclusiveStartKey).toBeUndefined();
    const second = dynamo.query(1);
    expect(second.ExclusiveStartKey).toStrictEqual(lastKey);
    expect(second).toMatchObject({ TableName: TABLE, KeyConditionExpression: '#m = :m AND sk >= :from', ExpressionAttributeValues: { ':m': MODEL, ':from': 'B#001733829245' } });
    expect(view).toStrictEqual({ breaker: { state: 'closed', since: 0, version: 2 }, stats: { calls: 12, errors: 2, errorRate: 2 / 12, p50Ms: 130, p95Ms: 956 } });
  });

  it('follows pages until one has no LastEvaluatedKey, even an empty page', async () => {
    const dynamo = new ScriptedStoreClient()
      .page([], { model: MODEL, sk: 'B#001733829250' })
      .page([WINDOW[0] as Item], { model: MODEL, sk: 'B#001733829280' })
      .page([WINDOW[1] as Item]);

    const view = await store(dynamo).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(dynamo.left).toBe(0);
    expect(dynamo.sent.map((_, i) => dynamo.query(i).ExclusiveStartKey)).toStrictEqual([
      undefined,
      { model: MODEL, sk: 'B#001733829250' },
      { model: MODEL, sk: 'B#001733829280' },
    ]);
    expect(view.stats.calls).toBe(12);
  });

  it('reads the breaker from the STATE item: state, since, reason, probe lease and version', async () => {
    const state = stateItem({ state: 'half_open', since: NOW - 40_000, reason: 'probing after 30 s open', probeUntil: NOW + 60_000, version: 7 });

    const view = await store(new ScriptedStoreClient().page([state])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.breaker).toStrictEqual({ state: 'half_open', since: NOW - 40_000, reason: 'probing after 30 s open', probeUntil: NOW + 60_000, version: 7 });
  });

  it('reads an empty reason and a probe lease of 0 as absent', async () => {
    const state = stateItem({ state: 'open', since: NOW - 10_000, reason: '', probeUntil: 0, version: 1 });

    const view = await store(new ScriptedStoreClient().page([state])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.breaker).toStrictEqual({ state: 'open', since: NOW - 10_000, version: 1 });
    expect(view.breaker).not.toHaveProperty('reason');
    expect(view.breaker).not.toHaveProperty('probeUntil');
  });

  it("counts only the buckets after the one holding the breaker's since: earlier calls belong to the circuit's previous state", async () => {
    const since = Date.UTC(2024, 11, 10, 11, 14, 32, 0); // in the bucket of 11:14:30 (1733829270)
    expect(windowStart(NOW, DEFAULT_BREAKER, since)).toBe(1_733_829_275);
    const items = [
      bucket(1_733_829_265, { calls: 10, errors: 10 }), // before the change
      bucket(1_733_829_270, { calls: 5, errors: 5 }), // the change's own bucket: it may hold calls from before it
      bucket(1_733_829_275, { calls: 2, errors: 0, b51: 2 }),
      bucket(NOW_BUCKET, { calls: 1, errors: 1 }),
      stateItem({ state: 'closed', since, reason: 'the probe answered in 80 ms', probeUntil: 0, version: 4 }),
    ];
    const dynamo = new ScriptedStoreClient().page(items);

    const view = await store(dynamo).read(MODEL, NOW, DEFAULT_BREAKER);

    // The Query still reaches back a whole window (the breaker is not known before it answers).
    expect(dynamo.query(0).ExpressionAttributeValues).toStrictEqual({ ':m': MODEL, ':from': 'B#001733829245' });
    expect(view).toStrictEqual({
      breaker: { state: 'closed', since, reason: 'the probe answered in 80 ms', version: 4 },
      stats: { calls: 3, errors: 1, errorRate: 1 / 3, p50Ms: 130, p95Ms: 130 },
    });
  });

  it('counts the whole window when the breaker changed before it began', async () => {
    const state = stateItem({ state: 'closed', since: NOW - 3_600_000, reason: 'the probe answered in 80 ms', probeUntil: 0, version: 2 });

    const view = await store(new ScriptedStoreClient().page([...WINDOW, state])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(view.stats).toStrictEqual({ calls: 12, errors: 2, errorRate: 2 / 12, p50Ms: 130, p95Ms: 956 });
  });

  it('uses the window and buckets of the config it is given', async () => {
    const config: BreakerConfig = { ...DEFAULT_BREAKER, windowSeconds: 300, bucketSeconds: 60 };
    const first = windowStart(NOW, config);
    expect(first).toBe(1_733_829_060);
    const items = [bucket(first - 60, { calls: 9, errors: 9 }), bucket(first, { calls: 1, errors: 0, b72: 1 })];
    const dynamo = new ScriptedStoreClient().page(items);

    const view = await store(dynamo).read(MODEL, NOW, config);

    expect(dynamo.query(0).ExpressionAttributeValues).toStrictEqual({ ':m': MODEL, ':from': 'B#001733829060' });
    expect(view.stats).toStrictEqual({ calls: 1, errors: 0, errorRate: 0, p50Ms: 956, p95Ms: 956 });
  });

  it('fails with the SDK error as it came', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    const dynamo = new ScriptedStoreClient().queryFails(throttled);
    await expect(store(dynamo).read(MODEL, NOW, DEFAULT_BREAKER)).rejects.toBe(throttled);
  });
});

describe('ModelHealthStore.transition', () => {
  const UPDATE = 'SET #s = :s, since = :since, reason = :reason, probeUntil = :probe, version = :next';
  const conflict = (): ConditionalCheckFailedException => new ConditionalCheckFailedException({ message: 'x', $metadata: {} });

  it('creates the STATE item from the initial breaker (version 0), on condition that none exists, and answers version 1', async () => {
    const dynamo = new ScriptedStoreClient().update();

    const next = await store(dynamo).transition(MODEL, INITIAL_BREAKER, { state: 'open', since: NOW, reason: 'error rate 0.60 (3 of 5 calls) at or above 0.5' });

    expect(dynamo.left).toBe(0);
    expect(next).toStrictEqual({ state: 'open', since: NOW, reason: 'error rate 0.60 (3 of 5 calls) at or above 0.5', version: 1 });
    expect(dynamo.updated(0)).toStrictEqual({
      TableName: TABLE,
      Key: { model: MODEL, sk: BREAKER_SK },
      UpdateExpression: UPDATE,
      ConditionExpression: 'attribute_not_exists(version)',
      ExpressionAttributeNames: { '#s': 'state' },
      ExpressionAttributeValues: { ':s': 'open', ':since': NOW, ':reason': 'error rate 0.60 (3 of 5 calls) at or above 0.5', ':probe': 0, ':next': 1 },
    });
  });

  it('moves a breaker at version n on condition that the stored version is still n, writing n + 1', async () => {
    const from: Breaker = { state: 'open', since: NOW - 31_000, reason: 'the probe failed', version: 5 };
    const dynamo = new ScriptedStoreClient().update();

    const next = await store(dynamo).transition(MODEL, from, { state: 'half_open', since: NOW, reason: 'probing', probeUntil: NOW + 90_000 });

    expect(next).toStrictEqual({ state: 'half_open', since: NOW, reason: 'probing', probeUntil: NOW + 90_000, version: 6 });
    expect(dynamo.updated(0)).toStrictEqual({
      TableName: TABLE,
      Key: { model: MODEL, sk: BREAKER_SK },
      UpdateExpression: UPDATE,
      ConditionExpression: 'version = :v',
      ExpressionAttributeNames: { '#s': 'state' },
      ExpressionAttributeValues: { ':s': 'half_open', ':since': NOW, ':reason': 'probing', ':probe': NOW + 90_000, ':next': 6, ':v': 5 },
    });
  });

  it("writes an absent reason as '' and an absent probe lease as 0, and answers the breaker without them", async () => {
    const from: Breaker = { state: 'half_open', since: NOW - 5_000, reason: 'probing', probeUntil: NOW + 55_000, version: 1 };
    const dynamo = new ScriptedStoreClient().update();

    const next = await store(dynamo).transition(MODEL, from, { state: 'closed', since: NOW });

    expect(next).toStrictEqual({ state: 'closed', since: NOW, version: 2 });
    expect(dynamo.updated(0).ExpressionAttributeValues).toStrictEqual({ ':s': 'closed', ':since': NOW, ':reason': '', ':probe': 0, ':next': 2, ':v': 1 });
  });

  it('numbers the new version from the breaker as read, never from a version the target carries', async () => {
    const dynamo = new ScriptedStoreClient().update();
    const to = { state: 'open', since: NOW, reason: 'r', version: 99 } as const;

    const next = await store(dynamo).transition(MODEL, { ...INITIAL_BREAKER, version: 3 }, to);

    expect(next?.version).toBe(4);
    expect(dynamo.updated(0).ExpressionAttributeValues).toMatchObject({ ':next': 4, ':v': 3 });
  });

  it('writes what read answers back: the STATE item of a transition reads as the breaker it answered', async () => {
    const dynamo = new ScriptedStoreClient().update();
    const next = await store(dynamo).transition(MODEL, { state: 'open', since: NOW - 40_000, version: 2 }, { state: 'half_open', since: NOW, probeUntil: NOW + 60_000 });
    const values = dynamo.updated(0).ExpressionAttributeValues ?? {};
    const written = stateItem({
      state: values[':s'] as string,
      since: values[':since'] as number,
      reason: values[':reason'] as string,
      probeUntil: values[':probe'] as number,
      version: values[':next'] as number,
    });

    const view = await store(new ScriptedStoreClient().page([written])).read(MODEL, NOW, DEFAULT_BREAKER);

    expect(next).toBeDefined();
    expect(view.breaker).toStrictEqual(next);
  });

  it.each([
    ['from the initial breaker (another call created the STATE item first)', INITIAL_BREAKER],
    ['from version n (another call moved it first)', { state: 'open', since: NOW - 31_000, version: 5 } satisfies Breaker],
  ])('answers undefined when the condition failed %s', async (_why, from) => {
    const dynamo = new ScriptedStoreClient().update(conflict());

    await expect(store(dynamo).transition(MODEL, from, { state: 'half_open', since: NOW, probeUntil: NOW + 60_000 })).resolves.toBeUndefined();
    expect(dynamo.left).toBe(0);
    expect(dynamo.sent).toHaveLength(1);
  });

  it('fails with any other SDK error as it came', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    const dynamo = new ScriptedStoreClient().update(throttled);

    await expect(store(dynamo).transition(MODEL, INITIAL_BREAKER, { state: 'open', since: NOW, reason: 'r' })).rejects.toBe(throttled);
  });

  it('fails with an error that is no SDK error at all', async () => {
    const reset = new Error('socket hang up');
    const dynamo = new ScriptedStoreClient().update(reset);

    const err = await rejection(store(dynamo).transition(MODEL, { state: 'open', since: NOW - 31_000, version: 5 }, { state: 'half_open', since: NOW, probeUntil: NOW + 60_000 }));

    expect(err).toBe(reset);
  });
});
