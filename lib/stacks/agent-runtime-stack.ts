/** A stack with one {@link AgentRuntime} and the given agents. */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { AgentDefinition } from '../../lambdas/core/define';
import { Agent } from '../constructs/agent';
import { AgentRuntime, type AgentRuntimeProps } from '../constructs/agent-runtime';

/** An agent to deploy: its definition, the module exporting it, and optional extra wiring. */
export interface AgentSpec {
  readonly definition: AgentDefinition;
  /** Module exporting the definition (see {@link import('../constructs/agent').AgentProps.module}). */
  readonly module: string;
  /** @default 'agent' */
  readonly exportName?: string;
  /** Adds what the agent's tools need (tables, grants, environment). */
  readonly configure?: (agent: Agent, scope: Construct) => void;
}

/** Props of {@link AgentRuntimeStack}. */
export interface AgentRuntimeStackProps extends StackProps {
  readonly agents: readonly AgentSpec[];
  readonly runtime?: AgentRuntimeProps;
  /** Whether each agent gets its CloudWatch alarms (see {@link Agent.alarms}). @default true */
  readonly alarms?: boolean;
}

/**
 * The runtime and its agents. Outputs: `ApiUrl`, `DeadLetterQueueUrl`,
 * `CheckpointTableName`, `EventTableName`, `EventBusName`, `BodyBucketName`,
 * `IdempotencyTableName`, `PolicyTableName`, `FaultTableName` (with fault injection), and per agent
 * `StateMachine<agent>` (non-alphanumerics removed).
 */
export class AgentRuntimeStack extends Stack {
  readonly runtime: AgentRuntime;
  readonly agents: Agent[];

  constructor(scope: Construct, id: string, props: AgentRuntimeStackProps) {
    super(scope, id, props);
    this.runtime = new AgentRuntime(this, 'Runtime', props.runtime);
    this.agents = props.agents.map((spec) => {
      const agent = new Agent(this, `Agent-${spec.definition.name}`, {
        runtime: this.runtime,
        definition: spec.definition,
        module: spec.module,
        exportName: spec.exportName,
        alarms: props.alarms,
      });
      spec.configure?.(agent, this);
      new CfnOutput(this, `StateMachine${spec.definition.name.replace(/[^A-Za-z0-9]/g, '')}`, { value: agent.stateMachine.stateMachineArn });
      return agent;
    });
    new CfnOutput(this, 'ApiUrl', { value: this.runtime.api.url });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.runtime.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'DeliveryDeadLetterQueueUrl', { value: this.runtime.deliveryDeadLetterQueue.queueUrl });
    new CfnOutput(this, 'CheckpointTableName', { value: this.runtime.checkpointTable.tableName });
    new CfnOutput(this, 'EventTableName', { value: this.runtime.eventTable.tableName });
    new CfnOutput(this, 'ApprovalTableName', { value: this.runtime.approvalTable.tableName });
    new CfnOutput(this, 'EventBusName', { value: this.runtime.eventBus.eventBusName });
    new CfnOutput(this, 'BodyBucketName', { value: this.runtime.bodyBucket.bucketName });
    new CfnOutput(this, 'ModelHealthTableName', { value: this.runtime.modelHealthTable.tableName });
    new CfnOutput(this, 'IdempotencyTableName', { value: this.runtime.idempotencyTable.tableName });
    new CfnOutput(this, 'PolicyTableName', { value: this.runtime.policyTable.tableName });
    if (this.runtime.faultTable) new CfnOutput(this, 'FaultTableName', { value: this.runtime.faultTable.tableName });
  }
}
