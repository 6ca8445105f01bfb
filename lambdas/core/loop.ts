/**
 * The agent loop's decisions, pure: rebuilding the conversation from checkpoints,
 * and deciding what a model's answer means for the run.
 */
import type { z } from 'zod';
import { MAX_TOOL_CALLS_PER_TURN } from './constants';
import type { CheckpointRecord, InputCheckpoint, ModelCheckpoint, ToolCheckpoint } from './contracts/checkpoint';
import { admitToolCalls, type ToolBudget } from './budget';
import type { Failure, ToolCallRef } from './contracts/loop';
import type { ContentBlock, Message, ModelResponse, ToolResultBlock, ToolUseBlock } from './contracts/model';
import { OUTPUT_REPAIR_PREFIX, outputFailure, parseAnswerJson, repairMessage, type FinalDecision } from './output';
import { formatIssues } from './validation';

/** Prefix of the user message that sends a rejected final answer back to the model (`core/output.ts`). */
export const REPAIR_PREFIX = OUTPUT_REPAIR_PREFIX;

/**
 * Rebuilds the conversation from a session's checkpoints, in step order:
 * the input's prompt; then per model turn, the assistant's content, followed by
 * a user message with the turn's tool results (in call order) or with the
 * validation errors of a rejected final answer.
 * Bodies stored in S3 must have been loaded into the records first (`response`,
 * `result`), except those of tool results in `replaced`: each is sent as the text
 * mapped to its sort key (the context plan's note or summary, `core/context.ts`),
 * keeping its error flag.
 * @throws Error when the input checkpoint is missing, a body was not loaded, or a
 *   tool result is missing for a call.
 */
