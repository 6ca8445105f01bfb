import { describe, expect, it } from 'vitest';
import { nextApprovalStep } from '../../../lambdas/core/approvals';

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
