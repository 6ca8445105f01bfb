/**
 * Calls an HTTP tool's endpoint (a tool manifest's `implementation.http`) and
 * maps the outcome: a JSON answer is the result; what may pass (429, 5xx, a
 * timeout, a dropped connection, a cut-off body) is a {@link TransientError} the
 * RunTool Task retries; any other refusal is a {@link ToolError} the model sees.
 */
import type { HttpImplementation } from '../core/define';
import { ConfigurationError, ToolError, TransientError } from '../core/errors';

/** The most characters of an error answer's body a {@link ToolError} quotes. */
export const HTTP_TOOL_ERROR_BODY_CHARS = 500;

/** Statuses that are faults (retried), besides every 5xx: request timeout and throttling. */
const RETRYABLE_4XX: ReadonlySet<number> = new Set([408, 429]);
/** Statuses whose `Retry-After` header the fault's message quotes. */
const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);
/** Methods that send the input as query parameters instead of a JSON body. */
const QUERY_METHODS: ReadonlySet<HttpImplementation['method']> = new Set(['GET', 'DELETE']);

/** What {@link callHttpTool} needs besides the endpoint and the input. */
export interface HttpCallContext {
  /**
   * Sent as the `Idempotency-Key` header: the same for every retry of one call
   * (`ToolContext.idempotencyKey`), so the endpoint can refuse to repeat it.
   */
  readonly idempotencyKey: string;
  /**
   * Deadline of the whole request, ms: connecting, the answer, and reading its body
   * (the manifest's `timeout_ms`, `HttpImplementation.timeoutMs`).
   */
  readonly timeoutMs: number;
  /** The tool's name, for messages. */
  readonly toolName: string;
}

/**
 * Sends one tool call to its HTTP endpoint with global `fetch`. POST, PUT and
 * PATCH send the input as a JSON body; GET and DELETE send its top-level scalar
 * fields (string, number, boolean; null skipped) as query parameters, added to
 * those of the URL. Every request carries `content-type: application/json`,
 * `accept: application/json`, `Idempotency-Key: <context.idempotencyKey>` and the
 * manifest's headers; redirects are followed. Messages name the tool, the method
 * and the URL's origin, never the request headers, the URL's path or query, or the
 * input.
 * @param input the call's input, already validated against the tool's input schema
 * @returns the parsed JSON of a 2xx answer (`null` when its body is empty, as with 204 No Content)
 * @throws TransientError (retried by the Task) on 408, 429 and 5xx (the message
 *   quotes `Retry-After` for 429 and 503), on a timeout, on a dropped or refused
 *   connection, and on a 2xx whose body is cut off or is not JSON.
 * @throws ToolError (a result the model sees) on any other status, quoting the status
 *   and at most {@link HTTP_TOOL_ERROR_BODY_CHARS} characters of the body; and on a
 *   GET or DELETE input field that is an object or a list (it has no query form).
 * @throws ConfigurationError on a malformed URL or header (not retried).
 */
export async function callHttpTool(http: HttpImplementation, input: unknown, context: HttpCallContext): Promise<unknown> {
  const url = endpoint(http, context.toolName);
  // The origin only: a path or a query may hold a secret (webhook URLs do).
  const where = `${context.toolName}: ${http.method} ${url.origin}`;
  const sendsQuery = QUERY_METHODS.has(http.method);
  if (sendsQuery) addQuery(url, input, context.toolName);
  const headers = requestHeaders(http, context);

  let response: Response;
  try {
    response = await fetch(url, {
      method: http.method,
      headers,
      ...(sendsQuery ? {} : { body: JSON.stringify(input ?? {}) }),
      signal: AbortSignal.timeout(context.timeoutMs),
    });
  } catch (error) {
    throw requestFault(where, error, context.timeoutMs);
  }

  const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  if (response.ok) {
    let body: string;
    try {
      body = await response.text();
    } catch (error) {
      throw requestFault(where, error, context.timeoutMs, `answered ${status}, then the body`);
    }
    // A complete body of zero bytes (204 No Content, or `content-length: 0`) is no value; a cut-off one threw above.
    if (body === '') return null;
    try {
      return JSON.parse(body) as unknown;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new TransientError(`${where}: answered ${status} with a body that is not JSON (cut off or malformed, ${body.length} characters): ${reason}`, { cause: error });
    }
  }

  if (response.status >= 500 || RETRYABLE_4XX.has(response.status)) {
    // Release the connection; the body of a fault is not read.
    await response.body?.cancel().catch(() => undefined);
    const retryAfter = response.headers.get('retry-after');
    const quote = RETRY_AFTER_STATUSES.has(response.status) && retryAfter !== null ? ` (Retry-After: ${retryAfter.slice(0, 64)})` : '';
    throw new TransientError(`${where}: answered ${status}${quote}`);
  }

  let body = '';
  try {
    body = await response.text();
  } catch {
    // The status alone is the answer.
  }
  const excerpt = body.length > HTTP_TOOL_ERROR_BODY_CHARS ? `${body.slice(0, HTTP_TOOL_ERROR_BODY_CHARS)}…` : body;
  throw new ToolError(`${context.toolName}: the endpoint answered ${status}${excerpt ? `: ${excerpt}` : ''}`);
}

function endpoint(http: HttpImplementation, toolName: string): URL {
  try {
    return new URL(http.url);
  } catch (error) {
    throw new ConfigurationError(`${toolName}: the endpoint URL is not a valid URL`, { cause: error });
  }
}

/** The input's top-level scalar fields as query parameters of `url`. */
function addQuery(url: URL, input: unknown, toolName: string): void {
  if (typeof input !== 'object' || input === null) return;
  for (const [key, value] of Object.entries(input)) {
    if (value === null || value === undefined) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      url.searchParams.append(key, String(value));
    } else {
      throw new ToolError(`${toolName}: input field "${key}" is ${Array.isArray(value) ? 'a list' : 'an object'}, which cannot be sent as a query parameter; give a string, number or boolean`);
    }
  }
}

function requestHeaders(http: HttpImplementation, context: HttpCallContext): Headers {
  try {
    const headers = new Headers(http.headers);
    headers.set('content-type', 'application/json');
    headers.set('accept', 'application/json');
    headers.set('idempotency-key', context.idempotencyKey);
    return headers;
  } catch (error) {
    // The header's name or value stays out of the message.
    throw new ConfigurationError(`${context.toolName}: a request header is malformed`, { cause: error });
  }
}

/**
 * A timeout, a refused or dropped connection, or a cut-off body, as a retryable fault.
 * @param bodyOf set when the answer came and its body failed: `answered 200 OK, then the body`
 */
function requestFault(where: string, error: unknown, timeoutMs: number, bodyOf?: string): TransientError {
  const name = error instanceof Error ? error.name : '';
  const subject = bodyOf === undefined ? where : `${where}: ${bodyOf}`;
  if (name === 'TimeoutError' || name === 'AbortError') return new TransientError(`${subject}${bodyOf === undefined ? ':' : ''} timed out after ${timeoutMs} ms`, { cause: error });
  return new TransientError(`${subject}${bodyOf === undefined ? ': failed:' : ' was cut off:'} ${networkReason(error)}`, { cause: error });
}

/** `ECONNRESET`, `other side closed`, ...: the innermost cause's code or message. */
function networkReason(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth++) {
    const cause = current instanceof Error ? current.cause : undefined;
    if (!(cause instanceof Error)) break;
    current = cause;
  }
  if (!(current instanceof Error)) return String(current);
  const code = (current as Error & { code?: unknown }).code;
  return typeof code === 'string' && code !== '' ? `${current.message} (${code})` : current.message;
}
