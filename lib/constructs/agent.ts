/**
 * One declared agent: its Lambda functions (prepare, model turn, one per tool),
 * its state machine (the agent loop) and its EventBridge triggers, bound to an
 * {@link AgentRuntime}.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Annotations, Aws, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { HTTP_TOOL_RECORD_SECONDS, TRIGGER_DELIVERY } from '../../lambdas/core/constants';
import { policySchema } from '../../lambdas/core/policy';
import { DEFAULT_API_KEY_ENV, modelsOf } from '../../lambdas/core/routing';
import { checkPolicies } from '../policy-check';
import type { AgentDefinition } from '../../lambdas/core/define';
import { ENV } from '../../lambdas/core/env-names';
import { AgentLoop } from '../../statemachines/agent-loop';
import type { AgentRuntime } from './agent-runtime';
import { TEXT_ASSET_EXTENSIONS } from '../text-assets';
import { PROJECT_ROOT, RuntimeFunction } from './runtime-function';

/** Text files agent code may import as strings (esbuild's `text` loader). */
const TEXT_LOADERS = Object.fromEntries(TEXT_ASSET_EXTENSIONS.map((ext) => [ext, 'text']));

/** Props of {@link Agent}. */
export interface AgentProps {
  /** The shared runtime the agent binds to (tables, DLQ, API, approval and failure functions). */
  readonly runtime: AgentRuntime;
  /** The agent, as `defineAgent` returned it. */
  readonly definition: AgentDefinition;
  /**
   * Path of the module that exports the definition (absolute, or relative to the
   * project root). Its functions are bundled from it.
   */
  readonly module: string;
  /** Name under which the module exports the definition. @default 'agent' */
  readonly exportName?: string;
  /**
   * The bus the triggers' rules listen on.
   * @default the account's default bus (where AWS services such as GuardDuty publish)
   */
  readonly triggerBus?: events.IEventBus;
  /**
   * Whether to create the alarms on failed, timed-out, aborted and throttled executions
   * (4 resources; a stack of many test agents may leave them out to stay under
   * CloudFormation's 500 resources). @default true
   */
  readonly alarms?: boolean;
}

/**
 * An agent: a Standard state machine running the agent loop, a Lambda function
 * per tool, and an EventBridge rule per trigger that starts executions with the
 * whole event as input (failed deliveries go to the runtime's delivery DLQ).
 * @throws Error from the constructor when `module` does not exist, when the agent's
 *   Cedar policies are not valid against its tools (every problem listed, see
 *   `checkPolicies`), or when the runtime already has an agent of that name.
 */
export class Agent extends Construct {
  /** The agent's name (its definition's). */
  readonly name: string;
  /** The Standard state machine running the agent loop. */
  readonly stateMachine: sfn.StateMachine;
  /** Validates the trigger, creates the session and the first message. */
  readonly prepareFunction: RuntimeFunction;
  /** Calls the model once per turn and decides the outcome. */
  readonly modelTurnFunction: RuntimeFunction;
  /** Serves POST /agents/{name}/runs: validates the input schema, starts the state machine. */
  readonly startRunFunction: RuntimeFunction;
  /** One EventBridge rule per declared trigger. */
  readonly rules: events.Rule[] = [];
  /**
   * Alarms on executions that failed, timed out, were aborted or throttled (threshold 1 in
   * 5 minutes); add actions (`alarm.addAlarmAction`) to be notified. Empty with `alarms: false`.
   */
  readonly alarms: cloudwatch.Alarm[];
  private readonly toolFunctions = new Map<string, RuntimeFunction>();

