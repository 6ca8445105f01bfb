/**
 * The agent's context limit, pure: how big a model request is (an estimate in
 * tokens), and which tool results are replaced, and by what, so that it fits the
 * model's window. Nothing overflows silently: a request that does not fit even
 * with every tool result replaced fails the run with `ContextLimitExceeded`, and
 * what the limit did is recorded in the model checkpoint ({@link contextRecord}).
 *
 * Only tool results shrink. The system prompt, the tool specs, the input prompt,
 * the assistant's turns and the repair messages are sent as they are: they count
 * towards the limit but are never cut (cutting them would change what the model
 * was asked, or what it said).
 */
import { z } from 'zod';
import { CONTEXT_STRATEGIES, type CheckpointRecord, type ToolCheckpoint } from './contracts/checkpoint';
import type { Failure } from './contracts/loop';
import type { ToolSpec } from './contracts/model';
import { droppedResultNote } from './loop';
import { repairMessage } from './output';

/**
 * UTF-8 bytes per token in {@link estimateTokens}: the providers' rule of thumb of
 * about 4 characters per token for English text (OpenAI's tokenizer guide). Applied
 * to bytes rather than characters it is conservative for text outside ASCII (2-4
 * bytes a character); it is still an estimate, not a bound: dense JSON, digits, CJK
 * text or some tokenizers (Anthropic quotes about 3.5 characters a token for Claude)
 * take more tokens than it says. Set `maxContextTokens` with headroom below the
 * model's window (e.g. 80 %); a provider refuses an over-long request rather than
 * truncating it, so an underestimate fails the call, it does not overflow silently.
 */
export const ESTIMATED_BYTES_PER_TOKEN = 4;

/**
 * Most UTF-8 bytes of a summary's body (before its closing note): 1 KiB, about 256 tokens
 * by {@link ESTIMATED_BYTES_PER_TOKEN}. The runtime's choice: room for the 150 words
 * {@link SUMMARY_SYSTEM_PROMPT} asks for, while a summary stays much smaller than the results worth replacing.
 */
export const SUMMARY_MAX_BYTES = 1024;
/** Most characters of a string value, or of a line, quoted in a summary. */
export const SUMMARY_MAX_VALUE_CHARS = 120;

/**
 * How a request larger than the agent's context limit is cut down:
 * - `drop-oldest-tool-results`: the oldest tool results are replaced by a note
 *   ({@link droppedResultNote}) until the request fits;
 * - `summarise`: the oldest tool results are replaced by an extractive summary
 *   ({@link summariseResult}) until the request fits;
 * - `fail`: the run fails with `ContextLimitExceeded`.
 * Whatever the strategy, a request that does not fit with every tool result
 * replaced fails the run with `ContextLimitExceeded`.
 */
export const ContextStrategySchema = z.enum(CONTEXT_STRATEGIES, {
  error: 'must be drop-oldest-tool-results, summarise or fail',
});

/** How a request larger than the agent's context limit is cut down (see {@link ContextStrategySchema}). */
export type ContextStrategy = z.infer<typeof ContextStrategySchema>;

const positiveInteger = z.number({ error: 'must be a positive integer' }).int({ error: 'must be a positive integer' }).positive({ error: 'must be a positive integer' });

/**
 * The agent's context limit: at least one of the two sizes, and the strategy above it.
 * - `maxToolResultBytes`: the most bytes of tool results sent in full in one request
 *   (replacements are not counted: they are bounded, and counted in the token estimate);
 * - `maxContextTokens`: the model's context window, in tokens: the whole request
 *   (system prompt, tool specs, every message) estimated by {@link estimateTokens},
 *   plus the output tokens the request reserves, must fit in it.
 *
 * Example: `{"maxContextTokens":180000,"strategy":"summarise"}`; the older
 * `{"maxToolResultBytes":200000,"strategy":"drop-oldest-tool-results"}` still holds.
 */
