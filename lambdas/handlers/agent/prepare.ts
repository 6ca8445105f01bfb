/**
 * Prepare: the first state of every execution.
 * - A new run (EventBridge, API): validates the trigger input, creates the session
 *   (once per trigger) and checkpoints the first user message.
 * - A continuation (continue-as-new, resume, rollback): takes the session over from
 *   its parent execution (conditionally: the session must still be the parent's, in
 *   a status the reason allows) and picks it up at its last good checkpoint.
 * Either way it records the execution (`EXEC#<n>`) and starts the history count.
 */
import { checkpointKey, type ExecutionReason } from '../../core/contracts/checkpoint';
import type { PrepareResult } from '../../core/contracts/loop';
import { resumePoint, takeoverStatuses } from '../../core/durable';
import { startEvents } from '../../core/history';
import { effectiveBudgets } from '../../core/budget';
import type { EventBridgeTrigger } from '../../core/define';
import { PrincipalSchema, type Principal } from '../../core/policy';
import { matchTrigger, parseTrigger, type ContinuationTrigger, type ParsedTrigger } from '../../core/trigger';
import { formatIssues } from '../../core/validation';
import type { StepDeps } from './deps';

/** Input of the Prepare task, built by the state machine. */
export interface PrepareEvent {
  /** The execution input: an EventBridge event, an API trigger, or a continuation. */
  trigger: unknown;
  /** The execution's ARN (`$$.Execution.Id`): the session's owner. */
  executionArn: string;
  /** The execution's name (`$$.Execution.Name`): the session id reported when the trigger cannot be parsed. */
  executionName: string;
  /** This attempt's `$$.State.RetryCount`. @default 0 */
  retryCount?: number;
}

/**
 * Runs Prepare.
 * @returns `ready`; `duplicate` (this trigger already runs in another execution);
 *   `superseded` (a continuation whose session moved on); or `failed` with
 *   `InvalidInput` naming the fields, or `SubAgentDepthExceeded` when the run is deeper
 *   than its `subAgentDepth` budget.
 */
export async function prepare(event: PrepareEvent, deps: StepDeps): Promise<PrepareResult> {
  const { agent, store } = deps;
  const events = startEvents(event.retryCount ?? 0);
  const progress = { events, execution: 1, branch: 0, toolRuns: null, decision: null };
  const trigger = parseTrigger(agent.name, event.trigger);
  if (!trigger.ok) {
    return { sessionId: event.executionName, step: 0, repairs: 0, outcome: 'failed', failure: { error: 'InvalidInput', cause: trigger.error }, ...progress };
  }
  await deps.fault('Prepare', trigger.sessionId);
  if (trigger.continuation) return continueSession(trigger.continuation, event, events, deps);

  const base = { sessionId: trigger.sessionId, step: 0, repairs: 0, ...progress };
  const input = agent.input.safeParse(trigger.input);
  if (!input.success) {
    const where = trigger.info.source === 'eventbridge' ? 'detail' : 'input';
    const cause = formatIssues(input.error, where).join('; ');
    return { ...base, outcome: 'failed', failure: { error: 'InvalidInput', cause } };
  }
  const matched = trigger.event ? matchTrigger(agent.triggers, trigger.event) : undefined;
  const budgets = effectiveBudgets(agent.budgets, matched?.budgets, trigger.request?.budgets);
  const depth = trigger.request?.depth ?? 0;
  if (budgets.subAgentDepth !== undefined && depth > budgets.subAgentDepth) {
    const cause = `the run is ${depth} sub-agent(s) deep; the agent allows at most ${budgets.subAgentDepth}`;
    return { ...base, outcome: 'failed', failure: { error: 'SubAgentDepthExceeded', cause } };
  }
  const { session } = await store.createSession({
    sessionId: trigger.sessionId,
    agent: agent.name,
    executionArn: event.executionArn,
    trigger: trigger.info,
    principal: principalOf(trigger, matched),
    budgets,
    depth,
  });
  if (session.executionArn !== event.executionArn) return { ...base, outcome: 'duplicate' };

  await recordExecution(deps, { sessionId: trigger.sessionId, execution: 1, executionArn: event.executionArn, reason: 'start', step: 0 });
  const meta = { source: trigger.info.source, detailType: trigger.info.detailType, time: trigger.info.time };
  await store.putCheckpoint({
    sessionId: trigger.sessionId,
    sk: checkpointKey.input(),
    kind: 'input',
    step: 0,
    input: input.data,
    prompt: agent.prompt(input.data, meta),
    trigger: trigger.info,
  });
  return { ...base, outcome: 'ready' };
}

async function continueSession(c: ContinuationTrigger['continuation'], event: PrepareEvent, events: number, deps: StepDeps): Promise<PrepareResult> {
  const { store } = deps;
  const superseded: PrepareResult = { sessionId: c.sessionId, step: 0, repairs: 0, outcome: 'superseded', events, execution: c.execution, branch: 0, toolRuns: null, decision: null };
  let session = await store.getSession(c.sessionId);
  if (!session) return superseded;
  if (session.executionArn !== event.executionArn) {
    session = await store.takeOver({
      sessionId: c.sessionId,
      executionArn: event.executionArn,
      parentExecutionArn: c.parentExecutionArn,
      execution: c.execution,
      fromStatuses: takeoverStatuses(c.reason),
    });
    if (!session) return superseded;
  } else if (session.status !== 'RUNNING') {
    // A retried Prepare of an execution that took the session over, cancelled meanwhile.
    return superseded;
  }
  const records = await store.listCheckpoints(c.sessionId);
  const step = resumePoint(records);
  await recordExecution(deps, { sessionId: c.sessionId, execution: c.execution, executionArn: event.executionArn, parentExecutionArn: c.parentExecutionArn, reason: c.reason, step });
  return { sessionId: c.sessionId, step, repairs: 0, outcome: 'ready', events, execution: c.execution, branch: session.branch, toolRuns: null, decision: null };
}

async function recordExecution(
  deps: StepDeps,
  props: { sessionId: string; execution: number; executionArn: string; parentExecutionArn?: string; reason: ExecutionReason; step: number },
): Promise<void> {
  await deps.store.putCheckpoint({ ...props, sk: checkpointKey.execution(props.execution), kind: 'execution' });
}

/**
 * Who a new run acts for: the API request's principal; for an EventBridge event, its
 * trigger's (fixed, or derived from the event), else `eventbridge:<source>` in the
 * event's account. Never anything the model said.
 * @throws ZodError when a trigger's principal function returns something malformed (a fault of the agent's code).
 */
function principalOf(trigger: Extract<ParsedTrigger, { ok: true; continuation?: undefined }>, matched: EventBridgeTrigger | undefined): Principal | undefined {
  if (trigger.request) return trigger.request.principal;
  if (!trigger.event) return undefined;
  const declared = matched?.principal;
  if (declared) return PrincipalSchema.parse(typeof declared === 'function' ? declared(trigger.event) : declared);
  return { user: `eventbridge:${trigger.event.source}`, tenant: trigger.event.account, roles: [] };
}
