/**
 * The agent loop as deployed: each agent's DefinitionString parsed back into ASL
 * (tokens rendered as `${LogicalId.Attr}`), state by state; then the AgentLoop
 * fragment on its own, through `toStateJson()`.
 */
import '../../lib/text-assets';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { APPROVAL_TIMED_OUT_REASON, DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS, TASK_RETRY, TASK_TIMEOUT_MARGIN_SECONDS } from '../../lambdas/core/constants';
import type { AgentDefinition, ToolDefinition, ToolRetry } from '../../lambdas/core/define';
import { TERMINAL_ERROR_NAMES } from '../../lambdas/core/errors';
import type { Agent } from '../../lib/constructs/agent';
import { AgentLoop, STATE } from '../../statemachines/agent-loop';
import { AGENT_DEFINITIONS, synthRuntime, type RuntimeUnderTest } from './support/stack';
import { SLOW_LOOKUP_RETRY } from './support/tuned-agent';
import {
  arnOf,
  findState,
  logicalIdOf,
  must,
  parseDefinition,
  refOf,
  resource,
  transitionsOf,
  type AslMachine,
  type AslRetrier,
  type AslState,
} from './support/template';

const LAMBDA_INVOKE = 'arn:${AWS::Partition}:states:::lambda:invoke';
const LAMBDA_INVOKE_WAIT = 'arn:${AWS::Partition}:states:::lambda:invoke.waitForTaskToken';
/** The transient-fault retrier of every step task (TASK_RETRY). */
const FAULT_RETRIER: AslRetrier = { ErrorEquals: ['States.ALL'], IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 2, MaxDelaySeconds: 20, JitterStrategy: 'FULL' };
const TERMINAL_RETRIER: AslRetrier = { ErrorEquals: [...TERMINAL_ERROR_NAMES], MaxAttempts: 0 };
/** The locked-idempotency-key retrier of the steps whose calls run under Powertools idempotency (IN_PROGRESS_RETRY). */
const IN_PROGRESS_RETRIER: AslRetrier = {
  ErrorEquals: ['IdempotencyAlreadyInProgressError'],
  IntervalSeconds: 15,
  MaxAttempts: 5,
  BackoffRate: 2,
  MaxDelaySeconds: 120,
  JitterStrategy: 'FULL',
};

let rt: RuntimeUnderTest;
const machines = new Map<string, AslMachine>();
beforeAll(() => {
  rt = synthRuntime();
  for (const agent of rt.stack.agents) {
    const props = resource(rt.template, logicalIdOf(agent.stateMachine), 'AWS::StepFunctions::StateMachine').Properties;
    machines.set(agent.name, parseDefinition(props.DefinitionString));
  }
});

/** Each agent with its definition and parsed state machine. */
const each = (): { agent: Agent; def: AgentDefinition; asl: AslMachine }[] =>
  rt.stack.agents.map((agent) => ({
    agent,
    def: must(AGENT_DEFINITIONS.find((d) => d.name === agent.name), agent.name),
    asl: must(machines.get(agent.name), agent.name),
  }));
const state = (asl: AslMachine, name: string): AslState => findState(asl, name);
const payloadOf = (s: AslState): Record<string, unknown> => must(s.Parameters?.Payload as Record<string, unknown> | undefined, 'Payload');
/** The Task that runs one tool: `RunTool-<tool>`. */
const runToolOf = (tool: string): string => `${STATE.runTool}-${tool}`;
/** The agents with at least one tool that needs approval (the others have no approval wait in the Map). */
const withApprovals = (): ReturnType<typeof each> => each().filter(({ def }) => def.tools.some((t) => t.needsApproval));
/** The state a Choice goes to for `tool`: the first rule naming it, else its Default. */
const choiceFor = (choice: AslState, tool: string): string =>
  must(choice.Choices, 'Choices').find((r) => r.Variable === '$.call.tool' && r.StringEquals === tool)?.Next ?? must(choice.Default, 'Default');
/** The fault retrier of a tool's Task: its declared retry (whose maxAttempts counts the first attempt). */
const toolRetrier = (retry: ToolRetry): AslRetrier => ({
  ErrorEquals: ['States.ALL'],
  IntervalSeconds: retry.intervalSeconds,
  MaxAttempts: retry.maxAttempts - 1,
  BackoffRate: retry.backoffRate,
  MaxDelaySeconds: retry.maxDelaySeconds,
  JitterStrategy: retry.jitter === 'none' ? 'NONE' : 'FULL',
});

