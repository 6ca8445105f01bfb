#!/usr/bin/env node
/** The integration tests' CDK app: stack `AgentRuntimeInteg`, the example agent plus the test agents. */
import '../../lib/text-assets';
import { App } from 'aws-cdk-lib';
import { sshInvestigator } from '../../examples/ssh-brute-force/deploy';
import { AgentRuntimeStack, type AgentSpec } from '../../lib/stacks/agent-runtime-stack';
import * as fixtures from '../fixtures/agents';

const MODULE = 'test/fixtures/agents.ts';
const fixture = (definition: AgentSpec['definition'], exportName: string): AgentSpec => ({ definition, module: MODULE, exportName });

const app = new App();
new AgentRuntimeStack(app, 'AgentRuntimeInteg', {
  description: 'Agent runtime integration tests',
  agents: [
    sshInvestigator,
    { ...sshInvestigator, definition: fixtures.declinedAgent, module: MODULE, exportName: 'declinedAgent' },
    fixture(fixtures.repairAgent, 'repairAgent'),
    fixture(fixtures.neverValidAgent, 'neverValidAgent'),
    fixture(fixtures.stepLimitAgent, 'stepLimitAgent'),
    fixture(fixtures.failingToolAgent, 'failingToolAgent'),
    fixture(fixtures.benchEcho5, 'benchEcho5'),
    fixture(fixtures.benchEcho50, 'benchEcho50'),
  ],
});
app.synth();