export const ContextLimitSchema = z
  .strictObject(
    {
      maxToolResultBytes: positiveInteger.optional(),
      maxContextTokens: positiveInteger.optional(),
      strategy: ContextStrategySchema,
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? `has unknown key(s): ${issue.keys.join(', ')}` : 'must be an object') },
  )
  .refine((limit) => limit.maxToolResultBytes !== undefined || limit.maxContextTokens !== undefined, {
    error: 'must set maxToolResultBytes, maxContextTokens or both',
  });

/** The agent's context limit (see {@link ContextLimitSchema}). */
export type ContextLimit = z.infer<typeof ContextLimitSchema>;

/**
 * What is wrong with an agent's context limit, one message per problem naming the
 * field (empty: nothing, or no limit). Besides the schema, `maxContextTokens` must
 * leave room for the input once the agent's `maxOutputTokens` are reserved for the answer.
 * Example: `["context.maxToolResultBytes must be a positive integer"]`
 */
export function contextLimitProblems(limit: unknown, maxOutputTokens: number): string[] {
  if (limit === undefined) return [];
  const parsed = ContextLimitSchema.safeParse(limit);
  if (!parsed.success) return parsed.error.issues.map((issue) => `${['context', ...issue.path.map(String)].join('.')} ${issue.message}`);
  const tokens = parsed.data.maxContextTokens;
  if (tokens !== undefined && tokens <= maxOutputTokens) {
    return [`context.maxContextTokens must be more than maxOutputTokens (${maxOutputTokens}), which every request reserves for the answer`];
  }
  return [];
}

/**
 * The tokens `text` is estimated to take: its UTF-8 bytes over
 * {@link ESTIMATED_BYTES_PER_TOKEN}, rounded up. Deterministic and
 * provider-independent; an estimate, not a tokenizer.
 */
export function estimateTokens(text: string): number {
  return tokensOfBytes(Buffer.byteLength(text));
}

function tokensOfBytes(bytes: number): number {
  return Math.ceil(bytes / ESTIMATED_BYTES_PER_TOKEN);
}

/** The size in bytes of a tool result, inline or stored in S3 (the size its reference records). */
export function toolResultBytes(tool: ToolCheckpoint): number {
  return tool.result !== undefined ? Buffer.byteLength(tool.result) : (tool.resultRef?.bytes ?? 0);
}

/**
 * The parts of a model request that are not rebuilt from checkpoints.
 * Example: `{"system":"You investigate…","tools":[{"name":"echo",…}],"maxOutputTokens":4096}`
 */
export interface ContextFrame {
  /** The system prompt. */
  readonly system: string;
  /** The tools offered, counted as their JSON. */
  readonly tools: readonly ToolSpec[];
  /** Output tokens the request reserves for the answer (its `maxTokens`), counted against `maxContextTokens`. @default 0 */
  readonly maxOutputTokens?: number;
}

/**
 * What the context limit does to one request.
 * Example: `{"limit":{"maxContextTokens":8000,"strategy":"summarise"},"replaced":Map{"CP#000001#tool#c1"→"total: 3…"},"dropped":0,"summarised":1,"exceeded":false,"toolResultBytes":4100,"estimatedTokens":3900,"reservedOutputTokens":1024}`
 */
export interface ContextPlan {
  /** The limit applied; undefined when the agent has none (nothing is replaced). */
  readonly limit: ContextLimit | undefined;
  /** Sort key of a tool checkpoint → the text the model sees instead of its result. */
  readonly replaced: ReadonlyMap<string, string>;
  /** Results replaced by a note ({@link droppedResultNote}). */
  readonly dropped: number;
  /** Results replaced by a summary ({@link summariseResult}). */
  readonly summarised: number;
  /** Sort keys of the results replaced by a summary (the others in `replaced` are notes). */
  readonly summarisedKeys: readonly string[];
  /** The request does not fit: the run fails with `ContextLimitExceeded` ({@link contextLimitFailure}). */
  readonly exceeded: boolean;
  /** Bytes of the tool results sent in full (all of them, when `exceeded` under `fail`). */
  readonly toolResultBytes: number;
  /** Estimated input tokens of the request as planned (system prompt, tool specs, messages, replacements). */
  readonly estimatedTokens: number;
  /** Output tokens the request reserves ({@link ContextFrame.maxOutputTokens}). */
  readonly reservedOutputTokens: number;
}

