/**
 * Durable execution decisions, pure: where a continuation execution picks a
 * session up, which sessions may be resumed, cancelled or rolled back (the
 * context limit is in `context.ts`).
 */
import type { CheckpointRecord, ExecutionReason, ModelCheckpoint, SessionRecord, SessionStatus } from './contracts/checkpoint';

/**
 * Failures that are outcomes of the run, not faults: resuming would reach the same
 * end. Roll back to an earlier step instead.
 */
export const NOT_RESUMABLE_ERRORS: readonly string[] = [
  'InvalidInput',
  'OutputValidationFailed',
  'OutputRuleFailed',
  'LowConfidence',
  'OutputRejected',
  'StepLimitReached',
  'UnexpectedOutcome',
  'ContextLimitExceeded',
  'SubAgentDepthExceeded',
  // Nobody raised the budget while the run waited: resuming would pause again at once.
  'BudgetExhausted',
];

/**
 * Where a continuation execution starts: the model turns completed (`step`, the
 * payload's pointer) such that the next ModelTurn replays the last recorded turn
 * when its tool calls may be unfinished.
 * - no model turn yet: 0 (the first turn);
 * - the last turn asked for tools or gave the final answer: one before it, so the
 *   turn is replayed from its checkpoint (no model call) and its missing tool calls run;
 * - the last turn was sent back for repair: that turn (the next one answers it).
 */
export function resumePoint(records: readonly CheckpointRecord[]): number {
  const turns = records.filter((r): r is ModelCheckpoint => r.kind === 'model');
  if (turns.length === 0) return 0;
  const last = turns.reduce((a, b) => (b.step > a.step ? b : a));
  return last.outcome === 'repair' ? last.step : last.step - 1;
}

/** The session statuses from which an execution may take a session over, per reason. */
const TAKEOVER_FROM: Record<ExecutionReason, readonly SessionStatus[]> = {
  start: [],
  'continue-as-new': ['RUNNING'],
  resume: ['FAILED'],
  rollback: ['RUNNING', 'FAILED', 'SUCCEEDED'],
};

/** Statuses from which a continuation for `reason` may take the session over from its parent execution. */
export function takeoverStatuses(reason: ExecutionReason): readonly SessionStatus[] {
  return TAKEOVER_FROM[reason];
}

/** Why a session cannot be resumed, or undefined when it can. */
export function whyNotResumable(session: SessionRecord): string | undefined {
  if (session.status !== 'FAILED') return `session ${session.sessionId} is ${session.status}; only FAILED sessions can be resumed`;
  const error = session.failure?.error;
  if (error && NOT_RESUMABLE_ERRORS.includes(error)) {
    return `session ${session.sessionId} failed with ${error}, an outcome of the run rather than a fault; resuming would end the same way (roll back to an earlier step instead)`;
  }
  return undefined;
}

/** Why a session cannot be cancelled, or undefined when it can. */
export function whyNotCancellable(session: SessionRecord): string | undefined {
  return session.status === 'RUNNING' ? undefined : `session ${session.sessionId} is ${session.status}; only RUNNING sessions can be cancelled`;
}

/**
 * What a rollback to `toStep` abandons: the live checkpoints of later steps (model
 * turns, approvals, intents, tool calls).
 * @returns the sort keys to move, and the step the session was at.
 * @throws Error when the session is cancelled, `toStep` is negative, or beyond the last model turn.
 */
export function rollbackPlan(session: SessionRecord, records: readonly CheckpointRecord[], toStep: number): { abandoned: string[]; fromStep: number } {
  if (session.status === 'CANCELLED') throw new Error(`session ${session.sessionId} is CANCELLED; a cancelled session cannot be rolled back`);
  if (!Number.isInteger(toStep) || toStep < 0) throw new Error(`toStep must be a non-negative integer, got ${toStep}`);
  const lastStep = records.reduce((m, r) => (r.kind === 'model' && r.step > m ? r.step : m), 0);
  if (toStep > lastStep) throw new Error(`toStep ${toStep} is after the session's last model turn (${lastStep})`);
  const abandoned = records.filter((r) => r.kind !== 'session' && r.kind !== 'input' && 'step' in r && r.step > toStep && r.sk.startsWith('CP#')).map((r) => r.sk);
  return { abandoned, fromStep: lastStep };
}
