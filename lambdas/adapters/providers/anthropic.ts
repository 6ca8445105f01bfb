/**
 * The Anthropic model provider: one non-streaming call of the Messages API
 * (`POST /v1/messages`) per turn, through the official SDK (`@anthropic-ai/sdk`).
 *
 * The wire format follows the Anthropic Messages API documentation
 * (https://docs.anthropic.com/en/api/messages): the request's `system`, `messages`
 * (content blocks `text`, `tool_use`, `tool_result`), `tools` (`name`,
 * `description`, `input_schema`), `max_tokens` and `temperature`; the response's
 * `model`, `content`, `stop_reason` and `usage`, and the `request-id` header.
 * Errors follow the documented envelope `{"type":"error","error":{"type","message"}}`.
 *
 * The SDK's own retries are off (`maxRetries: 0`): the runtime's router retries,
 * backs off and falls back. Every failure is thrown as a {@link ModelProviderError}.
 */
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError } from '@anthropic-ai/sdk';
import type { ContentBlockParam, MessageCreateParamsNonStreaming, MessageParam, Tool } from '@anthropic-ai/sdk/resources/messages';
import { z } from 'zod';
import { StopReasonSchema, type ContentBlock, type Message, type ModelProvider, type ModelRequest, type ModelResponse, type StopReason, type ToolSpec } from '../../core/contracts/model';
import { ModelProviderError, type ProviderFaultKind } from '../../core/errors';
import { faultKindOfStatus, retryAfterMs } from '../../core/routing';

/**
 * `max_tokens` sent when the request sets no `maxTokens`. The Messages API requires
 * `max_tokens` and has no default of its own: 4096 is the runtime's choice, enough for
 * a turn's answer or tool calls, and within every current Claude model's output limit.
 */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** How to reach the Messages API. */
export interface AnthropicProviderOptions {
  /** API root, e.g. a proxy or a test server. @default the SDK's (`ANTHROPIC_BASE_URL`, else `https://api.anthropic.com`) */
  readonly baseUrl?: string;
  /**
   * Resolves the API key, sent as the `x-api-key` header (and no `Authorization`).
   * Awaited on every call (it is expected to cache): the client is rebuilt when the key
   * changed, so a rotated key is picked up; a rejection propagates unchanged and the next
   * call asks again. An empty key fails with a `ModelProviderError` of kind `authentication`.
   */
  readonly apiKey: () => Promise<string>;
  /**
   * Milliseconds one call may take, from sending the request to the last byte of the
   * body. The SDK's `timeout` covers the wait for the response headers; a deadline of
   * the same length covers the body too.
   */
  readonly timeoutMs: number;
}

/**
 * A {@link ModelProvider} for the Anthropic Messages API.
 *
 * Stop reasons map 1:1 except `pause_turn` → `end_turn`,
 * `model_context_window_exceeded` → `max_tokens` and any unknown value → `end_turn`;
 * `providerStopReason` then keeps the value as Anthropic sent it.
 * The response's `modelId` is the `model` Anthropic reports (id and version), and
 * `requestId` its `request-id` header. Content blocks other than `text` and
 * `tool_use` (e.g. `thinking`) are dropped.
 */
export class AnthropicProvider implements ModelProvider {
  /** The provider's name in routes, health keys and errors. */
  readonly name = 'anthropic';
  private connection: Connection | undefined;

  constructor(private readonly options: AnthropicProviderOptions) {}

