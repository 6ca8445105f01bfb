import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import {
  addModelRecord,
  admitToolCalls,
  affordable,
  BudgetRaiseSchema,
  budgetUse,
  effectiveBudgets,
  exhaustedBudget,
  modelCallCostUsd,
  PRICE_TABLE,
  priceOf,
  raiseBudgets,
  roundUsd,
  SPEND_BUDGETS,
  spendOf,
  thresholdsReached,
  toolCallsCostUsd,
  TOOL_STATUSES_THAT_RAN,
  type ModelPrice,
  type Spend,
  type ToolBudget,
} from '../../../lambdas/core/budget';
import { BUDGET_THRESHOLD_FRACTION } from '../../../lambdas/core/constants';
import {
  checkpointKey,
  ModelCheckpointSchema,
  ToolCheckpointSchema,
  type CheckpointRecord,
  type ModelCheckpoint,
  type ToolCheckpoint,
} from '../../../lambdas/core/contracts/checkpoint';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';

const CREATED_AT = '2026-11-21T10:00:00.000Z';
const T0 = Date.parse(CREATED_AT);

const modelCheckpoint = (
  step: number,
  fields: { usage?: { inputTokens: number; outputTokens: number }; costUsd?: number; responseUsage?: { inputTokens: number; outputTokens: number } } = {},
): CheckpointRecord =>
  ModelCheckpointSchema.parse({
    sessionId: 'ses_budget',
    sk: checkpointKey.model(step),
    schemaVersion: 2,
    createdAt: CREATED_AT,
    kind: 'model',
    step,
    provider: 'scripted',
    request: { modelId: 'claude-sonnet-4-5', tools: ['lookup_host'], messageCount: step },
    ...(fields.responseUsage && {
      response: { content: [{ type: 'text', text: 'ok' }], stopReason: 'end_turn', usage: fields.responseUsage, modelId: 'claude-sonnet-4-5' },
    }),
    outcome: 'tool_calls',
    calls: [],
    inlineResults: [],
    durationMs: 10,
    ...(fields.usage && { usage: fields.usage }),
    ...(fields.costUsd !== undefined && { costUsd: fields.costUsd }),
  });

const toolCheckpoint = (step: number, callId: string, tool: string, status: ToolCheckpoint['status'], costUsd?: number): CheckpointRecord =>
  ToolCheckpointSchema.parse({
    sessionId: 'ses_budget',
    sk: checkpointKey.tool(step, callId),
    schemaVersion: 2,
    createdAt: CREATED_AT,
    kind: 'tool',
    step,
    callId,
    tool,
    toolVersion: '1.0.0',
    input: {},
    approval: { decision: 'not_required' },
    status,
    result: '{}',
    isError: status !== 'succeeded',
    durationMs: 5,
    ...(costUsd !== undefined && { costUsd }),
  });

const spend = (fields: Partial<Spend> = {}): Spend => ({
  inputTokens: 0,
  outputTokens: 0,
  costUsd: 0,
  steps: 0,
  wallClockSeconds: 0,
  toolCalls: {},
  ...fields,
});

