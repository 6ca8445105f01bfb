/**
 * Budgets, pure: the per-run limits (tokens, cost, steps, wall clock, sub-agent
 * depth), the per-tool limits (calls per session, cost per call), the price table
 * that turns token usage into USD, and the accounting of a session's spend from
 * its checkpoints.
 */
import { z } from 'zod';
import { BUDGET_THRESHOLD_FRACTION } from './constants';
import type { CheckpointRecord, ModelCheckpoint, ToolCheckpoint } from './contracts/checkpoint';
import type { Usage } from './contracts/model';
import { CorruptCheckpointError } from './errors';

/**
 * The per-run budgets. Every field is optional (absent: no limit). Agent defaults,
 * overridden per trigger field by field; raised at run time by `raise-budget`.
 * Example: `{"costUsd":2,"inputTokens":200000,"outputTokens":20000,"steps":12,"wallClockSeconds":900,"subAgentDepth":2}`
 */
export const BudgetsSchema = z
  .object({
    /** Input (prompt) tokens over all model calls of the run. */
    inputTokens: z.number().int().positive().optional(),
    /** Output (completion) tokens over all model calls of the run. */
    outputTokens: z.number().int().positive().optional(),
    /** Cost in USD of the run's model calls (price table) and tool calls (their declared cost per call). */
    costUsd: z.number().positive().optional(),
    /** Model turns. */
    steps: z.number().int().positive().optional(),
    /** Seconds since the run started, not counting time paused on a budget. */
    wallClockSeconds: z.number().int().positive().optional(),
    /** How deep a chain of sub-agents this run may start (0: none). */
    subAgentDepth: z.number().int().nonnegative().optional(),
  })
  .strict();

/** The per-run budgets. */
export type Budgets = z.infer<typeof BudgetsSchema>;
/** A budget's name: `inputTokens`, `outputTokens`, `costUsd`, `steps`, `wallClockSeconds`, `subAgentDepth`. */
export type BudgetName = keyof Budgets;

/**
 * A tool's own budget. Example: `{"callsPerSession":20,"costPerCallUsd":0.0005}`
 */
export const ToolBudgetSchema = z
  .object({
    /** Calls of this tool one session may make; further calls get `TOOL_BUDGET_EXCEEDED` without running. */
    callsPerSession: z.number().int().positive().optional(),
    /** What one call costs, USD; counted against the run's `costUsd`. */
    costPerCallUsd: z.number().nonnegative().optional(),
  })
  .strict();

/** A tool's own budget. */
export type ToolBudget = z.infer<typeof ToolBudgetSchema>;

/**
 * A model's token prices. Example: `{"inputUsdPerMillionTokens":3,"outputUsdPerMillionTokens":15,"source":"https://www.anthropic.com/pricing","asOf":"2026-11-21"}`
 */
export interface ModelPrice {
  /** USD per 1,000,000 input tokens. */
  readonly inputUsdPerMillionTokens: number;
  /** USD per 1,000,000 output tokens. */
  readonly outputUsdPerMillionTokens: number;
  /** Where the figures come from (the provider's price page). */
  readonly source: string;
  /** When they were read, ISO 8601 date. */
  readonly asOf: string;
}

// ---------------------------------------------------------------------------
// Price table
// ---------------------------------------------------------------------------

/** The date the price pages below were read (none of them states a date of its own). */
const READ_ON = '2026-11-21';

/** Anthropic's price list: "Model pricing" table, base input tokens and output tokens. */
const ANTHROPIC_PRICING = 'https://platform.claude.com/docs/en/about-claude/pricing';
/** Anthropic's model page of Claude Sonnet 5.5 (its price, and Opus 5.5's in its comparison table). */
const ANTHROPIC_SONNET_5_5 = 'https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview';
/** Anthropic's model page of Claude Sonnet 5. */
const ANTHROPIC_SONNET_5 = 'https://platform.claude.com/docs/pt-BR/models/sonnet-5/overview';
/** OpenAI's price list, "Text tokens", Standard tier. */
const OPENAI_PRICING = 'https://developers.openai.com/api/docs/pricing';
/** Amazon Bedrock's price list, On-Demand, Amazon Nova, US East (N. Virginia). */
const BEDROCK_PRICING = 'https://aws.amazon.com/bedrock/pricing/';

