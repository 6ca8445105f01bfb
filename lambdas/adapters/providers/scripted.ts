/**
 * The scripted model provider: replays a recorded conversation, strictly.
 *
 * The turn to play is the number of assistant messages already in the request,
 * so the provider is stateless across Lambda invocations and a retried or
 * resumed turn replays the same response. It throws {@link ScriptMismatchError}
 * (terminal) on a call past the script's end, on a request that misses the
 * turn's expectations, and from {@link ScriptedModelProvider.assertComplete}
 * when the run ends with turns left over. Every request is recorded in `requests`.
 * A recorded answer whose output tokens exceed the request's `maxTokens` comes back
 * with stop reason `max_tokens` and that many output tokens, as a provider cuts it off.
 */
import type { ModelProvider, ModelRequest, ModelResponse } from '../../core/contracts/model';
import type { ScriptedConversation, TurnExpectation } from '../../core/contracts/scripted';
import { ScriptMismatchError } from '../../core/errors';

export class ScriptedModelProvider implements ModelProvider {
  readonly name = 'scripted';
  /** Every request received, in order (deep copies). */
  readonly requests: ModelRequest[] = [];

  constructor(private readonly script: ScriptedConversation) {}

  /** Replays the turn at the request's position. @throws ScriptMismatchError */
  async converse(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(structuredClone(request));
    const position = turnPosition(request);
    const turn = this.script.turns[position];
    if (!turn) {
      throw new ScriptMismatchError(
        `${this.script.modelId}: unexpected call ${position + 1}; the script has ${this.script.turns.length} turn(s)`,
      );
    }
    const problems = unmetExpectations(turn.expect, request);
    if (problems.length > 0) {
      throw new ScriptMismatchError(`${this.script.modelId}: turn ${position + 1} expectations not met: ${problems.join('; ')}`);
    }
    const response = { ...structuredClone(turn.response), modelId: this.script.modelId, requestId: `scripted-${position + 1}` };
    // As a provider does: an answer longer than the request's maxTokens is cut off there.
    if (request.maxTokens !== undefined && response.usage.outputTokens > request.maxTokens) {
      return { ...response, stopReason: 'max_tokens', usage: { ...response.usage, outputTokens: request.maxTokens } };
    }
    return response;
  }

  /**
   * Checks that the request that produced the final answer consumed the last turn.
   * @throws ScriptMismatchError naming the leftover turns.
   */
  assertComplete(request: ModelRequest): void {
    const used = turnPosition(request) + 1;
    if (used < this.script.turns.length) {
      throw new ScriptMismatchError(
        `${this.script.modelId}: the run ended after turn ${used} but the script has ${this.script.turns.length - used} leftover turn(s)`,
      );
    }
  }
}

function turnPosition(request: ModelRequest): number {
  return request.messages.filter((m) => m.role === 'assistant').length;
}

function unmetExpectations(expect: TurnExpectation | undefined, request: ModelRequest): string[] {
  if (!expect) return [];
  const problems: string[] = [];
  const last = request.messages.at(-1);
  const resultsText = (last?.content ?? []).map((b) => (b.type === 'tool_result' ? b.content : '')).join('\n');
  const lastText = (last?.content ?? []).map((b) => (b.type === 'text' ? b.text : b.type === 'tool_result' ? b.content : '')).join('\n');
  for (const s of expect.toolResultIncludes ?? []) {
    if (!resultsText.includes(s)) problems.push(`tool results do not include ${JSON.stringify(s)}`);
  }
  for (const s of expect.lastMessageIncludes ?? []) {
    if (!lastText.includes(s)) problems.push(`last message does not include ${JSON.stringify(s)}`);
  }
  if (expect.tools) {
    const offered = request.tools.map((t) => t.name).sort();
    const wanted = [...expect.tools].sort();
    if (JSON.stringify(offered) !== JSON.stringify(wanted)) problems.push(`tools offered ${offered.join(',')} but expected ${wanted.join(',')}`);
  }
  return problems;
}
