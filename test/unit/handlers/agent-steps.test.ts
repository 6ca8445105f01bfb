/**
 * The per-agent steps (prepare, modelTurn, runTool) on the in-memory checkpoint
 * store, driven by scripted conversations, the way the state machine drives them.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { APPROVAL_TIMED_OUT_REASON } from '../../../lambdas/core/constants';
import { checkpointKey, type ModelCheckpoint, type ToolCheckpoint } from '../../../lambdas/core/contracts/checkpoint';
import type { ApprovalOutcome, ModelTurnResult, PrepareResult, ToolCallRef } from '../../../lambdas/core/contracts/loop';
import type { ModelProvider, ModelRequest, ToolUseBlock } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation, ScriptedTurn } from '../../../lambdas/core/contracts/scripted';
import { defineAgent, defineTool, toolSpec, type AgentDefinition, type ToolContext } from '../../../lambdas/core/define';
import { ConfigurationError, ScriptMismatchError, ToolError, ToolOutputInvalidError } from '../../../lambdas/core/errors';
import { sessionIdFor, toolCallIdempotencyKey } from '../../../lambdas/core/ids';
import { REPAIR_PREFIX } from '../../../lambdas/core/loop';
import type { ApiTrigger, EventBridgeEnvelope } from '../../../lambdas/core/trigger';
import { ScriptedModelProvider } from '../../../lambdas/adapters/providers/scripted';
import type { StepDeps } from '../../../lambdas/handlers/agent/deps';
import { modelTurn } from '../../../lambdas/handlers/agent/model-turn';
import { prepare, type PrepareEvent } from '../../../lambdas/handlers/agent/prepare';
import { runTool } from '../../../lambdas/handlers/agent/run-tool';
import { agent as sshInvestigator, findingPrompt, SshBruteForceFindingSchema, type IncidentReport } from '../../../examples/ssh-brute-force/agent';
import { countFailedAttempts, createBlockAddressTool, searchLogLines, showLogLines, type BlockRecord, type BlockStore } from '../../../examples/ssh-brute-force/tools';
import guardDutyEvent from '../../../examples/ssh-brute-force/events/guardduty-ssh-brute-force.json';
import { AnswerSchema, declinedAgent, failingToolAgent, neverValidAgent, repairAgent, stepLimitAgent } from '../../fixtures/agents';
import { MemoryCheckpointStore } from './memory-store';
import { rejection } from '../support/rejection';

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const EVENT: EventBridgeEnvelope = guardDutyEvent;
const STEP_MS = 7;
const arnOf = (tool: string): string => `arn:aws:lambda:us-east-1:123456789012:function:unit-tool-${tool}`;
const executionArn = (agent: AgentDefinition, name: string): string => `arn:aws:states:us-east-1:123456789012:execution:${agent.name}:${name}`;
const arnsOf = (agent: AgentDefinition): Record<string, string> => Object.fromEntries(agent.tools.map((t) => [t.name, arnOf(t.name)]));

interface Harness {
  readonly agent: AgentDefinition;
  readonly store: MemoryCheckpointStore;
  readonly deps: StepDeps;
  /** Every request that reached the model, over all provider instances. */
  readonly modelCalls: ModelRequest[];
  readonly executionArn: string;
}

/**
 * Deps around the in-memory store. The provider factory hands out a fresh
 * scripted provider per turn (as the Lambda does), wrapped to count calls.
 */
function harness(agent: AgentDefinition, toolFunctions: Record<string, string> = arnsOf(agent)): Harness {
  const store = new MemoryCheckpointStore();
  const modelCalls: ModelRequest[] = [];
  const provider = (): ModelProvider => {
    const inner = new ScriptedModelProvider(agent.model.script);
    return {
      name: inner.name,
      converse: async (request) => {
        modelCalls.push(structuredClone(request));
        return inner.converse(request);
      },
      assertComplete: (request) => inner.assertComplete(request),
    };
  };
  let clock = Date.UTC(2024, 11, 10, 11, 10, 7);
  const deps: StepDeps = { agent, store, provider, toolFunctions: () => toolFunctions, now: () => (clock += STEP_MS) };
  return { agent, store, deps, modelCalls, executionArn: executionArn(agent, 'run-1') };
}

