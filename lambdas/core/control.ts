/**
 * Control of a running or ended session (resume, cancel, rollback), pure: which
 * execution continues a session, how a rollback request is judged, and how a
 * refusal maps to an HTTP status. The I/O is in `adapters/session-control.ts`;
 * the rules of what may be resumed, cancelled or rolled back are in `durable.ts`.
 */
import type { CheckpointRecord, SessionRecord } from './contracts/checkpoint';
import type { ContinuationTrigger } from './trigger';
import { rollbackPlan } from './durable';
import { executionArnOf, executionName, stateMachineArnOf } from './history';

/**
 * Why a control request is refused, with the HTTP status it is answered with:
 * - `UnknownSession` (404): no session of that id;
 * - `NotResumable`, `NotCancellable`, `NotRollbackable`, `NotRaisable`, `NotStoppable` (409): the session's status
 *   (or failure) does not allow it; the message says why and what to do instead;
 * - `InvalidRollback` (400): the rollback's `toStep` does not fit the session;
 * - `Conflict` (409): the session changed meanwhile, or its next execution already
 *   exists (another control request or a continue-as-new is starting); try again
 *   once it has taken the session over;
 * - `ExecutionConflict` (409): the next execution's name is taken by an execution
 *   with other input.
 */
export const CONTROL_REFUSAL_STATUS = {
  UnknownSession: 404,
  NotResumable: 409,
  NotCancellable: 409,
  NotRollbackable: 409,
  NotRaisable: 409,
  NotStoppable: 409,
  InvalidRollback: 400,
  Conflict: 409,
  ExecutionConflict: 409,
} as const;

/** The name of a refusal ({@link CONTROL_REFUSAL_STATUS}). */
export type ControlRefusalName = keyof typeof CONTROL_REFUSAL_STATUS;

/**
 * A refused control request: its name, a message for humans, and (for 400s) the
 * fields at fault as `field: message` lines.
 * Example: `{"error":"InvalidRollback","message":"toStep 9 is after the session's last model turn (4)","issues":["toStep: toStep 9 is after the session's last model turn (4)"]}`
 */
export interface ControlRefusal {
  readonly error: ControlRefusalName;
  readonly message: string;
  readonly issues?: readonly string[];
}

/** A refusal value. */
export const refuse = (error: ControlRefusalName, message: string, issues?: readonly string[]): ControlRefusal => ({ error, message, ...(issues ? { issues } : {}) });

/**
 * The execution that continues a session: its number, name and ARN on the
 * session's state machine, and its input.
 * Example: `{"execution":3,"name":"ses_a1-x3","stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:ssh-investigator","executionArn":"arn:…:execution:ssh-investigator:ses_a1-x3","input":{"continuation":{"sessionId":"ses_a1","parentExecutionArn":"arn:…:ses_a1-x2","reason":"resume","execution":3}}}`
 */
export interface NextExecution {
  /** `head.executions + 1`. */
  readonly execution: number;
  /** `executionName(sessionId, execution)`. */
  readonly name: string;
  readonly stateMachineArn: string;
  readonly executionArn: string;
  readonly input: ContinuationTrigger;
}

/**
 * The next execution of a session, continuing it for `reason` from the head's
 * current execution (its parent).
 * @returns the execution, or a `Conflict` refusal when the session id is too long
 *   to name one more execution, or the head's execution ARN is not a Standard execution ARN.
 */
export function nextExecution(head: Pick<SessionRecord, 'sessionId' | 'executionArn' | 'executions'>, reason: ContinuationTrigger['continuation']['reason']): NextExecution | ControlRefusal {
  const execution = head.executions + 1;
  try {
    const name = executionName(head.sessionId, execution);
    const stateMachineArn = stateMachineArnOf(head.executionArn);
    return {
      execution,
      name,
      stateMachineArn,
      executionArn: executionArnOf(stateMachineArn, name),
      // Key order is part of the input's identity: a repeated request must send the same text.
      input: { continuation: { sessionId: head.sessionId, parentExecutionArn: head.executionArn, reason, execution } },
    };
  } catch (err) {
    return refuse('Conflict', `session ${head.sessionId} cannot continue in execution ${execution}: ${(err as Error).message}`);
  }
}

/** Whether a value is a {@link ControlRefusal} (as opposed to a plan). */
export function isRefusal(value: object): value is ControlRefusal {
  return 'error' in value && typeof value.error === 'string' && value.error in CONTROL_REFUSAL_STATUS;
}

/**
 * A rollback to plan: the session's next branch, the step it was at, and the
 * checkpoints to abandon (`durable.ts` {@link rollbackPlan}).
 * Example: `{"branch":1,"toStep":2,"fromStep":4,"abandoned":["CP#000003#model","CP#000003#tool#toolu_06","CP#000004#model"]}`
 */
export interface RollbackDecision {
  readonly branch: number;
  readonly toStep: number;
  readonly fromStep: number;
  readonly abandoned: string[];
}

/**
 * Judges a rollback of `head` to `toStep`, given the session's live checkpoints.
 * @returns the plan; or `NotRollbackable` (409) for a cancelled session, or
 *   `InvalidRollback` (400, naming `toStep`) when `toStep` is negative or after the last model turn.
 */
export function decideRollback(head: SessionRecord, records: readonly CheckpointRecord[], toStep: number): RollbackDecision | ControlRefusal {
  if (head.status === 'CANCELLED') {
    return refuse('NotRollbackable', `session ${head.sessionId} is CANCELLED; a cancelled session cannot be rolled back`);
  }
  try {
    const { abandoned, fromStep } = rollbackPlan(head, records, toStep);
    return { branch: head.branch + 1, toStep, fromStep, abandoned };
  } catch (err) {
    const message = (err as Error).message;
    return refuse('InvalidRollback', message, [`toStep: ${message}`]);
  }
}

/**
 * The approvals a control request expires: those requested no later than `cutoff`
 * (ISO 8601; every one without a cutoff). Approvals requested later belong to an
 * execution that is already continuing the session, and stay pending.
 */
export function approvalsToExpire<A extends { approvalId: string; requestedAt: string }>(pending: readonly A[], cutoff?: string): string[] {
  return pending.filter((a) => cutoff === undefined || a.requestedAt <= cutoff).map((a) => a.approvalId);
}
