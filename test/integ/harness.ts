/** What the integration tests share: clients for the deployed stack, and waits. */
import * as fs from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand, type HistoryEvent } from '@aws-sdk/client-sfn';
import { DeleteMessageBatchCommand, DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, paginateQuery } from '@aws-sdk/lib-dynamodb';
import { expect, inject } from 'vitest';
import { StoredCheckpointRecordSchema, type CheckpointRecord } from '../../lambdas/core/contracts/checkpoint';
import { DeadLetterEnvelopeSchema, type DeadLetterEnvelope } from '../../lambdas/core/contracts/events';
import { sessionIdFor } from '../../lambdas/core/ids';
import { RuntimeApiClient } from '../../scripts/lib/api-client';
import { apiBaseUrl, queueUrl, ROOT, useLocalCloudEnv } from '../../scripts/lib/cloud';
import { executionHistory } from '../../scripts/lib/follow';

useLocalCloudEnv();
export const outputs = inject('outputs');
const need = (key: string): string => {
  const v = outputs[key];
  if (!v) throw new Error(`stack output ${key} missing`);
  return v;
};

export const sfn = new SFNClient({});
export const sqs = new SQSClient({});
export const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
export const api = new RuntimeApiClient(apiBaseUrl(need('ApiUrl')));

/** The state machine ARN of an agent. */
export const stateMachineOf = (agent: string): string => need(`StateMachine${agent.replace(/[^A-Za-z0-9]/g, '')}`);

/** The example's GuardDuty finding event (EventBridge envelope). */
export const findingEvent = JSON.parse(
  fs.readFileSync(`${ROOT}/examples/ssh-brute-force/events/guardduty-ssh-brute-force.json`, 'utf8'),
) as { id: string; 'detail-type': string; source: string; detail: Record<string, unknown>; resources: string[] } & Record<string, unknown>;

/** Publishes the finding on the default bus (as a replay: AWS reserves `aws.*` sources). @returns the session id it starts. */
export async function publishFinding(agent = 'ssh-investigator'): Promise<string> {
  const out = await new EventBridgeClient({}).send(
    new PutEventsCommand({
      Entries: [{ Source: 'agent-runtime.replay', DetailType: findingEvent['detail-type'], Detail: JSON.stringify(findingEvent.detail), Resources: findingEvent.resources }],
    }),
  );
  const id = out.Entries?.[0]?.EventId;
  if (!id) throw new Error(`PutEvents failed: ${JSON.stringify(out.Entries)}`);
  return sessionIdFor(agent, id);
}

/** Starts an execution directly with an input (as the rule or the API would). */
export async function startExecution(agent: string, input: unknown): Promise<string> {
  const out = await sfn.send(new StartExecutionCommand({ stateMachineArn: stateMachineOf(agent), input: JSON.stringify(input) }));
  return out.executionArn ?? '';
}

/** The example agent's block_address is for security responders only (examples/ssh-brute-force/policies.cedar): API runs of it act for one. */
export const RESPONDER = { user: 'integ-responder', tenant: '123456789012', roles: ['security-responder'] };

