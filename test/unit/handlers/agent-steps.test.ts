/**
 * The per-agent steps (prepare, modelTurn, runTool) on the in-memory checkpoint
 * store, bodies and idempotency records, driven by scripted conversations, the
 * way the state machine drives them: each step gets the payload fields the
 * previous one returned (`events`, `execution`, `branch`, `toolRuns`).
 */
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { APPROVAL_TIMED_OUT_REASON, DEFAULT_MAX_OUTPUT_TOKENS, MAX_TOOL_RESULT_BYTES } from '../../../lambdas/core/constants';
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint, type ToolCheckpoint } from '../../../lambdas/core/contracts/checkpoint';
import type { ApprovalOutcome, ModelTurnResult, PrepareResult, ToolCallRef, ToolRun, WaitDecision } from '../../../lambdas/core/contracts/loop';
import type { ModelProvider, ModelRequest, ToolUseBlock } from '../../../lambdas/core/contracts/model';
import { DEFAULT_BREAKER, type ModelRef } from '../../../lambdas/core/routing';
import { INITIAL_BREAKER } from '../../../lambdas/core/health';
import type { ScriptedConversation, ScriptedTurn } from '../../../lambdas/core/contracts/scripted';
import { defineAgent, defineTool, toolSpec, type AgentDefinition, type ToolContext } from '../../../lambdas/core/define';
import { decideRollback, isRefusal } from '../../../lambdas/core/control';
import { ConfigurationError, ModelProviderError, ScriptMismatchError, SessionFencedError, ToolError, ToolOutputInvalidError, TransientError } from '../../../lambdas/core/errors';
import { minimumHistoryEventLimit } from '../../../lambdas/core/history';
import { modelCallIdempotencyKey, sessionIdFor, toolCallIdempotencyKey } from '../../../lambdas/core/ids';
import { errorResult, REPAIR_PREFIX, unknownToolResult } from '../../../lambdas/core/loop';
import { spendOf, type Budgets, type ModelPrice } from '../../../lambdas/core/budget';
import { SUMMARY_MAX_OUTPUT_TOKENS, SUMMARY_SYSTEM_PROMPT } from '../../../lambdas/core/context';
import type { OutputPipeline } from '../../../lambdas/core/output';
import { authorizationRequest, DEFAULT_PRINCIPAL, policySchema, type PolicyDecision, type Principal } from '../../../lambdas/core/policy';
import type { ApiTrigger, EventBridgeEnvelope } from '../../../lambdas/core/trigger';
import { ScriptedModelProvider } from '../../../lambdas/adapters/providers/scripted';
import type { PolicySnapshot, StepDeps } from '../../../lambdas/handlers/agent/deps';
import { effectivePolicies, PolicyEngine } from '../../../lambdas/adapters/policy-engine';
import { modelTurn } from '../../../lambdas/handlers/agent/model-turn';
import { prepare, type PrepareEvent } from '../../../lambdas/handlers/agent/prepare';
import { runTool, type ToolTaskResult } from '../../../lambdas/handlers/agent/run-tool';
import { agent as sshInvestigator, findingPrompt, SshBruteForceFindingSchema, type IncidentReport } from '../../../examples/ssh-brute-force/agent';
import { countFailedAttempts, createBlockAddressTool, searchLogLines, showLogLines, type BlockRecord, type BlockStore } from '../../../examples/ssh-brute-force/tools';
import guardDutyEvent from '../../../examples/ssh-brute-force/events/guardduty-ssh-brute-force.json';
import { AnswerSchema, declinedAgent, neverValidAgent, repairAgent, stepLimitAgent } from '../../fixtures/agents';
import { MemoryCheckpointStore } from './memory-store';
import { ALLOW, BODY_BUCKET, MemoryBodyStore, MemoryHealthBook, MemoryOnce, ScriptedFault, ScriptedFaults, ScriptedHttp, ScriptedPolicies, ScriptedReviews, sha256 } from '../support/fakes';
import { budgetWait } from '../support/records';
import { rejection } from '../support/rejection';

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const EVENT: EventBridgeEnvelope = guardDutyEvent;
const STEP_MS = 7;
/** History events (core/history.ts): start to the first turn (ExecutionStarted 1, Prepare 5, Prepared? 2). */
const START_EVENTS = 8;
/** One model turn and its Route: Task 5, Choice 2. */
const TURN_EVENTS = 7;
/** One RunTools iteration without approval: iteration markers 2, Dispatch 2, RunTool-<tool> 5. */
const ITERATION_EVENTS = 9;
/** The approval wait of an iteration and the AfterApproval Choice back to the tool's Task: 6 + 2. */
const APPROVAL_EVENTS = 8;
/** A wait of the loop itself after a model turn (PauseForBudget and Raised?, or ReviewOutput and ReviewTimedOut): 6 + 2. */
const LOOP_WAIT = 8;
/** The RunTools Map state itself. */
const MAP_EVENTS = 4;
const FIRST_EXECUTION = { execution: 1, branch: 0, decision: null } as const;

const arnOf = (tool: string): string => `arn:aws:lambda:us-east-1:123456789012:function:unit-tool-${tool}`;
const executionArn = (agent: AgentDefinition, name: string): string => `arn:aws:states:us-east-1:123456789012:execution:${agent.name}:${name}`;
const arnsOf = (agent: AgentDefinition): Record<string, string> => Object.fromEntries(agent.tools.map((t) => [t.name, arnOf(t.name)]));

interface Harness {
  readonly agent: AgentDefinition;
  readonly store: MemoryCheckpointStore;
  readonly bodies: MemoryBodyStore;
  readonly once: MemoryOnce;
  readonly faults: ScriptedFaults;
  /** The policies in force (everything allowed until a test says otherwise). */
  readonly policies: ScriptedPolicies;
  /** HTTP tool calls (failing unless a test sets an answer). */
  readonly http: ScriptedHttp;
  /** The recorded answers to output reviews (none, so pending, until a test records one). */
  readonly reviews: ScriptedReviews;
  /** The models' health (breakers and windows). */
  readonly health: MemoryHealthBook;
  readonly deps: StepDeps;
  /** Every request that reached the model, over all provider instances. */
  readonly modelCalls: ModelRequest[];
  readonly executionArn: string;
}

/**
 * Deps around the in-memory store, bodies and idempotency records. The provider
 * factory hands out a fresh scripted provider per turn (as the Lambda does),
 * wrapped to count calls.
 */
