/**
 * Least privilege, function by function: every grant of every role, read from
 * the synthesized AWS::IAM::Policy resources.
 */
import '../../lib/text-assets';
import { Match } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IConstruct } from 'constructs';
import type { Agent } from '../../lib/constructs/agent';
import { AGENT_DEFINITIONS, EXAMPLE_AGENT, functionChild, synthRuntime, type RuntimeUnderTest } from './support/stack';
import { tunedAgent, TUNED_ANTHROPIC_SECRET, TUNED_BEDROCK_MODEL, TUNED_BEDROCK_PROFILE } from './support/tuned-agent';
import {
  allPolicyStatements,
  arnOf,
  asArray,
  grantLines,
  lines,
  logicalIdOf,
  must,
  oneOrAmong,
  refOf,
  render,
  resource,
  resourcesOfType,
  roleIdOf,
  statementsOfRole,
} from './support/template';

/** Lambda active tracing (CDK adds it with `tracing: ACTIVE`); X-Ray has no resource-level permissions. */
const LAMBDA_TRACING = ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'];
/** Step Functions tracing (`tracingEnabled: true`): the sampling calls as well. */
const SFN_TRACING = ['xray:GetSamplingRules', 'xray:GetSamplingTargets', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'];
/** Step Functions execution logging: CloudWatch Logs vended-log delivery actions, which only take "*". */
const SFN_LOG_DELIVERY = [
  'logs:CreateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:DescribeLogGroups',
  'logs:DescribeResourcePolicies',
  'logs:GetLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:UpdateLogDelivery',
];
/** DynamoDB stream event source: ListStreams has no resource type. */
const STREAM_LIST = ['dynamodb:ListStreams'];
/** The only actions a statement with Resource "*" may carry (minimizePolicies may merge the groups into one statement). */
const WILDCARD_ACTIONS = new Set([...LAMBDA_TRACING, ...SFN_TRACING, ...SFN_LOG_DELIVERY, ...STREAM_LIST]);

const TASK_RESPONSE_ACTIONS = ['states:SendTaskSuccess'];
/** `Bucket.grantRead`: objects and the bucket. */
const S3_READ = ['s3:GetBucket*', 's3:GetObject*', 's3:List*'];
/**
 * `Bucket.grantPut` (without ACL writes, `@aws-cdk/aws-s3:grantWriteWithoutAcl`): objects only, not the bucket.
 * No `s3:DeleteObject*`: a body, once written, is never deleted by the function that wrote it.
 */
const S3_PUT = ['s3:Abort*', 's3:PutObject', 's3:PutObjectLegalHold', 's3:PutObjectRetention', 's3:PutObjectTagging', 's3:PutObjectVersionTagging'];
/** A Powertools idempotency record: create, read, complete, or delete after a failure. */
const IDEMPOTENCY = ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
const SQS_SEND = ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'];
const STREAM_READ = ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'];

let rt: RuntimeUnderTest;
beforeAll(() => {
  rt = synthRuntime();
});

const runtime = (): RuntimeUnderTest['stack']['runtime'] => rt.stack.runtime;
/** A role's grants, without its log writes (the "own log group only" test covers those). */
const grantsOf = (grantee: { readonly role?: iam.IRole }): string[] =>
  grantLines(statementsOfRole(rt.template, roleIdOf(grantee))).filter((line) => !line.startsWith('logs:'));
const lambdaTracing = (): string[] => lines(LAMBDA_TRACING, ['*']);
const sorted = (values: string[]): string[] => [...values].sort();
/** The execution ARNs `grantExecution` scopes to: `arn:…:execution:<state machine name>:*`. */
const executionsOf = (sm: sfn.StateMachine): string =>
  `arn:\${AWS::Partition}:states:\${AWS::Region}:\${AWS::AccountId}:execution:\${Select(6, Split(:, ${refOf(sm)}))}:*`;
/** A bucket's objects and the bucket itself, as `Bucket.grant*` scopes its statements. */
const bucketAndObjects = (bucket: IConstruct): string[] => [arnOf(bucket), `${arnOf(bucket)}/*`];
const bodies = (actions: readonly string[]): string[] => lines(actions, bucketAndObjects(runtime().bodyBucket));
/** Read the bodies (`grantRead`: the bucket and its objects) and put new ones (`grantPut`: its objects only). */
const readAndPutBodies = (): string[] => [...bodies(S3_READ), ...lines(S3_PUT, [`${arnOf(runtime().bodyBucket)}/*`])];
const idempotencyRecords = (): string[] => lines(IDEMPOTENCY, [arnOf(runtime().idempotencyTable)]);
const checkpoints = (actions: readonly string[]): string[] => lines(actions, [arnOf(runtime().checkpointTable)]);
/** Reading the operators' policy override of the agent (one item per agent), before every decision. */
const policyOverride = (): string[] => [`dynamodb:GetItem ${arnOf(runtime().policyTable)}`];
/** The model health table: one Query reads a model's window and breaker; UpdateItem counts calls and moves breakers. */
const modelHealth = (): string[] => lines(['dynamodb:Query', 'dynamodb:UpdateItem'], [arnOf(runtime().modelHealthTable)]);
/** What the tuned agent's routes need: its Bedrock model, its inference profile and the profile's foundation model, its Anthropic key. */
const tunedModels = (): string[] => [
  `bedrock:InvokeModel arn:\${AWS::Partition}:bedrock:\${AWS::Region}::foundation-model/${TUNED_BEDROCK_MODEL}`,
  `bedrock:InvokeModel arn:\${AWS::Partition}:bedrock:\${AWS::Region}:\${AWS::AccountId}:inference-profile/${TUNED_BEDROCK_PROFILE}`,
  `bedrock:InvokeModel arn:\${AWS::Partition}:bedrock:*::foundation-model/amazon.nova-pro-v1:0`,
  ...lines(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'], [`arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${TUNED_ANTHROPIC_SECRET}-??????`]),
];
const toolFunctionsOf = (agent: Agent): lambda.Function[] =>
  must(AGENT_DEFINITIONS.find((d) => d.name === agent.name), `definition of ${agent.name}`).tools.map((t) => agent.toolFunction(t.name));

/**
 * `hasResourceProperties` on the role's policy: an Allow statement lists each of
 * `actions` (alone or among others) on `target` (alone or among others).
 */
function expectStatement(grantee: { readonly role?: iam.IRole }, actions: readonly string[], target: unknown): void {
  for (const action of actions) {
    rt.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: Match.arrayWith([{ Ref: roleIdOf(grantee) }]),
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Allow', Action: oneOrAmong(action), Resource: oneOrAmong(target) })]),
      },
    });
  }
}

