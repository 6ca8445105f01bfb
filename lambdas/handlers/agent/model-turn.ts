/**
 * A model turn: builds the conversation from the checkpoints (bodies stored in
 * S3 loaded by reference, under the agent's context limit), calls the model once
 * per idempotency key (Powertools idempotency: a retried or resumed turn gets the
 * recorded answer, not a second call), decides the outcome and checkpoints it.
 * A turn whose checkpoint exists is replayed from it without calling the model.
 *
 * Before anything else it counts the execution's history events: when one more
 * worst-case turn would reach the agent's `historyEventLimit`, it returns
 * `continue` with the StartExecution of the session's next execution instead.
 */
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint } from '../../core/contracts/checkpoint';
import type { Failure, ModelTurnInput, ModelTurnResult } from '../../core/contracts/loop';
import type { ModelRequest, ModelResponse } from '../../core/contracts/model';
import { toolSpec } from '../../core/define';
import { planContext } from '../../core/durable';
import { ConfigurationError } from '../../core/errors';
import { executionName, modelTurnEvents, runToolsEvents, shouldContinueAsNew } from '../../core/history';
import { modelCallIdempotencyKey } from '../../core/ids';
import { buildConversation, decideTurn, outputValidationFailure } from '../../core/loop';
import type { StepDeps } from './deps';

/** Runs one model turn. @throws ConfigurationError when a tool has no function ARN. */
export async function modelTurn(input: ModelTurnInput, deps: StepDeps): Promise<ModelTurnResult> {
  const { agent, store } = deps;
  const now = deps.now ?? Date.now;
  const before = input.events + (input.toolRuns ? runToolsEvents(input.toolRuns.map((r) => r.events)) : 0);
  const events = before + modelTurnEvents(input.retryCount);
  const progress = { events, execution: input.execution, branch: input.branch, toolRuns: null };
  if (shouldContinueAsNew(before, agent.historyEventLimit)) {
    const next = input.execution + 1;
    return {
      sessionId: input.sessionId,
      step: input.step,
      repairs: input.repairs,
      outcome: 'continue',
      calls: [],
      continuation: {
        name: executionName(input.sessionId, next),
        input: { continuation: { sessionId: input.sessionId, parentExecutionArn: input.executionArn, reason: 'continue-as-new', execution: next } },
      },
      ...progress,
    };
  }
  await deps.fault('ModelTurn', input.sessionId);

  const step = input.step + 1;
  const records = await store.listCheckpoints(input.sessionId);
  const repairsBefore = records.filter((r) => r.kind === 'model' && r.step < step && r.outcome === 'repair').length;
  const recorded = records.find((r): r is ModelCheckpoint => r.kind === 'model' && r.step === step);
  const called = recorded ?? (await callModel(input, step, repairsBefore, records, deps, now));
  if ('failure' in called) {
    return { sessionId: input.sessionId, step: input.step, repairs: repairsBefore, outcome: 'failed', calls: [], failure: called.failure, ...progress };
  }
  const record = called;
  // Also on a replay: the previous attempt may have crashed between the checkpoint and the head update.
  if (record.outcome === 'final') await store.markSucceeded(input.sessionId, step, record.output, input.executionArn);
  else await store.recordStep(input.sessionId, step);
  return { ...resultOf(record, repairsBefore, agent.maxOutputRepairs), ...progress };
}

