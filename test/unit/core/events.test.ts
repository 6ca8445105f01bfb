import { describe, expect, it } from 'vitest';
import { EVENT_SCHEMA_VERSION } from '../../../lambdas/core/constants';
import { EventLogRecordSchema, PUBLISHED_EVENT_TYPES, publishedDetail, toEventLogRecord, type CheckpointChange } from '../../../lambdas/core/contracts/events';
import { checkpointKey } from '../../../lambdas/core/contracts/checkpoint';
import { inputRecord, modelRecord, SESSION_ID, text, toolRecord, sessionHeadItem, sessionRecord } from '../support/records';
import intentV2 from '../../fixtures/checkpoints/v2/intent.json';
import executionV2 from '../../fixtures/checkpoints/v2/execution.json';
import rollbackV2 from '../../fixtures/checkpoints/v2/rollback.json';
import modelRefV2 from '../../fixtures/checkpoints/v2/model-ref.json';
import noticeV2 from '../../fixtures/checkpoints/v2/notice.json';
import toolBudgetNoticeV2 from '../../fixtures/checkpoints/v2/notice-tool-budget.json';
import pauseV2 from '../../fixtures/checkpoints/v2/pause.json';

const head = sessionHeadItem;

const omit = (item: Record<string, unknown>, key: string): Record<string, unknown> => Object.fromEntries(Object.entries(item).filter(([k]) => k !== key));

const change = (props: Partial<CheckpointChange> & Pick<CheckpointChange, 'eventName'>): CheckpointChange => ({
  eventId: 'c81e728d9d4c2f636f067f89cc14862c',
  sequenceNumber: '4421584500000000017450439091',
  approximateCreationEpochSeconds: 1733829006,
  ...props,
});