/**
 * Plans the context of one model request under `limit`: the request's size is
 * estimated from `frame` and the checkpoints `buildConversation` sends (the input's
 * prompt, each turn's assistant content, inline results, repair messages and tool
 * results); while it is over a limit, tool results are replaced, oldest first (by
 * step, then sort key), by a note (`drop-oldest-tool-results`) or a summary
 * (`summarise`); under `fail` nothing is replaced and the plan is `exceeded`.
 * A result no larger than its replacement is kept in full when only the token
 * limit is over (replacing it would not shrink the request). The plan is
 * `exceeded` when the request does not fit even with every result replaced.
 *
 * Bodies: sizes come from the records (`resultRef.bytes` for a result in S3,
 * `responseRef.bytes`, the whole stored answer, for an answer in S3), so a plan
 * that only drops needs no body. A summary needs the result: under `summarise`,
 * load the tool results' bodies first; a result whose body is not loaded is
 * dropped (a note, counted in `dropped`) rather than summarised.
 *
 * Deterministic: the same records, limit and frame give the same plan.
 */
export function planContext(records: readonly CheckpointRecord[], limit: ContextLimit | undefined, frame: ContextFrame): ContextPlan {
  const tools = records.filter((r): r is ToolCheckpoint => r.kind === 'tool').sort((a, b) => a.step - b.step || (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0));
  const reservedOutputTokens = frame.maxOutputTokens ?? 0;
  let fullBytes = tools.reduce((sum, t) => sum + toolResultBytes(t), 0);
  let requestBytes = frameBytes(frame) + conversationBytes(records) + fullBytes;
  const bytesOver = (): boolean => limit?.maxToolResultBytes !== undefined && fullBytes > limit.maxToolResultBytes;
  const tokensOver = (): boolean => limit?.maxContextTokens !== undefined && tokensOfBytes(requestBytes) + reservedOutputTokens > limit.maxContextTokens;
  const replaced = new Map<string, string>();
  let dropped = 0;
  const summarisedKeys: string[] = [];

  if (limit && limit.strategy !== 'fail') {
    for (const tool of tools) {
      if (!bytesOver() && !tokensOver()) break;
      const bytes = toolResultBytes(tool);
      const summary = limit.strategy === 'summarise' && tool.result !== undefined;
      const text = summary ? summariseResult(tool.result ?? '') : droppedResultNote(tool);
      const textBytes = Buffer.byteLength(text);
      if (!bytesOver() && textBytes >= bytes) continue;
      replaced.set(tool.sk, text);
      fullBytes -= bytes;
      requestBytes += textBytes - bytes;
      if (summary) summarisedKeys.push(tool.sk);
      else dropped += 1;
    }
  }
  return {
    limit,
    replaced,
    dropped,
    summarised: summarisedKeys.length,
    summarisedKeys,
    exceeded: bytesOver() || tokensOver(),
    toolResultBytes: fullBytes,
    estimatedTokens: tokensOfBytes(requestBytes),
    reservedOutputTokens,
  };
}

/** Bytes of the system prompt and of the tool specs as JSON. */
function frameBytes(frame: ContextFrame): number {
  return Buffer.byteLength(frame.system) + Buffer.byteLength(JSON.stringify(frame.tools));
}

/**
 * Bytes of the conversation without its tool results: the input's prompt; per
 * model turn, the assistant content as JSON (or the stored answer's size when it
 * is in S3), its inline results, and the repair message of a rejected answer
 * (the text `buildConversation` sends).
 */
