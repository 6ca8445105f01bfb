/**
 * The agent loop as a Step Functions fragment:
 *
 * ```
 * Prepare → Prepared? ─ready→ ModelTurn → Route ─tool_calls→ RunTools (Map) ─→ ModelTurn
 *                      ├duplicate→ DuplicateTrigger (Succeed)  ├final→ Done (Succeed)
 *                      ├superseded→ Superseded (Succeed)       ├continue→ ContinueAsNew (StartExecution of this
 *                      │                                       │          state machine) → ContinuedAsNew (Succeed)
 *                      │                                       ├paused→ PauseForBudget (.waitForTaskToken) → Raised?
 *                      │                                       │          ├raised→ ModelTurn   └stopped→ Stopped (Succeed)
 *                      │                                       │          └States.Timeout→ BudgetExhausted ─┐
 *                      │                                       ├review→ ReviewOutput (.waitForTaskToken) → ModelTurn
 *                      └failed→ InvalidInput ─┐                ├repair→ ModelTurn
 *                                             │                ├step ≥ maxSteps→ StepLimitReached ─┤
 *                                             │                └failed→ OutputValidationFailed ───┤
 *   any task failing past its retries → <State>Failed ─────────────────────────────→ RecordFailure → Failed (Fail)
 *                                              RecordFailure failing → SendEnvelopeDirectly (SQS) → RecordFailureFailed (Fail)
 *
 * RunTools item: Dispatch (Choice on the tool) ─needs approval→ RequestApproval (.waitForTaskToken) → AfterApproval ─→ RunTool-<tool>
 *                                              │                └States.Timeout→ ApprovalTimedOut ───↗
 *                                              └otherwise→ RunTool-<tool> (the tool's TimeoutSeconds and Retry)
 * ```
 *
 * Outcomes are values routed by Choice states; thrown errors are faults, retried
 * with exponential backoff and full jitter (a tool's own Retry for its Task), then
 * caught and recorded. The step limit is a Choice rule of the definition; budgets
 * are checked inside the model turn, before each spend. The payload is a pointer
 * (session id, step, counters, the current turn's call list); the Map discards its
 * results. A turn with one tool call takes 5 state transitions
 * (ModelTurn, Route, RunTools, Dispatch, RunTool-<tool>).
 */