describe('agent state machine: the loop', () => {
  it('starts at Prepare, which invokes the agent prepare function and goes to Prepared?', () => {
    for (const { agent, asl } of each()) {
      expect(asl.StartAt).toBe(STATE.prepare);
      expect(state(asl, STATE.prepare)).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: {
          FunctionName: arnOf(agent.prepareFunction),
          Payload: { 'trigger.$': '$', 'executionArn.$': '$$.Execution.Id', 'executionName.$': '$$.Execution.Name', 'retryCount.$': '$$.State.RetryCount' },
        },
        OutputPath: '$.Payload',
        Next: STATE.prepared,
      });
    }
  });

  it('Prepared? goes on when ready, ends a duplicate trigger and a superseded continuation in success, and records anything else as InvalidInput', () => {
    for (const { asl } of each()) {
      const prepared = state(asl, STATE.prepared);
      expect(prepared.Type).toBe('Choice');
      expect(prepared.Choices).toEqual([
        { Variable: '$.outcome', StringEquals: 'ready', Next: STATE.modelTurn },
        { Variable: '$.outcome', StringEquals: 'duplicate', Next: STATE.duplicate },
        { Variable: '$.outcome', StringEquals: 'superseded', Next: STATE.superseded },
      ]);
      expect(state(asl, STATE.duplicate).Type).toBe('Succeed');
      expect(state(asl, STATE.superseded).Type).toBe('Succeed');
      expect(prepared.Default).toBe('InvalidInput');
      expect(state(asl, 'InvalidInput')).toMatchObject({ Type: 'Pass', Next: STATE.recordFailure, Parameters: { failedState: STATE.prepare } });
    }
  });

  it("ModelTurn invokes the model-turn function with the session pointer, its retry count, the history count and the last wait's decision, and goes to Route", () => {
    for (const { agent, asl } of each()) {
      expect(state(asl, STATE.modelTurn)).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: { FunctionName: arnOf(agent.modelTurnFunction) },
        OutputPath: '$.Payload',
        Next: STATE.route,
      });
      expect(payloadOf(state(asl, STATE.modelTurn))).toEqual({
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        'repairs.$': '$.repairs',
        'executionArn.$': '$$.Execution.Id',
        'retryCount.$': '$$.State.RetryCount',
        'decision.$': '$.decision',
        'events.$': '$.events',
        'execution.$': '$.execution',
        'branch.$': '$.branch',
        'toolRuns.$': '$.toolRuns',
      });
    }
  });

  it("ModelTurn times out after the agent's model timeout plus a margin for the invocation itself", () => {
    for (const { def, asl } of each()) {
      expect(state(asl, STATE.modelTurn).TimeoutSeconds, def.name).toBe(def.modelTimeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS);
    }
    // The tuned agent's own 60 s, not the 120 s default.
    expect(state(must(machines.get('infra-tuned'), 'tuned'), STATE.modelTurn).TimeoutSeconds).toBe(65);
  });

  it('Route checks, in order: final, continue, paused, review, failed, the step limit, tool calls, repair; anything else is UnexpectedOutcome', () => {
    for (const { def, asl } of each()) {
      const route = state(asl, STATE.route);
      expect(route.Choices, def.name).toEqual([
        { Variable: '$.outcome', StringEquals: 'final', Next: STATE.done },
        { Variable: '$.outcome', StringEquals: 'continue', Next: STATE.continueAsNew },
        { Variable: '$.outcome', StringEquals: 'paused', Next: STATE.pauseForBudget },
        { Variable: '$.outcome', StringEquals: 'review', Next: STATE.reviewOutput },
        { Variable: '$.outcome', StringEquals: 'failed', Next: 'OutputValidationFailed' },
        { Variable: '$.step', NumericGreaterThanEquals: def.maxSteps, Next: STATE.stepLimitReached },
        { Variable: '$.outcome', StringEquals: 'tool_calls', Next: STATE.runTools },
        { Variable: '$.outcome', StringEquals: 'repair', Next: STATE.modelTurn },
      ]);
      expect(route.Default).toBe('UnexpectedOutcome');
    }
  });

  it('Route ends a final outcome in Done (Succeed)', () => {
    for (const { asl } of each()) {
      const route = state(asl, STATE.route);
      expect(route.Type).toBe('Choice');
      expect(route.Choices).toContainEqual({ Variable: '$.outcome', StringEquals: 'final', Next: STATE.done });
      expect(state(asl, STATE.done).Type).toBe('Succeed');
    }
  });

  it('Route enforces the step limit: $.step >= maxSteps goes to StepLimitReached, then RecordFailure', () => {
    for (const { def, asl } of each()) {
      const rules = must(state(asl, STATE.route).Choices, 'Route choices');
      const limit = rules.findIndex((r) => r.Next === STATE.stepLimitReached);
      expect(rules[limit], def.name).toEqual({ Variable: '$.step', NumericGreaterThanEquals: def.maxSteps, Next: STATE.stepLimitReached });
      // Checked before another tool round or repair could start a new turn.
      const next = (outcome: string): number => rules.findIndex((r) => r.StringEquals === outcome);
      expect(limit).toBeLessThan(next('tool_calls'));
      expect(limit).toBeLessThan(next('repair'));
      expect(state(asl, STATE.stepLimitReached)).toMatchObject({
        Type: 'Pass',
        Next: STATE.recordFailure,
        Parameters: { failedState: STATE.stepLimitReached, state: { failure: { error: 'StepLimitReached' } } },
      });
    }
  });

  it('Route sends tool calls to RunTools and repairs back to ModelTurn', () => {
    for (const { asl } of each()) {
      const rules = state(asl, STATE.route).Choices;
      expect(rules).toContainEqual({ Variable: '$.outcome', StringEquals: 'tool_calls', Next: STATE.runTools });
      expect(rules).toContainEqual({ Variable: '$.outcome', StringEquals: 'repair', Next: STATE.modelTurn });
    }
  });

  it("RunTools maps over $.calls with the agent's tool concurrency, collects each call's {callId, status, events} in $.toolRuns and returns to ModelTurn", () => {
    for (const { def, asl } of each()) {
      expect(state(asl, STATE.runTools), def.name).toMatchObject({
        Type: 'Map',
        ItemsPath: '$.calls',
        MaxConcurrency: def.toolConcurrency,
        ResultPath: '$.toolRuns',
        Next: STATE.modelTurn,
      });
      expect(state(asl, STATE.runTools).ItemSelector, def.name).toEqual({
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        'branch.$': '$.branch',
        'call.$': '$$.Map.Item.Value',
        approval: { decision: 'not_required' },
      });
    }
  });

  it("inside the Map, Dispatch sends each call to its tool's RunTool-<tool> Task, through RequestApproval when the tool needs approval", () => {
    for (const { def, asl } of each()) {
      const processor = must(state(asl, STATE.runTools).ItemProcessor, 'ItemProcessor');
      expect(processor.StartAt, def.name).toBe(STATE.dispatch);
      const dispatch = must(processor.States[STATE.dispatch], 'Dispatch');
      expect(dispatch.Type).toBe('Choice');
      for (const tool of def.tools) {
        expect(choiceFor(dispatch, tool.name), `${def.name}/${tool.name}`).toBe(tool.needsApproval ? STATE.requestApproval : runToolOf(tool.name));
      }
    }
  });

  it('Dispatch fails a call of a tool the loop does not have (a backstop: the model turn answers those), which fails RunTools into RecordFailure', () => {
    for (const { def, asl } of each()) {
      const processor = must(state(asl, STATE.runTools).ItemProcessor, 'ItemProcessor');
      const dispatch = must(processor.States[STATE.dispatch], 'Dispatch');
      expect(choiceFor(dispatch, 'not_a_tool'), def.name).toBe('UnknownToolCall');
      expect(processor.States.UnknownToolCall).toEqual({ Type: 'Fail', Error: 'ConfigurationError', Cause: 'a tool call names a tool the loop does not have' });
    }
  });

  it('an agent without a tool that needs approval has no approval wait in its Map', () => {
    const without = each().filter(({ def }) => !def.tools.some((t) => t.needsApproval));
    expect(without.length).toBeGreaterThan(0);
    for (const { def, asl } of without) {
      const names = Object.keys(must(state(asl, STATE.runTools).ItemProcessor, 'ItemProcessor').States);
      expect(names, def.name).not.toContain(STATE.requestApproval);
      expect(names, def.name).not.toContain(STATE.afterApproval);
    }
  });

  it("RequestApproval waits for a task token, for the agent's approval timeout, then AfterApproval", () => {
    expect(withApprovals().length).toBeGreaterThan(0);
    for (const { def, asl } of withApprovals()) {
      const request = state(asl, STATE.requestApproval);
      expect(request, def.name).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE_WAIT,
        Parameters: { FunctionName: arnOf(rt.stack.runtime.approvalRequestFunction) },
        TimeoutSeconds: def.approvalTimeoutSeconds,
        ResultPath: '$.approval',
        Next: STATE.afterApproval,
      });
      expect(payloadOf(request)).toEqual({
        agent: def.name,
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        kind: 'tool_call',
        'call.$': '$.call',
        'taskToken.$': '$$.Task.Token',
        timeoutSeconds: def.approvalTimeoutSeconds,
        'requestedAt.$': '$$.State.EnteredTime',
        'executionArn.$': '$$.Execution.Id',
      });
    }
    // 900 s is the tuned agent's own value, not the 24 h default.
    expect(state(must(machines.get('infra-tuned'), 'tuned'), STATE.requestApproval).TimeoutSeconds).toBe(900);
  });

  it("AfterApproval sends an approved, rejected or timed-out call to its tool's Task (which records a refusal without running it)", () => {
    for (const { def, asl } of withApprovals()) {
      const after = state(asl, STATE.afterApproval);
      expect(after.Type).toBe('Choice');
      for (const tool of def.tools.filter((t) => t.needsApproval)) expect(choiceFor(after, tool.name), `${def.name}/${tool.name}`).toBe(runToolOf(tool.name));
      expect(choiceFor(after, 'not_a_tool')).toBe('UnknownApprovedTool');
      expect(state(asl, 'UnknownApprovedTool')).toMatchObject({ Type: 'Fail', Error: 'ConfigurationError' });
    }
  });

  it('a timed-out approval becomes the value {decision: timed_out, reason: "timed out"} and the tool still runs (to record it)', () => {
    for (const { asl } of withApprovals()) {
      const request = state(asl, STATE.requestApproval);
      expect(request.Catch).toEqual([{ ErrorEquals: ['States.Timeout'], ResultPath: '$.approval', Next: STATE.approvalTimedOut }]);
      const timedOut = state(asl, STATE.approvalTimedOut);
      expect(timedOut).toMatchObject({ Type: 'Pass', ResultPath: '$.approval', Next: STATE.afterApproval });
      // A Pass without paths produces its Parameters exactly as a Result would.
      expect(timedOut.Parameters ?? timedOut.Result).toEqual({ decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON });
      expect(APPROVAL_TIMED_OUT_REASON).toBe('timed out');
    }
  });

  it("RunTool-<tool> invokes the tool's own function with the call and its approval, and ends the item", () => {
    for (const { agent, def, asl } of each()) {
      for (const tool of def.tools) {
        const runTool = state(asl, runToolOf(tool.name));
        expect(runTool, `${def.name}/${tool.name}`).toMatchObject({ Type: 'Task', End: true, OutputPath: '$.Payload' });
        expect(runTool.Parameters).toEqual({
          FunctionName: arnOf(agent.toolFunction(tool.name)),
          Payload: {
            'sessionId.$': '$.sessionId',
            'step.$': '$.step',
            'branch.$': '$.branch',
            'call.$': '$.call',
            'approval.$': '$.approval',
            'executionArn.$': '$$.Execution.Id',
            'retryCount.$': '$$.State.RetryCount',
          },
        });
      }
    }
  });

  it("RunTool-<tool> times out after the tool's timeoutSeconds plus a margin for the invocation itself", () => {
    for (const { def, asl } of each()) {
      for (const tool of def.tools) {
        expect(state(asl, runToolOf(tool.name)).TimeoutSeconds, `${def.name}/${tool.name}`).toBe(tool.timeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS);
      }
    }
    const tuned = must(machines.get('infra-tuned'), 'tuned');
    expect(state(tuned, runToolOf('slow_lookup')).TimeoutSeconds).toBe(50);
    expect(state(tuned, runToolOf('guarded_write')).TimeoutSeconds).toBe(95);
  });

  it("RunTool-<tool> retries faults as the tool declares: MaxAttempts is its maxAttempts less the first attempt, with its interval, backoff, cap and jitter", () => {
    for (const { def, asl } of each()) {
      for (const tool of def.tools) {
        expect(state(asl, runToolOf(tool.name)).Retry, `${def.name}/${tool.name}`).toEqual([TERMINAL_RETRIER, IN_PROGRESS_RETRIER, toolRetrier(tool.retry)]);
      }
    }
    // The tuned slow_lookup declares its own; a tool that declares none gets the runtime's.
    expect(state(must(machines.get('infra-tuned'), 'tuned'), runToolOf('slow_lookup')).Retry?.at(-1)).toEqual({
      ErrorEquals: ['States.ALL'],
      IntervalSeconds: 3,
      MaxAttempts: 5,
      BackoffRate: 1.5,
      MaxDelaySeconds: 60,
      JitterStrategy: 'NONE',
    });
    expect(SLOW_LOOKUP_RETRY.maxAttempts).toBe(6);
    expect(state(must(machines.get('infra-tuned'), 'tuned'), runToolOf('guarded_write')).Retry?.at(-1)).toEqual(FAULT_RETRIER);
    expect(FAULT_RETRIER.MaxAttempts).toBe(TASK_RETRY.maxAttempts);
  });

  it('RunTool-<tool> uses the lambda:invoke integration in the partition of the stack', () => {
    for (const { def, asl } of each()) {
      // A literal arn:aws: fails every tool call in aws-cn / aws-us-gov with States.Runtime,
      // which no States.ALL catcher catches (aws/aws-cdk#4597).
      for (const tool of def.tools) expect(state(asl, runToolOf(tool.name)).Resource).toBe(LAMBDA_INVOKE);
    }
  });
});