function conversationBytes(records: readonly CheckpointRecord[]): number {
  let bytes = 0;
  for (const r of records) {
    if (r.kind === 'input') bytes += Buffer.byteLength(r.prompt);
    if (r.kind !== 'model') continue;
    bytes += r.response ? Buffer.byteLength(JSON.stringify(r.response.content)) : (r.responseRef?.bytes ?? 0);
    for (const inline of r.inlineResults) bytes += Buffer.byteLength(inline.content);
    if (r.outcome === 'repair') bytes += Buffer.byteLength(repairMessage(r.validationErrors ?? []));
  }
  return bytes;
}

/**
 * A deterministic extractive summary of a tool result, at most
 * {@link SUMMARY_MAX_BYTES} bytes before its closing note:
 * - a JSON object: its top-level keys, each with its value when scalar (strings cut
 *   to {@link SUMMARY_MAX_VALUE_CHARS} characters), the length of an array, the key
 *   count of an object;
 * - a JSON array: its length and its first item (shape or scalar);
 * - a JSON string, or text that is not JSON: its first and last lines;
 * - another JSON scalar: itself.
 * It ends with "(summarised from N bytes: the context limit keeps the newest tool
 * results in full; call the tool again for the full result)".
 *
 * Extractive on purpose: no model call, so the plan stays pure and a replayed turn
 * sees the same text. An agent with a `summarise` route gets a model's summary
 * instead ({@link summaryText}), checkpointed so that a replayed turn sees the same text.
 */
export function summariseResult(result: string): string {
  return summaryText(summaryBody(result), Buffer.byteLength(result));
}

/**
 * A summary as the model sees it in place of a tool result of `bytes` bytes: `body`
 * cut to {@link SUMMARY_MAX_BYTES} bytes (the size the context plan counted), then
 * the closing note. `by`, when given, names the model that wrote it.
 */
export function summaryText(body: string, bytes: number, by?: string): string {
  const from = by ? `summarised by ${by} from ${bytes} bytes` : `summarised from ${bytes} bytes`;
  return `${truncateUtf8(body.trim(), SUMMARY_MAX_BYTES)}\n(${from}: the context limit keeps the newest tool results in full; call the tool again for the full result)`;
}

/** The system prompt of a `summarise` step: a tool result, cut to what the agent needs. */
export const SUMMARY_SYSTEM_PROMPT =
  'You summarise one tool result for an agent whose context is full. Keep every identifier, number, date, name and finding the agent may need; drop repetition and formatting. Answer with the summary only, in plain text, at most 150 words.';

/** The most output tokens of a `summarise` step (its text is cut to {@link SUMMARY_MAX_BYTES} anyway). */
export const SUMMARY_MAX_OUTPUT_TOKENS = 400;

function summaryBody(result: string): string {
  let json: unknown;
  try {
    json = JSON.parse(result);
  } catch {
    return textSummary(result);
  }
  if (typeof json === 'string') return textSummary(json);
  if (Array.isArray(json)) {
    const first: unknown = json[0];
    return json.length === 0 ? 'JSON array of 0 items' : `JSON array of ${json.length} item(s); the first: ${shape(first)}`;
  }
  if (json !== null && typeof json === 'object') {
    const entries = Object.entries(json);
    return [`JSON object with ${entries.length} key(s):`, ...entries.map(([key, value]) => `- ${key}: ${shape(value)}`)].join('\n');
  }
  return result.trim();
}

/** A value in a summary: a scalar as JSON (strings cut), an array by its length, an object by its keys. */
function shape(value: unknown): string {
  if (Array.isArray(value)) return `array of ${value.length} item(s)`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    return `object with ${keys.length} key(s)${keys.length > 0 ? ` (${cut(keys.join(', '))})` : ''}`;
  }
  if (typeof value === 'string') return JSON.stringify(cut(value));
  return JSON.stringify(value);
}

