/**
 * A model turn: rebuilds the conversation from the checkpoints, calls the
 * provider, decides the outcome and checkpoints it. A retried turn whose
 * checkpoint exists returns the recorded outcome without calling the model again.
 */
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint } from '../../core/contracts/checkpoint';
import type { ModelTurnInput, ModelTurnResult } from '../../core/contracts/loop';
import type { ModelRequest } from '../../core/contracts/model';
import { toolSpec } from '../../core/define';
import { ConfigurationError } from '../../core/errors';
import { buildConversation, decideTurn, outputValidationFailure } from '../../core/loop';
import type { StepDeps } from './deps';

/** Runs one model turn. @throws ConfigurationError when a tool has no function ARN. */
export async function modelTurn(input: ModelTurnInput, deps: StepDeps): Promise<ModelTurnResult> {
  const { agent, store } = deps;
  const now = deps.now ?? Date.now;
  const step = input.step + 1;
  const records = await store.listCheckpoints(input.sessionId);
  const repairsBefore = records.filter((r) => r.kind === 'model' && r.step < step && r.outcome === 'repair').length;
  const recorded = records.find((r): r is ModelCheckpoint => r.kind === 'model' && r.step === step);
  const record = recorded ?? (await callModel(input, step, repairsBefore, records, deps, now));
  // Also on a replay: the previous attempt may have crashed between the checkpoint and the head update.
  if (record.outcome === 'final') await store.markSucceeded(input.sessionId, step, record.output);
  else await store.recordStep(input.sessionId, step);
  return resultOf(record, repairsBefore, agent.maxOutputRepairs);
}

async function callModel(
  input: ModelTurnInput,
  step: number,
  repairsBefore: number,
  records: CheckpointRecord[],
  deps: StepDeps,
  now: () => number,
): Promise<ModelCheckpoint> {
  const { agent, store } = deps;
  const functions = deps.toolFunctions();
  const tools = new Map<string, { functionArn: string; needsApproval: boolean }>();
  for (const tool of agent.tools) {
    const functionArn = functions[tool.name];
    if (!functionArn) throw new ConfigurationError(`no function ARN configured for tool ${tool.name}`);
    tools.set(tool.name, { functionArn, needsApproval: tool.needsApproval });
  }
  const request: ModelRequest = {
    modelId: agent.model.script.modelId,
    system: agent.systemPrompt,
    messages: buildConversation(records.filter((r) => r.kind !== 'model' || r.step < step)),
    tools: agent.tools.map(toolSpec),
  };
  const provider = deps.provider();
  const started = now();
  const response = await provider.converse(request);
  const durationMs = now() - started;
  const decision = decideTurn(response, { tools, output: agent.output, repairs: repairsBefore, maxOutputRepairs: agent.maxOutputRepairs });
  if (decision.outcome === 'final') provider.assertComplete?.(request);

  const { record } = await store.putCheckpoint({
    sessionId: input.sessionId,
    sk: checkpointKey.model(step),
    kind: 'model',
    step,
    provider: provider.name,
    request: { modelId: request.modelId, tools: request.tools.map((t) => t.name), messageCount: request.messages.length },
    response,
    outcome: decision.outcome,
    calls: decision.outcome === 'tool_calls' ? decision.calls : [],
    inlineResults: decision.outcome === 'tool_calls' ? decision.inlineResults : [],
    validationErrors: decision.outcome === 'repair' || decision.outcome === 'failed' ? decision.validationErrors : undefined,
    output: decision.outcome === 'final' ? decision.output : undefined,
    durationMs,
  });
  if (record.kind !== 'model') throw new ConfigurationError(`checkpoint ${checkpointKey.model(step)} is not a model checkpoint`);
  return record;
}

function resultOf(record: ModelCheckpoint, repairsBefore: number, maxOutputRepairs: number): ModelTurnResult {
  const repairs = repairsBefore + (record.outcome === 'repair' ? 1 : 0);
  const result: ModelTurnResult = { sessionId: record.sessionId, step: record.step, repairs, outcome: record.outcome, calls: record.calls };
  if (record.outcome === 'failed') result.failure = outputValidationFailure(maxOutputRepairs, record.validationErrors ?? []);
  return result;
}
