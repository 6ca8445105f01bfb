/**
 * RecordFailure: the end of every run that cannot go on. Records the failure on
 * the session head and sends one envelope to the dead-letter queue, then the
 * state machine's Fail state ends the execution with the same error and cause.
 */
import type { Context } from 'aws-lambda';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { sendToDeadLetterQueue } from '../adapters/notifications';
import { deadLetterEnvelope } from '../core/contracts/events';
import { FailureSchema, RecordFailureInputSchema, type RecordFailureInput } from '../core/contracts/loop';
import { ENV } from '../core/env-names';
import { parseTrigger } from '../core/trigger';
import { logger, logStep } from '../observability/powertools';

const checkpoints = new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable));
const queueUrl = requireEnv(ENV.deadLetterQueueUrl);

/**
 * The RecordFailure task's Lambda entry: input {@link RecordFailureInputSchema}.
 * @returns the error and cause the Fail state ends the execution with
 */
export async function handler(event: unknown, context: Context): Promise<{ error: string; cause: string }> {
  const input = RecordFailureInputSchema.parse(event);
  const sessionId = sessionIdOf(input);
  logStep({ agent: input.agent, sessionId, executionArn: input.executionArn, step: stepOf(input) });
  logger.addContext(context);

  const domain = FailureSchema.safeParse(input.state.failure);
  const failure = domain.success
    ? domain.data
    : { error: input.caught?.Error ?? 'States.Runtime', cause: input.caught?.Cause ?? 'no cause reported' };
  const recorded = await checkpoints.markFailed({ sessionId, agent: input.agent, executionArn: input.executionArn, failure: { ...failure, failedState: input.failedState } });
  if (!recorded) {
    // A redelivered trigger's execution failed; the session belongs to the first one.
    failure.cause = `duplicate trigger of session ${sessionId}, which another execution owns and which was not changed; ${failure.cause}`;
  }
  const envelope = deadLetterEnvelope({
    agent: input.agent,
    sessionId,
    executionArn: input.executionArn,
    failedState: input.failedState,
    error: failure.error,
    cause: failure.cause,
    time: new Date().toISOString(),
  });
  await sendToDeadLetterQueue(queueUrl, envelope);
  logger.error('run failed', { failedState: input.failedState, error: failure.error, cause: failure.cause });
  return { error: failure.error, cause: failure.cause };
}

/** The session of the failed run: from the loop payload, else derived from the trigger, else the execution name. */
function sessionIdOf(input: RecordFailureInput): string {
  if (typeof input.state.sessionId === 'string') return input.state.sessionId;
  const trigger = parseTrigger(input.agent, input.state);
  return trigger.ok ? trigger.sessionId : input.executionName;
}

function stepOf(input: RecordFailureInput): number | undefined {
  return typeof input.state.step === 'number' ? input.state.step : undefined;
}
