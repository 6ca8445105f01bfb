import { describe, expect, it } from 'vitest';
import { nextApprovalStep, outputReviewCallId, reviewAnswer } from '../../../lambdas/core/approvals';
import { WaitDecisionSchema } from '../../../lambdas/core/contracts/loop';

const NOW = '2026-11-21T10:00:00.000Z';
const approval = (over: Partial<Parameters<typeof nextApprovalStep>[0]> = {}): Parameters<typeof nextApprovalStep>[0] => ({
  approvalId: 'apv_1',
  status: 'pending',
  expiresAt: '2026-11-21T11:00:00.000Z',
  ...over,
});

describe('nextApprovalStep', () => {
  it('records a decision on a pending approval in time', () => {
    expect(nextApprovalStep(approval(), 'approved', NOW)).toEqual({ action: 'record' });
  });

  it('fails when the pending approval has expired', () => {
    expect(nextApprovalStep(approval({ expiresAt: NOW }), 'approved', NOW)).toMatchObject({ action: 'refuse', error: 'ApprovalExpired' });
  });

  it('delivers a recorded decision that has not reached the run', () => {
    expect(nextApprovalStep(approval({ status: 'rejected' }), 'rejected', NOW)).toEqual({ action: 'deliver' });
  });

  it('answers the same decision again once it reached the run', () => {
    expect(nextApprovalStep(approval({ status: 'approved', deliveredAt: NOW }), 'approved', NOW)).toEqual({ action: 'answer' });
  });

  it('fails when another decision was recorded, naming it', () => {
    expect(nextApprovalStep(approval({ status: 'approved' }), 'rejected', NOW)).toEqual({
      action: 'refuse',
      error: 'ApprovalAlreadyDecided',
      message: 'approval apv_1 was already approved',
    });
  });

  it('fails when the decision came after the run stopped waiting', () => {
    expect(nextApprovalStep(approval({ status: 'expired' }), 'approved', NOW)).toMatchObject({ action: 'refuse', error: 'ApprovalExpired' });
  });
});

describe('reviewAnswer', () => {
  /** An output review's approval record as the approval store keeps it (decide stores an absent reason as ''). */
  const review = (over: Partial<Parameters<typeof reviewAnswer>[0]> = {}): Parameters<typeof reviewAnswer>[0] => ({
    approvalId: 'apv_review',
    status: 'pending',
    ...over,
  });

  it.each(['approved', 'rejected'] as const)('answers %s with the approval id, the reason and who decided', (status) => {
    const answer = reviewAnswer(review({ status, reason: 'checked the log', decidedBy: 'alice' }));
    expect(answer).toEqual({ decision: status, approvalId: 'apv_review', reason: 'checked the log', decidedBy: 'alice' });
    expect(WaitDecisionSchema.parse(answer)).toEqual(answer);
  });

  it('answers timed_out for an expired review: the run stopped waiting before the answer reached it', () => {
    expect(reviewAnswer(review({ status: 'expired', reason: 'too late', decidedBy: 'bob' }))).toEqual({ decision: 'timed_out', approvalId: 'apv_review', reason: 'too late', decidedBy: 'bob' });
  });

  it('answers nothing while the review is pending', () => {
    expect(reviewAnswer(review())).toBeUndefined();
  });

  it('leaves out the empty reason a decision without one is stored with', () => {
    const answer = reviewAnswer(review({ status: 'approved', reason: '', decidedBy: 'alice' }));
    expect(answer?.reason).toBeUndefined();
    expect(answer).toMatchObject({ decision: 'approved', decidedBy: 'alice' });
  });

  it("keeps the call id review approval ids derive from ('output') on branch 0: records already stored are still found", () => {
    expect(outputReviewCallId(0)).toBe('output');
  });

  it('gives each branch after a rollback its own review call id, so an abandoned branch\'s answer is never reused', () => {
    expect(outputReviewCallId(1)).toBe('output@b1');
    expect(new Set([0, 1, 2].map(outputReviewCallId)).size).toBe(3);
  });
});