describe('agent state machine: budget pauses and output reviews', () => {
  it("PauseForBudget waits for a task token for the agent's budget pause timeout, with the pause, its decision at $.decision, then Raised?", () => {
    for (const { def, asl } of each()) {
      const pause = state(asl, STATE.pauseForBudget);
      expect(pause, def.name).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE_WAIT,
        Parameters: { FunctionName: arnOf(rt.stack.runtime.approvalRequestFunction) },
        TimeoutSeconds: def.budgetPauseTimeoutSeconds,
        ResultPath: '$.decision',
        Next: STATE.raised,
      });
      expect(payloadOf(pause)).toEqual({
        agent: def.name,
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        kind: 'budget_pause',
        'pause.$': '$.pause',
        'taskToken.$': '$$.Task.Token',
        timeoutSeconds: def.budgetPauseTimeoutSeconds,
        'requestedAt.$': '$$.State.EnteredTime',
        'executionArn.$': '$$.Execution.Id',
      });
    }
    // 7 days by default; the tuned agent's own hour.
    expect(state(must(machines.get('integ-step-limit'), 'step limit'), STATE.pauseForBudget).TimeoutSeconds).toBe(DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS);
    expect(DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS).toBe(604_800);
    expect(state(must(machines.get('infra-tuned'), 'tuned'), STATE.pauseForBudget).TimeoutSeconds).toBe(3600);
  });

  it('a budget pause that times out fails the run with BudgetExhausted (through RecordFailure); any other fault is recorded as PauseForBudget failing', () => {
    for (const { def, asl } of each()) {
      expect(state(asl, STATE.pauseForBudget).Catch, def.name).toEqual([
        { ErrorEquals: ['States.Timeout'], ResultPath: '$.caught', Next: STATE.budgetExhausted },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: `${STATE.pauseForBudget}Failed` },
      ]);
      expect(state(asl, STATE.budgetExhausted)).toMatchObject({
        Type: 'Pass',
        Next: STATE.recordFailure,
        Parameters: {
          failedState: STATE.budgetExhausted,
          state: { 'sessionId.$': '$.sessionId', 'step.$': '$.step', failure: { error: 'BudgetExhausted', cause: `a budget was used up and not raised within ${def.budgetPauseTimeoutSeconds} s` } },
        },
      });
      expect(state(asl, `${STATE.pauseForBudget}Failed`)).toMatchObject({ Type: 'Pass', Next: STATE.recordFailure, Parameters: { failedState: STATE.pauseForBudget } });
    }
  });

  it('Raised? goes back to ModelTurn on a raise (which checks the budgets again), and ends a stop in Stopped (Succeed)', () => {
    for (const { asl } of each()) {
      expect(state(asl, STATE.raised)).toEqual({
        Type: 'Choice',
        Choices: [{ Variable: '$.decision.decision', StringEquals: 'raised', Next: STATE.modelTurn }],
        Default: STATE.stopped,
      });
      expect(state(asl, STATE.stopped).Type).toBe('Succeed');
    }
  });

  it("ReviewOutput waits for a task token for the agent's approval timeout, its decision at $.decision, then ModelTurn (which records the outcome)", () => {
    for (const { def, asl } of each()) {
      const review = state(asl, STATE.reviewOutput);
      expect(review, def.name).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE_WAIT,
        Parameters: { FunctionName: arnOf(rt.stack.runtime.approvalRequestFunction) },
        TimeoutSeconds: def.approvalTimeoutSeconds,
        ResultPath: '$.decision',
        Next: STATE.modelTurn,
      });
      expect(payloadOf(review)).toEqual({
        agent: def.name,
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        kind: 'output_review',
        // The review's approval id is per branch (a rollback never reuses an abandoned branch's answer).
        'branch.$': '$.branch',
        'taskToken.$': '$$.Task.Token',
        timeoutSeconds: def.approvalTimeoutSeconds,
        'requestedAt.$': '$$.State.EnteredTime',
        'executionArn.$': '$$.Execution.Id',
      });
    }
  });

  it('a review that times out becomes the decision {decision: timed_out} for ModelTurn; any other fault is recorded as ReviewOutput failing', () => {
    for (const { asl } of each()) {
      expect(state(asl, STATE.reviewOutput).Catch).toEqual([
        { ErrorEquals: ['States.Timeout'], ResultPath: '$.decision', Next: STATE.reviewTimedOut },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: `${STATE.reviewOutput}Failed` },
      ]);
      const timedOut = state(asl, STATE.reviewTimedOut);
      expect(timedOut).toMatchObject({ Type: 'Pass', ResultPath: '$.decision', Next: STATE.modelTurn });
      expect(timedOut.Parameters ?? timedOut.Result).toEqual({ decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON });
    }
  });

  it('reaches PauseForBudget and ReviewOutput only from Route, Stopped only from Raised?, and BudgetExhausted only from the pause timing out', () => {
    for (const { asl } of each()) {
      const into = (target: string): string[] => Object.entries(asl.States).filter(([, s]) => transitionsOf(s).includes(target)).map(([n]) => n);
      expect(into(STATE.pauseForBudget)).toEqual([STATE.route]);
      expect(into(STATE.reviewOutput)).toEqual([STATE.route]);
      expect(into(STATE.stopped)).toEqual([STATE.raised]);
      expect(into(STATE.budgetExhausted)).toEqual([STATE.pauseForBudget]);
    }
  });
});