function harness(
  agent: AgentDefinition,
  options: { toolFunctions?: Record<string, string>; inlineLimitBytes?: number; policies?: () => Promise<PolicySnapshot> } = {},
): Harness {
  const toolFunctions = options.toolFunctions ?? arnsOf(agent);
  const store = new MemoryCheckpointStore();
  const bodies = new MemoryBodyStore(options.inlineLimitBytes);
  const once = new MemoryOnce();
  const faults = new ScriptedFaults();
  const policies = new ScriptedPolicies();
  const http = new ScriptedHttp();
  const reviews = new ScriptedReviews();
  const health = new MemoryHealthBook();
  const modelCalls: ModelRequest[] = [];
  const provider = (ref: ModelRef): ModelProvider => {
    if (ref.provider !== 'scripted') throw new Error(`the step tests run scripted models only, not ${ref.provider}`);
    const inner = new ScriptedModelProvider(ref.script);
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
  const deps: StepDeps = {
    agent,
    store,
    bodies,
    once: once.once,
    provider,
    health,
    toolFunctions: () => toolFunctions,
    fault: faults.fire,
    policies: options.policies ?? policies.snapshot,
    callHttp: http.call,
    reviewDecision: reviews.decision,
    now: () => (clock += STEP_MS),
  };
  return { agent, store, bodies, once, faults, policies, http, reviews, health, deps, modelCalls, executionArn: executionArn(agent, 'run-1') };
}

const apiTrigger = (agent: AgentDefinition, input: unknown, key = 'alert-42'): ApiTrigger => ({ source: 'api', sessionId: sessionIdFor(agent.name, key), idempotencyKey: key, input });

const prepareEvent = (h: Harness, trigger: unknown, arn = h.executionArn, retryCount?: number): PrepareEvent => ({
  trigger,
  executionArn: arn,
  executionName: arn.split(':').at(-1) ?? '',
  ...(retryCount === undefined ? {} : { retryCount }),
});

/** Prepare with an API trigger; fails the test unless ready. */
async function ready(h: Harness, input: unknown = { question: 'What is 6 x 7?' }): Promise<PrepareResult> {
  const result = await prepare(prepareEvent(h, apiTrigger(h.agent, input)), h.deps);
  if (result.outcome !== 'ready') throw new Error(`prepare: ${result.outcome} ${JSON.stringify(result.failure)}`);
  return result;
}

type Pointer = Pick<ModelTurnResult, 'sessionId' | 'step' | 'repairs' | 'events' | 'execution' | 'branch'>;

/**
 * The next model turn after `previous` (a Prepare result or a model turn result),
 * with the RunTools Map's results when tools ran in between.
 */
const nextTurn = (
  h: Harness,
  previous: Pointer,
  toolRuns: readonly ToolRun[] | null = null,
  options: { executionArn?: string; retryCount?: number; decision?: WaitDecision; deps?: StepDeps } = {},
): Promise<ModelTurnResult> =>
  modelTurn(
    {
      decision: options.decision ?? null,
      sessionId: previous.sessionId,
      step: previous.step,
      repairs: previous.repairs,
      executionArn: options.executionArn ?? h.executionArn,
      retryCount: options.retryCount ?? 0,
      events: previous.events,
      execution: previous.execution,
      branch: previous.branch,
      toolRuns: toolRuns ? [...toolRuns] : null,
    },
    options.deps ?? h.deps,
  );

const NOT_REQUIRED: ApprovalOutcome = { decision: 'not_required' };

const callTool = (
  h: Harness,
  turn: Pick<ModelTurnResult, 'sessionId' | 'step' | 'branch'>,
  call: ToolCallRef,
  approval: ApprovalOutcome = NOT_REQUIRED,
  options: { toolName?: string; executionArn?: string; retryCount?: number } = {},
): Promise<ToolTaskResult> =>
  runTool(
    { sessionId: turn.sessionId, step: turn.step, call, approval, executionArn: options.executionArn ?? h.executionArn, retryCount: options.retryCount ?? 0, branch: turn.branch },
    options.toolName ?? call.tool,
    h.deps,
  );

/** Runs every call of a turn (as the Map does, one after the other here); returns the Map's `toolRuns`. */
async function runTools(h: Harness, turn: ModelTurnResult, approvalFor: (call: ToolCallRef) => ApprovalOutcome = () => NOT_REQUIRED, executionArn?: string): Promise<ToolTaskResult[]> {
  const runs: ToolTaskResult[] = [];
  for (const c of turn.calls) runs.push(await callTool(h, turn, c, c.needsApproval ? approvalFor(c) : NOT_REQUIRED, { executionArn }));
  return runs;
}

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

/** The inline result of a tool checkpoint. @throws Error when it is stored by reference. */
const resultOf = (record: ToolCheckpoint): string => {
  if (record.result === undefined) throw new Error(`${record.sk} has no inline result`);
  return record.result;
};

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
const ANSWER = '{"answer":"done","confidence":1}';

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
    expect(result).toEqual({ sessionId, step: 0, repairs: 0, outcome: 'ready', events: START_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
    const trigger = { source: 'eventbridge', dedupeKey: EVENT.id, detailType: 'GuardDuty Finding', eventSource: 'aws.guardduty', time: EVENT.time };
    expect(await h.store.getSession(sessionId)).toMatchObject({ agent: 'ssh-investigator', status: 'RUNNING', step: 0, executionArn: h.executionArn, trigger, executions: 1, branch: 0 });
    const finding = SshBruteForceFindingSchema.parse(EVENT.detail);
    expect(await h.store.getCheckpoint(sessionId, checkpointKey.input())).toEqual({
      sessionId,
      sk: 'CP#000000#input',
      schemaVersion: 2,
      createdAt: expect.any(String) as unknown,
      kind: 'input',
      step: 0,
      input: finding,
      prompt: findingPrompt(finding, { source: 'eventbridge', detailType: 'GuardDuty Finding', time: EVENT.time }),
      trigger,
    });
  });

  it('accepts an API trigger: the session id it carries, the prompt from input, and records the first execution', async () => {
    const h = harness(repairAgent);
    const trigger = apiTrigger(repairAgent, { question: 'What is 6 x 7?' });
    const result = await prepare(prepareEvent(h, trigger), h.deps);

    expect(result).toEqual({ sessionId: trigger.sessionId, step: 0, repairs: 0, outcome: 'ready', events: START_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
    expect(await h.store.getSession(trigger.sessionId)).toMatchObject({ agent: 'integ-repair', trigger: { source: 'api', dedupeKey: 'alert-42' } });
    expect(await h.store.getCheckpoint(trigger.sessionId, checkpointKey.input())).toMatchObject({
      kind: 'input',
      input: { question: 'What is 6 x 7?' },
      prompt: 'What is 6 x 7?',
      trigger: { source: 'api', dedupeKey: 'alert-42' },
    });
    expect(await h.store.getCheckpoint(trigger.sessionId, checkpointKey.execution(1))).toEqual({
      sessionId: trigger.sessionId,
      sk: 'EXEC#0001',
      schemaVersion: 2,
      createdAt: expect.any(String) as unknown,
      kind: 'execution',
      execution: 1,
      executionArn: h.executionArn,
      reason: 'start',
      step: 0,
    });
  });

  it("counts Prepare's own retries into the history events ($$.State.RetryCount: 3 events each)", async () => {
    const h = harness(repairAgent);
    const result = await prepare(prepareEvent(h, apiTrigger(repairAgent, { question: 'q' }), h.executionArn, 2), h.deps);
    expect(result).toMatchObject({ outcome: 'ready', events: START_EVENTS + 2 * 3 });
  });

  it('answers duplicate for the same event delivered to a second execution, and writes nothing', async () => {
    const h = harness(sshInvestigator);
    await prepare(prepareEvent(h, EVENT), h.deps);
    const writes = h.store.writes.length;

    const second = await prepare(prepareEvent(h, structuredClone(EVENT), executionArn(sshInvestigator, 'run-2')), h.deps);

    expect(second).toEqual({ sessionId: sessionIdFor('ssh-investigator', EVENT.id), step: 0, repairs: 0, outcome: 'duplicate', events: START_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
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

  it('fails with InvalidInput when the trigger is neither an event, an API trigger nor a continuation, under the execution name', async () => {
    const h = harness(repairAgent);
    const result = await prepare(prepareEvent(h, { hello: 'world' }), h.deps);
    expect(result).toEqual({
      sessionId: 'run-1',
      step: 0,
      repairs: 0,
      outcome: 'failed',
      failure: { error: 'InvalidInput', cause: expect.stringMatching(/neither an EventBridge event .*, an API trigger .* nor a continuation/) as unknown },
      events: START_EVENTS,
      ...FIRST_EXECUTION,
      toolRuns: null,
    });
    expect(h.store.writes).toEqual([]);
  });

  it('fails with an injected fault before creating anything, and is ready on the retry', async () => {
    const h = harness(repairAgent);
    h.faults.fail('Prepare');
    const event = prepareEvent(h, apiTrigger(repairAgent, { question: 'q' }));
    await expect(prepare(event, h.deps)).rejects.toBeInstanceOf(ScriptedFault);
    expect(h.store.writes).toEqual([]);
    await expect(prepare(event, h.deps)).resolves.toMatchObject({ outcome: 'ready' });
    expect(h.faults.reached.map((r) => r.point)).toEqual(['Prepare', 'Prepare']);
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
      events: START_EVENTS + TURN_EVENTS,
      ...FIRST_EXECUTION,
      toolRuns: null,
    });
    const recorded = await model(h, prepared.sessionId, 1);
    expect(recorded).toMatchObject({
      schemaVersion: 2,
      provider: 'scripted',
      request: { modelId: 'scripted/integ-step-limit-v1', tools: ['echo'], messageCount: 1 },
      response: { stopReason: 'tool_use', modelId: 'scripted/integ-step-limit-v1', requestId: 'scripted-1' },
      idempotencyKey: modelCallIdempotencyKey(prepared.sessionId, 1),
      outcome: 'tool_calls',
      calls: turn.calls,
      inlineResults: [],
      // The scripted model has no price: its tokens count, its cost is 0.
      usage: { inputTokens: expect.any(Number) as unknown, outputTokens: expect.any(Number) as unknown },
      costUsd: 0,
      offeredTools: ['echo'],
      params: { maxTokens: 4096 },
      // One model, answered at once: the first turn is a plan step.
      routing: {
        kind: 'plan',
        route: ['scripted/scripted/integ-step-limit-v1'],
        servedBy: { provider: 'scripted', modelId: 'scripted/integ-step-limit-v1', index: 0 },
        attempts: [{ provider: 'scripted', modelId: 'scripted/integ-step-limit-v1', outcome: 'answered', calls: 1, requestId: 'scripted-1' }],
        transitions: [],
      },
      // The turn's time, health reads and writes included (the fake clock ticks at each reading).
      durationMs: expect.any(Number) as unknown,
    });
    expect(recorded.responseRef).toBeUndefined();
    expect(recorded).not.toHaveProperty('denials');
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 1 });
    // The provider was called once, under the turn's idempotency key.
    expect(h.once.runs).toEqual([modelCallIdempotencyKey(prepared.sessionId, 1)]);
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
        maxTokens: DEFAULT_MAX_OUTPUT_TOKENS,
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

  it('gets the recorded answer without a second model call when a retry follows a lost checkpoint write', async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);
    h.store.loseNextPut(checkpointKey.model(1));

    await expect(nextTurn(h, prepared)).rejects.toThrow(/lost write/);
    expect(await h.store.getCheckpoint(prepared.sessionId, checkpointKey.model(1))).toBeUndefined();

    const retried = await nextTurn(h, prepared, null, { retryCount: 1 });

    expect(retried).toMatchObject({ step: 1, outcome: 'tool_calls', calls: [{ callId: 'toolu_s1' }] });
    expect(h.modelCalls).toHaveLength(1);
    expect(h.once.keys).toEqual([modelCallIdempotencyKey(prepared.sessionId, 1), modelCallIdempotencyKey(prepared.sessionId, 1)]);
    expect(h.once.runs).toHaveLength(1);
    expect(await model(h, prepared.sessionId, 1)).toMatchObject({ response: { requestId: 'scripted-1' } });
  });

  it('fails with an injected fault before reading anything or calling the model', async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);
    const writes = h.store.writes.length;
    h.faults.fail('ModelTurn');
    await expect(nextTurn(h, prepared)).rejects.toBeInstanceOf(ScriptedFault);
    expect(h.modelCalls).toEqual([]);
    expect(h.store.writes).toHaveLength(writes);
  });

  it('feeds the tool results of a turn to the next one, and counts the Map into the events (a one-tool turn is 20)', async () => {
    const h = harness(stepLimitAgent);
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);

    // The script's turn 2 expects the tool results to include "one".
    const turn2 = await nextTurn(h, turn1, runs);

    expect(turn2).toMatchObject({ step: 2, outcome: 'tool_calls', calls: [{ callId: 'toolu_s2', tool: 'echo' }], toolRuns: null });
    expect(turn2.events - turn1.events).toBe(MAP_EVENTS + ITERATION_EVENTS + TURN_EVENTS);
    expect(turn2.events - turn1.events).toBe(20);
    expect(h.modelCalls[1]?.messages.at(-1)).toEqual({ role: 'user', content: [{ type: 'tool_result', toolUseId: 'toolu_s1', content: '{"text":"one"}', isError: false }] });
  });

  it("counts the model turn's own retries into the events ($$.State.RetryCount)", async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);
    await expect(nextTurn(h, prepared, null, { retryCount: 3 })).resolves.toMatchObject({ events: START_EVENTS + TURN_EVENTS + 3 * 3 });
  });

  it('keys the model call on the branch: a rolled-back session asks under a new key', async () => {
    const h = harness(stepLimitAgent);
    const prepared = await ready(h);
    await nextTurn(h, { ...prepared, branch: 1 });
    expect(h.once.keys).toEqual([modelCallIdempotencyKey(prepared.sessionId, 1, 1)]);
    expect(modelCallIdempotencyKey(prepared.sessionId, 1, 1)).not.toBe(modelCallIdempotencyKey(prepared.sessionId, 1, 0));
    expect(await model(h, prepared.sessionId, 1)).toMatchObject({ idempotencyKey: modelCallIdempotencyKey(prepared.sessionId, 1, 1) });
  });

  it('sends an invalid answer back for repair, then marks the session SUCCEEDED with the repaired output', async () => {
    const h = harness(repairAgent);
    const prepared = await ready(h);

    const turn1 = await nextTurn(h, prepared);
    expect(turn1).toEqual({ sessionId: prepared.sessionId, step: 1, repairs: 1, outcome: 'repair', calls: [], events: START_EVENTS + TURN_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
    expect((await model(h, prepared.sessionId, 1)).validationErrors).toEqual([expect.stringMatching(/^confidence: /)]);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 1 });

    const turn2 = await nextTurn(h, turn1);
    expect(turn2).toEqual({ sessionId: prepared.sessionId, step: 2, repairs: 1, outcome: 'final', calls: [], events: START_EVENTS + 2 * TURN_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
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
    const h = harness(stepLimitAgent, { toolFunctions: {} });
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

  it("fails with ScriptMismatchError when the request misses the turn's expectations", async () => {
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
// modelTurn: continue-as-new
// ---------------------------------------------------------------------------

describe('modelTurn: continue-as-new', () => {
  /** The step-limit agent with the smallest history limit: room for one worst-case turn after the start. */
  const shortHistory = defineAgent({ ...stepLimitAgent, name: 'unit-short-history', maxSteps: 10, historyEventLimit: minimumHistoryEventLimit() });

  it('takes the first turn: the start and one worst-case turn fit under the smallest limit', async () => {
    const h = harness(shortHistory);
    await expect(nextTurn(h, await ready(h))).resolves.toMatchObject({ outcome: 'tool_calls', step: 1 });
  });

  it('returns continue with the next execution (named <session>-x2) instead of calling the model when one more turn could reach the limit', async () => {
    const h = harness(shortHistory);
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    const writes = h.store.writes.length;
    const reached = h.faults.reached.length;

    const turn2 = await nextTurn(h, turn1, runs);

    const before = turn1.events + MAP_EVENTS + ITERATION_EVENTS;
    expect(turn2).toEqual({
      sessionId: turn1.sessionId,
      step: 1,
      repairs: 0,
      outcome: 'continue',
      calls: [],
      continuation: {
        name: `${turn1.sessionId}-x2`,
        input: { continuation: { sessionId: turn1.sessionId, parentExecutionArn: h.executionArn, reason: 'continue-as-new', execution: 2 } },
      },
      events: before + TURN_EVENTS,
      ...FIRST_EXECUTION,
      toolRuns: null,
    });
    expect(h.modelCalls).toHaveLength(1);
    expect(h.store.writes).toHaveLength(writes);
    expect(h.faults.reached).toHaveLength(reached);
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ status: 'RUNNING', step: 1, executionArn: h.executionArn });
  });

  it('names the next execution after its number: the third continues as <session>-x4, its parent the third', async () => {
    const h = harness(shortHistory);
    const prepared = await ready(h);
    const exec3 = executionArn(shortHistory, `${prepared.sessionId}-x3`);
    const result = await nextTurn(h, { ...prepared, execution: 3, events: 10_000 }, null, { executionArn: exec3 });
    expect(result).toMatchObject({
      outcome: 'continue',
      execution: 3,
      continuation: { name: `${prepared.sessionId}-x4`, input: { continuation: { parentExecutionArn: exec3, execution: 4 } } },
    });
  });

  it('never continues under the default limit (25,000 events) at the start of a run', async () => {
    const h = harness(stepLimitAgent);
    await expect(nextTurn(h, await ready(h))).resolves.toMatchObject({ outcome: 'tool_calls' });
  });
});

// ---------------------------------------------------------------------------
// prepare of a continuation
// ---------------------------------------------------------------------------

describe('prepare: a continuation', () => {
  const continuation = (sessionId: string, parent: string, execution: number, reason: 'continue-as-new' | 'resume' | 'rollback' = 'continue-as-new') => ({
    continuation: { sessionId, parentExecutionArn: parent, reason, execution },
    // The ContinueAsNew state adds Step Functions' own link to the parent.
    AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: parent,
  });

  /** A run of the step-limit agent after one turn and its tool call, and the ARN of its second execution. */
  async function afterOneTurn(): Promise<{ h: Harness; turn1: ModelTurnResult; runs: ToolTaskResult[]; exec2: string }> {
    const h = harness(stepLimitAgent);
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    return { h, turn1, runs, exec2: executionArn(stepLimitAgent, `${turn1.sessionId}-x2`) };
  }

  it('takes the session over from its parent and starts one turn before the last, and records the execution', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();

    const result = await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2), h.deps);

    expect(result).toEqual({ sessionId: turn1.sessionId, step: 0, repairs: 0, outcome: 'ready', events: START_EVENTS, execution: 2, branch: 0, toolRuns: null, decision: null });
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ status: 'RUNNING', executionArn: exec2, parentExecutionArn: h.executionArn, executions: 2, step: 1 });
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.execution(2))).toMatchObject({
      kind: 'execution',
      execution: 2,
      executionArn: exec2,
      parentExecutionArn: h.executionArn,
      reason: 'continue-as-new',
      step: 0,
    });
  });

  it('goes on in the new execution: replays the last turn without a model call, skips its finished tool call, and succeeds there', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    const prepared = await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2), h.deps);

    const replayed = await nextTurn(h, prepared, null, { executionArn: exec2 });
    expect(replayed).toMatchObject({ step: 1, outcome: 'tool_calls', calls: turn1.calls, execution: 2 });
    expect(h.modelCalls).toHaveLength(1);
    const runs = await runTools(h, replayed, undefined, exec2);
    expect(runs).toMatchObject([{ callId: 'toolu_s1', status: 'succeeded' }]);
    const turn2 = await nextTurn(h, replayed, runs, { executionArn: exec2 });
    expect(turn2).toMatchObject({ step: 2, outcome: 'tool_calls', execution: 2 });
    expect(h.modelCalls).toHaveLength(2);
  });

  it('fences the parent execution out: its late turn is not checkpointed and it cannot mark the session SUCCEEDED', async () => {
    const { h, turn1, runs, exec2 } = await afterOneTurn();
    await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2), h.deps);

    const late = await rejection(nextTurn(h, turn1, runs));

    expect(late).toBeInstanceOf(SessionFencedError);
    expect(late.message).toContain(h.executionArn);
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.model(2))).toBeUndefined();
    await expect(h.store.markSucceeded(turn1.sessionId, 2, {}, h.executionArn)).rejects.toBeInstanceOf(SessionFencedError);
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ status: 'RUNNING', executionArn: exec2 });
  });

  it('is ready again when its Prepare is retried after the takeover', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    const event = prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2);
    const first = await prepare(event, h.deps);
    const before = h.store.dump(turn1.sessionId);
    await expect(prepare(event, h.deps)).resolves.toEqual(first);
    expect(h.store.dump(turn1.sessionId)).toEqual(before);
  });

  it('answers superseded, writing nothing, when another execution took the session over', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    h.store.patch(turn1.sessionId, 'SESSION', { executionArn: executionArn(stepLimitAgent, 'someone-else') });
    const writes = h.store.writes.length;

    const result = await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2), h.deps);

    expect(result).toEqual({ sessionId: turn1.sessionId, step: 0, repairs: 0, outcome: 'superseded', events: START_EVENTS, execution: 2, branch: 0, toolRuns: null, decision: null });
    expect(h.store.writes).toHaveLength(writes);
  });

  it('answers superseded, writing nothing, when the session was cancelled', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    await h.store.cancel(turn1.sessionId, { reason: 'wrong host' });
    const writes = h.store.writes.length;

    await expect(prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2), h.deps)).resolves.toMatchObject({ outcome: 'superseded' });

    expect(h.store.writes).toHaveLength(writes);
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ status: 'CANCELLED', executionArn: h.executionArn });
  });

  it('answers superseded, writing nothing, when its Prepare is retried after the takeover and the session was cancelled meanwhile', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    const event = prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2), exec2);
    await expect(prepare(event, h.deps)).resolves.toMatchObject({ outcome: 'ready' });
    await h.store.cancel(turn1.sessionId, { reason: 'wrong host', by: 'alice' });
    const before = h.store.dump(turn1.sessionId);

    const retried = await prepare({ ...event, retryCount: 1 }, h.deps);

    expect(retried).toMatchObject({ sessionId: turn1.sessionId, outcome: 'superseded', execution: 2 });
    expect(h.store.dump(turn1.sessionId)).toEqual(before);
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ status: 'CANCELLED', executionArn: exec2 });
  });

  it.each(['FAILED', 'SUCCEEDED'] as const)('answers superseded when its Prepare is retried after the takeover and the session is %s (no longer RUNNING)', async (status) => {
    const { h, turn1, exec2 } = await afterOneTurn();
    const event = prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2, 'resume'), exec2);
    h.store.patch(turn1.sessionId, 'SESSION', { status: 'FAILED', failure: { error: 'States.TaskFailed', cause: 'outage', failedState: 'ModelTurn' } });
    await expect(prepare(event, h.deps)).resolves.toMatchObject({ outcome: 'ready' });
    h.store.patch(turn1.sessionId, 'SESSION', { status });
    const writes = h.store.writes.length;

    await expect(prepare({ ...event, retryCount: 1 }, h.deps)).resolves.toMatchObject({ outcome: 'superseded' });
    expect(h.store.writes).toHaveLength(writes);
  });

  it('answers superseded when the session does not exist', async () => {
    const h = harness(stepLimitAgent);
    const sessionId = sessionIdFor(stepLimitAgent.name, 'never-started');
    await expect(prepare(prepareEvent(h, continuation(sessionId, h.executionArn, 2), executionArn(stepLimitAgent, `${sessionId}-x2`)), h.deps)).resolves.toMatchObject({
      sessionId,
      outcome: 'superseded',
    });
    expect(h.store.writes).toEqual([]);
  });

  it('resumes a FAILED session (clearing its failure), but never a RUNNING one', async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    await expect(prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2, 'resume'), exec2), h.deps)).resolves.toMatchObject({ outcome: 'superseded' });

    h.store.patch(turn1.sessionId, 'SESSION', { status: 'FAILED', failure: { error: 'States.TaskFailed', cause: 'model provider outage', failedState: 'ModelTurn' } });
    const result = await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2, 'resume'), exec2), h.deps);

    expect(result).toMatchObject({ outcome: 'ready', step: 0, execution: 2 });
    const head = await h.store.getSession(turn1.sessionId);
    expect(head).toMatchObject({ status: 'RUNNING', executionArn: exec2 });
    expect(head?.failure).toBeUndefined();
  });

  it("carries the session's branch after a rollback into the payload", async () => {
    const { h, turn1, exec2 } = await afterOneTurn();
    h.store.patch(turn1.sessionId, 'SESSION', { branch: 1 });

    const prepared = await prepare(prepareEvent(h, continuation(turn1.sessionId, h.executionArn, 2, 'rollback'), exec2), h.deps);

    expect(prepared).toMatchObject({ outcome: 'ready', branch: 1, execution: 2 });
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.execution(2))).toMatchObject({ reason: 'rollback' });
  });

  it('starts a session without model turns at step 0, and one sent back for repair at that turn', async () => {
    const h = harness(repairAgent);
    const prepared = await ready(h);
    const exec2 = executionArn(repairAgent, `${prepared.sessionId}-x2`);
    await expect(prepare(prepareEvent(h, continuation(prepared.sessionId, h.executionArn, 2), exec2), h.deps)).resolves.toMatchObject({ outcome: 'ready', step: 0 });

    const repaired = await nextTurn(h, prepared, null, { executionArn: exec2 });
    expect(repaired).toMatchObject({ step: 1, outcome: 'repair' });
    const exec3 = executionArn(repairAgent, `${prepared.sessionId}-x3`);
    await expect(prepare(prepareEvent(h, continuation(prepared.sessionId, exec2, 3), exec3), h.deps)).resolves.toMatchObject({ outcome: 'ready', step: 1, execution: 3 });
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

/** An agent whose model turns are `turns`, with tools that record their calls in `handled`. */
function opsAgentWith(turns: ScriptedTurn[], extra: Partial<Pick<AgentDefinition, 'context' | 'routes'>> = {}): { agent: AgentDefinition; handled: Handled[] } {
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
  const read = defineTool({
    name: 'read',
    version: '1.0.0',
    description: 'Reads a host by id (no side effect).',
    input: z.object({ id: z.number().int().positive() }),
    output: z.object({ id: z.number(), name: z.string() }),
    idempotent: true,
    handler: async (input, context) => {
      record('read', input, context);
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
  const fragile = defineTool({
    name: 'fragile',
    version: '1.0.0',
    description: 'Checks the disk; always fails with a fault (not a ToolError).',
    input: z.object({}),
    output: z.object({}),
    idempotent: true,
    handler: async (input, context) => {
      record('fragile', input, context);
      throw new Error('disk on fire');
    },
  });
  const flaky = defineTool({
    name: 'flaky',
    version: '1.0.0',
    description: 'Writes somewhere, then loses the connection (a fault, not a ToolError).',
    input: z.object({}),
    output: z.object({}),
    handler: async (input, context) => {
      record('flaky', input, context);
      throw new Error('connection reset after the write');
    },
  });
  const dump = defineTool({
    name: 'dump',
    version: '1.0.0',
    description: 'Returns `bytes` characters of text.',
    input: z.object({ label: z.string(), bytes: z.number().int().positive() }),
    output: z.object({ text: z.string() }),
    idempotent: true,
    handler: async (input, context) => {
      record('dump', input, context);
      return { text: input.label.padEnd(input.bytes, 'x') };
    },
  });
  const agent = defineAgent({
    ...small,
    name: 'unit-ops',
    tools: [lookup, read, block, missing, liar, quiet, fragile, flaky, dump],
    model: { provider: 'scripted', script: script('scripted/unit-ops', ...turns) },
    ...extra,
  });
  return { agent, handled };
}

/** An agent whose single model turn makes `uses`. */
const opsAgent = (...uses: ToolUseBlock[]): { agent: AgentDefinition; handled: Handled[] } => opsAgentWith([call(...uses)]);

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

    expect(result).toEqual({ sessionId: turn.sessionId, step: 1, callId: 'c1', status: 'succeeded', events: ITERATION_EVENTS });
    const idempotencyKey = toolCallIdempotencyKey(turn.sessionId, 1, 'c1');
    expect(handled).toEqual([{ tool: 'lookup', input: { id: 7, verbose: false }, context: { sessionId: turn.sessionId, callId: 'c1', step: 1, idempotencyKey, approval: undefined } }]);
    expect(await toolCheckpoint(h, turn.sessionId, 1, 'c1')).toMatchObject({
      schemaVersion: 2,
      tool: 'lookup',
      toolVersion: '2.1.0',
      input: { id: 7 },
      approval: NOT_REQUIRED,
      status: 'succeeded',
      result: '{"id":7,"name":"host-7"}',
      isError: false,
      idempotencyKey,
      // The tool declares no cost.
      costUsd: 0,
      durationMs: STEP_MS,
    });
    expect(h.once.runs).toContain(idempotencyKey);
  });

  it('writes the intent of a non-idempotent tool before running it, fenced by the execution', async () => {
    const { h, turn } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    await callTool(h, turn, onlyCall(turn));

    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toEqual({
      sessionId: turn.sessionId,
      sk: 'CP#000001#intent#c1',
      schemaVersion: 2,
      createdAt: expect.any(String) as unknown,
      kind: 'intent',
      step: 1,
      callId: 'c1',
      tool: 'lookup',
      idempotencyKey: toolCallIdempotencyKey(turn.sessionId, 1, 'c1'),
      executionArn: h.executionArn,
    });
    const order = h.store.writes.map((w) => w.sk).filter((sk) => sk.startsWith('CP#000001#'));
    expect(order).toEqual(['CP#000001#model', 'CP#000001#intent#c1', 'CP#000001#tool#c1']);
  });

  it('writes no intent for an idempotent tool', async () => {
    const { h, turn } = await opsTurn(use('c1', 'read', { id: 7 }));
    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
  });

  it('answers outcome_unknown without running the tool again when an earlier attempt recorded its intent but no result', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    // The first attempt acts, then dies before it can report (the Lambda crashed or timed out).
    h.faults.fail('RunTool.afterSideEffect');
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(ScriptedFault);
    expect(handled).toHaveLength(1);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();

    const retried = await callTool(h, turn, onlyCall(turn), NOT_REQUIRED, { retryCount: 1 });

    expect(retried).toEqual({ sessionId: turn.sessionId, step: 1, callId: 'c1', status: 'outcome_unknown', events: ITERATION_EVENTS + 3 });
    expect(handled).toHaveLength(1);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'outcome_unknown', isError: true, input: { id: 7 } });
    expect(JSON.parse(resultOf(recorded))).toMatchObject({ error: 'OUTCOME_UNKNOWN', message: expect.stringContaining('lookup') as unknown });
    // And the model is told so in the next turn.
    expect(await callTool(h, turn, onlyCall(turn))).toMatchObject({ status: 'outcome_unknown' });
    expect(handled).toHaveLength(1);
  });

  it('never runs a non-idempotent tool twice, even when its first attempt threw a fault: the retry answers outcome_unknown', async () => {
    const { agent, handled } = opsAgentWith([call(use('c1', 'flaky', {}))]);
    const h = harness(agent);
    const turn = await nextTurn(h, await ready(h));

    await expect(callTool(h, turn, onlyCall(turn))).rejects.toThrow('connection reset after the write');
    await expect(callTool(h, turn, onlyCall(turn), NOT_REQUIRED, { retryCount: 1 })).resolves.toMatchObject({ status: 'outcome_unknown' });

    expect(handled.map((x) => x.tool)).toEqual(['flaky']);
  });

  it('runs an idempotent tool again when an earlier attempt died before recording its result', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 7 }));
    h.faults.fail('RunTool.afterSideEffect');
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(ScriptedFault);

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled.map((x) => x.context.idempotencyKey)).toEqual([toolCallIdempotencyKey(turn.sessionId, 1, 'c1'), toolCallIdempotencyKey(turn.sessionId, 1, 'c1')]);
    expect(resultOf(await toolCheckpoint(h, turn.sessionId, 1, 'c1'))).toBe('{"id":7,"name":"host-7"}');
  });

  it('gets the recorded outcome without running the tool again when a retry follows a lost checkpoint write', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    h.store.loseNextPut(checkpointKey.tool(1, 'c1'));
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toThrow(/lost write/);

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled).toHaveLength(1);
    expect(await toolCheckpoint(h, turn.sessionId, 1, 'c1')).toMatchObject({ status: 'succeeded', result: '{"id":7,"name":"host-7"}' });
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

  it('keys the call on the branch after a rollback', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 1 }));
    await callTool(h, { ...turn, branch: 2 }, onlyCall(turn));
    expect(handled[0]?.context.idempotencyKey).toBe(toolCallIdempotencyKey(turn.sessionId, 1, 'c1', 2));
    expect(toolCallIdempotencyKey(turn.sessionId, 1, 'c1', 2)).not.toBe(toolCallIdempotencyKey(turn.sessionId, 1, 'c1'));
  });

  it('records invalid arguments as invalid_input with issues naming the field, without running the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 'seven' }));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'invalid_input' });

    expect(handled).toEqual([]);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'invalid_input', isError: true, input: { id: 'seven' } });
    const body = JSON.parse(resultOf(recorded)) as { error: string; issues: unknown[] };
    expect(body.error).toBe('INVALID_ARGUMENTS');
    expect(body.issues).toEqual([{ field: 'id', expected: 'number', got: '"seven"', message: expect.stringContaining('expected number') as unknown }]);
    // It never ran, so there is no intent, and it cost nothing.
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
    expect(recorded.costUsd).toBe(0);
  });

  it('tells the model, for each invalid argument, the field, what the schema expects and what it got', async () => {
    const { h, turn } = await opsTurn(use('c1', 'lookup', { id: -3, verbose: 'yes' }), use('c2', 'lookup', {}));
    for (const c of turn.calls) await callTool(h, turn, c);

    const issuesOf = async (callId: string): Promise<unknown> => (JSON.parse(resultOf(await toolCheckpoint(h, turn.sessionId, 1, callId))) as { issues: unknown }).issues;
    expect(await issuesOf('c1')).toEqual([
      { field: 'id', expected: 'number > 0', got: '-3', message: expect.any(String) as unknown },
      { field: 'verbose', expected: 'boolean', got: '"yes"', message: expect.any(String) as unknown },
    ]);
    expect(await issuesOf('c2')).toEqual([{ field: 'id', expected: 'number', got: 'missing', message: expect.any(String) as unknown }]);
  });

  it('records a rejected approval as rejected with the reason, without running the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    const approval: ApprovalOutcome = { decision: 'rejected', reason: 'address belongs to our VPN', approvalId: 'apv_1', decidedBy: 'alice' };
    expect(onlyCall(turn).needsApproval).toBe(true);

    await expect(callTool(h, turn, onlyCall(turn), approval)).resolves.toMatchObject({ status: 'rejected', events: ITERATION_EVENTS + APPROVAL_EVENTS });

    expect(handled).toEqual([]);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'rejected', isError: true, approval });
    expect(JSON.parse(resultOf(recorded))).toMatchObject({ status: 'rejected', reason: 'address belongs to our VPN' });
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
  });

  it('records a timed-out approval as rejected with reason "timed out"', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    // The iteration's events include the wait (6), the ApprovalTimedOut Pass (2) and AfterApproval (2).
    await expect(callTool(h, turn, onlyCall(turn), { decision: 'timed_out' })).resolves.toMatchObject({ status: 'rejected', events: ITERATION_EVENTS + 6 + 2 + 2 });
    expect(handled).toEqual([]);
    expect(JSON.parse(resultOf(await toolCheckpoint(h, turn.sessionId, 1, 'c1')))).toMatchObject({ status: 'rejected', reason: APPROVAL_TIMED_OUT_REASON });
    expect(APPROVAL_TIMED_OUT_REASON).toBe('timed out');
  });

  it('runs an approved call and hands the approval to the tool', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    const approval: ApprovalOutcome = { decision: 'approved', reason: 'confirmed', approvalId: 'apv_1', decidedBy: 'alice' };

    await expect(callTool(h, turn, onlyCall(turn), approval)).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled).toHaveLength(1);
    expect(handled[0]?.context.approval).toEqual({ approvalId: 'apv_1', decidedBy: 'alice', reason: 'confirmed' });
  });

  it('fails with ConfigurationError when a tool that needs approval arrives without a decision, and does not run it', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    await expect(callTool(h, turn, onlyCall(turn), NOT_REQUIRED)).rejects.toBeInstanceOf(ConfigurationError);
    expect(handled).toEqual([]);
  });

  it('records a ToolError as a tool_error result the model sees', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'missing', { id: 9 }));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'tool_error' });

    expect(handled).toHaveLength(1);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'tool_error', isError: true });
    expect(JSON.parse(resultOf(recorded))).toEqual({ error: 'TOOL_ERROR', message: 'no host with id 9' });
  });

  it("fails with the tool's own error when it throws a plain Error, writing no checkpoint (a fault to retry)", async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'fragile', {}));
    const writes = h.store.writes.length;

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).not.toBeInstanceOf(ToolError);
    expect(err.message).toBe('disk on fire');
    expect(h.store.writes).toHaveLength(writes);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
    // A retry runs the (idempotent) tool again, since nothing was recorded.
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toThrow('disk on fire');
    expect(handled).toHaveLength(2);
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

    const err = await rejection(callTool(h, turn, onlyCall(turn), NOT_REQUIRED, { toolName: 'block' }));

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
    expect(() => JSON.parse(resultOf(recorded)) as unknown).not.toThrow();
  });
});

