/**
 * POST /approvals/{approvalId}: a human approves or rejects a pending tool call.
 * The decision is recorded once, then handed to the waiting task with
 * SendTaskSuccess; the model receives it as the tool's result.
 *
 * Answers 200 `{approvalId, status}`; 400 naming the fields; 404 for an unknown
 * approval; 409 when it was already decided otherwise, or has expired.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { ApprovalStore } from '../adapters/approval-store';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { json, parseBody, problem } from '../adapters/http';
import { completeTask } from '../adapters/notifications';
import { BUDGET_PAUSE_TOOL_PREFIX, nextApprovalStep } from '../core/approvals';
import { DecideApprovalRequestSchema, type ApprovalRecord } from '../core/contracts/api';
import type { ApprovalOutcome } from '../core/contracts/loop';
import { ENV } from '../core/env-names';
import { TransientError } from '../core/errors';
import { logger, logStep } from '../observability/powertools';

const approvals = new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable));

/** POST /approvals/{approvalId}: the Lambda proxy entry (see the module comment for the answers). */
export async function handler(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
  logger.addContext(context);
  const approvalId = event.pathParameters?.approvalId ?? '';
  const body = parseBody(event, DecideApprovalRequestSchema);
  if (!body.ok) return body.response;
  const record = await approvals.get(approvalId);
  if (!record) return problem(404, 'UnknownApproval', `no approval "${approvalId}"`);
  logStep({ sessionId: record.sessionId, step: record.step, tool: record.tool, callId: record.callId });
  if (record.tool.startsWith(BUDGET_PAUSE_TOOL_PREFIX)) {
    return problem(409, 'BudgetPause', `approval ${approvalId} is a budget pause: raise the budget (POST /runs/${record.sessionId}/budget) or stop the run (POST /runs/${record.sessionId}/stop)`);
  }

  const status = body.value.decision === 'approve' ? 'approved' : 'rejected';
  let current: ApprovalRecord | undefined = record;
  let step = nextApprovalStep(current, status, new Date().toISOString());
  if (step.action === 'record') {
    // Conditional on pending: a concurrent decision wins and is judged below.
    current = (await approvals.decide(approvalId, { status, reason: body.value.reason, decidedBy: body.value.decidedBy })) ?? (await approvals.get(approvalId));
    if (!current) return problem(404, 'UnknownApproval', `no approval "${approvalId}"`);
    step = nextApprovalStep(current, status, new Date().toISOString());
  }
  if (step.action === 'refuse') return problem(409, step.error, step.message);
  if (step.action === 'answer') return json(200, { approvalId, status });
  if (step.action === 'record') throw new TransientError(`approval ${approvalId} is still pending after its decision was recorded`);
  const outcome: ApprovalOutcome = { decision: status, reason: current.reason || undefined, approvalId, decidedBy: current.decidedBy };
  if (!(await completeTask(current.taskToken, outcome))) {
    await approvals.markExpired(approvalId);
    return problem(409, 'ApprovalExpired', `the run no longer waits for approval ${approvalId} (timed out or ended)`);
  }
  await approvals.markDelivered(approvalId);
  logger.info('approval decided', { approvalId, status });
  return json(200, { approvalId, status });
}
