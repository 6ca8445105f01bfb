#!/usr/bin/env node
/** The integration tests' CDK app: stack `AgentRuntimeInteg`, the example agent plus the test agents. */
import '../../lib/text-assets';
import { App, CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { sshInvestigator } from '../../examples/ssh-brute-force/deploy';
import { AgentRuntimeStack, type AgentSpec } from '../../lib/stacks/agent-runtime-stack';
import * as fixtures from '../fixtures/agents';

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
new AgentRuntimeStack(app, 'AgentRuntimeInteg', {
  description: 'Agent runtime integration tests',
  runtime: { faultInjection: true },
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
  ],
});
app.synth();
