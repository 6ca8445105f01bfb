/**
 * Durable execution decisions: where a continuation picks a session up, which
 * sessions may be taken over, resumed, cancelled or rolled back, and which tool
 * results fit the agent's context.
 */
import { describe, expect, it } from 'vitest';
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint, type SessionRecord } from '../../../lambdas/core/contracts/checkpoint';
import {
  NOT_RESUMABLE_ERRORS,
  resumePoint,
  rollbackPlan,
  takeoverStatuses,
  whyNotCancellable,
  whyNotResumable,
} from '../../../lambdas/core/durable';
import { toolResultBytes } from '../../../lambdas/core/context';
import {
  CREATED_AT,
  EXECUTION_ARN,
  inputRecord,
  modelRecord,
  SESSION_ID,
  sessionRecord,
  text,
  toolRecord,
  toolRecordByRef,
  toolUse,
} from '../support/records';

const final = (step: number): ModelCheckpoint => modelRecord(step, [text('{"answer":"x","confidence":1}')], { outcome: 'final' });
const tools = (step: number, ...callIds: string[]): ModelCheckpoint => modelRecord(step, callIds.map((id) => toolUse(id, 'echo')));
const repair = (step: number): ModelCheckpoint => modelRecord(step, [text('not json')], { outcome: 'repair', validationErrors: ['(root): not JSON'] });
const failedTurn = (step: number): ModelCheckpoint => modelRecord(step, [text('not json')], { outcome: 'failed', validationErrors: ['(root): not JSON'] });

const failedWith = (error: string): SessionRecord => sessionRecord({ status: 'FAILED', failure: { error, cause: 'why', failedState: 'ModelTurn' } });

describe('resumePoint', () => {
  it('is 0 without a model turn (the first turn)', () => {
    expect(resumePoint([])).toBe(0);
    expect(resumePoint([inputRecord('q')])).toBe(0);
  });

  it('is one before the last turn when it asked for tools: the turn is replayed and its missing calls run', () => {
    expect(resumePoint([inputRecord('q'), tools(1, 'c1'), toolRecord(1, 'c1', '{}'), tools(2, 'c2')])).toBe(1);
  });

  it('is one before the last turn when it gave the final answer: the replay marks the session SUCCEEDED', () => {
    expect(resumePoint([inputRecord('q'), tools(1, 'c1'), toolRecord(1, 'c1', '{}'), final(2)])).toBe(1);
  });

  it('is the last turn when it was sent back for repair: the next turn answers it', () => {
    expect(resumePoint([inputRecord('q'), repair(1)])).toBe(1);
    expect(resumePoint([inputRecord('q'), tools(1, 'c1'), toolRecord(1, 'c1', '{}'), repair(2)])).toBe(2);
  });

  it('is one before a failed last turn (the replay fails the same way)', () => {
    expect(resumePoint([inputRecord('q'), repair(1), failedTurn(2)])).toBe(1);
  });

  it('takes the turn with the highest step, whatever the order of the records', () => {
    expect(resumePoint([tools(3, 'c3'), inputRecord('q'), tools(10, 'c10'), repair(2), toolRecord(10, 'c10', '{}')])).toBe(9);
  });
});

describe('takeoverStatuses', () => {
  it('lets a continue-as-new take a RUNNING session, a resume a FAILED one, a rollback any but a CANCELLED one, and a new run none', () => {
    expect(takeoverStatuses('continue-as-new')).toEqual(['RUNNING']);
    expect(takeoverStatuses('resume')).toEqual(['FAILED']);
    expect([...takeoverStatuses('rollback')].sort()).toEqual(['FAILED', 'RUNNING', 'SUCCEEDED']);
    expect(takeoverStatuses('start')).toEqual([]);
  });

  it('never takes over a CANCELLED session', () => {
    for (const reason of ['start', 'continue-as-new', 'resume', 'rollback'] as const) expect(takeoverStatuses(reason), reason).not.toContain('CANCELLED');
  });
});

describe('whyNotResumable', () => {
  it('is undefined for a session that failed with a fault', () => {
    expect(whyNotResumable(failedWith('States.TaskFailed'))).toBeUndefined();
    expect(whyNotResumable(failedWith('States.Timeout'))).toBeUndefined();
    expect(whyNotResumable(sessionRecord({ status: 'FAILED' }))).toBeUndefined();
  });

  it.each(['RUNNING', 'SUCCEEDED', 'CANCELLED'] as const)('refuses a %s session: only FAILED sessions can be resumed', (status) => {
    expect(whyNotResumable(sessionRecord({ status }))).toBe(`session ${SESSION_ID} is ${status}; only FAILED sessions can be resumed`);
  });

  it.each([...NOT_RESUMABLE_ERRORS])('refuses a session that failed with %s, an outcome of the run, and says to roll back instead', (error) => {
    const why = whyNotResumable(failedWith(error));
    expect(why).toContain(`failed with ${error}, an outcome of the run rather than a fault`);
    expect(why).toContain('roll back to an earlier step instead');
  });

  it('lists the outcomes the loop returns as values: invalid input, answers the pipeline or a reviewer refused, the step and context limits, the sub-agent depth, a budget not raised in time, an unknown outcome', () => {
    expect([...NOT_RESUMABLE_ERRORS].sort()).toEqual([
      'BudgetExhausted',
      'ContextLimitExceeded',
      'InvalidInput',
      'LowConfidence',
      'OutputRejected',
      'OutputRuleFailed',
      'OutputValidationFailed',
      'StepLimitReached',
      'SubAgentDepthExceeded',
      'UnexpectedOutcome',
    ]);
  });

  // ContextLimitExceeded is returned by the model turn as a value (outcome `failed`), like
  // OutputValidationFailed: the conversation is rebuilt from the same checkpoints on a resume,
  // so the resumed run would exceed the same limit again.
  it('refuses a session that failed with ContextLimitExceeded (the same checkpoints exceed the same limit again)', () => {
    const why = whyNotResumable(failedWith('ContextLimitExceeded'));
    expect(why).toContain('failed with ContextLimitExceeded, an outcome of the run rather than a fault');
    expect(why).toContain('roll back to an earlier step instead');
  });
});