const apiTrigger = (agent: AgentDefinition, input: unknown, key = 'alert-42'): ApiTrigger => ({ source: 'api', sessionId: sessionIdFor(agent.name, key), idempotencyKey: key, input });

const prepareEvent = (h: Harness, trigger: unknown, arn = h.executionArn): PrepareEvent => ({ trigger, executionArn: arn, executionName: arn.split(':').at(-1) ?? '' });

/** Prepare with an API trigger; fails the test unless ready. */
async function ready(h: Harness, input: unknown = { question: 'What is 6 x 7?' }): Promise<PrepareResult> {
  const result = await prepare(prepareEvent(h, apiTrigger(h.agent, input)), h.deps);
  if (result.outcome !== 'ready') throw new Error(`prepare: ${result.outcome} ${JSON.stringify(result.failure)}`);
  return result;
}

/** The next model turn after `previous` (a Prepare result or a model turn result). */
const nextTurn = (h: Harness, previous: { sessionId: string; step: number; repairs: number }): Promise<ModelTurnResult> =>
  modelTurn({ sessionId: previous.sessionId, step: previous.step, repairs: previous.repairs, executionArn: h.executionArn }, h.deps);

const NOT_REQUIRED: ApprovalOutcome = { decision: 'not_required' };

const callTool = (h: Harness, turn: ModelTurnResult, call: ToolCallRef, approval: ApprovalOutcome = NOT_REQUIRED, toolName = call.tool) =>
  runTool({ sessionId: turn.sessionId, step: turn.step, call, approval, executionArn: h.executionArn }, toolName, h.deps);

async function model(h: Harness, sessionId: string, step: number): Promise<ModelCheckpoint> {
  const record = await h.store.getCheckpoint(sessionId, checkpointKey.model(step));
  if (record?.kind !== 'model') throw new Error(`no model checkpoint at step ${step}`);
  return record;
}

async function toolCheckpoint(h: Harness, sessionId: string, step: number, callId: string): Promise<ToolCheckpoint> {
  const record = await h.store.getCheckpoint(sessionId, checkpointKey.tool(step, callId));
  if (record?.kind !== 'tool') throw new Error(`no tool checkpoint for ${callId} at step ${step}`);
  return record;
}

const onlyCall = (turn: ModelTurnResult): ToolCallRef => {
  const [call] = turn.calls;
  if (!call || turn.calls.length !== 1) throw new Error(`expected one call, got ${turn.calls.length}`);
  return call;
};


const usage = { inputTokens: 50, outputTokens: 5 };
const script = (modelId: string, ...turns: ScriptedTurn[]): ScriptedConversation => ({ schemaVersion: 1, modelId, turns });
const say = (value: string): ScriptedTurn => ({ response: { content: [{ type: 'text', text: value }], stopReason: 'end_turn', usage } });
const call = (...uses: ToolUseBlock[]): ScriptedTurn => ({ response: { content: uses, stopReason: 'tool_use', usage } });
const use = (id: string, name: string, input: Record<string, unknown>): ToolUseBlock => ({ type: 'tool_use', id, name, input });

const small = {
  description: 'unit test agent',
  systemPrompt: 'Answer as JSON {"answer": string, "confidence": number}.',
  input: z.object({ question: z.string().min(1) }),
  prompt: (input: { question: string }) => input.question,
  output: AnswerSchema,
};

// ---------------------------------------------------------------------------
// prepare
// ---------------------------------------------------------------------------

