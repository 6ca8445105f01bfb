/**
 * The approval request task (`lambda:invoke.waitForTaskToken`): stores the task
 * token server-side under an approval id, checkpoints the request (without the
 * token), and announces it on the runtime's bus as `ApprovalRequested`. The run
 * waits until POST /approvals/{approvalId} answers or the task times out.
 */
import type { Context } from 'aws-lambda';
import { ApprovalStore } from '../adapters/approval-store';
import { BodyStore, withResponse } from '../adapters/body-store';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient, s3Client } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { injectFault } from '../adapters/fault-injection';
import { publishEvent } from '../adapters/notifications';
import { checkpointKey } from '../core/contracts/checkpoint';
import { ApprovalRequestInputSchema } from '../core/contracts/loop';
import { ENV } from '../core/env-names';
import { ConfigurationError } from '../core/errors';
import { approvalIdFor } from '../core/ids';
import { toolUseOf } from '../core/loop';
import { logger, logStep } from '../observability/powertools';

const checkpoints = new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable));
const approvals = new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable));
const busName = requireEnv(ENV.eventBusName);
// Reads only (a model response stored by reference): the inline limit does not apply.
const bodies = new BodyStore(s3Client(), requireEnv(ENV.bodyBucket), Number.MAX_SAFE_INTEGER);

/**
 * The `.waitForTaskToken` task's Lambda entry: input {@link ApprovalRequestInputSchema}.
 * @returns the approval id (the task itself waits for SendTaskSuccess)
 * @throws ConfigurationError when the model turn has no such tool call; SDK errors (retried)
 */
export async function handler(event: unknown, context: Context): Promise<{ approvalId: string }> {
  const input = ApprovalRequestInputSchema.parse(event);
  const { sessionId, step, call } = input;
  logStep({ agent: input.agent, sessionId, executionArn: input.executionArn, step, tool: call.tool, callId: call.callId });
  logger.addContext(context);
  await injectFault('RequestApproval', sessionId, context);

  const turn = await checkpoints.getCheckpoint(sessionId, checkpointKey.model(step));
  const use = toolUseOf(turn?.kind === 'model' ? await withResponse(turn, bodies) : turn, call.callId);
  if (!use) throw new ConfigurationError(`step ${step} has no tool call ${call.callId}`);

  const approvalId = approvalIdFor(sessionId, step, call.callId);
  const requestedAt = new Date(input.requestedAt);
  const expiresAt = new Date(requestedAt.getTime() + input.timeoutSeconds * 1000).toISOString();
  await approvals.putPending({
    approvalId,
    sessionId,
    agent: input.agent,
    step,
    callId: call.callId,
    tool: call.tool,
    input: use.input,
    taskToken: input.taskToken,
    requestedAt: requestedAt.toISOString(),
    expiresAt,
  });
  await checkpoints.putCheckpoint({
    sessionId,
    sk: checkpointKey.approval(step, call.callId),
    kind: 'approval',
    step,
    approvalId,
    callId: call.callId,
    tool: call.tool,
    input: use.input,
    expiresAt,
  });
  await publishEvent(busName, 'ApprovalRequested', { approvalId, sessionId, agent: input.agent, tool: call.tool, input: use.input, expiresAt });
  logger.info('approval requested', { approvalId, expiresAt });
  return { approvalId };
}
