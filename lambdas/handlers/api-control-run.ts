/**
 * POST /runs/{sessionId}/resume, /cancel, /rollback, /budget and /stop: controls a session
 * (see `adapters/session-control.ts` for what each does, `core/contracts/api.ts`
 * for the bodies).
 *
 * Answers:
 * - resume: 202 `{sessionId, executionArn, execution, created: true, method}` (`redrive` or
 *   `continuation`); 200 with
 *   `created: false` for a repeated request; 409 `NotResumable`, `ExecutionConflict`.
 * - cancel: 200 `{sessionId, status: "CANCELLED", stoppedExecutions, expiredApprovals}`;
 *   409 `NotCancellable`, `Conflict`.
 * - rollback: 202 `{sessionId, executionArn, execution, branch, abandoned}`; 400
 *   `InvalidRollback` naming `toStep`; 409 `NotRollbackable`, `Conflict`, `ExecutionConflict`.
 * - budget (raise-budget): 200 `{sessionId, status, budgets, resumed}`; 409 `NotRaisable`, `Conflict`.
 * - stop: 200 `{sessionId, status: "STOPPED", step, pause, completedToolCalls}`; 409 `NotStoppable`, `Conflict`.
 * - all: 400 `InvalidRequest` naming the fields; 404 `UnknownSession`.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { ApprovalStore } from '../adapters/approval-store';
import { CheckpointStore } from '../adapters/checkpoint-store';
import { documentClient } from '../adapters/clients';
import { requireEnv } from '../adapters/config';
import { json, parseBody, problem } from '../adapters/http';
import { completeTask } from '../adapters/notifications';
import { SessionControl, stepFunctionsExecutions, type ControlOutcome } from '../adapters/session-control';
import { CancelRunRequestSchema, RaiseBudgetRequestSchema, ResumeRunRequestSchema, RollbackRunRequestSchema, StopRunRequestSchema } from '../core/contracts/api';
import { SessionIdSchema } from '../core/contracts/loop';
import { CONTROL_REFUSAL_STATUS } from '../core/control';
import { ENV } from '../core/env-names';
import { logger, logStep } from '../observability/powertools';

/** An API Gateway (REST, Lambda proxy) handler. */
export type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

/** The control routes, by the last segment of the path. */
const ACTIONS = ['resume', 'cancel', 'rollback', 'budget', 'stop'] as const;
type Action = (typeof ACTIONS)[number];

/** Who asks: the body's `requestedBy`, else the caller's IAM identity (API Gateway IAM authorisation). */
const requester = (event: APIGatewayProxyEvent, requestedBy: string | undefined): string | undefined =>
  requestedBy ?? event.requestContext?.identity?.userArn ?? event.requestContext?.identity?.caller ?? undefined;

function answer<T>(outcome: ControlOutcome<T>, status: (value: T) => number): APIGatewayProxyResult {
  if (outcome.ok) return json(status(outcome.value), outcome.value);
  const { error, message, issues } = outcome.refusal;
  return problem(CONTROL_REFUSAL_STATUS[error], error, message, issues ? [...issues] : undefined);
}

/**
 * Builds the control handler around a {@link SessionControl} (made on first use, so
 * that the module loads without the environment in tests).
 */
export function createControlHandler(control: () => SessionControl): ApiHandler {
  return async (event, context) => {
    logger.addContext(context);
    const sessionId = event.pathParameters?.sessionId ?? '';
    logStep({ sessionId });
    const action = ACTIONS.find((a) => (event.resource || event.path).endsWith(`/${a}`)) as Action | undefined;
    if (!action) return problem(404, 'UnknownRoute', `no route ${event.httpMethod} ${event.path}`);
    if (!SessionIdSchema.safeParse(sessionId).success) return problem(404, 'UnknownSession', `no session "${sessionId}"`);

    if (action === 'resume') {
      const body = parseBody(event, ResumeRunRequestSchema);
      if (!body.ok) return body.response;
      const outcome = await control().resume(sessionId, { ...body.value, requestedBy: requester(event, body.value.requestedBy) });
      return answer(outcome, (v) => (v.created ? 202 : 200));
    }
    if (action === 'cancel') {
      const body = parseBody(event, CancelRunRequestSchema);
      if (!body.ok) return body.response;
      return answer(await control().cancel(sessionId, { ...body.value, requestedBy: requester(event, body.value.requestedBy) }), () => 200);
    }
    if (action === 'budget') {
      const body = parseBody(event, RaiseBudgetRequestSchema);
      if (!body.ok) return body.response;
      return answer(await control().raiseBudget(sessionId, { ...body.value, requestedBy: requester(event, body.value.requestedBy) }), () => 200);
    }
    if (action === 'stop') {
      const body = parseBody(event, StopRunRequestSchema);
      if (!body.ok) return body.response;
      return answer(await control().stop(sessionId, { ...body.value, requestedBy: requester(event, body.value.requestedBy) }), () => 200);
    }
    const body = parseBody(event, RollbackRunRequestSchema);
    if (!body.ok) return body.response;
    return answer(await control().rollback(sessionId, { ...body.value, requestedBy: requester(event, body.value.requestedBy) }), () => 202);
  };
}

let real: SessionControl | undefined;
/** The deployed handler: the checkpoint and approval tables from the environment, Step Functions through the SDK. */
export const handler = createControlHandler(
  () =>
    (real ??= new SessionControl({
      sessions: new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable)),
      approvals: new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable)),
      executions: stepFunctionsExecutions,
      completeTask,
    })),
);