// ---------------------------------------------------------------------------
// Fencing: a cancelled session refuses the writes of its execution
// ---------------------------------------------------------------------------

describe('fenced writes after a cancel', () => {
  it('refuses the intent of a non-idempotent tool, so the tool never runs', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    await h.store.cancel(turn.sessionId, { reason: 'wrong host', by: 'alice' });

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).toBeInstanceOf(SessionFencedError);
    expect(err.message).toContain(`session ${turn.sessionId}`);
    expect(handled).toEqual([]);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
  });

  it('refuses the result of a rejected approval', async () => {
    const { h, turn } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    await h.store.cancel(turn.sessionId, { reason: 'stop' });
    await expect(callTool(h, turn, onlyCall(turn), { decision: 'rejected', reason: 'no' })).rejects.toBeInstanceOf(SessionFencedError);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
  });

  it("refuses a model turn's checkpoint, and leaves the session CANCELLED", async () => {
    const h = harness(repairAgent);
    const prepared = await ready(h);
    await h.store.cancel(prepared.sessionId, { reason: 'stop' });

    await expect(nextTurn(h, prepared)).rejects.toBeInstanceOf(SessionFencedError);

    expect(await h.store.getCheckpoint(prepared.sessionId, checkpointKey.model(1))).toBeUndefined();
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'CANCELLED', step: 0 });
  });

  it('refuses to run an idempotent tool (it has no intent write to fence it): the head is checked first', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 7 }));
    await h.store.cancel(turn.sessionId, { reason: 'wrong host', by: 'alice' });

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).toBeInstanceOf(SessionFencedError);
    expect(err.message).toContain(`execution ${h.executionArn} no longer owns session ${turn.sessionId}`);
    expect(err.message).toContain('read was not run');
    expect(handled).toEqual([]);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
  });

  it('still answers a call checkpointed before the cancel (a retry of a finished step)', async () => {
    const { h, turn } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    const first = await callTool(h, turn, onlyCall(turn));
    await h.store.cancel(turn.sessionId, { reason: 'stop' });
    await expect(callTool(h, turn, onlyCall(turn))).resolves.toEqual(first);
  });
});

