#!/usr/bin/env node
/** The integration tests' CDK app: stack `AgentRuntimeInteg`, the example agent plus the test agents. */
import '../../lib/text-assets';
import { App, CfnOutput, RemovalPolicy, SecretValue } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { sshInvestigator } from '../../examples/ssh-brute-force/deploy';
import { AgentRuntimeStack, type AgentSpec } from '../../lib/stacks/agent-runtime-stack';
import * as fixtures from '../fixtures/agents';
import * as governance from '../fixtures/governance';
import * as routing from '../fixtures/routing';

const GOVERNANCE_MODULE = 'test/fixtures/governance.ts';
const governed = (definition: AgentSpec['definition'], exportName: string): AgentSpec => ({ definition, module: GOVERNANCE_MODULE, exportName });

const MODULE = 'test/fixtures/agents.ts';
const fixture = (definition: AgentSpec['definition'], exportName: string): AgentSpec => ({ definition, module: MODULE, exportName });

/** The durability agent, with the effects table its tools count in. */
const durable: AgentSpec = {
  ...fixture(fixtures.durableAgent, 'durableAgent'),
  configure: (agent, scope) => {
    const effects = new dynamodb.Table(scope, 'Effects', {
      partitionKey: { name: 'effectId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    for (const tool of ['count_effect', 'guarded_effect']) {
      const fn = agent.toolFunction(tool);
      fn.addEnvironment(fixtures.EFFECT_TABLE_ENV, effects.tableName);
      effects.grant(fn, 'dynamodb:UpdateItem');
    }
    new CfnOutput(scope, 'EffectTableName', { value: effects.tableName });
  },
};

const app = new App();
const stack = new AgentRuntimeStack(app, 'AgentRuntimeInteg', {
  description: 'Agent runtime integration tests',
  // Under CloudFormation's 500 resources with every test agent (the alarms have CDK assertion
  // tests; one log group for all functions instead of one each).
  alarms: false,
  runtime: { faultInjection: true, logGroups: 'shared' },
  agents: [
    sshInvestigator,
    { ...sshInvestigator, definition: fixtures.declinedAgent, module: MODULE, exportName: 'declinedAgent' },
    fixture(fixtures.repairAgent, 'repairAgent'),
    fixture(fixtures.neverValidAgent, 'neverValidAgent'),
    fixture(fixtures.stepLimitAgent, 'stepLimitAgent'),
    fixture(fixtures.failingToolAgent, 'failingToolAgent'),
    durable,
    fixture(fixtures.longRunAgent, 'longRunAgent'),
    fixture(fixtures.rollbackAgent, 'rollbackAgent'),
    governed(governance.budgetAgent, 'budgetAgent'),
    {
      ...governed(governance.toolsAgent, 'toolsAgent'),
      configure: (agent) => agent.toolFunction('count_effect').addEnvironment(fixtures.EFFECT_TABLE_ENV, 'not-used-invalid-arguments-never-run'),
    },
    governed(governance.rulesAgent, 'rulesAgent'),
    governed(governance.escalateAgent, 'escalateAgent'),
    {
      definition: routing.routingAgent,
      module: 'test/fixtures/routing.ts',
      exportName: 'routingAgent',
      // The fake providers' API keys, read by the model turn from Secrets Manager (granted by the Agent).
      configure: (_agent, scope) => {
        for (const provider of ['anthropic', 'openai'] as const) {
          new secretsmanager.Secret(scope, `RoutingKey-${provider}`, {
            secretName: routing.ROUTING_SECRETS[provider],
            secretStringValue: SecretValue.unsafePlainText(routing.ROUTING_KEYS[provider]),
            removalPolicy: RemovalPolicy.DESTROY,
          });
        }
      },
    },
  ],
});
// Captures what the runtime publishes on its bus (governance events), for the tests to read.
const published = new sqs.Queue(stack, 'PublishedEvents', { removalPolicy: RemovalPolicy.DESTROY });
new events.Rule(stack, 'CapturePublished', { eventBus: stack.runtime.eventBus, eventPattern: { source: ['agent-runtime'] } }).addTarget(new targets.SqsQueue(published));
new CfnOutput(stack, 'PublishedEventsQueueUrl', { value: published.queueUrl });
app.synth();