/** The first and last non-blank lines of `text` (cut), with how many lines lie between them. */
function textSummary(text: string): string {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const first = lines[0];
  const last = lines[lines.length - 1];
  if (first === undefined || last === undefined) return '(empty)';
  if (lines.length === 1) return cut(first);
  const between = lines.length - 2;
  return [cut(first), ...(between > 0 ? [`[… ${between} more line(s) …]`] : []), cut(last)].join('\n');
}

/** `text` cut to {@link SUMMARY_MAX_VALUE_CHARS} characters (code points), marked with "…" when cut. */
function cut(text: string): string {
  // A code point is at most 2 UTF-16 units: this head holds the first MAX + 1 code points, or all of `text`.
  const chars = Array.from(text.slice(0, 2 * SUMMARY_MAX_VALUE_CHARS + 2));
  return chars.length > SUMMARY_MAX_VALUE_CHARS ? `${chars.slice(0, SUMMARY_MAX_VALUE_CHARS).join('')}…` : text;
}

/** `text` cut to at most `maxBytes` UTF-8 bytes on a code point boundary, ending with "…" when cut. */
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const budget = maxBytes - Buffer.byteLength('…');
  let used = 0;
  let out = '';
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (used + size > budget) break;
    used += size;
    out += ch;
  }
  return `${out}…`;
}

/**
 * What a model checkpoint records of its context plan (`ModelCheckpoint.context`),
 * or undefined when the agent has no context limit.
 * Example: `{"toolResultBytes":4100,"droppedToolResults":0,"summarisedToolResults":1,"estimatedTokens":3900,"maxContextTokens":8000,"strategy":"summarise"}`
 */
export interface ContextRecord {
  /** Bytes of tool results sent in full. */
  readonly toolResultBytes: number;
  /** Oldest results replaced by a note. */
  readonly droppedToolResults: number;
  /** Oldest results replaced by a summary. */
  readonly summarisedToolResults: number;
  /** Estimated input tokens of the request sent. */
  readonly estimatedTokens: number;
  /** The token limit, when the agent set one. */
  readonly maxContextTokens?: number;
  /** The limit's strategy ({@link ContextStrategySchema}). */
  readonly strategy: ContextStrategy;
}

/** The record of `plan` for the model checkpoint; undefined when no limit applied. */
export function contextRecord(plan: ContextPlan): ContextRecord | undefined {
  if (!plan.limit) return undefined;
  return {
    toolResultBytes: plan.toolResultBytes,
    droppedToolResults: plan.dropped,
    summarisedToolResults: plan.summarised,
    estimatedTokens: plan.estimatedTokens,
    ...(plan.limit.maxContextTokens !== undefined ? { maxContextTokens: plan.limit.maxContextTokens } : {}),
    strategy: plan.limit.strategy,
  };
}

/**
 * The `ContextLimitExceeded` failure of an exceeded plan (`plan.exceeded`), naming the limit it is over:
 * the tool-result bytes (checked first), or the estimated tokens plus the reserved
 * output against `maxContextTokens`, and what the strategy already replaced.
 */
export function contextLimitFailure(plan: ContextPlan): Failure {
  const limit = plan.limit;
  if (limit?.maxToolResultBytes !== undefined && plan.toolResultBytes > limit.maxToolResultBytes) {
    return { error: 'ContextLimitExceeded', cause: `tool results of ${plan.toolResultBytes} bytes exceed the agent's context limit of ${limit.maxToolResultBytes} bytes` };
  }
  const replaced = plan.replaced.size > 0 ? `, with ${plan.replaced.size} tool result(s) replaced (${limit?.strategy ?? 'no strategy'})` : '';
  return {
    error: 'ContextLimitExceeded',
    cause: `the request's estimated ${plan.estimatedTokens} tokens plus ${plan.reservedOutputTokens} reserved for the answer exceed the context limit of ${limit?.maxContextTokens ?? 0} tokens${replaced}`,
  };
}