const price = (inputUsdPerMillionTokens: number, outputUsdPerMillionTokens: number, source: string): ModelPrice => ({
  inputUsdPerMillionTokens,
  outputUsdPerMillionTokens,
  source,
  asOf: READ_ON,
});

/**
 * What models cost, USD per 1,000,000 tokens (list price, on-demand, no batch, no
 * prompt caching), keyed by model id without date or version suffix; {@link priceOf}
 * finds an entry for the ids the providers use (`claude-sonnet-4-5-20250929`,
 * `us.anthropic.claude-sonnet-4-5-20250929-v1:0`, `gpt-4o-2024-08-06`, `amazon.nova-pro-v1:0`).
 * No page states a date: every `asOf` is the day the figures were read, 2026-11-21.
 *
 * | model | input | output | source |
 * | --- | --- | --- | --- |
 * | `claude-opus-5-5` | 4 | 20 | Anthropic, Sonnet 5.5 model page (comparison table): https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview |
 * | `claude-opus-5`, `claude-opus-4-8`, `-4-7`, `-4-6`, `-4-5` | 5 | 25 | Anthropic pricing: https://platform.claude.com/docs/en/about-claude/pricing |
 * | `claude-opus-4-1` | 15 | 75 | Anthropic pricing (retired on the Claude API; still on Bedrock) |
 * | `claude-sonnet-5-5` | 2 | 10 | Anthropic, Sonnet 5.5 model page |
 * | `claude-sonnet-5` | 2 | 10 | Anthropic, Sonnet 5 model page: https://platform.claude.com/docs/pt-BR/models/sonnet-5/overview |
 * | `claude-sonnet-4-6`, `claude-sonnet-4-5` | 3 | 15 | Anthropic pricing |
 * | `claude-haiku-4-5` | 1 | 5 | Anthropic pricing |
 * | `gpt-5` | 1.25 | 10 | OpenAI pricing: https://developers.openai.com/api/docs/pricing |
 * | `gpt-5-mini` | 0.25 | 2 | OpenAI pricing |
 * | `gpt-5-nano` | 0.05 | 0.40 | OpenAI pricing |
 * | `gpt-4.1` | 2 | 8 | OpenAI pricing |
 * | `gpt-4.1-mini` | 0.40 | 1.60 | OpenAI pricing |
 * | `gpt-4.1-nano` | 0.10 | 0.40 | OpenAI pricing |
 * | `gpt-4o` | 2.50 | 10 | OpenAI pricing |
 * | `gpt-4o-2024-05-13` | 5 | 15 | OpenAI pricing (the first gpt-4o snapshot kept its launch price) |
 * | `gpt-4o-mini` | 0.15 | 0.60 | OpenAI pricing |
 * | `amazon.nova-pro` | 0.80 | 3.20 | Amazon Bedrock pricing, us-east-1: https://aws.amazon.com/bedrock/pricing/ |
 * | `amazon.nova-lite` | 0.06 | 0.24 | Amazon Bedrock pricing, us-east-1 |
 * | `amazon.nova-micro` | 0.035 | 0.14 | Amazon Bedrock pricing, us-east-1 |
 *
 * How the figures were found: Anthropic's from the stored copies of its own pages named
 * above. OpenAI's and Amazon's own pages were not in the stored copies with their tables;
 * their figures are as quoted from those pages by several independent copies that agree
 * (OpenAI: hex.pm `openai_responses` pricing.ex citing platform.openai.com/docs/pricing,
 * deploybase.ai/articles/openai-pricing, github/docs copilot models-and-pricing.yml;
 * Nova: techdailyfeed.com quoting the Bedrock pricing page, pristren.com, tokenmix.ai).
 *
 * Left out, rather than guessed: Claude Haiku 5.5 (priced in two bands by prompt length,
 * which one flat price cannot express), Claude Fable and Mythos (no model id found),
 * Amazon Nova Premier and Nova 2 (no figure found), and every model not named here.
 *
 * Known limits of a flat per-token price, all of which under-count: prompt-cache writes
 * (1.25x or 2x input on Anthropic), long-context surcharges (Sonnet 4 and 4.5 above 200K
 * input tokens with the 1M-context beta), Anthropic's US-only inference (`inference_geo`,
 * 1.1x), and Amazon Bedrock's Geo and In-Region inference profiles of Claude 4.5 and later,
 * which Bedrock prices above the global profile (10% more, per clauder-navi.com's
 * Bedrock Claude pricing guide; AWS's own guide calls global "the lowest cost"): the
 * table prices Claude on Bedrock at the Anthropic list price. Cache reads (0.1x) over-count.
 * Where that matters, give the agent's model `pricing` (`ModelRef.pricing`), which wins.
 */
