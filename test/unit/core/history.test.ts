/**
 * Execution history accounting: the events each state writes, the worst case of
 * one more turn, when a run continues as a new execution, and the names and ARNs
 * of a session's executions.
 */
import { describe, expect, it } from 'vitest';
import { MAX_TOOL_CALLS_PER_TURN, STANDARD_EXECUTION_HISTORY_LIMIT, TASK_RETRY } from '../../../lambdas/core/constants';
import {
  END_RESERVE_EVENTS,
  executionArnOf,
  executionName,
  HISTORY_EVENTS,
  LOOP_WAIT_EVENTS,
  maxToolRetries,
  minimumHistoryEventLimit,
  modelTurnEvents,
  runToolsEvents,
  shouldContinueAsNew,
  startEvents,
  stateMachineArnOf,
  taskEvents,
  toolIterationEvents,
  worstTurnEvents,
} from '../../../lambdas/core/history';

const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ssh-investigator';
const EXECUTION_ARN = 'arn:aws:states:us-east-1:123456789012:execution:ssh-investigator:ses_3bee9e02dc04bca260d4a590581c63dc';

describe('history events per state', () => {
  it('counts the events Step Functions writes for each kind of state', () => {
    expect(HISTORY_EVENTS).toEqual({
      // ExecutionStarted, ExecutionSucceeded/Failed
      execution: 2,
      // TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
      task: 5,
      // TaskFailed, TaskScheduled, TaskStarted
      taskRetry: 3,
      // ... and TaskSubmitted
      waitForTaskToken: 6,
      choice: 2,
      pass: 2,
      // MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited
      map: 4,
      // MapIterationStarted, MapIterationSucceeded
      mapIteration: 2,
    });
  });

  it('adds 3 events per retry of a task, never fewer than one attempt', () => {
    expect(taskEvents(0)).toBe(5);
    expect(taskEvents(1)).toBe(8);
    expect(taskEvents(3)).toBe(14);
    expect(taskEvents(-1)).toBe(5);
    expect(taskEvents(0, 'waitForTaskToken')).toBe(6);
    expect(taskEvents(2, 'waitForTaskToken')).toBe(12);
  });

  it('counts the start of an execution: ExecutionStarted, Prepare with its retries, Prepared?', () => {
    expect(startEvents(0)).toBe(8);
    expect(startEvents(TASK_RETRY.maxAttempts)).toBe(17);
  });

  it('counts a model turn with its Route', () => {
    expect(modelTurnEvents(0)).toBe(7);
    expect(modelTurnEvents(2)).toBe(13);
  });

  it('counts a tool iteration with its approval wait, AfterApproval and the timeout Pass when there was one', () => {
    // Iteration markers 2 + Dispatch 2 + RunTool-<tool> 5.
    expect(toolIterationEvents({ approval: 'not_required', retries: 0 })).toBe(9);
    // ... + RequestApproval 6 + AfterApproval 2.
    expect(toolIterationEvents({ approval: 'approved', retries: 0 })).toBe(17);
    expect(toolIterationEvents({ approval: 'rejected', retries: 0 })).toBe(17);
    // ... + ApprovalTimedOut 2.
    expect(toolIterationEvents({ approval: 'timed_out', retries: 0 })).toBe(19);
    expect(toolIterationEvents({ approval: 'not_required', retries: 2 })).toBe(15);
  });

  it("counts a wait of the loop itself (PauseForBudget and Raised?, or ReviewOutput and ReviewTimedOut) as a wait and a 2-event state", () => {
    expect(LOOP_WAIT_EVENTS).toBe(6 + 2);
  });

  it('counts the Map and its iterations', () => {
    expect(runToolsEvents([])).toBe(4);
    expect(runToolsEvents([9])).toBe(13);
    expect(runToolsEvents([9, 17, 19])).toBe(49);
  });

  it('counts a turn with one tool call and no retries as 20 events', () => {
    expect(modelTurnEvents(0) + runToolsEvents([toolIterationEvents({ approval: 'not_required', retries: 0 })])).toBe(20);
  });
});

