/**
 * The Anthropic Messages API's wire format for the fake provider server
 * (`server.ts`): responses, error envelopes and a handler that replays a scripted
 * conversation. Shapes as the Anthropic Messages API documentation gives them
 * (https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/errors).
 */
import type { ModelResponse } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import { assistantTurns, type FakeHandler, type FakeReply } from './server';

/** The path of the Messages API. */
export const ANTHROPIC_MESSAGES_PATH = '/v1/messages';

/** The `request-id` header the fake sends with the message `id`: `req_<id>`. */
export function anthropicRequestId(id: string): string {
  return `req_${id}`;
}

/**
 * A 200 with a Messages API response: `id`, `type: "message"`, `role: "assistant"`,
 * `model`, `content` (`text` and `tool_use` blocks), `stop_reason` (the response's
 * `providerStopReason` when set, so a suite can send `pause_turn` or an unknown value,
 * else its `stopReason`), `stop_sequence: null` and `usage`; header `request-id`
 * ({@link anthropicRequestId}).
 * @param model the model as Anthropic reports it, e.g. `claude-sonnet-4-5-20250929`.
 * @param id the message id. @default `msg_fake_1`
 */
export function anthropicResponse(response: Omit<ModelResponse, 'modelId' | 'requestId'>, model: string, id = 'msg_fake_1'): FakeReply {
  return {
    status: 200,
    headers: { 'request-id': anthropicRequestId(id) },
    body: {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: response.content.map((block) =>
        block.type === 'text' ? { type: 'text', text: block.text } : { type: 'tool_use', id: block.id, name: block.name, input: block.input },
      ),
      stop_reason: response.providerStopReason ?? response.stopReason,
      stop_sequence: null,
      usage: {
        input_tokens: response.usage.inputTokens,
        output_tokens: response.usage.outputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    },
  };
}

/**
 * An error in Anthropic's envelope, `{"type":"error","error":{"type","message"},"request_id"}`,
 * with header `request-id` (`req_error_<status>` unless `headers` gives one). Types as
 * documented: 400 `invalid_request_error`, 401 `authentication_error`, 403 `permission_error`,
 * 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error` (with `retry-after`),
 * 500 `api_error`, 529 `overloaded_error`.
 */
export function anthropicError(status: number, type: string, message: string, headers: Record<string, string> = {}): FakeReply {
  const allHeaders = { 'request-id': `req_error_${status}`, ...headers };
  return { status, headers: allHeaders, body: { type: 'error', error: { type, message }, request_id: allHeaders['request-id'] } };
}

/**
 * A handler that answers as the Messages API would with a scripted conversation: the
 * turn is the number of assistant messages in the request body. It answers 401
 * `authentication_error` when `x-api-key` differs from `options.apiKey` (when given),
 * 404 `not_found_error` for any other path than `POST /v1/messages` and for a call past
 * the script's end, and 400 `invalid_request_error` for a body the Messages API refuses
 * (see {@link wireProblems}). The response's `model` is the script's `modelId`, its `id` `msg_fake_<turn>`.
 * Turn expectations (`expect`) are not checked: the scripted provider's suite covers them.
 */
export function scriptedAnthropicHandler(script: ScriptedConversation, options: { apiKey?: string } = {}): FakeHandler {
  return (request) => {
    if (options.apiKey !== undefined && request.headers['x-api-key'] !== options.apiKey) {
      return anthropicError(401, 'authentication_error', 'invalid x-api-key');
    }
    if (request.method !== 'POST' || request.path !== ANTHROPIC_MESSAGES_PATH) {
      return anthropicError(404, 'not_found_error', `${request.method} ${request.path}: not found`);
    }
    const problem = wireProblems(request.body);
    if (problem !== undefined) return anthropicError(400, 'invalid_request_error', problem);
    const position = assistantTurns(request.body);
    const turn = script.turns[position];
    if (!turn) {
      return anthropicError(404, 'not_found_error', `fake: no turn ${position + 1}; the script has ${script.turns.length} turn(s)`);
    }
    return anthropicResponse(turn.response, script.modelId, `msg_fake_${position + 1}`);
  };
}

/** A Messages API request body as the fake reads it. */
interface WireBody {
  readonly max_tokens?: unknown;
  readonly temperature?: unknown;
  readonly messages?: readonly { readonly role?: unknown; readonly content?: unknown }[];
}

/**
 * What the Messages API refuses (400 `invalid_request_error`, messages as it words
 * them) in a request body, of what the runtime could send wrong: no `max_tokens` (it is
 * required); a `temperature` outside 0..1; an assistant `tool_use` whose id has no
 * `tool_result` in the next message. Undefined when the body passes these checks.
 */
function wireProblems(body: unknown): string | undefined {
  const wire = (typeof body === 'object' && body !== null ? body : {}) as WireBody;
  if (wire.max_tokens === undefined) return 'max_tokens: Field required';
  if (wire.temperature !== undefined && (typeof wire.temperature !== 'number' || wire.temperature < 0 || wire.temperature > 1)) {
    return 'temperature: Input should be a number between 0 and 1';
  }
  const messages = wire.messages ?? [];
  for (const [index, message] of messages.entries()) {
    if (message.role !== 'assistant') continue;
    const calls = blocksOf(message.content, 'tool_use').map((block) => block.id);
    const next = messages[index + 1];
    const answered = new Set(next?.role === 'user' ? blocksOf(next.content, 'tool_result').map((block) => block.tool_use_id) : []);
    const unanswered = calls.filter((id) => !answered.has(id));
    if (unanswered.length > 0) {
      return `messages.${index}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${unanswered.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
    }
  }
  return undefined;
}

/** The content blocks of one type in a message's `content` (a string holds none). */
function blocksOf(content: unknown, type: string): WireBlock[] {
  if (!Array.isArray(content)) return [];
  return content.filter((block): block is WireBlock => typeof block === 'object' && block !== null && (block as WireBlock).type === type);
}

/** A content block as the fake reads it. */
interface WireBlock {
  readonly type?: unknown;
  readonly id?: unknown;
  readonly tool_use_id?: unknown;
}
