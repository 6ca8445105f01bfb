/**
 * The OpenAI Chat Completions wire format for the fake provider server
 * (`server.ts`): a runtime response as a `chat.completion` object, an error in
 * OpenAI's envelope, and a handler that replays a scripted conversation.
 *
 * Source: OpenAI API reference, "Chat Completions — The chat completion object"
 * and "Error codes" (https://platform.openai.com/docs/api-reference/chat).
 */
import type { ModelResponse, StopReason } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import { assistantTurns, type FakeHandler, type FakeReply, type RecordedRequest } from './server';

/** The key {@link scriptedOpenAiHandler} accepts unless told otherwise. */
export const FAKE_OPENAI_API_KEY = 'sk-fake-openai-key';

/** The runtime's stop reasons as `finish_reason`s. */
const FINISH_REASONS: Readonly<Record<StopReason, string>> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  tool_use: 'tool_calls',
  max_tokens: 'length',
  refusal: 'content_filter',
};

/**
 * A 200 answer with a `chat.completion` object: the text blocks joined as
 * `message.content` (`null` when none), the `tool_use` blocks as `tool_calls`
 * (arguments as JSON text), `finish_reason` from the stop reason (`providerStopReason`,
 * when set, is sent as is), usage, and `system_fingerprint` when the response has one.
 * The header `x-request-id` is `req_<id>`.
 * @param model the `model` the completion reports
 * @param id the completion id @default `chatcmpl-fake`
 */
export function openAiResponse(response: Omit<ModelResponse, 'modelId' | 'requestId'>, model: string, id = 'chatcmpl-fake'): FakeReply {
  const texts = response.content.flatMap((b) => (b.type === 'text' ? [b.text] : []));
  const toolCalls = response.content.flatMap((b) =>
    b.type === 'tool_use' ? [{ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input) } }] : [],
  );
  const message = {
    role: 'assistant',
    content: texts.length > 0 ? texts.join('\n') : null,
    refusal: null,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
  };
  const { inputTokens, outputTokens } = response.usage;
  return {
    status: 200,
    headers: { 'x-request-id': `req_${id}` },
    body: {
      id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: response.providerStopReason ?? FINISH_REASONS[response.stopReason] }],
      usage: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
      ...(response.systemFingerprint === undefined ? {} : { system_fingerprint: response.systemFingerprint }),
    },
  };
}

/**
 * An error answer in OpenAI's envelope: `{"error":{"message","type","param","code"}}`.
 * Example: `openAiError(429, 'requests', 'Rate limit reached', { 'retry-after': '2' }, 'rate_limit_exceeded')`.
 * @param code the error `code` @default null
 */
export function openAiError(status: number, type: string, message: string, headers: Record<string, string> = {}, code: string | null = null): FakeReply {
  return { status, headers, body: { error: { message, type, param: null, code } } };
}

/**
 * Replays `script` as an OpenAI server: answers `POST /v1/chat/completions` (a client
 * whose base URL is `http://127.0.0.1:<port>/v1`, the runtime's convention) or
 * `POST /chat/completions` (a base URL without `/v1`). The turn is the number of
 * `assistant` messages in the request; it reports the request's `model`.
 * Errors: 401 `invalid_api_key` when `authorization` is not `Bearer <apiKey>`; 404 on
 * another path or method; 400 for a body Chat Completions refuses (see {@link wireProblems});
 * 400 on a call past the script's end.
 * @param options.apiKey the key to accept @default {@link FAKE_OPENAI_API_KEY}
 */
export function scriptedOpenAiHandler(script: ScriptedConversation, options: { apiKey?: string } = {}): FakeHandler {
  const apiKey = options.apiKey ?? FAKE_OPENAI_API_KEY;
  return (request) => {
    if (request.headers.authorization !== `Bearer ${apiKey}`) {
      return openAiError(401, 'invalid_request_error', 'Incorrect API key provided.', {}, 'invalid_api_key');
    }
    if (request.method !== 'POST' || !isChatCompletionsPath(request.path)) {
      return openAiError(404, 'invalid_request_error', `Unknown request URL: ${request.method} ${request.path}.`, {}, 'unknown_url');
    }
    const problem = wireProblems(request.body);
    if (problem !== undefined) return problem;
    const position = assistantTurns(request.body);
    const turn = script.turns[position];
    if (!turn) {
      return openAiError(400, 'invalid_request_error', `fake: unexpected call ${position + 1}; the script has ${script.turns.length} turn(s)`);
    }
    return openAiResponse(turn.response, requestedModel(request) ?? script.modelId, `chatcmpl-fake-${position + 1}`);
  };
}

function isChatCompletionsPath(path: string): boolean {
  const pathname = path.split('?')[0];
  return pathname === '/v1/chat/completions' || pathname === '/chat/completions';
}

function requestedModel(request: RecordedRequest): string | undefined {
  const model = (request.body as { model?: unknown } | undefined)?.model;
  return typeof model === 'string' ? model : undefined;
}

/** A Chat Completions message as the fake reads it. */
interface WireMessage {
  readonly role?: unknown;
  readonly tool_calls?: unknown;
  readonly tool_call_id?: unknown;
}

/**
 * What Chat Completions refuses in a request body, of what the runtime could send
 * wrong, as the 400 it answers: an assistant message with `tool_calls` not followed by
 * a `tool` message for each `tool_call_id` (`param` `messages.[<index>].role`, the
 * message after the assistant's).
 * Undefined when the body passes this check.
 */
function wireProblems(body: unknown): FakeReply | undefined {
  const wire = (body as { messages?: unknown } | undefined)?.messages;
  if (!Array.isArray(wire)) return undefined;
  const messages = wire as readonly WireMessage[];
  for (const [index, message] of messages.entries()) {
    if (message.role !== 'assistant' || !Array.isArray(message.tool_calls) || message.tool_calls.length === 0) continue;
    const answered = new Set<unknown>();
    for (const next of messages.slice(index + 1)) {
      if (next.role !== 'tool') break;
      answered.add(next.tool_call_id);
    }
    const unanswered = (message.tool_calls as { id?: unknown }[]).map((call) => call.id).filter((id) => !answered.has(id));
    if (unanswered.length > 0) {
      const text = `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${unanswered.join(', ')}`;
      return { status: 400, body: { error: { message: text, type: 'invalid_request_error', param: `messages.[${index + 1}].role`, code: null } } };
    }
  }
  return undefined;
}
