/**
 * The agent loop as a Step Functions fragment:
 *
 * ```
 * Prepare → Prepared? ─ready→ ModelTurn → Route ─tool_calls→ RunTools (Map) ─→ ModelTurn
 *                      ├duplicate→ DuplicateTrigger (Succeed)  ├final→ Done (Succeed)
 *                      ├superseded→ Superseded (Succeed)       ├continue→ ContinueAsNew (StartExecution of this
 *                      │                                       │          state machine) → ContinuedAsNew (Succeed)
 *                      └failed→ InvalidInput ─┐                ├repair→ ModelTurn
 *                                             │                ├step ≥ maxSteps→ StepLimitReached ─┐
 *                                             │                └failed→ OutputValidationFailed ───┤
 *   any task failing past its retries → <State>Failed ─────────────────────────────→ RecordFailure → Failed (Fail)
 *                                              RecordFailure failing → SendEnvelopeDirectly (SQS) → RecordFailureFailed (Fail)
 *
 * RunTools item: NeedsApproval? ─yes→ RequestApproval (.waitForTaskToken, TimeoutSeconds) ─→ RunTool
 *                                │     └States.Timeout→ ApprovalTimedOut ─────────────────↗
 *                                └no→ RunTool (FunctionName.$ from the item)
 * ```
 *
 * Outcomes are values routed by Choice states; thrown errors are faults, retried
 * with exponential backoff and full jitter, then caught and recorded. The step
 * limit is a Choice rule of the definition. The payload is a pointer (session
 * id, step, counters, the current turn's call list); the Map discards its
 * results. A turn with one tool call takes 5 state transitions
 * (ModelTurn, Route, RunTools, NeedsApproval, RunTool).
 */
import { Aws, Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { APPROVAL_TIMED_OUT_REASON, EVENT_SCHEMA_VERSION, FAILURE_RETRY, IN_PROGRESS_RETRY, TASK_RETRY } from '../lambdas/core/constants';
import { TERMINAL_ERROR_NAMES } from '../lambdas/core/errors';

/** Props of {@link AgentLoop}. */
export interface AgentLoopProps {
  readonly agentName: string;
  /** Model turns allowed; a run reaching it ends with `StepLimitReached`. */
  readonly maxSteps: number;
  /** The RunTools Map's MaxConcurrency. */
  readonly toolConcurrency: number;
  /** TimeoutSeconds of each approval wait. */
  readonly approvalTimeoutSeconds: number;
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
  needsApproval: 'NeedsApproval?',
  requestApproval: 'RequestApproval',
  approvalTimedOut: 'ApprovalTimedOut',
  runTool: 'RunTool',
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
  'events.$': '$.events',
  'execution.$': '$.execution',
  'branch.$': '$.branch',
  'toolRuns.$': '$.toolRuns',
};

const EXECUTION_ARN = sfn.JsonPath.stringAt('$$.Execution.Id');

/**
 * The agent loop. Start state: Prepare. It ends in Done, DuplicateTrigger or Failed.
 * Functions invoked by ARN from the payload (the tools) are not known to the
 * graph: grant the state machine `lambda:InvokeFunction` on them.
 */
export class AgentLoop extends sfn.StateMachineFragment {
  readonly startState: sfn.State;
  readonly endStates: sfn.INextable[] = [];

  constructor(scope: Construct, id: string, props: AgentLoopProps) {
    super(scope, id);
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

  /** One tool call: an approval wait when the tool needs one, then the tool's function. */
  private toolItem(props: AgentLoopProps): sfn.IChainable {
    const runTool = new sfn.CustomState(this, STATE.runTool, {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${Aws.PARTITION}:states:::lambda:invoke`,
        Parameters: {
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
        },
        OutputPath: '$.Payload',
      },
    });
    this.retryFaults(runTool, true);

    const requestApproval = new tasks.LambdaInvoke(this, STATE.requestApproval, {
      lambdaFunction: props.approvalRequestFunction,
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: sfn.TaskInput.fromObject({
        agent: props.agentName,
        sessionId: sfn.JsonPath.stringAt('$.sessionId'),
        step: sfn.JsonPath.numberAt('$.step'),
        call: sfn.JsonPath.objectAt('$.call'),
        taskToken: sfn.JsonPath.taskToken,
        timeoutSeconds: props.approvalTimeoutSeconds,
        // The wait's clock starts here, not when the Lambda runs: expiry is computed from it.
        requestedAt: sfn.JsonPath.stringAt('$$.State.EnteredTime'),
        executionArn: EXECUTION_ARN,
      }),
      taskTimeout: sfn.Timeout.duration(Duration.seconds(props.approvalTimeoutSeconds)),
      retryOnServiceExceptions: false,
      resultPath: '$.approval',
    });
    // The wait's own timeout is an outcome (rejected, "timed out"), never retried.
    requestApproval.addRetry({ errors: [sfn.Errors.TIMEOUT], maxAttempts: 0 });
    this.retryFaults(requestApproval);
    const timedOut = new sfn.Pass(this, STATE.approvalTimedOut, {
      parameters: { decision: 'timed_out', reason: APPROVAL_TIMED_OUT_REASON },
      resultPath: '$.approval',
    });
    requestApproval.addCatch(timedOut, { errors: [sfn.Errors.TIMEOUT], resultPath: '$.approval' });
    requestApproval.next(runTool);
    timedOut.next(runTool);

    return new sfn.Choice(this, STATE.needsApproval)
      .when(sfn.Condition.booleanEquals('$.call.needsApproval', true), requestApproval)
      .otherwise(runTool);
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
   */
  private retryFaults(task: sfn.TaskStateBase | sfn.CustomState, idempotent = false): void {
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
      maxAttempts: TASK_RETRY.maxAttempts,
      interval: Duration.seconds(TASK_RETRY.intervalSeconds),
      backoffRate: TASK_RETRY.backoffRate,
      maxDelay: Duration.seconds(TASK_RETRY.maxDelaySeconds),
      jitterStrategy: sfn.JitterType.FULL,
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
