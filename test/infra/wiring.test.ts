/**
 * How the pieces are wired: the checkpoint table and its stream into the event
 * log, the dead-letter queues, the agents' EventBridge triggers and the HTTP API.
 */
import '../../lib/text-assets';
import { Capture, Match } from 'aws-cdk-lib/assertions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SSH_BRUTE_FORCE_FINDING_TYPE } from '../../examples/ssh-brute-force/agent';
import type { AgentDefinition } from '../../lambdas/core/define';
import { AGENT_DEFINITIONS, EXAMPLE_AGENT, functionChild, synthRuntime, type RuntimeUnderTest } from './support/stack';
import { logicalIdOf, must, render, resource, resourcesOfType } from './support/template';
import { TUNED_TRIGGER_PATTERN } from './support/tuned-agent';

const FOURTEEN_DAYS_SECONDS = 14 * 24 * 60 * 60;

let rt: RuntimeUnderTest;
beforeAll(() => {
  rt = synthRuntime();
});
const runtime = (): RuntimeUnderTest['stack']['runtime'] => rt.stack.runtime;
const getAtt = (construct: Parameters<typeof logicalIdOf>[0], attribute = 'Arn'): Record<string, unknown> => ({
  'Fn::GetAtt': [logicalIdOf(construct), attribute],
});
const definitionOf = (name: string): AgentDefinition => must(AGENT_DEFINITIONS.find((d) => d.name === name), name);

describe('tables', () => {
  it('the checkpoint table streams NEW_AND_OLD_IMAGES, has point-in-time recovery and is retained', () => {
    expect(resource(rt.template, logicalIdOf(runtime().checkpointTable), 'AWS::DynamoDB::Table')).toMatchObject({
      Properties: {
        KeySchema: [
          { AttributeName: 'sessionId', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('the event log and approval tables are retained with point-in-time recovery (the audit record)', () => {
    for (const table of [runtime().eventTable, runtime().approvalTable]) {
      expect(resource(rt.template, logicalIdOf(table), 'AWS::DynamoDB::Table'), table.node.path).toMatchObject({
        Properties: { PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } },
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    }
  });
});

describe('body bucket', () => {
  const bucket = (): ReturnType<typeof resource> => resource(rt.template, logicalIdOf(runtime().bodyBucket), 'AWS::S3::Bucket');

  it('is encrypted with S3-managed keys, blocks every public access and enforces bucket-owner object ownership', () => {
    expect(bucket().Properties).toMatchObject({
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
  });

  it('is retained with the checkpoints that point into it, and has no auto-delete helper', () => {
    expect(bucket()).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(Object.keys(resourcesOfType(rt.template, 'Custom::S3AutoDeleteObjects'))).toEqual([]);
  });

  it('denies every request that does not use TLS', () => {
    rt.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logicalIdOf(runtime().bodyBucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            Resource: [getAtt(runtime().bodyBucket), { 'Fn::Join': ['', [getAtt(runtime().bodyBucket), '/*']] }],
          }),
        ]),
      },
    });
  });

  it('grants nobody anything through its bucket policy (access is by IAM role only)', () => {
    const policies = Object.values(resourcesOfType(rt.template, 'AWS::S3::BucketPolicy')).filter((p) => render(p.Properties.Bucket) === `\${${logicalIdOf(runtime().bodyBucket)}}`);
    expect(policies).toHaveLength(1);
    const statements = (must(policies[0], 'policy').Properties.PolicyDocument as { Statement: { Effect: string }[] }).Statement;
    expect(statements.map((st) => st.Effect)).toEqual(['Deny']);
  });
});

describe('idempotency table', () => {
  it('keys Powertools idempotency records by id and expires them through the TTL attribute expiration', () => {
    expect(resource(rt.template, logicalIdOf(runtime().idempotencyTable), 'AWS::DynamoDB::Table')).toMatchObject({
      Properties: {
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
        BillingMode: 'PAY_PER_REQUEST',
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
    });
  });

  it('exists once, and there is no fault table without fault injection', () => {
    const tables = resourcesOfType(rt.template, 'AWS::DynamoDB::Table');
    const keyed = Object.values(tables).filter((t) => (t.Properties.TimeToLiveSpecification as { AttributeName?: string } | undefined)?.AttributeName === 'expiration');
    expect(keyed).toHaveLength(1);
    expect(runtime().faultTable).toBeUndefined();
    expect(Object.values(tables).filter((t) => JSON.stringify(t.Properties.KeySchema).includes('"point"'))).toEqual([]);
  });
});

describe('checkpoint stream → projector', () => {
  it('reports partial batch failures, bisects failed batches, keeps order and sends what it gives up on to the delivery DLQ', () => {
    rt.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(runtime().checkpointTable, 'StreamArn'),
      FunctionName: { Ref: logicalIdOf(runtime().projectorFunction) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      ParallelizationFactor: 1,
      StartingPosition: 'TRIM_HORIZON',
      MaximumRetryAttempts: Match.anyValue(),
      DestinationConfig: { OnFailure: { Destination: getAtt(runtime().deliveryDeadLetterQueue) } },
    });
  });

  it('retries a failing record a bounded number of times (a poison record cannot stall the shard forever)', () => {
    const retries = new Capture();
    rt.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(runtime().checkpointTable, 'StreamArn'),
      MaximumRetryAttempts: retries,
    });
    expect(retries.asNumber()).toBeGreaterThanOrEqual(0);
    expect(retries.asNumber()).toBeLessThanOrEqual(10_000);
  });
});

describe('dead-letter queues', () => {
  const queues = (): sqs.Queue[] => [runtime().deadLetterQueue, runtime().deliveryDeadLetterQueue];

  it('use SQS-managed encryption and keep messages 14 days', () => {
    for (const queue of queues()) {
      expect(resource(rt.template, logicalIdOf(queue), 'AWS::SQS::Queue').Properties, queue.node.path).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: FOURTEEN_DAYS_SECONDS,
      });
    }
  });

  it('deny every request that does not use TLS', () => {
    for (const queue of queues()) {
      rt.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalIdOf(queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sqs:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              Resource: getAtt(queue),
            }),
          ]),
        },
      });
    }
  });

  it("the delivery DLQ accepts EventBridge dead letters only from the agents' trigger rules", () => {
    const rules = rt.stack.agents.flatMap((a) => a.rules);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      rt.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalIdOf(runtime().deliveryDeadLetterQueue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Allow',
              Action: 'sqs:SendMessage',
              Principal: { Service: 'events.amazonaws.com' },
              Condition: { ArnEquals: { 'aws:SourceArn': getAtt(rule) } },
            }),
          ]),
        },
      });
    }
  });
});