describe('every IAM policy', () => {
  it('never allows the action "*" or a whole service ("service:*")', () => {
    const offenders = allPolicyStatements(rt.template).flatMap(({ policy, statement }) => {
      if (statement.NotAction !== undefined) return [`${policy}: NotAction`];
      return asArray(statement.Action)
        .filter((action) => action === '*' || /^[\w-]+:\*$/.test(action))
        .map((action) => `${policy}: ${action}`);
    });
    expect(offenders).toEqual([]);
  });

  it('uses Resource "*" only for the actions AWS offers no resource-level permission for', () => {
    const offenders = allPolicyStatements(rt.template)
      .filter(({ statement }) => statement.NotResource !== undefined || asArray(statement.Resource).includes('*'))
      .flatMap(({ policy, statement }) => asArray(statement.Action).filter((a) => !WILDCARD_ACTIONS.has(a)).map((a) => `${policy}: ${a} on *`));
    expect(offenders).toEqual([]);
  });

  it('has only Allow statements (no Deny for a grant to depend on)', () => {
    expect(allPolicyStatements(rt.template).filter(({ statement }) => statement.Effect !== 'Allow')).toEqual([]);
  });
});

describe('every function role', () => {
  /** Each Lambda function's role and log group, by logical id. */
  const functionRoles = (): { fn: string; role: string; group: string }[] =>
    Object.entries(resourcesOfType(rt.template, 'AWS::Lambda::Function')).map(([fn, res]) => ({
      fn,
      role: render(res.Properties.Role).replace(/^\$\{(.+)\.Arn\}$/, '$1'),
      group: render((res.Properties.LoggingConfig as { LogGroup?: unknown } | undefined)?.LogGroup).replace(/^\$\{(.+)\}$/, '$1'),
    }));

  it('may write logs into its own log group only', () => {
    const roles = functionRoles();
    expect(roles.length).toBeGreaterThan(0);
    for (const { fn, role, group } of roles) {
      // Not AWSLambdaBasicExecutionRole (logs:* on every log group): tool code handles untrusted input.
      const managed = asArray(resource(rt.template, role, 'AWS::IAM::Role').Properties.ManagedPolicyArns as unknown[] | undefined).map(render);
      expect(managed.filter((arn) => arn.endsWith(':iam::aws:policy/service-role/AWSLambdaBasicExecutionRole')), fn).toEqual([]);
      const logGrants = grantLines(statementsOfRole(rt.template, role)).filter((l) => l.startsWith('logs:'));
      expect(logGrants.filter((l) => l.startsWith('logs:PutLogEvents ')).length, `${fn} can still log`).toBeGreaterThan(0);
      expect(logGrants.filter((l) => !l.includes(`\${${group}.Arn}`)), fn).toEqual([]);
    }
  });
});