describe('prepare', () => {
  it('accepts an EventBridge event: creates the session and checkpoints the prompt built from detail', async () => {
    const h = harness(sshInvestigator);
    const result = await prepare(prepareEvent(h, EVENT), h.deps);

    const sessionId = sessionIdFor('ssh-investigator', EVENT.id);
    expect(result).toEqual({ sessionId, step: 0, repairs: 0, outcome: 'ready' });
    const trigger = { source: 'eventbridge', dedupeKey: EVENT.id, detailType: 'GuardDuty Finding', eventSource: 'aws.guardduty', time: EVENT.time };
    expect(await h.store.getSession(sessionId)).toMatchObject({ agent: 'ssh-investigator', status: 'RUNNING', step: 0, executionArn: h.executionArn, trigger });
    const finding = SshBruteForceFindingSchema.parse(EVENT.detail);
    expect(await h.store.getCheckpoint(sessionId, checkpointKey.input())).toEqual({
      sessionId,
      sk: 'CP#000000#input',
      schemaVersion: 1,
      createdAt: expect.any(String) as unknown,
      kind: 'input',
      step: 0,
      input: finding,
      prompt: findingPrompt(finding, { source: 'eventbridge', detailType: 'GuardDuty Finding', time: EVENT.time }),
      trigger,
    });
  });

  it('accepts an API trigger: the session id it carries, the prompt from input', async () => {
    const h = harness(repairAgent);
    const trigger = apiTrigger(repairAgent, { question: 'What is 6 x 7?' });
    const result = await prepare(prepareEvent(h, trigger), h.deps);

    expect(result).toEqual({ sessionId: trigger.sessionId, step: 0, repairs: 0, outcome: 'ready' });
    expect(await h.store.getSession(trigger.sessionId)).toMatchObject({ agent: 'integ-repair', trigger: { source: 'api', dedupeKey: 'alert-42' } });
    expect(await h.store.getCheckpoint(trigger.sessionId, checkpointKey.input())).toMatchObject({
      kind: 'input',
      input: { question: 'What is 6 x 7?' },
      prompt: 'What is 6 x 7?',
      trigger: { source: 'api', dedupeKey: 'alert-42' },
    });
  });

  it('answers duplicate for the same event delivered to a second execution, and writes nothing', async () => {
    const h = harness(sshInvestigator);
    await prepare(prepareEvent(h, EVENT), h.deps);
    const writes = h.store.writes.length;

    const second = await prepare(prepareEvent(h, structuredClone(EVENT), executionArn(sshInvestigator, 'run-2')), h.deps);

    expect(second).toEqual({ sessionId: sessionIdFor('ssh-investigator', EVENT.id), step: 0, repairs: 0, outcome: 'duplicate' });
    expect(h.store.writes).toHaveLength(writes);
    expect(await h.store.getSession(second.sessionId)).toMatchObject({ executionArn: h.executionArn });
  });

  it('is ready again when the same execution retries it, keeping the first input checkpoint', async () => {
    const h = harness(repairAgent);
    const event = prepareEvent(h, apiTrigger(repairAgent, { question: 'q' }));
    await prepare(event, h.deps);
    const before = h.store.dump(sessionIdFor(repairAgent.name, 'alert-42'));

    await expect(prepare(event, h.deps)).resolves.toMatchObject({ outcome: 'ready' });
    expect(h.store.dump(sessionIdFor(repairAgent.name, 'alert-42'))).toEqual(before);
  });

  it('fails with InvalidInput naming the detail field when the event detail is invalid, and creates no session', async () => {
    const h = harness(sshInvestigator);
    const event = structuredClone(EVENT) as EventBridgeEnvelope & { detail: { service: { action: { networkConnectionAction: { remoteIpDetails: { ipAddressV4: string } } } } } };
    event.detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4 = '183.62.140';

    const result = await prepare(prepareEvent(h, event), h.deps);

    expect(result).toMatchObject({ sessionId: sessionIdFor('ssh-investigator', EVENT.id), outcome: 'failed', failure: { error: 'InvalidInput' } });
    expect(result.failure?.cause).toMatch(/^detail\.service\.action\.networkConnectionAction\.remoteIpDetails\.ipAddressV4: /);
    expect(h.store.writes).toEqual([]);
  });

  it('fails with InvalidInput naming every input field of an API trigger', async () => {
    const h = harness(repairAgent);
    const result = await prepare(prepareEvent(h, apiTrigger(repairAgent, { question: '', extra: 1 })), h.deps);
    expect(result).toMatchObject({ outcome: 'failed', failure: { error: 'InvalidInput' } });
    expect(result.failure?.cause).toMatch(/^input\.question: /);
    expect(h.store.writes).toEqual([]);
  });

  it('fails with InvalidInput when the trigger is neither an event nor an API trigger, under the execution name', async () => {
    const h = harness(repairAgent);
    const result = await prepare(prepareEvent(h, { hello: 'world' }), h.deps);
    expect(result).toEqual({
      sessionId: 'run-1',
      step: 0,
      repairs: 0,
      outcome: 'failed',
      failure: { error: 'InvalidInput', cause: expect.stringMatching(/neither an EventBridge event .* nor an API trigger/) as unknown },
    });
    expect(h.store.writes).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// modelTurn
// ---------------------------------------------------------------------------

describe('modelTurn', () => {
  it('returns tool_calls with the calls and their function ARNs, and checkpoints the turn', async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);

    const turn = await nextTurn(h, prepared);

    expect(turn).toEqual({
      sessionId: prepared.sessionId,
      step: 1,
      repairs: 0,
      outcome: 'tool_calls',
      calls: [{ callId: 'toolu_s1', tool: 'echo', functionArn: arnOf('echo'), needsApproval: false }],
    });
    const recorded = await model(h, prepared.sessionId, 1);
    expect(recorded).toMatchObject({
      provider: 'scripted',
      request: { modelId: 'scripted/integ-step-limit-v1', tools: ['echo'], messageCount: 1 },
      response: { stopReason: 'tool_use', modelId: 'scripted/integ-step-limit-v1', requestId: 'scripted-1' },
      outcome: 'tool_calls',
      calls: turn.calls,
      inlineResults: [],
      durationMs: STEP_MS,
    });
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 1 });
  });

  it('sends the system prompt, the conversation so far and the tool specs to the model', async () => {
    const h = harness(stepLimitAgent);
    await nextTurn(h, await ready(h, { question: 'Say one.' }));
    expect(h.modelCalls).toEqual([
      {
        modelId: 'scripted/integ-step-limit-v1',
        system: stepLimitAgent.systemPrompt,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Say one.' }] }],
        tools: stepLimitAgent.tools.map(toolSpec),
      },
    ]);
  });

  it('replays a turn that is already checkpointed without calling the model again', async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);
    const first = await nextTurn(h, prepared);
    const puts = h.store.writes.filter((w) => w.op === 'put').length;

    const again = await nextTurn(h, prepared);

    expect(again).toEqual(first);
    expect(h.modelCalls).toHaveLength(1);
    expect(h.store.writes.filter((w) => w.op === 'put')).toHaveLength(puts);
  });

  it('feeds the tool results of a turn to the next one', async () => {
    const h = harness(stepLimitAgent);
    const turn1 = await nextTurn(h, await ready(h));
    await callTool(h, turn1, onlyCall(turn1));

    // The script's turn 2 expects the tool results to include "one".
    const turn2 = await nextTurn(h, turn1);

    expect(turn2).toMatchObject({ step: 2, outcome: 'tool_calls', calls: [{ callId: 'toolu_s2', tool: 'echo' }] });
    expect(h.modelCalls[1]?.messages.at(-1)).toEqual({ role: 'user', content: [{ type: 'tool_result', toolUseId: 'toolu_s1', content: '{"text":"one"}', isError: false }] });
  });

  it('sends an invalid answer back for repair, then marks the session SUCCEEDED with the repaired output', async () => {
    const h = harness(repairAgent);
    const prepared = await ready(h);

    const turn1 = await nextTurn(h, prepared);
    expect(turn1).toEqual({ sessionId: prepared.sessionId, step: 1, repairs: 1, outcome: 'repair', calls: [] });
    expect((await model(h, prepared.sessionId, 1)).validationErrors).toEqual([expect.stringMatching(/^confidence: /)]);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 1 });

    const turn2 = await nextTurn(h, turn1);
    expect(turn2).toEqual({ sessionId: prepared.sessionId, step: 2, repairs: 1, outcome: 'final', calls: [] });
    const repairMessage = h.modelCalls[1]?.messages.at(-1)?.content[0];
    expect(repairMessage).toMatchObject({ type: 'text', text: expect.stringContaining(REPAIR_PREFIX) as unknown });
    expect(await model(h, prepared.sessionId, 2)).toMatchObject({ outcome: 'final', output: { answer: '42', confidence: 0.9 } });
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'SUCCEEDED', step: 2, output: { answer: '42', confidence: 0.9 } });
  });

  it('fails with OutputValidationFailed once the repairs are used up, leaving the session to RecordFailure', async () => {
    const h = harness(neverValidAgent);
    const turn1 = await nextTurn(h, await ready(h));
    expect(turn1).toMatchObject({ outcome: 'repair', repairs: 1 });

    const turn2 = await nextTurn(h, turn1);

    expect(turn2).toMatchObject({ step: 2, repairs: 1, outcome: 'failed', calls: [], failure: { error: 'OutputValidationFailed' } });
    expect(turn2.failure?.cause).toContain('after 1 repair(s)');
    expect(turn2.failure?.cause).toContain('confidence');
    expect(await model(h, turn2.sessionId, 2)).toMatchObject({
      outcome: 'failed',
      validationErrors: [expect.stringMatching(/^answer: /), expect.stringMatching(/^confidence: /)],
    });
    expect(await h.store.getSession(turn2.sessionId)).toMatchObject({ status: 'RUNNING', step: 2 });
  });

  it('replays a failed turn with the same failure and no model call', async () => {
    const h = harness(neverValidAgent);
    const turn1 = await nextTurn(h, await ready(h));
    const failed = await nextTurn(h, turn1);
    await expect(nextTurn(h, turn1)).resolves.toEqual(failed);
    expect(h.modelCalls).toHaveLength(2);
  });

  it('marks the session SUCCEEDED when replaying a final turn whose head update was lost', async () => {
    const h = harness(repairAgent);
    const prepared = await ready(h);
    await h.store.putCheckpoint({
      sessionId: prepared.sessionId,
      sk: checkpointKey.model(1),
      kind: 'model',
      step: 1,
      provider: 'scripted',
      request: { modelId: 'scripted/integ-repair-v1', tools: [], messageCount: 1 },
      response: { content: [{ type: 'text', text: '{"answer":"7","confidence":1}' }], stopReason: 'end_turn', usage, modelId: 'scripted/integ-repair-v1' },
      outcome: 'final',
      calls: [],
      inlineResults: [],
      output: { answer: '7', confidence: 1 },
      durationMs: 3,
    });

    await expect(nextTurn(h, prepared)).resolves.toMatchObject({ step: 1, outcome: 'final' });
    expect(h.modelCalls).toEqual([]);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'SUCCEEDED', step: 1, output: { answer: '7', confidence: 1 } });
  });

  it('fails with ConfigurationError naming the tool when a tool has no function ARN, before calling the model', async () => {
    const h = harness(stepLimitAgent, {});
    const prepared = await ready(h);

    const err = await rejection(nextTurn(h, prepared));

    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain('echo');
    expect(h.modelCalls).toEqual([]);
    expect(await h.store.getCheckpoint(prepared.sessionId, checkpointKey.model(1))).toBeUndefined();
  });

  it('fails with ScriptMismatchError when the run ends with script turns left over, and records no final answer', async () => {
    const agent = defineAgent({ ...small, name: 'unit-leftover', tools: [], model: { provider: 'scripted', script: script('scripted/unit-leftover', say('{"answer":"a","confidence":1}'), say('{"answer":"b","confidence":1}')) } });
    const h = harness(agent);
    const prepared = await ready(h);

    const err = await rejection(nextTurn(h, prepared));

    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toContain('1 leftover turn(s)');
    expect(await h.store.getCheckpoint(prepared.sessionId, checkpointKey.model(1))).toBeUndefined();
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 0 });
  });

  it('fails with ScriptMismatchError when the request misses the turn\'s expectations', async () => {
    const h = harness(stepLimitAgent);
    const turn1 = await nextTurn(h, await ready(h));
    // The script's turn 2 expects the echo result to include "one"; record another result.
    await h.store.putCheckpoint({
      sessionId: turn1.sessionId,
      sk: checkpointKey.tool(1, 'toolu_s1'),
      kind: 'tool',
      step: 1,
      callId: 'toolu_s1',
      tool: 'echo',
      toolVersion: '1.0.0',
      input: { text: 'one' },
      approval: NOT_REQUIRED,
      status: 'succeeded',
      result: '{"text":"uno"}',
      isError: false,
      durationMs: 1,
    });
    await expect(nextTurn(h, turn1)).rejects.toThrow(ScriptMismatchError);
  });
});