describe('EventBridge triggers', () => {
  it('the example agent listens for GuardDuty SSH brute-force findings', () => {
    const example = rt.agent(EXAMPLE_AGENT);
    const rule = must(example.rules[0], 'example rule');
    const pattern = resource(rt.template, logicalIdOf(rule), 'AWS::Events::Rule').Properties.EventPattern as Record<string, unknown>;
    expect(pattern.source).toEqual(expect.arrayContaining(['aws.guardduty']));
    expect(pattern['detail-type']).toEqual(['GuardDuty Finding']);
    expect(pattern.detail).toEqual({ type: [SSH_BRUTE_FORCE_FINDING_TYPE] });
    expect(SSH_BRUTE_FORCE_FINDING_TYPE).toBe('UnauthorizedAccess:EC2/SSHBruteForce');
  });

  it("each rule has exactly its trigger's declared pattern", () => {
    for (const agent of rt.stack.agents) {
      const triggers = definitionOf(agent.name).triggers;
      expect(agent.rules.map((r) => logicalIdOf(r)), agent.name).toHaveLength(triggers.length);
      triggers.forEach((trigger, i) => {
        const rule = must(agent.rules[i], `${agent.name} rule ${i}`);
        const expected = {
          ...(trigger.eventPattern.source ? { source: trigger.eventPattern.source } : {}),
          ...(trigger.eventPattern.detailType ? { 'detail-type': trigger.eventPattern.detailType } : {}),
          ...(trigger.eventPattern.detail ? { detail: trigger.eventPattern.detail } : {}),
        };
        expect(resource(rt.template, logicalIdOf(rule), 'AWS::Events::Rule').Properties.EventPattern, rule.node.path).toEqual(expected);
      });
    }
    // The tuned agent declares a pattern of its own: the rule is not a copy of the example's.
    expect(definitionOf('infra-tuned').triggers[0]?.eventPattern).toEqual(TUNED_TRIGGER_PATTERN);
  });

  it('starts its state machine through a role, with the delivery DLQ for events it cannot deliver', () => {
    for (const agent of rt.stack.agents) {
      for (const rule of agent.rules) {
        const role = new Capture();
        rt.template.hasResourceProperties('AWS::Events::Rule', {
          EventPattern: Match.anyValue(),
          Targets: [
            Match.objectLike({
              Arn: { Ref: logicalIdOf(agent.stateMachine) },
              RoleArn: { 'Fn::GetAtt': [role, 'Arn'] },
              DeadLetterConfig: { Arn: getAtt(runtime().deliveryDeadLetterQueue) },
              RetryPolicy: { MaximumEventAgeInSeconds: Match.anyValue(), MaximumRetryAttempts: Match.anyValue() },
            }),
          ],
        });
        expect(resource(rt.template, role.asString(), 'AWS::IAM::Role').Properties.AssumeRolePolicyDocument).toMatchObject({
          Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' } }],
        });
        // Rules listen on the default bus, where AWS services such as GuardDuty publish.
        expect(resource(rt.template, logicalIdOf(rule), 'AWS::Events::Rule').Properties.EventBusName, rule.node.path).toBeUndefined();
      }
    }
  });
});

