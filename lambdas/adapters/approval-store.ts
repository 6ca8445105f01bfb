/**
 * The approval table (partition key `approvalId`; GSI `bySession` on
 * `sessionId`/`requestedAt`). It holds the Step Functions task token, which is
 * never streamed and never returned to a caller: callers see the approval id.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { APPROVALS_BY_SESSION_INDEX } from '../core/constants';
import { ApprovalRecordSchema, type ApprovalRecord, type PendingApproval } from '../core/contracts/api';


/** An item of the session index: every attribute but the task token, which the index does not project. */
const PendingIndexItemSchema = ApprovalRecordSchema.pick({
  approvalId: true,
  sessionId: true,
  step: true,
  tool: true,
  input: true,
  status: true,
  requestedAt: true,
  expiresAt: true,
});

/**
 * Reads and writes the approval table through the DynamoDB document client.
 * Only the decide-approval function reads task tokens ({@link ApprovalStore.get});
 * SDK errors propagate.
 */
export class ApprovalStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Stores a pending approval with its token. A new request for the same approval
   * id means the earlier wait is gone (its task was retried with a new token), so
   * any earlier answer never reached the run: the approval is pending again.
   */
  async putPending(record: Omit<ApprovalRecord, 'status'>): Promise<void> {
    await this.client.send(new PutCommand(this.pendingPut(record)));
  }

  /** The Put of a pending approval, for a transaction with another table (a budget pause with its session head). */
  pendingPut(record: Omit<ApprovalRecord, 'status'>): { TableName: string; Item: Record<string, unknown> } {
    return { TableName: this.tableName, Item: { ...record, status: 'pending' } };
  }

  /** One approval with its token (for the decide function only). */
  async get(approvalId: string): Promise<ApprovalRecord | undefined> {
    const out = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { approvalId }, ConsistentRead: true }));
    return out.Item ? ApprovalRecordSchema.parse(out.Item) : undefined;
  }

  /**
   * Records a decision once.
   * @returns the record as decided, or undefined when it was no longer pending.
   */
  async decide(approvalId: string, decision: { status: 'approved' | 'rejected'; reason?: string; decidedBy?: string }): Promise<ApprovalRecord | undefined> {
    try {
      const out = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { approvalId },
          UpdateExpression: 'SET #status = :status, #decidedAt = :at, #reason = :reason, #decidedBy = :by',
          ConditionExpression: '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status', '#decidedAt': 'decidedAt', '#reason': 'reason', '#decidedBy': 'decidedBy' },
          ExpressionAttributeValues: {
            ':status': decision.status,
            ':at': this.now().toISOString(),
            ':reason': decision.reason ?? '',
            ':by': decision.decidedBy ?? 'unknown',
            ':pending': 'pending',
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return ApprovalRecordSchema.parse(out.Attributes);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /** Records that the decision reached the waiting task. */
  async markDelivered(approvalId: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { approvalId },
        UpdateExpression: 'SET #deliveredAt = :at',
        ExpressionAttributeNames: { '#deliveredAt': 'deliveredAt' },
        ExpressionAttributeValues: { ':at': this.now().toISOString() },
      }),
    );
  }

  /** Records that the decision came too late: the run no longer waited for it. */
  async markExpired(approvalId: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { approvalId },
        UpdateExpression: 'SET #status = :expired',
        ConditionExpression: 'attribute_not_exists(#deliveredAt)',
        ExpressionAttributeNames: { '#status': 'status', '#deliveredAt': 'deliveredAt' },
        ExpressionAttributeValues: { ':expired': 'expired' },
      }),
    ).catch((err: unknown) => {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    });
  }

  /** The session's approvals still pending and not expired, without tokens (every page). */
  async listPending(sessionId: string): Promise<PendingApproval[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: APPROVALS_BY_SESSION_INDEX,
          KeyConditionExpression: 'sessionId = :s',
          ExpressionAttributeValues: { ':s': sessionId },
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    const now = this.now().toISOString();
    return items
      .map((item) => PendingIndexItemSchema.parse(item))
      .filter((a) => a.status === 'pending' && a.expiresAt > now)
      .map(({ approvalId, tool, input, step, requestedAt, expiresAt }) => ({ approvalId, tool, input, step, requestedAt, expiresAt }));
  }
}
