/**
 * The OpenAI model provider: the runtime's model contract over the OpenAI Chat
 * Completions API (`POST {baseUrl}/chat/completions`, non-streaming), with the
 * official `openai` SDK. Works with any OpenAI-compatible server through `baseUrl`.
 *
 * Source: OpenAI API reference, "Chat Completions — Create chat completion"
 * (https://platform.openai.com/docs/api-reference/chat/create) and "Error codes".
 *
 * Request mapping (see {@link toChatMessages}):
 * - the system prompt is a leading `system` message (every OpenAI-compatible server
 *   accepts `system`; OpenAI treats it as `developer` for reasoning models);
 * - a user message's text blocks become one `user` message (joined with a newline);
 * - an assistant message becomes one `assistant` message: `content` is its text
 *   (joined with a newline, `null` when it has only tool calls) and each `tool_use`
 *   block a `tool_calls[]` entry whose `arguments` is the input as JSON text;
 * - each `tool_result` block becomes a `tool` message `{ tool_call_id, content }`.
 *   Chat Completions has no error flag on a tool message: `isError` is carried by the
 *   content itself, which in this runtime is already JSON `{"error":…,"message":…}`.
 *   A user message holding both results and text sends the `tool` messages first,
 *   then a `user` message with the text (OpenAI requires tool messages right after
 *   the assistant message that called them).
 *
 * Response mapping (see {@link toModelResponse}): `choices[0].message.content` and
 * `refusal` become text blocks, `tool_calls[]` (and the legacy `function_call`)
 * become `tool_use` blocks; `finish_reason` maps `stop`→`end_turn`,
 * `tool_calls`/`function_call`→`tool_use`, `length`→`max_tokens`,
 * `content_filter`→`refusal` (and a `refusal` with `stop`→`refusal`); the raw reason is
 * kept as `providerStopReason` whenever it is not `stop`, `tool_calls` or `length` mapped
 * one-to-one. Models do emit tool arguments that are not JSON (or
 * not a JSON object): such a call keeps `input: { _raw: "<the arguments>" }`, so the
 * runtime's argument validation rejects it with a field error the model can act on,
 * instead of failing the whole turn. Empty arguments (`""`, sent by some compatible
 * servers for tools without parameters) read as `{}`.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionFunctionTool,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
  ChatCompletionToolMessageParam,
} from 'openai/resources/chat/completions';
import { z } from 'zod';
import type { ContentBlock, Message, ModelProvider, ModelRequest, ModelResponse, StopReason, TextBlock, ToolSpec, ToolUseBlock } from '../../core/contracts/model';
import { ModelProviderError, type ProviderFaultKind } from '../../core/errors';
import { faultKindOfStatus, retryAfterMs } from '../../core/routing';

/**
 * The Chat Completions API root used when no `baseUrl` is given: OpenAI's, pinned
 * (the SDK would otherwise read `OPENAI_BASE_URL` from the environment).
 */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * `max_completion_tokens` sent when the request sets no `maxTokens`. OpenAI does not
 * require it (without it, the model's own output limit applies): 4096 is the runtime's
 * choice, the same as Anthropic's default (`ANTHROPIC_DEFAULT_MAX_TOKENS`), so that a
 * turn is bounded alike whichever provider serves it.
 */
export const OPENAI_DEFAULT_MAX_TOKENS = 4096;

/** How to reach the API. */
export interface OpenAiProviderOptions {
  /** API root, the SDK's `baseURL`: requests go to `{baseUrl}/chat/completions`. @default {@link OPENAI_DEFAULT_BASE_URL} */
  readonly baseUrl?: string;
  /**
   * Resolves the API key (sent as `Authorization: Bearer <key>`). Awaited on every call
   * (it is expected to cache); a rejection propagates unchanged. An empty key fails with
   * a `ModelProviderError` of kind `authentication`.
   */
  readonly apiKey: () => Promise<string>;
  /** Milliseconds one call may take, headers and body, before it fails with kind `timeout`. */
  readonly timeoutMs: number;
}

/**
 * A {@link ModelProvider} for the OpenAI Chat Completions API. The SDK client is
 * built on the first call, with `maxRetries: 0` (the runtime's router retries) and
 * `timeout: timeoutMs`, and reused by the instance while the key stays the same.
 */
export class OpenAiProvider implements ModelProvider {
  readonly name = 'openai';
  private current: { apiKey: string; client: OpenAI } | undefined;

  constructor(private readonly options: OpenAiProviderOptions) {}

  /**
   * Sends one Chat Completions request and maps its answer.
   * @throws ModelProviderError (provider `openai`) for every fault of the call: kind from
   *   the HTTP status (`faultKindOfStatus`), `timeout` past `timeoutMs`, `connection` when
   *   the connection fails or drops (also mid-body), `malformed_response` for a body that
   *   is not JSON, is cut off, or is not a chat completion (no `choices[0].message`, no `usage`).
   *   Its message names the model, status, error code and the provider's message, never
   *   the API key or the request's content.
   */
  async converse(request: ModelRequest): Promise<ModelResponse> {
    const { client, apiKey } = await this.sdkClient(request.modelId);
    // The SDK's timeout covers the wait for the headers only: this one covers the body too.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.options.timeoutMs);
    const call = client.chat.completions.create(toChatRequest(request), { signal: deadline.signal });
    // The head arrives before the body: kept to name the status and request id of a body that fails.
    const head = call.asResponse().then(
      (response) => ({ status: response.status, headers: response.headers }),
      () => undefined,
    );
    try {
      const { data, request_id: requestId } = await call.withResponse();
      return toModelResponse(data, requestId ?? undefined, request.modelId);
    } catch (error) {
      if (error instanceof ModelProviderError) throw error;
      const context = { modelId: request.modelId, timeoutMs: this.options.timeoutMs, response: await head, apiKey };
      if (deadline.signal.aborted) throw fault(`openai ${request.modelId}: no answer within ${this.options.timeoutMs} ms`, 'timeout', context, { cause: error });
      throw toProviderError(error, context);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the API key and builds the client, so that the first call's latency is the provider's alone. */
  async ready(): Promise<void> {
    await this.sdkClient('(ready)');
  }

  /**
   * The SDK client for the current key: the key is asked for on each call (the reader
   * caches it) and the client rebuilt only when it changed, so a rotated key is picked up.
   * @throws ModelProviderError kind `authentication` when the key is empty; whatever `apiKey()` throws.
   */
  private async sdkClient(modelId: string): Promise<{ apiKey: string; client: OpenAI }> {
    const apiKey = await this.options.apiKey();
    if (apiKey.trim() === '') {
      throw new ModelProviderError(`openai ${modelId}: the API key is empty`, { provider: 'openai', modelId, kind: 'authentication' });
    }
    if (this.current?.apiKey !== apiKey) {
      const client = new OpenAI({ apiKey, baseURL: this.options.baseUrl ?? OPENAI_DEFAULT_BASE_URL, maxRetries: 0, timeout: this.options.timeoutMs });
      this.current = { apiKey, client };
    }
    return this.current;
  }
}

// ---------------------------------------------------------------------------
// Request mapping

/** The Chat Completions request body of a runtime request. */
function toChatRequest(request: ModelRequest): ChatCompletionCreateParamsNonStreaming {
  return {
    model: request.modelId,
    messages: [{ role: 'system', content: request.system }, ...toChatMessages(request.messages)],
    max_completion_tokens: request.maxTokens ?? OPENAI_DEFAULT_MAX_TOKENS,
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    // OpenAI rejects an empty `tools` array: omitted when the agent offers none.
    ...(request.tools.length === 0 ? {} : { tools: request.tools.map(toFunctionTool) }),
  };
}

/** The runtime's messages as Chat Completions messages (without the system message). */
function toChatMessages(messages: readonly Message[]): ChatCompletionMessageParam[] {
  return messages.flatMap((message) => (message.role === 'assistant' ? [toAssistantMessage(message.content)] : toUserMessages(message.content)));
}

function toUserMessages(blocks: readonly ContentBlock[]): ChatCompletionMessageParam[] {
  const results: ChatCompletionToolMessageParam[] = [];
  for (const block of blocks) {
    if (block.type === 'tool_result') results.push({ role: 'tool', tool_call_id: block.toolUseId, content: block.content });
  }
  const texts = textsOf(blocks);
  if (texts.length === 0 && results.length > 0) return results;
  return [...results, { role: 'user', content: texts.join('\n') }];
}

function toAssistantMessage(blocks: readonly ContentBlock[]): ChatCompletionAssistantMessageParam {
  const toolCalls = blocks.filter((b): b is ToolUseBlock => b.type === 'tool_use').map(toToolCall);
  const texts = textsOf(blocks);
  const content = texts.length > 0 ? texts.join('\n') : toolCalls.length > 0 ? null : '';
  // OpenAI rejects an empty `tool_calls` array: omitted when there are none.
  return toolCalls.length === 0 ? { role: 'assistant', content } : { role: 'assistant', content, tool_calls: toolCalls };
}

function toToolCall(block: ToolUseBlock): ChatCompletionMessageFunctionToolCall {
  return { id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input) } };
}

function toFunctionTool(tool: ToolSpec): ChatCompletionFunctionTool {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.inputSchema } };
}