  /**
   * Sends one Messages API call and maps its answer.
   * @throws ModelProviderError (`provider: 'anthropic'`, `modelId` the request's) for every
   * failure: an HTTP error status (kind from `faultKindOfStatus`, with `status`,
   * `retryAfterMs` and `requestId`); `timeout` past `timeoutMs`; `connection` when the
   * connection is refused, reset or dropped (also mid-body); `malformed_response` for a
   * body that is not JSON, is cut off, or lacks the documented fields; `authentication`
   * when the API key is empty (a fault reading it comes through as it is); `invalid_request` (terminal) for any other failure
   * (an SDK or programming error). The message names the model and the fault, never
   * the API key or the request's content.
   */
  async converse(request: ModelRequest): Promise<ModelResponse> {
    // A fault reading the key (a Secrets Manager throttle) comes through as it is: the router counts it transient.
    const connection = await this.connect(request.modelId);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.options.timeoutMs);
    const call = connection.client.messages.create(toWireRequest(request), { signal: deadline.signal });
    try {
      const { data, request_id: requestId } = await call.withResponse();
      return toModelResponse(data, requestId ?? undefined);
    } catch (error) {
      const timedOut = deadline.signal.aborted;
      clearTimeout(timer);
      // Resolves when the headers had arrived (a body that failed to read or parse).
      const response = await call.asResponse().catch(() => undefined);
      throw toProviderError(error, { modelId: request.modelId, response, timedOut, timeoutMs: this.options.timeoutMs, apiKey: connection.apiKey });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the API key and builds the client, so that the first call's latency is the provider's alone. */
  async ready(): Promise<void> {
    await this.connect('(ready)');
  }

  /**
   * The client for the current key: the key is read at every call (the reader caches
   * it: a rotated key is picked up when the cache expires), the client rebuilt only
   * when the key changed.
   */
  private async connect(modelId: string): Promise<Connection> {
    const apiKey = await this.options.apiKey();
    if (this.connection?.apiKey === apiKey) return this.connection;
    this.connection = this.createConnection(apiKey, modelId);
    return this.connection;
  }

  private createConnection(apiKey: string, modelId: string): Connection {
    if (apiKey.trim() === '') throw new ModelProviderError(`anthropic ${modelId}: the API key is empty`, { provider: 'anthropic', modelId, kind: 'authentication' });
    const client = new Anthropic({
      apiKey,
      // The documented header (Messages API docs, "Authentication"); this SDK version
      // would send the key as `Authorization: Bearer` instead.
      defaultHeaders: { 'x-api-key': apiKey, authorization: null },
      maxRetries: 0,
      timeout: this.options.timeoutMs,
      ...(this.options.baseUrl === undefined ? {} : { baseURL: this.options.baseUrl }),
    });
    return { client, apiKey };
  }
}

interface Connection {
  readonly client: Anthropic;
  readonly apiKey: string;
}

// ---- request ----

/** The Messages API request body of a runtime request. */
function toWireRequest(request: ModelRequest): MessageCreateParamsNonStreaming {
  return {
    model: request.modelId,
    max_tokens: request.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
    messages: request.messages.map(toWireMessage),
    ...(request.system === '' ? {} : { system: request.system }),
    ...(request.tools.length === 0 ? {} : { tools: request.tools.map(toWireTool) }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  };
}

function toWireMessage(message: Message): MessageParam {
  return { role: message.role, content: message.content.map(toWireBlock) };
}

function toWireBlock(block: ContentBlock): ContentBlockParam {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text };
    case 'tool_use':
      return { type: 'tool_use', id: block.id, name: block.name, input: block.input };
    case 'tool_result':
      return { type: 'tool_result', tool_use_id: block.toolUseId, content: block.content, is_error: block.isError };
  }
}

function toWireTool(tool: ToolSpec): Tool {
  return { name: tool.name, description: tool.description, input_schema: tool.inputSchema as Tool['input_schema'] };
}

// ---- response ----

/** The fields of a Messages API response the runtime reads; anything else is ignored. */
const WireResponseSchema = z.object({
  type: z.literal('message'),
  model: z.string().min(1),
  content: z.array(z.looseObject({ type: z.string() })),
  stop_reason: z.string(),
  usage: z.object({ input_tokens: z.number().int().nonnegative(), output_tokens: z.number().int().nonnegative() }),
});
const WireTextBlockSchema = z.object({ type: z.literal('text'), text: z.string() });
const WireToolUseBlockSchema = z.object({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});
const WireAnswerBlockSchema = z.discriminatedUnion('type', [WireTextBlockSchema, WireToolUseBlockSchema]);

/** Anthropic stop reasons that are not the runtime's, and what they mean to it. */
const STOP_REASON_EQUIVALENTS: Readonly<Record<string, StopReason>> = {
  pause_turn: 'end_turn',
  model_context_window_exceeded: 'max_tokens',
};
/** The runtime's stop reasons, which Anthropic sends as they are. */
const RUNTIME_STOP_REASONS: ReadonlySet<string> = new Set<StopReason>(StopReasonSchema.options);

/** A 200 whose body is not a Messages API response. */
class MalformedResponseError extends Error {
  override readonly name = 'MalformedResponseError';
}

function toModelResponse(data: unknown, requestId: string | undefined): ModelResponse {
  const parsed = WireResponseSchema.safeParse(data);
  if (!parsed.success) throw new MalformedResponseError(describeIssues(parsed.error));
  const wire = parsed.data;
  const stopReason = toStopReason(wire.stop_reason);
  return {
    content: toAnswerBlocks(wire.content),
    stopReason,
    usage: { inputTokens: wire.usage.input_tokens, outputTokens: wire.usage.output_tokens },
    modelId: wire.model,
    ...(requestId === undefined ? {} : { requestId }),
    ...(stopReason === wire.stop_reason ? {} : { providerStopReason: wire.stop_reason }),
  };
}

