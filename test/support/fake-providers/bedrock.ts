/**
 * Amazon Bedrock Runtime's wire format for the fake provider server (`server.ts`):
 * the Converse API (Amazon Bedrock API Reference, "Converse"), a REST-JSON protocol.
 *
 * - Request: `POST /model/{modelId}/converse`, the model id URL-encoded (`:` → `%3A`),
 *   SigV4-signed (`authorization: AWS4-HMAC-SHA256 Credential=…`).
 * - Response: `{output: {message: {role: 'assistant', content: [{text} | {toolUse}]}},
 *   stopReason, usage: {inputTokens, outputTokens, totalTokens}, metrics: {latencyMs}}`
 *   with the request id in the `x-amzn-requestid` header.
 * - Error: the status, the exception name in the `x-amzn-errortype` header (which the
 *   SDK reads first; a body `__type` or `code` also works) and a body `{message}`.
 */
import { randomUUID } from 'node:crypto';
import type { ModelResponse, StopReason } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import { assistantTurns, type FakeHandler, type FakeReply, type RecordedRequest } from './server';

/** The Converse `stopReason` of each runtime stop reason (`refusal` is a content filter's). */
const WIRE_STOP_REASONS: Readonly<Record<StopReason, string>> = {
  end_turn: 'end_turn',
  tool_use: 'tool_use',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  refusal: 'content_filtered',
};

/** The path a Converse call of `modelId` is sent to. Example: `/model/anthropic.claude-x-v1%3A0/converse` */
export function conversePath(modelId: string): string {
  return `/model/${encodeURIComponent(modelId)}/converse`;
}

/**
 * A 200 Converse answer carrying a runtime response. The wire `stopReason` is the
 * response's `providerStopReason` when it has one (e.g. `guardrail_intervened`), else
 * the runtime one mapped back (`refusal` → `content_filtered`).
 * @param requestId the `x-amzn-requestid` header. @default a random UUID, as Bedrock sends
 */
export function bedrockResponse(response: Omit<ModelResponse, 'modelId' | 'requestId'>, requestId: string = randomUUID()): FakeReply {
  const { inputTokens, outputTokens } = response.usage;
  return {
    status: 200,
    headers: { 'x-amzn-requestid': requestId },
    body: {
      output: { message: { role: 'assistant', content: response.content.map(toWireBlock) } },
      stopReason: response.providerStopReason ?? WIRE_STOP_REASONS[response.stopReason],
      usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
      metrics: { latencyMs: 1 },
    },
  };
}

/** A Converse output content block, as Bedrock sends it. */
type WireBlock = { text: string } | { toolUse: { toolUseId: string; name: string; input: Record<string, unknown> } };

function toWireBlock(block: ModelResponse['content'][number]): WireBlock {
  return block.type === 'text' ? { text: block.text } : { toolUse: { toolUseId: block.id, name: block.name, input: block.input } };
}

/**
 * A Bedrock error answer. Example: `bedrockError(429, 'ThrottlingException', 'Too many requests', {'retry-after': '2'})`.
 * @param headers extra headers; they may replace the default `x-amzn-requestid` (a random UUID).
 */
export function bedrockError(status: number, errorType: string, message: string, headers: Record<string, string> = {}): FakeReply {
  return {
    status,
    headers: { 'x-amzn-errortype': errorType, 'x-amzn-requestid': randomUUID(), ...headers },
    body: { message },
  };
}

/**
 * A handler that plays a recorded conversation as Bedrock would answer it: the
 * turn is the number of assistant messages in the request (as the scripted
 * provider picks it), answered with request id `fake-bedrock-<turn>`. Turn
 * expectations (`expect`) are not checked. A request to another path answers 404
 * `UnknownOperationException`, an unsigned one 403 `MissingAuthenticationTokenException`,
 * a body Converse refuses 400 `ValidationException` (see {@link wireProblems}), a call
 * past the script's end 400 `ValidationException`.
 */
export function scriptedBedrockHandler(script: ScriptedConversation): FakeHandler {
  const path = conversePath(script.modelId);
  return (request) => {
    const refusal = refusalOf(request, path);
    if (refusal) return refusal;
    const problem = wireProblems(request.body);
    if (problem !== undefined) return bedrockError(400, 'ValidationException', problem);
    const position = assistantTurns(request.body);
    const turn = script.turns[position];
    if (!turn) {
      return bedrockError(400, 'ValidationException', `fake bedrock ${script.modelId}: unexpected call ${position + 1}; the script has ${script.turns.length} turn(s)`);
    }
    return bedrockResponse(turn.response, `fake-bedrock-${position + 1}`);
  };
}

/** The error a request gets when it is not a signed Converse call of the script's model. */
function refusalOf(request: RecordedRequest, path: string): FakeReply | undefined {
  if (request.method !== 'POST' || request.path !== path) {
    return bedrockError(404, 'UnknownOperationException', `fake bedrock: expected POST ${path}, got ${request.method} ${request.path}`);
  }
  const authorization = request.headers.authorization;
  if (typeof authorization !== 'string' || !authorization.startsWith('AWS4-HMAC-SHA256 ')) {
    return bedrockError(403, 'MissingAuthenticationTokenException', 'fake bedrock: the request is not SigV4-signed');
  }
  return undefined;
}

/**
 * What Converse refuses (400 `ValidationException`, message as it words it) in a
 * request body, of what the runtime could send wrong: `toolUse` or `toolResult` blocks
 * in the messages with no `toolConfig`. Undefined when the body passes this check.
 */
function wireProblems(body: unknown): string | undefined {
  const wire = (typeof body === 'object' && body !== null ? body : {}) as { messages?: unknown; toolConfig?: unknown };
  if (wire.toolConfig !== undefined || !Array.isArray(wire.messages)) return undefined;
  const hasToolBlocks = (wire.messages as { content?: unknown }[]).some(
    (message) => Array.isArray(message.content) && message.content.some((block) => typeof block === 'object' && block !== null && ('toolUse' in block || 'toolResult' in block)),
  );
  return hasToolBlocks ? 'The toolConfig field must be defined when using toolUse and toolResult content blocks.' : undefined;
}
