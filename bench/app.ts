#!/usr/bin/env node
/** The benchmark's CDK app: stack `AgentRuntimeBench`, the durability benchmark's agents (10 to 3,000 turns). */
import '../lib/text-assets';
import { App } from 'aws-cdk-lib';
import { AgentRuntimeStack } from '../lib/stacks/agent-runtime-stack';
import * as fixtures from '../test/fixtures/agents';

const MODULE = 'test/fixtures/agents.ts';
const app = new App();
new AgentRuntimeStack(app, 'AgentRuntimeBench', {
  description: 'Agent runtime benchmark',
  agents: (['benchDurable10', 'benchDurable100', 'benchDurable1000', 'benchDurable3000'] as const).map((exportName) => ({
    definition: fixtures[exportName],
    module: MODULE,
    exportName,
  })),
});
app.synth();
