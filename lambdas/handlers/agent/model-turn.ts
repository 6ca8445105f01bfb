/**
 * A model turn: builds the conversation from the checkpoints (bodies stored in
 * S3 loaded by reference, under the agent's context limit: a tool result the limit
 * replaces is read only for a summary or a final answer), calls the model once
 * per idempotency key (Powertools idempotency: a retried or resumed turn gets the
 * recorded answer, not a second call), decides the outcome and checkpoints it.
 * A turn whose checkpoint exists is replayed from it without calling the model.
 *
 * Governance happens here, before each spend:
 * - budgets: the session's spend is summed from its checkpoints; a used-up budget
 *   answers `paused` before the model is called, and a turn whose tool calls'
 *   declared cost does not fit answers `paused` before they run; 80% of a budget
 *   writes a `BudgetThresholdReached` notice (once per budget per session);
 * - policies: the model is offered only the tools the principal may discover, and
 *   each call is authorised with its arguments (`callTool`); a denied call is
 *   answered exactly like a call of a tool that does not exist;
 * - tool budgets: a call past its tool's calls per session is not run
 *   (`TOOL_BUDGET_EXCEEDED`, and a `ToolBudgetExceeded` notice);
 * - the final answer goes through the output pipeline (`core/output.ts`); an answer
 *   sent to a human (`review`) comes back here with the decision.
 *
 * Before anything else it counts the execution's history events: when one more
 * worst-case turn would reach the agent's `historyEventLimit`, it returns
 * `continue` with the StartExecution of the session's next execution instead.
 */
import {
  addModelRecord,
  affordable,
  budgetUse,
  exhaustedBudget,
  modelCallCostUsd,
  priceOf,
  roundUsd,
  spendOf,
  thresholdsReached,
  toolCallsCostUsd,
  type Budgets,
  type Spend,
} from '../../core/budget';
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint, type ModelSummary, type NoticeRecord, type RoutingRecord, type SessionRecord, type ToolCheckpoint } from '../../core/contracts/checkpoint';
import type { Failure, ModelTurnInput, ModelTurnResult, Pause } from '../../core/contracts/loop';
import type { ModelRequest, ModelResponse } from '../../core/contracts/model';
import { toolSpec } from '../../core/define';
import { contextLimitFailure, contextRecord, planContext, SUMMARY_MAX_OUTPUT_TOKENS, SUMMARY_SYSTEM_PROMPT, summaryText } from '../../core/context';
import { ConfigurationError } from '../../core/errors';
import { executionName, LOOP_WAIT_EVENTS, maxToolRetries, modelTurnEvents, runToolsEvents, shouldContinueAsNew } from '../../core/history';
import { modelCallIdempotencyKey, summaryIdempotencyKey } from '../../core/ids';
import { buildConversation, decideTurn, outputValidationFailure } from '../../core/loop';
import { answerText, decideFinalAnswer, outputContext } from '../../core/output';
import { DEFAULT_PRINCIPAL } from '../../core/policy';
import { modelIdOf, modelKey, resolveRoute, stepKindOf, type ModelRef } from '../../core/routing';
import { routeModelCall, transitionsOf, type CircuitTransition, type RouterDeps } from '../../adapters/model-router';
import { logger } from '../../observability/powertools';
import type { PolicySnapshot, StepDeps } from './deps';

type Progress = Pick<ModelTurnResult, 'events' | 'execution' | 'branch' | 'toolRuns' | 'decision'>;

/**
 * Runs one model turn (step `input.step + 1`).
 * @returns the outcome: `tool_calls` (with the calls to run), `final`, `repair`, `review`
 *   (an answer waiting for a human), `paused` (with the budget used up, before the spend),
 *   `failed` (with the failure), or `continue` (with the next execution's StartExecution);
 *   with the loop's progress (history events, execution, branch).
 * @throws ConfigurationError when a tool has no function ARN or the session head is missing;
 *   SessionFencedError when the execution no longer owns the session; the model router's
 *   errors (faults, retried by the Task).
 */