describe('fencing a tool before it acts', () => {
  const otherExecution = executionArn(opsAgentWith([]).agent, 'someone-else');

  it('does not run an idempotent tool once another execution owns the session (a continuation took it over)', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 7 }));
    h.store.patch(turn.sessionId, 'SESSION', { executionArn: otherExecution });

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).toBeInstanceOf(SessionFencedError);
    expect(handled).toEqual([]);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.tool(1, 'c1'))).toBeUndefined();
  });

  it.each(['FAILED', 'SUCCEEDED', 'CANCELLED'] as const)('does not run an idempotent tool when the session of its own execution is %s', async (status) => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 7 }));
    h.store.patch(turn.sessionId, 'SESSION', { status });

    await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(SessionFencedError);

    expect(handled).toEqual([]);
  });

  it('keeps no idempotency record for a fenced idempotent call, so the call runs once the execution owns the session again', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'read', { id: 7 }));
    h.store.patch(turn.sessionId, 'SESSION', { executionArn: otherExecution });
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(SessionFencedError);
    expect(h.once.has(toolCallIdempotencyKey(turn.sessionId, 1, 'c1'))).toBe(false);

    h.store.patch(turn.sessionId, 'SESSION', { executionArn: h.executionArn });
    await expect(callTool(h, turn, onlyCall(turn), NOT_REQUIRED, { retryCount: 1 })).resolves.toMatchObject({ status: 'succeeded' });
    expect(handled.map((x) => x.tool)).toEqual(['read']);
  });

  it('reads the head once per call that may run: its principal for the call-time policy check, and for an idempotent tool also its fence', async () => {
    const idempotent = await opsTurn(use('c1', 'read', { id: 7 }));
    const readsOfIdempotent = vi.spyOn(idempotent.h.store, 'getSession');
    await expect(callTool(idempotent.h, idempotent.turn, onlyCall(idempotent.turn))).resolves.toMatchObject({ status: 'succeeded' });
    expect(readsOfIdempotent).toHaveBeenCalledTimes(1);

    // A non-idempotent tool is fenced by its intent write; the head it reads is for the principal only.
    const other = await opsTurn(use('c1', 'lookup', { id: 7 }));
    const readsOfOther = vi.spyOn(other.h.store, 'getSession');
    await expect(callTool(other.h, other.turn, onlyCall(other.turn))).resolves.toMatchObject({ status: 'succeeded' });
    expect(readsOfOther).toHaveBeenCalledTimes(1);
  });

  it('does not run a non-idempotent tool once another execution owns the session: its fenced intent write is refused', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    h.store.patch(turn.sessionId, 'SESSION', { executionArn: otherExecution });

    const err = await rejection(callTool(h, turn, onlyCall(turn)));

    expect(err).toBeInstanceOf(SessionFencedError);
    expect(err.message).toContain(`${checkpointKey.intent(1, 'c1')} was not written`);
    expect(handled).toEqual([]);
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
  });

  it('reads no head for a call whose approval was rejected (nothing runs), and still refuses its checkpoint', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    h.store.patch(turn.sessionId, 'SESSION', { executionArn: otherExecution });
    const reads = vi.spyOn(h.store, 'getSession');

    await expect(callTool(h, turn, onlyCall(turn), { decision: 'rejected', reason: 'no' })).rejects.toBeInstanceOf(SessionFencedError);

    expect(reads).not.toHaveBeenCalled();
    expect(handled).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Bodies stored by reference
// ---------------------------------------------------------------------------

describe('bodies stored by reference', () => {
  const INLINE_LIMIT = 512;

  it('stores a result larger than the inline limit in the body store, checkpoints its reference, and loads it back into the conversation', async () => {
    const { agent, handled } = opsAgentWith([
      call(use('c1', 'dump', { label: 'big', bytes: 2000 })),
      { expect: { toolResultIncludes: ['big'.padEnd(2000, 'x')] }, response: { content: [{ type: 'text', text: ANSWER }], stopReason: 'end_turn', usage } },
    ]);
    const h = harness(agent, { inlineLimitBytes: INLINE_LIMIT });
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);

    const body = JSON.stringify({ text: 'big'.padEnd(2000, 'x') });
    const recorded = await toolCheckpoint(h, turn1.sessionId, 1, 'c1');
    expect(recorded.result).toBeUndefined();
    expect(recorded.resultRef).toEqual({
      bucket: BODY_BUCKET,
      key: `${turn1.sessionId}/CP#000001#tool#c1/${sha256(body)}.json`,
      bytes: Buffer.byteLength(body),
      sha256: sha256(body),
    });
    expect(h.bodies.object(recorded.resultRef?.key ?? '')).toBe(body);
    expect(handled).toHaveLength(1);

    const turn2 = await nextTurn(h, turn1, runs);

    expect(turn2).toMatchObject({ step: 2, outcome: 'final' });
    expect(h.modelCalls[1]?.messages.at(-1)).toEqual({ role: 'user', content: [{ type: 'tool_result', toolUseId: 'c1', content: body, isError: false }] });
    expect(h.bodies.gets).toContain(recorded.resultRef?.key);
  });

  it('records a result of 1 MiB under the default inline limit: stored by reference, the checkpoint stays a small item', async () => {
    const { agent } = opsAgentWith([call(use('c1', 'dump', { label: 'huge', bytes: 1024 * 1024 }))]);
    const h = harness(agent);
    const turn = await nextTurn(h, await ready(h));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded.resultRef?.bytes).toBe(1024 * 1024 + '{"text":""}'.length);
    expect(Buffer.byteLength(JSON.stringify(recorded))).toBeLessThan(2048);
  });

  it(`answers a result larger than ${MAX_TOOL_RESULT_BYTES} bytes with a RESULT_TOO_LARGE error result, storing no body`, async () => {
    const { agent, handled } = opsAgentWith([call(use('c1', 'dump', { label: 'flood', bytes: MAX_TOOL_RESULT_BYTES }))]);
    const h = harness(agent);
    const turn = await nextTurn(h, await ready(h));

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'tool_error' });

    expect(handled).toHaveLength(1);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'tool_error', isError: true });
    expect(JSON.parse(resultOf(recorded))).toEqual({
      error: 'RESULT_TOO_LARGE',
      message: `dump returned ${MAX_TOOL_RESULT_BYTES + '{"text":""}'.length} bytes; results are limited to ${MAX_TOOL_RESULT_BYTES}. Ask for less.`,
    });
    expect(h.bodies.puts.filter((k) => k.includes('#tool#'))).toEqual([]);
  });

  it('keeps a result of exactly the inline limit inline', async () => {
    const { agent } = opsAgentWith([call(use('c1', 'dump', { label: 'edge', bytes: INLINE_LIMIT - '{"text":""}'.length }))]);
    const h = harness(agent, { inlineLimitBytes: INLINE_LIMIT });
    const turn = await nextTurn(h, await ready(h));
    await callTool(h, turn, onlyCall(turn));
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(Buffer.byteLength(resultOf(recorded))).toBe(INLINE_LIMIT);
    expect(recorded.resultRef).toBeUndefined();
    expect(h.bodies.puts).toEqual([]);
  });

  it('stores a large model response by reference; the tool call and the next turn load it back', async () => {
    const long = `I will look host 7 up. ${'Reasoning. '.repeat(80)}`;
    const { agent, handled } = opsAgentWith([
      { response: { content: [{ type: 'text', text: long }, use('c1', 'lookup', { id: 7 })], stopReason: 'tool_use', usage } },
      { expect: { toolResultIncludes: ['host-7'] }, response: { content: [{ type: 'text', text: ANSWER }], stopReason: 'end_turn', usage } },
    ]);
    const h = harness(agent, { inlineLimitBytes: INLINE_LIMIT });
    const prepared = await ready(h);
    const turn1 = await nextTurn(h, prepared);

    const recorded = await model(h, turn1.sessionId, 1);
    expect(recorded.response).toBeUndefined();
    expect(recorded.responseRef).toMatchObject({ bucket: BODY_BUCKET, key: expect.stringMatching(new RegExp(`^${turn1.sessionId}/CP#000001#model/[0-9a-f]{64}\\.json$`)) as unknown });
    expect(turn1).toMatchObject({ outcome: 'tool_calls', calls: [{ callId: 'c1', tool: 'lookup' }] });
    // A replay needs no body: the calls are in the checkpoint.
    await expect(nextTurn(h, prepared)).resolves.toEqual(turn1);

    const runs = await runTools(h, turn1);
    expect(handled).toHaveLength(1);
    await expect(nextTurn(h, turn1, runs)).resolves.toMatchObject({ outcome: 'final' });
    expect(h.modelCalls[1]?.messages[1]).toEqual({ role: 'assistant', content: [{ type: 'text', text: long }, use('c1', 'lookup', { id: 7 })] });
  });

  it('fails with CorruptCheckpointError when a stored body no longer matches its SHA-256', async () => {
    const { agent } = opsAgentWith([call(use('c1', 'dump', { label: 'big', bytes: 2000 })), say(ANSWER)]);
    const h = harness(agent, { inlineLimitBytes: INLINE_LIMIT });
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    const ref = (await toolCheckpoint(h, turn1.sessionId, 1, 'c1')).resultRef;
    h.bodies.tamper(ref?.key ?? '', '{"text":"tampered"}');

    const err = await rejection(nextTurn(h, turn1, runs));

    expect(err.name).toBe('CorruptCheckpointError');
    expect(err.message).toContain('SHA-256');
    expect(h.modelCalls).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------
// The agent's context limit
// ---------------------------------------------------------------------------

describe('modelTurn: model routing', () => {
  const primary = script('scripted/primary-v1', say(ANSWER));
  const fallback = script('scripted/fallback-v1', say(ANSWER));
  const PRIMARY_KEY = 'scripted/scripted/primary-v1';
  const routedAgent = (): AgentDefinition =>
    defineAgent({ ...small, name: 'unit-routed', tools: [], model: { primary: { provider: 'scripted', script: primary }, fallbacks: [{ provider: 'scripted', script: fallback }] } });
  /** Opens the primary's circuit, as a trip a few seconds before the harness clock's start would have. */
  const openPrimary = (h: Harness): Promise<unknown> =>
    h.health.transition(PRIMARY_KEY, INITIAL_BREAKER, { state: 'open', since: Date.UTC(2024, 11, 10, 11, 10, 0), reason: 'error rate 1.00 (5 of 5 calls) at or above 0.5' });

  it('serves a turn from the fallback when the primary’s circuit is open, records the route, and writes one ModelFallback notice, replay or not', async () => {
    const h = harness(routedAgent());
    await openPrimary(h);
    const prepared = await ready(h);
    await expect(nextTurn(h, prepared)).resolves.toMatchObject({ step: 1, outcome: 'final' });
    // A replay of the turn (a retried task) writes nothing twice.
    await expect(nextTurn(h, prepared)).resolves.toMatchObject({ step: 1, outcome: 'final' });

    expect(await model(h, prepared.sessionId, 1)).toMatchObject({
      provider: 'scripted',
      request: { modelId: 'scripted/fallback-v1' },
      routing: {
        kind: 'plan',
        route: [PRIMARY_KEY, 'scripted/scripted/fallback-v1'],
        servedBy: { provider: 'scripted', modelId: 'scripted/fallback-v1', index: 1 },
        attempts: [
          { modelId: 'scripted/primary-v1', outcome: 'skipped', calls: 0 },
          { modelId: 'scripted/fallback-v1', outcome: 'answered', calls: 1 },
        ],
        transitions: [],
      },
    });
    const notices = await h.store.listNotices(prepared.sessionId);
    expect(notices.map((n) => n.sk)).toEqual([checkpointKey.notice('ModelFallback', '0#1')]);
    expect(notices[0]).toMatchObject({ notice: 'ModelFallback', step: 1, detail: { kind: 'plan', primary: PRIMARY_KEY, servedBy: 'scripted/scripted/fallback-v1' } });
    expect(h.modelCalls.map((r) => r.modelId)).toEqual(['scripted/fallback-v1']);
  });

  it('sends the route’s temperature in the request and records it among the parameters', async () => {
    const agent = defineAgent({ ...small, name: 'unit-tempered', tools: [], model: { primary: { provider: 'scripted', script: primary }, temperature: 0.2 } });
    const h = harness(agent);
    const prepared = await ready(h);
    await expect(nextTurn(h, prepared)).resolves.toMatchObject({ outcome: 'final' });
    expect(h.modelCalls[0]).toMatchObject({ temperature: 0.2, maxTokens: 4096 });
    expect((await model(h, prepared.sessionId, 1)).params).toEqual({ maxTokens: 4096, temperature: 0.2 });
  });

  it('announces the circuit changes of a turn that fails on every model, then throws the transient fault for the Retry', async () => {
    const h = harness(routedAgent());
    const prepared = await ready(h);
    for (let i = 0; i < 5; i++) await h.health.record(PRIMARY_KEY, { at: Date.UTC(2024, 11, 10, 11, 10, 5), ok: false, latencyMs: 10 }, DEFAULT_BREAKER);
    const overloaded = (ref: ModelRef): ModelProvider => ({
      name: ref.provider,
      converse: async (request) => {
        throw new ModelProviderError(`overloaded ${request.modelId}`, { provider: ref.provider, modelId: request.modelId, kind: 'overloaded', status: 529 });
      },
    });
    const error = await rejection(nextTurn(h, prepared, null, { deps: { ...h.deps, provider: overloaded } }));
    expect(error).toBeInstanceOf(TransientError);
    const notices = await h.store.listNotices(prepared.sessionId);
    expect(notices).toEqual([expect.objectContaining({ notice: 'CircuitOpened', step: 1, detail: expect.objectContaining({ model: PRIMARY_KEY, from: 'closed', to: 'open' }) as unknown })]);
    expect(await h.store.getCheckpoint(prepared.sessionId, checkpointKey.model(1))).toBeUndefined();
  });
});

describe("modelTurn: the agent's context limit", () => {
  const RESULT_BYTES = 300 + '{"text":""}'.length;
  const turns = (): ScriptedTurn[] => [
    call(use('c1', 'dump', { label: 'first', bytes: 300 })),
    call(use('c2', 'dump', { label: 'second', bytes: 300 })),
    say(ANSWER),
  ];

  async function twoResults(strategy: 'drop-oldest-tool-results' | 'fail'): Promise<{ h: Harness; turn2: ModelTurnResult; runs: ToolTaskResult[] }> {
    const { agent } = opsAgentWith(turns(), { context: { maxToolResultBytes: RESULT_BYTES + 10, strategy } });
    const h = harness(agent, { inlineLimitBytes: 64 });
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    const runs = await runTools(h, turn2);
    return { h, turn2, runs };
  }

  it('drops the oldest tool results past the limit: the model sees a note instead, though the dropped body is still read (for the output pipeline)', async () => {
    const { h, turn2, runs } = await twoResults('drop-oldest-tool-results');
    const dropped = (await toolCheckpoint(h, turn2.sessionId, 1, 'c1')).resultRef?.key;
    const kept = (await toolCheckpoint(h, turn2.sessionId, 2, 'c2')).resultRef?.key;
    const reads = h.bodies.gets.length;

    await expect(nextTurn(h, turn2, runs)).resolves.toMatchObject({ step: 3, outcome: 'final' });

    const messages = h.modelCalls[2]?.messages ?? [];
    const note = messages[2]?.content[0];
    expect(note).toMatchObject({ type: 'tool_result', toolUseId: 'c1', isError: false });
    expect(JSON.parse((note as { content: string }).content)).toMatchObject({ error: 'CONTEXT_DROPPED', message: expect.stringContaining(`dump (${RESULT_BYTES} bytes)`) as unknown });
    expect(messages[4]?.content[0]).toMatchObject({ type: 'tool_result', toolUseId: 'c2', content: expect.stringContaining('second') as unknown });
    expect(h.bodies.gets.slice(reads)).toContain(kept);
    // Loaded, not sent: semantic rules and summaries read every result of the session.
    expect(h.bodies.gets.slice(reads)).toContain(dropped);
  });

  it('does not read a dropped result on a turn that calls tools (only a final answer needs it, for the output pipeline)', async () => {
    const { agent } = opsAgentWith([...turns().slice(0, 2), call(use('c3', 'dump', { label: 'third', bytes: 300 })), say(ANSWER)], {
      context: { maxToolResultBytes: RESULT_BYTES + 10, strategy: 'drop-oldest-tool-results' },
    });
    const h = harness(agent, { inlineLimitBytes: 64 });
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    const runs = await runTools(h, turn2);
    const dropped = (await toolCheckpoint(h, turn2.sessionId, 1, 'c1')).resultRef?.key;
    const kept = (await toolCheckpoint(h, turn2.sessionId, 2, 'c2')).resultRef?.key;
    const reads = h.bodies.gets.length;

    await expect(nextTurn(h, turn2, runs)).resolves.toMatchObject({ step: 3, outcome: 'tool_calls' });

    expect(JSON.parse((h.modelCalls[2]?.messages[2]?.content[0] as { content: string }).content)).toMatchObject({ error: 'CONTEXT_DROPPED' });
    expect(h.bodies.gets.slice(reads)).toContain(kept);
    expect(h.bodies.gets.slice(reads)).not.toContain(dropped);
  });

  /** What the context limit recorded for a request: its estimated tokens are a count, whatever the estimate. */
  const contextOf = (strategy: 'drop-oldest-tool-results' | 'fail', toolResultBytes: number, droppedToolResults: number): unknown => ({
    toolResultBytes,
    droppedToolResults,
    summarisedToolResults: 0,
    estimatedTokens: expect.any(Number) as unknown,
    strategy,
  });

  it('records in each model checkpoint the tool-result bytes it sent, how many results it dropped or summarised, its estimated tokens and the strategy', async () => {
    const { h, turn2, runs } = await twoResults('drop-oldest-tool-results');
    await nextTurn(h, turn2, runs);

    const contexts = await Promise.all([1, 2, 3].map(async (step) => (await model(h, turn2.sessionId, step)).context));
    expect(contexts).toEqual([
      contextOf('drop-oldest-tool-results', 0, 0),
      contextOf('drop-oldest-tool-results', RESULT_BYTES, 0),
      contextOf('drop-oldest-tool-results', RESULT_BYTES, 1),
    ]);
    // The second request is the first plus its answer and a result.
    const [first, second] = contexts.map((c) => c?.estimatedTokens ?? 0);
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(first ?? 0);
  });

  it('records the bytes under the fail strategy too, while the results fit', async () => {
    const { h, turn2 } = await twoResults('fail');
    expect((await model(h, turn2.sessionId, 2)).context).toEqual(contextOf('fail', RESULT_BYTES, 0));
  });

  it('records no context in the model checkpoint of an agent without a context limit', async () => {
    const { agent } = opsAgentWith(turns());
    const h = harness(agent, { inlineLimitBytes: 64 });
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    await nextTurn(h, turn2, await runTools(h, turn2));

    for (const step of [1, 2, 3]) expect(await model(h, turn2.sessionId, step)).not.toHaveProperty('context');
    expect(h.store.dump(turn2.sessionId)[checkpointKey.model(3)]).not.toHaveProperty('context');
  });

  it('has the summarise route’s model write the summary of each replaced result, once: checkpointed, reused by later turns, counted in the spend', async () => {
    const summariser = script('scripted/summariser-v1', say('a result of 300 bytes of x'));
    const dumps = ['first', 'second', 'third', 'fourth'].map((label, i) => call(use(`c${i + 1}`, 'dump', { label, bytes: 300 })));
    const { agent } = opsAgentWith([...dumps, say(ANSWER)], {
      context: { maxToolResultBytes: 2 * RESULT_BYTES + 10, strategy: 'summarise' },
      routes: { summarise: { primary: { provider: 'scripted', script: summariser, pricing: ROUND_PRICING } } },
    });
    const h = harness(agent, { inlineLimitBytes: 64 });
    let turn = await nextTurn(h, await ready(h));
    for (let i = 0; i < 4; i++) turn = await nextTurn(h, turn, await runTools(h, turn));
    expect(turn).toMatchObject({ step: 5, outcome: 'final' });

    // Turn 4 (three results, two fit) summarised c1; turn 5 reused it and summarised c2: two summary calls.
    const summaryCalls = h.modelCalls.filter((r) => r.modelId === 'scripted/summariser-v1');
    expect(summaryCalls).toHaveLength(2);
    expect(summaryCalls[0]).toMatchObject({ system: SUMMARY_SYSTEM_PROMPT, tools: [], maxTokens: SUMMARY_MAX_OUTPUT_TOKENS });
    expect(JSON.stringify(summaryCalls[0]?.messages)).toContain('The result of the tool dump:\\n{\\"text\\":\\"first');
    const main = h.modelCalls.filter((r) => r.modelId === 'scripted/unit-ops');
    const summaryOf = (callId: string): Record<string, unknown> => ({ toolUseId: callId, content: expect.stringMatching(/^a result of 300 bytes of x\n\(summarised by scripted\/scripted\/summariser-v1 from \d+ bytes/) as unknown });
    expect(main[3]?.messages[2]?.content[0]).toMatchObject(summaryOf('c1'));
    expect(main[3]?.messages[4]?.content[0]).toMatchObject({ toolUseId: 'c2', content: expect.stringContaining('second') as unknown });
    expect(main[4]?.messages[2]?.content[0]).toMatchObject(summaryOf('c1'));
    expect(main[4]?.messages[4]?.content[0]).toMatchObject(summaryOf('c2'));
    const summary = { text: 'a result of 300 bytes of x', provider: 'scripted', modelId: 'scripted/summariser-v1', usage, costUsd: TURN_USD, transitions: [] };
    expect((await model(h, turn.sessionId, 4)).context?.summaries).toEqual({ [checkpointKey.tool(1, 'c1')]: summary });
    expect((await model(h, turn.sessionId, 5)).context?.summaries).toEqual({ [checkpointKey.tool(2, 'c2')]: summary });
    // The summaries' tokens and cost are spent: five turns (unpriced) and two summaries.
    const spend = spendOf(Object.values(h.store.dump(turn.sessionId)) as CheckpointRecord[], { createdAt: new Date(0).toISOString() }, 0);
    expect(spend).toMatchObject({ steps: 5, inputTokens: 7 * usage.inputTokens, outputTokens: 7 * usage.outputTokens, costUsd: 2 * TURN_USD });
  });

  it('fails with ContextLimitExceeded under the fail strategy, without calling the model or checkpointing the turn', async () => {
    const { h, turn2, runs } = await twoResults('fail');

    const result = await nextTurn(h, turn2, runs);

    expect(result).toMatchObject({
      step: 2,
      outcome: 'failed',
      calls: [],
      failure: { error: 'ContextLimitExceeded', cause: `tool results of ${2 * RESULT_BYTES} bytes exceed the agent's context limit of ${RESULT_BYTES + 10} bytes` },
    });
    expect(h.modelCalls).toHaveLength(2);
    expect(await h.store.getCheckpoint(turn2.sessionId, checkpointKey.model(3))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// Governance: budgets, policies, tool budgets, the output pipeline
// ---------------------------------------------------------------------------

/** 1,000 USD per million input tokens, output free: a scripted turn (50 input tokens) costs 0.05 USD. */
const ROUND_PRICING: ModelPrice = { inputUsdPerMillionTokens: 1000, outputUsdPerMillionTokens: 0, source: 'unit test: a round price', asOf: '2026-11-21' };
const TURN_USD = 0.05;
const ALICE: Principal = { user: 'alice', tenant: 'acme', roles: ['analyst'] };
const ADMIN: Principal = { user: 'root', tenant: 'acme', roles: ['admin'] };
const DENY: PolicyDecision = { allowed: false, policies: [], errors: [] };
const RAISED: WaitDecision = { decision: 'raised', decidedBy: 'alice', approvalId: 'apv_pause' };

const textIO = { input: z.object({ text: z.string() }), output: z.object({ text: z.string() }) };
const echoTool = defineTool({ name: 'echo', version: '1.0.0', idempotent: true, description: 'Returns its text.', ...textIO, handler: async ({ text }) => ({ text }) });
/** May run once per session. */
const limitedTool = defineTool({
  name: 'limited',
  version: '1.0.0',
  idempotent: true,
  description: 'Returns its text; once per session.',
  ...textIO,
  budget: { callsPerSession: 1 },
  handler: async ({ text }) => ({ text }),
});
/** Costs 0.03 USD per call. */
const pricedTool = defineTool({
  name: 'priced',
  version: '1.0.0',
  idempotent: true,
  description: 'Returns its text, for 0.03 USD.',
  ...textIO,
  budget: { costPerCallUsd: 0.03 },
  handler: async ({ text }) => ({ text }),
});
const secretTool = defineTool({
  name: 'secret',
  version: '1.0.0',
  idempotent: true,
  description: 'Reads the vault.',
  input: z.object({}),
  output: z.object({ secret: z.string() }),
  tags: ['restricted'],
  classification: 'restricted',
  handler: async () => ({ secret: 'hunter2' }),
});

/** An agent with the tools above whose model is priced at {@link ROUND_PRICING}: each turn costs {@link TURN_USD}. */
function governedAgent(
  turns: ScriptedTurn[],
  extra: { budgets?: Budgets; outputPipeline?: OutputPipeline<z.infer<typeof AnswerSchema>> } = {},
): AgentDefinition {
  return defineAgent({
    ...small,
    name: 'unit-governed',
    tools: [echoTool, limitedTool, pricedTool, secretTool],
    model: { provider: 'scripted', script: script('scripted/unit-governed-v1', ...turns), pricing: ROUND_PRICING },
    ...extra,
  });
}

/** Prepare with an API trigger on behalf of `principal`; fails the test unless ready. */
async function readyAs(h: Harness, principal: Principal, extra: Pick<ApiTrigger, 'budgets' | 'depth'> = {}): Promise<PrepareResult> {
  const result = await prepare(prepareEvent(h, { ...apiTrigger(h.agent, { question: 'q' }), principal, ...extra }), h.deps);
  if (result.outcome !== 'ready') throw new Error(`prepare: ${result.outcome} ${JSON.stringify(result.failure)}`);
  return result;
}

/** Pauses the session as the PauseForBudget wait does, then raises its budgets as raise-budget does. */
async function pauseAndRaise(h: Harness, turn: ModelTurnResult, budgets: Budgets): Promise<void> {
  if (!turn.pause) throw new Error(`turn ${turn.step} did not pause`);
  const pause = { ...turn.pause, at: '2024-12-10T11:15:00.000Z', approvalId: 'apv_pause', step: turn.step };
  if ((await h.store.pause(turn.sessionId, h.executionArn, pause, budgetWait(pause, turn.sessionId, h.agent.name))) !== 'paused') throw new Error('the pause did not apply');
  const head = await h.store.getSession(turn.sessionId);
  if (!head) throw new Error('no head');
  if (!(await h.store.setBudgets(head, budgets))) throw new Error('the raise did not apply');
}

const noticeWrites = (h: Harness): string[] => h.store.writes.filter((w) => w.sk.startsWith('NOTICE#')).map((w) => w.sk);

/**
 * Rolls the session back to model turn `toStep` as POST /runs/{sessionId}/rollback does
 * (the plan, the store's rollBack), then prepares the execution it starts (a `rollback`
 * continuation). @returns that execution's Prepare result and ARN.
 */
async function rollBackTo(h: Harness, sessionId: string, toStep: number): Promise<{ prepared: PrepareResult; exec: string }> {
  const head = await h.store.getSession(sessionId);
  if (!head) throw new Error('no head');
  const plan = decideRollback(head, await h.store.listCheckpoints(sessionId), toStep);
  if (isRefusal(plan)) throw new Error(`rollback refused: ${plan.message}`);
  if (!(await h.store.rollBack(head, { ...plan, reason: 'try another way', requestedBy: 'alice' }))) throw new Error('the rollback did not apply');
  const execution = head.executions + 1;
  const exec = executionArn(h.agent, `${sessionId}-x${execution}`);
  const prepared = await prepare(prepareEvent(h, { continuation: { sessionId, parentExecutionArn: head.executionArn, reason: 'rollback', execution } }, exec), h.deps);
  if (prepared.outcome !== 'ready') throw new Error(`prepare after the rollback: ${prepared.outcome}`);
  return { prepared, exec };
}

describe('modelTurn: budgets', () => {
  const echoes = (n: number): ScriptedTurn[] => [...Array.from({ length: n }, (_, i) => call(use(`g${i + 1}`, 'echo', { text: `t${i + 1}` }))), say(ANSWER)];

  /** Two turns of 0.05 USD under a budget of 0.1 USD, their tools run: the third turn finds it used up. */
  async function spent(): Promise<{ h: Harness; turn2: ModelTurnResult; runs: ToolTaskResult[] }> {
    const h = harness(governedAgent(echoes(2), { budgets: { costUsd: 2 * TURN_USD } }));
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    return { h, turn2, runs: await runTools(h, turn2) };
  }

  it('records the usage and cost of each model call, priced by the model pricing of the agent', async () => {
    const pricing: ModelPrice = { inputUsdPerMillionTokens: 3, outputUsdPerMillionTokens: 15, source: 'unit test', asOf: '2026-11-21' };
    const agent = defineAgent({ ...small, name: 'unit-priced', tools: [], model: { provider: 'scripted', script: script('scripted/unit-priced-v1', say(ANSWER)), pricing } });
    const h = harness(agent);
    const turn = await nextTurn(h, await ready(h));

    // 50 input tokens at 3 USD per million, 5 output tokens at 15 USD per million.
    expect(await model(h, turn.sessionId, 1)).toMatchObject({ usage: { inputTokens: 50, outputTokens: 5 }, costUsd: (50 * 3 + 5 * 15) / 1_000_000 });
  });

  it('records a cost of 0 for a model neither the agent nor the price table prices, and its usage still', async () => {
    const h = harness(repairAgent);
    const turn = await nextTurn(h, await ready(h));
    expect(await model(h, turn.sessionId, 1)).toMatchObject({ usage: { inputTokens: expect.any(Number) as unknown }, costUsd: 0 });
  });

  it('pauses before the model call once a budget is used up: no model call, no checkpoint, the step unchanged, the wait counted', async () => {
    const { h, turn2, runs } = await spent();
    const writes = h.store.writes.length;

    const paused = await nextTurn(h, turn2, runs);

    expect(paused).toEqual({
      sessionId: turn2.sessionId,
      step: 2,
      repairs: 0,
      outcome: 'paused',
      calls: [],
      pause: { budget: 'costUsd', used: 2 * TURN_USD, limit: 2 * TURN_USD },
      events: turn2.events + MAP_EVENTS + ITERATION_EVENTS + TURN_EVENTS + LOOP_WAIT,
      ...FIRST_EXECUTION,
      toolRuns: null,
    });
    expect(h.modelCalls).toHaveLength(2);
    expect(h.store.writes).toHaveLength(writes);
    expect(await h.store.getCheckpoint(turn2.sessionId, checkpointKey.model(3))).toBeUndefined();
    expect(await h.store.getSession(turn2.sessionId)).toMatchObject({ status: 'RUNNING', step: 2 });
  });

  it('goes on after a raise: the next model turn checks the budgets again and calls the model', async () => {
    const { h, turn2, runs } = await spent();
    const paused = await nextTurn(h, turn2, runs);
    await pauseAndRaise(h, paused, { costUsd: 1 });

    const resumed = await nextTurn(h, paused, null, { decision: RAISED });

    expect(resumed).toMatchObject({ step: 3, outcome: 'final', events: paused.events + TURN_EVENTS, decision: null });
    expect(h.modelCalls).toHaveLength(3);
    expect(await h.store.getSession(turn2.sessionId)).toMatchObject({ status: 'SUCCEEDED', budgets: { costUsd: 1 }, pausedSeconds: expect.any(Number) as unknown });
  });

  it('pauses again when a raise is not enough', async () => {
    const { h, turn2, runs } = await spent();
    const paused = await nextTurn(h, turn2, runs);
    await pauseAndRaise(h, paused, { costUsd: 2 * TURN_USD, steps: 10 });

    await expect(nextTurn(h, paused, null, { decision: RAISED })).resolves.toMatchObject({ step: 2, outcome: 'paused', pause: { budget: 'costUsd' } });
    expect(h.modelCalls).toHaveLength(2);
  });

  it('checks the budgets of the run (request overrides), not only those of the agent', async () => {
    const h = harness(governedAgent(echoes(1), { budgets: { costUsd: 1 } }));
    const prepared = await readyAs(h, ALICE, { budgets: { steps: 1 } });
    const turn1 = await nextTurn(h, prepared);

    await expect(nextTurn(h, turn1, await runTools(h, turn1))).resolves.toMatchObject({ outcome: 'paused', pause: { budget: 'steps', used: 1, limit: 1 } });
  });

  it('writes a BudgetThresholdReached notice when a budget reaches 80%, and not again on the next turn', async () => {
    const h = harness(governedAgent(echoes(3), { budgets: { costUsd: 0.12 } }));
    const turn1 = await nextTurn(h, await ready(h));
    // 0.05 of 0.12 USD: below 80%.
    expect(noticeWrites(h)).toEqual([]);

    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    // 0.10 of 0.12 USD: 83%.
    expect(noticeWrites(h)).toEqual(['NOTICE#BudgetThresholdReached#costUsd']);
    expect(await h.store.getCheckpoint(turn2.sessionId, 'NOTICE#BudgetThresholdReached#costUsd')).toEqual({
      sessionId: turn2.sessionId,
      sk: checkpointKey.notice('BudgetThresholdReached', 'costUsd'),
      schemaVersion: 2,
      createdAt: expect.any(String) as unknown,
      kind: 'notice',
      notice: 'BudgetThresholdReached',
      agent: 'unit-governed',
      step: 2,
      detail: { budget: 'costUsd', used: 0.1, limit: 0.12 },
    });

    // 0.15 of 0.12 USD: past the limit; the next turn pauses.
    const turn3 = await nextTurn(h, turn2, await runTools(h, turn2));
    expect(turn3).toMatchObject({ step: 3, outcome: 'tool_calls' });
    await expect(nextTurn(h, turn3, await runTools(h, turn3))).resolves.toMatchObject({ outcome: 'paused' });
    expect(noticeWrites(h)).toEqual(['NOTICE#BudgetThresholdReached#costUsd']);
  });

  it('writes the BudgetThresholdReached notice before pausing when a budget goes from under 80% to used up between two turns', async () => {
    // Turn 1 costs 0.05 of 0.08 USD (62.5%); its call's declared 0.03 fits, and uses the budget up.
    const h = harness(governedAgent([call(use('p1', 'priced', { text: 'a' })), say(ANSWER)], { budgets: { costUsd: 0.08 } }));
    const turn1 = await nextTurn(h, await ready(h));
    expect(turn1).toMatchObject({ outcome: 'tool_calls', calls: [{ callId: 'p1' }] });
    const runs = await runTools(h, turn1);
    expect(noticeWrites(h)).toEqual([]);

    const paused = await nextTurn(h, turn1, runs);

    expect(paused).toMatchObject({ step: 1, outcome: 'paused', pause: { budget: 'costUsd', used: 0.08, limit: 0.08 } });
    expect(h.modelCalls).toHaveLength(1);
    expect(noticeWrites(h)).toEqual(['NOTICE#BudgetThresholdReached#costUsd']);
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.notice('BudgetThresholdReached', 'costUsd'))).toMatchObject({
      kind: 'notice',
      notice: 'BudgetThresholdReached',
      step: 1,
      detail: { budget: 'costUsd', used: 0.08, limit: 0.08 },
    });
  });

  it('counts the cost of rolled-back turns: a rollback is no way around the cost budget', async () => {
    // Two turns of 0.05 under 0.1 USD: the run succeeds, having used the budget up.
    const h = harness(governedAgent(echoes(1), { budgets: { costUsd: 2 * TURN_USD } }));
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    expect(turn2).toMatchObject({ step: 2, outcome: 'final' });

    // Back to turn 1: turn 2 (0.05) is abandoned, not forgotten.
    const { prepared, exec } = await rollBackTo(h, turn1.sessionId, 1);
    expect((await h.store.listAbandoned(turn1.sessionId)).map((r) => r.sk)).toEqual([checkpointKey.abandoned(1, checkpointKey.model(2))]);
    const replayed = await nextTurn(h, prepared, null, { executionArn: exec });
    expect(replayed).toMatchObject({ step: 1, outcome: 'tool_calls', branch: 1 });

    const again = await nextTurn(h, replayed, await runTools(h, replayed, undefined, exec), { executionArn: exec });

    expect(again).toMatchObject({ step: 1, outcome: 'paused', pause: { budget: 'costUsd', used: 2 * TURN_USD, limit: 2 * TURN_USD } });
    expect(h.modelCalls).toHaveLength(2);
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.model(2))).toBeUndefined();
  });

  it('records what a budget stands at in USD without float noise (0.1 + 0.05 is 0.15)', async () => {
    const h = harness(governedAgent(echoes(3), { budgets: { costUsd: 0.18 } }));
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    // 0.15 of 0.18 USD: 83%.
    const turn3 = await nextTurn(h, turn2, await runTools(h, turn2));
    expect(await h.store.getCheckpoint(turn3.sessionId, checkpointKey.notice('BudgetThresholdReached', 'costUsd'))).toMatchObject({ step: 3, detail: { used: 0.15, limit: 0.18 } });
  });

  it("pauses before a turn's tool calls run when their declared cost does not fit, and runs them after a raise without asking the model again", async () => {
    const agent = governedAgent(
      [call(use('p1', 'priced', { text: 'a' })), call(use('p2', 'priced', { text: 'b' }), use('p3', 'priced', { text: 'c' })), say(ANSWER)],
      { budgets: { costUsd: 0.15 } },
    );
    const h = harness(agent);
    // Turn 1: 0.05 for the model and 0.03 declared for its call fit under 0.15.
    const turn1 = await nextTurn(h, await ready(h));
    expect(turn1).toMatchObject({ outcome: 'tool_calls', calls: [{ callId: 'p1' }] });
    const runs1 = await runTools(h, turn1);
    expect(await toolCheckpoint(h, turn1.sessionId, 1, 'p1')).toMatchObject({ status: 'succeeded', costUsd: 0.03 });

    // Turn 2: 0.08 so far + 0.05 for the model fit, but 2 x 0.03 more do not.
    const paused = await nextTurn(h, turn1, runs1);

    expect(paused).toMatchObject({ step: 1, outcome: 'paused', calls: [], events: turn1.events + MAP_EVENTS + ITERATION_EVENTS + TURN_EVENTS + LOOP_WAIT });
    expect(paused.pause?.budget).toBe('costUsd');
    expect(paused.pause?.used).toBe(0.19);
    expect(paused.pause?.limit).toBe(0.15);
    expect(await model(h, turn1.sessionId, 2)).toMatchObject({ outcome: 'tool_calls', calls: [{ callId: 'p2' }, { callId: 'p3' }], costUsd: TURN_USD });
    expect(await h.store.getSession(turn1.sessionId)).toMatchObject({ step: 1 });

    await pauseAndRaise(h, paused, { costUsd: 1 });
    const resumed = await nextTurn(h, paused, null, { decision: RAISED });

    expect(resumed).toMatchObject({ step: 2, outcome: 'tool_calls', calls: [{ callId: 'p2' }, { callId: 'p3' }] });
    expect(h.modelCalls).toHaveLength(2);
    await expect(runTools(h, resumed)).resolves.toMatchObject([{ status: 'succeeded' }, { status: 'succeeded' }]);
  });
});

describe('modelTurn: policies', () => {
  it('offers the model only the tools the policy lets the principal of the run discover, and records them', async () => {
    const agent = governedAgent([say(ANSWER)]);
    const offeredTo = async (principal: Principal): Promise<{ sent: string[]; recorded: string[] | undefined; asked: unknown[] }> => {
      const h = harness(agent);
      h.policies.rule = (r) => (r.tool.name === 'secret' && !r.principal.roles.includes('admin') ? DENY : ALLOW);
      const turn = await nextTurn(h, await readyAs(h, principal));
      return {
        sent: (h.modelCalls[0]?.tools ?? []).map((t) => t.name),
        recorded: (await model(h, turn.sessionId, 1)).offeredTools,
        asked: h.policies.requests.map((r) => [r.action, r.principal, r.tool.name]),
      };
    };

    const analyst = await offeredTo(ALICE);
    expect(analyst.sent).toEqual(['echo', 'limited', 'priced']);
    expect(analyst.recorded).toEqual(['echo', 'limited', 'priced']);
    expect(analyst.asked).toEqual(agent.tools.map((t) => ['discoverTool', ALICE, t.name]));

    expect((await offeredTo(ADMIN)).sent).toEqual(['echo', 'limited', 'priced', 'secret']);
  });

  it('decides for the anonymous default principal when the run has none', async () => {
    const h = harness(governedAgent([say(ANSWER)]));
    await nextTurn(h, await ready(h));
    expect(new Set(h.policies.requests.map((r) => r.principal))).toEqual(new Set([DEFAULT_PRINCIPAL]));
  });

  it('answers a denied call and a call of an undeclared tool identically, but for the echoed name, and records the real reasons', async () => {
    const agent = governedAgent([
      call(use('g1', 'secret', {}), use('g2', 'vault', {}), use('g3', 'echo', { text: 'x' })),
      { expect: { toolResultIncludes: ['UNKNOWN_TOOL'] }, response: { content: [{ type: 'text', text: ANSWER }], stopReason: 'end_turn', usage } },
    ]);
    const h = harness(agent);
    h.policies.version = 'ops-7';
    h.policies.rule = (r) => (r.action === 'callTool' && r.tool.name === 'secret' ? { allowed: false, policies: ['forbid-restricted'], errors: [] } : ALLOW);

    const turn1 = await nextTurn(h, await readyAs(h, ALICE));

    expect(turn1.calls.map((c) => c.callId)).toEqual(['g3']);
    const recorded = await model(h, turn1.sessionId, 1);
    expect(recorded.inlineResults).toEqual([unknownToolResult('g1', 'secret'), unknownToolResult('g2', 'vault')]);
    const [denied, undeclared] = recorded.inlineResults;
    expect(denied?.content.replace('secret', 'vault')).toBe(undeclared?.content);
    expect(denied?.isError).toBe(undeclared?.isError);
    expect(recorded.denials).toEqual([
      { callId: 'g1', tool: 'secret', reason: 'denied', policies: ['forbid-restricted'], policyVersion: 'ops-7' },
      { callId: 'g2', tool: 'vault', reason: 'not_declared' },
    ]);
    // The call was authorised with its arguments, for the run's principal, at its step.
    expect(h.policies.requests.filter((r) => r.action === 'callTool')).toEqual([
      expect.objectContaining({ principal: ALICE, tool: secretTool, arguments: {}, step: 1, version: 'ops-7' }),
      expect.objectContaining({ principal: ALICE, tool: echoTool, arguments: { text: 'x' }, step: 1, version: 'ops-7' }),
    ]);

    // The model gets both refusals in call order, with the result of the call that ran.
    await nextTurn(h, turn1, await runTools(h, turn1));
    expect(h.modelCalls[1]?.messages.at(-1)).toEqual({
      role: 'user',
      content: [unknownToolResult('g1', 'secret'), unknownToolResult('g2', 'vault'), { type: 'tool_result', toolUseId: 'g3', content: '{"text":"x"}', isError: false }],
    });
  });

  it('answers a call of a tool the model was not offered as unknown, without authorising the call', async () => {
    const h = harness(governedAgent([call(use('g1', 'secret', {})), say(ANSWER)]));
    h.policies.rule = (r) => (r.tool.name === 'secret' ? DENY : ALLOW);

    const turn1 = await nextTurn(h, await readyAs(h, ALICE));

    expect(turn1.calls).toEqual([]);
    const recorded = await model(h, turn1.sessionId, 1);
    expect(recorded.inlineResults).toEqual([unknownToolResult('g1', 'secret')]);
    expect(recorded.denials).toEqual([{ callId: 'g1', tool: 'secret', reason: 'denied', policies: [], policyVersion: 'test' }]);
    expect(h.policies.requests.filter((r) => r.action === 'callTool')).toEqual([]);
  });
});

describe('modelTurn: tool budgets', () => {
  it("answers a call past its tool's calls per session with TOOL_BUDGET_EXCEEDED without running it, and writes a ToolBudgetExceeded notice", async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 'a' })), call(use('l2', 'limited', { text: 'b' }), use('e2', 'echo', { text: 'c' })), say(ANSWER)]));
    const turn1 = await nextTurn(h, await ready(h));
    expect(turn1.calls.map((c) => c.callId)).toEqual(['l1']);

    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));

    expect(turn2.calls.map((c) => c.callId)).toEqual(['e2']);
    const recorded = await model(h, turn2.sessionId, 2);
    expect(recorded.inlineResults).toEqual([
      errorResult('l2', 'TOOL_BUDGET_EXCEEDED', 'limited may be called at most 1 time(s) per session; this call was not run. Continue without it.'),
    ]);
    expect(recorded.denials).toEqual([{ callId: 'l2', tool: 'limited', reason: 'budget_exceeded' }]);
    expect(noticeWrites(h)).toEqual(['NOTICE#ToolBudgetExceeded#2#l2']);
    expect(await h.store.getCheckpoint(turn2.sessionId, checkpointKey.notice('ToolBudgetExceeded', '2#l2'))).toMatchObject({
      kind: 'notice',
      notice: 'ToolBudgetExceeded',
      agent: 'unit-governed',
      step: 2,
      detail: { tool: 'limited', callId: 'l2', callsPerSession: 1 },
    });
  });

  it('reads the notices once for a turn that writes several kinds, and writes them in order: budget thresholds, then tool budgets', async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 'a' })), call(use('l2', 'limited', { text: 'b' }), use('e2', 'echo', { text: 'c' })), say(ANSWER)], { budgets: { costUsd: 0.12 } }));
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    const reads = vi.spyOn(h.store, 'listNotices');

    await nextTurn(h, turn1, runs);

    expect(reads).toHaveBeenCalledTimes(1);
    expect(noticeWrites(h)).toEqual(['NOTICE#BudgetThresholdReached#costUsd', 'NOTICE#ToolBudgetExceeded#2#l2']);
  });

  it('counts only the calls that ran against a tool\'s calls per session (not one refused for invalid arguments)', async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 5 })), call(use('l2', 'limited', { text: 'b' })), say(ANSWER)]));
    const turn1 = await nextTurn(h, await ready(h));
    await expect(runTools(h, turn1)).resolves.toMatchObject([{ status: 'invalid_input' }]);

    const turn2 = await nextTurn(h, turn1, [{ callId: 'l1', status: 'invalid_input', events: ITERATION_EVENTS }]);

    expect(turn2.calls.map((c) => c.callId)).toEqual(['l2']);
    expect(noticeWrites(h)).toEqual([]);
  });

  it('answers every call of a turn past the budget with tool_calls and no call to run', async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 'a' })), call(use('l2', 'limited', { text: 'b' })), say(ANSWER)]));
    const turn1 = await nextTurn(h, await ready(h));
    const turn2 = await nextTurn(h, turn1, await runTools(h, turn1));
    expect(turn2).toMatchObject({ step: 2, outcome: 'tool_calls', calls: [] });
    await expect(nextTurn(h, turn2, [])).resolves.toMatchObject({ step: 3, outcome: 'final' });
  });

  it("counts the calls of rolled-back turns against a tool's calls per session", async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 'a' })), say(ANSWER)]));
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    expect(runs).toMatchObject([{ status: 'succeeded' }]);
    await expect(nextTurn(h, turn1, runs)).resolves.toMatchObject({ outcome: 'final' });

    // Back to before turn 1: its call of limited is abandoned, and still counts.
    const { prepared, exec } = await rollBackTo(h, turn1.sessionId, 0);
    const retried = await nextTurn(h, prepared, null, { executionArn: exec });

    expect(h.modelCalls).toHaveLength(3);
    expect(retried).toMatchObject({ step: 1, outcome: 'tool_calls', calls: [], branch: 1 });
    expect((await model(h, turn1.sessionId, 1)).denials).toEqual([{ callId: 'l1', tool: 'limited', reason: 'budget_exceeded' }]);
    expect(await h.store.getCheckpoint(turn1.sessionId, checkpointKey.notice('ToolBudgetExceeded', '1#l1'))).toMatchObject({ detail: { tool: 'limited', callId: 'l1', callsPerSession: 1 } });
  });

  it('writes the ToolBudgetExceeded notice on the replay of a turn whose first attempt died after its checkpoint, without calling the model again', async () => {
    const h = harness(governedAgent([call(use('l1', 'limited', { text: 'a' })), call(use('l2', 'limited', { text: 'b' }), use('e2', 'echo', { text: 'c' })), say(ANSWER)]));
    const turn1 = await nextTurn(h, await ready(h));
    const runs = await runTools(h, turn1);
    const notice = checkpointKey.notice('ToolBudgetExceeded', '2#l2');
    h.store.loseNextPut(notice);
    await expect(nextTurn(h, turn1, runs)).rejects.toThrow(/lost write/);
    expect(await model(h, turn1.sessionId, 2)).toMatchObject({ denials: [{ callId: 'l2', reason: 'budget_exceeded' }] });
    expect(await h.store.getCheckpoint(turn1.sessionId, notice)).toBeUndefined();

    const retried = await nextTurn(h, turn1, runs, { retryCount: 1 });

    expect(retried).toMatchObject({ step: 2, outcome: 'tool_calls', calls: [{ callId: 'e2' }] });
    expect(h.modelCalls).toHaveLength(2);
    expect(await h.store.getCheckpoint(turn1.sessionId, notice)).toMatchObject({ kind: 'notice', notice: 'ToolBudgetExceeded', step: 2, detail: { tool: 'limited', callId: 'l2', callsPerSession: 1 } });
    expect(noticeWrites(h)).toEqual([notice]);
  });
});

