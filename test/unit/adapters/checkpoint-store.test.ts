/**
 * CheckpointStore.pause against a strict scripted DynamoDB document client: the
 * transaction it sends (the head's conditional update with the Put of the wait),
 * and how it reads a cancelled transaction (the head read again decides: this very
 * pause, a raise that came first, a fenced session, or a retry).
 * The step tests use the in-memory mirror (`handlers/memory-store.ts`); this pins
 * the real store's side of the same contract.
 */
import { ProvisionedThroughputExceededException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../../lambdas/adapters/checkpoint-store';
import { SESSION_SK, type SessionRecord } from '../../../lambdas/core/contracts/checkpoint';
import { SessionFencedError } from '../../../lambdas/core/errors';
import { budgetWait, EXECUTION_ARN, SESSION_ID, sessionRecord } from '../support/records';
import { rejection } from '../support/rejection';
import { ScriptedDocumentClient } from '../support/scripted-document-client';

const TABLE = 'unit-checkpoints';
const OTHER_EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:unit-agent:run-2';
const NOW = new Date('2024-12-10T11:15:00.500Z');
/** A pause as the approval request task asks for it (the cost budget of 0.05 USD used up). */
const PAUSE = { budget: 'costUsd', used: 0.0502, limit: 0.05, at: '2024-12-10T11:15:00.000Z', approvalId: 'apv_pause', step: 3 } as const;
const WAIT = budgetWait(PAUSE);

type Sent = TransactWriteCommand | GetCommand;

/**
 * The document client, scripted: each `send` takes the next expected answer, which
 * checks the command's type; a command no answer expects fails the test. Every
 * command is recorded.
 */
class ScriptedStoreClient extends ScriptedDocumentClient<Sent> {

  /** The next TransactWriteItems: succeeds, or throws `error`. */
  transact(error?: Error): this {
    this.next((command) => {
      expect(command).toBeInstanceOf(TransactWriteCommand);
      if (error) throw error;
      return {};
    });
    return this;
  }

  /** The next GetItem: the session head, as stored (or none). */
  head(item: SessionRecord | undefined): this {
    this.next((command) => {
      expect(command).toBeInstanceOf(GetCommand);
      expect(command.input).toMatchObject({ TableName: TABLE, Key: { sessionId: SESSION_ID, sk: SESSION_SK }, ConsistentRead: true });
      return { Item: item && structuredClone(item) };
    });
    return this;
  }

}

/** DynamoDB's cancellation of a transaction, with one reason per item (the head's update, the wait's Put). */
const cancelled = (head: string, wait = 'None'): TransactionCanceledException =>
  new TransactionCanceledException({
    message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${head}, ${wait}]`,
    $metadata: {},
    CancellationReasons: [{ Code: head }, { Code: wait }],
  });

const running = (overrides: Partial<SessionRecord> = {}): SessionRecord => sessionRecord({ step: 3, budgets: { costUsd: PAUSE.limit, steps: 8 }, ...overrides });
const pausedHead = (approvalId: string = PAUSE.approvalId): SessionRecord => running({ status: 'PAUSED_BUDGET', pause: { ...PAUSE, approvalId }, pauses: 1 });

async function pauseWith(dynamo: ScriptedStoreClient, executionArn = EXECUTION_ARN): Promise<'paused' | 'already' | 'raised'> {
  const result = await new CheckpointStore(dynamo.client, TABLE, () => NOW).pause(SESSION_ID, executionArn, PAUSE, WAIT);
  expect(dynamo.left).toBe(0);
  return result;
}

describe('CheckpointStore.pause', () => {
  it("pauses in one transaction: the head's update, conditional on the execution, RUNNING and the budget's limit, with the Put of the wait", async () => {
    const dynamo = new ScriptedStoreClient().transact();

    await expect(pauseWith(dynamo)).resolves.toBe('paused');

    const [sent] = dynamo.sent;
    expect(sent).toBeInstanceOf(TransactWriteCommand);
    const [update, put] = (sent as TransactWriteCommand).input.TransactItems ?? [];
    expect(update?.Update).toMatchObject({
      TableName: TABLE,
      Key: { sessionId: SESSION_ID, sk: SESSION_SK },
      ConditionExpression: '#executionArn = :exec AND #status = :running AND (attribute_not_exists(#budgets.#budget) OR #budgets.#budget = :limit)',
      ExpressionAttributeNames: { '#executionArn': 'executionArn', '#status': 'status', '#budgets': 'budgets', '#budget': 'costUsd', '#pause': 'pause', '#pauses': 'pauses' },
      ExpressionAttributeValues: { ':exec': EXECUTION_ARN, ':running': 'RUNNING', ':paused': 'PAUSED_BUDGET', ':limit': 0.05, ':pause': PAUSE, ':at': NOW.toISOString() },
    });
    expect(update?.Update?.UpdateExpression).toContain('#status = :paused, #pause = :pause');
    expect(update?.Update?.UpdateExpression).toContain('#pauses = if_not_exists(#pauses, :zero) + :one');
    expect(put).toEqual({ Put: { TableName: WAIT.TableName, Item: WAIT.Item } });
    expect(put?.Put?.Item).toMatchObject({ approvalId: 'apv_pause', status: 'pending', taskToken: 'token-of-apv_pause' });
  });

  it('answers already when the transaction was cancelled and the head holds this very pause (a retried request)', async () => {
    const dynamo = new ScriptedStoreClient().transact(cancelled('ConditionalCheckFailed')).head(pausedHead());
    await expect(pauseWith(dynamo)).resolves.toBe('already');
  });

  it("answers raised when the head is RUNNING under the execution with another limit for the budget (a raise came first)", async () => {
    const dynamo = new ScriptedStoreClient().transact(cancelled('ConditionalCheckFailed')).head(running({ budgets: { costUsd: 1, steps: 8 } }));
    await expect(pauseWith(dynamo)).resolves.toBe('raised');
  });

  it.each([
    ['another execution owns the session', running({ executionArn: OTHER_EXECUTION })],
    ['another execution owns it, raised', running({ executionArn: OTHER_EXECUTION, budgets: { costUsd: 1 } })],
    ['the session was cancelled', running({ status: 'CANCELLED', cancellation: { reason: 'enough', at: NOW.toISOString() } })],
    ['the session is paused by another wait', pausedHead('apv_other')],
    ['there is no session', undefined],
  ])('fails with SessionFencedError when %s', async (_why, head) => {
    const dynamo = new ScriptedStoreClient().transact(cancelled('ConditionalCheckFailed')).head(head);

    const err = await rejection(pauseWith(dynamo));

    expect(err).toBeInstanceOf(SessionFencedError);
    expect(err.message).toContain(EXECUTION_ARN);
  });

  it('fails with the cancellation (retried, not fenced) when the transaction conflicted with another write and the head still meets the condition', async () => {
    const conflict = cancelled('TransactionConflict');
    const dynamo = new ScriptedStoreClient().transact(conflict).head(running());
    await expect(pauseWith(dynamo)).rejects.toBe(conflict);
  });

  it('fails with the cancellation, not raised, when a head without the budget among its limits is RUNNING (the condition holds)', async () => {
    const conflict = cancelled('TransactionConflict');
    const dynamo = new ScriptedStoreClient().transact(conflict).head(running({ budgets: { steps: 8 } }));
    await expect(pauseWith(dynamo)).rejects.toBe(conflict);
  });

  it('fails with the cancellation when the Put of the wait failed, not the head', async () => {
    const invalid = cancelled('None', 'ValidationError');
    const dynamo = new ScriptedStoreClient().transact(invalid).head(pausedHead('apv_other'));
    await expect(pauseWith(dynamo)).rejects.toBe(invalid);
  });

  it('fails with any other SDK error as it came, reading nothing', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    const dynamo = new ScriptedStoreClient().transact(throttled);
    await expect(pauseWith(dynamo)).rejects.toBe(throttled);
    expect(dynamo.sent).toHaveLength(1);
  });
});