describe('toEventLogRecord', () => {
  it('maps a change to a valid event log row', () => {
    const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: head('RUNNING') }));
    expect(EventLogRecordSchema.parse(row)).toEqual(row);
    expect(row).toEqual({
      sessionId: SESSION_ID,
      seq: '0000000000004421584500000000017450439091',
      schemaVersion: EVENT_SCHEMA_VERSION,
      type: 'SessionStarted',
      at: '2024-12-10T11:10:06.000Z',
      eventId: 'c81e728d9d4c2f636f067f89cc14862c',
      change: 'INSERT',
      checkpointKey: 'SESSION',
      record: head('RUNNING'),
    });
  });

  it('pads the sequence number to 40 digits so that rows sort like the numbers', () => {
    const numbers = ['900000000000000000000000001', '4421584500000000017450439091', '10', '9', '1234567890123456789012345678901234567890'];
    const seqs = numbers.map((sequenceNumber) => toEventLogRecord(change({ eventName: 'INSERT', sequenceNumber, newImage: head('RUNNING') })).seq);
    for (const seq of seqs) expect(seq).toMatch(/^\d{40}$/);
    const byText = [...seqs].sort();
    const byNumber = [...numbers].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0)).map((n) => n.padStart(40, '0'));
    expect(byText).toEqual(byNumber);
  });

  it('takes `at` from the epoch seconds, fractions included', () => {
    expect(toEventLogRecord(change({ eventName: 'INSERT', approximateCreationEpochSeconds: 1733829006.25, newImage: head('RUNNING') })).at).toBe('2024-12-10T11:10:06.250Z');
  });

  describe('types', () => {
    it('names a session INSERT SessionStarted', () => {
      expect(toEventLogRecord(change({ eventName: 'INSERT', newImage: head('RUNNING') })).type).toBe('SessionStarted');
    });

    it('names a session MODIFY to SUCCEEDED SessionSucceeded', () => {
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: head('RUNNING', 1), newImage: head('SUCCEEDED', 2) })).type).toBe('SessionSucceeded');
    });

    it('names a session MODIFY to FAILED SessionFailed', () => {
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: head('RUNNING', 1), newImage: head('FAILED', 1) })).type).toBe('SessionFailed');
    });

    it('names a session MODIFY without a status change SessionUpdated', () => {
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: head('RUNNING', 1), newImage: head('RUNNING', 2) })).type).toBe('SessionUpdated');
    });

    it('names a repeated SUCCEEDED write (a replayed final turn) SessionUpdated, not a second SessionSucceeded', () => {
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: head('SUCCEEDED', 2), newImage: head('SUCCEEDED', 2) })).type).toBe('SessionUpdated');
    });

    // Regression: eventType() returned SessionStarted for every session
    // INSERT. When a run fails before Prepare created the head (invalid input, unrecognised trigger),
    // CheckpointStore.markFailed creates the head already FAILED: its one stream record is an
    // INSERT, so the event log gets SessionStarted and never a SessionFailed for that run.
    it('names a session head inserted already FAILED (markFailed before Prepare) SessionFailed', () => {
      expect(toEventLogRecord(change({ eventName: 'INSERT', newImage: head('FAILED') })).type).toBe('SessionFailed');
    });

    it.each([
      ['input', 'InputAccepted', inputRecord('q') as unknown as Record<string, unknown>],
      ['model', 'ModelTurnCompleted', modelRecord(1, [text('{}')]) as unknown as Record<string, unknown>],
      [
        'approval',
        'ApprovalRequested',
        { sessionId: SESSION_ID, sk: checkpointKey.approval(1, 'c1'), kind: 'approval', step: 1, approvalId: 'apv_1', callId: 'c1', tool: 'echo', input: {}, expiresAt: 'x' },
      ],
      ['tool', 'ToolCallCompleted', toolRecord(1, 'c1', '{}') as unknown as Record<string, unknown>],
    ])('names a %s checkpoint INSERT %s', (_kind, type, image) => {
      const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: image }));
      expect(row.type).toBe(type);
      expect(row.checkpointKey).toBe(image.sk);
    });

    it.each([
      ['intent', 'ToolCallIntended', intentV2 as Record<string, unknown>],
      ['execution', 'ExecutionStarted', executionV2 as Record<string, unknown>],
      ['rollback', 'SessionRolledBack', rollbackV2 as Record<string, unknown>],
    ])('names a version 2 %s record INSERT %s', (_kind, type, image) => {
      const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: image }));
      expect(row).toMatchObject({ type, checkpointKey: image.sk, record: image });
    });

    it('names a session MODIFY to CANCELLED SessionCancelled, and a later update of the cancelled head SessionUpdated', () => {
      const running = sessionRecord() as unknown as Record<string, unknown>;
      const cancelled = { ...running, status: 'CANCELLED', cancellation: { reason: 'wrong host', at: '2024-12-10T11:20:00.000Z' } };
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: running, newImage: cancelled })).type).toBe('SessionCancelled');
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: cancelled, newImage: cancelled })).type).toBe('SessionUpdated');
    });

    it.each([
      ['BudgetThresholdReached notice', 'BudgetThresholdReached', noticeV2 as Record<string, unknown>],
      ['ToolBudgetExceeded notice', 'ToolBudgetExceeded', toolBudgetNoticeV2 as Record<string, unknown>],
      ['pause', 'BudgetExhausted', pauseV2 as Record<string, unknown>],
    ])('names a %s INSERT %s', (_kind, type, image) => {
      const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: image }));
      expect(row).toMatchObject({ type, checkpointKey: image.sk, record: image });
    });

    it('names a session pausing on a budget SessionPaused, its raise SessionResumed, and its stop SessionStopped', () => {
      const running = sessionRecord({ budgets: { costUsd: 0.05 } }) as unknown as Record<string, unknown>;
      const pause = { budget: 'costUsd', used: 0.0506, limit: 0.05, at: '2024-12-10T11:20:00.000Z', approvalId: 'apv_1', step: 2 };
      const paused = { ...running, status: 'PAUSED_BUDGET', pause, pauses: 1 };
      const raised = { ...running, budgets: { costUsd: 1 }, pauses: 1, pausedSeconds: 60 };
      const stopped = { ...paused, status: 'STOPPED', stop: { reason: 'not worth more', by: 'alice', at: '2024-12-10T11:21:00.000Z' } };
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: running, newImage: paused })).type).toBe('SessionPaused');
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: paused, newImage: raised })).type).toBe('SessionResumed');
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: paused, newImage: stopped })).type).toBe('SessionStopped');
      // A raise of a run that was not paused changes no status.
      expect(toEventLogRecord(change({ eventName: 'MODIFY', oldImage: running, newImage: raised })).type).toBe('SessionUpdated');
    });

    it('names the copy a rollback makes of an abandoned checkpoint CheckpointAbandoned, whatever its kind', () => {
      const moved = { ...(modelRefV2 as Record<string, unknown>), sk: checkpointKey.abandoned(1, modelRefV2.sk), abandonedBy: 1, abandonedAt: '2026-11-20T09:15:02.101Z' };
      expect(toEventLogRecord(change({ eventName: 'INSERT', newImage: moved }))).toMatchObject({ type: 'CheckpointAbandoned', checkpointKey: 'ABANDONED#0001#CP#000004#model' });
      // Its live key is removed: that is a RecordRemoved.
      expect(toEventLogRecord(change({ eventName: 'REMOVE', oldImage: modelRefV2 as Record<string, unknown> })).type).toBe('RecordRemoved');
    });

    it('names a REMOVE RecordRemoved and records the old image', () => {
      const old = toolRecord(1, 'c1', '{}') as unknown as Record<string, unknown>;
      const row = toEventLogRecord(change({ eventName: 'REMOVE', oldImage: old }));
      expect(row).toMatchObject({ type: 'RecordRemoved', change: 'REMOVE', sessionId: SESSION_ID, checkpointKey: checkpointKey.tool(1, 'c1'), record: old });
    });
  });

  it('fails when the image has no sessionId', () => {
    const image = omit(head('RUNNING'), 'sessionId');
    expect(() => toEventLogRecord(change({ eventName: 'INSERT', newImage: image }))).toThrow(/no sessionId\/sk/);
  });

  it('fails when the image has no sk', () => {
    const image = omit(head('RUNNING'), 'sk');
    expect(() => toEventLogRecord(change({ eventName: 'INSERT', newImage: image }))).toThrow(/no sessionId\/sk/);
  });

  it('fails when there is no image at all', () => {
    expect(() => toEventLogRecord(change({ eventName: 'MODIFY' }))).toThrow(/no sessionId\/sk/);
  });

  it.each(['', '12a4', '-5', '1.5', '1'.repeat(41)])('fails when the sequence number is %j', (sequenceNumber) => {
    expect(() => toEventLogRecord(change({ eventName: 'INSERT', sequenceNumber, newImage: head('RUNNING') }))).toThrow(/is not decimal/);
  });

  it('fails when the checkpoint kind is unknown', () => {
    expect(() => toEventLogRecord(change({ eventName: 'INSERT', newImage: { sessionId: SESSION_ID, sk: 'CP#000001#x', kind: 'mystery' } }))).toThrow(/unknown checkpoint kind mystery/);
  });
});