describe('modelTurn: the output pipeline', () => {
  const unsure = '{"answer":"maybe","confidence":0.4}';
  const reviewed = (below: 'review' | 'fail'): AgentDefinition =>
    governedAgent([say(unsure)], { outputPipeline: { confidence: { reportedField: 'confidence' }, gate: { threshold: 0.7, below } } });

  it('sends an answer below the confidence gate to review: no SUCCEEDED, the wait counted, the stages, confidence and reasons recorded', async () => {
    const h = harness(reviewed('review'));
    const prepared = await ready(h);

    const review = await nextTurn(h, prepared);

    expect(review).toEqual({ sessionId: prepared.sessionId, step: 0, repairs: 0, outcome: 'review', calls: [], events: START_EVENTS + TURN_EVENTS + LOOP_WAIT, ...FIRST_EXECUTION, toolRuns: null });
    const recorded = await model(h, prepared.sessionId, 1);
    expect(recorded).toMatchObject({ outcome: 'review', output: { answer: 'maybe', confidence: 0.4 }, confidence: 0.4 });
    expect(recorded.reviewReasons?.[0]).toBe('confidence 0.4 is below the threshold 0.7');
    expect(recorded.stages?.map((s) => [s.stage, s.outcome])).toEqual([
      ['parse', 'passed'],
      ['schema', 'passed'],
      ['rules', 'skipped'],
      ['confidence', 'passed'],
      ['gate', 'failed'],
    ]);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING', step: 0 });
  });

  it('accepts the answer once the reviewer approves it: final on the replay, without calling the model again', async () => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));

    const approved = await nextTurn(h, review, null, { decision: { decision: 'approved', approvalId: 'apv_r', decidedBy: 'alice' } });

    expect(approved).toEqual({ sessionId: review.sessionId, step: 1, repairs: 0, outcome: 'final', calls: [], events: review.events + TURN_EVENTS, ...FIRST_EXECUTION, toolRuns: null });
    expect(h.modelCalls).toHaveLength(1);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'SUCCEEDED', step: 1, output: { answer: 'maybe', confidence: 0.4 } });
  });

  it.each([
    ['rejected', { decision: 'rejected', reason: 'not sure enough', decidedBy: 'alice' }, 'the final answer went to review and the reviewer rejected it (not sure enough)'],
    ['timed out', { decision: 'timed_out', reason: 'timed out' }, 'the final answer went to review and the review timed out'],
  ] as const)('fails with OutputRejected when the review was %s', async (_what, decision, cause) => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));

    const failed = await nextTurn(h, review, null, { decision });

    expect(failed).toMatchObject({ step: 0, outcome: 'failed', calls: [], failure: { error: 'OutputRejected', cause } });
    expect(h.modelCalls).toHaveLength(1);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'RUNNING', step: 0 });
  });

  it('does not take a budget raise for the answer to a review: the answer waits for review again', async () => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));

    const again = await nextTurn(h, review, null, { decision: RAISED });

    expect(again).toMatchObject({ step: 0, outcome: 'review', events: review.events + TURN_EVENTS + LOOP_WAIT });
    expect(h.modelCalls).toHaveLength(1);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'RUNNING' });
  });

  it('does not look for a recorded answer to a review it has not waited for yet (the turn that sends the answer to review)', async () => {
    const h = harness(reviewed('review'));
    const prepared = await ready(h);
    h.reviews.answer(prepared.sessionId, 1, { decision: 'approved', approvalId: 'apv_stale', decidedBy: 'mallory' });

    await expect(nextTurn(h, prepared)).resolves.toMatchObject({ outcome: 'review' });

    expect(h.reviews.reads).toEqual([]);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ status: 'RUNNING' });
  });

  it('takes the answer in the payload over the recorded one, without reading it', async () => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));
    h.reviews.answer(review.sessionId, 1, { decision: 'rejected', approvalId: 'apv_r', decidedBy: 'bob' });

    await expect(nextTurn(h, review, null, { decision: { decision: 'approved', approvalId: 'apv_r', decidedBy: 'alice' } })).resolves.toMatchObject({ outcome: 'final' });

    expect(h.reviews.reads).toEqual([]);
  });

  it('reads the recorded answer when a replayed review comes without one (after a continue-as-new): approved, the answer is final and the session SUCCEEDED', async () => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));
    h.reviews.answer(review.sessionId, 1, { decision: 'approved', approvalId: 'apv_r', decidedBy: 'alice' });
    // The next execution starts with no decision in its payload.
    const exec2 = executionArn(h.agent, `${review.sessionId}-x2`);
    const prepared = await prepare(
      prepareEvent(h, { continuation: { sessionId: review.sessionId, parentExecutionArn: h.executionArn, reason: 'continue-as-new', execution: 2 }, AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: h.executionArn }, exec2),
      h.deps,
    );
    expect(prepared).toMatchObject({ outcome: 'ready', step: 0, decision: null });

    const approved = await nextTurn(h, prepared, null, { executionArn: exec2 });

    expect(approved).toMatchObject({ step: 1, outcome: 'final', execution: 2 });
    expect(h.reviews.reads).toEqual([{ sessionId: review.sessionId, step: 1 }]);
    expect(h.modelCalls).toHaveLength(1);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'SUCCEEDED', step: 1, output: { answer: 'maybe', confidence: 0.4 } });
  });

  it.each([
    ['rejected', { decision: 'rejected', reason: 'not sure enough', decidedBy: 'alice', approvalId: 'apv_r' }, 'the final answer went to review and the reviewer rejected it (not sure enough)'],
    ['timed out', { decision: 'timed_out', approvalId: 'apv_r' }, 'the final answer went to review and the review timed out'],
  ] as const)('fails with OutputRejected when a replayed review without an answer in the payload was recorded %s', async (_what, decision, cause) => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));
    h.reviews.answer(review.sessionId, 1, decision);

    const failed = await nextTurn(h, review);

    expect(failed).toMatchObject({ step: 0, outcome: 'failed', failure: { error: 'OutputRejected', cause } });
    expect(h.reviews.reads).toEqual([{ sessionId: review.sessionId, step: 1 }]);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'RUNNING', step: 0 });
  });

  it('waits for review again when the replayed review is still pending (no recorded answer), or only a budget raise came', async () => {
    const h = harness(reviewed('review'));
    const review = await nextTurn(h, await ready(h));

    await expect(nextTurn(h, review)).resolves.toMatchObject({ step: 0, outcome: 'review', events: review.events + TURN_EVENTS + LOOP_WAIT });
    await expect(nextTurn(h, review, null, { decision: RAISED })).resolves.toMatchObject({ step: 0, outcome: 'review' });

    expect(h.reviews.reads).toEqual([
      { sessionId: review.sessionId, step: 1 },
      { sessionId: review.sessionId, step: 1 },
    ]);
    expect(h.modelCalls).toHaveLength(1);
    expect(await h.store.getSession(review.sessionId)).toMatchObject({ status: 'RUNNING', step: 0 });
  });

  it("fails with LowConfidence when the gate fails the run, recording the failure in the checkpoint, and replays it", async () => {
    const h = harness(reviewed('fail'));
    const prepared = await ready(h);

    const failed = await nextTurn(h, prepared);

    expect(failed).toMatchObject({ step: 1, outcome: 'failed', failure: { error: 'LowConfidence', cause: expect.stringContaining('below the confidence threshold') as unknown } });
    const recorded = await model(h, prepared.sessionId, 1);
    expect(recorded).toMatchObject({ outcome: 'failed', failure: failed.failure, validationErrors: ['confidence 0.4 is below the threshold 0.7', 'confidence: 0.4 (reported by the model)'] });
    expect(recorded.stages?.at(-1)).toMatchObject({ stage: 'gate', outcome: 'failed', confidence: 0.4, detail: 'the run fails' });
    await expect(nextTurn(h, prepared)).resolves.toEqual(failed);
    expect(h.modelCalls).toHaveLength(1);
  });
});