/** A unique idempotency key per test run. */
export const uniqueKey = (label: string): string => `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

/** Polls until `probe` returns a value (not undefined). */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The session's execution ARN once Prepare has created the session. */
export const executionOf = (sessionId: string): Promise<string> =>
  eventually(`session ${sessionId}`, async () => (await api.getRun(sessionId)).executionArn);

/** Waits until the execution is no longer RUNNING. @returns its description. */
export async function finished(executionArn: string, timeoutMs = 90_000): Promise<{ status: string; error?: string; cause?: string; output?: string }> {
  return eventually(`execution ${executionArn} to finish`, async () => {
    const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return d.status === 'RUNNING' ? undefined : { status: d.status ?? '', error: d.error, cause: d.cause, output: d.output };
  }, timeoutMs);
}

/**
 * Waits until the execution ends and asserts its status; a failure message carries
 * the execution's error and cause, so a CI log says why a run ended otherwise.
 * @returns its description.
 */
export async function ended(executionArn: string, status: 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT', timeoutMs?: number): ReturnType<typeof finished> {
  const done = await finished(executionArn, timeoutMs);
  expect(done.status, `execution ended ${done.status}${done.error ? ` (${done.error}: ${(done.cause ?? '').slice(0, 2000)})` : ''}`).toBe(status);
  return done;
}

/** The execution's history events. */
export const history = (executionArn: string): Promise<HistoryEvent[]> => executionHistory(sfn, executionArn);

/** All records of a session (head, checkpoints, executions, rollbacks, abandoned copies), parsed, every page. */
export async function checkpoints(sessionId: string): Promise<CheckpointRecord[]> {
  const records: CheckpointRecord[] = [];
  const query = { TableName: need('CheckpointTableName'), KeyConditionExpression: 'sessionId = :s', ExpressionAttributeValues: { ':s': sessionId }, ConsistentRead: true };
  for await (const page of paginateQuery({ client: doc }, query)) records.push(...(page.Items ?? []).map((i) => StoredCheckpointRecordSchema.parse(i)));
  return records;
}

/**
 * Finds (and deletes) the DLQ envelope of a session. Receives with a 2-second visibility
 * timeout, so that the next poll moves past other envelopes (other tests', or stale ones
 * a kept local cloud holds) while they stay visible to their own tests within seconds.
 */
export async function deadLetterFor(sessionIdOrExecution: string, timeoutMs = 30_000): Promise<DeadLetterEnvelope> {
  const url = queueUrl(need('DeadLetterQueueUrl'));
  return eventually(`DLQ envelope for ${sessionIdOrExecution}`, async () => {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 2, WaitTimeSeconds: 1 }));
    for (const m of out.Messages ?? []) {
      const envelope = DeadLetterEnvelopeSchema.parse(JSON.parse(m.Body ?? '{}'));
      if (envelope.sessionId === sessionIdOrExecution || envelope.executionArn === sessionIdOrExecution) {
        await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
        return envelope;
      }
    }
    return undefined;
  }, timeoutMs, 100);
}

/**
 * Checks the event log against the session's records: in order, nothing missing,
 * nothing twice, ending in `terminal`. Spans every execution of the session.
 */
export async function expectCompleteEventLog(sessionId: string, terminal: 'SessionSucceeded' | 'SessionFailed' | 'SessionCancelled'): Promise<void> {
  const records = await checkpoints(sessionId);
  const rows = await eventually(`the event log of ${sessionId}`, async () => {
    const all = await api.getEvents(sessionId);
    const complete = all.at(-1)?.type === terminal && records.every((r) => all.some((e) => e.checkpointKey === r.sk));
    return complete ? all : undefined;
  }, 30_000);
  const seqs = rows.map((r) => r.seq);
  expect([...seqs].sort()).toEqual(seqs);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect(new Set(records.map((r) => r.sk))).toEqual(new Set(rows.filter((e) => e.change !== 'REMOVE').map((r) => r.checkpointKey)));
  expect(rows[0]).toMatchObject({ checkpointKey: 'SESSION', change: 'INSERT' });
  for (const r of records.filter((c) => c.sk !== 'SESSION')) {
    expect(rows.filter((e) => e.checkpointKey === r.sk && e.change === 'INSERT')).toHaveLength(1);
  }
}

/**
 * What the runtime published on its bus (captured by the PublishedEvents queue), kept
 * across polls. Each test file runs in its own process, after the one before it.
 */
const published: { 'detail-type': string; detail: Record<string, unknown> }[] = [];

/** The details of the events of `type` the runtime published for a session (waits for at least one). */
export async function publishedFor(sessionId: string, type: string, timeoutMs = 30_000): Promise<Record<string, unknown>[]> {
  const url = need('PublishedEventsQueueUrl');
  return eventually(`${type} of ${sessionId} on the bus`, async () => {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    const messages = out.Messages ?? [];
    for (const m of messages) {
      const event = JSON.parse(m.Body ?? '{}') as (typeof published)[number];
      // At least once: a message delivered twice is the same event.
      if (!published.some((p) => p.detail.eventId === event.detail.eventId)) published.push(event);
    }
    // Kept here, so deleted there: later polls (and later test files) need not page past them.
    if (messages.length > 0) {
      await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl(url), Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })) }));
    }
    const found = published.filter((e) => e['detail-type'] === type && e.detail.sessionId === sessionId).map((e) => e.detail);
    return found.length > 0 ? found : undefined;
  }, timeoutMs);
}