export function buildConversation(records: readonly CheckpointRecord[], replaced: ReadonlyMap<string, string> = new Map()): Message[] {
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
        const replacement = replaced.get(done.sk);
        if (replacement !== undefined) {
          results.push({ type: 'tool_result', toolUseId: block.id, content: replacement, isError: done.isError });
          continue;
        }
        if (done.result === undefined) throw new Error(`${done.sk}: result body not loaded (${done.resultRef?.key ?? 'no reference'})`);
        results.push({ type: 'tool_result', toolUseId: block.id, content: done.result, isError: done.isError });
      }
      messages.push({ role: 'user', content: results });
    } else if (turn.outcome === 'repair') {
      const text = repairMessage(turn.validationErrors ?? []);
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

/**
 * Parses a final answer: JSON (optionally inside a ```json fence), then the output schema.
 * @returns the parsed output, or the problems, one per field.
 */
export function parseFinalAnswer<O extends z.ZodType>(
  text: string,
  schema: O,
): { ok: true; output: z.infer<O> } | { ok: false; errors: string[] } {
  const json = parseAnswerJson(text);
  if (!json.ok) return { ok: false, errors: [json.error] };
  const parsed = schema.safeParse(json.json);
  return parsed.success ? { ok: true, output: parsed.data } : { ok: false, errors: formatIssues(parsed.error) };
}

/**
 * A tool call not run, with the real reason (recorded for auditors; the model sees less):
 * an item of the model checkpoint's `denials`, whose schema documents the fields.
 * Example: `{"callId":"toolu_06","tool":"drop_table","reason":"denied","policies":["no-ddl"],"policyVersion":"bundled"}`
 */
export type Denial = NonNullable<ModelCheckpoint['denials']>[number];

/** What a model answer means for the run: tool calls to run, or the output pipeline's {@link FinalDecision}. */
export type TurnDecision = { outcome: 'tool_calls'; calls: ToolCallRef[]; inlineResults: ToolResultBlock[]; denials: Denial[] } | FinalDecision;

/**
 * A policy's answer to one tool call (`callTool`, with its arguments).
 * Example: `{"allowed":false,"policies":["no-ddl"],"errors":[],"version":"bundled"}`
 */
export interface CallAuthorization {
  /** True only when the policy allowed the call without any error. */
  readonly allowed: boolean;
  /** The determining policy ids (`@id` annotations, else Cedar's `policy0` …); empty when nothing matched. */
  readonly policies: string[];
  /** Evaluation or request errors, one line each (any error denies). */
  readonly errors: string[];
  /** The policy set that decided: `bundled` (the agent's file or the default) or the policy table override's version. */
  readonly version?: string;
}

/** The agent facts {@link decideTurn} needs. */
export interface TurnContext {
  /** Tool name → function ARN and approval flag, for every tool the agent declares. */
  readonly tools: ReadonlyMap<string, { functionArn: string; needsApproval: boolean; budget?: ToolBudget }>;
  /** Authorises one call of a declared tool (Cedar `callTool`, with its arguments). */
  readonly authorize: (use: ToolUseBlock) => CallAuthorization;
  /** Calls each tool has made in the session so far (tool budgets). */
  readonly callsSoFar: Readonly<Record<string, number>>;
  /** Decides a final answer (the output pipeline, `core/output.ts`). */
  readonly final: (response: ModelResponse) => FinalDecision;
}

/** What the model is told about a tool that does not exist or that the principal may not use: the same, so it cannot tell them apart. */
export function unknownToolResult(toolUseId: string, name: string): ToolResultBlock {
  return errorResult(toolUseId, 'UNKNOWN_TOOL', `No tool named "${name}" is available.`);
}

/**
 * Decides a model turn's outcome.
 * - Tool calls: an undeclared tool and a tool the policy denies get the same
 *   `UNKNOWN_TOOL` result (the real reason goes to `denials`); a tool past its calls
 *   per session gets `TOOL_BUDGET_EXCEEDED`; a call past {@link MAX_TOOL_CALLS_PER_TURN}
 *   gets `TOO_MANY_CALLS`; none of them runs. The others become Map items.
 * - Otherwise the text is the final answer, decided by `ctx.final` (the output pipeline).
 */
export function decideTurn(response: ModelResponse, ctx: TurnContext): TurnDecision {
  const uses = response.content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
  if (uses.length === 0) return ctx.final(response);
  const inlineResults: ToolResultBlock[] = [];
  const denials: Denial[] = [];
  const candidates: { use: ToolUseBlock; functionArn: string; needsApproval: boolean }[] = [];
  for (const use of uses) {
    const tool = ctx.tools.get(use.name);
    if (!tool) {
      inlineResults.push(unknownToolResult(use.id, use.name));
      denials.push({ callId: use.id, tool: use.name, reason: 'not_declared' });
      continue;
    }
    const authorization = ctx.authorize(use);
    if (!authorization.allowed) {
      inlineResults.push(unknownToolResult(use.id, use.name));
      denials.push({ callId: use.id, tool: use.name, reason: 'denied', policies: authorization.policies, policyVersion: authorization.version, errors: authorization.errors.length > 0 ? authorization.errors : undefined });
      continue;
    }
    candidates.push({ use, functionArn: tool.functionArn, needsApproval: tool.needsApproval });
  }
  const budgets = new Map([...ctx.tools].map(([name, t]) => [name, t.budget]));
  const admission = admitToolCalls(candidates.map((c) => ({ callId: c.use.id, tool: c.use.name })), ctx.callsSoFar, budgets);
  const admitted = new Set(admission.admitted);
  const calls: ToolCallRef[] = [];
  for (const { use, functionArn, needsApproval } of candidates) {
    if (!admitted.has(use.id)) {
      const exceeded = admission.exceeded.find((e) => e.callId === use.id);
      inlineResults.push(
        errorResult(use.id, 'TOOL_BUDGET_EXCEEDED', `${use.name} may be called at most ${exceeded?.callsPerSession ?? 0} time(s) per session; this call was not run. Continue without it.`),
      );
      denials.push({ callId: use.id, tool: use.name, reason: 'budget_exceeded' });
    } else if (calls.length >= MAX_TOOL_CALLS_PER_TURN) {
      inlineResults.push(errorResult(use.id, 'TOO_MANY_CALLS', `At most ${MAX_TOOL_CALLS_PER_TURN} tool calls per turn; this one was not run.`));
    } else {
      calls.push({ callId: use.id, tool: use.name, functionArn, needsApproval });
    }
  }
  return { outcome: 'tool_calls', calls, inlineResults, denials };
}

/** The failure of a run whose final answer stayed invalid after `maxOutputRepairs` repairs. */
export function outputValidationFailure(maxOutputRepairs: number, validationErrors: readonly string[]): Failure {
  return outputFailure('OutputValidationFailed', maxOutputRepairs, validationErrors);
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