describe('agent state machine: continue-as-new', () => {
  const ALREADY_EXISTS = ['StepFunctions.ExecutionAlreadyExistsException', 'ExecutionAlreadyExists'];

  it('ContinueAsNew starts the next execution of the same state machine (states:startExecution), named and given input by the model turn', () => {
    for (const { def, asl } of each()) {
      expect(state(asl, STATE.continueAsNew), def.name).toMatchObject({
        Type: 'Task',
        Resource: 'arn:${AWS::Partition}:states:::states:startExecution',
        Parameters: {
          'StateMachineArn.$': '$$.StateMachine.Id',
          'Name.$': '$.continuation.name',
          Input: { 'continuation.$': '$.continuation.input.continuation', 'AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$': '$$.Execution.Id' },
        },
        ResultSelector: { 'executionArn.$': '$.ExecutionArn' },
        ResultPath: '$.continued',
        Next: STATE.continuedAsNew,
      });
      // Request-response: the execution does not wait for the next one.
      expect(state(asl, STATE.continueAsNew).Resource).not.toMatch(/\.sync|waitForTaskToken/);
    }
  });

  it('ends in ContinuedAsNew (Succeed) once started, and also when a retried start finds the execution there (ExecutionAlreadyExists)', () => {
    for (const { asl } of each()) {
      expect(state(asl, STATE.continuedAsNew).Type).toBe('Succeed');
      const catchers = must(state(asl, STATE.continueAsNew).Catch, 'ContinueAsNew Catch');
      expect(catchers[0]).toEqual({ ErrorEquals: ALREADY_EXISTS, ResultPath: '$.alreadyStarted', Next: STATE.continuedAsNew });
    }
  });

  it('never retries ExecutionAlreadyExists or a terminal error, and retries any other fault like every step', () => {
    for (const { asl } of each()) {
      expect(state(asl, STATE.continueAsNew).Retry).toEqual([{ ErrorEquals: ALREADY_EXISTS, MaxAttempts: 0 }, TERMINAL_RETRIER, FAULT_RETRIER]);
    }
  });

  it('catches any other fault into ContinueAsNewFailed, which hands it to RecordFailure (the failure path)', () => {
    for (const { def, asl } of each()) {
      const catchers = must(state(asl, STATE.continueAsNew).Catch, 'ContinueAsNew Catch');
      expect(catchers).toHaveLength(2);
      expect(catchers[1]).toEqual({ ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: `${STATE.continueAsNew}Failed` });
      expect(state(asl, `${STATE.continueAsNew}Failed`)).toEqual({
        Type: 'Pass',
        Parameters: {
          agent: def.name,
          'executionArn.$': '$$.Execution.Id',
          'executionName.$': '$$.Execution.Name',
          failedState: STATE.continueAsNew,
          'state.$': '$',
          'caught.$': '$.caught',
        },
        Next: STATE.recordFailure,
      });
    }
  });
});