describe('projector', () => {
  it('may put items into the event table', () => {
    expectStatement(runtime().projectorFunction, ['dynamodb:PutItem'], { 'Fn::GetAtt': [logicalIdOf(runtime().eventTable), 'Arn'] });
  });

  it('may do nothing else to the event table (the log is append-only: no update, delete or batch write)', () => {
    const onEvents = grantsOf(runtime().projectorFunction).filter((l) => l.includes(logicalIdOf(runtime().eventTable)));
    expect(onEvents).toEqual([`dynamodb:PutItem ${arnOf(runtime().eventTable)}`]);
  });

  it('reads the checkpoint table through its stream only', () => {
    expectStatement(runtime().projectorFunction, STREAM_READ, { 'Fn::GetAtt': [logicalIdOf(runtime().checkpointTable), 'StreamArn'] });
    const onCheckpoints = grantsOf(runtime().projectorFunction).filter((l) => l.includes(logicalIdOf(runtime().checkpointTable)));
    expect(onCheckpoints).toEqual(lines(STREAM_READ, [`\${${logicalIdOf(runtime().checkpointTable)}.StreamArn}`]));
  });

  it('may put the governance events on the runtime bus, and on no other bus', () => {
    expectStatement(runtime().projectorFunction, ['events:PutEvents'], { 'Fn::GetAtt': [logicalIdOf(runtime().eventBus), 'Arn'] });
    expect(grantsOf(runtime().projectorFunction).filter((l) => l.startsWith('events:'))).toEqual([`events:PutEvents ${arnOf(runtime().eventBus)}`]);
  });

  it('is granted exactly: append to the event log, read the stream, publish governance events, send failed batches to the delivery DLQ, tracing', () => {
    expect(grantsOf(runtime().projectorFunction)).toEqual(
      sorted([
        ...lambdaTracing(),
        `dynamodb:PutItem ${arnOf(runtime().eventTable)}`,
        `events:PutEvents ${arnOf(runtime().eventBus)}`,
        ...lines(STREAM_READ, [`\${${logicalIdOf(runtime().checkpointTable)}.StreamArn}`]),
        ...lines(STREAM_LIST, ['*']),
        ...lines(SQS_SEND, [arnOf(runtime().deliveryDeadLetterQueue)]),
      ]),
    );
  });
});

