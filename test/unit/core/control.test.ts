import { describe, expect, it } from 'vitest';
import { checkpointKey, type CheckpointRecord, type SessionRecord } from '../../../lambdas/core/contracts/checkpoint';
import { approvalsToExpire, CONTROL_REFUSAL_STATUS, decideRollback, isRefusal, nextExecution } from '../../../lambdas/core/control';
import { ContinuationTriggerSchema } from '../../../lambdas/core/trigger';
import { SESSION_ID, sessionRecord } from '../support/records';

const EXEC_1 = `arn:aws:states:us-east-1:123456789012:execution:unit-agent:${SESSION_ID}`;

const head = (overrides: Partial<SessionRecord> = {}): SessionRecord =>
  sessionRecord({ status: 'FAILED', executionArn: EXEC_1, createdAt: '2024-12-10T11:00:00.000Z', updatedAt: '2024-12-10T11:30:00.000Z', step: 2, ...overrides });

const turn = (step: number, extra: string[] = []): CheckpointRecord[] => [
  { sessionId: SESSION_ID, sk: checkpointKey.model(step), kind: 'model', step } as CheckpointRecord,
  ...extra.map((callId) => ({ sessionId: SESSION_ID, sk: checkpointKey.tool(step, callId), kind: 'tool', step }) as CheckpointRecord),
];

describe('nextExecution', () => {
  it('names execution n+1 on the head\'s state machine, with a continuation its Prepare recognises', () => {
    const next = nextExecution(head(), 'resume');

    expect(next).toEqual({
      execution: 2,
      name: `${SESSION_ID}-x2`,
      stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:unit-agent',
      executionArn: `arn:aws:states:us-east-1:123456789012:execution:unit-agent:${SESSION_ID}-x2`,
      input: { continuation: { sessionId: SESSION_ID, parentExecutionArn: EXEC_1, reason: 'resume', execution: 2 } },
    });
    if (isRefusal(next)) throw new Error('refused');
    expect(ContinuationTriggerSchema.parse(next.input)).toEqual(next.input);
  });

  it('gives the same input text for the same head and reason (a repeated request is recognised by it)', () => {
    const a = nextExecution(head({ executions: 4 }), 'rollback');
    const b = nextExecution(structuredClone(head({ executions: 4 })), 'rollback');
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('refuses with Conflict when the session id is too long to name one more execution', () => {
    const next = nextExecution(head({ sessionId: 'a'.repeat(79) }), 'resume');
    expect(isRefusal(next) && next.error).toBe('Conflict');
  });

  it('refuses with Conflict when the head\'s execution ARN is not one', () => {
    const next = nextExecution(head({ executionArn: 'not-an-arn' }), 'resume');
    expect(isRefusal(next) && next.message).toContain('not an execution ARN');
  });
});

describe('decideRollback', () => {
  const records = [...turn(1, ['a']), ...turn(2, ['b', 'c']), ...turn(3)];

  it('plans the next branch, the step the session was at, and the later checkpoints', () => {
    expect(decideRollback(head({ branch: 1 }), records, 1)).toEqual({
      branch: 2,
      toStep: 1,
      fromStep: 3,
      abandoned: [checkpointKey.model(2), checkpointKey.tool(2, 'b'), checkpointKey.tool(2, 'c'), checkpointKey.model(3)],
    });
  });

  it('refuses a cancelled session with NotRollbackable (409)', () => {
    const decision = decideRollback(head({ status: 'CANCELLED' }), records, 1);
    expect(decision).toMatchObject({ error: 'NotRollbackable' });
    expect(CONTROL_REFUSAL_STATUS.NotRollbackable).toBe(409);
  });

  it('refuses a step after the last model turn with InvalidRollback (400), naming toStep', () => {
    expect(decideRollback(head(), records, 4)).toEqual({
      error: 'InvalidRollback',
      message: "toStep 4 is after the session's last model turn (3)",
      issues: ["toStep: toStep 4 is after the session's last model turn (3)"],
    });
    expect(CONTROL_REFUSAL_STATUS.InvalidRollback).toBe(400);
  });

  it('refuses a negative step with InvalidRollback', () => {
    expect(decideRollback(head(), records, -1)).toMatchObject({ error: 'InvalidRollback', issues: [expect.stringMatching(/^toStep: /)] });
  });
});

describe('approvalsToExpire', () => {
  const pending = [
    { approvalId: 'apv_a', requestedAt: '2024-12-10T11:00:00.000Z' },
    { approvalId: 'apv_b', requestedAt: '2024-12-10T11:30:00.000Z' },
    { approvalId: 'apv_c', requestedAt: '2024-12-10T11:45:00.000Z' },
  ];

  it('expires every pending approval without a cutoff', () => {
    expect(approvalsToExpire(pending)).toEqual(['apv_a', 'apv_b', 'apv_c']);
  });

  it('keeps the approvals requested after the cutoff (a continuation already running asked for them)', () => {
    expect(approvalsToExpire(pending, '2024-12-10T11:30:00.000Z')).toEqual(['apv_a', 'apv_b']);
  });
});
