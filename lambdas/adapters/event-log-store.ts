/**
 * The append-only event log table (partition key `sessionId`, sort key `seq`).
 * Rows are only ever put, with `attribute_not_exists`, so a redelivered stream
 * record is not appended twice and no row is ever overwritten.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { EventLogRecord } from '../core/contracts/events';

/** Appends to and reads the event log table through the DynamoDB document client; SDK errors propagate. */
export class EventLogStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Appends a row. @returns false when the row was already there (a redelivery). */
  async append(record: EventLogRecord): Promise<boolean> {
    try {
      await this.client.send(new PutCommand({ TableName: this.tableName, Item: record, ConditionExpression: 'attribute_not_exists(seq)' }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * A session's rows in order.
   * @param limit at most this many rows (default 1000)
   */
  async list(sessionId: string, limit = 1000): Promise<EventLogRecord[]> {
    const rows: EventLogRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'sessionId = :s',
          ExpressionAttributeValues: { ':s': sessionId },
          ExclusiveStartKey: start,
          Limit: limit - rows.length,
        }),
      );
      rows.push(...((out.Items ?? []) as EventLogRecord[]));
      start = out.LastEvaluatedKey;
    } while (start && rows.length < limit);
    return rows;
  }
}
