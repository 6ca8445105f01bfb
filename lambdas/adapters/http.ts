/** API Gateway (REST, Lambda proxy) request parsing and responses. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { z } from 'zod';
import { formatIssues } from '../core/validation';

/** A JSON response. */
export function json(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** A problem response: `{error, message, issues?}`. */
export function problem(statusCode: number, error: string, message: string, issues?: string[]): APIGatewayProxyResult {
  return json(statusCode, issues ? { error, message, issues } : { error, message });
}

/**
 * Parses the JSON body against a schema.
 * @returns the value, or a 400 answer naming the fields.
 */
export function parseBody<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S): { ok: true; value: z.infer<S> } | { ok: false; response: APIGatewayProxyResult } {
  let raw: unknown;
  try {
    const text = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    raw = text ? JSON.parse(text) : {};
  } catch {
    return { ok: false, response: problem(400, 'InvalidRequest', 'body is not valid JSON') };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, response: problem(400, 'InvalidRequest', 'body does not match the schema', formatIssues(parsed.error)) };
  return { ok: true, value: parsed.data };
}

/** A header, case-insensitively. */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) if (key.toLowerCase() === wanted && value) return value;
  return undefined;
}
