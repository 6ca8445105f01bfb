/**
 * Execution history accounting, pure: how many history events the agent loop's
 * states write in a Standard execution, so a run continues as a new execution
 * before it reaches the 25,000-event quota.
 *
 * The counts are the history event types Step Functions writes per state
 * ("HistoryEvent" in the Step Functions API reference, and "Execution history"
 * in the developer guide):
 * - a Lambda Task (`lambda:invoke`, request-response): TaskStateEntered,
 *   TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited (5); each retry
 *   adds TaskFailed, TaskScheduled, TaskStarted (3);
 * - a `.waitForTaskToken` Task: also TaskSubmitted (6);
 * - a Choice, Pass or Succeed: StateEntered, StateExited (2);
 * - an inline Map: MapStateEntered, MapStateStarted, MapStateSucceeded,
 *   MapStateExited (4), and per iteration MapIterationStarted,
 *   MapIterationSucceeded (2) plus the iteration's own states;
 * - the execution: ExecutionStarted and ExecutionSucceeded/Failed (1 each).
 *
 * The count is an estimate the loop carries in its payload (`events`): the
 * runtime cannot read the count cheaply (GetExecutionHistory pages through the
 * whole history), and an emulator may record fewer events than AWS does. It is
 * deliberately an upper bound of what the observable steps wrote: retries are
 * counted from `$$.State.RetryCount`.
 */
import { MAX_TOOL_CALLS_PER_TURN, STANDARD_EXECUTION_HISTORY_LIMIT, TASK_RETRY } from './constants';

/** History events per state kind (see the module comment for the sources). */
export const HISTORY_EVENTS = {
  execution: 2,
  task: 5,
  taskRetry: 3,
  waitForTaskToken: 6,
  choice: 2,
  pass: 2,
  map: 4,
  mapIteration: 2,
} as const;

/** Events of a Task attempted `retries + 1` times. */
export const taskEvents = (retries: number, kind: 'task' | 'waitForTaskToken' = 'task'): number =>
  HISTORY_EVENTS[kind] + HISTORY_EVENTS.taskRetry * Math.max(0, retries);

/** Events from the execution's start to the first model turn: ExecutionStarted, Prepare (with its retries), Prepared?. */
export function startEvents(prepareRetries: number): number {
  return 1 + taskEvents(prepareRetries) + HISTORY_EVENTS.choice;
}

/** Events of one model turn and the Route after it. */
export function modelTurnEvents(retries: number): number {
  return taskEvents(retries) + HISTORY_EVENTS.choice;
}

/**
 * Events of one RunTools iteration: the iteration markers, Dispatch, the approval
 * wait (ApprovalTimedOut, AfterApproval) when there was one, and the tool's RunTool with its retries.
 */
export function toolIterationEvents(props: { approval: 'not_required' | 'approved' | 'rejected' | 'timed_out'; retries: number }): number {
  let events = HISTORY_EVENTS.mapIteration + HISTORY_EVENTS.choice + taskEvents(props.retries);
  // The approval wait, then AfterApproval (the Choice back to the tool's Task).
  if (props.approval !== 'not_required') events += taskEvents(0, 'waitForTaskToken') + HISTORY_EVENTS.choice;
  if (props.approval === 'timed_out') events += HISTORY_EVENTS.pass;
  return events;
}

/**
 * Events of one of the loop's own waits after a model turn: PauseForBudget and the
 * Raised? Choice, or ReviewOutput (and ReviewTimedOut, a Pass). The model turn that
 * leads to the wait counts them in advance, since no task runs between the wait and the next turn.
 */
export const LOOP_WAIT_EVENTS = taskEvents(0, 'waitForTaskToken') + HISTORY_EVENTS.choice;

/** Events of the RunTools Map, given the events of each of its iterations. */
export function runToolsEvents(iterations: readonly number[]): number {
  return HISTORY_EVENTS.map + iterations.reduce((a, b) => a + b, 0);
}

/**
 * The most events one more turn can add: a model turn retried to the limit, then
 * the largest Map (every call approved after a timeout, every task retried to the limit).
 * @param maxCallsPerTurn the Map's iterations @default {@link MAX_TOOL_CALLS_PER_TURN}
 * @param toolRetries retries of each tool's Task (the agent's {@link maxToolRetries}) @default `TASK_RETRY.maxAttempts` (3)
 */