  constructor(scope: Construct, id: string, props: AgentProps) {
    super(scope, id);
    const { definition: agent, runtime } = props;
    const modulePath = path.resolve(PROJECT_ROOT, props.module);
    if (!fs.existsSync(modulePath)) throw new Error(`Agent(${agent.name}): module ${modulePath} does not exist`);
    this.name = agent.name;
    const entry = writeEntry(agent.name, modulePath, props.exportName ?? 'agent');

    if (agent.policies) checkPolicies(agent.policies, policySchema(agent.tools), { tools: agent.tools.map((t) => t.name) });
    const policyEnv = { [ENV.policyTable]: runtime.policyTable.tableName, [ENV.environment]: runtime.environment };
    const fn = (fid: string, handler: string, description: string, timeoutSeconds: number, environment: Record<string, string> = {}): RuntimeFunction => {
      const f = new RuntimeFunction(this, fid, {
        entry,
        handler,
        description: `${agent.name}: ${description}`,
        serviceName: agent.name,
        timeout: Duration.seconds(timeoutSeconds),
        loader: TEXT_LOADERS,
        logGroup: runtime.logGroup,
        // Only the functions that decide policies (they have the policy table) carry Cedar's wasm.
        cedar: ENV.policyTable in environment,
        environment: {
          [ENV.checkpointTable]: runtime.checkpointTable.tableName,
          [ENV.bodyBucket]: runtime.bodyBucket.bucketName,
          [ENV.bodyInlineLimit]: String(runtime.bodyInlineLimitBytes),
          [ENV.idempotencyTable]: runtime.idempotencyTable.tableName,
          ...environment,
        },
      });
      runtime.grantFaultInjection(f);
      return f;
    };
    // The steps that decide policies read the operators' override before each decision.
    const policyReader = (f: RuntimeFunction): void => {
      runtime.policyTable.grant(f, 'dynamodb:GetItem');
    };
    // A step's Powertools idempotency record: create, read, complete, or delete after a failure.
    const idempotency = (f: RuntimeFunction): void => {
      runtime.idempotencyTable.grant(f, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem');
    };

    this.prepareFunction = fn('Prepare', 'prepare', 'validates the trigger and creates the session', 30);
    runtime.grantCheckpoints(this.prepareFunction, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem');

    for (const tool of agent.tools) {
      // An HTTP tool's request times out at its timeout; the function gets a second more to record the outcome.
      const lambdaTimeout = tool.http ? tool.timeoutSeconds + HTTP_TOOL_RECORD_SECONDS : tool.timeoutSeconds;
      const toolFn = fn(`Tool-${tool.name}`, 'runTool', `tool ${tool.name}@${tool.version}`, lambdaTimeout, { [ENV.toolName]: tool.name, ...policyEnv });
      policyReader(toolFn);
      // Checkpoint writes are transactions with a ConditionCheck on the session head (fencing).
      runtime.grantCheckpoints(toolFn, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:ConditionCheckItem');
      runtime.bodyBucket.grantRead(toolFn);
      runtime.bodyBucket.grantPut(toolFn);
      idempotency(toolFn);
      this.toolFunctions.set(tool.name, toolFn);
    }
    const toolArns = Object.fromEntries([...this.toolFunctions].map(([name, f]) => [name, f.functionArn]));
    this.modelTurnFunction = fn('ModelTurn', 'modelTurn', 'one model turn', agent.modelTimeoutSeconds, {
      [ENV.toolFunctions]: Stack.of(this).toJsonString(toolArns),
      [ENV.approvalTable]: runtime.approvalTable.tableName,
      [ENV.healthTable]: runtime.modelHealthTable.tableName,
      ...policyEnv,
    });
    policyReader(this.modelTurnFunction);
    // An output review's recorded answer, after a continue-as-new or a resume.
    runtime.approvalTable.grant(this.modelTurnFunction, 'dynamodb:GetItem');
    runtime.grantCheckpoints(this.modelTurnFunction, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:ConditionCheckItem');
    runtime.bodyBucket.grantRead(this.modelTurnFunction);
    runtime.bodyBucket.grantPut(this.modelTurnFunction);
    idempotency(this.modelTurnFunction);
    this.grantModels(agent, this.modelTurnFunction, runtime);

    const loop = new AgentLoop(this, 'Loop', {
      agentName: agent.name,
      maxSteps: agent.maxSteps,
      toolConcurrency: agent.toolConcurrency,
      approvalTimeoutSeconds: agent.approvalTimeoutSeconds,
      budgetPauseTimeoutSeconds: agent.budgetPauseTimeoutSeconds,
      modelTimeoutSeconds: agent.modelTimeoutSeconds,
      tools: agent.tools.map((tool) => ({
        name: tool.name,
        function: this.toolFunction(tool.name),
        needsApproval: tool.needsApproval,
        timeoutSeconds: tool.timeoutSeconds,
        retry: tool.retry,
      })),
      prepareFunction: this.prepareFunction,
      modelTurnFunction: this.modelTurnFunction,
      approvalRequestFunction: runtime.approvalRequestFunction,
      recordFailureFunction: runtime.recordFailureFunction,
      deadLetterQueue: runtime.deadLetterQueue,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(loop),
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, 'ExecutionLogs', { retention: logs.RetentionDays.ONE_MONTH }),
        level: sfn.LogLevel.ERROR,
        includeExecutionData: false,
      },
      comment: `Agent loop of ${agent.name}: ${agent.description}`,
    });
    // An alarm for each way an execution can end badly (one datapoint over 5 minutes).
    const outcomes: Record<string, cloudwatch.Metric> = {
      Failed: this.stateMachine.metricFailed(),
      TimedOut: this.stateMachine.metricTimedOut(),
      Aborted: this.stateMachine.metricAborted(),
      Throttled: this.stateMachine.metricThrottled(),
    };
    this.alarms = (props.alarms ?? true ? Object.entries(outcomes) : []).map(([name, metric]) =>
      metric.createAlarm(this, `Executions${name}`, {
        alarmDescription: `${agent.name}: executions ${name.toLowerCase()}`,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    // ContinueAsNew starts this state machine's next execution. A policy of its own: in the
    // role's default policy the ARN would make the state machine depend on itself.
    new iam.Policy(this, 'ContinueAsNewPolicy', {
      roles: [this.stateMachine.role],
      statements: [
        new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }),
      ],
    });
    this.startRunFunction = fn('StartRun', 'startRun', `POST /agents/${agent.name}/runs`, 10, { [ENV.stateMachineArn]: this.stateMachine.stateMachineArn });
    this.stateMachine.grantStartExecution(this.startRunFunction);
    this.stateMachine.grantExecution(this.startRunFunction, 'states:DescribeExecution');
    runtime.registerAgent(agent.name, this.stateMachine, this.startRunFunction);

    agent.triggers.forEach((trigger, i) => {
      const rule = new events.Rule(this, `Trigger${i}`, {
        description: `Starts ${agent.name}`,
        eventBus: props.triggerBus,
        eventPattern: {
          source: trigger.eventPattern.source,
          detailType: trigger.eventPattern.detailType,
          detail: trigger.eventPattern.detail,
        },
      });
      rule.addTarget(
        new targets.SfnStateMachine(this.stateMachine, {
          deadLetterQueue: runtime.deliveryDeadLetterQueue,
          retryAttempts: TRIGGER_DELIVERY.retryAttempts,
          maxEventAge: Duration.hours(TRIGGER_DELIVERY.maxEventAgeHours),
        }),
      );
      this.rules.push(rule);
    });
  }

  /**
   * The Lambda function that runs a tool, to grant it access to what it touches.
   * @throws Error when the agent declares no such tool.
   */
  toolFunction(name: string): RuntimeFunction {
    const found = this.toolFunctions.get(name);
    if (!found) throw new Error(`Agent(${this.name}): no tool named "${name}"`);
    return found;
  }

  /**
   * What the model-turn function needs for the agent's models: the health table
   * (Query, UpdateItem), `bedrock:InvokeModel` on each Bedrock model (and the
   * foundation models behind an inference profile), read access to each API key's
   * secret. A model with neither secret nor Bedrock gets a synth warning: in AWS its
   * key would have to be in the function's environment, which the Agent never sets.
   */
  private grantModels(agent: AgentDefinition, fn: RuntimeFunction, runtime: AgentRuntime): void {
    runtime.modelHealthTable.grant(fn, 'dynamodb:Query', 'dynamodb:UpdateItem');
    const secrets = new Set<string>();
    for (const ref of modelsOf(agent.model, agent.routes)) {
      if (ref.provider === 'bedrock') {
        fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['bedrock:InvokeModel'], resources: bedrockModelArns(ref.modelId, ref.region) }));
      } else if (ref.provider === 'anthropic' || ref.provider === 'openai') {
        const name = ref.apiKey?.secretName;
        if (!name) {
          Annotations.of(this).addWarning(`${ref.provider} model ${ref.modelId} names no apiKey.secretName: deployed, its key is read from ${ref.apiKey?.envVar ?? DEFAULT_API_KEY_ENV[ref.provider]}, which the Agent does not set`);
        } else if (!secrets.has(name)) {
          secrets.add(name);
          const secret = name.startsWith('arn:')
            ? secretsmanager.Secret.fromSecretCompleteArn(this, `ApiKey${secrets.size}`, name)
            : secretsmanager.Secret.fromSecretNameV2(this, `ApiKey${secrets.size}`, name);
          secret.grantRead(fn);
        }
      }
    }
  }
}

