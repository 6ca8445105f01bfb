/**
 * The checkpoint table: sessions and their per-step checkpoints (see
 * `core/contracts/checkpoint.ts` for the key layout). Checkpoints are written
 * once with a condition, so a retried step finds its earlier record instead of
 * writing a second one.
 */
import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CHECKPOINT_SCHEMA_VERSION } from '../core/constants';
import {
  ABANDONED_SK_PREFIX,
  NOTICE_SK_PREFIX,
  CHECKPOINT_SK_PREFIX,
  checkpointKey,
  CheckpointRecordSchema,
  newSessionRecord,
  parseStoredRecord,
  SESSION_SK,
  StoredCheckpointRecordSchema,
  StoredSessionRecordSchema,
  type Cancellation,
  type CheckpointRecord,
  type RollbackRecord,
  type SessionRecord,
  type SessionStatus,
} from '../core/contracts/checkpoint';
import type { Failure } from '../core/contracts/loop';
import { SessionFencedError } from '../core/errors';

/** A checkpoint to write, without the fields the store fills in. */
export type NewCheckpoint = Omit<Exclude<CheckpointRecord, SessionRecord>, 'schemaVersion' | 'createdAt'>;

/**
 * Attributes every head update sets so that a version 1 head becomes a valid
 * version 2 one (it gains `executions` and `branch`).
 */
const UPGRADE_HEAD = '#schemaVersion = :v, #executions = if_not_exists(#executions, :one), #branch = if_not_exists(#branch, :zero)';
const UPGRADE_NAMES = { '#schemaVersion': 'schemaVersion', '#executions': 'executions', '#branch': 'branch' };
const UPGRADE_VALUES = { ':v': CHECKPOINT_SCHEMA_VERSION, ':one': 1, ':zero': 0 };

/**
 * Reads and writes the checkpoint table through the DynamoDB document client.
 * Every record read is checked against its schema version
 * (`parseStoredRecord`: CorruptCheckpointError otherwise); SDK errors propagate (retried by Step Functions).
 */
