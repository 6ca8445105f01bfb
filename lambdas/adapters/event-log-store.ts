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
   * A page of a session's rows, in order.
   * @param page.after only rows after this `seq` (exclusive); @default the beginning
   * @param page.limit at most this many rows @default 1000
   * @returns the rows, and `nextAfter` (the last row's `seq`) when more may follow
   */
  async list(sessionId: string, page: { after?: string; limit?: number } = {}): Promise<{ events: EventLogRecord[]; nextAfter?: string }> {
    const limit = page.limit ?? 1000;
    const rows: EventLogRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: page.after === undefined ? 'sessionId = :s' : 'sessionId = :s AND seq > :after',
          ExpressionAttributeValues: page.after === undefined ? { ':s': sessionId } : { ':s': sessionId, ':after': page.after },
          ExclusiveStartKey: start,
          Limit: limit - rows.length,
        }),
      );
      rows.push(...((out.Items ?? []) as EventLogRecord[]));
      start = out.LastEvaluatedKey;
    } while (start && rows.length < limit);
    return start ? { events: rows, nextAfter: rows.at(-1)?.seq } : { events: rows };
  }
}