describe('PRICE_TABLE', () => {
  it('states a source page and a date for every entry', () => {
    for (const [model, price] of Object.entries(PRICE_TABLE)) {
      expect(price.source, model).toMatch(/^https:\/\/[a-z.]+\.(com)\//);
      expect(price.asOf, model).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(price.inputUsdPerMillionTokens, model).toBeGreaterThan(0);
      expect(price.outputUsdPerMillionTokens, model).toBeGreaterThan(price.inputUsdPerMillionTokens);
    }
  });

  it('holds the published figures of the models the runtime is used with', () => {
    const figures = (id: string) => {
      const p = PRICE_TABLE[id];
      return p && [p.inputUsdPerMillionTokens, p.outputUsdPerMillionTokens];
    };
    expect(figures('claude-sonnet-4-5')).toEqual([3, 15]);
    expect(figures('claude-haiku-4-5')).toEqual([1, 5]);
    expect(figures('claude-opus-4-5')).toEqual([5, 25]);
    expect(figures('claude-opus-4-1')).toEqual([15, 75]);
    expect(figures('gpt-4o')).toEqual([2.5, 10]);
    expect(figures('gpt-4o-mini')).toEqual([0.15, 0.6]);
    expect(figures('gpt-4.1')).toEqual([2, 8]);
    expect(figures('amazon.nova-pro')).toEqual([0.8, 3.2]);
    expect(PRICE_TABLE['claude-sonnet-4-5']?.source).toBe('https://platform.claude.com/docs/en/about-claude/pricing');
    expect(PRICE_TABLE['gpt-4o']?.source).toBe('https://developers.openai.com/api/docs/pricing');
    expect(PRICE_TABLE['amazon.nova-micro']?.source).toBe('https://aws.amazon.com/bedrock/pricing/');
  });
});

describe('priceOf', () => {
  const sonnet = PRICE_TABLE['claude-sonnet-4-5'];
  const override: ModelPrice = { inputUsdPerMillionTokens: 1, outputUsdPerMillionTokens: 2, source: 'https://example.com/contract', asOf: '2026-11-01' };

  it('finds an exact id', () => {
    expect(priceOf('claude-sonnet-4-5')).toBe(sonnet);
    expect(priceOf('gpt-4.1-mini')).toBe(PRICE_TABLE['gpt-4.1-mini']);
  });

  it('prefers the override to the table', () => {
    expect(priceOf('claude-sonnet-4-5', override)).toBe(override);
    expect(priceOf('scripted/demo', override)).toBe(override);
  });

  it('drops an Anthropic snapshot date', () => {
    expect(priceOf('claude-sonnet-4-5-20250929')).toBe(sonnet);
    expect(priceOf('claude-haiku-4-5-20251001')).toBe(PRICE_TABLE['claude-haiku-4-5']);
  });

  it('maps Bedrock ids, with or without an inference-profile prefix, onto the Claude API entry', () => {
    expect(priceOf('anthropic.claude-sonnet-4-5-20250929-v1:0')).toBe(sonnet);
    expect(priceOf('us.anthropic.claude-sonnet-4-5-20250929-v1:0')).toBe(sonnet);
    expect(priceOf('eu.anthropic.claude-sonnet-4-5-20250929-v1:0')).toBe(sonnet);
    expect(priceOf('global.anthropic.claude-opus-4-5-20251101-v1:0')).toBe(PRICE_TABLE['claude-opus-4-5']);
    expect(priceOf('apac.anthropic.claude-sonnet-4-6')).toBe(PRICE_TABLE['claude-sonnet-4-6']);
    expect(priceOf('anthropic.claude-opus-4-6-v1')).toBe(PRICE_TABLE['claude-opus-4-6']);
  });

  it('drops the Bedrock version suffix of Amazon Nova', () => {
    expect(priceOf('amazon.nova-micro-v1:0')).toBe(PRICE_TABLE['amazon.nova-micro']);
    expect(priceOf('us.amazon.nova-lite-v1:0')).toBe(PRICE_TABLE['amazon.nova-lite']);
  });

  it('drops an OpenAI snapshot date, unless the snapshot has its own entry', () => {
    expect(priceOf('gpt-4o-2024-08-06')).toBe(PRICE_TABLE['gpt-4o']);
    expect(priceOf('gpt-4.1-2025-04-14')).toBe(PRICE_TABLE['gpt-4.1']);
    expect(priceOf('gpt-4o-2024-05-13')).toBe(PRICE_TABLE['gpt-4o-2024-05-13']);
    expect(priceOf('gpt-4o-2024-05-13')?.inputUsdPerMillionTokens).toBe(5);
  });

  it('returns undefined for a model it does not know', () => {
    expect(priceOf('scripted/demo')).toBeUndefined();
    expect(priceOf('claude-sonnet-4')).toBeUndefined();
    expect(priceOf('CLAUDE-SONNET-4-5')).toBeUndefined();
    expect(priceOf('toString')).toBeUndefined();
    expect(priceOf('')).toBeUndefined();
  });
});

describe('modelCallCostUsd', () => {
  it('prices input and output tokens per million', () => {
    // 12,000 × $3/M + 800 × $15/M = 0.036 + 0.012
    expect(modelCallCostUsd({ inputTokens: 12_000, outputTokens: 800 }, priceOf('claude-sonnet-4-5'))).toBe(0.048);
    expect(modelCallCostUsd({ inputTokens: 1_000_000, outputTokens: 1_000_000 }, priceOf('gpt-4o-mini'))).toBe(0.75);
  });

  it('is 0 when no price is known, and for no tokens', () => {
    expect(modelCallCostUsd({ inputTokens: 5000, outputTokens: 500 }, undefined)).toBe(0);
    expect(modelCallCostUsd({ inputTokens: 0, outputTokens: 0 }, priceOf('claude-opus-4-1'))).toBe(0);
  });

  it('rounds to 1e-9, without float noise', () => {
    // 7 × $0.035/M + 3 × $0.14/M = 0.000000245 + 0.00000042 = 0.000000665
    expect(modelCallCostUsd({ inputTokens: 7, outputTokens: 3 }, priceOf('amazon.nova-micro'))).toBe(0.000000665);
    // 1 × $0.06/M = 0.00000006; 1 output × $0.24/M = 0.00000024
    expect(modelCallCostUsd({ inputTokens: 1, outputTokens: 1 }, priceOf('amazon.nova-lite'))).toBe(0.0000003);
    // a price with many decimals is cut at the billionth
    const odd: ModelPrice = { inputUsdPerMillionTokens: 1 / 3, outputUsdPerMillionTokens: 0, source: 'https://example.com', asOf: '2026-11-21' };
    expect(modelCallCostUsd({ inputTokens: 1000, outputTokens: 0 }, odd)).toBe(0.000333333);
  });

  it('roundUsd removes the noise of a float sum', () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    expect(roundUsd(0.1 + 0.2)).toBe(0.3);
  });
});