export class CheckpointStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Creates the session head unless it exists.
   * @returns the head as stored: the new one, or the existing one (a redelivered trigger or a retried Prepare).
   */
  async createSession(props: Parameters<typeof newSessionRecord>[0]): Promise<{ created: boolean; session: SessionRecord }> {
    const session = newSessionRecord(props, this.now().toISOString());
    try {
      await this.client.send(new PutCommand({ TableName: this.tableName, Item: session, ConditionExpression: 'attribute_not_exists(sk)' }));
      return { created: true, session };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const existing = await this.getSession(props.sessionId);
      if (!existing) throw err;
      return { created: false, session: existing };
    }
  }

  /** The session head, or undefined. @throws CorruptCheckpointError when it matches no supported version. */
  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const out = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { sessionId, sk: SESSION_SK }, ConsistentRead: true }));
    return out.Item ? parseStoredRecord(out.Item, StoredSessionRecordSchema) : undefined;
  }

  /**
   * Writes a checkpoint once.
   * @param fence the execution that must own the session (head `executionArn`, status
   *   RUNNING) for the write to happen: a step of an execution that was stopped,
   *   cancelled or superseded cannot add to the session (one transaction: a
   *   ConditionCheck on the head and the conditional Put).
   * @returns the stored record: this one, or the one an earlier attempt of the same step wrote.
   * @throws SessionFencedError when `fence` no longer owns the session.
   */
  async putCheckpoint<T extends NewCheckpoint>(checkpoint: T, fence?: string): Promise<{ created: boolean; record: CheckpointRecord }> {
    const record = { ...checkpoint, schemaVersion: CHECKPOINT_SCHEMA_VERSION, createdAt: this.now().toISOString() };
    const parsed = CheckpointRecordSchema.parse(record);
    if (fence !== undefined) return this.putFenced(parsed, fence);
    try {
      await this.client.send(new PutCommand({ TableName: this.tableName, Item: parsed, ConditionExpression: 'attribute_not_exists(sk)' }));
      return { created: true, record: parsed };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const existing = await this.getCheckpoint(checkpoint.sessionId, checkpoint.sk);
      if (!existing) throw err;
      return { created: false, record: existing };
    }
  }

  /** One checkpoint by sort key, or undefined. */
  async getCheckpoint(sessionId: string, sk: string): Promise<CheckpointRecord | undefined> {
    const out = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { sessionId, sk }, ConsistentRead: true }));
    return out.Item ? parseStoredRecord(out.Item, StoredCheckpointRecordSchema) : undefined;
  }

  private async putFenced(record: CheckpointRecord, executionArn: string): Promise<{ created: boolean; record: CheckpointRecord }> {
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: { sessionId: record.sessionId, sk: SESSION_SK },
                ConditionExpression: '#executionArn = :exec AND #status = :running',
                ExpressionAttributeNames: names('executionArn', 'status'),
                ExpressionAttributeValues: { ':exec': executionArn, ':running': 'RUNNING' },
              },
            },
            { Put: { TableName: this.tableName, Item: record, ConditionExpression: 'attribute_not_exists(sk)' } },
          ],
        }),
      );
      return { created: true, record };
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) throw err;
      // Whatever the reasons say, what is stored decides: an earlier attempt's record wins.
      const existing = await this.getCheckpoint(record.sessionId, record.sk);
      if (existing) return { created: false, record: existing };
      const reasons = (err.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
      if (reasons[0] === 'ConditionalCheckFailed' || reasons.length === 0) {
        throw new SessionFencedError(`execution ${executionArn} no longer owns session ${record.sessionId}; ${record.sk} was not written`);
      }
      throw err;
    }
  }

  /**
   * Hands the session to a continuation execution: sets the head's execution to
   * `executionArn` (number `execution`), status RUNNING, and clears a failure or
   * output, only while the head's execution is `parentExecutionArn` and its status
   * one of `fromStatuses`.
   * @returns the head after the takeover, or undefined when the condition failed
   *   (the session moved on: cancelled, or taken by another execution).
   */
  async takeOver(props: { sessionId: string; executionArn: string; parentExecutionArn: string; execution: number; fromStatuses: readonly SessionStatus[] }): Promise<SessionRecord | undefined> {
    if (props.fromStatuses.length === 0) return undefined;
    const statuses = Object.fromEntries(props.fromStatuses.map((s, i) => [`:s${i}`, s]));
    try {
      const out = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId: props.sessionId, sk: SESSION_SK },
          UpdateExpression: 'SET #executionArn = :exec, #parentExecutionArn = :parent, #status = :running, #updatedAt = :at, #schemaVersion = :v, #branch = if_not_exists(#branch, :zero), #executions = :n REMOVE #failure, #output',
          ConditionExpression: `#executionArn = :parent AND #status IN (${Object.keys(statuses).join(', ')})`,
          ExpressionAttributeNames: names('executionArn', 'parentExecutionArn', 'status', 'updatedAt', 'failure', 'output', 'schemaVersion', 'branch', 'executions'),
          ExpressionAttributeValues: {
            ':exec': props.executionArn,
            ':parent': props.parentExecutionArn,
            ':running': 'RUNNING',
            ':at': this.now().toISOString(),
            ':n': props.execution,
            ...statuses,
            ':v': CHECKPOINT_SCHEMA_VERSION,
            ':zero': 0,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? parseStoredRecord(out.Attributes, StoredSessionRecordSchema) : undefined;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Reopens a FAILED session for its own execution (before Step Functions redrives
   * it): status RUNNING, the failure removed, only while the head's execution is
   * `executionArn` and its status FAILED.
   * @returns the failure it removed, or undefined when the condition failed (nothing written).
   */
  async reopen(sessionId: string, executionArn: string): Promise<SessionRecord['failure'] | undefined> {
    try {
      const out = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId, sk: SESSION_SK },
          UpdateExpression: `SET #status = :running, #updatedAt = :at, ${UPGRADE_HEAD} REMOVE #failure`,
          ConditionExpression: '#executionArn = :exec AND #status = :failed',
          ExpressionAttributeNames: { ...names('status', 'updatedAt', 'failure', 'executionArn'), ...UPGRADE_NAMES },
          ExpressionAttributeValues: { ':running': 'RUNNING', ':failed': 'FAILED', ':exec': executionArn, ':at': this.now().toISOString(), ...UPGRADE_VALUES },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return out.Attributes ? parseStoredRecord(out.Attributes, StoredSessionRecordSchema).failure : undefined;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Cancels a RUNNING (or budget-paused) session: status CANCELLED with why.
   * @returns the head as it was before, or undefined when it was neither (nothing written).
   */
  async cancel(sessionId: string, cancellation: Omit<Cancellation, 'at'>): Promise<SessionRecord | undefined> {
    const at = this.now().toISOString();
    try {
      const out = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId, sk: SESSION_SK },
          UpdateExpression: `SET #status = :cancelled, #cancellation = :c, #updatedAt = :at, ${UPGRADE_HEAD}`,
          ConditionExpression: '#status IN (:running, :paused)',
          ExpressionAttributeNames: { ...names('status', 'cancellation', 'updatedAt'), ...UPGRADE_NAMES },
          ExpressionAttributeValues: { ':cancelled': 'CANCELLED', ':running': 'RUNNING', ':paused': 'PAUSED_BUDGET', ':c': { ...cancellation, at }, ':at': at, ...UPGRADE_VALUES },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return out.Attributes ? parseStoredRecord(out.Attributes, StoredSessionRecordSchema) : undefined;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Rolls a session back: moves each checkpoint in `abandoned` under
   * `ABANDONED#<branch>#` (a copy with `abandonedBy: branch`, then the original
   * deleted, in transactions of up to 25 moves), writes the rollback record, and
   * sets the head to the new branch at `toStep`, only while the head's branch is
   * `branch - 1` and its execution `executionArn`.
   * @returns false when the head changed meanwhile (another rollback or execution); nothing is rolled back then.
   */
  async rollBack(session: SessionRecord, rollback: Omit<RollbackRecord, 'schemaVersion' | 'createdAt' | 'sk' | 'kind' | 'sessionId'>): Promise<boolean> {
    const at = this.now().toISOString();
    const { sessionId } = session;
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId, sk: SESSION_SK },
          UpdateExpression: `SET #branch = :branch, #step = :step, #updatedAt = :at, #schemaVersion = :v, #executions = if_not_exists(#executions, :one)`,
          ConditionExpression: '#executionArn = :exec AND (#branch = :previous OR (attribute_not_exists(#branch) AND :previous = :zero))',
          ExpressionAttributeNames: { ...names('branch', 'step', 'updatedAt', 'executionArn'), '#schemaVersion': 'schemaVersion', '#executions': 'executions' },
          ExpressionAttributeValues: { ':branch': rollback.branch, ':previous': rollback.branch - 1, ':step': rollback.toStep, ':at': at, ':exec': session.executionArn, ...UPGRADE_VALUES },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
    for (let i = 0; i < rollback.abandoned.length; i += 25) {
      const chunk = rollback.abandoned.slice(i, i + 25);
      const items = await Promise.all(
        chunk.map(async (sk) => (await this.client.send(new GetCommand({ TableName: this.tableName, Key: { sessionId, sk }, ConsistentRead: true }))).Item as Record<string, unknown> | undefined),
      );
      const moves = items.flatMap((item) =>
        item
          ? [
              { Put: { TableName: this.tableName, Item: { ...item, sk: checkpointKey.abandoned(rollback.branch, String(item.sk)), abandonedBy: rollback.branch, abandonedAt: at } } },
              { Delete: { TableName: this.tableName, Key: { sessionId, sk: item.sk } } },
            ]
          : [],
      );
      if (moves.length > 0) await this.client.send(new TransactWriteCommand({ TransactItems: moves }));
    }
    await this.putCheckpoint({ ...rollback, sessionId, sk: checkpointKey.rollback(rollback.branch), kind: 'rollback' });
    return true;
  }

  /** All checkpoints of a session in sort-key (step) order, every page. */
  async listCheckpoints(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, CHECKPOINT_SK_PREFIX);
  }

  /** The checkpoints rollbacks abandoned (`ABANDONED#…`), every page: what they spent still counts against the budgets. */
  async listAbandoned(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, ABANDONED_SK_PREFIX);
  }

  /** The session's governance notices (`NOTICE#…`), every page. */
  async listNotices(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, NOTICE_SK_PREFIX);
  }

  private async listByPrefix(sessionId: string, prefix: string): Promise<CheckpointRecord[]> {
    const records: CheckpointRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'sessionId = :s AND begins_with(sk, :p)',
          ExpressionAttributeValues: { ':s': sessionId, ':p': prefix },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) records.push(parseStoredRecord(item, StoredCheckpointRecordSchema));
      start = out.LastEvaluatedKey;
    } while (start);
    return records;
  }

  /** Records progress on the head (the step reached). Idempotent. */
  async recordStep(sessionId: string, step: number): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { sessionId, sk: SESSION_SK },
        UpdateExpression: 'SET #step = :step, #updatedAt = :at',
        ConditionExpression: 'attribute_exists(sk) AND (attribute_not_exists(#step) OR #step <= :step)',
        ExpressionAttributeNames: names('step', 'updatedAt'),
        ExpressionAttributeValues: { ':step': step, ':at': this.now().toISOString() },
      }),
    ).catch((err: unknown) => {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    });
  }

  /**
   * Pauses the session on a used-up budget, on behalf of `executionArn`, in one
   * transaction with `wait` (the approval record holding the wait's task token), so
   * that whoever sees the pause on the head also finds its wait: RUNNING →
   * PAUSED_BUDGET with the pause, the pause count incremented. Conditional on the
   * execution owning the session, on RUNNING, and on the budget's limit still being
   * `pause.limit` (a raise that came first wins).
   * @returns `paused`; `already` when a retry finds this very pause; `raised` when the
   *   budget's limit changed meanwhile (the run should not wait)
   * @throws SessionFencedError when the execution no longer owns the session, or it is neither RUNNING nor paused by this wait.
   * @throws TransactionCanceledException (retried) when the head still meets the condition, or the
   *   transaction was cancelled for another reason than the head's condition (a conflicting write).
   */
  async pause(
    sessionId: string,
    executionArn: string,
    pause: NonNullable<SessionRecord['pause']>,
    wait: { readonly TableName: string; readonly Item: Record<string, unknown> },
  ): Promise<'paused' | 'already' | 'raised'> {
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: { sessionId, sk: SESSION_SK },
                UpdateExpression: `SET #status = :paused, #pause = :pause, #updatedAt = :at, #pauses = if_not_exists(#pauses, :zero) + :one, ${UPGRADE_HEAD}`,
                ConditionExpression: '#executionArn = :exec AND #status = :running AND (attribute_not_exists(#budgets.#budget) OR #budgets.#budget = :limit)',
                ExpressionAttributeNames: { ...names('status', 'pause', 'updatedAt', 'pauses', 'executionArn', 'budgets'), '#budget': pause.budget, ...UPGRADE_NAMES },
                ExpressionAttributeValues: {
                  ':paused': 'PAUSED_BUDGET',
                  ':running': 'RUNNING',
                  ':pause': pause,
                  ':at': this.now().toISOString(),
                  ':exec': executionArn,
                  ':limit': pause.limit,
                  ...UPGRADE_VALUES,
                },
              },
            },
            { Put: { TableName: wait.TableName, Item: wait.Item } },
          ],
        }),
      );
      return 'paused';
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) throw err;
      const head = await this.getSession(sessionId);
      const owned = head?.executionArn === executionArn;
      if (owned && head.status === 'PAUSED_BUDGET' && head.pause?.approvalId === pause.approvalId) return 'already';
      // The condition's mirror: a limit set, and not the pause's.
      const limit = head?.budgets?.[pause.budget];
      if (owned && head.status === 'RUNNING' && limit !== undefined && limit !== pause.limit) return 'raised';
      // The head's condition holds, or was not what failed (a conflicting write, throttling): a retry decides.
      const reasons = (err.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
      if ((owned && head.status === 'RUNNING') || (reasons.length > 0 && reasons[0] !== 'ConditionalCheckFailed')) throw err;
      throw new SessionFencedError(`execution ${executionArn} no longer owns session ${sessionId} (or it is not RUNNING); not paused`);
    }
  }

  /**
   * Sets the session's budgets (`raise-budget`). A PAUSED_BUDGET session also becomes
   * RUNNING again, its paused time added to `pausedSeconds` and its pause cleared.
   * Conditional on the head as read (status and pause), so a concurrent raise or stop wins cleanly.
   * @returns the head before the change, or undefined when it was neither RUNNING nor PAUSED_BUDGET or changed meanwhile.
   */
  async setBudgets(head: SessionRecord, budgets: NonNullable<SessionRecord['budgets']>): Promise<SessionRecord | undefined> {
    const now = this.now();
    if (head.status !== 'RUNNING' && head.status !== 'PAUSED_BUDGET') return undefined;
    const resume = head.status === 'PAUSED_BUDGET' && head.pause;
    const pausedFor = resume ? Math.max(0, (now.getTime() - Date.parse(head.pause!.at)) / 1000) : 0;
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId: head.sessionId, sk: SESSION_SK },
          UpdateExpression: resume
            ? `SET #budgets = :budgets, #status = :running, #pausedSeconds = if_not_exists(#pausedSeconds, :zero) + :paused, #updatedAt = :at, ${UPGRADE_HEAD} REMOVE #pause`
            : `SET #budgets = :budgets, #updatedAt = :at, ${UPGRADE_HEAD}`,
          ConditionExpression: resume ? '#status = :status AND #pause.#approvalId = :approvalId' : '#status = :status',
          ExpressionAttributeNames: { ...names('budgets', 'status', 'updatedAt', ...(resume ? ['pausedSeconds', 'pause', 'approvalId'] : [])), ...UPGRADE_NAMES },
          ExpressionAttributeValues: {
            ':budgets': budgets,
            ':status': head.status,
            ':at': now.toISOString(),
            ...(resume ? { ':running': 'RUNNING', ':paused': pausedFor, ':approvalId': head.pause!.approvalId } : {}),
            ...UPGRADE_VALUES,
          },
        }),
      );
      return head;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Stops a PAUSED_BUDGET session: status STOPPED with why; its checkpoints (the
   * partial results) stay. Conditional on the pause as read.
   * @returns the head before the change, or undefined when it was not paused by that pause (nothing written).
   */
  async stop(head: SessionRecord, stop: Omit<NonNullable<SessionRecord['stop']>, 'at'>): Promise<SessionRecord | undefined> {
    if (head.status !== 'PAUSED_BUDGET' || !head.pause) return undefined;
    const at = this.now().toISOString();
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId: head.sessionId, sk: SESSION_SK },
          UpdateExpression: `SET #status = :stopped, #stop = :stop, #updatedAt = :at, ${UPGRADE_HEAD}`,
          ConditionExpression: '#status = :paused AND #pause.#approvalId = :approvalId',
          ExpressionAttributeNames: { ...names('status', 'stop', 'updatedAt', 'pause', 'approvalId'), ...UPGRADE_NAMES },
          ExpressionAttributeValues: { ':stopped': 'STOPPED', ':paused': 'PAUSED_BUDGET', ':stop': { ...stop, at }, ':at': at, ':approvalId': head.pause.approvalId, ...UPGRADE_VALUES },
        }),
      );
      return head;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Marks the session SUCCEEDED with its output, on behalf of `executionArn` (the
   * execution that owns it). Idempotent.
   * @throws SessionFencedError when another execution owns the session, or it was cancelled.
   */
  async markSucceeded(sessionId: string, step: number, output: unknown, executionArn: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId, sk: SESSION_SK },
          UpdateExpression: 'SET #status = :status, #step = :step, #output = :output, #updatedAt = :at',
          ConditionExpression: '#executionArn = :exec AND #status IN (:running, :status)',
          ExpressionAttributeNames: names('status', 'step', 'output', 'updatedAt', 'executionArn'),
          ExpressionAttributeValues: { ':status': 'SUCCEEDED', ':running': 'RUNNING', ':step': step, ':output': output, ':at': this.now().toISOString(), ':exec': executionArn },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new SessionFencedError(`execution ${executionArn} no longer owns session ${sessionId} (or it was cancelled); not marked SUCCEEDED`);
      throw err;
    }
  }

  /**
   * Marks the session FAILED, only on behalf of the execution that owns it (a
   * redelivered trigger's execution never changes the session it duplicates).
   * Creates a minimal head when the run failed before Prepare could create one, so
   * that every accepted trigger is recorded.
   * @param onlyIfRunning also require status RUNNING: for the execution-status backstop,
   *   which must not overwrite a failure RecordFailure already recorded
   * @returns false when the condition failed and nothing was written.
   */
  async markFailed(
    props: { sessionId: string; agent: string; executionArn: string; failure: Failure & { failedState: string } },
    onlyIfRunning = false,
  ): Promise<boolean> {
    const at = this.now().toISOString();
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { sessionId: props.sessionId, sk: SESSION_SK },
          // Every attribute through a placeholder: several (agent, status, kind) are DynamoDB reserved words.
          UpdateExpression:
            'SET #status = :failed, #failure = :failure, #updatedAt = :at, #createdAt = if_not_exists(#createdAt, :at), ' +
            '#schemaVersion = if_not_exists(#schemaVersion, :v), #kind = if_not_exists(#kind, :kind), #agent = if_not_exists(#agent, :agent), ' +
            '#executionArn = if_not_exists(#executionArn, :exec), #step = if_not_exists(#step, :zero), ' +
            '#executions = if_not_exists(#executions, :one), #branch = if_not_exists(#branch, :zero)',
          // A cancelled or stopped session stays so: a step of its stopped execution may still fail late.
          ConditionExpression: onlyIfRunning
            ? 'attribute_not_exists(sk) OR (#executionArn = :exec AND #status IN (:running, :paused))'
            : 'attribute_not_exists(sk) OR (#executionArn = :exec AND NOT #status IN (:cancelled, :stopped))',
          ExpressionAttributeNames: names('status', 'failure', 'updatedAt', 'createdAt', 'schemaVersion', 'kind', 'agent', 'executionArn', 'step', 'executions', 'branch'),
          ExpressionAttributeValues: {
            ':failed': 'FAILED',
            ':failure': props.failure,
            ':at': at,
            ':v': CHECKPOINT_SCHEMA_VERSION,
            ':kind': 'session',
            ':agent': props.agent,
            ':exec': props.executionArn,
            ':zero': 0,
            ':one': 1,
            ...(onlyIfRunning ? { ':running': 'RUNNING', ':paused': 'PAUSED_BUDGET' } : { ':cancelled': 'CANCELLED', ':stopped': 'STOPPED' }),
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}

/** `{'#a': 'a', ...}` for ExpressionAttributeNames. */
function names(...attributes: string[]): Record<string, string> {
  return Object.fromEntries(attributes.map((a) => [`#${a}`, a]));
}