/**
 * The resources `bedrock:InvokeModel` needs for a model id (Amazon Bedrock User Guide,
 * "Prerequisites for inference profiles"), in the partition of the stack (`Aws.PARTITION`):
 * - a model ARN (`arn:` prefix: an application inference profile, a provisioned
 *   throughput, an imported model): the ARN itself and every foundation model in every
 *   region (`arn:<partition>:bedrock:*::foundation-model/*`), since which models it routes
 *   to is not known from the ARN;
 * - a cross-region (system-defined) inference profile, an id with one of the prefixes
 *   `us.`, `us-gov.`, `eu.`, `apac.`, `ca.`, `jp.`, `au.` or `global.`: the profile in
 *   `region` (`…:bedrock:<region>:<account>:inference-profile/<modelId>`) and the
 *   foundation model the id names after the prefix, in every region it may route to
 *   (`…:bedrock:*::foundation-model/<id>`);
 * - any other id, a foundation model: `…:bedrock:<region>::foundation-model/<modelId>`.
 * Example: `bedrockModelArns('us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'us-east-1')` →
 * `["arn:aws:bedrock:us-east-1:<account>:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"]`
 * (partition and account are CDK tokens).
 * @param modelId the model id or ARN the provider calls (`ModelRef.modelId`)
 * @param region the region the model is called in (`ModelRef.region`); @default the stack's region (`Aws.REGION`)
 * @returns the resource ARNs for an IAM policy statement (one or two)
 */
