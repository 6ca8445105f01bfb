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
import { DecideApprovalRequestSchema, type ApprovalRecord } from '../core/contracts/api';
import type { ApprovalOutcome } from '../core/contracts/loop';
import { ENV } from '../core/env-names';
import { logger, logStep } from '../observability/powertools';

const approvals = new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable));

export async function handler(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
  logger.addContext(context);
  const approvalId = event.pathParameters?.approvalId ?? '';
  const body = parseBody(event, DecideApprovalRequestSchema);
  if (!body.ok) return body.response;
  const record = await approvals.get(approvalId);
  if (!record) return problem(404, 'UnknownApproval', `no approval "${approvalId}"`);
  logStep({ sessionId: record.sessionId, step: record.step, tool: record.tool, callId: record.callId });

  const status = body.value.decision === 'approve' ? 'approved' : 'rejected';
  let decided: ApprovalRecord | undefined;
  if (record.status === 'pending') {
    if (record.expiresAt <= new Date().toISOString()) return problem(409, 'ApprovalExpired', `approval ${approvalId} expired at ${record.expiresAt}`);
    decided = await approvals.decide(approvalId, { status, reason: body.value.reason, decidedBy: body.value.decidedBy });
  }
  // Not pending (any more): the same decision again is answered as before (and re-sent if it
  // never reached the run); another decision conflicts.
  decided ??= await approvals.get(approvalId);
  if (decided?.status === 'expired') return problem(409, 'ApprovalExpired', `approval ${approvalId} came after the run stopped waiting`);
  if (!decided || decided.status !== status) {
    return problem(409, 'ApprovalAlreadyDecided', `approval ${approvalId} was already ${decided?.status ?? 'decided'}`);
  }
  if (decided.deliveredAt) return json(200, { approvalId, status });
  const outcome: ApprovalOutcome = { decision: status, reason: decided.reason || undefined, approvalId, decidedBy: decided.decidedBy };
  if (!(await completeTask(decided.taskToken, outcome))) {
    await approvals.markExpired(approvalId);
    return problem(409, 'ApprovalExpired', `the run no longer waits for approval ${approvalId} (timed out or ended)`);
  }
  await approvals.markDelivered(approvalId);
  logger.info('approval decided', { approvalId, status });
  return json(200, { approvalId, status });
}