describe('agent state machine: faults', () => {
  /** Every Task that invokes a Lambda function, except RecordFailure (the end of the failure path). */
  const stepTasks = (asl: AslMachine): [string, AslState][] => {
    const all: [string, AslState][] = [];
    const visit = (m: AslMachine): void => {
      for (const [name, s] of Object.entries(m.States)) {
        if (s.Type === 'Task' && /:states:::lambda:invoke/.test(s.Resource ?? '') && name !== STATE.recordFailure) all.push([name, s]);
        if (s.ItemProcessor) visit(s.ItemProcessor);
      }
    };
    visit(asl);
    return all;
  };

  /** The waits for a task token: a tool's approval (when a tool needs one), a budget pause, an output review. */
  const waitsOf = (def: AgentDefinition): string[] => [...(def.tools.some((t) => t.needsApproval) ? [STATE.requestApproval] : []), STATE.pauseForBudget, STATE.reviewOutput];
  const toolTasksOf = (def: AgentDefinition): string[] => def.tools.map((t: ToolDefinition) => runToolOf(t.name));

  it('the step tasks are Prepare, ModelTurn, one RunTool-<tool> per tool, and the waits (RequestApproval, PauseForBudget, ReviewOutput)', () => {
    for (const { def, asl } of each()) {
      expect(stepTasks(asl).map(([n]) => n).sort(), def.name).toEqual([STATE.modelTurn, STATE.prepare, ...toolTasksOf(def), ...waitsOf(def)].sort());
    }
  });

  it('every step task but the tools never retries terminal errors, then retries any fault 3 times with backoff 2, full jitter, at most 20 s apart', () => {
    for (const { def, asl } of each()) {
      for (const [name, task] of stepTasks(asl).filter(([n]) => !toolTasksOf(def).includes(n))) {
        const retry = must(task.Retry, `Retry of ${name}`);
        // The waits put their own States.Timeout retrier first (see below).
        const own = waitsOf(def).includes(name) ? retry.slice(1) : retry;
        // ModelTurn waits out a locked idempotency key (a call that died mid-way) before the general retrier.
        expect(own, name).toEqual(name === STATE.modelTurn ? [TERMINAL_RETRIER, IN_PROGRESS_RETRIER, FAULT_RETRIER] : [TERMINAL_RETRIER, FAULT_RETRIER]);
      }
    }
  });

  it('no wait retries its own timeout: States.Timeout with MaxAttempts 0 comes before States.ALL', () => {
    for (const { def, asl } of each()) {
      for (const name of waitsOf(def)) {
        const retry = must(state(asl, name).Retry, `Retry of ${name}`);
        const timeout = retry.findIndex((r) => r.ErrorEquals.includes('States.Timeout'));
        const all = retry.findIndex((r) => r.ErrorEquals.includes('States.ALL'));
        expect(retry[timeout], name).toEqual({ ErrorEquals: ['States.Timeout'], MaxAttempts: 0 });
        expect(timeout).toBeGreaterThanOrEqual(0);
        expect(timeout).toBeLessThan(all);
      }
    }
  });

  it('Prepare, ModelTurn and RunTools catch any fault into a Pass that hands it to RecordFailure', () => {
    for (const { def, asl } of each()) {
      for (const name of [STATE.prepare, STATE.modelTurn, STATE.runTools]) {
        expect(state(asl, name).Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: `${name}Failed` }]);
        expect(state(asl, `${name}Failed`), name).toEqual({
          Type: 'Pass',
          Parameters: {
            agent: def.name,
            'executionArn.$': '$$.Execution.Id',
            'executionName.$': '$$.Execution.Name',
            failedState: name,
            'state.$': '$',
            'caught.$': '$.caught',
          },
          Next: STATE.recordFailure,
        });
      }
    }
  });

  it('RecordFailure invokes record-failure, then Failed fails the execution with the recorded error and cause', () => {
    for (const { asl } of each()) {
      expect(state(asl, STATE.recordFailure)).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: { FunctionName: arnOf(rt.stack.runtime.recordFailureFunction), 'Payload.$': '$' },
        OutputPath: '$.Payload',
        Next: STATE.failed,
      });
      expect(state(asl, STATE.failed)).toEqual({ Type: 'Fail', ErrorPath: '$.error', CausePath: '$.cause' });
    }
  });

  it('when RecordFailure itself fails, every path from its Catch still ends in a Fail state', () => {
    for (const { asl } of each()) {
      const record = state(asl, STATE.recordFailure);
      const catchAll = must(record.Catch?.find((c) => c.ErrorEquals.includes('States.ALL')), 'RecordFailure Catch States.ALL');
      const seen = new Set<string>();
      const ends: string[] = [];
      const walk = (name: string): void => {
        if (seen.has(name)) return;
        seen.add(name);
        const s = state(asl, name);
        const next = transitionsOf(s);
        if (next.length === 0) ends.push(s.Type);
        next.forEach(walk);
      };
      walk(catchAll.Next);
      expect(ends.length).toBeGreaterThan(0);
      expect(new Set(ends)).toEqual(new Set(['Fail']));
    }
  });

  it('when RecordFailure itself fails, the envelope still goes to the dead-letter queue, straight from the state machine', () => {
    for (const { def, asl } of each()) {
      const catchAll = must(state(asl, STATE.recordFailure).Catch?.find((c) => c.ErrorEquals.includes('States.ALL')), 'Catch');
      expect(catchAll.ResultPath).toBe('$.recordFailureError');
      const send = state(asl, catchAll.Next);
      expect(send, def.name).toMatchObject({
        Type: 'Task',
        Resource: 'arn:${AWS::Partition}:states:::sqs:sendMessage',
        ResultPath: null,
        Parameters: {
          QueueUrl: refOf(rt.stack.runtime.deadLetterQueue),
          MessageBody: { agent: def.name, error: 'RecordFailureFailed', 'executionArn.$': '$.executionArn', 'failedState.$': '$.failedState' },
        },
      });
      expect(send.Retry?.find((r) => r.ErrorEquals.includes('States.ALL'))?.MaxAttempts).toBeGreaterThan(0);
    }
  });
});