describe('spendOf', () => {
  const now = T0 + 95_500;

  it('sums model usage and cost, tool cost, steps and tool calls that ran', () => {
    const records = [
      modelCheckpoint(1, { usage: { inputTokens: 1000, outputTokens: 100 }, costUsd: 0.0045 }),
      toolCheckpoint(1, 'c1', 'lookup_host', 'succeeded', 0.001),
      toolCheckpoint(1, 'c2', 'lookup_host', 'tool_error', 0.001),
      toolCheckpoint(1, 'c3', 'block_ip', 'outcome_unknown', 0.01),
      modelCheckpoint(2, { usage: { inputTokens: 2000, outputTokens: 50 }, costUsd: 0.00675 }),
      toolCheckpoint(2, 'c4', 'lookup_host', 'invalid_input', 0),
      toolCheckpoint(2, 'c5', 'block_ip', 'rejected', 0),
      toolCheckpoint(2, 'c6', 'block_ip', 'denied', 0),
    ];
    expect(spendOf(records, { createdAt: CREATED_AT }, now)).toEqual({
      inputTokens: 3000,
      outputTokens: 150,
      costUsd: 0.02325,
      steps: 2,
      wallClockSeconds: 95,
      toolCalls: { lookup_host: 2, block_ip: 1 },
    });
  });

  it('counts only the statuses of calls that ran', () => {
    expect([...TOOL_STATUSES_THAT_RAN].sort()).toEqual(['outcome_unknown', 'succeeded', 'tool_error']);
    const refused = (['invalid_input', 'rejected', 'denied'] as const).map((s, i) => toolCheckpoint(1, `c${i}`, 'lookup_host', s));
    expect(spendOf(refused, { createdAt: CREATED_AT }, now).toolCalls).toEqual({});
  });

  it('reads usage from the response when the checkpoint has none (version 1 records), and counts an absent cost as 0', () => {
    const records = [modelCheckpoint(1, { responseUsage: { inputTokens: 70, outputTokens: 7 } }), modelCheckpoint(2), toolCheckpoint(2, 'c1', 'lookup_host', 'succeeded')];
    expect(spendOf(records, { createdAt: CREATED_AT }, now)).toMatchObject({ inputTokens: 70, outputTokens: 7, costUsd: 0, steps: 2, toolCalls: { lookup_host: 1 } });
  });

  it('prefers the checkpoint usage to the response usage', () => {
    const record = modelCheckpoint(1, { usage: { inputTokens: 10, outputTokens: 1 }, responseUsage: { inputTokens: 99, outputTokens: 9 } });
    expect(spendOf([record], { createdAt: CREATED_AT }, now)).toMatchObject({ inputTokens: 10, outputTokens: 1 });
  });

  it('sums costs without float noise', () => {
    const records = [modelCheckpoint(1, { costUsd: 0.1 }), modelCheckpoint(2, { costUsd: 0.2 })];
    expect(spendOf(records, { createdAt: CREATED_AT }, now).costUsd).toBe(0.3);
  });

  it('subtracts the time paused on budgets from the wall clock, floored', () => {
    expect(spendOf([], { createdAt: CREATED_AT, pausedSeconds: 60 }, now).wallClockSeconds).toBe(35);
    expect(spendOf([], { createdAt: CREATED_AT, pausedSeconds: 0.4 }, now).wallClockSeconds).toBe(95);
    expect(spendOf([], { createdAt: CREATED_AT, pausedSeconds: 0.6 }, now).wallClockSeconds).toBe(94);
  });

  it('never gives a negative wall clock (clock skew, or pauses longer than the run)', () => {
    expect(spendOf([], { createdAt: CREATED_AT }, T0 - 5000).wallClockSeconds).toBe(0);
    expect(spendOf([], { createdAt: CREATED_AT, pausedSeconds: 1000 }, now).wallClockSeconds).toBe(0);
  });

  it('ignores records that are not spend', () => {
    const session = { ...modelCheckpoint(1), kind: 'intent', callId: 'c1', tool: 'lookup_host', idempotencyKey: 'k', executionArn: 'arn' } as unknown as CheckpointRecord;
    expect(spendOf([session], { createdAt: CREATED_AT }, now)).toMatchObject({ steps: 0, costUsd: 0, toolCalls: {} });
  });

  it('fails when the session head has no valid createdAt', () => {
    expect(() => spendOf([], { createdAt: 'yesterday' }, now)).toThrow(CorruptCheckpointError);
  });
});

