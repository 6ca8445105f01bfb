/** Placeholder until the control API lands (resume, cancel, rollback). */
import type { APIGatewayProxyResult } from 'aws-lambda';
import { problem } from '../adapters/http';

export async function handler(): Promise<APIGatewayProxyResult> {
  return problem(501, 'NotImplemented', 'not implemented yet');
}
