/**
 * Resume, cancel and roll back sessions: the I/O behind POST
 * /runs/{sessionId}/resume, /cancel and /rollback. The rules (what may be
 * resumed, cancelled or rolled back, which execution continues a session) are
 * pure, in `core/durable.ts` and `core/control.ts`; this module reads the session,
 * writes the checkpoint and approval tables, and starts, describes and stops
 * Step Functions executions.
 *
 * Order of the writes, so that a request cut short leaves the session consistent:
 * - resume: expire the failed execution's approvals, start the continuation (its
 *   Prepare takes the session over from FAILED, conditionally).
 * - cancel: the conditional RUNNING → CANCELLED first (it fences every later step
 *   of the session's executions), then stop them, then expire the approvals.
 * - rollback: refuse early when the next execution already exists; for a RUNNING
 *   session, mark it FAILED (`RolledBack`) on behalf of its execution before
 *   stopping that execution (so the execution-status backstop, which records only
 *   RUNNING sessions, stays quiet); expire approvals; move the checkpoints
 *   (conditional on the head's execution and branch); start the continuation.
 */
import { DescribeExecutionCommand, ExecutionDoesNotExist, RedriveExecutionCommand, StopExecutionCommand, type ExecutionStatus } from '@aws-sdk/client-sfn';
import { raiseBudgets } from '../core/budget';
import type {
  CancelRunRequest,
  CancelRunResponse,
  RaiseBudgetRequest,
  RaiseBudgetResponse,
  ResumeRunRequest,
  ResumeRunResponse,
  RollbackRunRequest,
  RollbackRunResponse,
  StopRunRequest,
  StopRunResponse,
} from '../core/contracts/api';
import type { WaitDecision } from '../core/contracts/loop';
import { BUDGET_PAUSE_TOOL_PREFIX } from '../core/approvals';
import { ConfigurationError } from '../core/errors';
import type { SessionRecord } from '../core/contracts/checkpoint';
import { approvalsToExpire, decideRollback, isRefusal, nextExecution, refuse, type ControlRefusal, type NextExecution } from '../core/control';
import { whyNotCancellable, whyNotResumable } from '../core/durable';
import { logger } from '../observability/powertools';
import type { ApprovalStore } from './approval-store';
import type { CheckpointStore } from './checkpoint-store';
import { sfnClient } from './clients';
import { startNamedExecution, type StartedExecution } from './executions';

/** The checkpoint store's operations the control routes use. */
export type ControlSessionStore = Pick<CheckpointStore, 'getSession' | 'listCheckpoints' | 'cancel' | 'rollBack' | 'markFailed'> &
  Pick<CheckpointStore, 'setBudgets' | 'stop'> &
  Partial<Pick<CheckpointStore, 'reopen'>>;

/** The approval store's operations the control routes use. */
export type ControlApprovalStore = Pick<ApprovalStore, 'listPending' | 'markExpired'> & Partial<Pick<ApprovalStore, 'get' | 'decide' | 'markDelivered'>>;

/** Starting, describing and stopping executions of a session's state machine. */
export interface ExecutionControl {
  /** Starts a named execution ({@link startNamedExecution}; `requestedAt` in ms since the epoch). */
  start(stateMachineArn: string, name: string, input: string, requestedAt: number): Promise<StartedExecution>;
  /** The execution's status, or undefined when it does not exist. */
  status(executionArn: string): Promise<ExecutionStatus | undefined>;
  /**
   * Stops an execution with an error and cause.
   * @returns false when it does not exist.
   */
  stop(executionArn: string, error: string, cause: string): Promise<boolean>;
  /** Whether Step Functions can redrive the execution (DescribeExecution `redriveStatus` REDRIVABLE). Absent: never. */
  redrivable?(executionArn: string): Promise<boolean>;
  /** RedriveExecution. @throws the SDK's errors (e.g. ExecutionNotRedrivable; an emulator without the API) */
  redrive?(executionArn: string): Promise<void>;
}