describe('addModelRecord', () => {
  const now = T0 + 95_500;
  const summary = (inputTokens: number, outputTokens: number, costUsd: number): unknown => ({
    text: 'a summary',
    provider: 'scripted',
    modelId: 'summariser',
    usage: { inputTokens, outputTokens },
    costUsd,
    transitions: [],
  });
  const summarised = ModelCheckpointSchema.parse({
    ...modelCheckpoint(2, { usage: { inputTokens: 2000, outputTokens: 50 }, costUsd: 0.2 }),
    context: { toolResultBytes: 0, droppedToolResults: 0, summaries: { a: summary(300, 20, 0.1), b: summary(5, 1, 0.000000001) } },
  });

  it('adds a model checkpoint as spendOf counts it: one step, its usage and cost, and its summaries', () => {
    const before = [modelCheckpoint(1, { usage: { inputTokens: 1000, outputTokens: 100 }, costUsd: 0.1 }), toolCheckpoint(1, 'c1', 'lookup_host', 'succeeded', 0.001)];
    const spent = spendOf(before, { createdAt: CREATED_AT }, now);
    const after = addModelRecord(spent, summarised);
    expect(after).toEqual(spendOf([...before, summarised], { createdAt: CREATED_AT }, now));
    expect(after).toEqual({ inputTokens: 3305, outputTokens: 171, costUsd: 0.401000001, steps: 2, wallClockSeconds: 95, toolCalls: { lookup_host: 1 } });
  });

  it('reads usage from the response when the checkpoint has none, counts an absent cost as 0, and returns a new spend', () => {
    const start = spend({ steps: 1, costUsd: 0.5 });
    const record = modelCheckpoint(2, { responseUsage: { inputTokens: 70, outputTokens: 7 } }) as ModelCheckpoint;
    expect(addModelRecord(start, record)).toEqual({ ...start, inputTokens: 70, outputTokens: 7, steps: 2 });
    expect(start).toEqual(spend({ steps: 1, costUsd: 0.5 }));
  });
});

