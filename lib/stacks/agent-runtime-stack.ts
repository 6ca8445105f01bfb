/** A stack with one {@link AgentRuntime} and the given agents. */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { AgentDefinition } from '../../lambdas/core/define';
import { Agent } from '../constructs/agent';
import { AgentRuntime, type AgentRuntimeProps } from '../constructs/agent-runtime';

/** An agent to deploy: its definition, the module exporting it, and optional extra wiring. */
export interface AgentSpec {
  /** The agent, as `defineAgent` returned it. */
  readonly definition: AgentDefinition;
  /** Module exporting the definition (see {@link import('../constructs/agent').AgentProps.module}). */
  readonly module: string;
  /** Name under which the module exports the definition. @default 'agent' */
  readonly exportName?: string;
  /** Adds what the agent's tools need (tables, grants, environment). */
  readonly configure?: (agent: Agent, scope: Construct) => void;
}

/** Props of {@link AgentRuntimeStack}. */
export interface AgentRuntimeStackProps extends StackProps {
  /** The agents to deploy, each an {@link Agent} bound to the stack's runtime. */
  readonly agents: readonly AgentSpec[];
  /** Props of the stack's {@link AgentRuntime}. @default the runtime's defaults */
  readonly runtime?: AgentRuntimeProps;
  /** Whether each agent gets its CloudWatch alarms (see {@link Agent.alarms}). @default true */
  readonly alarms?: boolean;
}

/**
 * The runtime and its agents. Outputs: `ApiUrl`, `DeadLetterQueueUrl`,
 * `DeliveryDeadLetterQueueUrl`, `CheckpointTableName`, `EventTableName`,
 * `ApprovalTableName`, `EventBusName`, `BodyBucketName`, `ModelHealthTableName`,
 * `IdempotencyTableName`, `PolicyTableName`, `FaultTableName` (with fault injection), and per agent
 * `StateMachine<agent>` (its ARN; the agent's name with non-alphanumerics removed).
 * @throws Error from the constructor as {@link AgentRuntime} and {@link Agent} throw (a prop
 *   out of range, a missing module, invalid policies, two agents of one name).
 */
export class AgentRuntimeStack extends Stack {
  /** The shared runtime. */
  readonly runtime: AgentRuntime;
  /** The agents, in the order of `props.agents`. */
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