/** {@link ExecutionControl} through the Step Functions API (StartExecution, DescribeExecution, StopExecution). */
export const stepFunctionsExecutions: ExecutionControl = {
  start: startNamedExecution,
  async status(executionArn) {
    try {
      return (await sfnClient().send(new DescribeExecutionCommand({ executionArn }))).status;
    } catch (err) {
      if (err instanceof ExecutionDoesNotExist) return undefined;
      throw err;
    }
  },
  async stop(executionArn, error, cause) {
    try {
      await sfnClient().send(new StopExecutionCommand({ executionArn, error, cause }));
      return true;
    } catch (err) {
      if (err instanceof ExecutionDoesNotExist) return false;
      throw err;
    }
  },
  async redrivable(executionArn) {
    try {
      return (await sfnClient().send(new DescribeExecutionCommand({ executionArn }))).redriveStatus === 'REDRIVABLE';
    } catch (err) {
      if (err instanceof ExecutionDoesNotExist) return false;
      throw err;
    }
  },
  async redrive(executionArn) {
    await sfnClient().send(new RedriveExecutionCommand({ executionArn }));
  },
};

/** What {@link SessionControl} works with. */
export interface SessionControlDeps {
  readonly sessions: ControlSessionStore;
  readonly approvals: ControlApprovalStore;
  readonly executions: ExecutionControl;
  /** The clock (approval cut-offs, the start request's time). @default the system clock */
  readonly now?: () => Date;
  /** Answers a waiting task (SendTaskSuccess); false when it no longer waits. Needed by raise-budget and stop. */
  readonly completeTask?: (taskToken: string, output: unknown) => Promise<boolean>;
}

/** A control request's outcome: the answer, or why it was refused. */
export type ControlOutcome<T> = { ok: true; value: T } | { ok: false; refusal: ControlRefusal };

/** A control request's body, with who asks (the body's `requestedBy`, else the caller's identity). */
type Asked<T> = T & { requestedBy?: string };

/** The error a cancelled session's executions are stopped with. */
export const CANCELLED_ERROR = 'Cancelled';
/** The error a rolled-back session's running execution is stopped with, and its failure records. */
export const ROLLED_BACK_ERROR = 'RolledBack';

const refused = <T>(refusal: ControlRefusal): ControlOutcome<T> => ({ ok: false, refusal });
const unknown = <T>(sessionId: string): ControlOutcome<T> => refused(refuse('UnknownSession', `no session "${sessionId}"`));

/**
 * Resumes, cancels and rolls back sessions. Each method returns a value (an
 * answer or a refusal); only unexpected I/O errors (SDK, corrupt records) are thrown.
 */
export class SessionControl {
  private readonly now: () => Date;

