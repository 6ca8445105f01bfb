/**
 * POST /agents/{agent}/runs, one function per agent: validates the request and
 * the agent's input schema, then starts the agent's state machine. The session id
 * is derived from the agent and the caller's idempotency key (`Idempotency-Key`
 * header or `idempotencyKey` in the body; a random one when absent) and is the
 * execution name, so Step Functions itself refuses a second execution for a key.
 *
 * The run acts for the body's `principal`, else the caller's IAM identity with no roles;
 * `budgets` override the agent's; `depth` is the sub-agent depth.
 *
 * Answers 202 `{sessionId, executionArn, created: true}`; 200 with `created:
 * false` when the key already started this run with the same input; 400 naming
 * the fields (of the body, the header, or the agent's input schema as `input.<path>`);
 * 409 when the key was used with other input.
 */
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { startNamedExecution } from '../../adapters/executions';
import { header, json, parseBody, problem } from '../../adapters/http';
import { IdempotencyKeySchema, StartRunRequestSchema, type StartRunResponse } from '../../core/contracts/api';
import type { AgentDefinition } from '../../core/define';
import { sessionIdFor } from '../../core/ids';
import type { ApiTrigger } from '../../core/trigger';
import { formatIssues } from '../../core/validation';
import { logger, logStep } from '../../observability/powertools';

/**
 * Starts a run of `agent` on `stateMachineArn` for an API request (API Gateway Lambda
 * proxy). The answers (202, 200, 400, 409) are those of the module comment.
 */
export async function startRun(event: APIGatewayProxyEvent, agent: AgentDefinition, stateMachineArn: string): Promise<APIGatewayProxyResult> {
  const requestedAt = Date.now();
  const body = parseBody(event, StartRunRequestSchema);
  if (!body.ok) return body.response;
  const headerKey = header(event, 'idempotency-key');
  if (headerKey !== undefined) {
    const parsed = IdempotencyKeySchema.safeParse(headerKey);
    if (!parsed.success) return problem(400, 'InvalidRequest', 'Idempotency-Key header is invalid', formatIssues(parsed.error, 'Idempotency-Key'));
  }
  const input = agent.input.safeParse(body.value.input);
  if (!input.success) {
    return problem(400, 'InvalidInput', `input does not match the input schema of agent ${agent.name}`, formatIssues(input.error, 'input'));
  }
  const idempotencyKey = headerKey ?? body.value.idempotencyKey ?? randomUUID();
  const sessionId = sessionIdFor(agent.name, idempotencyKey);
  logStep({ agent: agent.name, sessionId });
  // The raw input (not the parsed one): Prepare validates it again, as it does for every trigger.
  const identity = event.requestContext?.identity;
  const principal = body.value.principal ?? { user: identity?.userArn ?? identity?.caller ?? 'anonymous', tenant: 'default', roles: [] };
  const trigger: ApiTrigger = { source: 'api', sessionId, idempotencyKey, input: body.value.input, principal, budgets: body.value.budgets, depth: body.value.depth };
  const executionInput = JSON.stringify(trigger);
  const started = await startNamedExecution(stateMachineArn, sessionId, executionInput, requestedAt);
  if (!started.started && started.reason === 'other-input') {
    return problem(409, 'IdempotencyKeyReused', `idempotency key "${idempotencyKey}" already started a run with different input`);
  }
  logger.info(started.started ? 'run started' : 'run already started by this key', { executionArn: started.executionArn });
  const response: StartRunResponse = { sessionId, executionArn: started.executionArn, created: started.started };
  return json(started.started ? 202 : 200, response);
}
