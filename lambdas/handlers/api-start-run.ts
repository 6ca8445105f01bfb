/**
 * POST /agents/{agent}/runs: starts a run. The session id is derived from the
 * agent and the caller's idempotency key (`Idempotency-Key` header or
 * `idempotencyKey` in the body; a random one when absent) and is the execution
 * name, so Step Functions itself refuses a second execution for the same key.
 *
 * Answers 202 `{sessionId, executionArn, created: true}`; 200 with `created:
 * false` when the key already started this run with the same input; 400 naming
 * the fields; 404 for an unknown agent; 409 when the key was used with other input.
 */
import { randomUUID } from 'node:crypto';
import { DescribeExecutionCommand, ExecutionAlreadyExists, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { sfnClient } from '../adapters/clients';
import { requireJsonMapEnv } from '../adapters/config';
import { header, json, parseBody, problem } from '../adapters/http';
import { IdempotencyKeySchema, StartRunRequestSchema, type StartRunResponse } from '../core/contracts/api';
import { ENV } from '../core/env-names';
import { sessionIdFor } from '../core/ids';
import type { ApiTrigger } from '../core/trigger';
import { formatIssues } from '../core/validation';
import { logger, logStep } from '../observability/powertools';

const stateMachines = requireJsonMapEnv(ENV.stateMachines);

export async function handler(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
  logger.addContext(context);
  const agent = event.pathParameters?.agent ?? '';
  const stateMachineArn = stateMachines[agent];
  if (!stateMachineArn) return problem(404, 'UnknownAgent', `no agent named "${agent}"; known: ${Object.keys(stateMachines).join(', ')}`);
  const body = parseBody(event, StartRunRequestSchema);
  if (!body.ok) return body.response;
  const headerKey = header(event, 'idempotency-key');
  if (headerKey !== undefined) {
    const parsed = IdempotencyKeySchema.safeParse(headerKey);
    if (!parsed.success) return problem(400, 'InvalidRequest', 'Idempotency-Key header is invalid', formatIssues(parsed.error).map((l) => l.replace('(root)', 'Idempotency-Key')));
  }
  const idempotencyKey = headerKey ?? body.value.idempotencyKey ?? randomUUID();
  const sessionId = sessionIdFor(agent, idempotencyKey);
  logStep({ agent, sessionId });
  const trigger: ApiTrigger = { source: 'api', sessionId, idempotencyKey, input: body.value.input };
  const input = JSON.stringify(trigger);
  try {
    const out = await sfnClient().send(new StartExecutionCommand({ stateMachineArn, name: sessionId, input }));
    logger.info('run started', { executionArn: out.executionArn });
    return json(202, { sessionId, executionArn: out.executionArn ?? '', created: true } satisfies StartRunResponse);
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists)) throw err;
    const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${sessionId}`;
    const existing = await sfnClient().send(new DescribeExecutionCommand({ executionArn }));
    if (existing.input !== undefined && JSON.stringify(JSON.parse(existing.input)) !== input) {
      return problem(409, 'IdempotencyKeyReused', `idempotency key "${idempotencyKey}" already started a run with different input`);
    }
    return json(200, { sessionId, executionArn, created: false } satisfies StartRunResponse);
  }
}