describe('record-failure function', () => {
  it('may update the session head in the checkpoint table', () => {
    expectStatement(runtime().recordFailureFunction, ['dynamodb:UpdateItem'], { 'Fn::GetAtt': [logicalIdOf(runtime().checkpointTable), 'Arn'] });
  });

  it('may send the envelope to the dead-letter queue', () => {
    expectStatement(runtime().recordFailureFunction, ['sqs:SendMessage'], { 'Fn::GetAtt': [logicalIdOf(runtime().deadLetterQueue), 'Arn'] });
  });

  it('is granted exactly that (no put or delete of checkpoints, no other queue)', () => {
    expect(grantsOf(runtime().recordFailureFunction)).toEqual(
      sorted([
        ...lambdaTracing(),
        `dynamodb:UpdateItem ${arnOf(runtime().checkpointTable)}`,
        ...lines(SQS_SEND, [arnOf(runtime().deadLetterQueue)]),
      ]),
    );
  });
});

describe('execution-status function', () => {
  it('is granted exactly: update the session head, send the envelope to the dead-letter queue', () => {
    expect(grantsOf(runtime().executionStatusFunction)).toEqual(
      sorted([
        ...lambdaTracing(),
        `dynamodb:UpdateItem ${arnOf(runtime().checkpointTable)}`,
        ...lines(SQS_SEND, [arnOf(runtime().deadLetterQueue)]),
      ]),
    );
  });
});

describe('decide-approval function', () => {
  const decide = (): lambda.Function => functionChild(runtime(), 'DecideApproval');

  it("may answer the task tokens of every agent's state machine", () => {
    for (const agent of rt.stack.agents) {
      expectStatement(decide(), ['states:SendTaskSuccess'], { Ref: logicalIdOf(agent.stateMachine) });
    }
  });

  it('may get and update approvals', () => {
    expectStatement(decide(), ['dynamodb:GetItem', 'dynamodb:UpdateItem'], { 'Fn::GetAtt': [logicalIdOf(runtime().approvalTable), 'Arn'] });
  });

  it('is granted exactly that: task responses on the state machines only, no other table', () => {
    const approvals = arnOf(runtime().approvalTable);
    expect(grantsOf(decide())).toEqual(
      sorted([
        ...lambdaTracing(),
        // Table.grant also names the table's indexes; item actions cannot reach items through an index.
        ...lines(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [approvals, `${approvals}/index/*`]),
        ...rt.stack.agents.flatMap((a) => lines(TASK_RESPONSE_ACTIONS, [refOf(a.stateMachine)])),
      ]),
    );
  });
});

describe('start-run functions (one per agent)', () => {
  it('may start and describe executions of their own state machine only', () => {
    for (const agent of rt.stack.agents) {
      expect(grantsOf(agent.startRunFunction), agent.name).toEqual(
        sorted([...lambdaTracing(), `states:StartExecution ${refOf(agent.stateMachine)}`, `states:DescribeExecution ${executionsOf(agent.stateMachine)}`]),
      );
    }
  });

  it('the unknown-agent function is granted nothing but tracing', () => {
    expect(grantsOf(functionChild(runtime(), 'UnknownAgent'))).toEqual(sorted(lambdaTracing()));
  });
});

