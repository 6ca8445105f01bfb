/**
 * POST /agents/{agent}/runs for a name no agent has: 404 naming the agents there
 * are. (Each deployed agent has its own resource, /agents/<name>/runs.)
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { requireEnv } from '../adapters/config';
import { problem } from '../adapters/http';
import { ENV } from '../core/env-names';
import { logger } from '../observability/powertools';

const known = requireEnv(ENV.agentNames).split(',').filter(Boolean);

/** POST /agents/{agent}/runs for an agent that is not deployed: the Lambda proxy entry (404 listing the deployed agents). */
export async function handler(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
  logger.addContext(context);
  const agent = event.pathParameters?.agent ?? '';
  return problem(404, 'UnknownAgent', `no agent named "${agent}"; known: ${known.join(', ') || '(none)'}`);
}