// ---------------------------------------------------------------------------
// runTool
// ---------------------------------------------------------------------------

interface Handled {
  readonly tool: string;
  readonly input: unknown;
  readonly context: ToolContext;
}

/** An agent whose single model turn makes `uses`, with tools that record their calls in `handled`. */
function opsAgent(...uses: ToolUseBlock[]): { agent: AgentDefinition; handled: Handled[] } {
  const handled: Handled[] = [];
  const record = (tool: string, input: unknown, context: ToolContext): void => {
    handled.push({ tool, input, context });
  };
  const lookup = defineTool({
    name: 'lookup',
    version: '2.1.0',
    description: 'Looks a host up by id.',
    input: z.object({ id: z.number().int().positive(), verbose: z.boolean().default(false) }),
    output: z.object({ id: z.number(), name: z.string() }),
    handler: async (input, context) => {
      record('lookup', input, context);
      return { id: input.id, name: `host-${input.id}` };
    },
  });
  const block = defineTool({
    name: 'block',
    version: '1.0.0',
    description: 'Blocks an address.',
    input: z.object({ address: z.ipv4() }),
    output: z.object({ blocked: z.string() }),
    needsApproval: true,
    handler: async (input, context) => {
      record('block', input, context);
      return { blocked: input.address };
    },
  });
  const missing = defineTool({
    name: 'missing',
    version: '1.0.0',
    description: 'Always finds nothing.',
    input: z.object({ id: z.number() }),
    output: z.object({}),
    handler: async (input, context) => {
      record('missing', input, context);
      throw new ToolError(`no host with id ${input.id}`);
    },
  });
  const liar = defineTool({
    name: 'liar',
    version: '1.0.0',
    description: 'Returns what its schema forbids.',
    input: z.object({}),
    output: z.object({ count: z.number() }),
    handler: async (input, context) => {
      record('liar', input, context);
      return { count: 'many' } as unknown as { count: number };
    },
  });
  const quiet = defineTool({
    name: 'quiet',
    version: '1.0.0',
    description: 'Does something and returns nothing.',
    input: z.object({}),
    output: z.void(),
    handler: async (input, context) => {
      record('quiet', input, context);
    },
  });
  const agent = defineAgent({
    ...small,
    name: 'unit-ops',
    tools: [lookup, block, missing, liar, quiet],
    model: { provider: 'scripted', script: script('scripted/unit-ops', call(...uses)) },
  });
  return { agent, handled };
}