describe('runTool: governance', () => {
  it('does not run a call whose permission was revoked during its approval wait: denied, answered as a tool that does not exist', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'block', { address: '183.62.140.253' }));
    h.policies.version = 'ops-8';
    h.policies.rule = (r) => (r.action === 'callTool' && r.tool.name === 'block' ? { allowed: false, policies: ['revoke-block'], errors: [] } : ALLOW);
    const approval: ApprovalOutcome = { decision: 'approved', approvalId: 'apv_1', decidedBy: 'alice' };

    const result = await callTool(h, turn, onlyCall(turn), approval);

    expect(result).toEqual({ sessionId: turn.sessionId, step: 1, callId: 'c1', status: 'denied', events: ITERATION_EVENTS + APPROVAL_EVENTS });
    expect(handled).toEqual([]);
    const recorded = await toolCheckpoint(h, turn.sessionId, 1, 'c1');
    expect(recorded).toMatchObject({ status: 'denied', isError: true, result: unknownToolResult('c1', 'block').content, approval, costUsd: 0 });
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'c1'))).toBeUndefined();
    expect(h.policies.requests.at(-1)).toEqual({ principal: DEFAULT_PRINCIPAL, action: 'callTool', tool: expect.objectContaining({ name: 'block' }) as unknown, arguments: { address: '183.62.140.253' }, step: 1, version: 'ops-8' });
  });

  it('answers outcome_unknown, not denied, when the permission went after an earlier attempt recorded its intent (it may have acted)', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    h.faults.fail('RunTool.afterSideEffect');
    await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(ScriptedFault);
    expect(handled).toHaveLength(1);
    h.policies.rule = (r) => (r.action === 'callTool' ? { allowed: false, policies: ['revoke-lookup'], errors: [] } : ALLOW);

    const retried = await callTool(h, turn, onlyCall(turn), NOT_REQUIRED, { retryCount: 1 });

    expect(retried.status).toBe('outcome_unknown');
    expect(handled).toHaveLength(1);
    expect(JSON.parse(resultOf(await toolCheckpoint(h, turn.sessionId, 1, 'c1')))).toMatchObject({ error: 'OUTCOME_UNKNOWN' });
  });

  it("authorises the call for the run's principal at call time, and runs it when allowed", async () => {
    const { agent, handled } = opsAgent(use('c1', 'read', { id: 7 }));
    const h = harness(agent);
    const turn = await nextTurn(h, await readyAs(h, ALICE));
    const before = h.policies.requests.length;

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled).toHaveLength(1);
    expect(h.policies.requests.slice(before)).toEqual([expect.objectContaining({ principal: ALICE, action: 'callTool', arguments: { id: 7 }, step: 1 })]);
  });

  it('fails the call as denied when the arguments parsing fills in (a schema default) are forbidden, though the arguments the model gave were allowed', async () => {
    const purged: unknown[] = [];
    const purge = defineTool({
      name: 'purge',
      version: '1.0.0',
      description: 'Purges a host: its cache, or everything.',
      input: z.object({ host: z.string(), scope: z.enum(['cache', 'all']).default('all') }),
      output: z.object({ purged: z.string() }),
      handler: async (input) => {
        purged.push(input);
        return { purged: input.host };
      },
    });
    const agent = defineAgent({ ...small, name: 'unit-purge', tools: [purge], model: { provider: 'scripted', script: script('scripted/unit-purge-v1', call(use('u1', 'purge', { host: 'web-1' }))) } });
    const h = harness(agent);
    // forbid (…) when { context.arguments has scope && context.arguments.scope == "all" };
    h.policies.rule = (r) => (r.action === 'callTool' && (r.arguments as { scope?: string }).scope === 'all' ? { allowed: false, policies: ['forbid-purge-all'], errors: [] } : ALLOW);
    const turn = await nextTurn(h, await ready(h));
    expect(turn.calls.map((c) => c.callId)).toEqual(['u1']);

    const result = await callTool(h, turn, onlyCall(turn));

    expect(result).toMatchObject({ callId: 'u1', status: 'denied' });
    expect(purged).toEqual([]);
    expect(await toolCheckpoint(h, turn.sessionId, 1, 'u1')).toMatchObject({ status: 'denied', isError: true, result: unknownToolResult('u1', 'purge').content, costUsd: 0 });
    expect(await h.store.getCheckpoint(turn.sessionId, checkpointKey.intent(1, 'u1'))).toBeUndefined();
    // At the model turn and at call time the arguments as given, then as the tool would get them.
    expect(h.policies.requests.filter((r) => r.action === 'callTool').map((r) => r.arguments)).toEqual([{ host: 'web-1' }, { host: 'web-1' }, { host: 'web-1', scope: 'all' }]);
  });

  it('runs the call when the arguments parsing fills in are allowed too, having authorised both', async () => {
    const { h, turn, handled } = await opsTurn(use('c1', 'lookup', { id: 7 }));
    const before = h.policies.requests.length;

    await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

    expect(handled.map((c) => c.input)).toEqual([{ id: 7, verbose: false }]);
    expect(h.policies.requests.slice(before).map((r) => r.arguments)).toEqual([{ id: 7 }, { id: 7, verbose: false }]);
  });

  it("records each call's declared cost when it ran, and 0 when it did not", async () => {
    const h = harness(governedAgent([call(use('p1', 'priced', { text: 'a' }), use('p2', 'priced', { text: 5 })), say(ANSWER)]));
    const turn = await nextTurn(h, await ready(h));

    await expect(runTools(h, turn)).resolves.toMatchObject([{ status: 'succeeded' }, { status: 'invalid_input' }]);

    expect(await toolCheckpoint(h, turn.sessionId, 1, 'p1')).toMatchObject({ costUsd: 0.03 });
    expect(await toolCheckpoint(h, turn.sessionId, 1, 'p2')).toMatchObject({ costUsd: 0 });
  });

  describe('an HTTP tool', () => {
    const HostSchema = z.object({ id: z.number(), name: z.string() });
    const lookupApi = defineTool({
      name: 'lookup_api',
      version: '1.0.0',
      description: 'Looks a host up over HTTP.',
      input: z.object({ id: z.number().int(), verbose: z.boolean().default(false) }),
      output: HostSchema,
      timeoutSeconds: 12,
      http: { url: 'https://hosts.internal.example/v1/lookup', method: 'POST', headers: { 'x-api-version': '1' } },
    });
    const quickApi = defineTool({
      name: 'quick_api',
      version: '1.0.0',
      description: 'Looks a host up over HTTP, quickly.',
      input: z.object({ id: z.number().int() }),
      output: HostSchema,
      http: { url: 'https://hosts.internal.example/v1/quick', method: 'GET', timeoutMs: 2500 },
    });

    async function httpTurn(...uses: ToolUseBlock[]): Promise<{ h: Harness; turn: ModelTurnResult }> {
      const agent = defineAgent({ ...small, name: 'unit-http', tools: [lookupApi, quickApi], model: { provider: 'scripted', script: script('scripted/unit-http-v1', call(...uses)) } });
      const h = harness(agent);
      return { h, turn: await nextTurn(h, await ready(h)) };
    }

    it("calls the endpoint through deps.callHttp with the validated input, the call's idempotency key and the tool's timeout, and records the answer as its schema reads it", async () => {
      const { h, turn } = await httpTurn(use('h1', 'lookup_api', { id: 7 }));
      h.http.answer = async () => ({ id: 7, name: 'host-7', internal: 'not for the model' });

      await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'succeeded' });

      expect(h.http.calls).toEqual([
        { http: lookupApi.http, input: { id: 7, verbose: false }, context: { idempotencyKey: toolCallIdempotencyKey(turn.sessionId, 1, 'h1'), timeoutMs: 12_000, toolName: 'lookup_api' } },
      ]);
      expect(resultOf(await toolCheckpoint(h, turn.sessionId, 1, 'h1'))).toBe('{"id":7,"name":"host-7"}');
    });

    it("uses the endpoint's own timeout when it declares one", async () => {
      const { h, turn } = await httpTurn(use('h1', 'quick_api', { id: 7 }));
      h.http.answer = async () => ({ id: 7, name: 'host-7' });
      await callTool(h, turn, onlyCall(turn));
      expect(h.http.calls.map((c) => c.context.timeoutMs)).toEqual([2500]);
    });

    it('records an answer the endpoint refuses (a ToolError) as a tool_error result', async () => {
      const { h, turn } = await httpTurn(use('h1', 'lookup_api', { id: 404 }));
      h.http.answer = async () => {
        throw new ToolError('HTTP 404: no host 404');
      };
      await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'tool_error' });
      expect(JSON.parse(resultOf(await toolCheckpoint(h, turn.sessionId, 1, 'h1')))).toEqual({ error: 'TOOL_ERROR', message: 'HTTP 404: no host 404' });
    });

    it('fails with ToolOutputInvalidError when the answer breaks the output schema', async () => {
      const { h, turn } = await httpTurn(use('h1', 'lookup_api', { id: 7 }));
      h.http.answer = async () => ({ id: 'seven' });
      await expect(callTool(h, turn, onlyCall(turn))).rejects.toBeInstanceOf(ToolOutputInvalidError);
    });

    it('does not call the endpoint with invalid arguments', async () => {
      const { h, turn } = await httpTurn(use('h1', 'lookup_api', { id: 'seven' }));
      await expect(callTool(h, turn, onlyCall(turn))).resolves.toMatchObject({ status: 'invalid_input' });
      expect(h.http.calls).toEqual([]);
    });
  });
});

