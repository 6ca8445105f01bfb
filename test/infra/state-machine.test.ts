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
import { APPROVAL_TIMED_OUT_REASON } from '../../lambdas/core/constants';
import type { AgentDefinition } from '../../lambdas/core/define';
import { TERMINAL_ERROR_NAMES } from '../../lambdas/core/errors';
import type { Agent } from '../../lib/constructs/agent';
import { AgentLoop, STATE } from '../../statemachines/agent-loop';
import { AGENT_DEFINITIONS, synthRuntime, type RuntimeUnderTest } from './support/stack';
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

  it('ModelTurn invokes the model-turn function with the session pointer, its retry count and the history count, and goes to Route', () => {
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
        'events.$': '$.events',
        'execution.$': '$.execution',
        'branch.$': '$.branch',
        'toolRuns.$': '$.toolRuns',
      });
    }
  });

  it('Route checks, in order: final, continue, failed, the step limit, tool calls, repair; anything else is UnexpectedOutcome', () => {
    for (const { def, asl } of each()) {
      const route = state(asl, STATE.route);
      expect(route.Choices, def.name).toEqual([
        { Variable: '$.outcome', StringEquals: 'final', Next: STATE.done },
        { Variable: '$.outcome', StringEquals: 'continue', Next: STATE.continueAsNew },
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

  it('inside the Map, NeedsApproval? asks for approval when the call needs it and otherwise runs the tool', () => {
    for (const { asl } of each()) {
      const processor = must(state(asl, STATE.runTools).ItemProcessor, 'ItemProcessor');
      expect(processor.StartAt).toBe(STATE.needsApproval);
      expect(processor.States[STATE.needsApproval]).toEqual({
        Type: 'Choice',
        Choices: [{ Variable: '$.call.needsApproval', BooleanEquals: true, Next: STATE.requestApproval }],
        Default: STATE.runTool,
      });
    }
  });

  it("RequestApproval waits for a task token, for the agent's approval timeout", () => {
    for (const { def, asl } of each()) {
      const request = state(asl, STATE.requestApproval);
      expect(request, def.name).toMatchObject({
        Type: 'Task',
        Resource: LAMBDA_INVOKE_WAIT,
        Parameters: { FunctionName: arnOf(rt.stack.runtime.approvalRequestFunction) },
        TimeoutSeconds: def.approvalTimeoutSeconds,
        ResultPath: '$.approval',
        Next: STATE.runTool,
      });
      expect(payloadOf(request)).toMatchObject({
        agent: def.name,
        'taskToken.$': '$$.Task.Token',
        timeoutSeconds: def.approvalTimeoutSeconds,
        'call.$': '$.call',
      });
    }
    // 900 s is the tuned agent's own value, not the 24 h default.
    expect(state(must(machines.get('infra-tuned'), 'tuned'), STATE.requestApproval).TimeoutSeconds).toBe(900);
  });

  it('a timed-out approval becomes the value {decision: timed_out, reason: "timed out"} and the tool still runs (to record it)', () => {
    for (const { asl } of each()) {
      const request = state(asl, STATE.requestApproval);
      expect(request.Catch).toEqual([{ ErrorEquals: ['States.Timeout'], ResultPath: '$.approval', Next: STATE.approvalTimedOut }]);
      const timedOut = state(asl, STATE.approvalTimedOut);
      expect(timedOut).toMatchObject({ Type: 'Pass', ResultPath: '$.approval', Next: STATE.runTool });
      // A Pass without paths produces its Parameters exactly as a Result would.
      expect(timedOut.Parameters ?? timedOut.Result).toEqual({ decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON });
      expect(APPROVAL_TIMED_OUT_REASON).toBe('timed out');
    }
  });

  it('RunTool invokes the function named by the call ($.call.functionArn) and ends the item', () => {
    for (const { asl } of each()) {
      const runTool = state(asl, STATE.runTool);
      expect(runTool).toMatchObject({ Type: 'Task', End: true, OutputPath: '$.Payload' });
      expect(runTool.Parameters).toEqual({
        'FunctionName.$': '$.call.functionArn',
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
      expect(runTool.Parameters?.FunctionName).toBeUndefined();
    }
  });

  it('RunTool uses the lambda:invoke integration in the partition of the stack', () => {
    for (const { asl } of each()) {
      // A literal arn:aws: fails every tool call in aws-cn / aws-us-gov with States.Runtime,
      // which no States.ALL catcher catches (aws/aws-cdk#4597).
      expect(state(asl, STATE.runTool).Resource).toBe(LAMBDA_INVOKE);
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

  it('the step tasks are Prepare, ModelTurn, RequestApproval and RunTool', () => {
    for (const { asl } of each()) {
      expect(stepTasks(asl).map(([n]) => n).sort()).toEqual([STATE.modelTurn, STATE.prepare, STATE.requestApproval, STATE.runTool].sort());
    }
  });

  it('every step task never retries terminal errors, then retries any fault 3 times with backoff 2, full jitter, at most 20 s apart', () => {
    for (const { asl } of each()) {
      for (const [name, task] of stepTasks(asl)) {
        const retry = must(task.Retry, `Retry of ${name}`);
        // RequestApproval puts its own States.Timeout retrier first (see below).
        const own = name === STATE.requestApproval ? retry.slice(1) : retry;
        // ModelTurn and RunTool wait out a locked idempotency key (a call that died mid-way) before the general retrier.
        const idempotent = name === STATE.modelTurn || name === STATE.runTool;
        expect(own, name).toEqual(idempotent ? [TERMINAL_RETRIER, IN_PROGRESS_RETRIER, FAULT_RETRIER] : [TERMINAL_RETRIER, FAULT_RETRIER]);
      }
    }
  });

  it('RequestApproval never retries its own timeout: States.Timeout with MaxAttempts 0 comes before States.ALL', () => {
    for (const { asl } of each()) {
      const retry = must(state(asl, STATE.requestApproval).Retry, 'Retry');
      const timeout = retry.findIndex((r) => r.ErrorEquals.includes('States.Timeout'));
      const all = retry.findIndex((r) => r.ErrorEquals.includes('States.ALL'));
      expect(retry[timeout]).toEqual({ ErrorEquals: ['States.Timeout'], MaxAttempts: 0 });
      expect(timeout).toBeGreaterThanOrEqual(0);
      expect(timeout).toBeLessThan(all);
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

  it('succeeds only in Done, DuplicateTrigger, Superseded or ContinuedAsNew', () => {
    for (const { asl } of each()) {
      const succeeds = Object.entries(asl.States).filter(([, s]) => s.Type === 'Succeed').map(([n]) => n);
      expect(succeeds.sort()).toEqual([STATE.done, STATE.duplicate, STATE.superseded, STATE.continuedAsNew].sort());
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
  const props = { agentName: 'bare', maxSteps: 7, toolConcurrency: 3, approvalTimeoutSeconds: 600 };
  let stack: Stack;
  let loop: AgentLoop;
  beforeAll(() => {
    stack = new Stack(new App(), 'Bare', { env: { account: '123456789012', region: 'eu-west-1' } });
    const fn = (name: string): lambda.IFunction => lambda.Function.fromFunctionArn(stack, name, `arn:aws:lambda:eu-west-1:123456789012:function:${name}`);
    loop = new AgentLoop(stack, 'Loop', {
      ...props,
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

  it('starts at Prepare', () => {
    expect(loop.startState.stateId).toBe(STATE.prepare);
  });

  it('RequestApproval: waitForTaskToken with the given timeout, the token and the timeout in the payload', () => {
    expect(stateJson(STATE.requestApproval)).toMatchObject({
      Type: 'Task',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:::lambda:invoke.waitForTaskToken']] },
      TimeoutSeconds: 600,
      Parameters: {
        FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:approval-request',
        Payload: { agent: 'bare', 'taskToken.$': '$$.Task.Token', timeoutSeconds: 600 },
      },
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

  it('the graph alone grants the state machine its four fixed functions (tools need an explicit grant)', () => {
    const template = Template.fromStack(stack);
    for (const name of ['prepare', 'model-turn', 'approval-request', 'record-failure']) {
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