/** Prepare and one model turn of an ops agent; returns the harness and the turn. */
async function opsTurn(...uses: ToolUseBlock[]): Promise<{ h: Harness; turn: ModelTurnResult; handled: Handled[] }> {
  const { agent, handled } = opsAgent(...uses);
  const h = harness(agent);
  const turn = await nextTurn(h, await ready(h));
  return { h, turn, handled };
}

describe('runTool', () => {
  it('runs the tool once with the validated arguments and checkpoints its JSON result', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));

    const result = await callTool(h, turn, onlyCall(turn));

    expect(result).toEqual({ sessionId: turn.sessionId, step: 1, callId: 'c1', status: 'succeeded' });
    expect(handled).toEqual([{ tool: 'lookup', input: { id: 7, verbose: false }, context: { sessionId: turn.sessionId, callId: 'c1', step: 1, idempotencyKey: toolCallIdempotencyKey(turn.sessionId, 1, 'c1'), approval: undefined } }]);
    expect(await toolCheckpoint(h, turn.sessionId, 1, 'c1')).toMatchObject({
      tool: 'lookup',
      toolVersion: '2.1.0',
      input: { id: 7 },
      approval: NOT_REQUIRED,
      status: 'succeeded',
      result: '{"id":7,"name":"host-7"}',
      isError: false,
      durationMs: STEP_MS,
    });
  });

  it('does not run the tool again for a call already checkpointed', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    const first = await callTool(h, turn, onlyCall(turn));
    const puts = h.store.writes.length;

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toEqual(first);
    expect(handled).toHaveLength(1);
    expect(h.store.writes).toHaveLength(puts);
  });

  it('runs each call of a turn on its own, results keyed by call id', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 1 }), use('c2', 'lookup', { id: 2 }));
    for (const c of turn.calls) await callTool(h, turn, c);
    expect(handled.map((x) => x.context.callId)).toEqual(['c1', 'c2']);
    expect((await toolCheckpoint(h, turn.sessionId, 1, 'c2')).result).toBe('{"id":2,"name":"host-2"}');
  });

  it('records invalid arguments as invalid_input with issues naming the field, without running the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 'seven' }));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'invalid_input' });

    expect(handled).toEqual([]);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'invalid_input', isError: true, input: { id: 'seven' } });
    const body = JSON.parse(recorded.result) as { error: string; issues: string[] };
    expect(body.error).toBe('INVALID_ARGUMENTS');
    expect(body.issues).toEqual([expect.stringMatching(/^id: /)]);
  });

  it('records a rejected approval as rejected with the reason, without running the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    const approval: ApprovalOutcome = { decision: 'rejected', reason: 'address belongs to our VPN', approvalId: 'apv_1', decidedBy: 'alice' };
    expect(onlyCall(turn).needsApproval).toBe(true);

    await expect(callTool(h, turn, onlyCall(turn), approval)).resolves.toMatchObject({ status: 'rejected' });

    expect(handled).toEqual([]);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'rejected', isError: true, approval });
    expect(JSON.parse(recorded.result)).toMatchObject({ status: 'rejected', reason: 'address belongs to our VPN' });
  });

  it('records a timed-out approval as rejected with reason "timed out"', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    await expect(callTool(h, turn, onlyCall(turn), { decision: 'timed_out' })).resolves.toMatchObject({ status: 'rejected' });
    expect(handled).toEqual([]);
    expect(JSON.parse((await toolCheckpoint(h, turn.sessionId, 1, 'c1')).result)).toMatchObject({ status: 'rejected', reason: APPROVAL_TIMED_OUT_REASON });
    expect(APPROVAL_TIMED_OUT_REASON).toBe('timed out');
  });

  it('runs an approved call and hands the approval to the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    const approval: ApprovalOutcome = { decision: 'approved', reason: 'confirmed', approvalId: 'apv_1', decidedBy: 'alice' };

    await expect(callTool(h, turn, onlyCall(turn), approval)).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled).toHaveLength(1);
    expect(handled[0]?.context.approval).toEqual({ approvalId: 'apv_1', decidedBy: 'alice', reason: 'confirmed' });
  });

  it('records a ToolError as a tool_error result the model sees', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'missing', { id: 9 }));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'tool_error' });

    expect(handled).toHaveLength(1);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'tool_error', isError: true });
    expect(JSON.parse(recorded.result)).toEqual({ error: 'TOOL_ERROR', message: 'no host with id 9' });
  });

  it('fails with the tool\'s own error when it throws a plain Error, writing no checkpoint (a fault to retry)', async () => {
    const h = harness(failingToolAgent);
    const turn = await nextTurn(h, await ready(h));
    const writes = h.store.writes.length;

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).not.toBeInstanceOf(ToolError);
    expect(err.message).toBe('disk on fire');
    expect(h.store.writes).toHaveLength(writes);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'toolu_f1'))).toBeUndefined();
    // A retry runs the tool again, since nothing was recorded.
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toThrow('disk on fire');
  });

  it('fails with ToolOutputInvalidError naming the field when the result breaks the output schema', async () => {
    const { h, turn } = await opsTurn(use('c1', 'liar', {}));

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).toBeInstanceOf(ToolOutputInvalidError);
    expect(err.message).toContain('liar');
    expect(err.message).toContain('count: ');
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
  });

  it('fails with ConfigurationError when the call names another tool than the function serves', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));

    const err = await rejection(callTool(h, turn, onlyCall(turn), NOT_REQUIRED, 'block'));

    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toMatch(/function for tool block was invoked for lookup/);
    expect(handled).toEqual([]);
  });

  it('fails with ConfigurationError when the model turn has no such call', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    const err = await rejection(callTool(h, turn, { ...onlyCall(turn), callId: 'c9' }));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain('c9');
    expect(handled).toEqual([]);
  });

  // Regression: execute() recorded `result: JSON.stringify(output.data)` unguarded.
  // For a tool whose output schema accepts undefined (z.void(), a tool that returns nothing), that
  // is undefined, so putCheckpoint's CheckpointRecordSchema.parse throws a ZodError ("result:
  // expected string"): a non-terminal error that Step Functions retries and then fails the run,
  // although the tool succeeded (and ran once per retry).
  it('checkpoints a JSON result for a tool that returns nothing', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'quiet', {}));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled).toHaveLength(1);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(() => JSON.parse(recorded.result) as unknown).not.toThrow();
  });
});