describe('the other runtime functions', () => {
  it('approval-request is granted exactly: read/write checkpoints and pause the session head, read bodies (a model turn stored by reference), put approvals, put events on the runtime bus, answer its own budget pauses', () => {
    const approvals = arnOf(runtime().approvalTable);
    expect(grantsOf(runtime().approvalRequestFunction)).toEqual(
      sorted([
        ...lambdaTracing(),
        // The pause is one transaction: an Update of the head (no ConditionCheckItem) and a Put of the approval.
        ...checkpoints(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']),
        ...bodies(S3_READ),
        ...lines(['dynamodb:PutItem'], [approvals, `${approvals}/index/*`]),
        `events:PutEvents ${arnOf(runtime().eventBus)}`,
        ...rt.stack.agents.flatMap((a) => lines(TASK_RESPONSE_ACTIONS, [refOf(a.stateMachine)])),
      ]),
    );
  });

  it("approval-request may answer the task tokens of every agent's state machine (a budget raised before its pause), in a policy apart from its default one", () => {
    const role = roleIdOf(runtime().approvalRequestFunction);
    for (const agent of rt.stack.agents) {
      expectStatement(runtime().approvalRequestFunction, ['states:SendTaskSuccess'], { Ref: logicalIdOf(agent.stateMachine) });
    }
    // The state machines invoke approval-request, and the function depends on its default
    // policy: a grant on them there would make a dependency cycle.
    const defaultPolicy = must(runtime().approvalRequestFunction.role?.node.tryFindChild('DefaultPolicy'), 'the default policy of approval-request');
    const inDefault = grantLines(
      allPolicyStatements(rt.template)
        .filter(({ policy, roles }) => policy === logicalIdOf(defaultPolicy) && roles.includes(`\${${role}}`))
        .map(({ statement }) => statement),
    );
    expect(inDefault).toContain(`events:PutEvents ${arnOf(runtime().eventBus)}`);
    expect(inDefault.filter((l) => l.startsWith('states:'))).toEqual([]);
  });

  it("control-run may answer the task tokens of every agent's state machine (a budget pause's wait, for raise-budget and stop)", () => {
    for (const agent of rt.stack.agents) {
      expectStatement(runtime().controlRunFunction, ['states:SendTaskSuccess'], { Ref: logicalIdOf(agent.stateMachine) });
    }
  });

  it('control-run is granted exactly: read/write the checkpoints (cancel, move abandoned ones, fenced rollback), query, read and decide approvals, answer budget pauses, start, describe, stop and redrive the executions of every agent', () => {
    const approvals = arnOf(runtime().approvalTable);
    expect(grantsOf(runtime().controlRunFunction)).toEqual(
      sorted([
        ...lambdaTracing(),
        ...checkpoints(['dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem']),
        ...lines(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'], [approvals, `${approvals}/index/*`]),
        ...rt.stack.agents.flatMap((a) => [
          ...lines(TASK_RESPONSE_ACTIONS, [refOf(a.stateMachine)]),
          `states:StartExecution ${refOf(a.stateMachine)}`,
          ...lines(['states:DescribeExecution', 'states:RedriveExecution', 'states:StopExecution'], [executionsOf(a.stateMachine)]),
        ]),
      ]),
    );
  });

  it('no runtime function may touch the body bucket but approval-request (read only), and no runtime function the idempotency records', () => {
    const bucket = logicalIdOf(runtime().bodyBucket);
    const idempotency = logicalIdOf(runtime().idempotencyTable);
    const agentRoles = new Set(rt.stack.agents.flatMap((a) => [a.prepareFunction, a.modelTurnFunction, a.startRunFunction, ...toolFunctionsOf(a)]).map((f) => `\${${roleIdOf(f)}}`));
    const touching = (id: string): string[] =>
      [
        ...new Set(
          allPolicyStatements(rt.template)
            .filter(({ statement }) => asArray(statement.Resource).some((r) => render(r).includes(id)))
            .flatMap(({ roles }) => roles)
            .filter((role) => !agentRoles.has(role)),
        ),
      ].sort();
    expect(touching(bucket)).toEqual([`\${${roleIdOf(runtime().approvalRequestFunction)}}`]);
    expect(touching(idempotency)).toEqual([]);
  });

  it('get-run is granted exactly: read the session head, query approvals and events', () => {
    const approvals = arnOf(runtime().approvalTable);
    expect(grantsOf(functionChild(runtime(), 'GetRun'))).toEqual(
      sorted([
        ...lambdaTracing(),
        `dynamodb:GetItem ${arnOf(runtime().checkpointTable)}`,
        ...lines(['dynamodb:Query'], [approvals, `${approvals}/index/*`]),
        `dynamodb:Query ${arnOf(runtime().eventTable)}`,
      ]),
    );
  });
});

describe('agent functions', () => {
  it('the functions that decide policies (model turn, tools) may read the policy override, and no other function may', () => {
    const table = logicalIdOf(runtime().policyTable);
    const agentFunctions = rt.stack.agents.flatMap((a) => [a.modelTurnFunction, ...toolFunctionsOf(a)]);
    for (const fn of agentFunctions) {
      expect(
        grantsOf(fn).filter((l) => l.includes(table)),
        fn.node.path,
      ).toEqual(policyOverride());
    }
    const readers = new Set(
      allPolicyStatements(rt.template)
        .filter(({ statement }) => asArray(statement.Resource).some((r) => render(r).includes(table)))
        .flatMap(({ roles }) => roles),
    );
    expect(readers).toEqual(new Set(agentFunctions.map((f) => `\${${roleIdOf(f)}}`)));
  });

  it('prepare may get, put, query and update checkpoints (a continuation takes the head over), and nothing else', () => {
    for (const agent of rt.stack.agents) {
      expect(grantsOf(agent.prepareFunction), agent.name).toEqual(
        sorted([...lambdaTracing(), ...checkpoints(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'])]),
      );
    }
  });

  it('model-turn may get, put, query and update checkpoints with fenced writes (ConditionCheckItem), read bodies and put new ones (never delete them), keep its idempotency records, read the policy override, get approvals, and nothing else', () => {
    const approvals = arnOf(runtime().approvalTable);
    for (const agent of rt.stack.agents) {
      expect(grantsOf(agent.modelTurnFunction), agent.name).toEqual(
        sorted([
          ...lambdaTracing(),
          ...checkpoints(['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem']),
          ...readAndPutBodies(),
          ...idempotencyRecords(),
          ...policyOverride(),
          ...lines(['dynamodb:GetItem'], [approvals, `${approvals}/index/*`]),
          ...modelHealth(),
          ...(agent.name === tunedAgent.name ? tunedModels() : []),
        ]),
      );
    }
  });

  it('model-turn may query and update the shared model health table, and nothing else there', () => {
    const health = logicalIdOf(runtime().modelHealthTable);
    for (const agent of rt.stack.agents) {
      expect(grantsOf(agent.modelTurnFunction).filter((l) => l.includes(health)), agent.name).toEqual(sorted(modelHealth()));
      for (const fn of toolFunctionsOf(agent)) expect(grantsOf(fn).filter((l) => l.includes(health)), fn.node.path).toEqual([]);
    }
  });

  it('model-turn may invoke only the Bedrock models its routes name (a profile and its foundation model), and read only its API-key secrets', () => {
    const tuned = rt.agent(tunedAgent.name);
    expect(grantsOf(tuned.modelTurnFunction).filter((l) => l.startsWith('bedrock:') || l.startsWith('secretsmanager:'))).toEqual(sorted(tunedModels()));
    // The scripted agents call no real provider: no Bedrock, no secret.
    for (const agent of rt.stack.agents.filter((a) => a.name !== tunedAgent.name)) {
      expect(grantsOf(agent.modelTurnFunction).filter((l) => l.startsWith('bedrock:') || l.startsWith('secretsmanager:')), agent.name).toEqual([]);
    }
  });

  it('model-turn may get an approval (the recorded answer to an output review), never write or query one', () => {
    const approvals = logicalIdOf(runtime().approvalTable);
    for (const agent of rt.stack.agents) {
      expectStatement(agent.modelTurnFunction, ['dynamodb:GetItem'], { 'Fn::GetAtt': [approvals, 'Arn'] });
      expect(
        grantsOf(agent.modelTurnFunction)
          .filter((l) => l.includes(approvals))
          .map((l) => l.split(' ')[0]),
        agent.name,
      ).toEqual(['dynamodb:GetItem', 'dynamodb:GetItem']);
    }
  });

  it('model-turn and the tools may read and put bodies but never delete one (grantRead + grantPut, not grantReadWrite)', () => {
    const bucket = logicalIdOf(runtime().bodyBucket);
    for (const agent of rt.stack.agents) {
      for (const fn of [agent.modelTurnFunction, ...toolFunctionsOf(agent)]) {
        const onBodies = grantsOf(fn).filter((l) => l.includes(bucket));
        expect(onBodies, fn.node.path).toEqual(sorted(readAndPutBodies()));
        expect(onBodies.filter((l) => l.startsWith('s3:Delete')), fn.node.path).toEqual([]);
      }
    }
  });

  it('model-turn and the tools may check the session head in a transaction with their conditional put (fencing)', () => {
    for (const agent of rt.stack.agents) {
      for (const fn of [agent.modelTurnFunction, ...toolFunctionsOf(agent)]) {
        expectStatement(fn, ['dynamodb:ConditionCheckItem', 'dynamodb:PutItem'], { 'Fn::GetAtt': [logicalIdOf(runtime().checkpointTable), 'Arn'] });
      }
    }
  });
});

describe('tool functions', () => {
  const blocklistOf = (agent: Agent): dynamodb.Table => {
    const table = agent.node.findChild('Blocklist');
    if (!(table instanceof dynamodb.Table)) throw new Error('the example agent has no Blocklist table');
    return table;
  };

  it("the example's block_address may put items into the blocklist table", () => {
    const example = rt.agent(EXAMPLE_AGENT);
    expectStatement(example.toolFunction('block_address'), ['dynamodb:PutItem'], { 'Fn::GetAtt': [logicalIdOf(blocklistOf(example)), 'Arn'] });
  });

  it('no other role than block_address can touch the blocklist table', () => {
    const example = rt.agent(EXAMPLE_AGENT);
    const blocklist = logicalIdOf(blocklistOf(example));
    const roles = new Set(
      allPolicyStatements(rt.template)
        .filter(({ statement }) => asArray(statement.Resource).some((r) => render(r).includes(blocklist)))
        .flatMap(({ roles: r }) => r),
    );
    expect([...roles]).toEqual([`\${${roleIdOf(example.toolFunction('block_address'))}}`]);
  });

  it('may get and put checkpoints (fenced: ConditionCheckItem), never query, update or delete them', () => {
    const table = logicalIdOf(rt.stack.runtime.checkpointTable);
    for (const agent of rt.stack.agents) {
      for (const tool of toolFunctionsOf(agent)) {
        const onCheckpoints = grantsOf(tool).filter((l) => l.includes(table));
        expect(onCheckpoints, tool.node.path).toEqual(checkpoints(['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem']));
      }
    }
  });

  it('are granted nothing beyond checkpoints, bodies, idempotency records, the policy override (checked again at call time) and tracing, except what an agent adds for its own tool', () => {
    const example = rt.agent(EXAMPLE_AGENT);
    for (const agent of rt.stack.agents) {
      for (const tool of toolFunctionsOf(agent)) {
        const extra = tool === example.toolFunction('block_address') ? lines(['dynamodb:GetItem', 'dynamodb:PutItem'], [arnOf(blocklistOf(example))]) : [];
        expect(grantsOf(tool), tool.node.path).toEqual(
          sorted([
            ...lambdaTracing(),
            ...checkpoints(['dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:PutItem']),
            ...readAndPutBodies(),
            ...idempotencyRecords(),
            ...policyOverride(),
            ...extra,
          ]),
        );
      }
    }
  });
});

describe('state machine roles', () => {
  /** The functions whose ARNs the role may invoke (each granted on the function and its versions/aliases). */
  const invokable = (agent: Agent): string[] =>
    grantLines(statementsOfRole(rt.template, roleIdOf(agent.stateMachine)))
      .filter((l) => l.startsWith('lambda:InvokeFunction '))
      .map((l) => l.slice('lambda:InvokeFunction '.length));
  const fnArns = (fns: readonly lambda.IFunction[]): string[] => fns.flatMap((f) => [arnOf(f), `${arnOf(f)}:*`]);

  it('can invoke their own tool functions (each through its own RunTool-<tool> Task)', () => {
    for (const agent of rt.stack.agents) {
      for (const tool of toolFunctionsOf(agent)) {
        expectStatement(agent.stateMachine, ['lambda:InvokeFunction'], { 'Fn::GetAtt': [logicalIdOf(tool), 'Arn'] });
      }
    }
  });

  it("cannot invoke another agent's tools", () => {
    for (const agent of rt.stack.agents) {
      const others = rt.stack.agents.filter((a) => a !== agent).flatMap(toolFunctionsOf);
      expect(invokable(agent).filter((arn) => fnArns(others).includes(arn)), agent.name).toEqual([]);
    }
  });

  it('may invoke exactly: its prepare and model-turn functions, its tools, approval-request and record-failure', () => {
    for (const agent of rt.stack.agents) {
      const expected = fnArns([
        agent.prepareFunction,
        agent.modelTurnFunction,
        ...toolFunctionsOf(agent),
        rt.stack.runtime.approvalRequestFunction,
        rt.stack.runtime.recordFailureFunction,
      ]);
      expect(invokable(agent), agent.name).toEqual(sorted(expected));
    }
  });

  it('beyond those invokes, may only start its own next execution, send to the dead-letter queue, trace and deliver its logs', () => {
    for (const agent of rt.stack.agents) {
      const allowed = new Set([
        `states:StartExecution ${refOf(agent.stateMachine)}`,
        `sqs:SendMessage ${arnOf(rt.stack.runtime.deadLetterQueue)}`,
        ...lines(SFN_TRACING, ['*']),
        ...lines(SFN_LOG_DELIVERY, ['*']),
      ]);
      const other = grantLines(statementsOfRole(rt.template, roleIdOf(agent.stateMachine))).filter((l) => !l.startsWith('lambda:InvokeFunction '));
      expect(other.filter((l) => !allowed.has(l)), agent.name).toEqual([]);
      expect(other, agent.name).toContain(`states:StartExecution ${refOf(agent.stateMachine)}`);
    }
  });

  it('may start executions of its own state machine only (ContinueAsNew), through ContinueAsNewPolicy and not its default policy (which would make the state machine depend on itself)', () => {
    for (const agent of rt.stack.agents) {
      const policy = resource(rt.template, logicalIdOf(agent.node.findChild('ContinueAsNewPolicy')), 'AWS::IAM::Policy');
      expect(policy.Properties.Roles, agent.name).toEqual([{ Ref: roleIdOf(agent.stateMachine) }]);
      expect(policy.Properties.PolicyDocument, agent.name).toEqual({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: logicalIdOf(agent.stateMachine) } }],
      });
      const others = allPolicyStatements(rt.template)
        .filter(({ policy: id, roles }) => id !== logicalIdOf(agent.node.findChild('ContinueAsNewPolicy')) && roles.includes(`\${${roleIdOf(agent.stateMachine)}}`))
        .flatMap(({ statement }) => asArray(statement.Action));
      expect(others, agent.name).not.toContain('states:StartExecution');
      // And no other role may start it on the loop's behalf.
      const starters = allPolicyStatements(rt.template)
        .filter(({ statement }) => asArray(statement.Action).includes('states:StartExecution') && asArray(statement.Resource).some((r) => render(r) === refOf(agent.stateMachine)))
        .flatMap(({ roles }) => roles);
      const rules = agent.rules.map((rule) => {
        const targets = resource(rt.template, logicalIdOf(rule), 'AWS::Events::Rule').Properties.Targets as { RoleArn: unknown }[];
        return render(must(targets[0], 'target').RoleArn).replace(/^\$\{(.+)\.Arn\}$/, '\${$1}');
      });
      expect(new Set(starters), agent.name).toEqual(
        new Set([`\${${roleIdOf(agent.stateMachine)}}`, `\${${roleIdOf(agent.startRunFunction)}}`, `\${${roleIdOf(runtime().controlRunFunction)}}`, ...rules]),
      );
    }
  });

  it('the EventBridge role of each trigger may only start its own state machine', () => {
    for (const agent of rt.stack.agents) {
      for (const rule of agent.rules) {
        const targets = resource(rt.template, logicalIdOf(rule), 'AWS::Events::Rule').Properties.Targets as { RoleArn: unknown }[];
        const target = must(targets[0], `target of ${rule.node.path}`);
        const roleId = render(target.RoleArn).replace(/^\$\{(.+)\.Arn\}$/, '$1');
        expect(grantLines(statementsOfRole(rt.template, roleId)), agent.name).toEqual([`states:StartExecution ${refOf(agent.stateMachine)}`]);
      }
    }
  });
});