function textsOf(blocks: readonly ContentBlock[]): string[] {
  return blocks.filter((b): b is TextBlock => b.type === 'text').map((b) => b.text);
}

// ---------------------------------------------------------------------------
// Response mapping

/** The part of a `chat.completion` object the runtime reads; anything else is a malformed response. */
const ChatCompletionBodySchema = z.object({
  id: z.string().optional(),
  model: z.string(),
  choices: z
    .array(
      z.object({
        finish_reason: z.string().nullish(),
        message: z.object({
          content: z.string().nullish(),
          refusal: z.string().nullish(),
          tool_calls: z
            .array(z.object({ id: z.string().min(1), function: z.object({ name: z.string().min(1), arguments: z.string() }) }))
            .nullish(),
          function_call: z.object({ name: z.string().min(1), arguments: z.string() }).nullish(),
        }),
      }),
    )
    .min(1),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative() }),
  system_fingerprint: z.string().nullish(),
});
type ChatCompletionBody = z.infer<typeof ChatCompletionBodySchema>;
type ChatCompletionChoice = ChatCompletionBody['choices'][number];

/**
 * Maps a chat completion (its first choice) to the runtime's response.
 * @param requestId the `x-request-id` response header, when sent
 * @param requestedModelId the model the request named (for the error only)
 * @throws ModelProviderError kind `malformed_response` when the body is not a chat completion
 */