describe('agent state machine: graph', () => {
  it('every transition names a state of the same scope', () => {
    const check = (m: AslMachine, where: string): void => {
      expect(Object.keys(m.States), where).toContain(m.StartAt);
      for (const [name, s] of Object.entries(m.States)) {
        for (const target of transitionsOf(s)) expect(Object.keys(m.States), `${where}/${name} → ${target}`).toContain(target);
        if (s.ItemProcessor) check(s.ItemProcessor, `${where}/${name}`);
      }
    };
    for (const { def, asl } of each()) check(asl, def.name);
  });

  it('succeeds only in Done, DuplicateTrigger, Superseded, ContinuedAsNew or Stopped', () => {
    for (const { asl } of each()) {
      const succeeds = Object.entries(asl.States).filter(([, s]) => s.Type === 'Succeed').map(([n]) => n);
      expect(succeeds.sort()).toEqual([STATE.done, STATE.duplicate, STATE.superseded, STATE.continuedAsNew, STATE.stopped].sort());
    }
  });

  it('reaches ContinueAsNew only from Route, and Superseded only from Prepared?', () => {
    for (const { asl } of each()) {
      const into = (target: string): string[] => Object.entries(asl.States).filter(([, s]) => transitionsOf(s).includes(target)).map(([n]) => n);
      expect(into(STATE.continueAsNew)).toEqual([STATE.route]);
      expect(into(STATE.superseded)).toEqual([STATE.prepared]);
      expect(into(STATE.continuedAsNew)).toEqual([STATE.continueAsNew]);
    }
  });

  it('is a Standard state machine with tracing and error-level logs without execution data', () => {
    for (const { agent } of each()) {
      rt.template.hasResource('AWS::StepFunctions::StateMachine', {
        Properties: Match.objectLike({
          StateMachineType: 'STANDARD',
          TracingConfiguration: { Enabled: true },
          RoleArn: { 'Fn::GetAtt': [logicalIdOf(agent.stateMachine.role), 'Arn'] },
          LoggingConfiguration: {
            Level: 'ERROR',
            IncludeExecutionData: false,
            Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalIdOf(agent.node.findChild('ExecutionLogs')), 'Arn'] } } }],
          },
        }),
      });
    }
  });
});

