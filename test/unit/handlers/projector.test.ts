import { FullBatchFailureError } from '@aws-lambda-powertools/batch';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue, Context, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { checkpointKey } from '../../../lambdas/core/contracts/checkpoint';
import type { EventLogRecord } from '../../../lambdas/core/contracts/events';
import { createProjector, type AppendEvent } from '../../../lambdas/handlers/projector';
import { inputRecord, modelRecord, SESSION_ID, text, toolRecord, toolUse, sessionHeadItem, sessionRecord } from '../support/records';
import noticeV2 from '../../fixtures/checkpoints/v2/notice.json';
import pauseV2 from '../../fixtures/checkpoints/v2/pause.json';

const CONTEXT = {
  functionName: 'agent-runtime-projector',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:agent-runtime-projector',
  memoryLimitInMB: '256',
  awsRequestId: '5b1c9f2e-7d7a-4c1b-9f0e-1a2b3c4d5e6f',
  logGroupName: '/aws/lambda/agent-runtime-projector',
  logStreamName: '2024/12/10/[$LATEST]abc',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

type Item = Record<string, unknown>;

/** An item in DynamoDB JSON, as a stream record carries it. */
const ddb = (item: Item): Record<string, AttributeValue> => marshall(item, { removeUndefinedValues: true }) as unknown as Record<string, AttributeValue>;

const head = sessionHeadItem;

const seqOf = (n: number): string => `4421584500000000017450439${String(n).padStart(3, '0')}`;

/** A DynamoDB stream record (NEW_AND_OLD_IMAGES) of change number `n`. */
function streamRecord(n: number, eventName: 'INSERT' | 'MODIFY' | 'REMOVE', images: { newImage?: Item; oldImage?: Item }): DynamoDBRecord {
  const keyed = images.newImage ?? images.oldImage;
  return {
    eventID: `evt-${n}`,
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/checkpoints/stream/2024-12-10T00:00:00.000',
    dynamodb: {
      ApproximateCreationDateTime: 1733829000 + n,
      Keys: ddb({ sessionId: keyed?.sessionId ?? SESSION_ID, sk: keyed?.sk ?? 'SESSION' }),
      SequenceNumber: seqOf(n),
      SizeBytes: 512,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
      ...(images.newImage ? { NewImage: ddb(images.newImage) } : {}),
      ...(images.oldImage ? { OldImage: ddb(images.oldImage) } : {}),
    },
  };
}

const asItem = (record: object): Item => JSON.parse(JSON.stringify(record)) as Item;

/** A run's changes in stream order: head created, input, model turn, head step, tool result. */
const RUN: DynamoDBRecord[] = [
  streamRecord(1, 'INSERT', { newImage: head('RUNNING', 0) }),
  streamRecord(2, 'INSERT', { newImage: asItem(inputRecord('What is 6 x 7?')) }),
  streamRecord(3, 'INSERT', { newImage: asItem(modelRecord(1, [text('Checking.'), toolUse('c1', 'echo', { text: 'x' })])) }),
  streamRecord(4, 'MODIFY', { oldImage: head('RUNNING', 0), newImage: head('RUNNING', 1) }),
  streamRecord(5, 'INSERT', { newImage: asItem(toolRecord(1, 'c1', '{"text":"x"}')) }),
];

/**
 * A strict append: answers each expected sequence number as told (true: appended,
 * false: already there, an Error: thrown), and fails on any other call.
 */
function fakeAppend(answers: Record<string, boolean | Error>) {
  const rows: EventLogRecord[] = [];
  const append = async (row: EventLogRecord): Promise<boolean> => {
    const seq = row.seq.replace(/^0+/, '');
    if (!(seq in answers)) throw new Error(`unexpected append of seq ${row.seq}`);
    const answer = answers[seq];
    if (answer instanceof Error) throw answer;
    rows.push(row);
    return answer ?? true;
  };
  return { append, rows };
}

/**
 * A strict publish: records each event published on the bus, in order, and throws
 * the error planned for a detail-type (a bus that refuses the event).
 */
function fakePublish(failures: Record<string, Error> = {}) {
  const published: Array<{ detailType: string; detail: Record<string, unknown> }> = [];
  const publish = async (detailType: string, detail: Record<string, unknown>): Promise<void> => {
    const failure = failures[detailType];
    if (failure) throw failure;
    published.push({ detailType, detail });
  };
  return { publish, published };
}

/** A projector whose bus must stay silent: the loop's own records are not published. */
function quietProjector(append: AppendEvent) {
  const bus = fakePublish();
  const projector = createProjector(append, bus.publish);
  return Object.assign(
    async (event: DynamoDBStreamEvent, context: Context) => {
      const response = await projector(event, context);
      expect(bus.published).toEqual([]);
      return response;
    },
    { bus },
  );
}

const allAppended = (records: DynamoDBRecord[]): Record<string, boolean> =>
  Object.fromEntries(records.map((r) => [r.dynamodb?.SequenceNumber ?? '', true]));

const batch = (records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });

