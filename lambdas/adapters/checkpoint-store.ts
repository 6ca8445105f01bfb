/**
 * The checkpoint table: sessions and their per-step checkpoints (see
 * `core/contracts/checkpoint.ts` for the key layout). Checkpoints are written
 * once with a condition, so a retried step finds its earlier record instead of
 * writing a second one.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CHECKPOINT_SCHEMA_VERSION } from '../core/constants';
import {
  CHECKPOINT_SK_PREFIX,
  CheckpointRecordSchema,
  newSessionRecord,
  parseStoredRecord,
  SESSION_SK,
  SessionRecordSchema,
  type CheckpointRecord,
  type SessionRecord,
  type TriggerInfo,
} from '../core/contracts/checkpoint';
import type { Failure } from '../core/contracts/loop';

/** A checkpoint to write, without the fields the store fills in. */
export type NewCheckpoint = Omit<Exclude<CheckpointRecord, SessionRecord>, 'schemaVersion' | 'createdAt'>;

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
  async createSession(props: { sessionId: string; agent: string; executionArn: string; trigger: TriggerInfo }): Promise<{ created: boolean; session: SessionRecord }> {
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
    return out.Item ? parseStoredRecord(out.Item, SessionRecordSchema) : undefined;
  }

  /**
   * Writes a checkpoint once.
   * @returns the stored record: this one, or the one an earlier attempt of the same step wrote.
   */
  async putCheckpoint<T extends NewCheckpoint>(checkpoint: T): Promise<{ created: boolean; record: CheckpointRecord }> {
    const record = { ...checkpoint, schemaVersion: CHECKPOINT_SCHEMA_VERSION, createdAt: this.now().toISOString() };
    const parsed = CheckpointRecordSchema.parse(record);
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
    return out.Item ? parseStoredRecord(out.Item, CheckpointRecordSchema) : undefined;
  }

  /** All checkpoints of a session in sort-key (step) order, every page. */
  async listCheckpoints(sessionId: string): Promise<CheckpointRecord[]> {
    const records: CheckpointRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'sessionId = :s AND begins_with(sk, :p)',
          ExpressionAttributeValues: { ':s': sessionId, ':p': CHECKPOINT_SK_PREFIX },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) records.push(parseStoredRecord(item, CheckpointRecordSchema));
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

  /** Marks the session SUCCEEDED with its output. Idempotent. */
  async markSucceeded(sessionId: string, step: number, output: unknown): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { sessionId, sk: SESSION_SK },
        UpdateExpression: 'SET #status = :status, #step = :step, #output = :output, #updatedAt = :at',
        ConditionExpression: 'attribute_exists(sk)',
        ExpressionAttributeNames: names('status', 'step', 'output', 'updatedAt'),
        ExpressionAttributeValues: { ':status': 'SUCCEEDED', ':step': step, ':output': output, ':at': this.now().toISOString() },
      }),
    );
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
            '#executionArn = if_not_exists(#executionArn, :exec), #step = if_not_exists(#step, :zero)',
          ConditionExpression: onlyIfRunning
            ? 'attribute_not_exists(sk) OR (#executionArn = :exec AND #status = :running)'
            : 'attribute_not_exists(sk) OR #executionArn = :exec',
          ExpressionAttributeNames: names('status', 'failure', 'updatedAt', 'createdAt', 'schemaVersion', 'kind', 'agent', 'executionArn', 'step'),
          ExpressionAttributeValues: {
            ':failed': 'FAILED',
            ':failure': props.failure,
            ':at': at,
            ':v': CHECKPOINT_SCHEMA_VERSION,
            ':kind': 'session',
            ':agent': props.agent,
            ':exec': props.executionArn,
            ':zero': 0,
            ...(onlyIfRunning ? { ':running': 'RUNNING' } : {}),
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