export const PRICE_TABLE: Readonly<Record<string, ModelPrice>> = {
  'claude-opus-5-5': price(4, 20, ANTHROPIC_SONNET_5_5),
  'claude-opus-5': price(5, 25, ANTHROPIC_PRICING),
  'claude-opus-4-8': price(5, 25, ANTHROPIC_PRICING),
  'claude-opus-4-7': price(5, 25, ANTHROPIC_PRICING),
  'claude-opus-4-6': price(5, 25, ANTHROPIC_PRICING),
  'claude-opus-4-5': price(5, 25, ANTHROPIC_PRICING),
  'claude-opus-4-1': price(15, 75, ANTHROPIC_PRICING),
  'claude-sonnet-5-5': price(2, 10, ANTHROPIC_SONNET_5_5),
  'claude-sonnet-5': price(2, 10, ANTHROPIC_SONNET_5),
  'claude-sonnet-4-6': price(3, 15, ANTHROPIC_PRICING),
  'claude-sonnet-4-5': price(3, 15, ANTHROPIC_PRICING),
  'claude-haiku-4-5': price(1, 5, ANTHROPIC_PRICING),
  'gpt-5': price(1.25, 10, OPENAI_PRICING),
  'gpt-5-mini': price(0.25, 2, OPENAI_PRICING),
  'gpt-5-nano': price(0.05, 0.4, OPENAI_PRICING),
  'gpt-4.1': price(2, 8, OPENAI_PRICING),
  'gpt-4.1-mini': price(0.4, 1.6, OPENAI_PRICING),
  'gpt-4.1-nano': price(0.1, 0.4, OPENAI_PRICING),
  'gpt-4o': price(2.5, 10, OPENAI_PRICING),
  'gpt-4o-2024-05-13': price(5, 15, OPENAI_PRICING),
  'gpt-4o-mini': price(0.15, 0.6, OPENAI_PRICING),
  'amazon.nova-pro': price(0.8, 3.2, BEDROCK_PRICING),
  'amazon.nova-lite': price(0.06, 0.24, BEDROCK_PRICING),
  'amazon.nova-micro': price(0.035, 0.14, BEDROCK_PRICING),
};

/** Bedrock inference-profile prefixes: `global.`, and the geographies `us.`, `us-gov.`, `eu.`, `apac.`, `jp.`, `au.`, `ca.`. */
const BEDROCK_PROFILE_PREFIX = /^(?:global|us|us-gov|eu|apac|jp|au|ca)\./;
/** Bedrock's model version suffix: `-v1:0`, `-v2`. */
const BEDROCK_VERSION_SUFFIX = /-v\d+(?::\d+)?$/;
/** A snapshot date: Anthropic's `-20250929`, OpenAI's `-2024-08-06`. */
const SNAPSHOT_DATE_SUFFIX = /-(?:\d{8}|\d{4}-\d{2}-\d{2})$/;
/** Bedrock's provider prefix of Anthropic models (priced as on the Claude API; see {@link PRICE_TABLE}). */
const BEDROCK_ANTHROPIC_PREFIX = /^anthropic\./;