describe('effectiveBudgets', () => {
  it('overrides the agent defaults field by field, a later override winning', () => {
    const agent = { costUsd: 2, inputTokens: 200_000, steps: 12 };
    expect(effectiveBudgets(agent, { steps: 30 }, undefined, { steps: 40, wallClockSeconds: 900 })).toEqual({
      costUsd: 2,
      inputTokens: 200_000,
      steps: 40,
      wallClockSeconds: 900,
    });
  });

  it('keeps a limit an override leaves undefined, and copies rather than aliases', () => {
    const agent = { costUsd: 2 };
    const result = effectiveBudgets(agent, { costUsd: undefined, subAgentDepth: 0 });
    expect(result).toEqual({ costUsd: 2, subAgentDepth: 0 });
    expect(result).not.toBe(agent);
    expect(effectiveBudgets({})).toEqual({});
  });
});

describe('budgetUse', () => {
  it('reports every declared spent budget in order, leaving out undeclared ones and subAgentDepth', () => {
    const s = spend({ costUsd: 0.5, inputTokens: 1000, steps: 3, wallClockSeconds: 30 });
    expect(budgetUse(s, { steps: 10, costUsd: 2, subAgentDepth: 1 })).toEqual([
      { budget: 'costUsd', used: 0.5, limit: 2, fraction: 0.25 },
      { budget: 'steps', used: 3, limit: 10, fraction: 0.3 },
    ]);
    expect(budgetUse(s, {})).toEqual([]);
    expect(SPEND_BUDGETS).toEqual(['costUsd', 'inputTokens', 'outputTokens', 'steps', 'wallClockSeconds']);
  });
});

describe('exhaustedBudget', () => {
  it('is undefined below every limit', () => {
    expect(exhaustedBudget(spend({ costUsd: 1.99, steps: 9 }), { costUsd: 2, steps: 10 })).toBeUndefined();
    expect(exhaustedBudget(spend({ costUsd: 100 }), {})).toBeUndefined();
  });

  it('counts exactly 100% as used up', () => {
    expect(exhaustedBudget(spend({ steps: 10 }), { steps: 10 })).toEqual({ budget: 'steps', used: 10, limit: 10 });
    expect(exhaustedBudget(spend({ costUsd: 0.05 }), { costUsd: 0.05 })).toEqual({ budget: 'costUsd', used: 0.05, limit: 0.05 });
  });

  it('names the first budget used up in the stable order', () => {
    const s = spend({ costUsd: 3, inputTokens: 500, outputTokens: 900, steps: 20, wallClockSeconds: 1000 });
    const limits = { costUsd: 2, inputTokens: 100, outputTokens: 100, steps: 10, wallClockSeconds: 60 };
    expect(exhaustedBudget(s, limits)?.budget).toBe('costUsd');
    expect(exhaustedBudget(s, { ...limits, costUsd: 5 })?.budget).toBe('inputTokens');
    expect(exhaustedBudget(s, { ...limits, costUsd: 5, inputTokens: 1000 })?.budget).toBe('outputTokens');
    expect(exhaustedBudget(s, { outputTokens: 1000, steps: 10, wallClockSeconds: 60 })?.budget).toBe('steps');
    expect(exhaustedBudget(s, { wallClockSeconds: 60 })).toEqual({ budget: 'wallClockSeconds', used: 1000, limit: 60 });
  });
});