  constructor(private readonly deps: SessionControlDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * Resumes a FAILED session from its last good checkpoint: starts execution
   * `head.executions + 1` with a `resume` continuation. A repeated request (the
   * execution already exists with the same input) answers `created: false`.
   * @returns refusals `UnknownSession`, `NotResumable` (whyNotResumable), `Conflict`
   *   (no next execution can be named), `ExecutionConflict` (the name is taken by other input).
   */
  async resume(sessionId: string, request: Asked<ResumeRunRequest>): Promise<ControlOutcome<ResumeRunResponse>> {
    const requestedAt = this.now().getTime();
    const head = await this.deps.sessions.getSession(sessionId);
    if (!head) return unknown(sessionId);
    const why = whyNotResumable(head);
    if (why) return refused(refuse('NotResumable', why));
    const next = nextExecution(head, 'resume');
    if (isRefusal(next)) return refused(next);
    // Approvals of the failed execution wait for nothing; later ones belong to a continuation already running.
    await this.expireApprovals(sessionId, head.updatedAt);
    if (await this.redrive(head)) {
      logger.info('session resumed by redrive', { executionArn: head.executionArn, reason: request.reason, requestedBy: request.requestedBy });
      return { ok: true, value: { sessionId, executionArn: head.executionArn, execution: head.executions, created: true, method: 'redrive' } };
    }
    const started = await this.start(next, requestedAt);
    if (!started.ok) return started;
    logger.info(started.value.created ? 'session resumed' : 'session resume already started', {
      executionArn: started.value.executionArn,
      execution: next.execution,
      reason: request.reason,
      requestedBy: request.requestedBy,
    });
    return {
      ok: true,
      value: { sessionId, executionArn: started.value.executionArn, execution: next.execution, created: started.value.created, method: 'continuation' },
    };
  }

  /**
   * Redrives the failed execution itself where Step Functions can: only when it
   * ended outside the loop's Catch graph (the execution-status backstop recorded it,
   * `failedState` "Execution": aborted, timed out, `States.Runtime`), because an
   * execution that ended through RecordFailure would redrive only its Fail state. The
   * session is reopened (FAILED → RUNNING) first so that the redriven steps may write;
   * if the redrive is refused it is failed again, as it was, and the caller falls back
   * to a continuation.
   * @returns whether the execution was redriven.
   */
  private async redrive(head: SessionRecord): Promise<boolean> {
    const { executions, sessions } = this.deps;
    if (head.failure?.failedState !== 'Execution' || !executions.redrive || !executions.redrivable || !sessions.reopen) return false;
    if (!(await executions.redrivable(head.executionArn))) return false;
    const failure = await sessions.reopen(head.sessionId, head.executionArn);
    if (!failure) return false;
    try {
      await executions.redrive(head.executionArn);
      return true;
    } catch (err) {
      logger.warn('redrive refused; resuming with a continuation', { error: err instanceof Error ? err.message : String(err) });
      await sessions.markFailed({ sessionId: head.sessionId, agent: head.agent, executionArn: head.executionArn, failure }, true);
      return false;
    }
  }

  /**
   * Cancels a RUNNING session: status CANCELLED with the reason (conditional on
   * RUNNING), then stops its execution and the next one when it already runs (error
   * `Cancelled`, cause the reason), then expires its pending approvals.
   * A session already CANCELLED is refused (`NotCancellable`), but its executions
   * still running are stopped first, so that repeating a request that was cut short
   * finishes its work.
   * @returns refusals `UnknownSession`, `NotCancellable`, `Conflict` (the status changed meanwhile).
   */
  async cancel(sessionId: string, request: Asked<CancelRunRequest>): Promise<ControlOutcome<CancelRunResponse>> {
    const head = await this.deps.sessions.getSession(sessionId);
    if (!head) return unknown(sessionId);
    const why = whyNotCancellable(head);
    if (why) {
      if (head.status === 'CANCELLED') await this.stopSession(head, CANCELLED_ERROR, head.cancellation?.reason ?? 'cancelled');
      return refused(refuse('NotCancellable', why));
    }
    const before = await this.deps.sessions.cancel(sessionId, { reason: request.reason, by: request.requestedBy });
    if (!before) return refused(refuse('Conflict', `session ${sessionId} is no longer RUNNING (its status changed meanwhile); nothing was cancelled`));
    // The head as it was when cancelled: a continuation may have taken the session over since it was read.
    const stoppedExecutions = await this.stopSession(before, CANCELLED_ERROR, request.reason);
    const expiredApprovals = await this.expireApprovals(sessionId);
    logger.info('session cancelled', { stoppedExecutions, expiredApprovals, requestedBy: request.requestedBy });
    return { ok: true, value: { sessionId, status: 'CANCELLED', stoppedExecutions, expiredApprovals } };
  }

  /**
   * Rolls a session back to model turn `toStep` and continues it from there in a
   * new execution (`rollback` continuation, branch `head.branch + 1`).
   * @returns refusals `UnknownSession`; `InvalidRollback` (toStep); `NotRollbackable`
   *   (cancelled); `Conflict` when the next execution already exists or the session
   *   changed meanwhile (nothing rolled back); `ExecutionConflict` when the
   *   continuation's name was taken after the checkpoints moved.
   */
  async rollback(sessionId: string, request: Asked<RollbackRunRequest>): Promise<ControlOutcome<RollbackRunResponse>> {
    const requestedAt = this.now().getTime();
    const head = await this.deps.sessions.getSession(sessionId);
    if (!head) return unknown(sessionId);
    const plan = decideRollback(head, await this.deps.sessions.listCheckpoints(sessionId), request.toStep);
    if (isRefusal(plan)) return refused(plan);
    const next = nextExecution(head, 'rollback');
    if (isRefusal(next)) return refused(next);
    // Refuse before changing anything when a continuation is already on its way (it would take the session over).
    const nextStatus = await this.deps.executions.status(next.executionArn);
    if (nextStatus !== undefined) {
      return refused(
        refuse('Conflict', `execution ${next.name} of session ${sessionId} already exists (${nextStatus}): the session is being continued; try again once it has taken the session over`),
      );
    }
    if (head.status === 'RUNNING') {
      const failure = { error: ROLLED_BACK_ERROR, cause: request.reason, failedState: 'Rollback' };
      const marked = await this.deps.sessions.markFailed({ sessionId, agent: head.agent, executionArn: head.executionArn, failure }, true);
      if (!marked) return refused(refuse('Conflict', `session ${sessionId} changed meanwhile (no longer RUNNING under ${head.executionArn}); nothing was rolled back`));
      await this.stopIfRunning(head.executionArn, ROLLED_BACK_ERROR, request.reason);
    }
    await this.expireApprovals(sessionId);
    const { branch, toStep, fromStep, abandoned } = plan;
    const rolledBack = await this.deps.sessions.rollBack(head, { branch, toStep, fromStep, abandoned, reason: request.reason, requestedBy: request.requestedBy });
    if (!rolledBack) return refused(refuse('Conflict', `session ${sessionId} changed meanwhile (another rollback or execution took it); nothing was rolled back`));
    const started = await this.start(next, requestedAt);
    if (!started.ok) return started;
    logger.info('session rolled back', { executionArn: started.value.executionArn, branch, toStep, fromStep, abandoned: abandoned.length, requestedBy: request.requestedBy });
    return { ok: true, value: { sessionId, executionArn: started.value.executionArn, execution: next.execution, branch, abandoned: abandoned.length } };
  }

  /**
   * Sets a session's budgets (each field the new limit). A run paused on a budget
   * resumes: the session becomes RUNNING and its budget pause's wait is answered
   * `raised`, so the next model turn checks the budgets again (and pauses again if
   * the raise is not enough). Pending pauses of a RUNNING session (a request cut
   * short between the two) are answered too.
   * @returns refusals `UnknownSession`, `NotRaisable` (the run ended), `Conflict` (it changed meanwhile).
   */
  async raiseBudget(sessionId: string, request: Asked<RaiseBudgetRequest>): Promise<ControlOutcome<RaiseBudgetResponse>> {
    const head = await this.deps.sessions.getSession(sessionId);
    if (!head) return unknown(sessionId);
    if (head.status !== 'RUNNING' && head.status !== 'PAUSED_BUDGET') {
      return refused(refuse('NotRaisable', `session ${sessionId} is ${head.status}; only RUNNING or PAUSED_BUDGET runs have budgets to raise`));
    }
    const budgets = raiseBudgets(head.budgets ?? {}, request.budgets);
    const before = await this.deps.sessions.setBudgets(head, budgets);
    if (!before) return refused(refuse('Conflict', `session ${sessionId} changed meanwhile (status or pause); nothing was raised`));
    const resumed = await this.answerPauses(sessionId, { decision: 'raised', reason: request.reason, decidedBy: request.requestedBy }, head.pause?.approvalId);
    logger.info('budgets raised', { budgets, resumed, requestedBy: request.requestedBy, reason: request.reason });
    return { ok: true, value: { sessionId, status: 'RUNNING', budgets, resumed: resumed.length > 0 } };
  }

  /**
   * Stops a run paused on a budget: the session ends STOPPED with why, its
   * checkpoints (the partial results) kept, and the pause's wait is answered
   * `stopped` (the execution ends in its Stopped state). A STOPPED session is
   * refused, after answering a pause a request cut short left waiting.
   * @returns refusals `UnknownSession`, `NotStoppable` (not paused), `Conflict`.
   */
  async stop(sessionId: string, request: Asked<StopRunRequest>): Promise<ControlOutcome<StopRunResponse>> {
    const head = await this.deps.sessions.getSession(sessionId);
    if (!head) return unknown(sessionId);
    if (head.status === 'STOPPED') await this.answerPauses(sessionId, { decision: 'stopped', reason: head.stop?.reason, decidedBy: head.stop?.by });
    if (head.status !== 'PAUSED_BUDGET' || !head.pause) {
      return refused(refuse('NotStoppable', `session ${sessionId} is ${head.status}; only runs paused on a budget can be stopped (cancel a running one)`));
    }
    const before = await this.deps.sessions.stop(head, { reason: request.reason, by: request.requestedBy });
    if (!before) return refused(refuse('Conflict', `session ${sessionId} changed meanwhile; it was not stopped`));
    await this.answerPauses(sessionId, { decision: 'stopped', reason: request.reason, decidedBy: request.requestedBy }, head.pause.approvalId);
    const records = await this.deps.sessions.listCheckpoints(sessionId);
    const completedToolCalls = records.filter((r) => r.kind === 'tool' && r.status === 'succeeded').length;
    const { budget, used, limit } = head.pause;
    logger.info('session stopped', { reason: request.reason, requestedBy: request.requestedBy, completedToolCalls });
    return { ok: true, value: { sessionId, status: 'STOPPED', step: head.step, pause: { budget, used, limit }, completedToolCalls } };
  }

  /**
   * Answers the session's pending budget-pause waits (SendTaskSuccess with `decision`):
   * `current` first (the head's pause, read consistently: the pause and its wait are
   * written together), then any other pending one the session index shows (a wait a
   * request cut short left behind).
   * @returns the approval ids answered.
   */
  private async answerPauses(sessionId: string, decision: WaitDecision, current?: string): Promise<string[]> {
    const { get, decide, markDelivered } = this.deps.approvals;
    const complete = this.deps.completeTask;
    if (!get || !decide || !markDelivered || !complete) throw new ConfigurationError('raise-budget and stop need the approval store and completeTask');
    const answered: string[] = [];
    const others = (await this.deps.approvals.listPending(sessionId)).filter((p) => p.tool.startsWith(BUDGET_PAUSE_TOOL_PREFIX) && p.approvalId !== current);
    for (const approvalId of [...(current ? [current] : []), ...others.map((p) => p.approvalId)]) {
      const record = await get.call(this.deps.approvals, approvalId);
      if (record?.status !== 'pending') continue;
      const pending = record;
      // The wait first, then the record: a request cut short in between leaves the approval
      // pending, so that a repeated request finds it (and, its wait gone, expires it).
      if (await complete(record.taskToken, { ...decision, approvalId: pending.approvalId })) {
        await decide.call(this.deps.approvals, pending.approvalId, { status: decision.decision === 'raised' ? 'approved' : 'rejected', reason: decision.reason, decidedBy: decision.decidedBy });
        await markDelivered.call(this.deps.approvals, pending.approvalId);
        answered.push(pending.approvalId);
      } else {
        await this.deps.approvals.markExpired(pending.approvalId);
      }
    }
    return answered;
  }

  /** Starts the continuation; `ExecutionConflict` when its name is taken by other input. */
  private async start(next: NextExecution, requestedAt: number): Promise<ControlOutcome<{ executionArn: string; created: boolean }>> {
    const started = await this.deps.executions.start(next.stateMachineArn, next.name, JSON.stringify(next.input), requestedAt);
    if (!started.started && started.reason === 'other-input') {
      return refused(refuse('ExecutionConflict', `execution ${next.name} already exists with other input (another resume, rollback or continuation of session ${next.input.continuation.sessionId})`));
    }
    return { ok: true, value: { executionArn: started.executionArn, created: started.started } };
  }

  /**
   * Stops the head's execution and the next one (a continuation not yet in charge)
   * when they run.
   * @returns the ARNs of the executions stopped.
   */
  private async stopSession(head: SessionRecord, error: string, cause: string): Promise<string[]> {
    const following = nextExecution(head, 'continue-as-new');
    const stopped: string[] = [];
    for (const executionArn of isRefusal(following) ? [head.executionArn] : [head.executionArn, following.executionArn]) {
      if (await this.stopIfRunning(executionArn, error, cause)) stopped.push(executionArn);
    }
    return stopped;
  }

  /** Stops an execution that runs. @returns whether it was stopped (false: missing, or ended already). */
  private async stopIfRunning(executionArn: string, error: string, cause: string): Promise<boolean> {
    const status = await this.deps.executions.status(executionArn);
    if (status !== 'RUNNING') return false;
    const stopped = await this.deps.executions.stop(executionArn, error, cause);
    if (stopped) logger.info('execution stopped', { stoppedExecutionArn: executionArn, error });
    return stopped;
  }

  /**
   * Expires the session's pending approvals requested no later than `cutoff` (ISO
   * 8601; all without one): their waits are gone, so a decision is answered 409.
   * @returns their ids.
   */
  private async expireApprovals(sessionId: string, cutoff?: string): Promise<string[]> {
    const ids = approvalsToExpire(await this.deps.approvals.listPending(sessionId), cutoff);
    for (const id of ids) await this.deps.approvals.markExpired(id);
    return ids;
  }
}