import { Aws, Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { APPROVAL_TIMED_OUT_REASON, EVENT_SCHEMA_VERSION, FAILURE_RETRY, IN_PROGRESS_RETRY, TASK_RETRY, TASK_TIMEOUT_MARGIN_SECONDS } from '../lambdas/core/constants';
import type { ToolRetry } from '../lambdas/core/define';
import { TERMINAL_ERROR_NAMES } from '../lambdas/core/errors';

/**
 * A tool as the loop runs it: its function, and its Task's TimeoutSeconds and Retry.
 * Example: `{name: "lookup_host", function: <the tool's Lambda>, needsApproval: false, timeoutSeconds: 30, retry: {maxAttempts: 3, intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 20, jitter: "full"}}`
 */
export interface LoopTool {
  /**
   * The tool's declared name (`defineTool`: 1-64 characters of `[a-zA-Z0-9_-]`): Dispatch
   * routes a call whose `call.tool` equals it to the Task `RunTool-<name>`, so names must be unique.
   */
  readonly name: string;
  /** The Lambda function the tool's Task invokes (payload: the session, step, branch, call, approval, execution ARN and retry count). */
  readonly function: lambda.IFunction;
  /**
   * Whether every call goes through an approval wait first (RequestApproval,
   * `.waitForTaskToken` with the loop's `approvalTimeoutSeconds`); the tool's Task then
   * gets the decision: approved, it runs the call; rejected or timed out, it records
   * the call as rejected without running it.
   */
  readonly needsApproval: boolean;
  /** The tool's timeout, seconds; the Task's TimeoutSeconds adds {@link TASK_TIMEOUT_MARGIN_SECONDS}. */
  readonly timeoutSeconds: number;
  /**
   * The Retry of the tool's Task for faults (terminal errors are never retried).
   * `maxAttempts` counts every attempt including the first: the Task's Retry
   * `MaxAttempts` is `maxAttempts - 1` (1: no retry). Intervals and the delay cap in seconds.
   */
  readonly retry: ToolRetry;
}

/** Props of {@link AgentLoop}. */
export interface AgentLoopProps {
  /** The agent's name: in every approval request and failure envelope. */
  readonly agentName: string;
  /** Model turns allowed; a run reaching it ends with `StepLimitReached`. */
  readonly maxSteps: number;
  /** The RunTools Map's MaxConcurrency. */
  readonly toolConcurrency: number;
  /** TimeoutSeconds of each approval wait (tool calls and output reviews), seconds; past it the wait's decision is `timed_out`. */
  readonly approvalTimeoutSeconds: number;
  /**
   * TimeoutSeconds of a budget pause (PauseForBudget), seconds; past it the run fails
   * with `BudgetExhausted`. Required here; the `Agent` construct passes the
   * definition's, which `defineAgent` defaults to `DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS`
   * (604800 s, 7 days).
   */
  readonly budgetPauseTimeoutSeconds: number;
  /** The model turn's timeout, seconds; its Task's TimeoutSeconds adds {@link TASK_TIMEOUT_MARGIN_SECONDS}. */
  readonly modelTimeoutSeconds: number;
  /** The agent's tools: one RunTool Task each. */
  readonly tools: readonly LoopTool[];
  /** The agent's Prepare handler. */
  readonly prepareFunction: lambda.IFunction;
  /** The agent's model-turn handler. */
  readonly modelTurnFunction: lambda.IFunction;
  /** The runtime's approval request handler (invoked with `.waitForTaskToken`). */
  readonly approvalRequestFunction: lambda.IFunction;
  /** The runtime's RecordFailure handler. */
  readonly recordFailureFunction: lambda.IFunction;
  /** Where the envelope goes directly when even RecordFailure fails (last resort). */
  readonly deadLetterQueue: sqs.IQueue;
}

/** State names, shared with tests and the CLI that follows executions. */
export const STATE = {
  prepare: 'Prepare',
  prepared: 'Prepared?',
  modelTurn: 'ModelTurn',
  route: 'Route',
  runTools: 'RunTools',
  requestApproval: 'RequestApproval',
  approvalTimedOut: 'ApprovalTimedOut',
  runTool: 'RunTool',
  dispatch: 'Dispatch',
  afterApproval: 'AfterApproval',
  pauseForBudget: 'PauseForBudget',
  raised: 'Raised?',
  stopped: 'Stopped',
  budgetExhausted: 'BudgetExhausted',
  reviewOutput: 'ReviewOutput',
  reviewTimedOut: 'ReviewTimedOut',
  recordFailure: 'RecordFailure',
  done: 'Done',
  duplicate: 'DuplicateTrigger',
  failed: 'Failed',
  stepLimitReached: 'StepLimitReached',
  superseded: 'Superseded',
  continueAsNew: 'ContinueAsNew',
  continuedAsNew: 'ContinuedAsNew',
} as const;

/** The loop payload fields every task passes on (`core/contracts/loop.ts`). */
const PROGRESS = {
  'decision.$': '$.decision',
  'events.$': '$.events',
  'execution.$': '$.execution',
  'branch.$': '$.branch',
  'toolRuns.$': '$.toolRuns',
};

const EXECUTION_ARN = sfn.JsonPath.stringAt('$$.Execution.Id');

/**
 * The agent loop. Start state: Prepare. It ends in Done, DuplicateTrigger, Superseded,
 * Stopped or ContinuedAsNew (Succeed), or in Failed or RecordFailureFailed (Fail).
 * Every function it invokes is a Task's own (CDK grants `lambda:InvokeFunction` on it);
 * ContinueAsNew starts the state machine's next execution with a custom state, so grant
 * the state machine `states:StartExecution` on itself (the `Agent` construct does).
 */
export class AgentLoop extends sfn.StateMachineFragment {
  readonly startState: sfn.State;
  readonly endStates: sfn.INextable[] = [];

  private readonly agentName: string;
  private readonly approvalFunction: lambda.IFunction;

  constructor(scope: Construct, id: string, props: AgentLoopProps) {
    super(scope, id);
    this.agentName = props.agentName;
    this.approvalFunction = props.approvalRequestFunction;
    const recordFailure = this.recordFailure(props);

    const prepare = new tasks.LambdaInvoke(this, STATE.prepare, {
      lambdaFunction: props.prepareFunction,
      payload: sfn.TaskInput.fromObject({
        trigger: sfn.JsonPath.entirePayload,
        executionArn: EXECUTION_ARN,
        executionName: sfn.JsonPath.stringAt('$$.Execution.Name'),
        retryCount: sfn.JsonPath.numberAt('$$.State.RetryCount'),
      }),
      payloadResponseOnly: false,
      retryOnServiceExceptions: false,
      outputPath: '$.Payload',
    });
    this.retryFaults(prepare);
    prepare.addCatch(this.caught(STATE.prepare, props, recordFailure), { resultPath: '$.caught' });

    const modelTurn = new tasks.LambdaInvoke(this, STATE.modelTurn, {
      lambdaFunction: props.modelTurnFunction,
      payload: sfn.TaskInput.fromObject({
        sessionId: sfn.JsonPath.stringAt('$.sessionId'),
        step: sfn.JsonPath.numberAt('$.step'),
        repairs: sfn.JsonPath.numberAt('$.repairs'),
        executionArn: EXECUTION_ARN,
        retryCount: sfn.JsonPath.numberAt('$$.State.RetryCount'),
        ...PROGRESS,
      }),
      retryOnServiceExceptions: false,
      taskTimeout: sfn.Timeout.duration(Duration.seconds(props.modelTimeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS)),
      outputPath: '$.Payload',
    });
    this.retryFaults(modelTurn, true);
    modelTurn.addCatch(this.caught(STATE.modelTurn, props, recordFailure), { resultPath: '$.caught' });

    const runTools = new sfn.Map(this, STATE.runTools, {
      itemsPath: '$.calls',
      maxConcurrency: props.toolConcurrency,
      itemSelector: {
        'sessionId.$': '$.sessionId',
        'step.$': '$.step',
        'branch.$': '$.branch',
        'call.$': '$$.Map.Item.Value',
        approval: { decision: 'not_required' },
      },
      // Each iteration's {callId, status, events}: bounded by the calls of one turn.
      resultPath: '$.toolRuns',
    });
    runTools.itemProcessor(this.toolItem(props));
    runTools.addCatch(this.caught(STATE.runTools, props, recordFailure), { resultPath: '$.caught' });
    runTools.next(modelTurn);

    const outcome = (value: string): sfn.Condition => sfn.Condition.stringEquals('$.outcome', value);
    const continueAsNew = this.continueAsNew(props, recordFailure);
    const route = new sfn.Choice(this, STATE.route)
      .when(outcome('final'), new sfn.Succeed(this, STATE.done))
      .when(outcome('continue'), continueAsNew)
      .when(outcome('paused'), this.pauseForBudget(props, modelTurn, recordFailure))
      .when(outcome('review'), this.reviewOutput(props, modelTurn, recordFailure))
      .when(outcome('failed'), this.domainFailure('OutputValidationFailed', STATE.modelTurn, props, recordFailure))
      .when(
        sfn.Condition.numberGreaterThanEquals('$.step', props.maxSteps),
        this.failWith(STATE.stepLimitReached, 'StepLimitReached', `the agent reached its step limit of ${props.maxSteps} model turns`, props, recordFailure),
      )
      .when(outcome('tool_calls'), runTools)
      .when(outcome('repair'), modelTurn)
      .otherwise(this.failWith('UnexpectedOutcome', 'UnexpectedOutcome', 'the model turn returned an outcome the loop does not know', props, recordFailure));
    modelTurn.next(route);

    const prepared = new sfn.Choice(this, STATE.prepared)
      .when(outcome('ready'), modelTurn)
      .when(outcome('duplicate'), new sfn.Succeed(this, STATE.duplicate, { comment: 'this trigger already started another execution' }))
      .when(outcome('superseded'), new sfn.Succeed(this, STATE.superseded, { comment: 'a continuation whose session moved on (cancelled, or taken over by another execution)' }))
      .otherwise(this.domainFailure('InvalidInput', STATE.prepare, props, recordFailure));
    prepare.next(prepared);

    this.startState = prepare;
  }

  /**
   * One tool call: Dispatch (Choice on the tool's name) to the tool's own RunTool
   * Task (its TimeoutSeconds and Retry), through an approval wait first when the
   * tool needs one (then AfterApproval picks the tool's Task again).
   */
  private toolItem(props: AgentLoopProps): sfn.IChainable {
    const toolIs = (name: string): sfn.Condition => sfn.Condition.stringEquals('$.call.tool', name);
    const runTools = new Map(props.tools.map((tool) => [tool.name, this.runTool(tool)]));
    const dispatch = new sfn.Choice(this, STATE.dispatch, { comment: "to the tool's RunTool Task, through an approval wait when it needs one" });
    const approvalTools = props.tools.filter((t) => t.needsApproval);
    if (approvalTools.length > 0) {
      const requestApproval = this.approvalWait(STATE.requestApproval, props.approvalTimeoutSeconds, {
        kind: 'tool_call',
        call: sfn.JsonPath.objectAt('$.call'),
      }, '$.approval');
      const timedOut = new sfn.Pass(this, STATE.approvalTimedOut, {
        parameters: { decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON },
        resultPath: '$.approval',
      });
      requestApproval.addCatch(timedOut, { errors: [sfn.Errors.TIMEOUT], resultPath: '$.approval' });
      const afterApproval = new sfn.Choice(this, STATE.afterApproval);
      for (const tool of approvalTools) afterApproval.when(toolIs(tool.name), runTools.get(tool.name) as sfn.State);
      afterApproval.otherwise(new sfn.Fail(this, 'UnknownApprovedTool', { error: 'ConfigurationError', cause: 'an approved call names a tool the loop does not have' }));
      requestApproval.next(afterApproval);
      timedOut.next(afterApproval);
      for (const tool of approvalTools) dispatch.when(toolIs(tool.name), requestApproval);
    }
    for (const tool of props.tools) dispatch.when(toolIs(tool.name), runTools.get(tool.name) as sfn.State);
    // A call for a tool the agent does not have never reaches the Map (the model turn answers it); this is a
    // backstop. Inside the Map: failing the iteration fails RunTools, whose Catch records it.
    return dispatch.otherwise(new sfn.Fail(this, 'UnknownToolCall', { error: 'ConfigurationError', cause: 'a tool call names a tool the loop does not have' }));
  }

  /** A tool's RunTool Task: its function, its TimeoutSeconds (plus a margin) and its Retry. */
  private runTool(tool: LoopTool): sfn.State {
    const task = new tasks.LambdaInvoke(this, `${STATE.runTool}-${tool.name}`, {
      lambdaFunction: tool.function,
      comment: `tool ${tool.name}`,
      payload: sfn.TaskInput.fromObject({
        sessionId: sfn.JsonPath.stringAt('$.sessionId'),
        step: sfn.JsonPath.numberAt('$.step'),
        branch: sfn.JsonPath.numberAt('$.branch'),
        call: sfn.JsonPath.objectAt('$.call'),
        approval: sfn.JsonPath.objectAt('$.approval'),
        executionArn: EXECUTION_ARN,
        retryCount: sfn.JsonPath.numberAt('$$.State.RetryCount'),
      }),
      taskTimeout: sfn.Timeout.duration(Duration.seconds(tool.timeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS)),
      retryOnServiceExceptions: false,
      outputPath: '$.Payload',
    });
    this.retryFaults(task, true, tool.retry);
    return task;
  }

  /**
   * A `.waitForTaskToken` task of the runtime's approval function (tool approvals,
   * output reviews, budget pauses), with its timeout. The wait's own timeout is an
   * outcome (caught by the caller), never retried.
   */
  private approvalWait(id: string, timeoutSeconds: number, fields: Record<string, unknown>, resultPath: string): tasks.LambdaInvoke {
    const wait = new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.approvalFunction,
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: sfn.TaskInput.fromObject({
        agent: this.agentName,
        sessionId: sfn.JsonPath.stringAt('$.sessionId'),
        step: sfn.JsonPath.numberAt('$.step'),
        ...fields,
        taskToken: sfn.JsonPath.taskToken,
        timeoutSeconds,
        // The wait's clock starts here, not when the Lambda runs: expiry is computed from it.
        requestedAt: sfn.JsonPath.stringAt('$$.State.EnteredTime'),
        executionArn: EXECUTION_ARN,
      }),
      taskTimeout: sfn.Timeout.duration(Duration.seconds(timeoutSeconds)),
      retryOnServiceExceptions: false,
      resultPath,
    });
    wait.addRetry({ errors: [sfn.Errors.TIMEOUT], maxAttempts: 0 });
    this.retryFaults(wait);
    return wait;
  }

  /**
   * PauseForBudget: waits (`.waitForTaskToken`) for `raise-budget` (back to the model
   * turn, which checks the budgets again) or `stop` (Stopped, partial results kept).
   * Past its timeout the run fails with `BudgetExhausted`.
   */
  private pauseForBudget(props: AgentLoopProps, modelTurn: sfn.State, recordFailure: sfn.State): sfn.State {
    const pause = this.approvalWait(STATE.pauseForBudget, props.budgetPauseTimeoutSeconds, {
      kind: 'budget_pause',
      pause: sfn.JsonPath.objectAt('$.pause'),
    }, '$.decision');
    const exhausted = this.failWith(STATE.budgetExhausted, 'BudgetExhausted', `a budget was used up and not raised within ${props.budgetPauseTimeoutSeconds} s`, props, recordFailure);
    pause.addCatch(exhausted, { errors: [sfn.Errors.TIMEOUT], resultPath: '$.caught' });
    pause.addCatch(this.caught(STATE.pauseForBudget, props, recordFailure), { resultPath: '$.caught' });
    pause.next(
      new sfn.Choice(this, STATE.raised)
        .when(sfn.Condition.stringEquals('$.decision.decision', 'raised'), modelTurn)
        .otherwise(new sfn.Succeed(this, STATE.stopped, { comment: 'stopped while paused on a budget; partial results are in the session' })),
    );
    return pause;
  }

  /** ReviewOutput: a human approves or rejects the answer; the model turn records the outcome. */
  private reviewOutput(props: AgentLoopProps, modelTurn: sfn.State, recordFailure: sfn.State): sfn.State {
    const review = this.approvalWait(STATE.reviewOutput, props.approvalTimeoutSeconds, { kind: 'output_review', branch: sfn.JsonPath.numberAt('$.branch') }, '$.decision');
    const timedOut = new sfn.Pass(this, STATE.reviewTimedOut, {
      parameters: { decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON },
      resultPath: '$.decision',
    });
    review.addCatch(timedOut, { errors: [sfn.Errors.TIMEOUT], resultPath: '$.decision' });
    review.addCatch(this.caught(STATE.reviewOutput, props, recordFailure), { resultPath: '$.caught' });
    timedOut.next(modelTurn);
    review.next(modelTurn);
    return review;
  }

  /**
   * ContinueAsNew: StartExecution (Step Functions service integration, request-response)
   * of this state machine, named and given input by the model turn's `continuation`;
   * then ContinuedAsNew (Succeed). The name makes it idempotent: a retried start
   * that finds the execution already there (ExecutionAlreadyExists) has succeeded.
   */
  private continueAsNew(props: AgentLoopProps, recordFailure: sfn.State): sfn.State {
    const start = new sfn.CustomState(this, STATE.continueAsNew, {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${Aws.PARTITION}:states:::states:startExecution`,
        Parameters: {
          'StateMachineArn.$': '$$.StateMachine.Id',
          'Name.$': '$.continuation.name',
          Input: {
            'continuation.$': '$.continuation.input.continuation',
            // Links the executions in the console (Step Functions' own field).
            'AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$': '$$.Execution.Id',
          },
        },
        ResultSelector: { 'executionArn.$': '$.ExecutionArn' },
        ResultPath: '$.continued',
      },
    });
    start.addRetry({ errors: ['StepFunctions.ExecutionAlreadyExistsException', 'ExecutionAlreadyExists'], maxAttempts: 0 });
    this.retryFaults(start);
    const done = new sfn.Succeed(this, STATE.continuedAsNew, { comment: 'the session continues in the execution named by $.continuation.name' });
    start.addCatch(done, { errors: ['StepFunctions.ExecutionAlreadyExistsException', 'ExecutionAlreadyExists'], resultPath: '$.alreadyStarted' });
    start.addCatch(this.caught(STATE.continueAsNew, props, recordFailure), { resultPath: '$.caught' });
    start.next(done);
    return start;
  }

  /**
   * Terminal errors are not retried; every other fault is, with backoff and full jitter.
   * @param idempotent the step's call runs under Powertools idempotency: a locked key
   *   (an attempt that died mid-call) is retried more slowly, until the lock expires
   * @param retry a tool's declared retry, instead of {@link TASK_RETRY}
   */
  private retryFaults(task: sfn.TaskStateBase | sfn.CustomState, idempotent = false, retry?: ToolRetry): void {
    task.addRetry({ errors: [...TERMINAL_ERROR_NAMES], maxAttempts: 0 });
    if (idempotent) {
      task.addRetry({
        errors: [...IN_PROGRESS_RETRY.errors],
        maxAttempts: IN_PROGRESS_RETRY.maxAttempts,
        interval: Duration.seconds(IN_PROGRESS_RETRY.intervalSeconds),
        backoffRate: IN_PROGRESS_RETRY.backoffRate,
        maxDelay: Duration.seconds(IN_PROGRESS_RETRY.maxDelaySeconds),
        jitterStrategy: sfn.JitterType.FULL,
      });
    }
    task.addRetry({
      errors: [sfn.Errors.ALL],
      // A tool's `maxAttempts` counts the first attempt; Retry's MaxAttempts counts retries.
      maxAttempts: retry ? retry.maxAttempts - 1 : TASK_RETRY.maxAttempts,
      interval: Duration.seconds(retry?.intervalSeconds ?? TASK_RETRY.intervalSeconds),
      backoffRate: retry?.backoffRate ?? TASK_RETRY.backoffRate,
      maxDelay: Duration.seconds(retry?.maxDelaySeconds ?? TASK_RETRY.maxDelaySeconds),
      jitterStrategy: retry?.jitter === 'none' ? sfn.JitterType.NONE : sfn.JitterType.FULL,
    });
  }

  /** RecordFailure then Fail, with the recorded error and cause. */
  private recordFailure(props: AgentLoopProps): sfn.State {
    const record = new tasks.LambdaInvoke(this, STATE.recordFailure, {
      lambdaFunction: props.recordFailureFunction,
      retryOnServiceExceptions: false,
      outputPath: '$.Payload',
    });
    const retry = {
      errors: [sfn.Errors.ALL],
      maxAttempts: FAILURE_RETRY.maxAttempts,
      interval: Duration.seconds(FAILURE_RETRY.intervalSeconds),
      backoffRate: FAILURE_RETRY.backoffRate,
      jitterStrategy: sfn.JitterType.FULL,
    };
    record.addRetry(retry);
    const failed = new sfn.Fail(this, STATE.failed, {
      errorPath: sfn.JsonPath.stringAt('$.error'),
      causePath: sfn.JsonPath.stringAt('$.cause'),
    });
    // If even recording fails, the envelope still reaches the DLQ, straight from the state
    // machine (no Lambda), and the execution ends FAILED. The session id is the execution
    // name here: exact for API-started runs, the execution's own name otherwise.
    const lastResort = new tasks.SqsSendMessage(this, 'SendEnvelopeDirectly', {
      queue: props.deadLetterQueue,
      messageBody: sfn.TaskInput.fromObject({
        schemaVersion: EVENT_SCHEMA_VERSION,
        agent: props.agentName,
        sessionId: sfn.JsonPath.stringAt('$.executionName'),
        executionArn: sfn.JsonPath.stringAt('$.executionArn'),
        failedState: sfn.JsonPath.stringAt('$.failedState'),
        error: 'RecordFailureFailed',
        // Everything known: the failure being recorded (state, caught error) and why recording failed.
        cause: sfn.JsonPath.jsonToString(sfn.JsonPath.entirePayload),
        time: sfn.JsonPath.stringAt('$$.State.EnteredTime'),
      }),
      resultPath: sfn.JsonPath.DISCARD,
    });
    lastResort.addRetry(retry);
    const unrecorded = new sfn.Fail(this, 'RecordFailureFailed', { error: 'RecordFailureFailed', cause: 'the failure could not be recorded in the session; its envelope went to the DLQ' });
    lastResort.next(unrecorded);
    lastResort.addCatch(unrecorded);
    record.addCatch(lastResort, { resultPath: '$.recordFailureError' });
    record.next(failed);
    return record;
  }

  /** A Pass that turns a caught fault at `failedState` into RecordFailure's input. */
  private caught(failedState: string, props: AgentLoopProps, next: sfn.State): sfn.IChainable {
    return this.failurePass(`${failedState}Failed`, failedState, props, next, { 'state.$': '$', 'caught.$': '$.caught' });
  }

  /** A Pass that hands a failure the step returned as a value (`$.failure`) to RecordFailure. */
  private domainFailure(id: string, failedState: string, props: AgentLoopProps, next: sfn.State): sfn.IChainable {
    return this.failurePass(id, failedState, props, next, { 'state.$': '$' });
  }

  /** A Pass that fails the run with a fixed error decided by the definition itself. */
  private failWith(id: string, error: string, cause: string, props: AgentLoopProps, next: sfn.State): sfn.IChainable {
    return this.failurePass(id, id, props, next, { state: { 'sessionId.$': '$.sessionId', 'step.$': '$.step', failure: { error, cause } } });
  }

  /** RecordFailure's input: the agent, the execution, the failed state, and `fields`. */
  private failurePass(id: string, failedState: string, props: AgentLoopProps, next: sfn.State, fields: Record<string, unknown>): sfn.IChainable {
    return new sfn.Pass(this, id, {
      parameters: { agent: props.agentName, 'executionArn.$': '$$.Execution.Id', 'executionName.$': '$$.Execution.Name', failedState, ...fields },
    }).next(next);
  }
}
