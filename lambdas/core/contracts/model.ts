/**
 * The model contract: one shape that maps onto the Anthropic Messages API, the
 * OpenAI Chat Completions API and the Amazon Bedrock Converse API.
 *
 * - Messages alternate `user` / `assistant`; the system prompt is separate
 *   (Anthropic `system`, Bedrock `system`, OpenAI a leading `system` message).
 * - Content is a list of blocks: `text`, `tool_use` (Anthropic `tool_use`,
 *   Bedrock `toolUse`, OpenAI `tool_calls[]`) and `tool_result` (Anthropic
 *   `tool_result`, Bedrock `toolResult`, OpenAI a `tool` role message).
 * - Tools are described by name, description and a JSON Schema of their input.
 */
import { z } from 'zod';

/** A block of text. Example: `{"type":"text","text":"Looking at the log."}` */
export const TextBlockSchema = z.object({ type: z.literal('text'), text: z.string() });

/**
 * A tool call asked for by the model. `id` is the provider's call id.
 * Example: `{"type":"tool_use","id":"call_1","name":"count_failed_attempts","input":{}}`
 */
export const ToolUseBlockSchema = z.object({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});

/**
 * The result of a tool call, sent back to the model. `content` is JSON text.
 * Example: `{"type":"tool_result","toolUseId":"call_1","content":"{\"total\":3}","isError":false}`
 */
export const ToolResultBlockSchema = z.object({
  type: z.literal('tool_result'),
  toolUseId: z.string().min(1),
  content: z.string(),
  isError: z.boolean(),
});

/** Any content block. */
export const ContentBlockSchema = z.discriminatedUnion('type', [TextBlockSchema, ToolUseBlockSchema, ToolResultBlockSchema]);

/** One message of the conversation. Example: `{"role":"user","content":[{"type":"text","text":"Investigate this finding."}]}` */
export const MessageSchema = z.object({
  role: z.enum(['user', 'assistant']),
  content: z.array(ContentBlockSchema),
});

/** A tool as the model sees it: `inputSchema` is JSON Schema (draft 2020-12). Example: `{"name":"echo","description":"Returns its text.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}` */
export const ToolSpecSchema = z.object({
  name: z.string(),
  description: z.string(),
  inputSchema: z.record(z.string(), z.unknown()),
});

/**
 * Why the model stopped, in Anthropic's terms (Bedrock `stopReason` and OpenAI
 * `finish_reason` map onto it: `tool_calls`→`tool_use`, `stop`→`end_turn`, `length`→`max_tokens`).
 */
export const StopReasonSchema = z.enum(['end_turn', 'tool_use', 'max_tokens', 'stop_sequence', 'refusal']);

/** Token usage of one call (Anthropic `input_tokens`/`output_tokens`, Bedrock `inputTokens`/`outputTokens`, OpenAI `prompt_tokens`/`completion_tokens`). */
export const UsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
});

/**
 * What the runtime sends to a provider. `modelId` is the provider's model id (the
 * router sets it to each model of the route in turn).
 * Example: `{"modelId":"scripted/demo","system":"You …","messages":[…],"tools":[…],"maxTokens":1024}` */
export const ModelRequestSchema = z.object({
  modelId: z.string(),
  system: z.string(),
  messages: z.array(MessageSchema),
  tools: z.array(ToolSpecSchema),
  /** The most output tokens of the answer; absent: the provider adapter's default. */
  maxTokens: z.number().int().positive().optional(),
  /** Sampling temperature, 0 to 2 (OpenAI API reference, `temperature`; Anthropic takes 0 to 1). @default the provider's */
  temperature: z.number().min(0).max(2).optional(),
});

/** What a provider returns: the assistant's content, why it stopped, and its usage. Example: `{"content":[{"type":"tool_use","id":"toolu_01","name":"echo","input":{"text":"hi"}}],"stopReason":"tool_use","usage":{"inputTokens":120,"outputTokens":14},"modelId":"scripted/demo","requestId":"scripted-1"}` */
export const ModelResponseSchema = z.object({
  content: z.array(z.discriminatedUnion('type', [TextBlockSchema, ToolUseBlockSchema])),
  stopReason: StopReasonSchema,
  usage: UsageSchema,
  /** Model id and version as the provider reports it. */
  modelId: z.string(),
  /** The provider's request id, for audit. */
  requestId: z.string().optional(),
  /**
   * The stop reason as the provider said it, when it differs from `stopReason` or has
   * no runtime equivalent (Bedrock `guardrail_intervened`, OpenAI `content_filter`, Anthropic `pause_turn`).
   */
  providerStopReason: z.string().optional(),
  /** OpenAI's `system_fingerprint`: the backend configuration that served the call. */
  systemFingerprint: z.string().optional(),
});

export type TextBlock = z.infer<typeof TextBlockSchema>;
export type ToolUseBlock = z.infer<typeof ToolUseBlockSchema>;
export type ToolResultBlock = z.infer<typeof ToolResultBlockSchema>;
export type ContentBlock = z.infer<typeof ContentBlockSchema>;
export type Message = z.infer<typeof MessageSchema>;
export type ToolSpec = z.infer<typeof ToolSpecSchema>;
export type StopReason = z.infer<typeof StopReasonSchema>;
export type Usage = z.infer<typeof UsageSchema>;
export type ModelRequest = z.infer<typeof ModelRequestSchema>;
export type ModelResponse = z.infer<typeof ModelResponseSchema>;

/**
 * A model provider: Anthropic, OpenAI, Bedrock or the scripted provider.
 * Implementations throw {@link import('../errors').TransientError} for faults
 * worth retrying and a {@link import('../errors').TerminalError} otherwise.
 */
export interface ModelProvider {
  /** Provider name, e.g. `scripted`, `bedrock`, `anthropic`, `openai`. */
  readonly name: string;
  /** Sends one request; resolves to the model's answer. */
  converse(request: ModelRequest): Promise<ModelResponse>;
  /**
   * Loads what a call needs (the SDK, the API key, the client) ahead of it, so that the
   * router times the provider's answer alone. Optional; its faults are the call's.
   */
  ready?(): Promise<void>;
  /**
   * Called when the run has reached its final answer; a strict fake throws if
   * it still holds unplayed turns. Real providers omit it.
   */
  assertComplete?(request: ModelRequest): void;
}