export async function modelTurn(input: ModelTurnInput, deps: StepDeps): Promise<ModelTurnResult> {
  const { agent, store } = deps;
  const now = deps.now ?? Date.now;
  const before = input.events + (input.toolRuns ? runToolsEvents(input.toolRuns.map((r) => r.events)) : 0);
  const events = before + modelTurnEvents(input.retryCount);
  const progress: Progress = { events, execution: input.execution, branch: input.branch, toolRuns: null, decision: null };
  if (shouldContinueAsNew(before, agent.historyEventLimit, undefined, maxToolRetries(agent.tools))) {
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
  const [head, records] = await Promise.all([store.getSession(input.sessionId), store.listCheckpoints(input.sessionId)]);
  if (!head) throw new ConfigurationError(`session ${input.sessionId} has no head`);
  // Only a rolled-back session (branch > 0) has abandoned checkpoints.
  const abandoned = head.branch > 0 ? await store.listAbandoned(input.sessionId) : [];
  const repairsBefore = records.filter((r) => r.kind === 'model' && r.step < step && r.outcome === 'repair').length;
  // The loop's own waits (budget pause, output review) come after this turn: count their events now.
  const waiting = { ...progress, events: events + LOOP_WAIT_EVENTS };
  const base = { sessionId: input.sessionId, repairs: repairsBefore, calls: [] };
  const limits: Budgets = head.budgets ?? agent.budgets;
  // What rolled-back turns spent still counts: a rollback is no way around a budget.
  const spend = spendOf([...records, ...abandoned], head, now());

  let record = records.find((r): r is ModelCheckpoint => r.kind === 'model' && r.step === step);
  const replayed = record !== undefined;
  if (!record) {
    const exhausted = exhaustedBudget(spend, limits);
    if (exhausted) {
      // A budget may go from under 80% to used up between two turns: announce before pausing.
      await writeNotices(input.sessionId, input.step, thresholdNotices(spend, limits), deps, input.executionArn);
      return { ...base, step: input.step, outcome: 'paused', pause: exhausted, ...waiting };
    }
    const called = await callModel(input, step, repairsBefore, records, head, spend, deps, now);
    // Not `'failure' in called`: a model checkpoint as parsed on writing has the key, undefined.
    if (!('kind' in called)) return { ...base, step: input.step, outcome: 'failed', failure: called.failure, ...progress };
    record = called;
  }

  const after = replayed ? spend : addModelRecord(spend, record);
  // Also on a replay: a crash may have come between the model checkpoint and the notices.
  // One read of the session's notices for all of them: budget thresholds, routing, then tool budgets
  // (a review has no tool calls, so none of the last).
  const notices = [...thresholdNotices(after, limits), ...routingNotices(record, input.branch), ...(record.outcome === 'review' ? [] : toolBudgetNotices(record, deps))];
  await writeNotices(input.sessionId, step, notices, deps, input.executionArn);

  if (record.outcome === 'review') {
    // Only a replayed review has been waited for. Its answer is in the payload, or (after a
    // continue-as-new or a resume, which start with none) in its approval record; a decision
    // from another wait (a budget raise) is not its answer.
    const fromPayload = input.decision && ['approved', 'rejected', 'timed_out'].includes(input.decision.decision) ? input.decision : undefined;
    const decision = replayed ? (fromPayload ?? (await deps.reviewDecision(input.sessionId, step, input.branch))) : undefined;
    if (!decision) return { ...base, step: input.step, outcome: 'review', ...waiting };
    if (decision.decision !== 'approved') {
      const why = decision.decision === 'timed_out' ? 'the review timed out' : `the reviewer rejected it (${decision.reason ?? 'no reason given'})`;
      return { ...base, step: input.step, outcome: 'failed', failure: { error: 'OutputRejected', cause: `the final answer went to review and ${why}` }, ...progress };
    }
    await store.markSucceeded(input.sessionId, step, record.output, input.executionArn);
    return { ...base, step, outcome: 'final', ...progress };
  }

  if (record.outcome === 'tool_calls') {
    // Before the calls run: their declared cost must fit the cost budget.
    const pending = record.calls.filter((c) => !records.some((r) => r.kind === 'tool' && r.step === step && r.callId === c.callId));
    const budgets = new Map(agent.tools.map((t) => [t.name, t.budget]));
    const extra = toolCallsCostUsd(pending, budgets);
    if (extra > 0 && !affordable(after, limits, extra)) {
      const pause: Pause = { budget: 'costUsd', used: roundUsd(after.costUsd + extra), limit: limits.costUsd ?? 0 };
      return { ...base, step: input.step, outcome: 'paused', pause, ...waiting };
    }
  }
  // Also on a replay: the previous attempt may have crashed between the checkpoint and the head update.
  if (record.outcome === 'final') await store.markSucceeded(input.sessionId, step, record.output, input.executionArn);
  else await store.recordStep(input.sessionId, step);
  return { ...resultOf(record, repairsBefore, agent.maxOutputRepairs), ...progress };
}

/** A governance notice to write (once per key: its sort key is `NOTICE#<notice>#<key>`). */
type Notice = { notice: NoticeRecord['notice']; key: string; detail: Record<string, unknown> };

/** A `BudgetThresholdReached` notice for each budget at 80% or more (keyed by the budget: once per budget per session). */
function thresholdNotices(spend: Spend, limits: Budgets): Notice[] {
  const reached = new Set(thresholdsReached(spend, limits));
  return budgetUse(spend, limits)
    .filter((use) => reached.has(use.budget))
    .map(({ budget, used, limit }) => ({ notice: 'BudgetThresholdReached', key: budget, detail: { budget, used, limit } }));
}

/** A `ToolBudgetExceeded` notice for each call the turn refused past its tool's calls per session (once per call). */
function toolBudgetNotices(record: ModelCheckpoint, deps: StepDeps): Notice[] {
  return (record.denials ?? [])
    .filter((d) => d.reason === 'budget_exceeded')
    .map((denial) => ({
      notice: 'ToolBudgetExceeded',
      key: `${record.step}#${denial.callId}`,
      detail: { tool: denial.tool, callId: denial.callId, callsPerSession: deps.agent.tools.find((t) => t.name === denial.tool)?.budget?.callsPerSession },
    }));
}

/**
 * The routing notices of a model turn: `ModelFallback` when a fallback answered, and
 * one notice per circuit change the call (and its summaries) made.
 */
function routingNotices(record: ModelCheckpoint, branch: number): Notice[] {
  const routing = record.routing;
  if (!routing) return [];
  const notices: Notice[] = [];
  if (routing.servedBy.index > 0) {
    const primary = routing.route[0];
    // Per branch: a rolled-back session's fallback at the same step is a new one.
    const servedBy = routing.route[routing.servedBy.index] ?? `${routing.servedBy.provider}/${routing.servedBy.modelId}`;
    notices.push({ notice: 'ModelFallback', key: `${branch}#${record.step}`, detail: { kind: routing.kind, primary, servedBy, attempts: routing.attempts } });
  }
  const summaryTransitions = Object.values(record.context?.summaries ?? {}).flatMap((x) => x.transitions);
  notices.push(...[...routing.transitions, ...summaryTransitions].map(circuitNotice));
  return notices;
}

/** The notice of a circuit change (keyed by the model and the change's time). */
function circuitNotice(t: Omit<CircuitTransition, 'model'> & { model?: string }): Notice {
  const notice = t.to === 'open' ? 'CircuitOpened' : t.to === 'half_open' ? 'CircuitHalfOpened' : 'CircuitClosed';
  const model = t.model ?? `${t.provider}/${t.modelId}`;
  return { notice, key: `${model}#${t.at}`, detail: { model, from: t.from, to: t.to, reason: t.reason, at: t.at, stats: t.stats } };
}

/**
 * Writes, in order, the notices not written yet: one read of the session's notices
 * (none when there is nothing to write), not a refused write each.
 */
async function writeNotices(sessionId: string, step: number, notices: readonly Notice[], deps: StepDeps, executionArn: string): Promise<void> {
  if (notices.length === 0) return;
  const written = new Set((await deps.store.listNotices(sessionId)).map((n) => n.sk));
  for (const n of notices.filter((x) => !written.has(checkpointKey.notice(x.notice, x.key)))) {
    await deps.store.putCheckpoint(
      { sessionId, sk: checkpointKey.notice(n.notice, n.key), kind: 'notice', notice: n.notice, agent: deps.agent.name, step, detail: n.detail },
      executionArn,
    );
  }
}

async function callModel(
  input: ModelTurnInput,
  step: number,
  repairsBefore: number,
  records: CheckpointRecord[],
  head: SessionRecord,
  spend: Spend,
  deps: StepDeps,
  now: () => number,
): Promise<ModelCheckpoint | { failure: Failure }> {
  const { agent, store, bodies } = deps;
  const functions = deps.toolFunctions();
  const principal = head.principal ?? DEFAULT_PRINCIPAL;
  const policies: PolicySnapshot = await deps.policies();
  const tools = new Map<string, { functionArn: string; needsApproval: boolean; budget?: (typeof agent.tools)[number]['budget'] }>();
  for (const tool of agent.tools) {
    const functionArn = functions[tool.name];
    if (!functionArn) throw new ConfigurationError(`no function ARN configured for tool ${tool.name}`);
    tools.set(tool.name, { functionArn, needsApproval: tool.needsApproval, budget: tool.budget });
  }
  const offered = new Map(agent.tools.filter((tool) => policies.decide({ principal, action: 'discoverTool', tool }).allowed).map((tool) => [tool.name, tool]));
  const history = records.filter((r) => r.kind !== 'model' || r.step < step);
  // Tool results stored in S3 are read only where needed. Before the plan: the model answers (the plan
  // sizes an answer by its content), and under `summarise` every result (a summary needs its result).
  const summarise = agent.context?.strategy === 'summarise';
  const planned = await loadBodies(history, deps, () => summarise);
  const toolSpecs = [...offered.values()].map(toolSpec);
  const context = planContext(planned, agent.context, { system: agent.systemPrompt, tools: toolSpecs, maxOutputTokens: agent.maxOutputTokens });
  const sk = checkpointKey.model(step);
  if (context.exceeded) return { failure: contextLimitFailure(context) };
  // Then the results the model sees in full (the plan sized the others from their references).
  const loadedHistory = await loadBodies(planned, deps, (tool) => !context.replaced.has(tool.sk));
  const summaries = await modelSummaries(context.summarisedKeys, loadedHistory, input, deps, now);
  const route = resolveRoute(agent.model, agent.routes, stepKindOf(records, step), agent.modelTimeoutSeconds);
  const request: ModelRequest = {
    modelId: modelIdOf(route.models[0] as ModelRef),
    system: agent.systemPrompt,
    messages: buildConversation(loadedHistory, new Map([...context.replaced, ...summaries.texts])),
    tools: toolSpecs,
    maxTokens: agent.maxOutputTokens,
    ...(route.temperature === undefined ? {} : { temperature: route.temperature }),
  };
  const idempotencyKey = modelCallIdempotencyKey(input.sessionId, step, input.branch);
  const started = now();
  // Once per key: a retry after the model answered (and before the checkpoint) gets the same answer.
  const stored = await deps.once(idempotencyKey, async () => {
    const routed = await routeModelCall(route, request, routerDeps(deps, now)).catch(async (error: unknown) => {
      // The turn fails (its Retry runs it again later), but the circuits it changed are announced now: an outage is when they matter.
      await writeNotices(input.sessionId, step, transitionsOf(error).map(circuitNotice), deps, input.executionArn);
      throw error;
    });
    const routing: RoutingRecord = {
      kind: route.kind,
      route: route.models.map(modelKey),
      servedBy: routed.servedBy,
      attempts: routed.attempts,
      transitions: routed.transitions,
    };
    const answer = routed.response;
    const body = JSON.stringify(answer);
    return bodies.exceedsInline(body)
      ? { responseRef: await bodies.put(input.sessionId, sk, body), usage: answer.usage, routing }
      : { response: answer, usage: answer.usage, routing };
  });
  const response: ModelResponse = stored.responseRef ? (JSON.parse(await bodies.get(stored.responseRef)) as ModelResponse) : stored.response;
  // An idempotency record written before routing existed has no `routing`: the route's first model answered it.
  const served = route.models[stored.routing?.servedBy.index ?? 0] ?? (route.models[0] as ModelRef);
  const provider = deps.provider(served, route.timeoutMs);
  const servedRequest = { ...request, modelId: modelIdOf(served) };
  const durationMs = now() - started;
  // A final answer (no tool call) goes through the output pipeline, which reads every result of the session, the replaced ones too.
  const final = !response.content.some((block) => block.type === 'tool_use');
  const everyResult = final ? await loadBodies(loadedHistory, deps, () => true) : loadedHistory;
  const decision = decideTurn(response, {
    tools,
    authorize: (use) => {
      // A declared tool the principal may not discover is denied like an undeclared one.
      const tool = offered.get(use.name);
      if (!tool) return { allowed: false, policies: [], errors: [], version: policies.version };
      return { ...policies.decide({ principal, action: 'callTool', tool, arguments: use.input, step }), version: policies.version };
    },
    // Calls of rolled-back turns count too (the spend includes the abandoned checkpoints).
    callsSoFar: spend.toolCalls,
    final: (answer) =>
      decideFinalAnswer(answer, {
        schema: agent.output,
        pipeline: agent.outputPipeline,
        context: outputContext(everyResult, now()),
        repairs: repairsBefore,
        maxOutputRepairs: agent.maxOutputRepairs,
      }),
  });
  if (decision.outcome === 'final' || decision.outcome === 'review') provider.assertComplete?.(servedRequest);

  const costUsd = modelCallCostUsd(response.usage, priceOf(response.modelId, served.pricing) ?? priceOf(servedRequest.modelId, served.pricing));
  const { record } = await store.putCheckpoint(
    {
      sessionId: input.sessionId,
      sk,
      kind: 'model',
      step,
      provider: provider.name,
      request: { modelId: servedRequest.modelId, tools: request.tools.map((t) => t.name), messageCount: request.messages.length },
      params: { maxTokens: request.maxTokens, temperature: request.temperature },
      routing: stored.routing,
      ...(stored.responseRef ? { responseRef: stored.responseRef } : { response: stored.response }),
      usage: response.usage,
      costUsd,
      idempotencyKey,
      context: withSummaries(contextRecord(context), summaries.written),
      outcome: decision.outcome,
      calls: decision.outcome === 'tool_calls' ? decision.calls : [],
      inlineResults: decision.outcome === 'tool_calls' ? decision.inlineResults : [],
      denials: decision.outcome === 'tool_calls' && decision.denials.length > 0 ? decision.denials : undefined,
      offeredTools: [...offered.keys()],
      validationErrors: decision.outcome === 'repair' || decision.outcome === 'failed' ? decision.validationErrors : undefined,
      output: decision.outcome === 'final' || decision.outcome === 'review' ? decision.output : undefined,
      stages: 'stages' in decision ? decision.stages : undefined,
      confidence: decision.outcome === 'final' || decision.outcome === 'review' || decision.outcome === 'failed' ? decision.confidence : undefined,
      reviewReasons: decision.outcome === 'review' ? decision.reasons : undefined,
      failure: decision.outcome === 'failed' ? decision.failure : undefined,
      durationMs,
    },
    input.executionArn,
  );
  if (record.kind !== 'model') throw new ConfigurationError(`checkpoint ${sk} is not a model checkpoint`);
  const routing = stored.routing;
  logger.info('model call', {
    kind: route.kind,
    model: `${provider.name}/${servedRequest.modelId}`,
    reportedModel: response.modelId,
    requestId: response.requestId,
    fallback: (routing?.servedBy.index ?? 0) > 0,
    attempts: routing?.attempts.map((a) => `${a.provider}/${a.modelId}: ${a.outcome}${a.fault ? ` (${a.fault})` : ''}`),
    circuitChanges: routing?.transitions.map((t) => `${t.provider}/${t.modelId}: ${t.from} -> ${t.to}`),
    params: { maxTokens: request.maxTokens, temperature: request.temperature },
    usage: response.usage,
    costUsd,
  });
  return record;
}

/** What the router needs, from the step's dependencies. */
function routerDeps(deps: StepDeps, now: () => number): RouterDeps {
  return { health: deps.health, provider: deps.provider, now, deadline: deps.deadline?.(), onHealthError: deps.onHealthError };
}

/**
 * The texts of the tool results the context plan summarises, written by the agent's
 * `summarise` route when it has one (else the plan's extractive summaries stand): a
 * summary an earlier turn wrote is reused; a new one is one model call per result,
 * once per idempotency key, returned in `written` for this turn's checkpoint.
 */
async function modelSummaries(
  keys: readonly string[],
  history: readonly CheckpointRecord[],
  input: ModelTurnInput,
  deps: StepDeps,
  now: () => number,
): Promise<{ texts: Map<string, string>; written: Record<string, ModelSummary> }> {
  const texts = new Map<string, string>();
  const written: Record<string, ModelSummary> = {};
  if (!deps.agent.routes?.summarise || keys.length === 0) return { texts, written };
  const earlier = new Map<string, ModelSummary>();
  for (const r of history) if (r.kind === 'model') for (const [key, summary] of Object.entries(r.context?.summaries ?? {})) earlier.set(key, summary);
  const route = resolveRoute(deps.agent.model, deps.agent.routes, 'summarise', deps.agent.modelTimeoutSeconds);
  for (const key of keys) {
    const tool = history.find((r): r is ToolCheckpoint => r.kind === 'tool' && r.sk === key);
    if (!tool || tool.result === undefined) continue;
    const result = tool.result;
    let summary = earlier.get(key);
    if (!summary) {
      summary = await deps.once(summaryIdempotencyKey(input.sessionId, key, input.branch), async (): Promise<ModelSummary> => {
        const request: ModelRequest = {
          modelId: modelIdOf(route.models[0] as ModelRef),
          system: SUMMARY_SYSTEM_PROMPT,
          messages: [{ role: 'user', content: [{ type: 'text', text: `The result of the tool ${tool.tool}:\n${result}` }] }],
          tools: [],
          maxTokens: SUMMARY_MAX_OUTPUT_TOKENS,
        };
        const routed = await routeModelCall(route, request, routerDeps(deps, now));
        const served = route.models[routed.servedBy.index] ?? (route.models[0] as ModelRef);
        const usage = routed.response.usage;
        const price = priceOf(routed.response.modelId, served.pricing) ?? priceOf(modelIdOf(served), served.pricing);
        return { text: answerText(routed.response), provider: served.provider, modelId: routed.response.modelId, usage, costUsd: modelCallCostUsd(usage, price), transitions: routed.transitions };
      });
      written[key] = summary;
    }
    texts.set(key, summaryText(summary.text, Buffer.byteLength(result), `${summary.provider}/${summary.modelId}`));
  }
  return { texts, written };
}

/** The context record with the summaries written in this turn, if any. */
function withSummaries(record: ReturnType<typeof contextRecord>, written: Record<string, ModelSummary>): ModelCheckpoint['context'] {
  if (!record || Object.keys(written).length === 0) return record;
  return { ...record, summaries: written };
}

/**
 * The records with their S3 bodies loaded: every model answer, and the tool results
 * `results` picks (the others stay by reference). A body already loaded is not read again.
 */
async function loadBodies(records: readonly CheckpointRecord[], deps: StepDeps, results: (tool: ToolCheckpoint) => boolean): Promise<CheckpointRecord[]> {
  return Promise.all(
    records.map(async (r) => {
      if (r.kind === 'model' && !r.response && r.responseRef) return { ...r, response: JSON.parse(await deps.bodies.get(r.responseRef)) as ModelResponse };
      if (r.kind === 'tool' && r.result === undefined && r.resultRef && results(r)) return { ...r, result: await deps.bodies.get(r.resultRef) };
      return r;
    }),
  );
}

type TurnResult = Omit<ModelTurnResult, keyof Progress>;

function resultOf(record: ModelCheckpoint, repairsBefore: number, maxOutputRepairs: number): TurnResult {
  const repairs = repairsBefore + (record.outcome === 'repair' ? 1 : 0);
  const result: TurnResult = { sessionId: record.sessionId, step: record.step, repairs, outcome: record.outcome, calls: record.calls };
  if (record.outcome === 'failed') result.failure = record.failure ?? outputValidationFailure(maxOutputRepairs, record.validationErrors ?? []);
  return result;
}