// ---------------------------------------------------------------------------
// Whole runs of the example agent
// ---------------------------------------------------------------------------

/** Drives a run as the state machine does: model turns, and each turn's calls, until an outcome other than tool_calls. */
async function drive(h: Harness, trigger: unknown, approvalFor: (call: ToolCallRef) => ApprovalOutcome): Promise<ModelTurnResult> {
  const prepared = await prepare(prepareEvent(h, trigger), h.deps);
  if (prepared.outcome !== 'ready') throw new Error(`prepare: ${prepared.outcome}`);
  let turn = await nextTurn(h, prepared);
  while (turn.outcome === 'tool_calls') {
    if (turn.step >= h.agent.maxSteps) throw new Error('step limit reached');
    for (const c of turn.calls) await callTool(h, turn, c, c.needsApproval ? approvalFor(c) : NOT_REQUIRED);
    turn = await nextTurn(h, turn);
  }
  return turn;
}

describe('the ssh-investigator example, driven step by step', () => {
  it('completes the declined-block conversation on the real log without running block_address', async () => {
    const h = harness(declinedAgent);
    const last = await drive(h, EVENT, () => ({ decision: 'rejected', reason: 'not approved by the reviewer', approvalId: 'apv_x', decidedBy: 'bob' }));

    expect(last).toMatchObject({ step: 4, outcome: 'final', repairs: 0 });
    const head = await h.store.getSession(last.sessionId);
    expect(head).toMatchObject({ status: 'SUCCEEDED', step: 4 });
    const report = head?.output as IncidentReport;
    expect(report.blockedAddresses).toEqual([]);
    expect(report.offendingAddresses[0]?.address).toBe('183.62.140.253');

    const tools = (await h.store.listCheckpoints(last.sessionId)).filter((r): r is ToolCheckpoint => r.kind === 'tool');
    expect(tools.map((t) => [t.tool, t.status])).toEqual([
      ['count_failed_attempts', 'succeeded'],
      ['show_log_lines', 'succeeded'],
      ['search_log_lines', 'succeeded'],
      ['search_log_lines', 'succeeded'],
      ['search_log_lines', 'succeeded'],
      ['block_address', 'rejected'],
    ]);
    expect(h.modelCalls).toHaveLength(4);
  });

  it('completes the approved conversation, block_address on an in-memory blocklist, the approver recorded', async () => {
    const blocks: BlockRecord[] = [];
    const blocklist: BlockStore = {
      async putIfAbsent(record) {
        blocks.push(record);
        return record;
      },
    };
    const blockAddress = createBlockAddressTool(blocklist, () => new Date('2024-12-10T11:20:00.000Z'));
    const agent = defineAgent({ ...sshInvestigator, name: 'unit-ssh-approved', tools: [searchLogLines, countFailedAttempts, showLogLines, blockAddress] });
    const h = harness(agent);

    const last = await drive(h, EVENT, () => ({ decision: 'approved', approvalId: 'apv_y', decidedBy: 'alice' }));

    expect(last).toMatchObject({ step: 4, outcome: 'final' });
    expect(((await h.store.getSession(last.sessionId))?.output as IncidentReport).blockedAddresses).toEqual(['183.62.140.253']);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatchObject({ address: '183.62.140.253', approvedBy: 'alice', approvalId: 'apv_y', sessionId: last.sessionId, callId: 'toolu_06' });
  });
});