function toModelResponse(data: unknown, requestId: string | undefined, requestedModelId: string): ModelResponse {
  const parsed = ChatCompletionBodySchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`);
    throw new ModelProviderError(`openai ${requestedModelId}: malformed response (200): not a chat completion: ${problems.join('; ')}`, {
      provider: 'openai',
      modelId: requestedModelId,
      kind: 'malformed_response',
      status: 200,
      requestId,
    });
  }
  const body = parsed.data;
  const choice = body.choices[0] as ChatCompletionChoice;
  const content = contentOf(choice, body.id ?? 'chatcmpl');
  const hasToolCalls = content.some((b) => b.type === 'tool_use');
  const stopReason = stopReasonOf(choice.finish_reason, { toolCalls: hasToolCalls, refused: Boolean(choice.message.refusal) });
  const raw = choice.finish_reason ?? undefined;
  return {
    content,
    stopReason,
    usage: { inputTokens: body.usage.prompt_tokens, outputTokens: body.usage.completion_tokens },
    modelId: body.model,
    ...(requestId === undefined ? {} : { requestId }),
    ...(raw !== undefined && keepsProviderStopReason(raw, stopReason) ? { providerStopReason: raw } : {}),
    ...(body.system_fingerprint ? { systemFingerprint: body.system_fingerprint } : {}),
  };
}

function contentOf(choice: ChatCompletionChoice, completionId: string): ModelResponse['content'] {
  const { message } = choice;
  const blocks: ModelResponse['content'] = [];
  if (message.content) blocks.push({ type: 'text', text: message.content });
  if (message.refusal) blocks.push({ type: 'text', text: message.refusal });
  for (const call of message.tool_calls ?? []) blocks.push(toolUseOf(call.id, call.function.name, call.function.arguments));
  // The deprecated single `function_call` has no id: one is made from the completion's.
  if (message.function_call && !message.tool_calls?.length) {
    blocks.push(toolUseOf(`${completionId}_function_call`, message.function_call.name, message.function_call.arguments));
  }
  return blocks;
}

/** A tool call; arguments that are not a JSON object are kept as `{ _raw }` for the runtime's validation to reject. */
function toolUseOf(id: string, name: string, args: string): ToolUseBlock {
  return { type: 'tool_use', id, name, input: parseArguments(args) };
}

function parseArguments(args: string): Record<string, unknown> {
  if (args.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(args);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // not JSON: kept raw below
  }
  return { _raw: args };
}

const STOP_REASONS: Readonly<Record<string, StopReason>> = {
  stop: 'end_turn',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  length: 'max_tokens',
  content_filter: 'refusal',
};

/**
 * The runtime's stop reason of a `finish_reason`. A reason it does not know (some
 * compatible servers send their own), or none, reads like `stop`. `stop` with tool
 * calls (sent by some compatible servers) reads as `tool_use`; `stop` with a `refusal`
 * on the message as `refusal`.
 */
function stopReasonOf(finishReason: string | null | undefined, message: { toolCalls: boolean; refused: boolean }): StopReason {
  const mapped = (finishReason ? STOP_REASONS[finishReason] : undefined) ?? 'end_turn';
  if (mapped !== 'end_turn') return mapped;
  if (message.toolCalls) return 'tool_use';
  return message.refused ? 'refusal' : 'end_turn';
}

/** The `finish_reason`s that map one-to-one to a runtime stop reason. */
const PLAIN_STOP_REASONS: Readonly<Record<string, StopReason>> = { stop: 'end_turn', tool_calls: 'tool_use', length: 'max_tokens' };

/** `providerStopReason` is kept unless the raw reason is one of the three that map one-to-one and did map so. */
function keepsProviderStopReason(raw: string, stopReason: StopReason): boolean {
  return PLAIN_STOP_REASONS[raw] !== stopReason;
}

// ---------------------------------------------------------------------------
// Errors

interface FailureContext {
  readonly modelId: string;
  readonly timeoutMs: number;
  /** Status and headers, when the response's head arrived before the failure. */
  readonly response: { status: number; headers: Headers } | undefined;
  /** Removed from any message the provider sent back. */
  readonly apiKey: string | undefined;
}

/** The {@link ModelProviderError} of anything the SDK call threw. */
function toProviderError(error: unknown, context: FailureContext): ModelProviderError {
  const prefix = `openai ${context.modelId}`;
  if (error instanceof APIConnectionTimeoutError) {
    return fault(`${prefix}: no answer within ${context.timeoutMs} ms`, 'timeout', context, { cause: error });
  }
  if (error instanceof APIConnectionError) {
    return fault(`${prefix}: connection failed: ${causeMessage(error)}`, 'connection', context, { cause: error });
  }
  if (error instanceof APIError && typeof error.status === 'number') return httpFault(error as APIError, error.status, context);
  if (error instanceof APIError) {
    return fault(`${prefix}: connection failed: ${error.message}`, 'connection', context, { cause: error });
  }
  if (error instanceof SyntaxError) {
    return fault(`${prefix}: malformed response${statusText(context)}: the body is not valid JSON (cut off or not JSON)`, 'malformed_response', context, { cause: error });
  }
  if (isNetworkFailure(error)) {
    return fault(`${prefix}: connection dropped${statusText(context)} while reading the body: ${causeMessage(error)}`, 'connection', context, { cause: error });
  }
  return fault(`${prefix}: malformed response${statusText(context)}: ${error instanceof Error ? error.message : String(error)}`, 'malformed_response', context, { cause: error });
}

/**
 * An HTTP error status. The SDK's error (which holds the provider's body) is not kept
 * as `cause`: every fact the audit needs is copied, and the body could echo the key.
 */
function httpFault(error: APIError, status: number, context: FailureContext): ModelProviderError {
  const body = error.error as { message?: unknown } | undefined;
  const providerMessage = typeof body?.message === 'string' ? body.message : error.message.replace(new RegExp(`^${status} (status code )?`), '');
  const code = error.code ?? error.type;
  const message = `openai ${context.modelId}: ${status}${code ? ` ${code}` : ''}: ${redact(providerMessage, context.apiKey)}`;
  return fault(message, faultKindOfStatus(status), { ...context, response: { status, headers: error.headers ?? new Headers() } }, {});
}

function fault(message: string, kind: ProviderFaultKind, context: FailureContext, extra: { cause?: unknown }): ModelProviderError {
  const headers = context.response?.headers;
  const requestId = headers?.get('x-request-id') ?? undefined;
  const wait = headers ? retryAfterMs((name) => headers.get(name), Date.now()) : undefined;
  return new ModelProviderError(message, {
    provider: 'openai',
    modelId: context.modelId,
    kind,
    status: context.response?.status,
    retryAfterMs: wait,
    ...(requestId ? { requestId } : {}),
    ...extra,
  });
}

const MAX_PROVIDER_MESSAGE = 300;

/** The provider's message without the key (nor anything shaped like an OpenAI key), shortened. */
function redact(text: string, apiKey: string | undefined): string {
  let clean = apiKey ? text.split(apiKey).join('[redacted]') : text;
  clean = clean.replace(/\bsk-[\w*-]{6,}/g, '[redacted]');
  return clean.length > MAX_PROVIDER_MESSAGE ? `${clean.slice(0, MAX_PROVIDER_MESSAGE)}…` : clean;
}

function statusText(context: FailureContext): string {
  return context.response ? ` (${context.response.status})` : '';
}

/** Whether an error (or a cause of it) is undici's: a socket closed, reset or refused (`terminated`, `UND_ERR_*`, `E*` codes). */
function isNetworkFailure(error: unknown): error is Error {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^(UND_ERR|E[A-Z]+$)/.test(code)) return true;
    if (current instanceof TypeError && (current.message === 'terminated' || current.message === 'fetch failed')) return true;
  }
  return false;
}

/** The innermost message of an error's cause chain (e.g. `other side closed`). */
function causeMessage(error: Error): string {
  let current: Error = error;
  for (let depth = 0; current.cause instanceof Error && depth < 5; depth++) current = current.cause;
  return current.message;
}