describe('thresholdsReached', () => {
  it('defaults to 80%', () => {
    expect(BUDGET_THRESHOLD_FRACTION).toBe(0.8);
  });

  it('reaches at exactly 80%, not just below', () => {
    expect(thresholdsReached(spend({ steps: 8 }), { steps: 10 })).toEqual(['steps']);
    expect(thresholdsReached(spend({ steps: 7 }), { steps: 10 })).toEqual([]);
    expect(thresholdsReached(spend({ inputTokens: 79_999 }), { inputTokens: 100_000 })).toEqual([]);
    expect(thresholdsReached(spend({ inputTokens: 80_000 }), { inputTokens: 100_000 })).toEqual(['inputTokens']);
  });

  it('reaches at 80% of a cost where 0.8 × limit has float noise', () => {
    expect(0.8 * 3).not.toBe(2.4);
    expect(thresholdsReached(spend({ costUsd: 2.4 }), { costUsd: 3 })).toEqual(['costUsd']);
    expect(thresholdsReached(spend({ costUsd: 2.399999999 }), { costUsd: 3 })).toEqual([]);
  });

  it('lists every budget past its threshold, used-up ones included, in order', () => {
    const s = spend({ costUsd: 2, outputTokens: 85, steps: 1, wallClockSeconds: 50 });
    expect(thresholdsReached(s, { costUsd: 2, outputTokens: 100, steps: 10, wallClockSeconds: 60, subAgentDepth: 0 })).toEqual([
      'costUsd',
      'outputTokens',
      'wallClockSeconds',
    ]);
  });

  it('takes another fraction', () => {
    expect(thresholdsReached(spend({ steps: 5 }), { steps: 10 }, 0.5)).toEqual(['steps']);
    expect(thresholdsReached(spend({ steps: 5 }), { steps: 10 }, 0.6)).toEqual([]);
  });
});

describe('admitToolCalls', () => {
  const budgets = new Map<string, ToolBudget | undefined>([
    ['lookup_host', { callsPerSession: 2, costPerCallUsd: 0.001 }],
    ['block_ip', { callsPerSession: 1 }],
    ['priced_only', { costPerCallUsd: 0.5 }],
    ['free', undefined],
  ]);

  it('admits calls within the budget of one turn, in order, and refuses the rest', () => {
    const calls = [
      { callId: 'c1', tool: 'lookup_host' },
      { callId: 'c2', tool: 'block_ip' },
      { callId: 'c3', tool: 'lookup_host' },
      { callId: 'c4', tool: 'lookup_host' },
      { callId: 'c5', tool: 'block_ip' },
    ];
    expect(admitToolCalls(calls, {}, budgets)).toEqual({
      admitted: ['c1', 'c2', 'c3'],
      exceeded: [
        { callId: 'c4', tool: 'lookup_host', callsPerSession: 2 },
        { callId: 'c5', tool: 'block_ip', callsPerSession: 1 },
      ],
    });
  });

  it('counts the calls that ran in earlier turns', () => {
    expect(admitToolCalls([{ callId: 'c7', tool: 'lookup_host' }, { callId: 'c8', tool: 'lookup_host' }], { lookup_host: 1 }, budgets)).toEqual({
      admitted: ['c7'],
      exceeded: [{ callId: 'c8', tool: 'lookup_host', callsPerSession: 2 }],
    });
    expect(admitToolCalls([{ callId: 'c9', tool: 'block_ip' }], { block_ip: 1 }, budgets)).toEqual({
      admitted: [],
      exceeded: [{ callId: 'c9', tool: 'block_ip', callsPerSession: 1 }],
    });
  });

  it('carries a budget across turns as spendOf counts them', () => {
    const turn1 = [toolCheckpoint(1, 'c1', 'lookup_host', 'succeeded'), toolCheckpoint(1, 'c2', 'lookup_host', 'invalid_input')];
    const ran = spendOf(turn1, { createdAt: CREATED_AT }, T0).toolCalls;
    const turn2 = admitToolCalls([{ callId: 'c3', tool: 'lookup_host' }, { callId: 'c4', tool: 'lookup_host' }], ran, budgets);
    expect(turn2.admitted).toEqual(['c3']);
    const ranAfter2 = spendOf([...turn1, toolCheckpoint(2, 'c3', 'lookup_host', 'tool_error')], { createdAt: CREATED_AT }, T0).toolCalls;
    expect(admitToolCalls([{ callId: 'c5', tool: 'lookup_host' }], ranAfter2, budgets).exceeded).toEqual([{ callId: 'c5', tool: 'lookup_host', callsPerSession: 2 }]);
  });

  it('does not limit tools without a call budget, or unknown to the map', () => {
    const calls = ['priced_only', 'free', 'unknown', 'priced_only'].map((tool, i) => ({ callId: `c${i}`, tool }));
    expect(admitToolCalls(calls, { priced_only: 1000 }, budgets)).toEqual({ admitted: ['c0', 'c1', 'c2', 'c3'], exceeded: [] });
    expect(admitToolCalls([], {}, budgets)).toEqual({ admitted: [], exceeded: [] });
  });
});