export function bedrockModelArns(modelId: string, region?: string): string[] {
  const where = region ?? Aws.REGION;
  // An ARN (application inference profile, provisioned throughput, imported model): it, and the foundation models it may route to.
  if (modelId.startsWith('arn:')) return [modelId, `arn:${Aws.PARTITION}:bedrock:*::foundation-model/*`];
  const profile = /^(us|eu|apac|us-gov|ca|jp|au|global)\.(.+)$/.exec(modelId);
  if (!profile) return [`arn:${Aws.PARTITION}:bedrock:${where}::foundation-model/${modelId}`];
  return [`arn:${Aws.PARTITION}:bedrock:${where}:${Aws.ACCOUNT_ID}:inference-profile/${modelId}`, `arn:${Aws.PARTITION}:bedrock:*::foundation-model/${profile[2]}`];
}

/**
 * Writes the agent's Lambda entry, `.build/entries/<agent>.ts`, which binds the
 * agent module to the runtime's per-agent handlers. Regenerated at every synth.
 */
function writeEntry(agentName: string, modulePath: string, exportName: string): string {
  const dir = path.join(PROJECT_ROOT, '.build', 'entries');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${agentName}.ts`);
  const rel = (target: string): string => {
    const r = path.relative(dir, target).replace(/\\/g, '/').replace(/\.ts$/, '');
    return r.startsWith('.') ? r : `./${r}`;
  };
  const source = [
    `// Generated by the Agent construct for agent "${agentName}". Do not edit.`,
    `import { createAgentHandlers } from '${rel(path.join(PROJECT_ROOT, 'lambdas', 'handlers', 'agent', 'index.ts'))}';`,
    `import { ${exportName} as definition } from '${rel(modulePath)}';`,
    `export const { prepare, modelTurn, runTool, startRun } = createAgentHandlers(definition);`,
    '',
  ].join('\n');
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== source) fs.writeFileSync(file, source);
  return file;
}