describe('prepare: principal, budgets and depth', () => {
  it("records the API request's principal, its budgets over the agent's, and its sub-agent depth", async () => {
    const h = harness(governedAgent([say(ANSWER)], { budgets: { costUsd: 2, steps: 8 } }));
    const prepared = await readyAs(h, ALICE, { budgets: { steps: 4, outputTokens: 900 }, depth: 1 });
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ principal: ALICE, budgets: { costUsd: 2, steps: 4, outputTokens: 900 }, depth: 1 });
  });

  it("gives an API run without a principal none (the default principal decides), the agent's budgets and depth 0", async () => {
    const h = harness(governedAgent([say(ANSWER)], { budgets: { costUsd: 2 } }));
    const prepared = await ready(h);
    const head = await h.store.getSession(prepared.sessionId);
    expect(head).toMatchObject({ budgets: { costUsd: 2 }, depth: 0 });
    expect(head).not.toHaveProperty('principal');
  });

  it("derives an EventBridge run's principal from its trigger, and gives it the agent's budgets", async () => {
    const h = harness(sshInvestigator);
    const prepared = await prepare(prepareEvent(h, EVENT), h.deps);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({
      principal: { user: 'guardduty:123456789012', tenant: '123456789012', roles: ['security-responder'] },
      budgets: sshInvestigator.budgets,
      depth: 0,
    });
  });

  it("applies the matched trigger's fixed principal and its budgets over the agent's", async () => {
    const agent = defineAgent({
      ...sshInvestigator,
      name: 'unit-ssh-triggers',
      triggers: [
        { type: 'eventbridge', eventPattern: { source: ['aws.securityhub'] }, budgets: { steps: 2 } },
        { type: 'eventbridge', eventPattern: { source: ['aws.guardduty'] }, principal: { user: 'responder', tenant: 'acme', roles: [] }, budgets: { steps: 3 } },
      ],
    });
    const h = harness(agent);
    const prepared = await prepare(prepareEvent(h, EVENT), h.deps);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ principal: { user: 'responder', tenant: 'acme', roles: [] }, budgets: { ...sshInvestigator.budgets, steps: 3 } });
  });

  it('acts for eventbridge:<source> in the account of the event when no trigger names a principal', async () => {
    const h = harness(defineAgent({ ...sshInvestigator, name: 'unit-ssh-untriggered', triggers: [] }));
    const prepared = await prepare(prepareEvent(h, EVENT), h.deps);
    expect(await h.store.getSession(prepared.sessionId)).toMatchObject({ principal: { user: 'eventbridge:aws.guardduty', tenant: '123456789012', roles: [] } });
  });

  it('fails with SubAgentDepthExceeded when the run is deeper than the subAgentDepth budget allows, and creates no session', async () => {
    const h = harness(governedAgent([say(ANSWER)], { budgets: { subAgentDepth: 1 } }));
    const trigger = { ...apiTrigger(h.agent, { question: 'q' }), principal: ALICE, depth: 2 };

    const result = await prepare(prepareEvent(h, trigger), h.deps);

    expect(result).toEqual({
      sessionId: trigger.sessionId,
      step: 0,
      repairs: 0,
      outcome: 'failed',
      failure: { error: 'SubAgentDepthExceeded', cause: 'the run is 2 sub-agent(s) deep; the agent allows at most 1' },
      events: START_EVENTS,
      ...FIRST_EXECUTION,
      toolRuns: null,
    });
    expect(h.store.writes).toEqual([]);
  });

  it('takes a run exactly as deep as the subAgentDepth budget allows, and a request cannot lift the limit by leaving it out', async () => {
    const h = harness(governedAgent([say(ANSWER)], { budgets: { subAgentDepth: 1 } }));
    await expect(readyAs(h, ALICE, { depth: 1, budgets: { steps: 3 } })).resolves.toMatchObject({ outcome: 'ready' });
    expect(await h.store.getSession(sessionIdFor(h.agent.name, 'alert-42'))).toMatchObject({ budgets: { subAgentDepth: 1, steps: 3 } });
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
    const runs = await runTools(h, turn, approvalFor);
    turn = await nextTurn(h, turn, runs);
  }
  return turn;
}