async function callModel(
  input: ModelTurnInput,
  step: number,
  repairsBefore: number,
  records: CheckpointRecord[],
  deps: StepDeps,
  now: () => number,
): Promise<ModelCheckpoint | { failure: Failure }> {
  const { agent, store, bodies } = deps;
  const functions = deps.toolFunctions();
  const tools = new Map<string, { functionArn: string; needsApproval: boolean }>();
  for (const tool of agent.tools) {
    const functionArn = functions[tool.name];
    if (!functionArn) throw new ConfigurationError(`no function ARN configured for tool ${tool.name}`);
    tools.set(tool.name, { functionArn, needsApproval: tool.needsApproval });
  }
  const history = records.filter((r) => r.kind !== 'model' || r.step < step);
  const context = planContext(history, agent.context);
  const sk = checkpointKey.model(step);
  if (context.exceeded) {
    const cause = `tool results of ${context.bytes} bytes exceed the agent's context limit of ${agent.context?.maxToolResultBytes ?? 0} bytes`;
    return { failure: { error: 'ContextLimitExceeded', cause } };
  }
  const request: ModelRequest = {
    modelId: agent.model.script.modelId,
    system: agent.systemPrompt,
    messages: buildConversation(await loadBodies(history, context.dropped, deps), context.dropped),
    tools: agent.tools.map(toolSpec),
  };
  const provider = deps.provider();
  const idempotencyKey = modelCallIdempotencyKey(input.sessionId, step, input.branch);
  const started = now();
  // Once per key: a retry after the model answered (and before the checkpoint) gets the same answer.
  const stored = await deps.once(idempotencyKey, async () => {
    const answer = await provider.converse(request);
    const body = JSON.stringify(answer);
    return bodies.exceedsInline(body) ? { responseRef: await bodies.put(input.sessionId, sk, body) } : { response: answer };
  });
  const response: ModelResponse = stored.responseRef ? (JSON.parse(await bodies.get(stored.responseRef)) as ModelResponse) : stored.response;
  const durationMs = now() - started;
  const decision = decideTurn(response, { tools, output: agent.output, repairs: repairsBefore, maxOutputRepairs: agent.maxOutputRepairs });
  if (decision.outcome === 'final') provider.assertComplete?.(request);

  const { record } = await store.putCheckpoint(
    {
      sessionId: input.sessionId,
      sk,
      kind: 'model',
      step,
      provider: provider.name,
      request: { modelId: request.modelId, tools: request.tools.map((t) => t.name), messageCount: request.messages.length },
      ...stored,
      idempotencyKey,
      context: agent.context ? { toolResultBytes: context.bytes, droppedToolResults: context.dropped.size } : undefined,
      outcome: decision.outcome,
      calls: decision.outcome === 'tool_calls' ? decision.calls : [],
      inlineResults: decision.outcome === 'tool_calls' ? decision.inlineResults : [],
      validationErrors: decision.outcome === 'repair' || decision.outcome === 'failed' ? decision.validationErrors : undefined,
      output: decision.outcome === 'final' ? decision.output : undefined,
      durationMs,
    },
    input.executionArn,
  );
  if (record.kind !== 'model') throw new ConfigurationError(`checkpoint ${sk} is not a model checkpoint`);
  return record;
}

/** The records with their S3 bodies loaded, except the tool results the context limit drops. */
async function loadBodies(records: CheckpointRecord[], dropped: ReadonlySet<string>, deps: StepDeps): Promise<CheckpointRecord[]> {
  return Promise.all(
    records.map(async (r) => {
      if (r.kind === 'model' && !r.response && r.responseRef) return { ...r, response: JSON.parse(await deps.bodies.get(r.responseRef)) as ModelResponse };
      if (r.kind === 'tool' && r.result === undefined && r.resultRef && !dropped.has(r.sk)) return { ...r, result: await deps.bodies.get(r.resultRef) };
      return r;
    }),
  );
}

type TurnResult = Omit<ModelTurnResult, 'events' | 'execution' | 'branch' | 'toolRuns'>;

function resultOf(record: ModelCheckpoint, repairsBefore: number, maxOutputRepairs: number): TurnResult {
  const repairs = repairsBefore + (record.outcome === 'repair' ? 1 : 0);
  const result: TurnResult = { sessionId: record.sessionId, step: record.step, repairs, outcome: record.outcome, calls: record.calls };
  if (record.outcome === 'failed') result.failure = outputValidationFailure(maxOutputRepairs, record.validationErrors ?? []);
  return result;
}