/** `text` and `tool_use` blocks, in order; other block types (`thinking`, server tools) are dropped. */
function toAnswerBlocks(blocks: readonly { type: string }[]): ModelResponse['content'] {
  return blocks.flatMap((block, index) => {
    if (block.type !== 'text' && block.type !== 'tool_use') return [];
    const parsed = WireAnswerBlockSchema.safeParse(block);
    if (!parsed.success) throw new MalformedResponseError(describeIssues(parsed.error, `content.${index}`));
    return [parsed.data];
  });
}

function toStopReason(wire: string): StopReason {
  if (RUNTIME_STOP_REASONS.has(wire)) return wire as StopReason;
  return STOP_REASON_EQUIVALENTS[wire] ?? 'end_turn';
}

function describeIssues(error: z.ZodError, prefix?: string): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${[prefix, ...issue.path.map(String)].filter((p) => p !== undefined).join('.') || 'body'}: ${issue.message}`)
    .join('; ');
}

// ---- errors ----

/** Longest provider or transport message kept in an error message. */
const MAX_DETAIL_CHARS = 300;

interface FailureContext {
  readonly modelId: string;
  /** The HTTP response, when its headers arrived. */
  readonly response: Response | undefined;
  /** Whether the call's deadline fired. */
  readonly timedOut: boolean;
  readonly timeoutMs: number;
  readonly apiKey: string;
}

interface Fault {
  readonly kind: ProviderFaultKind;
  readonly detail: string;
  readonly status?: number;
  readonly headers?: Headers;
}

/**
 * The {@link ModelProviderError} of a failed call. The SDK throws `APIError` subclasses
 * for an error status, `APIConnectionTimeoutError` when no headers arrive in time,
 * `APIConnectionError` when the connection fails before the headers, and lets body
 * failures through as they are: `SyntaxError` (not JSON, cut off), a `TypeError`
 * from fetch (the connection dropped mid-body), an `AbortError` (the deadline fired).
 */
function toProviderError(error: unknown, context: FailureContext): ModelProviderError {
  const fault = classify(error, context);
  const headers = fault.headers ?? context.response?.headers;
  const status = fault.status ?? context.response?.status;
  const requestId = headers?.get('request-id') ?? undefined;
  const retryAfter = fault.status === undefined || headers === undefined ? undefined : retryAfterMs((name) => headers.get(name), Date.now());
  const message = redact(`anthropic ${context.modelId}: ${fault.detail}`, context.apiKey);
  return new ModelProviderError(message, {
    provider: 'anthropic',
    modelId: context.modelId,
    kind: fault.kind,
    cause: error,
    // The constructor leaves out what is undefined.
    status,
    retryAfterMs: retryAfter,
    requestId,
  });
}

function classify(error: unknown, context: FailureContext): Fault {
  if (isStatusError(error)) return statusFault(error);
  if (context.timedOut || error instanceof APIConnectionTimeoutError) {
    return { kind: 'timeout', detail: `no complete answer within ${context.timeoutMs} ms` };
  }
  if (error instanceof APIConnectionError) return { kind: 'connection', detail: `connection failed (${transportDetail(error)})` };
  if (error instanceof MalformedResponseError) return { kind: 'malformed_response', detail: `malformed response: ${error.message}` };
  if (error instanceof SyntaxError) return { kind: 'malformed_response', detail: 'malformed response: the body is not complete JSON' };
  if (error instanceof TypeError && context.response !== undefined) {
    return { kind: 'connection', detail: `connection dropped while reading the body (${transportDetail(error)})` };
  }
  return { kind: 'invalid_request', detail: `unexpected failure: ${errorName(error)}: ${transportDetail(error)}` };
}

/** An `APIError` that carries an HTTP status (the provider answered), as opposed to a connection failure. */
function isStatusError(error: unknown): error is APIError<number, Headers> {
  return error instanceof APIError && typeof (error as APIError).status === 'number';
}

function statusFault(error: APIError<number, Headers>): Fault {
  const status = error.status;
  // The envelope's `error.message`, else the SDK's message (`<status> <body text>`) without its status.
  const message = error.apiMessage ?? error.message.replace(/^\d{3}\s*/, '');
  const type = error.type === null ? '' : ` ${error.type}`;
  return { kind: faultKindOfStatus(status), status, headers: error.headers, detail: `${status}${type}: ${clip(message) || 'no message'}` };
}

/** The innermost message of an error's `cause` chain (undici's `other side closed`, `ECONNREFUSED`). */
function transportDetail(error: unknown): string {
  let current: unknown = error;
  let message = error instanceof Error ? error.message : String(error);
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) {
    current = current.cause;
    if (current instanceof Error && current.message !== '') message = current.message;
  }
  return clip(message);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function clip(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS)}…` : line;
}

/** The message with every occurrence of the API key replaced (a provider may echo it). */
function redact(message: string, apiKey: string): string {
  return apiKey.length < 8 ? message : message.split(apiKey).join('[redacted]');
}