describe('publishedDetail', () => {
  it('publishes the governance events operators act on, and no checkpoint of the loop itself', () => {
    expect([...PUBLISHED_EVENT_TYPES].sort()).toEqual([
      'BudgetExhausted',
      'BudgetThresholdReached',
      'CircuitClosed',
      'CircuitHalfOpened',
      'CircuitOpened',
      'ModelFallback',
      'SessionResumed',
      'SessionStopped',
      'ToolBudgetExceeded',
    ]);
  });

  it("is a notice's detail with the session, the agent, the step and the event id", () => {
    const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: noticeV2 as Record<string, unknown> }));
    expect(publishedDetail(row)).toEqual({
      eventId: 'c81e728d9d4c2f636f067f89cc14862c',
      sessionId: noticeV2.sessionId,
      agent: 'ssh-investigator',
      type: 'BudgetThresholdReached',
      step: 2,
      at: '2024-12-10T11:10:06.000Z',
      budget: 'costUsd',
      used: 0.041826,
      limit: 0.05,
    });
  });

  it("is a pause's budget standing, the budgets in force and the wait's approval id and expiry", () => {
    const row = toEventLogRecord(change({ eventName: 'INSERT', newImage: pauseV2 as Record<string, unknown> }));
    expect(publishedDetail(row)).toEqual({
      eventId: 'c81e728d9d4c2f636f067f89cc14862c',
      sessionId: pauseV2.sessionId,
      agent: 'ssh-investigator',
      type: 'BudgetExhausted',
      step: 2,
      at: '2024-12-10T11:10:06.000Z',
      budget: 'costUsd',
      used: 0.050631,
      limit: 0.05,
      budgets: { costUsd: 0.05, steps: 12 },
      approvalId: 'apv_1c8d6da4e9e8182137d12005',
      expiresAt: '2026-11-27T08:42:19.870Z',
    });
  });

  it("is a stopped head's status, budgets and stop", () => {
    const paused = { ...(sessionRecord({ budgets: { costUsd: 0.05 } }) as unknown as Record<string, unknown>), status: 'PAUSED_BUDGET' };
    const stop = { reason: 'not worth more', by: 'alice', at: '2024-12-10T11:21:00.000Z' };
    const row = toEventLogRecord(change({ eventName: 'MODIFY', oldImage: paused, newImage: { ...paused, status: 'STOPPED', stop } }));
    expect(publishedDetail(row)).toMatchObject({ type: 'SessionStopped', sessionId: SESSION_ID, agent: 'unit-agent', step: 0, status: 'STOPPED', budgets: { costUsd: 0.05 }, stop });
  });
});