describe('createProjector', () => {
  it('appends every change of a batch in stream order, as event log rows', async () => {
    const { append, rows } = fakeAppend(allAppended(RUN));

    const response = await quietProjector(append)(batch(RUN), CONTEXT);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(rows.map((r) => r.type)).toEqual(['SessionStarted', 'InputAccepted', 'ModelTurnCompleted', 'SessionUpdated', 'ToolCallCompleted']);
    expect(rows.map((r) => r.eventId)).toEqual(['evt-1', 'evt-2', 'evt-3', 'evt-4', 'evt-5']);
    expect(rows.map((r) => r.checkpointKey)).toEqual(['SESSION', checkpointKey.input(), checkpointKey.model(1), 'SESSION', checkpointKey.tool(1, 'c1')]);
    expect(rows.map((r) => r.seq)).toEqual([...rows.map((r) => r.seq)].sort());
    for (const row of rows) expect(row.sessionId).toBe(SESSION_ID);
  });

  it('unmarshalls the image into the row, and takes the time from ApproximateCreationDateTime', async () => {
    const { append, rows } = fakeAppend(allAppended(RUN));
    await quietProjector(append)(batch(RUN.slice(2, 3)), CONTEXT);
    expect(rows[0]).toMatchObject({
      seq: seqOf(3).padStart(40, '0'),
      at: new Date((1733829000 + 3) * 1000).toISOString(),
      change: 'INSERT',
      record: asItem(modelRecord(1, [text('Checking.'), toolUse('c1', 'echo', { text: 'x' })])),
    });
  });

  it('records a REMOVE from the old image', async () => {
    const removed = streamRecord(9, 'REMOVE', { oldImage: asItem(toolRecord(1, 'c1', '{}')) });
    const { append, rows } = fakeAppend(allAppended([removed]));
    await expect(quietProjector(append)(batch([removed]), CONTEXT)).resolves.toEqual({ batchItemFailures: [] });
    expect(rows[0]).toMatchObject({ type: 'RecordRemoved', change: 'REMOVE', checkpointKey: checkpointKey.tool(1, 'c1') });
  });

  it('reports a record without images by its sequence number, and appends the others', async () => {
    const bad = streamRecord(3, 'INSERT', {});
    const records = [RUN[0], RUN[1], bad, RUN[3], RUN[4]] as DynamoDBRecord[];
    const { append, rows } = fakeAppend(allAppended([RUN[0], RUN[1], RUN[3], RUN[4]] as DynamoDBRecord[]));

    const response = await quietProjector(append)(batch(records), CONTEXT);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: seqOf(3) }] });
    expect(rows.map((r) => r.eventId)).toEqual(['evt-1', 'evt-2', 'evt-4', 'evt-5']);
  });

  it('reports a record whose append fails by its sequence number, and appends the others', async () => {
    const { append, rows } = fakeAppend({ ...allAppended(RUN), [seqOf(2)]: new Error('ProvisionedThroughputExceededException') });

    const response = await quietProjector(append)(batch(RUN), CONTEXT);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: seqOf(2) }] });
    expect(rows.map((r) => r.eventId)).toEqual(['evt-1', 'evt-3', 'evt-4', 'evt-5']);
  });

  it('reports a record with a non-decimal sequence number', async () => {
    const odd = streamRecord(6, 'INSERT', { newImage: head('RUNNING', 0) });
    if (odd.dynamodb) odd.dynamodb.SequenceNumber = 'shardId-0001';
    const { append } = fakeAppend(allAppended(RUN));
    await expect(quietProjector(append)(batch([...RUN, odd]), CONTEXT)).resolves.toEqual({ batchItemFailures: [{ itemIdentifier: 'shardId-0001' }] });
  });

  it('does not report a redelivered record (the row was already there)', async () => {
    const { append, rows } = fakeAppend({ ...allAppended(RUN), [seqOf(1)]: false, [seqOf(2)]: false });

    const response = await quietProjector(append)(batch(RUN), CONTEXT);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(rows).toHaveLength(5);
  });

  it('fails the invocation when every record of the batch fails, so that the batch is retried', async () => {
    const { append } = fakeAppend({});
    await expect(quietProjector(append)(batch([streamRecord(1, 'INSERT', {})]), CONTEXT)).rejects.toBeInstanceOf(FullBatchFailureError);
  });

  it('keeps no state between invocations', async () => {
    const { append, rows } = fakeAppend({ ...allAppended(RUN), [seqOf(2)]: new Error('boom') });
    const projector = quietProjector(append);
    await projector(batch(RUN), CONTEXT);
    await expect(projector(batch(RUN.slice(2)), CONTEXT)).resolves.toEqual({ batchItemFailures: [] });
    expect(rows.map((r) => r.eventId)).toEqual(['evt-1', 'evt-3', 'evt-4', 'evt-5', 'evt-3', 'evt-4', 'evt-5']);
  });
});