/**
 * The token prices of a model: `override` when given (the agent's `ModelRef.pricing`),
 * else the {@link PRICE_TABLE} entry of `modelId`, else of the id normalised by these
 * steps, in order, looking the id up again after each:
 * 1. drop a Bedrock inference-profile prefix (`us.`, `eu.`, `apac.`, `global.`, …);
 * 2. drop a Bedrock version suffix (`-v1:0`);
 * 3. drop a snapshot date (`-20250929`, `-2024-08-06`);
 * 4. drop Bedrock's `anthropic.` provider prefix.
 *
 * So `us.anthropic.claude-sonnet-4-5-20250929-v1:0` → `claude-sonnet-4-5`, and
 * `gpt-4o-2024-08-06` → `gpt-4o` while `gpt-4o-2024-05-13`, listed itself, keeps its own
 * price. Matching is exact (case-sensitive) at every step.
 * @returns the price, or `undefined` when neither the override nor the table knows the model
 *   (its calls then cost 0; see {@link modelCallCostUsd}).
 */
export function priceOf(modelId: string, override?: ModelPrice): ModelPrice | undefined {
  if (override) return override;
  let id = modelId;
  const found = (): ModelPrice | undefined => (Object.hasOwn(PRICE_TABLE, id) ? PRICE_TABLE[id] : undefined);
  for (const pattern of [BEDROCK_PROFILE_PREFIX, BEDROCK_VERSION_SUFFIX, SNAPSHOT_DATE_SUFFIX, BEDROCK_ANTHROPIC_PREFIX]) {
    const hit = found();
    if (hit) return hit;
    id = id.replace(pattern, '');
  }
  return found();
}

/** Rounds a USD amount to 1e-9 (a billionth of a dollar), removing float noise (0.1 + 0.2). */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

/**
 * What one model call cost, USD: input tokens × input price + output tokens × output
 * price, per million, rounded to 1e-9 ({@link roundUsd}).
 * @returns 0 when `price` is `undefined` (a model the table does not know, such as a
 *   scripted one without `pricing`): its tokens still count against the token budgets,
 *   but not against `costUsd`.
 */
export function modelCallCostUsd(usage: Usage, price: ModelPrice | undefined): number {
  if (!price) return 0;
  return roundUsd((usage.inputTokens * price.inputUsdPerMillionTokens + usage.outputTokens * price.outputUsdPerMillionTokens) / 1_000_000);
}

// ---------------------------------------------------------------------------
// Spend
// ---------------------------------------------------------------------------

/**
 * What a session has spent so far. Example:
 * `{"inputTokens":5120,"outputTokens":410,"costUsd":0.021510,"steps":3,"wallClockSeconds":42,"toolCalls":{"lookup_host":2}}`
 */
export type Spend = {
  /** Input tokens of all model calls. */
  readonly inputTokens: number;
  /** Output tokens of all model calls. */
  readonly outputTokens: number;
  /** USD of model calls and tool calls, rounded to 1e-9. */
  readonly costUsd: number;
  /** Model turns (model checkpoints). */
  readonly steps: number;
  /** Whole seconds since the session was created, less the time paused on budgets. */
  readonly wallClockSeconds: number;
  /** Calls that ran, per tool name (see {@link TOOL_STATUSES_THAT_RAN}). */
  readonly toolCalls: Readonly<Record<string, number>>;
};

/**
 * Tool checkpoint statuses of a call that ran, and so count against the tool's
 * `callsPerSession`: `succeeded`, `tool_error` (it ran and failed), `outcome_unknown`
 * (it may have acted). Not counted: `invalid_input` (the input failed validation before
 * the handler), `rejected` (an approver said no), `denied` (policy). Calls refused on a
 * used-up tool budget have no tool checkpoint (they are `denials` of the model checkpoint).
 */
