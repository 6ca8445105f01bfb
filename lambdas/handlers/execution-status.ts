/**
 * The backstop for runs that end outside the agent loop's Catch graph: an
 * execution stopped (ABORTED), timed out, or failed with an error no Catch
 * matches (`States.Runtime`, `States.DataLimitExceeded`). An EventBridge rule per
 * agent sends Step Functions' "Execution Status Change" events for FAILED,
 * TIMED_OUT and ABORTED here. A session still RUNNING under that execution is
 * marked FAILED and its envelope goes to the dead-letter queue; a run that
 * RecordFailure already recorded is left as it is (no second envelope).
 */
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { sendToDeadLetterQueue } from '../adapters/notifications';
import { deadLetterEnvelope } from '../core/contracts/events';
import { ENV } from '../core/env-names';
import { parseTrigger } from '../core/trigger';
import { logger, logStep } from '../observability/powertools';

/**
 * What the rule sends: the agent's name and the event's `detail` (Step Functions
 * "Execution Status Change"; `input` may be absent when over 248 KiB).
 * Example: `{"agent":"ssh-investigator","detail":{"executionArn":"arn:aws:states:…","name":"ses_…","status":"ABORTED","input":"{…}"}}`
 */
export const ExecutionEndedEventSchema = z.object({
  agent: z.string(),
  detail: z.object({
    executionArn: z.string(),
    name: z.string(),
    status: z.enum(['FAILED', 'TIMED_OUT', 'ABORTED']),
    input: z.string().nullish(),
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});

const checkpoints = new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable));
const queueUrl = requireEnv(ENV.deadLetterQueueUrl);

/**
 * The Lambda entry: input {@link ExecutionEndedEventSchema}.
 * @returns whether the end was recorded here (false: RecordFailure or a control request already had)
 */
export async function handler(event: unknown, context: Context): Promise<{ recorded: boolean }> {
  const { agent, detail } = ExecutionEndedEventSchema.parse(event);
  let trigger: unknown;
  try {
    trigger = detail.input ? JSON.parse(detail.input) : undefined;
  } catch {
    trigger = undefined;
  }
  const parsed = parseTrigger(agent, trigger);
  const sessionId = parsed.ok ? parsed.sessionId : detail.name;
  logStep({ agent, sessionId, executionArn: detail.executionArn });
  logger.addContext(context);

  const status = detail.status === 'TIMED_OUT' ? 'TimedOut' : detail.status === 'ABORTED' ? 'Aborted' : 'Failed';
  const failure = {
    error: detail.error ?? `Execution${status}`,
    cause: detail.cause ?? `the execution ended ${detail.status} outside the agent loop`,
    failedState: 'Execution',
  };
  const recorded = await checkpoints.markFailed({ sessionId, agent, executionArn: detail.executionArn, failure }, true);
  if (recorded) {
    await sendToDeadLetterQueue(
      queueUrl,
      deadLetterEnvelope({ agent, sessionId, executionArn: detail.executionArn, ...failure, time: new Date().toISOString() }),
    );
    logger.error('run ended outside the loop', { status: detail.status, error: failure.error });
  } else {
    logger.info('execution end already recorded', { status: detail.status });
  }
  return { recorded };
}