describe('worstTurnEvents', () => {
  it(`is a model turn retried to the limit and ${MAX_TOOL_CALLS_PER_TURN} calls, each approved after a timeout with every task retried to the limit`, () => {
    const retries = TASK_RETRY.maxAttempts;
    // Dispatch 2 + iteration markers 2 + RunTool with retries 14 + the wait 6 with its retries 9 + ApprovalTimedOut 2 + AfterApproval 2.
    const iteration = 37;
    expect(toolIterationEvents({ approval: 'timed_out', retries }) + 3 * retries).toBe(iteration);
    expect(worstTurnEvents()).toBe(modelTurnEvents(retries) + 4 + MAX_TOOL_CALLS_PER_TURN * iteration);
    // ModelTurn with retries 14 + Route 2 + the Map 4 + 16 iterations of 37.
    expect(worstTurnEvents()).toBe(16 + 4 + 16 * 37);
    expect(worstTurnEvents()).toBe(612);
  });

  it('scales with the calls one turn may make', () => {
    expect(worstTurnEvents(0)).toBe(16 + 4);
    expect(worstTurnEvents(1)).toBe(16 + 4 + 37);
  });

  it("counts a tool's declared retries when they exceed the default: 3 events per retry of its Task", () => {
    // One call whose Task retries 9 times instead of 3: 6 more retries of 3 events each.
    expect(worstTurnEvents(1, 9)).toBe(16 + 4 + 37 + 6 * 3);
    expect(minimumHistoryEventLimit(undefined, 9)).toBe(minimumHistoryEventLimit() + MAX_TOOL_CALLS_PER_TURN * 6 * 3);
  });

  it('takes the most retries any tool declares, at least the default', () => {
    const tool = (maxAttempts: number) => ({ retry: { maxAttempts } });
    expect(maxToolRetries([])).toBe(TASK_RETRY.maxAttempts);
    expect(maxToolRetries([tool(2), tool(4)])).toBe(TASK_RETRY.maxAttempts);
    expect(maxToolRetries([tool(2), tool(10)])).toBe(9);
  });

  it('reserves the events of the longest way an execution can end (the failure path with its retries)', () => {
    // A Pass, RecordFailure and the direct DLQ send with 5 retries each, the Fail state, ExecutionFailed.
    expect(END_RESERVE_EVENTS).toBe(2 + 20 + 20 + 2 + 1);
  });
});

describe('shouldContinueAsNew', () => {
  const room = worstTurnEvents() + END_RESERVE_EVENTS;

  it('is false while one more worst-case turn and the end still fit under the 25,000-event quota, true from there', () => {
    expect(STANDARD_EXECUTION_HISTORY_LIMIT).toBe(25_000);
    expect(shouldContinueAsNew(25_000 - room - 1)).toBe(false);
    expect(shouldContinueAsNew(25_000 - room)).toBe(true);
    // room = 612 + 45 = 657; 25,000 - 657 = 24,343.
    expect(shouldContinueAsNew(24_342)).toBe(false);
    expect(shouldContinueAsNew(24_343)).toBe(true);
  });

  it('takes a lower limit', () => {
    expect(shouldContinueAsNew(1000 - room - 1, 1000)).toBe(false);
    expect(shouldContinueAsNew(1000 - room, 1000)).toBe(true);
  });

  it('leaves more room for turns that may make fewer calls', () => {
    // room = 57 + 45 = 102; 25,000 - 102 = 24,898.
    expect(shouldContinueAsNew(24_342, 25_000, 1)).toBe(false);
    expect(shouldContinueAsNew(24_897, 25_000, 1)).toBe(false);
    expect(shouldContinueAsNew(24_898, 25_000, 1)).toBe(true);
  });

  it('lets about 1,200 one-tool turns run in one execution under the quota', () => {
    let events = startEvents(0);
    let turns = 0;
    while (!shouldContinueAsNew(events)) {
      events += 20;
      turns += 1;
    }
    expect(turns).toBe(Math.ceil((25_000 - room - startEvents(0)) / 20));
    expect(turns).toBeGreaterThan(1200);
  });
});