/**
 * The agent's own Cedar policies (no operator override), evaluated by Cedar as the
 * Lambda does, in the `production` environment; every decision recorded.
 */
function cedarPolicies(agent: AgentDefinition, decisions: Array<{ action: string; tool: string; allowed: boolean }> = []): () => Promise<PolicySnapshot> {
  const engine = new PolicyEngine();
  const schema = policySchema(agent.tools);
  const { text, version } = effectivePolicies(agent.policies, undefined);
  return async () => ({
    version,
    decide: (request) => {
      const decision = engine.authorize(text, authorizationRequest({ ...request, agent: agent.name, environment: 'production', schema }));
      decisions.push({ action: request.action, tool: request.tool.name, allowed: decision.allowed });
      return decision;
    },
  });
}

describe('the ssh-investigator example, driven step by step', () => {
  it("completes the approved conversation under the agent's own Cedar policies, for the account's security responder", async () => {
    const blocks: BlockRecord[] = [];
    const blockAddress = createBlockAddressTool({ putIfAbsent: async (record) => (blocks.push(record), record) }, () => new Date('2024-12-10T11:20:00.000Z'));
    const agent = defineAgent({ ...sshInvestigator, name: 'unit-ssh-cedar', tools: [searchLogLines, countFailedAttempts, showLogLines, blockAddress] });
    const decisions: Array<{ action: string; tool: string; allowed: boolean }> = [];
    const h = harness(agent, { policies: cedarPolicies(agent, decisions) });

    const last = await drive(h, EVENT, () => ({ decision: 'approved', approvalId: 'apv_c', decidedBy: 'alice' }));

    expect(last).toMatchObject({ step: 4, outcome: 'final' });
    expect(blocks).toHaveLength(1);
    // Every tool was offered and every call allowed: at the model turn, and again when it ran.
    expect(decisions.filter((d) => !d.allowed)).toEqual([]);
    expect(new Set(decisions.filter((d) => d.action === 'discoverTool').map((d) => d.tool))).toEqual(new Set(agent.tools.map((t) => t.name)));
    expect(decisions.filter((d) => d.action === 'callTool' && d.tool === 'block_address')).toHaveLength(2);
    for (const step of [1, 2, 3, 4]) expect((await model(h, last.sessionId, step)).offeredTools).toEqual(agent.tools.map((t) => t.name));
  });

  it("does not offer block_address to a principal who is not a security responder (the agent's Cedar policies)", async () => {
    // One turn is enough to see what the model is offered.
    const agent = defineAgent({ ...sshInvestigator, name: 'unit-ssh-analyst', model: { provider: 'scripted', script: script('scripted/unit-ssh-analyst', call(use('s1', 'count_failed_attempts', {}))) } });
    const h = harness(agent, { policies: cedarPolicies(agent) });
    const prepared = await prepare(prepareEvent(h, { ...apiTrigger(agent, SshBruteForceFindingSchema.parse(EVENT.detail)), principal: ALICE }), h.deps);

    await nextTurn(h, prepared);

    expect(h.modelCalls[0]?.tools.map((t) => t.name)).toEqual(['search_log_lines', 'count_failed_attempts', 'show_log_lines']);
  });

  it('completes the declined-block conversation on the real log without running block_address', async () => {
    const h = harness(declinedAgent);
    const last = await drive(h, EVENT, () => ({ decision: 'rejected', reason: 'not approved by the reviewer', approvalId: 'apv_x', decidedBy: 'bob' }));

    expect(last).toMatchObject({ step: 4, outcome: 'final', repairs: 0, execution: 1 });
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