describe('toolCallsCostUsd and affordable', () => {
  const budgets = new Map<string, ToolBudget | undefined>([
    ['lookup_host', { costPerCallUsd: 0.1 }],
    ['geo', { costPerCallUsd: 0.2 }],
    ['free', { callsPerSession: 3 }],
  ]);

  it('sums the declared cost per call, 0 for tools without one, without float noise', () => {
    expect(toolCallsCostUsd([{ tool: 'lookup_host' }, { tool: 'geo' }], budgets)).toBe(0.3);
    expect(toolCallsCostUsd([{ tool: 'free' }, { tool: 'unknown' }], budgets)).toBe(0);
    expect(toolCallsCostUsd([], budgets)).toBe(0);
  });

  it('affords calls whose cost fits, exactly up to the limit', () => {
    expect(affordable(spend({ costUsd: 0.7 }), { costUsd: 1 }, 0.3)).toBe(true);
    expect(affordable(spend({ costUsd: 0.7 }), { costUsd: 1 }, 0.300000001)).toBe(false);
    expect(affordable(spend({ costUsd: 0.1 }), { costUsd: 0.3 }, 0.2)).toBe(true);
  });

  it('affords anything without a cost budget', () => {
    expect(affordable(spend({ costUsd: 1e6 }), { steps: 3 }, 1e6)).toBe(true);
  });
});

describe('raiseBudgets and BudgetRaiseSchema', () => {
  it('sets the raised fields to the new limits and keeps the others', () => {
    expect(raiseBudgets({ costUsd: 2, steps: 12 }, { costUsd: 5 })).toEqual({ costUsd: 5, steps: 12 });
    expect(raiseBudgets({ costUsd: 2 }, { wallClockSeconds: 3600 })).toEqual({ costUsd: 2, wallClockSeconds: 3600 });
  });

  it('sets, not increments, and allows lowering', () => {
    expect(raiseBudgets({ steps: 12 }, { steps: 20 })).toEqual({ steps: 20 });
    expect(raiseBudgets({ steps: 12 }, { steps: 4 })).toEqual({ steps: 4 });
  });

  it('fails when a raised value is not a valid budget', () => {
    expect(() => raiseBudgets({ costUsd: 2 }, { costUsd: 0 })).toThrow(ZodError);
    expect(() => raiseBudgets({ costUsd: 2 }, { costUsd: -1 })).toThrow(ZodError);
    expect(() => raiseBudgets({ steps: 2 }, { steps: 2.5 })).toThrow(ZodError);
    expect(() => raiseBudgets({}, { subAgentDepth: -1 })).toThrow(ZodError);
    expect(() => raiseBudgets({}, { dollars: 5 } as never)).toThrow(ZodError);
  });

  it('accepts a body naming at least one known budget', () => {
    expect(BudgetRaiseSchema.parse({ costUsd: 5, steps: 40 })).toEqual({ costUsd: 5, steps: 40 });
    expect(BudgetRaiseSchema.parse({ subAgentDepth: 0 })).toEqual({ subAgentDepth: 0 });
  });

  it('fails when the body is empty, unknown or invalid', () => {
    expect(BudgetRaiseSchema.safeParse({}).success).toBe(false);
    expect(BudgetRaiseSchema.safeParse({ costUsd: undefined }).success).toBe(false);
    expect(BudgetRaiseSchema.safeParse({ dollars: 5 }).success).toBe(false);
    expect(BudgetRaiseSchema.safeParse({ costUsd: '5' }).success).toBe(false);
    expect(BudgetRaiseSchema.safeParse({ inputTokens: 0 }).success).toBe(false);
  });
});