describe('HTTP API', () => {
  /** `METHOD /path` of every method, with its resource. */
  const methods = (): Map<string, Record<string, unknown>> => {
    const resources = resourcesOfType(rt.template, 'AWS::ApiGateway::Resource');
    const pathOf = (parent: unknown): string => {
      const ref = render(parent);
      if (/^\$\{[^.]+\.RootResourceId\}$/.test(ref)) return '';
      const id = ref.replace(/^\$\{(.+)\}$/, '$1');
      const res = must(resources[id], `API resource ${id}`);
      return `${pathOf(res.Properties.ParentId)}/${String(res.Properties.PathPart)}`;
    };
    return new Map(
      Object.values(resourcesOfType(rt.template, 'AWS::ApiGateway::Method')).map((m) => [
        `${String(m.Properties.HttpMethod)} ${pathOf(m.Properties.ResourceId) || '/'}`,
        m.Properties,
      ]),
    );
  };
  const routes = (): [string, lambda.IFunction][] => [
    ['POST /agents/{agent}/runs', functionChild(runtime(), 'UnknownAgent')],
    ...rt.stack.agents.map((a): [string, lambda.IFunction] => [`POST /agents/${a.name}/runs`, a.startRunFunction]),
    ['GET /runs/{sessionId}', functionChild(runtime(), 'GetRun')],
    ['GET /runs/{sessionId}/events', functionChild(runtime(), 'GetRun')],
    ['POST /approvals/{approvalId}', functionChild(runtime(), 'DecideApproval')],
    ['POST /runs/{sessionId}/resume', runtime().controlRunFunction],
    ['POST /runs/{sessionId}/cancel', runtime().controlRunFunction],
    ['POST /runs/{sessionId}/rollback', runtime().controlRunFunction],
    ['POST /runs/{sessionId}/budget', runtime().controlRunFunction],
    ['POST /runs/{sessionId}/stop', runtime().controlRunFunction],
  ];

  it('has exactly the nine routes, with one start route per agent', () => {
    expect([...methods().keys()].sort()).toEqual(routes().map(([route]) => route).sort());
  });

  it('every route requires SigV4 (AWS_IAM) and proxies to its Lambda function (AWS_PROXY)', () => {
    const all = methods();
    for (const [route, fn] of routes()) {
      const method = must(all.get(route), route);
      expect(method.AuthorizationType, route).toBe('AWS_IAM');
      const integration = method.Integration as { Type: string; IntegrationHttpMethod: string; Uri: unknown };
      expect(integration.Type, route).toBe('AWS_PROXY');
      expect(integration.IntegrationHttpMethod, route).toBe('POST');
      expect(render(integration.Uri), route).toContain(`/functions/\${${logicalIdOf(fn)}.Arn}/invocations`);
    }
  });

  it('the stage traces requests and is throttled', () => {
    rt.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      RestApiId: { Ref: logicalIdOf(runtime().api) },
      TracingEnabled: true,
      MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: Match.anyValue(), ThrottlingBurstLimit: Match.anyValue() })]),
    });
  });
});

describe('execution status backstop', () => {
  it("sends each agent's FAILED, TIMED_OUT and ABORTED executions to the execution-status function, with the agent's name", () => {
    for (const agent of rt.stack.agents) {
      rt.template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.states'],
          'detail-type': ['Step Functions Execution Status Change'],
          detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [{ Ref: logicalIdOf(agent.stateMachine) }] },
        },
        Targets: [
          Match.objectLike({
            Arn: { 'Fn::GetAtt': [logicalIdOf(rt.stack.runtime.executionStatusFunction), 'Arn'] },
            InputTransformer: Match.objectLike({ InputTemplate: Match.stringLikeRegexp(`"agent":"${agent.name}"`) }),
            DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalIdOf(rt.stack.runtime.deliveryDeadLetterQueue), 'Arn'] } },
          }),
        ],
      });
    }
  });
});

describe('alarms', () => {
  it('alarms on failed, timed out, aborted and throttled executions of each agent', () => {
    const { template, stack } = rt;
    for (const agent of stack.agents) {
      for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted', 'ExecutionThrottled']) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'AWS/States',
          MetricName: metric,
          Threshold: 1,
          Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: logicalIdOf(agent.stateMachine) } }],
        });
      }
    }
  });
});
