/**
 * The shared runtime every agent binds to: the checkpoint table (its stream
 * feeds the event log), the event log, the approval table, the runtime's event
 * bus, the dead-letter queues, the projector, the approval and failure
 * functions, and the HTTP API.
 */
import * as path from 'node:path';
import { Duration, Lazy, RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { APPROVALS_BY_SESSION_INDEX, DEFAULT_BODY_INLINE_LIMIT_BYTES, PROJECTOR_STREAM, TRIGGER_DELIVERY } from '../../lambdas/core/constants';
import { ENV } from '../../lambdas/core/env-names';
import { PROJECT_ROOT, RuntimeFunction } from './runtime-function';

const handlerEntry = (name: string): string => path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${name}.ts`);

/** Props of {@link AgentRuntime}. */
export interface AgentRuntimeProps {
  /**
   * What happens to the checkpoint, event log and approval tables and the dead-letter
   * queues when the stack is deleted.
   * @default RemovalPolicy.RETAIN (they are the audit record and the failed runs)
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * How callers authenticate to the HTTP API.
   * @default apigw.AuthorizationType.IAM (SigV4-signed requests)
   */
  readonly apiAuthorization?: apigw.AuthorizationType.IAM | apigw.AuthorizationType.NONE;
  /** Days the dead-letter queues keep messages: an integer from 1 to 14 (the constructor throws otherwise). @default 14 (the SQS maximum) */
  readonly deadLetterRetentionDays?: number;
  /**
   * Bodies (tool results, model responses) larger than this many bytes are stored in
   * the body bucket and checkpointed by reference: an integer from 1 to 262144 (256 KiB;
   * the constructor throws otherwise). @default 16384 (16 KiB)
   */
  readonly bodyInlineLimitBytes?: number;
  /**
   * Adds the fault table and lets agents' steps fail on purpose where a row of it
   * says so (chaos tests of durability; see `lambdas/adapters/fault-injection.ts`).
   * Never enable it in production. @default false
   */
  readonly faultInjection?: boolean;
  /**
   * The deployment's environment, as policies see it: the `environment` attribute of
   * every Cedar `Tool` entity (`resource.environment == "production"`). It must match
   * `^[A-Za-z0-9_-]{1,64}$` (1 to 64 letters, digits, `_` or `-`); the constructor
   * throws an Error naming the value otherwise. @default 'production'
   */
  readonly environment?: string;
  /**
   * Where the functions log: `per-function` (a log group each, retained 30 days), or
   * `shared`: one log group ({@link AgentRuntime.logGroup}) for the runtime's and every
   * agent's functions (Lambda advanced logging controls), one resource instead of one
   * per function, queried together with Logs Insights. @default 'per-function'
   */
  readonly logGroups?: 'per-function' | 'shared';
}

/**
 * The shared runtime. Agents register with {@link AgentRuntime.registerAgent}
 * (the {@link Agent} construct does it), which wires them into the API and
 * grants the approval functions their task callbacks.
 * @throws Error from the constructor, naming the prop and the value, when
 *   `deadLetterRetentionDays`, `bodyInlineLimitBytes` or `environment` is out of range.
 */
export class AgentRuntime extends Construct {
  /** Sessions and checkpoints; partition key `sessionId`, sort key `sk`; stream NEW_AND_OLD_IMAGES. */
  readonly checkpointTable: dynamodb.Table;
  /** Append-only event log; partition key `sessionId`, sort key `seq`. */
  readonly eventTable: dynamodb.Table;
  /** Pending approvals with their task tokens; partition key `approvalId`; GSI `bySession`. */
  readonly approvalTable: dynamodb.Table;
  /** The runtime's bus: `ApprovalRequested` and later runtime events. */
  readonly eventBus: events.EventBus;
  /** One envelope per failed run (agent, session, execution, failed state, error, cause, time). */
  readonly deadLetterQueue: sqs.Queue;
  /** Undeliverable trigger events and stream records the projector could not append. */
  readonly deliveryDeadLetterQueue: sqs.Queue;
  /** Appends checkpoint-stream changes to the event log. */
  readonly projectorFunction: lambda.IFunction;
  /** The `.waitForTaskToken` task of approvals: stores the token, announces the request. */
  readonly approvalRequestFunction: lambda.IFunction;
  /** Records a failed run and sends its envelope to the dead-letter queue (the loop's RecordFailure task). */
  readonly recordFailureFunction: lambda.IFunction;
  /**
   * Receives Step Functions "Execution Status Change" events (FAILED, TIMED_OUT,
   * ABORTED) of every agent: records runs that ended outside the loop's Catch graph.
   */
  readonly executionStatusFunction: lambda.IFunction;
  /** Bodies stored by reference: large tool results and model responses (SSE-S3, TLS only, no public access). */
  readonly bodyBucket: s3.Bucket;
  /** Powertools idempotency records of model and tool calls; partition key `id`, TTL `expiration`. */
  readonly idempotencyTable: dynamodb.Table;
  /** Injected faults (only with `faultInjection`); partition key `sessionId`, sort key `point`. */
  readonly faultTable?: dynamodb.Table;
  /**
   * Operators' policy overrides, one item per agent (partition key `agent`): when
   * present, it replaces the agent's bundled Cedar policies at the next decision
   * (`agentctl policy put`). Read before every decision, never cached.
   */
  readonly policyTable: dynamodb.Table;
  /**
   * The models' health, shared by every agent's model-turn functions (partition key
   * `model`, sort key `sk`, TTL `expiresAt`): latency and error counts per time bucket,
   * and one circuit breaker per provider and model (`adapters/model-health.ts`).
   */
  readonly modelHealthTable: dynamodb.Table;
  /** The deployment's environment (the Cedar `Tool` entities' `environment`). */
  readonly environment: string;
  /** The log group every function shares, with `logGroups: 'shared'` (retained 30 days). */
  readonly logGroup?: logs.LogGroup;
  /** Bodies larger than this many bytes go to {@link bodyBucket}. */
  readonly bodyInlineLimitBytes: number;
  /**
   * Controls sessions: resumes, cancels, rolls back, raises the budgets of (raise-budget,
   * which also answers a budget pause) and stops (a budget-paused run) them:
   * POST /runs/{sessionId}/resume, /cancel, /rollback, /budget and /stop
   * (`lambdas/handlers/api-control-run.ts`).
   */
  readonly controlRunFunction: RuntimeFunction;
  /** The HTTP API (REST, IAM authorisation): runs, events, approvals. */
  readonly api: apigw.RestApi;

  private readonly agentNames: string[] = [];
  private readonly agentsResource: apigw.Resource;
  private readonly decideApprovalFunction: RuntimeFunction;
  /**
   * approval-request's task responses (a budget pause raised ahead of its wait), apart from
   * its default policy: the state machines invoke approval-request, and a function depends on
   * its default policy, so a grant there on them would make a dependency cycle.
   */
  private approvalRequestTaskResponses?: iam.Policy;

  constructor(scope: Construct, id: string, props: AgentRuntimeProps = {}) {
    super(scope, id);
    const retention = props.deadLetterRetentionDays ?? 14;
    if (!Number.isInteger(retention) || retention < 1 || retention > 14) {
      throw new Error(`AgentRuntime: deadLetterRetentionDays must be an integer from 1 to 14 (SQS MessageRetentionPeriod), got ${retention}`);
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const table = (tid: string, partitionKey: string, sortKey?: string, stream?: dynamodb.StreamViewType): dynamodb.Table =>
      new dynamodb.Table(this, tid, {
        partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: sortKey ? { name: sortKey, type: dynamodb.AttributeType.STRING } : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        stream,
        removalPolicy,
      });
    this.checkpointTable = table('Checkpoints', 'sessionId', 'sk', dynamodb.StreamViewType.NEW_AND_OLD_IMAGES);
    this.bodyInlineLimitBytes = props.bodyInlineLimitBytes ?? DEFAULT_BODY_INLINE_LIMIT_BYTES;
    if (!Number.isInteger(this.bodyInlineLimitBytes) || this.bodyInlineLimitBytes < 1 || this.bodyInlineLimitBytes > 256 * 1024) {
      throw new Error(`AgentRuntime: bodyInlineLimitBytes must be an integer from 1 to 262144 (256 KiB), got ${this.bodyInlineLimitBytes}`);
    }
    this.bodyBucket = new s3.Bucket(this, 'Bodies', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });
    this.idempotencyTable = new dynamodb.Table(this, 'Idempotency', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: 'expiration',
      removalPolicy,
    });
    if (props.faultInjection) {
      this.faultTable = new dynamodb.Table(this, 'Faults', {
        partitionKey: { name: 'sessionId', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'point', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        removalPolicy: RemovalPolicy.DESTROY,
      });
    }
    if (props.logGroups === 'shared') {
      this.logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.RETAIN });
    }
    this.environment = props.environment ?? 'production';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(this.environment)) throw new Error(`AgentRuntime: environment must be 1-64 characters of [A-Za-z0-9_-], got "${this.environment}"`);
    this.policyTable = table('Policies', 'agent');
    // Short-lived counters: no point-in-time recovery; buckets expire by TTL after two windows.
    this.modelHealthTable = new dynamodb.Table(this, 'ModelHealth', {
      partitionKey: { name: 'model', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: 'expiresAt',
      removalPolicy,
    });
    this.eventTable = table('Events', 'sessionId', 'seq');
    this.approvalTable = table('Approvals', 'approvalId');
    this.approvalTable.addGlobalSecondaryIndex({
      indexName: APPROVALS_BY_SESSION_INDEX,
      partitionKey: { name: 'sessionId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'requestedAt', type: dynamodb.AttributeType.STRING },
      // Never the task token: the index serves the status API.
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: ['agent', 'step', 'callId', 'tool', 'input', 'status', 'expiresAt'],
    });

    const queue = (qid: string): sqs.Queue =>
      new sqs.Queue(this, qid, {
        retentionPeriod: Duration.days(retention),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        removalPolicy,
      });
    this.deadLetterQueue = queue('DeadLetterQueue');
    this.deliveryDeadLetterQueue = queue('DeliveryDeadLetterQueue');

    const fn = (fid: string, entry: string, description: string, environment: Record<string, string>): RuntimeFunction =>
      new RuntimeFunction(this, fid, { entry: handlerEntry(entry), description, serviceName: 'agent-runtime', environment, logGroup: this.logGroup });

    this.eventBus = new events.EventBus(this, 'Bus');
    const projector = fn('Projector', 'projector', 'Appends checkpoint changes to the event log and publishes governance events', {
      [ENV.eventTable]: this.eventTable.tableName,
      [ENV.eventBusName]: this.eventBus.eventBusName,
    });
    this.eventTable.grant(projector, 'dynamodb:PutItem');
    this.eventBus.grantPutEventsTo(projector);
    projector.addEventSource(
      new sources.DynamoEventSource(this.checkpointTable, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: PROJECTOR_STREAM.batchSize,
        maxBatchingWindow: Duration.seconds(PROJECTOR_STREAM.maxBatchingWindowSeconds),
        parallelizationFactor: 1,
        bisectBatchOnError: true,
        retryAttempts: PROJECTOR_STREAM.retryAttempts,
        reportBatchItemFailures: true,
        onFailure: new sources.SqsDlq(this.deliveryDeadLetterQueue),
      }),
    );
    this.projectorFunction = projector;

    const checkpointEnv = { [ENV.checkpointTable]: this.checkpointTable.tableName };
    const approvalRequest = fn('ApprovalRequest', 'approval-request', 'Stores an approval task token and announces the request', {
      ...checkpointEnv,
      [ENV.approvalTable]: this.approvalTable.tableName,
      [ENV.eventBusName]: this.eventBus.eventBusName,
    });
    // PutItem (approval and pause records), UpdateItem (pausing the session head, conditional on its execution).
    this.checkpointTable.grant(approvalRequest, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    this.approvalTable.grant(approvalRequest, 'dynamodb:PutItem');
    this.bodyBucket.grantRead(approvalRequest);
    approvalRequest.addEnvironment(ENV.bodyBucket, this.bodyBucket.bucketName);
    this.grantFaultInjection(approvalRequest);
    this.eventBus.grantPutEventsTo(approvalRequest);
    this.approvalRequestFunction = approvalRequest;

    // Both record failures: update the session head, send the envelope.
    const failureRecorder = (fid: string, entry: string, description: string): RuntimeFunction => {
      const f = fn(fid, entry, description, { ...checkpointEnv, [ENV.deadLetterQueueUrl]: this.deadLetterQueue.queueUrl });
      this.checkpointTable.grant(f, 'dynamodb:UpdateItem');
      this.deadLetterQueue.grantSendMessages(f);
      return f;
    };
    this.recordFailureFunction = failureRecorder('RecordFailure', 'record-failure', 'Records a failed run and sends its envelope to the dead-letter queue');
    this.executionStatusFunction = failureRecorder('ExecutionStatus', 'execution-status', 'Records runs that ended outside the agent loop (aborted, timed out, uncaught)');

    // HTTP API (API Gateway REST, Lambda proxy).
    const unknownAgent = fn('UnknownAgent', 'api-unknown-agent', 'POST /agents/{agent}/runs for names no agent has', {
      [ENV.agentNames]: Lazy.string({ produce: () => this.agentNames.join(',') }),
    });
    const getRun = fn('GetRun', 'api-get-run', 'GET /runs/{sessionId} and /runs/{sessionId}/events', {
      ...checkpointEnv,
      [ENV.approvalTable]: this.approvalTable.tableName,
      [ENV.eventTable]: this.eventTable.tableName,
    });
    this.checkpointTable.grant(getRun, 'dynamodb:GetItem');
    this.approvalTable.grant(getRun, 'dynamodb:Query');
    this.eventTable.grant(getRun, 'dynamodb:Query');
    this.decideApprovalFunction = fn('DecideApproval', 'api-decide-approval', 'POST /approvals/{approvalId}', {
      [ENV.approvalTable]: this.approvalTable.tableName,
    });
    this.approvalTable.grant(this.decideApprovalFunction, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    this.controlRunFunction = fn('ControlRun', 'api-control-run', 'POST /runs/{sessionId}/resume, /cancel, /rollback, /budget and /stop', {
      ...checkpointEnv,
      [ENV.approvalTable]: this.approvalTable.tableName,
    });
    this.checkpointTable.grant(this.controlRunFunction, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query', 'dynamodb:ConditionCheckItem');
    this.approvalTable.grant(this.controlRunFunction, 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:UpdateItem');

    const authorizationType = props.apiAuthorization ?? apigw.AuthorizationType.IAM;
    this.api = new apigw.RestApi(this, 'Api', {
      description: 'Agent runtime: start runs, read status and events, decide approvals',
      deployOptions: { stageName: 'v1', tracingEnabled: true, throttlingRateLimit: 100, throttlingBurstLimit: 200 },
      defaultMethodOptions: { authorizationType },
      // Do not take over the account's per-region API Gateway logging role.
      cloudWatchRole: false,
    });
    const integration = (f: lambda.IFunction): apigw.LambdaIntegration => new apigw.LambdaIntegration(f, { proxy: true });
    // Each agent adds /agents/<name>/runs (registerAgent); other names reach this 404.
    this.agentsResource = this.api.root.addResource('agents');
    this.agentsResource.addResource('{agent}').addResource('runs').addMethod('POST', integration(unknownAgent));
    const run = this.api.root.addResource('runs').addResource('{sessionId}');
    run.addMethod('GET', integration(getRun));
    run.addResource('events').addMethod('GET', integration(getRun));
    for (const action of ['resume', 'cancel', 'rollback', 'budget', 'stop']) run.addResource(action).addMethod('POST', integration(this.controlRunFunction));
    this.api.root.addResource('approvals').addResource('{approvalId}').addMethod('POST', integration(this.decideApprovalFunction));
  }

  /**
   * Wires an agent into the runtime: POST /agents/<name>/runs goes to its start-run
   * function, the decide-approval function may answer its task tokens, and its
   * executions' ends (FAILED, TIMED_OUT, ABORTED) reach the execution-status function.
   * @throws Error when an agent of that name is already registered.
   */
  registerAgent(name: string, stateMachine: sfn.StateMachine, startRunFunction: lambda.IFunction): void {
    if (this.agentNames.includes(name)) throw new Error(`AgentRuntime: an agent named "${name}" is already registered`);
    this.agentNames.push(name);
    this.agentsResource.addResource(name).addResource('runs').addMethod('POST', new apigw.LambdaIntegration(startRunFunction, { proxy: true }));
    stateMachine.grant(this.decideApprovalFunction, 'states:SendTaskSuccess');
    // raise-budget and stop answer a budget pause's task token.
    stateMachine.grant(this.controlRunFunction, 'states:SendTaskSuccess');
    // A pause the budget was raised ahead of answers its own (approval-request).
    const approvalRequestRole = this.approvalRequestFunction.role;
    if (!approvalRequestRole) throw new Error('AgentRuntime: the approval-request function has no role');
    this.approvalRequestTaskResponses ??= new iam.Policy(this, 'ApprovalRequestTaskResponses', { roles: [approvalRequestRole] });
    this.approvalRequestTaskResponses.addStatements(new iam.PolicyStatement({ actions: ['states:SendTaskSuccess'], resources: [stateMachine.stateMachineArn] }));
    stateMachine.grantStartExecution(this.controlRunFunction);
    stateMachine.grantExecution(this.controlRunFunction, 'states:DescribeExecution', 'states:StopExecution', 'states:RedriveExecution');
    // Step Functions publishes execution status changes on the default bus.
    new events.Rule(this, `ExecutionEnded-${name}`, {
      description: `Records runs of ${name} that end outside the agent loop`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [stateMachine.stateMachineArn] },
      },
    }).addTarget(
      new targets.LambdaFunction(this.executionStatusFunction, {
        event: events.RuleTargetInput.fromObject({ agent: name, detail: events.EventField.fromPath('$.detail') }),
        deadLetterQueue: this.deliveryDeadLetterQueue,
        retryAttempts: TRIGGER_DELIVERY.retryAttempts,
        maxEventAge: Duration.hours(TRIGGER_DELIVERY.maxEventAgeHours),
      }),
    );
  }

  /**
   * Lets a function take part in fault injection when it is enabled (the fault
   * table's name in its environment, UpdateItem on it); nothing otherwise.
   */
  grantFaultInjection(fn: lambda.Function): void {
    if (!this.faultTable) return;
    fn.addEnvironment(ENV.faultTable, this.faultTable.tableName);
    this.faultTable.grant(fn, 'dynamodb:UpdateItem');
  }

  /** Grants the given DynamoDB actions on the checkpoint table (no wildcards). */
  grantCheckpoints(grantee: iam.IGrantable, ...actions: string[]): iam.Grant {
    return this.checkpointTable.grant(grantee, ...actions);
  }
}
