/**
 * GET /runs/{sessionId}: the run's status (session head: status, current execution,
 * executions so far, branch, cancellation, budgets, pause, stop, principal; pending
 * approvals (and a budget pause's wait) while RUNNING or PAUSED_BUDGET).
 * GET /runs/{sessionId}/events?after=<seq>&limit=<1..1000>: a page of the session's
 * event log, in order, with `nextAfter` when more rows follow.
 * Answers 404 for an unknown session.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { ApprovalStore } from '../adapters/approval-store';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { EventLogStore } from '../adapters/event-log-store';
import { json, problem } from '../adapters/http';
import { EventsPageSchema, type RunStatus } from '../core/contracts/api';
import { formatIssues } from '../core/validation';
import { ENV } from '../core/env-names';
import { logger, logStep } from '../observability/powertools';

const checkpoints = new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable));
const approvals = new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable));
const events = new EventLogStore(documentClient(), requireEnv(ENV.eventTable));

/** Answers GET /runs/{sessionId} (200 {@link RunStatus}) and GET /runs/{sessionId}/events (200 `{sessionId, events}`); 404 for an unknown session. */
export async function handler(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
  logger.addContext(context);
  const sessionId = event.pathParameters?.sessionId ?? '';
  logStep({ sessionId });
  const session = await checkpoints.getSession(sessionId);
  if (!session) return problem(404, 'UnknownSession', `no session "${sessionId}"`);
  if (event.resource.endsWith('/events')) {
    const page = EventsPageSchema.safeParse(event.queryStringParameters ?? {});
    if (!page.success) return problem(400, 'InvalidRequest', 'query parameters are invalid', formatIssues(page.error));
    return json(200, { sessionId, ...(await events.list(sessionId, page.data)) });
  }
  const status: RunStatus = {
    sessionId,
    agent: session.agent,
    status: session.status,
    executionArn: session.executionArn,
    executions: session.executions,
    branch: session.branch,
    parentExecutionArn: session.parentExecutionArn,
    cancellation: session.cancellation,
    budgets: session.budgets,
    pause: session.pause,
    stop: session.stop,
    principal: session.principal,
    step: session.step,
    createdAt: session.createdAt,
    updatedAt: session.updatedAt,
    output: session.output,
    failure: session.failure,
    pendingApprovals: session.status === 'RUNNING' || session.status === 'PAUSED_BUDGET' ? await approvals.listPending(sessionId) : [],
  };
  return json(200, status);
}