describe('createProjector: governance events on the bus', () => {
  const paused = { ...(sessionRecord({ budgets: { costUsd: 0.05 } }) as unknown as Item), status: 'PAUSED_BUDGET', pauses: 1 };
  const GOVERNED: DynamoDBRecord[] = [
    streamRecord(11, 'INSERT', { newImage: asItem(modelRecord(2, [text('Checking.'), toolUse('c2', 'echo', { text: 'y' })])) }),
    streamRecord(12, 'INSERT', { newImage: noticeV2 as Item }),
    streamRecord(13, 'INSERT', { newImage: pauseV2 as Item }),
    streamRecord(14, 'MODIFY', { oldImage: asItem(sessionRecord({ budgets: { costUsd: 0.05 } })), newImage: paused }),
    streamRecord(15, 'MODIFY', { oldImage: paused, newImage: { ...paused, status: 'STOPPED', stop: { reason: 'not worth more', by: 'alice', at: '2024-12-10T11:21:00.000Z' } } }),
  ];

  it('publishes a notice, a pause and a stop after appending them, and no model turn or pausing head', async () => {
    const { append, rows } = fakeAppend(allAppended(GOVERNED));
    const { publish, published } = fakePublish();

    await expect(createProjector(append, publish)(batch(GOVERNED), CONTEXT)).resolves.toEqual({ batchItemFailures: [] });

    expect(rows.map((r) => r.type)).toEqual(['ModelTurnCompleted', 'BudgetThresholdReached', 'BudgetExhausted', 'SessionPaused', 'SessionStopped']);
    expect(published.map((p) => p.detailType)).toEqual(['BudgetThresholdReached', 'BudgetExhausted', 'SessionStopped']);
    expect(published[0]?.detail).toEqual({
      eventId: 'evt-12',
      sessionId: noticeV2.sessionId,
      agent: 'ssh-investigator',
      type: 'BudgetThresholdReached',
      step: 2,
      at: new Date((1733829000 + 12) * 1000).toISOString(),
      budget: 'costUsd',
      used: 0.041826,
      limit: 0.05,
    });
    expect(published[1]?.detail).toMatchObject({ eventId: 'evt-13', type: 'BudgetExhausted', budget: 'costUsd', used: 0.050631, limit: 0.05, approvalId: pauseV2.approvalId, expiresAt: pauseV2.expiresAt });
    expect(published[2]?.detail).toMatchObject({ eventId: 'evt-15', type: 'SessionStopped', sessionId: SESSION_ID, status: 'STOPPED', stop: { reason: 'not worth more', by: 'alice' } });
  });

  it('publishes a redelivered notice again (at least once: eventId tells the repeats apart)', async () => {
    const notice = GOVERNED.slice(1, 2);
    const { append } = fakeAppend({ [seqOf(12)]: false });
    const { publish, published } = fakePublish();

    await createProjector(append, publish)(batch(notice), CONTEXT);
    await createProjector(append, publish)(batch(notice), CONTEXT);

    expect(published.map((p) => [p.detailType, p.detail.eventId])).toEqual([
      ['BudgetThresholdReached', 'evt-12'],
      ['BudgetThresholdReached', 'evt-12'],
    ]);
  });

  it('reports a record whose publish fails by its sequence number, after appending it, and goes on with the others', async () => {
    const { append, rows } = fakeAppend(allAppended(GOVERNED));
    const { publish, published } = fakePublish({ BudgetExhausted: new Error('EventBridge PutEvents: ThrottlingException') });

    const response = await createProjector(append, publish)(batch(GOVERNED), CONTEXT);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: seqOf(13) }] });
    expect(rows.map((r) => r.eventId)).toEqual(['evt-11', 'evt-12', 'evt-13', 'evt-14', 'evt-15']);
    expect(published.map((p) => p.detailType)).toEqual(['BudgetThresholdReached', 'SessionStopped']);
  });

  it('publishes nothing for a record it could not append', async () => {
    const { append } = fakeAppend({ [seqOf(12)]: new Error('ProvisionedThroughputExceededException') });
    const { publish, published } = fakePublish();

    await expect(createProjector(append, publish)(batch(GOVERNED.slice(1, 2)), CONTEXT)).rejects.toBeInstanceOf(FullBatchFailureError);

    expect(published).toEqual([]);
  });
});
