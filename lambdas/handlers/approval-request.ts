/**
 * The approval request task (`lambda:invoke.waitForTaskToken`) of every wait of the loop:
 * - a tool call that needs approval, and an output review: stores the task token
 *   server-side under an approval id, checkpoints the request (without the token),
 *   and announces it on the runtime's bus as `ApprovalRequested`; the run waits until
 *   POST /approvals/{approvalId} answers or the task times out;
 * - a budget pause: stores the token and marks the session PAUSED_BUDGET in one
 *   transaction, then writes the pause snapshot (`PAUSE#<time>`, published as
 *   `BudgetExhausted`); `raise-budget` and `stop` answer it. When the budget was
 *   raised after the model turn found it used up, it answers its own wait `raised`.
 */
import type { Context } from 'aws-lambda';
import { ApprovalStore } from '../adapters/approval-store';
import { BodyStore, withResponse } from '../adapters/body-store';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient, s3Client } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { injectFault } from '../adapters/fault-injection';
import { completeTask, publishEvent } from '../adapters/notifications';
import { checkpointKey } from '../core/contracts/checkpoint';
import { BUDGET_PAUSE_TOOL_PREFIX, OUTPUT_REVIEW_TOOL, outputReviewCallId } from '../core/approvals';
import { ApprovalRequestInputSchema, type ApprovalRequestInput } from '../core/contracts/loop';
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
 * The `.waitForTaskToken` task's Lambda entry: input {@link ApprovalRequestInputSchema}
 * (a tool call, an output review or a budget pause).
 * @returns the approval id (the task itself waits for SendTaskSuccess)
 * @throws ConfigurationError when the model turn has no such tool call or answer; SessionFencedError
 *   when a pause finds the session no longer this execution's; SDK errors (retried)
 */
export async function handler(event: unknown, context: Context): Promise<{ approvalId: string }> {
  const input = ApprovalRequestInputSchema.parse(event);
  const { sessionId, step } = input;
  logStep({ agent: input.agent, sessionId, executionArn: input.executionArn, step, ...(input.kind === 'tool_call' ? { tool: input.call.tool, callId: input.call.callId } : {}) });
  logger.addContext(context);
  await injectFault('RequestApproval', sessionId, context);
  const requestedAt = new Date(input.requestedAt);
  const expiresAt = new Date(requestedAt.getTime() + input.timeoutSeconds * 1000).toISOString();
  const subject = await subjectOf(input);
  const approvalId = approvalIdFor(sessionId, subject.step, subject.callId);
  const pending = {
    approvalId,
    sessionId,
    agent: input.agent,
    step: subject.step,
    callId: subject.callId,
    tool: subject.tool,
    input: subject.input,
    taskToken: input.taskToken,
    requestedAt: requestedAt.toISOString(),
    expiresAt,
  };
  if (input.kind === 'budget_pause') {
    const head = await checkpoints.getSession(sessionId);
    // The head and the wait's token in one transaction: whoever sees the pause finds the wait.
    const paused = await checkpoints.pause(sessionId, input.executionArn, { ...input.pause, at: requestedAt.toISOString(), approvalId, step }, approvals.pendingPut(pending));
    if (paused === 'raised') {
      // A raise came between the model turn and this wait: go on at once.
      await completeTask(input.taskToken, { decision: 'raised', reason: 'the budget was raised before the run paused', approvalId });
      logger.info('not paused: the budget was raised meanwhile', { approvalId, ...input.pause });
      return { approvalId };
    }
    // The snapshot: logged as BudgetExhausted and published on the bus by the projector.
    await checkpoints.putCheckpoint({
      sessionId,
      sk: checkpointKey.pause(requestedAt.toISOString()),
      kind: 'pause',
      agent: input.agent,
      step,
      ...input.pause,
      budgets: head?.budgets ?? {},
      approvalId,
      expiresAt,
    });
    logger.info('paused on a budget', { approvalId, ...input.pause, expiresAt });
    return { approvalId };
  }
  await approvals.putPending(pending);
  await checkpoints.putCheckpoint({
    sessionId,
    sk: checkpointKey.approval(subject.step, subject.callId),
    kind: 'approval',
    step: subject.step,
    approvalId,
    callId: subject.callId,
    tool: subject.tool,
    input: subject.input,
    expiresAt,
  });
  await publishEvent(busName, 'ApprovalRequested', { approvalId, sessionId, agent: input.agent, kind: input.kind, tool: subject.tool, input: subject.input, expiresAt });
  logger.info('approval requested', { approvalId, kind: input.kind, expiresAt });
  return { approvalId };
}

/** What a wait is about: the step and call id its approval id derives from, and what the human sees. */
async function subjectOf(input: ApprovalRequestInput): Promise<{ step: number; callId: string; tool: string; input: unknown }> {
  switch (input.kind) {
    case 'tool_call': {
      const turn = await checkpoints.getCheckpoint(input.sessionId, checkpointKey.model(input.step));
      const use = toolUseOf(turn?.kind === 'model' ? await withResponse(turn, bodies) : turn, input.call.callId);
      if (!use) throw new ConfigurationError(`step ${input.step} has no tool call ${input.call.callId}`);
      return { step: input.step, callId: input.call.callId, tool: input.call.tool, input: use.input };
    }
    case 'output_review': {
      const step = input.step + 1;
      const turn = await checkpoints.getCheckpoint(input.sessionId, checkpointKey.model(step));
      if (turn?.kind !== 'model' || turn.outcome !== 'review') throw new ConfigurationError(`step ${step} has no answer waiting for review`);
      return { step, callId: outputReviewCallId(input.branch), tool: OUTPUT_REVIEW_TOOL, input: { output: turn.output, confidence: turn.confidence, reasons: turn.reviewReasons ?? [] } };
    }
    case 'budget_pause':
      // One wait per entry into PauseForBudget: its EnteredTime tells repeated pauses at one step apart.
      return { step: input.step, callId: `budget@${input.requestedAt}`, tool: `${BUDGET_PAUSE_TOOL_PREFIX}${input.pause.budget}`, input: input.pause };
  }
}
