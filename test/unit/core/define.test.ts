import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  DEFAULT_MAX_OUTPUT_REPAIRS,
  DEFAULT_MAX_STEPS,
  DEFAULT_MODEL_TIMEOUT_SECONDS,
  DEFAULT_TOOL_CONCURRENCY,
  DEFAULT_TOOL_TIMEOUT_SECONDS,
  MAX_STEPS_LIMIT,
  STANDARD_EXECUTION_HISTORY_LIMIT,
} from '../../../lambdas/core/constants';
import { defineAgent, defineTool, toolSpec, type AgentProps } from '../../../lambdas/core/define';
import { minimumHistoryEventLimit } from '../../../lambdas/core/history';

const lookup = defineTool({
  name: 'lookup_host',
  version: '1.2.0',
  description: 'Looks a host up by name.',
  input: z.object({
    host: z.string().min(1).describe('Host name'),
    limit: z.number().int().default(10).describe('At most this many'),
    filters: z.array(z.object({ key: z.string(), value: z.string() })).optional(),
  }),
  output: z.object({ address: z.string() }),
  handler: async ({ host }) => ({ address: `${host}.example` }),
});

const Input = z.object({ question: z.string() });
const Output = z.object({ answer: z.string() });

const agentProps = (overrides: Partial<AgentProps<typeof Input, typeof Output>> = {}): AgentProps<typeof Input, typeof Output> => ({
  name: 'unit-agent',
  description: 'unit test agent',
  systemPrompt: 'Answer.',
  model: { provider: 'scripted', script: { schemaVersion: 1, modelId: 'scripted/unit', turns: [{ response: { content: [], stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 1 } } }] } },
  input: Input,
  prompt: (input) => input.question,
  output: Output,
  tools: [lookup],
  ...overrides,
});

describe('defineTool', () => {
  it('defaults needsApproval and idempotent to false and the timeout to the tool default', () => {
    expect(lookup.needsApproval).toBe(false);
    expect(lookup.idempotent).toBe(false);
    expect(lookup.timeoutSeconds).toBe(DEFAULT_TOOL_TIMEOUT_SECONDS);
    expect(lookup.name).toBe('lookup_host');
    expect(lookup.version).toBe('1.2.0');
  });

  it('keeps an explicit approval flag, idempotency and timeout', () => {
    const tool = defineTool({ ...lookup, name: 'block-it', needsApproval: true, idempotent: true, timeoutSeconds: 5 });
    expect(tool.needsApproval).toBe(true);
    expect(tool.idempotent).toBe(true);
    expect(tool.timeoutSeconds).toBe(5);
  });

  it('accepts a 64-character name and a pre-release version', () => {
    expect(defineTool({ ...lookup, name: 'a'.repeat(64), version: '2.0.0-rc.1' }).name).toHaveLength(64);
  });

  it.each(['', 'has space', 'dot.name', 'a'.repeat(65), 'ünïcode'])('fails when the name is %j, naming the field', (name) => {
    expect(() => defineTool({ ...lookup, name })).toThrow(/name/);
  });

  it.each(['1', '1.0', 'v1.0.0', 'latest'])('fails when the version is %j, naming the field', (version) => {
    expect(() => defineTool({ ...lookup, version })).toThrow(/version .* must be semver/);
  });
});

