/** The rules of deciding an approval, pure: what a decision request should do next. */
import type { ApprovalRecord } from './contracts/api';
import type { WaitDecision } from './contracts/loop';

/** The tool name approval records of budget pauses carry: `budget:<budget>` (answered by raise-budget and stop, never by POST /approvals). */
export const BUDGET_PAUSE_TOOL_PREFIX = 'budget:';
/** The tool name approval records of output reviews carry. */
export const OUTPUT_REVIEW_TOOL = 'output_review';
/**
 * The call id an output review's approval id derives from (with the session and the
 * model turn): `output`, and `output@b<branch>` after a rollback, so that a review of
 * the new branch never finds the answer given on an abandoned one.
 */
export function outputReviewCallId(branch: number): string {
  return branch > 0 ? `output@b${branch}` : 'output';
}

/**
 * A recorded approval as the answer to an output review: approved, rejected, or
 * `timed_out` when it expired (the run stopped waiting); undefined while pending.
 */
export function reviewAnswer(record: Pick<ApprovalRecord, 'approvalId' | 'status' | 'reason' | 'decidedBy'>): WaitDecision | undefined {
  const common = { approvalId: record.approvalId, reason: record.reason || undefined, decidedBy: record.decidedBy };
  switch (record.status) {
    case 'approved':
    case 'rejected':
      return { decision: record.status, ...common };
    case 'expired':
      return { decision: 'timed_out', ...common };
    default:
      return undefined;
  }
}

/** What to do with a decision request, given the approval as stored. */
export type ApprovalStep =
  /** Answer 409 with this error; nothing changes. */
  | { action: 'refuse'; error: 'ApprovalExpired' | 'ApprovalAlreadyDecided'; message: string }
  /** The approval is pending and in time: record the decision (then ask again). */
  | { action: 'record' }
  /** The same decision was recorded but has not reached the run: send it. */
  | { action: 'deliver' }
  /** The same decision already reached the run: answer 200 again. */
  | { action: 'answer' };

/**
 * Decides the next step of a decision request.
 * @param record the approval as stored
 * @param wanted the requested decision
 * @param now ISO 8601 time of the request (compared with `expiresAt`)
 */
export function nextApprovalStep(
  record: Pick<ApprovalRecord, 'approvalId' | 'status' | 'expiresAt' | 'deliveredAt'>,
  wanted: 'approved' | 'rejected',
  now: string,
): ApprovalStep {
  const id = record.approvalId;
  switch (record.status) {
    case 'pending':
      return record.expiresAt <= now
        ? { action: 'refuse', error: 'ApprovalExpired', message: `approval ${id} expired at ${record.expiresAt}` }
        : { action: 'record' };
    case 'expired':
      return { action: 'refuse', error: 'ApprovalExpired', message: `approval ${id} came after the run stopped waiting` };
    default:
      if (record.status !== wanted) return { action: 'refuse', error: 'ApprovalAlreadyDecided', message: `approval ${id} was already ${record.status}` };
      return record.deliveredAt ? { action: 'answer' } : { action: 'deliver' };
  }
}