describe('AgentLoop fragment', () => {
  /** A tool with a retry of its own (no jitter), and one with the runtime's retry that needs approval. */
  const PICKY_RETRY: ToolRetry = { maxAttempts: 6, intervalSeconds: 3, backoffRate: 1.5, maxDelaySeconds: 60, jitter: 'none' };
  const DEFAULT_RETRY: ToolRetry = { maxAttempts: TASK_RETRY.maxAttempts + 1, intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 20, jitter: 'full' };
  const props = { agentName: 'bare', maxSteps: 7, toolConcurrency: 3, approvalTimeoutSeconds: 600, budgetPauseTimeoutSeconds: 7200, modelTimeoutSeconds: 40 };
  let stack: Stack;
  let loop: AgentLoop;
  beforeAll(() => {
    stack = new Stack(new App(), 'Bare', { env: { account: '123456789012', region: 'eu-west-1' } });
    const fn = (name: string): lambda.IFunction => lambda.Function.fromFunctionArn(stack, name, `arn:aws:lambda:eu-west-1:123456789012:function:${name}`);
    loop = new AgentLoop(stack, 'Loop', {
      ...props,
      tools: [
        { name: 'picky', function: fn('tool-picky'), needsApproval: false, timeoutSeconds: 12, retry: PICKY_RETRY },
        { name: 'careful', function: fn('tool-careful'), needsApproval: true, timeoutSeconds: 300, retry: DEFAULT_RETRY },
      ],
      prepareFunction: fn('prepare'),
      modelTurnFunction: fn('model-turn'),
      approvalRequestFunction: fn('approval-request'),
      recordFailureFunction: fn('record-failure'),
      deadLetterQueue: sqs.Queue.fromQueueArn(stack, 'Dlq', 'arn:aws:sqs:eu-west-1:123456789012:dlq'),
    });
    new sfn.StateMachine(stack, 'Machine', { definitionBody: sfn.DefinitionBody.fromChainable(loop) });
  });
  const stateJson = (id: string): Record<string, unknown> => {
    const child = loop.node.findChild(id);
    if (!(child instanceof sfn.State)) throw new Error(`${id} is not a state`);
    return stack.resolve(child.toStateJson()) as Record<string, unknown>;
  };
  const WAIT_RESOURCE = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:::lambda:invoke.waitForTaskToken']] };

  it('starts at Prepare', () => {
    expect(loop.startState.stateId).toBe(STATE.prepare);
  });

  it('RequestApproval: waitForTaskToken with the given timeout, the token and the timeout in the payload', () => {
    expect(stateJson(STATE.requestApproval)).toMatchObject({
      Type: 'Task',
      Resource: WAIT_RESOURCE,
      TimeoutSeconds: 600,
      Parameters: {
        FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:approval-request',
        Payload: { agent: 'bare', kind: 'tool_call', 'taskToken.$': '$$.Task.Token', timeoutSeconds: 600 },
      },
    });
  });

  it('ModelTurn: TimeoutSeconds is the model timeout plus the margin', () => {
    expect(stateJson(STATE.modelTurn)).toMatchObject({ Type: 'Task', TimeoutSeconds: 40 + TASK_TIMEOUT_MARGIN_SECONDS });
  });

  it("RunTool-<tool>: each tool's Task invokes its function, with its own TimeoutSeconds (timeout plus the margin) and its own Retry", () => {
    expect(stateJson(runToolOf('picky'))).toMatchObject({
      Type: 'Task',
      TimeoutSeconds: 12 + TASK_TIMEOUT_MARGIN_SECONDS,
      Parameters: { FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:tool-picky' },
      Retry: [
        TERMINAL_RETRIER,
        IN_PROGRESS_RETRIER,
        // maxAttempts 6 counts the first attempt: 5 retries.
        { ErrorEquals: ['States.ALL'], MaxAttempts: 5, IntervalSeconds: 3, BackoffRate: 1.5, MaxDelaySeconds: 60, JitterStrategy: 'NONE' },
      ],
    });
    expect(stateJson(runToolOf('careful'))).toMatchObject({
      TimeoutSeconds: 300 + TASK_TIMEOUT_MARGIN_SECONDS,
      Parameters: { FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:tool-careful' },
      Retry: [TERMINAL_RETRIER, IN_PROGRESS_RETRIER, FAULT_RETRIER],
    });
  });

  it('a tool that may be tried once gets Retry MaxAttempts 0 for faults', () => {
    const once = new Stack(new App(), 'Once', { env: { account: '123456789012', region: 'eu-west-1' } });
    const fn = (name: string): lambda.IFunction => lambda.Function.fromFunctionArn(once, name, `arn:aws:lambda:eu-west-1:123456789012:function:${name}`);
    const onceLoop = new AgentLoop(once, 'Loop', {
      ...props,
      tools: [{ name: 'single', function: fn('tool-single'), needsApproval: false, timeoutSeconds: 5, retry: { ...DEFAULT_RETRY, maxAttempts: 1 } }],
      prepareFunction: fn('prepare'),
      modelTurnFunction: fn('model-turn'),
      approvalRequestFunction: fn('approval-request'),
      recordFailureFunction: fn('record-failure'),
      deadLetterQueue: sqs.Queue.fromQueueArn(once, 'Dlq', 'arn:aws:sqs:eu-west-1:123456789012:dlq'),
    });
    const task = onceLoop.node.findChild(runToolOf('single'));
    if (!(task instanceof sfn.State)) throw new Error('no RunTool-single');
    expect((once.resolve(task.toStateJson()) as { Retry: AslRetrier[] }).Retry.at(-1)).toMatchObject({ ErrorEquals: ['States.ALL'], MaxAttempts: 0 });
  });

  it('PauseForBudget: waitForTaskToken for budgetPauseTimeoutSeconds, the pause in the payload, its timeout caught into BudgetExhausted', () => {
    expect(stateJson(STATE.pauseForBudget)).toMatchObject({
      Type: 'Task',
      Resource: WAIT_RESOURCE,
      TimeoutSeconds: 7200,
      ResultPath: '$.decision',
      Parameters: {
        FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:approval-request',
        Payload: { agent: 'bare', kind: 'budget_pause', 'pause.$': '$.pause', 'taskToken.$': '$$.Task.Token', timeoutSeconds: 7200 },
      },
      Catch: [
        { ErrorEquals: ['States.Timeout'], ResultPath: '$.caught', Next: STATE.budgetExhausted },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: `${STATE.pauseForBudget}Failed` },
      ],
    });
    expect(stateJson(STATE.budgetExhausted)).toMatchObject({
      Type: 'Pass',
      Parameters: { state: { failure: { error: 'BudgetExhausted', cause: 'a budget was used up and not raised within 7200 s' } } },
    });
  });

  it('ReviewOutput: waitForTaskToken for the approval timeout, back to ModelTurn with the decision', () => {
    expect(stateJson(STATE.reviewOutput)).toMatchObject({
      Type: 'Task',
      Resource: WAIT_RESOURCE,
      TimeoutSeconds: 600,
      ResultPath: '$.decision',
      Next: STATE.modelTurn,
      Parameters: { Payload: { agent: 'bare', kind: 'output_review', timeoutSeconds: 600 } },
    });
  });

  it('ContinueAsNew: StartExecution of the state machine running it, in the partition of the stack', () => {
    expect(stateJson(STATE.continueAsNew)).toMatchObject({
      Type: 'Task',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:::states:startExecution']] },
      Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', 'Name.$': '$.continuation.name' },
    });
  });

  it('Route: the step limit rule carries maxSteps', () => {
    expect(stateJson(STATE.route).Choices as unknown[]).toContainEqual({ Variable: '$.step', NumericGreaterThanEquals: 7, Next: STATE.stepLimitReached });
  });

  it('RunTools: MaxConcurrency is toolConcurrency', () => {
    expect(stateJson(STATE.runTools)).toMatchObject({ Type: 'Map', MaxConcurrency: 3, ItemsPath: '$.calls', ResultPath: '$.toolRuns' });
  });

  it('the graph alone grants the state machine its four fixed functions and every tool function (each named by its Task)', () => {
    const template = Template.fromStack(stack);
    for (const name of ['prepare', 'model-turn', 'approval-request', 'record-failure', 'tool-picky', 'tool-careful']) {
      template.hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Action: 'lambda:InvokeFunction', Resource: Match.arrayWith([`arn:aws:lambda:eu-west-1:123456789012:function:${name}`]) }),
          ]),
        },
      });
    }
  });
});
