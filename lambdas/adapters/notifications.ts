/** Outbound messages: the dead-letter queue, the runtime's event bus, task callbacks. */
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendTaskSuccessCommand, TaskTimedOut, InvalidToken, TaskDoesNotExist } from '@aws-sdk/client-sfn';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { DeadLetterEnvelope } from '../core/contracts/events';
import { TransientError } from '../core/errors';
import { eventBridgeClient, sfnClient, sqsClient } from './clients';

/** EventBridge `source` of the runtime's own events. */
export const RUNTIME_EVENT_SOURCE = 'agent-runtime';

/** Sends a failed run's envelope to the dead-letter queue. */
export async function sendToDeadLetterQueue(queueUrl: string, envelope: DeadLetterEnvelope): Promise<void> {
  await sqsClient().send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(envelope),
      MessageAttributes: {
        agent: { DataType: 'String', StringValue: envelope.agent },
        error: { DataType: 'String', StringValue: envelope.error },
      },
    }),
  );
}

/**
 * Publishes a runtime event (e.g. `ApprovalRequested`) on the runtime's bus.
 * @throws TransientError when EventBridge reports the entry failed.
 */
export async function publishEvent(busName: string, detailType: string, detail: Record<string, unknown>): Promise<void> {
  const out = await eventBridgeClient().send(
    new PutEventsCommand({ Entries: [{ EventBusName: busName, Source: RUNTIME_EVENT_SOURCE, DetailType: detailType, Detail: JSON.stringify(detail) }] }),
  );
  if ((out.FailedEntryCount ?? 0) > 0) {
    throw new TransientError(`PutEvents ${detailType} failed: ${out.Entries?.[0]?.ErrorCode ?? 'unknown'} ${out.Entries?.[0]?.ErrorMessage ?? ''}`);
  }
}

/**
 * Completes a `.waitForTaskToken` task with an output.
 * @returns false when the task no longer waits (timed out, or the token is gone).
 */
export async function completeTask(taskToken: string, output: unknown): Promise<boolean> {
  try {
    await sfnClient().send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) }));
    return true;
  } catch (err) {
    if (err instanceof TaskTimedOut || err instanceof InvalidToken || err instanceof TaskDoesNotExist) return false;
    throw err;
  }
}
