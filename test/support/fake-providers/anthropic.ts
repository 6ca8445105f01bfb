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
 * the script's end. The response's `model` is the script's `modelId`, its `id` `msg_fake_<turn>`.
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
    const position = assistantTurns(request.body);
    const turn = script.turns[position];
    if (!turn) {
      return anthropicError(404, 'not_found_error', `fake: no turn ${position + 1}; the script has ${script.turns.length} turn(s)`);
    }
    return anthropicResponse(turn.response, script.modelId, `msg_fake_${position + 1}`);
  };
}