describe('whyNotCancellable', () => {
  it('is undefined for a RUNNING session (waiting for an approval included)', () => {
    expect(whyNotCancellable(sessionRecord())).toBeUndefined();
  });

  it.each(['SUCCEEDED', 'FAILED', 'CANCELLED'] as const)('refuses a %s session', (status) => {
    expect(whyNotCancellable(sessionRecord({ status }))).toBe(`session ${SESSION_ID} is ${status}; only RUNNING sessions can be cancelled`);
  });
});

describe('rollbackPlan', () => {
  /** Four turns: tools at 1 and 2 (2 behind an approval), a non-idempotent call at 3, the final answer at 4. */
  const records = (): CheckpointRecord[] => [
    inputRecord('q'),
    tools(1, 'c1'),
    toolRecord(1, 'c1', '{}'),
    tools(2, 'c2'),
    {
      sessionId: SESSION_ID,
      sk: checkpointKey.approval(2, 'c2'),
      schemaVersion: 2,
      createdAt: CREATED_AT,
      kind: 'approval',
      step: 2,
      approvalId: 'apv_1',
      callId: 'c2',
      tool: 'echo',
      input: {},
      expiresAt: CREATED_AT,
    },
    toolRecord(2, 'c2', '{}'),
    tools(3, 'c3'),
    {
      sessionId: SESSION_ID,
      sk: checkpointKey.intent(3, 'c3'),
      schemaVersion: 2,
      createdAt: CREATED_AT,
      kind: 'intent',
      step: 3,
      callId: 'c3',
      tool: 'echo',
      idempotencyKey: 'tc_0',
      executionArn: EXECUTION_ARN,
    },
    toolRecord(3, 'c3', '{}'),
    final(4),
  ];

  it('abandons every checkpoint of the later steps (model turns, approvals, intents, tool calls), and says where the session was', () => {
    expect(rollbackPlan(sessionRecord({ status: 'SUCCEEDED', step: 4 }), records(), 2)).toEqual({
      abandoned: [checkpointKey.model(3), checkpointKey.intent(3, 'c3'), checkpointKey.tool(3, 'c3'), checkpointKey.model(4)],
      fromStep: 4,
    });
  });

  it('keeps the input when rolling back to the start, and abandons nothing when rolling back to the last turn', () => {
    const toStart = rollbackPlan(sessionRecord({ status: 'FAILED' }), records(), 0);
    expect(toStart.abandoned).toHaveLength(records().length - 1);
    expect(toStart.abandoned).not.toContain(checkpointKey.input());
    expect(rollbackPlan(sessionRecord(), records(), 4)).toEqual({ abandoned: [], fromStep: 4 });
  });

  it('abandons nothing and starts at 0 for a session without model turns', () => {
    expect(rollbackPlan(sessionRecord(), [inputRecord('q')], 0)).toEqual({ abandoned: [], fromStep: 0 });
  });

  it('never abandons what lies outside the live chain (the head, execution records)', () => {
    const head = sessionRecord();
    const execution: CheckpointRecord = {
      sessionId: SESSION_ID,
      sk: checkpointKey.execution(2),
      schemaVersion: 2,
      createdAt: CREATED_AT,
      kind: 'execution',
      execution: 2,
      executionArn: EXECUTION_ARN,
      reason: 'continue-as-new',
      step: 3,
    };
    expect(rollbackPlan(head, [head, execution, ...records()], 2).abandoned).not.toContain(checkpointKey.execution(2));
  });

  it('fails when the session is CANCELLED', () => {
    expect(() => rollbackPlan(sessionRecord({ status: 'CANCELLED' }), records(), 2)).toThrow(`session ${SESSION_ID} is CANCELLED; a cancelled session cannot be rolled back`);
  });

  it.each([-1, 1.5, Number.NaN])('fails when toStep is %s, naming it', (toStep) => {
    expect(() => rollbackPlan(sessionRecord(), records(), toStep)).toThrow(`toStep must be a non-negative integer, got ${toStep}`);
  });

  it("fails when toStep is after the session's last model turn", () => {
    expect(() => rollbackPlan(sessionRecord(), records(), 5)).toThrow("toStep 5 is after the session's last model turn (4)");
  });
});

describe('toolResultBytes', () => {
  it('is the UTF-8 size of an inline result, or the size a reference records', () => {
    expect(toolResultBytes(toolRecord(1, 'c1', '{"a":"é"}'))).toBe(10);
    expect(toolResultBytes(toolRecordByRef(1, 'c1', { bucket: 'b', key: 'k', bytes: 51_234, sha256: '0'.repeat(64) }))).toBe(51_234);
  });
});