export function worstTurnEvents(maxCallsPerTurn: number = MAX_TOOL_CALLS_PER_TURN, toolRetries: number = TASK_RETRY.maxAttempts): number {
  const retries = TASK_RETRY.maxAttempts;
  const iteration = toolIterationEvents({ approval: 'timed_out', retries: toolRetries }) + HISTORY_EVENTS.taskRetry * retries;
  return modelTurnEvents(retries) + runToolsEvents(Array.from({ length: maxCallsPerTurn }, () => iteration));
}

/**
 * The most retries any of `tools` declares for its Task (`retry.maxAttempts` − 1),
 * at least the default ({@link TASK_RETRY}): what a worst-case turn counts per tool call.
 */
export function maxToolRetries(tools: readonly { readonly retry: { readonly maxAttempts: number } }[]): number {
  return Math.max(TASK_RETRY.maxAttempts, ...tools.map((t) => t.retry.maxAttempts - 1));
}

/**
 * Events the ending of an execution can take after the last turn: the failure path
 * (a Pass, RecordFailure with its 5 retries, the direct DLQ send with its 5 retries,
 * Fail) or the continuation (ContinueAsNew with its retries, ContinuedAsNew), plus ExecutionFailed/Succeeded.
 */
export const END_RESERVE_EVENTS = HISTORY_EVENTS.pass + 2 * taskEvents(5) + HISTORY_EVENTS.pass + 1;

/**
 * Whether the run must continue as a new execution before its next model turn:
 * when `events` so far plus the worst next turn plus the end reserve would reach `limit`.
 * @param events history events so far in this execution (the payload's estimate)
 * @param limit the history event limit @default 25,000 (the Standard execution quota)
 * @param maxCallsPerTurn as in {@link worstTurnEvents}
 * @param toolRetries retries of each tool's Task, as in {@link worstTurnEvents}
 */
export function shouldContinueAsNew(events: number, limit: number = STANDARD_EXECUTION_HISTORY_LIMIT, maxCallsPerTurn?: number, toolRetries?: number): boolean {
  return events + worstTurnEvents(maxCallsPerTurn, toolRetries) + END_RESERVE_EVENTS >= limit;
}

/**
 * The name of a session's `n`th execution: the session id for the first, then
 * `<session>-x<n>`. Execution names are at most 80 characters of `[0-9A-Za-z_-]`;
 * session ids are at most 72 characters when they continue (the runtime's own are 36).
 * @throws Error when the name would be longer than 80 characters.
 */
export function executionName(sessionId: string, n: number): string {
  const name = n <= 1 ? sessionId : `${sessionId}-x${n}`;
  if (name.length > 80) throw new Error(`execution name ${name} is longer than 80 characters`);
  return name;
}

/**
 * The ARN of an execution's state machine, from the execution ARN
 * (`arn:<partition>:states:<region>:<account>:execution:<stateMachine>:<name>`).
 * @throws Error when `executionArn` is not a Standard execution ARN.
 */
export function stateMachineArnOf(executionArn: string): string {
  const parts = executionArn.split(':');
  if (parts.length !== 8 || parts[2] !== 'states' || parts[5] !== 'execution') throw new Error(`not an execution ARN: ${executionArn}`);
  return [...parts.slice(0, 5), 'stateMachine', parts[6]].join(':');
}

/** The ARN of the execution named `name` of the state machine `stateMachineArn`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  const parts = stateMachineArn.split(':');
  if (parts.length !== 7 || parts[5] !== 'stateMachine') throw new Error(`not a state machine ARN: ${stateMachineArn}`);
  return [...parts.slice(0, 5), 'execution', parts[6], name].join(':');
}

/**
 * The smallest history event limit that leaves room for one worst-case turn after
 * an execution's start (so every execution makes progress).
 * @param maxCallsPerTurn as in {@link worstTurnEvents}
 * @param toolRetries retries of each tool's Task, as in {@link worstTurnEvents}
 */
export function minimumHistoryEventLimit(maxCallsPerTurn?: number, toolRetries?: number): number {
  return startEvents(TASK_RETRY.maxAttempts) + worstTurnEvents(maxCallsPerTurn, toolRetries) + END_RESERVE_EVENTS + 1;
}
