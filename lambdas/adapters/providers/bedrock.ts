/**
 * The Amazon Bedrock model provider: one call of the Converse API
 * (`POST /model/{modelId}/converse`, Amazon Bedrock API Reference, "Converse")
 * per {@link ModelRequest}, through the AWS SDK v3 `BedrockRuntimeClient`.
 *
 * - Requests are SigV4-signed with the SDK's default credential chain (in Lambda,
 *   the function's role; `bedrock:InvokeModel` is granted on the model).
 * - The SDK never retries (`maxAttempts: 1`): the runtime's router retries, with
 *   backoff, and falls back to the next model (`core/routing.ts`).
 * - Every failure is a {@link ModelProviderError} whose `kind` the router acts on.
 */
import {
  BedrockRuntimeClient,
  ConverseCommand,
  type ContentBlock as BedrockContentBlock,
  type ConverseCommandInput,
  type InferenceConfiguration,
  type Message as BedrockMessage,
  type ToolConfiguration,
  type ToolUseBlock as BedrockToolUseBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { z } from 'zod';
import type {
  ContentBlock,
  Message,
  ModelProvider,
  ModelRequest,
  ModelResponse,
  StopReason,
  TextBlock,
  ToolResultBlock,
  ToolSpec,
  ToolUseBlock,
} from '../../core/contracts/model';
import { ModelProviderError, type ProviderFaultKind } from '../../core/errors';
import { faultKindOfStatus, retryAfterMs } from '../../core/routing';
import { tracer } from '../../observability/powertools';

/** Options of a {@link BedrockProvider}. */
export interface BedrockProviderOptions {
  /** AWS region of the Bedrock Runtime endpoint. @default the SDK's (`AWS_REGION`) */
  readonly region?: string;
  /**
   * Endpoint URL override: a VPC endpoint, a test server.
   * @default the SDK's (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL`, else the regional endpoint)
   */
  readonly endpoint?: string;
  /**
   * Milliseconds one call may take, from signing to the last byte of the body; past
   * it the call is aborted and fails with kind `timeout` (the route's `timeoutMs`).
   */
  readonly timeoutMs: number;
  /** A client to use instead of building one (`region`, `endpoint` are then ignored). */
  readonly client?: BedrockRuntimeClient;
}

/** The Converse stop reasons with a runtime equivalent; any other maps to `end_turn`. */
const STOP_REASONS: Readonly<Record<string, StopReason>> = {
  end_turn: 'end_turn',
  tool_use: 'tool_use',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  guardrail_intervened: 'refusal',
  content_filtered: 'refusal',
  model_context_window_exceeded: 'max_tokens',
};

/**
 * Fault kinds by Bedrock exception name (Converse API reference, "Errors"; the
 * `x-amzn-errortype` header or the body's `__type`/`code`). Names not listed are
 * judged by their HTTP status.
 */
const FAULT_KIND_BY_EXCEPTION: Readonly<Record<string, ProviderFaultKind>> = {
  ThrottlingException: 'throttled',
  // "Your request exceeds the service quota for your account … resubmit your request later" (400).
  ServiceQuotaExceededException: 'throttled',
  ServiceUnavailableException: 'overloaded',
  ModelNotReadyException: 'overloaded',
  InternalServerException: 'server_error',
  ModelErrorException: 'server_error',
  ModelTimeoutException: 'timeout',
  ValidationException: 'invalid_request',
  AccessDeniedException: 'permission',
  UnrecognizedClientException: 'authentication',
  ExpiredTokenException: 'authentication',
  InvalidSignatureException: 'authentication',
  IncompleteSignatureException: 'authentication',
  MissingAuthenticationTokenException: 'authentication',
  // The SDK's credential chain found no credentials: the call was never sent.
  CredentialsProviderError: 'authentication',
  ResourceNotFoundException: 'not_found',
};

/** Node socket error codes of a connection that failed or dropped. */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Longest provider message kept in a {@link ModelProviderError}'s message. */
const MAX_MESSAGE_CHARS = 300;

/** The part of a Converse response the runtime reads; anything else in it is ignored. */
const ConverseOutputSchema = z.object({
  output: z.object({ message: z.object({ content: z.array(z.record(z.string(), z.unknown())) }) }),
  stopReason: z.string(),
  usage: z.object({ inputTokens: z.number().int().nonnegative(), outputTokens: z.number().int().nonnegative() }),
});
const TextWireSchema = z.object({ text: z.string() });
const ToolUseWireSchema = z.object({
  toolUse: z.object({ toolUseId: z.string().min(1), name: z.string().min(1), input: z.record(z.string(), z.unknown()) }),
});

/** A 2xx response the runtime cannot read: thrown inside the adapter, reported as `malformed_response`. */
class MalformedConverseResponse extends Error {
  override readonly name = 'MalformedConverseResponse';
}

/** The facts of an SDK error that classify it, read defensively (the SDK decorates plain `Error`s). */
interface SdkErrorFacts {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly status?: number;
  readonly requestId?: string;
  readonly header: (name: string) => string | undefined;
}

/**
 * Amazon Bedrock, Converse API (non-streaming).
 *
 * Request mapping: `system` → `system: [{text}]` (omitted when empty); text blocks →
 * `{text}`; `tool_use` → `{toolUse: {toolUseId, name, input}}`; `tool_result` →
 * `{toolResult: {toolUseId, content: [{text}], status: 'error' | 'success'}}`;
 * `maxTokens`/`temperature` → `inferenceConfig`; tools → `toolConfig.tools[].toolSpec`
 * with `inputSchema: {json}`, sent only when tools are offered; with no tool offered,
 * `tool_use` and `tool_result` blocks are sent as text blocks instead, since Converse
 * refuses tool blocks without a `toolConfig` (see `toConverseInput`).
 *
 * Response mapping: `output.message.content` text and `toolUse` blocks (other blocks,
 * e.g. `reasoningContent`, are dropped); `stopReason` `end_turn`, `tool_use`,
 * `max_tokens`, `stop_sequence` as they are, `guardrail_intervened` and
 * `content_filtered` → `refusal`, `model_context_window_exceeded` → `max_tokens`,
 * anything else → `end_turn`, the raw value kept in `providerStopReason` whenever
 * it is not a runtime value; `usage.inputTokens`/`outputTokens`; `requestId` from
 * `x-amzn-requestid`. Converse does not report a model id: `modelId` is the
 * requested one, which names the version (e.g. `anthropic.claude-sonnet-4-5-20250929-v1:0`).
 *
 * @throws ModelProviderError with `provider: 'bedrock'` for every failure: by
 * Bedrock exception name (see `FAULT_KIND_BY_EXCEPTION`), else by HTTP status
 * (`faultKindOfStatus`); `timeout` past `timeoutMs`; `connection` for a refused,
 * reset or dropped connection; `malformed_response` for a 2xx body that is not
 * JSON, is cut off, or lacks `output.message`, `stopReason` or `usage`.
 */
export class BedrockProvider implements ModelProvider {
  readonly name = 'bedrock';
  private readonly client: BedrockRuntimeClient;
  private readonly timeoutMs: number;

  /**
   * Builds the client, unless one is given: HTTP/1.1 (`NodeHttpHandler`; the SDK's
   * default for Bedrock Runtime is an HTTP/2 handler, which only the bidirectional
   * streaming operation needs and which cannot talk to an HTTP/1.1 endpoint), no SDK
   * retries (`maxAttempts: 1`), traced by Powertools (`tracer.captureAWSv3Client`).
   * `timeoutMs` applies to a given client too: each call is sent with an
   * `AbortSignal.timeout(timeoutMs)`, which, unlike the handler's `requestTimeout`
   * (time to the headers only, and a warning unless `throwOnRequestTimeout`), also
   * bounds a body that stalls.
   */
  constructor(options: BedrockProviderOptions) {
    this.timeoutMs = options.timeoutMs;
    this.client = options.client ?? buildClient(options);
  }

  /** Sends one Converse request. @throws ModelProviderError */
  async converse(request: ModelRequest): Promise<ModelResponse> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    let output: unknown;
    try {
      output = await this.client.send(new ConverseCommand(toConverseInput(request)), { abortSignal: deadline });
    } catch (error) {
      throw toProviderError(error, request.modelId, { timedOut: deadline.aborted, timeoutMs: this.timeoutMs });
    }
    try {
      return toModelResponse(output, request.modelId);
    } catch (error) {
      throw malformedResponseError(error, output, request.modelId);
    }
  }
}

