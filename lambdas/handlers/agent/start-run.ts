/**
 * POST /agents/{agent}/runs, one function per agent: validates the request and
 * the agent's input schema, then starts the agent's state machine. The session id
 * is derived from the agent and the caller's idempotency key (`Idempotency-Key`
 * header or `idempotencyKey` in the body; a random one when absent) and is the
 * execution name, so Step Functions itself refuses a second execution for a key.
 *
 * Answers 202 `{sessionId, executionArn, created: true}`; 200 with `created:
 * false` when the key already started this run with the same input; 400 naming
 * the fields (of the body, the header, or the agent's input schema as `input.<path>`);
 * 409 when the key was used with other input.
 */
import { randomUUID } from 'node:crypto';
import { DescribeExecutionCommand, ExecutionAlreadyExists, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { sfnClient } from '../../adapters/clients';
import { header, json, parseBody, problem } from '../../adapters/http';
import { IdempotencyKeySchema, StartRunRequestSchema, type StartRunResponse } from '../../core/contracts/api';
import type { AgentDefinition } from '../../core/define';
import { sessionIdFor } from '../../core/ids';
import type { ApiTrigger } from '../../core/trigger';
import { formatIssues } from '../../core/validation';
import { logger, logStep } from '../../observability/powertools';

/** Starts a run of `agent` on `stateMachineArn` for an API request. */
export async function startRun(event: APIGatewayProxyEvent, agent: AgentDefinition, stateMachineArn: string): Promise<APIGatewayProxyResult> {
  const body = parseBody(event, StartRunRequestSchema);
  if (!body.ok) return body.response;
  const headerKey = header(event, 'idempotency-key');
  if (headerKey !== undefined) {
    const parsed = IdempotencyKeySchema.safeParse(headerKey);
    if (!parsed.success) return problem(400, 'InvalidRequest', 'Idempotency-Key header is invalid', formatIssues(parsed.error).map((l) => l.replace('(root)', 'Idempotency-Key')));
  }
  const input = agent.input.safeParse(body.value.input);
  if (!input.success) {
    const issues = formatIssues(input.error).map((l) => (l.startsWith('(root)') ? l.replace('(root)', 'input') : `input.${l}`));
    return problem(400, 'InvalidInput', `input does not match the input schema of agent ${agent.name}`, issues);
  }
  const idempotencyKey = headerKey ?? body.value.idempotencyKey ?? randomUUID();
  const sessionId = sessionIdFor(agent.name, idempotencyKey);
  logStep({ agent: agent.name, sessionId });
  // The raw input (not the parsed one): Prepare validates it again, as it does for every trigger.
  const trigger: ApiTrigger = { source: 'api', sessionId, idempotencyKey, input: body.value.input };
  const executionInput = JSON.stringify(trigger);
  try {
    const out = await sfnClient().send(new StartExecutionCommand({ stateMachineArn, name: sessionId, input: executionInput }));
    logger.info('run started', { executionArn: out.executionArn });
    return json(202, { sessionId, executionArn: out.executionArn ?? '', created: true } satisfies StartRunResponse);
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists)) throw err;
    const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${sessionId}`;
    const existing = await sfnClient().send(new DescribeExecutionCommand({ executionArn }));
    if (existing.input !== undefined && JSON.stringify(JSON.parse(existing.input)) !== executionInput) {
      return problem(409, 'IdempotencyKeyReused', `idempotency key "${idempotencyKey}" already started a run with different input`);
    }
    return json(200, { sessionId, executionArn, created: false } satisfies StartRunResponse);
  }
}
