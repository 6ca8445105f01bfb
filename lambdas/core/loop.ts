/**
 * The agent loop's decisions, pure: rebuilding the conversation from checkpoints,
 * and deciding what a model's answer means for the run.
 */
import type { z } from 'zod';
import { MAX_TOOL_CALLS_PER_TURN } from './constants';
import type { CheckpointRecord, InputCheckpoint, ModelCheckpoint, ToolCheckpoint } from './contracts/checkpoint';
import type { Failure, ToolCallRef } from './contracts/loop';
import type { ContentBlock, Message, ModelResponse, ToolResultBlock, ToolUseBlock } from './contracts/model';
import { formatIssues } from './validation';

/** Prefix of the user message that sends an invalid final answer back to the model. */
export const REPAIR_PREFIX = 'Your final answer was rejected by the output schema. Fix these problems and answer again with JSON only:';

/**
 * Rebuilds the conversation from a session's checkpoints, in step order:
 * the input's prompt; then per model turn, the assistant's content, followed by
 * a user message with the turn's tool results (in call order) or with the
 * validation errors of a rejected final answer.
 * Bodies stored in S3 must have been loaded into the records first (`response`,
 * `result`); a tool result listed in `dropped` is replaced by a note saying so (the
 * agent's context limit).
 * @throws Error when the input checkpoint is missing, a body was not loaded, or a
 *   tool result is missing for a call.
 */
export function buildConversation(records: readonly CheckpointRecord[], dropped: ReadonlySet<string> = new Set()): Message[] {
  const input = records.find((r): r is InputCheckpoint => r.kind === 'input');
  if (!input) throw new Error('conversation has no input checkpoint');
  const tools = new Map<string, ToolCheckpoint>();
  for (const r of records) if (r.kind === 'tool') tools.set(`${r.step}#${r.callId}`, r);
  const turns = records.filter((r): r is ModelCheckpoint => r.kind === 'model').sort((a, b) => a.step - b.step);

  const messages: Message[] = [{ role: 'user', content: [{ type: 'text', text: input.prompt }] }];
  for (const turn of turns) {
    const response = loaded(turn);
    messages.push({ role: 'assistant', content: response.content });
    if (turn.outcome === 'tool_calls') {
      const results: ContentBlock[] = [];
      for (const block of response.content) {
        if (block.type !== 'tool_use') continue;
        const inline = turn.inlineResults.find((r) => r.toolUseId === block.id);
        if (inline) {
          results.push(inline);
          continue;
        }
        const done = tools.get(`${turn.step}#${block.id}`);
        if (!done) throw new Error(`step ${turn.step}: no result recorded for tool call ${block.id}`);
        if (dropped.has(done.sk)) {
          results.push({ type: 'tool_result', toolUseId: block.id, content: droppedResultNote(done), isError: done.isError });
          continue;
        }
        if (done.result === undefined) throw new Error(`${done.sk}: result body not loaded (${done.resultRef?.key ?? 'no reference'})`);
        results.push({ type: 'tool_result', toolUseId: block.id, content: done.result, isError: done.isError });
      }
      messages.push({ role: 'user', content: results });
    } else if (turn.outcome === 'repair') {
      const text = `${REPAIR_PREFIX}\n${(turn.validationErrors ?? []).map((e) => `- ${e}`).join('\n')}`;
      messages.push({ role: 'user', content: [{ type: 'text', text }] });
    }
  }
  return messages;
}

/** A model checkpoint's response. @throws Error when it is stored in S3 and was not loaded. */
export function loaded(turn: ModelCheckpoint): ModelResponse {
  if (!turn.response) throw new Error(`${turn.sk}: response body not loaded (${turn.responseRef?.key ?? 'no reference'})`);
  return turn.response;
}

/** What the model sees instead of a tool result the context limit dropped. */
export function droppedResultNote(tool: ToolCheckpoint): string {
  const bytes = tool.result !== undefined ? Buffer.byteLength(tool.result) : (tool.resultRef?.bytes ?? 0);
  return JSON.stringify({
    error: 'CONTEXT_DROPPED',
    message: `The result of ${tool.tool} (${bytes} bytes) was dropped from the context: the agent's context limit keeps the newest tool results. Call the tool again if you need it.`,
  });
}

/** The text of a model answer: its text blocks joined. */
export function answerText(response: ModelResponse): string {
  return response.content
    .filter((b): b is Extract<ContentBlock, { type: 'text' }> => b.type === 'text')
    .map((b) => b.text)
    .join('');
}

/**
 * Parses a final answer: JSON (optionally inside a ```json fence), then the output schema.
 * @returns the parsed output, or the problems, one per field.
 */
