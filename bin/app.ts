#!/usr/bin/env node
/**
 * The CDK app: the runtime with the example agents, as stack `AgentRuntime`.
 * `cdk deploy` deploys it to the account and region of the ambient credentials
 * (or to the endpoint in AWS_ENDPOINT_URL).
 */
import '../lib/text-assets';
import { App } from 'aws-cdk-lib';
import { sshInvestigator } from '../examples/ssh-brute-force/deploy';
import { AgentRuntimeStack } from '../lib/stacks/agent-runtime-stack';

const app = new App();
new AgentRuntimeStack(app, 'AgentRuntime', {
  description: 'Agent runtime with the example agents',
  agents: [sshInvestigator],
});
app.synth();
