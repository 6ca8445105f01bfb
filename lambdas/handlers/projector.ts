/**
 * The projector: appends every change of the checkpoint table (its DynamoDB
 * stream, NEW_AND_OLD_IMAGES) to the event log, and publishes the governance
 * events ({@link PUBLISHED_EVENT_TYPES}) on the runtime's bus. Records are processed in order
 * and reported one by one (Powertools batch, `ReportBatchItemFailures`): a bad
 * record is reported and retried (then sent to the delivery DLQ by the event
 * source mapping) without blocking or losing the others. Appends are conditional,
 * so a redelivered record is not appended twice.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Context, DynamoDBRecord, DynamoDBStreamEvent, DynamoDBBatchResponse } from 'aws-lambda';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { EventLogStore } from '../adapters/event-log-store';
import { publishEvent } from '../adapters/notifications';
import { PUBLISHED_EVENT_TYPES, publishedDetail, toEventLogRecord, type EventLogRecord } from '../core/contracts/events';
import { ENV } from '../core/env-names';
import { logger } from '../observability/powertools';

/** Appends one event log row; false when it was already there. */
export type AppendEvent = (row: EventLogRecord) => Promise<boolean>;
/** Publishes a governance event on the runtime's bus (detail-type, detail). */
export type PublishEvent = (detailType: string, detail: Record<string, unknown>) => Promise<void>;

const image = (value: Record<string, unknown> | undefined): Record<string, unknown> | undefined =>
  value ? unmarshall(value as Record<string, AttributeValue>) : undefined;

async function project(record: DynamoDBRecord, append: AppendEvent, publish: PublishEvent): Promise<void> {
  const change = record.dynamodb;
  if (!record.eventID || !record.eventName || !change?.SequenceNumber) throw new Error('stream record without eventID, eventName or SequenceNumber');
  const row = toEventLogRecord({
    eventId: record.eventID,
    eventName: record.eventName,
    sequenceNumber: change.SequenceNumber,
    approximateCreationEpochSeconds: change.ApproximateCreationDateTime ?? Date.now() / 1000,
    newImage: image(change.NewImage),
    oldImage: image(change.OldImage),
  });
  const appended = await append(row);
  // After the append: a published event is always in the log. At least once: a redelivered record publishes again.
  if (PUBLISHED_EVENT_TYPES.has(row.type)) await publish(row.type, publishedDetail(row));
  logger.debug('event', { sessionId: row.sessionId, type: row.type, seq: row.seq, appended });
}

/**
 * Builds the projector handler around an append and a publish function. Records are
 * handled one after the other (stream order); each failure is reported by its sequence
 * number in `batchItemFailures` (the record is redelivered).
 * @param append appends one event-log row (the DynamoDB event table in Lambda); false when
 *   the row was already there (a redelivered record), which is not an error.
 * @param publish publishes an event whose type is in {@link PUBLISHED_EVENT_TYPES} on the
 *   runtime's bus (EventBridge PutEvents in Lambda), with {@link publishedDetail} as detail.
 *   Called after the append, so a published event is always in the log; at least once:
 *   a redelivered record, or one whose publish failed after its append, publishes again.
 * @returns the Lambda handler of the checkpoint stream, answering `{batchItemFailures}`.
 */
export function createProjector(append: AppendEvent, publish: PublishEvent): (event: DynamoDBStreamEvent, context: Context) => Promise<DynamoDBBatchResponse> {
  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  return async (event, context) => {
    logger.addContext(context);
    return processPartialResponse(event, (record: DynamoDBRecord) => project(record, append, publish), processor, { context, processInParallel: false });
  };
}

let store: EventLogStore | undefined;
/** The Lambda entry of the checkpoint stream (event table from `AGENT_EVENT_TABLE`, bus from `AGENT_EVENT_BUS`). */
export const handler = createProjector(
  (row) => (store ??= new EventLogStore(documentClient(), requireEnv(ENV.eventTable))).append(row),
  (detailType, detail) => publishEvent(requireEnv(ENV.eventBusName), detailType, detail),
);