function buildClient(options: BedrockProviderOptions): BedrockRuntimeClient {
  const client = new BedrockRuntimeClient({
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  });
  return tracer.captureAWSv3Client(client);
}

/**
 * The Converse request of a runtime request (see {@link BedrockProvider}).
 *
 * `toolConfig` is sent only when tools are offered. Converse refuses (400
 * `ValidationException`: "The toolConfig field must be defined when using toolUse and
 * toolResult content blocks.") any request whose messages hold `toolUse` or
 * `toolResult` blocks without a `toolConfig`, which a conversation reaches when
 * policies or budgets leave no tool to offer after earlier tool calls. Offering the
 * past tools again would let the model call a revoked tool, so with no tool offered
 * those blocks are sent as text instead (see {@link toolBlockAsText}): one block for
 * one block, so the messages keep their roles and still alternate.
 */
function toConverseInput(request: ModelRequest): ConverseCommandInput {
  const inferenceConfig = inferenceConfigOf(request);
  const offersTools = request.tools.length > 0;
  return {
    modelId: request.modelId,
    messages: request.messages.map((message) => toBedrockMessage(message, offersTools)),
    ...(request.system === '' ? {} : { system: [{ text: request.system }] }),
    ...(inferenceConfig ? { inferenceConfig } : {}),
    ...(offersTools ? { toolConfig: toolConfigOf(request.tools) } : {}),
  };
}