describe('defineAgent', () => {
  it('applies the defaults', () => {
    const agent = defineAgent(agentProps());
    expect(agent).toMatchObject({
      maxSteps: DEFAULT_MAX_STEPS,
      maxOutputRepairs: DEFAULT_MAX_OUTPUT_REPAIRS,
      toolConcurrency: DEFAULT_TOOL_CONCURRENCY,
      approvalTimeoutSeconds: DEFAULT_APPROVAL_TIMEOUT_SECONDS,
      modelTimeoutSeconds: DEFAULT_MODEL_TIMEOUT_SECONDS,
      triggers: [],
      historyEventLimit: STANDARD_EXECUTION_HISTORY_LIMIT,
    });
    expect(STANDARD_EXECUTION_HISTORY_LIMIT).toBe(25_000);
    expect(agent.context).toBeUndefined();
    expect(agent.tools).toEqual([lookup]);
  });

  it('keeps explicit limits, including zero repairs and a one-year approval timeout', () => {
    const agent = defineAgent(agentProps({ maxSteps: 3, maxOutputRepairs: 0, toolConcurrency: 1, approvalTimeoutSeconds: 31_536_000, modelTimeoutSeconds: 900 }));
    expect(agent).toMatchObject({ maxSteps: 3, maxOutputRepairs: 0, toolConcurrency: 1, approvalTimeoutSeconds: 31_536_000, modelTimeoutSeconds: 900 });
  });

  it.each(['Unit', '1agent', 'unit_agent', '', 'a'.repeat(41)])('fails when the name is %j, naming the field', (name) => {
    expect(() => defineAgent(agentProps({ name }))).toThrow(/: name must match/);
  });

  it('fails when two tools share a name, naming the field and the tool', () => {
    expect(() => defineAgent(agentProps({ tools: [lookup, defineTool({ ...lookup })] }))).toThrow(/tools: duplicate tool name "lookup_host"/);
  });

  it.each([
    ['maxSteps', 0],
    ['maxSteps', 2.5],
    ['toolConcurrency', 0],
    ['approvalTimeoutSeconds', 0],
    ['modelTimeoutSeconds', -1],
    ['modelTimeoutSeconds', Number.NaN],
  ] as const)('fails when %s is %s, naming the field', (field, value) => {
    expect(() => defineAgent(agentProps({ [field]: value }))).toThrow(new RegExp(`defineAgent\\(unit-agent\\): ${field} must be a positive integer`));
  });

  it.each([-1, 0.5])('fails when maxOutputRepairs is %s, naming the field', (value) => {
    expect(() => defineAgent(agentProps({ maxOutputRepairs: value }))).toThrow(/maxOutputRepairs must be a non-negative integer/);
  });

  it(`accepts maxSteps up to ${MAX_STEPS_LIMIT} (runs continue as new executions), and fails above`, () => {
    expect(MAX_STEPS_LIMIT).toBe(100_000);
    expect(defineAgent(agentProps({ maxSteps: MAX_STEPS_LIMIT })).maxSteps).toBe(MAX_STEPS_LIMIT);
    expect(() => defineAgent(agentProps({ maxSteps: MAX_STEPS_LIMIT + 1 }))).toThrow(`defineAgent(unit-agent): maxSteps must be at most ${MAX_STEPS_LIMIT}`);
  });

  it('accepts a historyEventLimit from the minimum (room for one worst-case turn) to the Standard quota', () => {
    expect(defineAgent(agentProps({ historyEventLimit: minimumHistoryEventLimit() })).historyEventLimit).toBe(minimumHistoryEventLimit());
    expect(defineAgent(agentProps({ historyEventLimit: 25_000 })).historyEventLimit).toBe(25_000);
  });

  it.each([minimumHistoryEventLimit() - 1, 25_001, 0, 1000.5, Number.NaN])('fails when historyEventLimit is %s, naming the field and the range', (value) => {
    expect(() => defineAgent(agentProps({ historyEventLimit: value }))).toThrow(
      `defineAgent(unit-agent): historyEventLimit must be an integer from ${minimumHistoryEventLimit()} (room for one worst-case turn) to 25000 (the Standard execution quota)`,
    );
  });

  it('keeps a context limit with either strategy', () => {
    expect(defineAgent(agentProps({ context: { maxToolResultBytes: 1, strategy: 'fail' } })).context).toEqual({ maxToolResultBytes: 1, strategy: 'fail' });
    expect(defineAgent(agentProps({ context: { maxToolResultBytes: 200_000, strategy: 'drop-oldest-tool-results' } })).context).toEqual({
      maxToolResultBytes: 200_000,
      strategy: 'drop-oldest-tool-results',
    });
  });

  it.each([0, -1, 1.5, Number.NaN])('fails when context.maxToolResultBytes is %s, naming the field', (value) => {
    expect(() => defineAgent(agentProps({ context: { maxToolResultBytes: value, strategy: 'fail' } }))).toThrow(
      'defineAgent(unit-agent): context.maxToolResultBytes must be a positive integer',
    );
  });

  it('fails when the approval timeout is longer than a year, naming the field', () => {
    expect(() => defineAgent(agentProps({ approvalTimeoutSeconds: 31_536_001 }))).toThrow(/approvalTimeoutSeconds must be at most 31536000/);
  });
});

describe('toolSpec', () => {
  const spec = toolSpec(lookup);

  it('names and describes the tool', () => {
    expect(spec.name).toBe('lookup_host');
    expect(spec.description).toBe('Looks a host up by name.');
  });

  it('describes the input as a JSON Schema object with properties and required fields, without $schema', () => {
    expect(spec.inputSchema).not.toHaveProperty('$schema');
    expect(spec.inputSchema.type).toBe('object');
    const properties = spec.inputSchema.properties as Record<string, Record<string, unknown>>;
    expect(Object.keys(properties)).toEqual(['host', 'limit', 'filters']);
    expect(properties.host).toMatchObject({ type: 'string', minLength: 1, description: 'Host name' });
    expect(properties.filters).toMatchObject({ type: 'array', items: { type: 'object', required: ['key', 'value'] } });
  });

  it('describes the input side: fields with a default are optional and show their default', () => {
    expect(spec.inputSchema.required).toEqual(['host']);
    const properties = spec.inputSchema.properties as Record<string, Record<string, unknown>>;
    expect(properties.limit).toMatchObject({ type: 'integer', default: 10 });
  });
});