export function parseFinalAnswer<O extends z.ZodType>(
  text: string,
  schema: O,
): { ok: true; output: z.infer<O> } | { ok: false; errors: string[] } {
  // The whole text first: a valid answer may contain a ``` code span inside a string.
  let json: unknown;
  try {
    json = JSON.parse(text.trim());
  } catch (err) {
    const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(text);
    try {
      if (!fenced?.[1]) throw err;
      json = JSON.parse(fenced[1].trim());
    } catch (inner) {
      return { ok: false, errors: [`(root): not valid JSON (${(inner as Error).message})`] };
    }
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, output: parsed.data } : { ok: false, errors: formatIssues(parsed.error) };
}

/** What a model answer means for the run. */
export type TurnDecision =
  | { outcome: 'tool_calls'; calls: ToolCallRef[]; inlineResults: ToolResultBlock[] }
  | { outcome: 'final'; output: unknown }
  | { outcome: 'repair'; validationErrors: string[] }
  | { outcome: 'failed'; validationErrors: string[]; failure: Failure };

/** The agent facts {@link decideTurn} needs. */
export interface TurnContext<O extends z.ZodType> {
  /** Tool name → function ARN and approval flag, for the tools the model was offered. */
  readonly tools: ReadonlyMap<string, { functionArn: string; needsApproval: boolean }>;
  readonly output: O;
  /** Repairs already used in this run. */
  readonly repairs: number;
  readonly maxOutputRepairs: number;
}

/**
 * Decides a model turn's outcome.
 * - Tool calls: known tools become Map items; an unknown tool, or a call past
 *   {@link MAX_TOOL_CALLS_PER_TURN}, gets an error result without running anything.
 * - Otherwise the text is the final answer: valid → `final`; invalid → `repair`
 *   while repairs remain, else `failed` with `OutputValidationFailed`.
 */
export function decideTurn<O extends z.ZodType>(response: ModelResponse, ctx: TurnContext<O>): TurnDecision {
  const uses = response.content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
  if (uses.length > 0) {
    const calls: ToolCallRef[] = [];
    const inlineResults: ToolResultBlock[] = [];
    for (const use of uses) {
      const tool = ctx.tools.get(use.name);
      if (!tool) {
        inlineResults.push(errorResult(use.id, 'UNKNOWN_TOOL', `No tool named "${use.name}" is available.`));
      } else if (calls.length >= MAX_TOOL_CALLS_PER_TURN) {
        inlineResults.push(errorResult(use.id, 'TOO_MANY_CALLS', `At most ${MAX_TOOL_CALLS_PER_TURN} tool calls per turn; this one was not run.`));
      } else {
        calls.push({ callId: use.id, tool: use.name, functionArn: tool.functionArn, needsApproval: tool.needsApproval });
      }
    }
    return { outcome: 'tool_calls', calls, inlineResults };
  }
  let validationErrors: string[];
  if (response.stopReason === 'max_tokens') {
    validationErrors = ['(root): the answer was cut off at the output token limit; answer more briefly'];
  } else {
    const parsed = parseFinalAnswer(answerText(response), ctx.output);
    if (parsed.ok) return { outcome: 'final', output: parsed.output };
    validationErrors = parsed.errors;
  }
  if (ctx.repairs < ctx.maxOutputRepairs) return { outcome: 'repair', validationErrors };
  return { outcome: 'failed', validationErrors, failure: outputValidationFailure(ctx.maxOutputRepairs, validationErrors) };
}

/** The failure of a run whose final answer stayed invalid after `maxOutputRepairs` repairs. */
export function outputValidationFailure(maxOutputRepairs: number, validationErrors: readonly string[]): Failure {
  return { error: 'OutputValidationFailed', cause: `final answer still invalid after ${maxOutputRepairs} repair(s): ${validationErrors.join('; ')}` };
}

/** A tool result that reports an error to the model, as JSON `{error, message}`. */
export function errorResult(toolUseId: string, error: string, message: string, details?: unknown): ToolResultBlock {
  return {
    type: 'tool_result',
    toolUseId,
    isError: true,
    content: JSON.stringify(details === undefined ? { error, message } : { error, message, details }),
  };
}

/** The tool call `callId` of a model turn's checkpoint, or undefined. */
export function toolUseOf(turn: CheckpointRecord | undefined, callId: string): ToolUseBlock | undefined {
  if (turn?.kind !== 'model') return undefined;
  return loaded(turn).content.find((b): b is ToolUseBlock => b.type === 'tool_use' && b.id === callId);
}
