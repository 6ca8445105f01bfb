/**
 * CDK wiring of the example agent: the block list table that `block_address`
 * writes (no real firewall), granted to that tool's function only.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { AgentSpec } from '../../lib/stacks/agent-runtime-stack';
import { agent } from './agent';
import { BLOCKLIST_TABLE_ENV } from './tools';


/** The SSH brute-force investigator, ready for {@link import('../../lib/stacks/agent-runtime-stack').AgentRuntimeStack}. */
export const sshInvestigator: AgentSpec = {
  definition: agent,
  module: 'examples/ssh-brute-force/agent.ts',
  configure: (deployed) => {
    const blocklist = new dynamodb.Table(deployed, 'Blocklist', {
      partitionKey: { name: 'address', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAtEpoch',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const tool = deployed.toolFunction('block_address');
    tool.addEnvironment(BLOCKLIST_TABLE_ENV, blocklist.tableName);
    blocklist.grant(tool, 'dynamodb:PutItem', 'dynamodb:GetItem');
  },
};