export const TOOL_STATUSES_THAT_RAN: readonly ToolCheckpoint['status'][] = ['succeeded', 'tool_error', 'outcome_unknown'];

/**
 * Sums a session's spend from its checkpoint records: model checkpoints' `usage`
 * (or, when absent, as in version 1 records, `response.usage`) and `costUsd`, with those
 * of the summaries a `summarise` model wrote in the turn (`context.summaries`); tool
 * checkpoints' `costUsd`; one step per model checkpoint; tool calls per tool of the tool
 * checkpoints whose status is in {@link TOOL_STATUSES_THAT_RAN}. An absent `costUsd` counts 0.
 * Other kinds of record are ignored.
 *
 * Every record passed is counted. Pass the abandoned checkpoints of rollbacks too: what
 * they spent was spent, and a rollback must not be a way around a budget.
 *
 * @param session the session head: `createdAt` (ISO 8601) and `pausedSeconds` (time paused on budgets, default 0).
 * @param now the current time, ms since the epoch.
 * @returns the spend; `wallClockSeconds` = floor((now − createdAt) / 1000 − pausedSeconds), at least 0.
 * @throws CorruptCheckpointError when `session.createdAt` is not a date.
 */
export function spendOf(records: readonly CheckpointRecord[], session: { createdAt: string; pausedSeconds?: number }, now: number): Spend {
  const toolCalls: Record<string, number> = {};
  const spent: Mutable<Spend> = { inputTokens: 0, outputTokens: 0, costUsd: 0, steps: 0, wallClockSeconds: 0, toolCalls };
  for (const record of records) {
    if (record.kind === 'model') {
      accrueModelRecord(spent, record);
    } else if (record.kind === 'tool') {
      spent.costUsd += record.costUsd ?? 0;
      if (TOOL_STATUSES_THAT_RAN.includes(record.status)) toolCalls[record.tool] = (toolCalls[record.tool] ?? 0) + 1;
    }
  }
  const created = Date.parse(session.createdAt);
  if (Number.isNaN(created)) throw new CorruptCheckpointError(`session createdAt is not a date: ${JSON.stringify(session.createdAt)}`);
  const wallClockSeconds = Math.max(0, Math.floor((now - created) / 1000 - (session.pausedSeconds ?? 0)));
  return { ...spent, costUsd: roundUsd(spent.costUsd), wallClockSeconds };
}

/**
 * A spend with one model checkpoint added, as {@link spendOf} counts it: one step; the
 * checkpoint's `usage` (or, when absent, as in version 1 records, `response.usage`) and
 * `costUsd` (absent: 0); and the usage and cost of the summaries a `summarise` model
 * wrote in the turn (`context.summaries`, not a step of their own). `wallClockSeconds`
 * and `toolCalls` are kept. For a turn just checkpointed, not yet among the records read.
 * Example: `addModelRecord({"inputTokens":100,"outputTokens":10,"costUsd":0.0005,"steps":1,…}, {usage:{inputTokens:120,outputTokens:8},costUsd:0.00048,…})`
 * → `{"inputTokens":220,"outputTokens":18,"costUsd":0.00098,"steps":2,…}`
 * @returns a new spend; `costUsd` rounded to 1e-9 ({@link roundUsd}), like {@link spendOf}'s.
 */