function inferenceConfigOf(request: ModelRequest): InferenceConfiguration | undefined {
  if (request.maxTokens === undefined && request.temperature === undefined) return undefined;
  return {
    ...(request.maxTokens === undefined ? {} : { maxTokens: request.maxTokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  };
}

function toolConfigOf(tools: readonly ToolSpec[]): ToolConfiguration {
  return {
    tools: tools.map((tool) => ({ toolSpec: { name: tool.name, description: tool.description, inputSchema: { json: asDocument(tool.inputSchema) } } })),
  };
}

/** @param toolBlocks whether tool blocks may be sent as such (a `toolConfig` is sent), else they are sent as text. */
function toBedrockMessage(message: Message, toolBlocks: boolean): BedrockMessage {
  return { role: message.role, content: message.content.map((block) => (toolBlocks || block.type === 'text' ? toBedrockBlock(block) : toolBlockAsText(block))) };
}

function toBedrockBlock(block: ContentBlock): BedrockContentBlock {
  switch (block.type) {
    case 'text':
      return { text: block.text };
    case 'tool_use':
      return { toolUse: { toolUseId: block.id, name: block.name, input: asDocument(block.input) } };
    case 'tool_result':
      return { toolResult: { toolUseId: block.toolUseId, content: [{ text: block.content }], status: block.isError ? 'error' : 'success' } };
  }
}

/**
 * A tool block as a text block, for a request that offers no tool (see
 * {@link toConverseInput}): `[tool call <id>: <name> <input as JSON>]`,
 * `[tool result <id>: <content>]`, or `[tool result <id> (error): <content>]`.
 */
function toolBlockAsText(block: ToolUseBlock | ToolResultBlock): BedrockContentBlock {
  if (block.type === 'tool_use') return { text: `[tool call ${block.id}: ${block.name} ${JSON.stringify(block.input)}]` };
  return { text: `[tool result ${block.toolUseId}${block.isError ? ' (error)' : ''}: ${block.content}]` };
}

/** A JSON object as the SDK's document type (a JSON value by construction: it came from JSON). */
function asDocument(value: Record<string, unknown>): NonNullable<BedrockToolUseBlock['input']> {
  return value as NonNullable<BedrockToolUseBlock['input']>;
}

/**
 * The runtime response of a Converse output (see {@link BedrockProvider}).
 * @throws MalformedConverseResponse when the output lacks what the runtime reads.
 */
function toModelResponse(output: unknown, modelId: string): ModelResponse {
  const parsed = ConverseOutputSchema.safeParse(output);
  if (!parsed.success) throw new MalformedConverseResponse(describeIssue(parsed.error));
  const { stopReason: raw, usage } = parsed.data;
  const stopReason = STOP_REASONS[raw] ?? 'end_turn';
  const requestId = requestIdOf(output);
  return {
    content: parsed.data.output.message.content.flatMap(toRuntimeBlock),
    stopReason,
    usage: { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens },
    modelId,
    ...(requestId === undefined ? {} : { requestId }),
    ...(raw === stopReason ? {} : { providerStopReason: raw }),
  };
}

/** A Converse output block as runtime blocks: a text or tool use block, or none for any other kind. */
function toRuntimeBlock(block: Record<string, unknown>): (TextBlock | ToolUseBlock)[] {
  if ('text' in block) {
    const text = TextWireSchema.safeParse(block);
    if (!text.success) throw new MalformedConverseResponse(`text block: ${describeIssue(text.error)}`);
    return [{ type: 'text', text: text.data.text }];
  }
  if ('toolUse' in block) {
    const call = ToolUseWireSchema.safeParse(block);
    if (!call.success) throw new MalformedConverseResponse(`toolUse block: ${describeIssue(call.error)}`);
    const { toolUseId, name, input } = call.data.toolUse;
    return [{ type: 'tool_use', id: toolUseId, name, input }];
  }
  return [];
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'unreadable';
  return `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`;
}

/** The `$metadata` the SDK puts on outputs and errors. */
function metadataOf(value: unknown): { httpStatusCode?: unknown; requestId?: unknown } | undefined {
  if (typeof value !== 'object' || value === null || !('$metadata' in value)) return undefined;
  const metadata = value.$metadata;
  return typeof metadata === 'object' && metadata !== null ? metadata : undefined;
}

function statusOf(value: unknown): number | undefined {
  const status = metadataOf(value)?.httpStatusCode;
  return typeof status === 'number' && status > 0 ? status : undefined;
}

function requestIdOf(value: unknown): string | undefined {
  const id = metadataOf(value)?.requestId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/**
 * A response header of an SDK error: the SDK attaches the raw HTTP response to
 * errors as the hidden (non-enumerable) `$response`, header names lower-cased by Node.
 */
function responseHeaderOf(error: unknown): (name: string) => string | undefined {
  const response = typeof error === 'object' && error !== null ? (error as { $response?: { headers?: unknown } }).$response : undefined;
  const headers = typeof response?.headers === 'object' && response.headers !== null ? (response.headers as Record<string, unknown>) : {};
  return (name) => {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    const value = key === undefined ? undefined : headers[key];
    return typeof value === 'string' ? value : undefined;
  };
}

function factsOf(error: unknown): SdkErrorFacts {
  const record = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const name = typeof record.name === 'string' ? record.name : 'Error';
  const message = typeof record.message === 'string' ? record.message : String(error);
  const code = typeof record.code === 'string' ? record.code : undefined;
  const status = statusOf(error);
  const requestId = requestIdOf(error);
  return {
    name,
    // The SDK appends a hint about `$response` on a second line; the first is the provider's.
    message: (message.split('\n')[0] ?? '').slice(0, MAX_MESSAGE_CHARS),
    ...(code === undefined ? {} : { code }),
    ...(status === undefined ? {} : { status }),
    ...(requestId === undefined ? {} : { requestId }),
    header: responseHeaderOf(error),
  };
}

/**
 * The fault kind of a failed call, in order: the deadline passed; a known Bedrock
 * exception name; a socket error (the SDK's HTTP handler renames `ECONNRESET` and
 * `EPIPE` errors `TimeoutError`, so codes are read before names); an SDK timeout or
 * abort; a non-2xx status; a 2xx whose body could not be parsed; else a connection
 * fault (no answer was received).
 */
function faultKindOf(facts: SdkErrorFacts, timedOut: boolean): ProviderFaultKind {
  if (timedOut) return 'timeout';
  const byName = FAULT_KIND_BY_EXCEPTION[facts.name];
  if (byName) return byName;
  if (isConnectionFault(facts)) return 'connection';
  if (isSdkTimeout(facts)) return 'timeout';
  if (facts.status !== undefined && !isSuccess(facts.status)) return faultKindOfStatus(facts.status);
  if (facts.status !== undefined || facts.name === 'SyntaxError') return 'malformed_response';
  return 'connection';
}

function isConnectionFault(facts: SdkErrorFacts): boolean {
  return (facts.code !== undefined && CONNECTION_ERROR_CODES.has(facts.code)) || /socket hang up/i.test(facts.message);
}

function isSdkTimeout(facts: SdkErrorFacts): boolean {
  return facts.name === 'AbortError' || facts.name === 'TimeoutError' || facts.code === 'ETIMEDOUT';
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/** What a fault's message says after `bedrock <model id>: ` (never the request's content). */
function describeFault(facts: SdkErrorFacts, kind: ProviderFaultKind, timeout: { timedOut: boolean; timeoutMs: number }): string {
  if (timeout.timedOut) return `timed out after ${timeout.timeoutMs} ms`;
  if (FAULT_KIND_BY_EXCEPTION[facts.name]) return `${facts.name}: ${facts.message}`;
  if (kind === 'connection') return `connection failed: ${facts.code ? `${facts.code} ` : ''}${facts.message}`;
  if (kind === 'malformed_response') return `malformed response: ${facts.message}`;
  if (isSdkTimeout(facts)) return `timed out: ${facts.message}`;
  return `${facts.status === undefined ? '' : `HTTP ${facts.status} `}${facts.name}: ${facts.message}`;
}

/** The {@link ModelProviderError} of a call that failed in the SDK (sending, or reading the answer). */
function toProviderError(error: unknown, modelId: string, timeout: { timedOut: boolean; timeoutMs: number }): ModelProviderError {
  const facts = factsOf(error);
  const kind = faultKindOf(facts, timeout.timedOut);
  const wait = retryAfterMs(facts.header, Date.now());
  return new ModelProviderError(`bedrock ${modelId}: ${describeFault(facts, kind, timeout)}`, {
    provider: 'bedrock',
    modelId,
    kind,
    cause: error,
    status: facts.status,
    requestId: facts.requestId,
    retryAfterMs: wait,
  });
}

/** The {@link ModelProviderError} of a 2xx output the runtime cannot read (see {@link toModelResponse}). */
function malformedResponseError(error: unknown, output: unknown, modelId: string): ModelProviderError {
  const detail = error instanceof Error ? error.message : String(error);
  return new ModelProviderError(`bedrock ${modelId}: malformed response: ${detail.slice(0, MAX_MESSAGE_CHARS)}`, {
    provider: 'bedrock',
    modelId,
    kind: 'malformed_response',
    cause: error,
    status: statusOf(output),
    requestId: requestIdOf(output),
  });
}