describe('minimumHistoryEventLimit', () => {
  it('is the start with retries, one worst-case turn and the end, plus one', () => {
    expect(minimumHistoryEventLimit()).toBe(startEvents(TASK_RETRY.maxAttempts) + worstTurnEvents() + END_RESERVE_EVENTS + 1);
    // 17 + 612 + 45 + 1.
    expect(minimumHistoryEventLimit()).toBe(675);
    expect(minimumHistoryEventLimit(1)).toBe(17 + 57 + 45 + 1);
  });

  it('lets every execution take its first turn, even after Prepare was retried to the limit', () => {
    const limit = minimumHistoryEventLimit();
    expect(shouldContinueAsNew(startEvents(TASK_RETRY.maxAttempts), limit)).toBe(false);
    expect(shouldContinueAsNew(startEvents(TASK_RETRY.maxAttempts), limit - 1)).toBe(true);
  });
});

describe('executionName', () => {
  const session = 'ses_3bee9e02dc04bca260d4a590581c63dc';

  it('is the session id for the first execution, then <session>-x<n>', () => {
    expect(executionName(session, 1)).toBe(session);
    expect(executionName(session, 2)).toBe(`${session}-x2`);
    expect(executionName(session, 37)).toBe(`${session}-x37`);
  });

  it('accepts names of exactly 80 characters', () => {
    expect(executionName('s'.repeat(80), 1)).toHaveLength(80);
    expect(executionName('s'.repeat(72), 999_999)).toHaveLength(80);
  });

  it('fails when the name would be longer than 80 characters, naming it', () => {
    expect(() => executionName('s'.repeat(72), 1_000_000)).toThrow(`execution name ${'s'.repeat(72)}-x1000000 is longer than 80 characters`);
    expect(() => executionName('s'.repeat(80), 2)).toThrow(/is longer than 80 characters/);
  });
});

describe('stateMachineArnOf / executionArnOf', () => {
  it('derives the state machine of an execution', () => {
    expect(stateMachineArnOf(EXECUTION_ARN)).toBe(STATE_MACHINE_ARN);
    expect(stateMachineArnOf('arn:aws-cn:states:cn-north-1:123456789012:execution:agent:run-1')).toBe('arn:aws-cn:states:cn-north-1:123456789012:stateMachine:agent');
  });

  it('names an execution of a state machine', () => {
    expect(executionArnOf(STATE_MACHINE_ARN, 'ses_a-x2')).toBe('arn:aws:states:us-east-1:123456789012:execution:ssh-investigator:ses_a-x2');
  });

  it('round-trips: the next execution of a session lives on the same state machine', () => {
    const name = EXECUTION_ARN.split(':').at(-1) ?? '';
    expect(executionArnOf(stateMachineArnOf(EXECUTION_ARN), name)).toBe(EXECUTION_ARN);
    expect(stateMachineArnOf(executionArnOf(STATE_MACHINE_ARN, executionName(name, 2)))).toBe(STATE_MACHINE_ARN);
  });

  it.each([
    ['a state machine ARN', STATE_MACHINE_ARN],
    ['an Express execution ARN', 'arn:aws:states:us-east-1:123456789012:express:agent:run-1:6f1f5f3e'],
    ['another service', 'arn:aws:lambda:us-east-1:123456789012:execution:agent:run-1'],
    ['no ARN', 'run-1'],
  ])('stateMachineArnOf fails on %s', (_what, arn) => {
    expect(() => stateMachineArnOf(arn)).toThrow(`not an execution ARN: ${arn}`);
  });

  it.each([
    ['an execution ARN', EXECUTION_ARN],
    ['an activity ARN', 'arn:aws:states:us-east-1:123456789012:activity:approve'],
  ])('executionArnOf fails on %s', (_what, arn) => {
    expect(() => executionArnOf(arn, 'x')).toThrow(`not a state machine ARN: ${arn}`);
  });
});