export function addModelRecord(spend: Spend, record: ModelCheckpoint): Spend {
  const added: Mutable<Spend> = { ...spend };
  accrueModelRecord(added, record);
  return { ...added, costUsd: roundUsd(added.costUsd) };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Adds a model checkpoint to `spent`, in place (cost not rounded: {@link spendOf} rounds the sum once). */
function accrueModelRecord(spent: Mutable<Spend>, record: ModelCheckpoint): void {
  const usage = record.usage ?? record.response?.usage;
  spent.inputTokens += usage?.inputTokens ?? 0;
  spent.outputTokens += usage?.outputTokens ?? 0;
  spent.costUsd += record.costUsd ?? 0;
  spent.steps += 1;
  // The summaries a `summarise` model wrote for the turn spend too (not a step of their own).
  for (const summary of Object.values(record.context?.summaries ?? {})) {
    spent.inputTokens += summary.usage.inputTokens;
    spent.outputTokens += summary.usage.outputTokens;
    spent.costUsd += summary.costUsd;
  }
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/** The budgets that are spent (all but `subAgentDepth`, which is checked when a sub-agent starts). */
export type SpendBudgetName = Exclude<BudgetName, 'subAgentDepth'>;

/** The spent budgets, in the order they are checked and reported: cost first. */
export const SPEND_BUDGETS: readonly SpendBudgetName[] = ['costUsd', 'inputTokens', 'outputTokens', 'steps', 'wallClockSeconds'];

const BUDGET_NAMES: readonly BudgetName[] = [...SPEND_BUDGETS, 'subAgentDepth'];

/**
 * The budgets of a run: the agent's defaults, then each override (trigger, API request,
 * …) field by field, a later one winning; an absent or `undefined` field keeps the
 * earlier value, so an override cannot remove a limit. Absent fields: no limit.
 * Example: `effectiveBudgets({costUsd:2,steps:12}, {steps:30})` → `{costUsd:2,steps:30}`.
 */
export function effectiveBudgets(agent: Budgets, ...overrides: (Budgets | undefined)[]): Budgets {
  const result: Budgets = {};
  for (const layer of [agent, ...overrides]) {
    if (!layer) continue;
    for (const name of BUDGET_NAMES) {
      const value = layer[name];
      if (value !== undefined) result[name] = value;
    }
  }
  return result;
}

/** How much of one budget is used. Example: `{"budget":"costUsd","used":0.04,"limit":0.05,"fraction":0.8}` */
export type BudgetUse = {
  readonly budget: SpendBudgetName;
  /** In the budget's unit: tokens, USD, steps, seconds. */
  readonly used: number;
  readonly limit: number;
  /** used / limit; 1 or more when used up. */
  readonly fraction: number;
};

/** How much of each declared budget `spend` uses, in {@link SPEND_BUDGETS} order; undeclared budgets are left out. */
export function budgetUse(spend: Spend, limits: Budgets): BudgetUse[] {
  const uses: BudgetUse[] = [];
  for (const budget of SPEND_BUDGETS) {
    const limit = limits[budget];
    if (limit === undefined) continue;
    uses.push({ budget, used: spend[budget], limit, fraction: spend[budget] / limit });
  }
  return uses;
}

/**
 * The first budget used up (used ≥ limit), in {@link SPEND_BUDGETS} order
 * (costUsd, inputTokens, outputTokens, steps, wallClockSeconds), or `undefined`.
 * Checked before each spend: exactly at the limit counts as used up.
 */
export function exhaustedBudget(spend: Spend, limits: Budgets): { budget: SpendBudgetName; used: number; limit: number } | undefined {
  const use = budgetUse(spend, limits).find((u) => u.used >= u.limit);
  return use && { budget: use.budget, used: use.used, limit: use.limit };
}

/**
 * The declared budgets whose use has reached `fraction` of the limit
 * (used ≥ fraction × limit, the product rounded to 1e-9 so that 2.4 of 3 is 80%), in
 * {@link SPEND_BUDGETS} order. Budgets used up are included. The caller announces
 * `BudgetThresholdReached` for those it has not announced yet in the session.
 * @param fraction @default BUDGET_THRESHOLD_FRACTION (0.8)
 */
export function thresholdsReached(spend: Spend, limits: Budgets, fraction: number = BUDGET_THRESHOLD_FRACTION): SpendBudgetName[] {
  return budgetUse(spend, limits)
    .filter((u) => u.used >= roundUsd(fraction * u.limit))
    .map((u) => u.budget);
}

// ---------------------------------------------------------------------------
// Tool budgets
// ---------------------------------------------------------------------------

/** A tool call refused because its tool's calls per session are used up. Example: `{"callId":"toolu_07","tool":"lookup_host","callsPerSession":2}` */
export type ToolBudgetExceeded = { readonly callId: string; readonly tool: string; readonly callsPerSession: number };

/**
 * Which of one turn's tool calls may run under their tools' `callsPerSession`. Calls
 * are taken in order; a call is admitted while its tool's count (calls that ran so far
 * in the session, plus the ones admitted before it in this turn) is below the limit.
 * A tool with no budget, no `callsPerSession`, or absent from `budgets` is not limited.
 * The refused ones get a `TOOL_BUDGET_EXCEEDED` result without running.
 * @param ranSoFar calls that ran per tool ({@link Spend.toolCalls}).
 * @returns the admitted call ids in order, and the refused calls.
 */
export function admitToolCalls(
  calls: readonly { callId: string; tool: string }[],
  ranSoFar: Readonly<Record<string, number>>,
  budgets: ReadonlyMap<string, ToolBudget | undefined>,
): { admitted: string[]; exceeded: ToolBudgetExceeded[] } {
  const admitted: string[] = [];
  const exceeded: ToolBudgetExceeded[] = [];
  const thisTurn = new Map<string, number>();
  for (const { callId, tool } of calls) {
    const limit = budgets.get(tool)?.callsPerSession;
    const count = (ranSoFar[tool] ?? 0) + (thisTurn.get(tool) ?? 0);
    if (limit === undefined || count < limit) {
      admitted.push(callId);
      thisTurn.set(tool, (thisTurn.get(tool) ?? 0) + 1);
    } else {
      exceeded.push({ callId, tool, callsPerSession: limit });
    }
  }
  return { admitted, exceeded };
}

/** The declared cost of a set of tool calls, USD: the sum of their tools' `costPerCallUsd` (absent: 0), rounded to 1e-9. */
export function toolCallsCostUsd(calls: readonly { tool: string }[], budgets: ReadonlyMap<string, ToolBudget | undefined>): number {
  return roundUsd(calls.reduce((sum, { tool }) => sum + (budgets.get(tool)?.costPerCallUsd ?? 0), 0));
}

/**
 * Whether the run can afford `extraCostUsd` more (the declared cost of a turn's tool
 * calls, {@link toolCallsCostUsd}): cost used + extra must not exceed `costUsd`
 * (equal is affordable). Always true without a `costUsd` budget. Checked before the
 * turn's tool calls run: a turn whose calls do not fit pauses before any of them runs,
 * and they run once a raise makes them fit.
 */
export function affordable(spend: Spend, limits: Budgets, extraCostUsd: number): boolean {
  if (limits.costUsd === undefined) return true;
  return roundUsd(spend.costUsd + extraCostUsd) <= limits.costUsd;
}

// ---------------------------------------------------------------------------
// Raising
// ---------------------------------------------------------------------------

/**
 * The body of `raise-budget` (API and CLI): the new limits, at least one, each a valid
 * budget value ({@link BudgetsSchema}); unknown fields are rejected. A value is the new
 * limit, not an increment.
 * Example: `{"costUsd":5,"steps":40}`
 */
export const BudgetRaiseSchema = BudgetsSchema.refine((raise) => Object.values(raise).some((v) => v !== undefined), {
  error: 'name at least one budget to raise',
});

/**
 * The budgets after a raise: each field of `raise` replaces the current limit (it is the
 * new limit, not an increment); the others are kept. A value below the current limit
 * is allowed and lowers the limit (a run already past it pauses at its next check).
 * @throws ZodError when `raise` is not valid against {@link BudgetsSchema} (unknown field, zero, negative, fractional tokens/steps/seconds).
 */
export function raiseBudgets(current: Budgets, raise: Budgets): Budgets {
  return effectiveBudgets(current, BudgetsSchema.parse(raise));
}
