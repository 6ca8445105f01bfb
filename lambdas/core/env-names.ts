/**
 * Names of the environment variables the CDK constructs set and the handlers read.
 * Shared so that the two sides cannot drift apart.
 */
export const ENV = {
  /** DynamoDB table of sessions and checkpoints (stream source of the event log). */
  checkpointTable: 'AGENT_CHECKPOINT_TABLE',
  /** DynamoDB table of the append-only event log. */
  eventTable: 'AGENT_EVENT_TABLE',
  /** DynamoDB table of pending approvals and their task tokens (never streamed, never returned). */
  approvalTable: 'AGENT_APPROVAL_TABLE',
  /** URL of the SQS queue that receives one envelope per failed run. */
  deadLetterQueueUrl: 'AGENT_DLQ_URL',
  /** Name of the runtime's EventBridge bus. */
  eventBusName: 'AGENT_EVENT_BUS',
  /** The agent's state machine ARN (its start-run function). */
  stateMachineArn: 'AGENT_STATE_MACHINE_ARN',
  /** Comma-separated names of the deployed agents (the unknown-agent answer). */
  agentNames: 'AGENT_NAMES',
  /** JSON object: tool name → Lambda function ARN (model-turn function). */
  toolFunctions: 'AGENT_TOOL_FUNCTIONS',
  /** Name of the tool a tool function runs. */
  toolName: 'AGENT_TOOL_NAME',
  /** S3 bucket of bodies stored by reference (large tool results and model responses). */
  bodyBucket: 'AGENT_BODY_BUCKET',
  /** Bodies larger than this many bytes go to S3 (decimal integer). */
  bodyInlineLimit: 'AGENT_BODY_INLINE_LIMIT_BYTES',
  /** DynamoDB table of Powertools idempotency records (model and tool calls). */
  idempotencyTable: 'AGENT_IDEMPOTENCY_TABLE',
  /** DynamoDB table of policy overrides (partition key `agent`): read before every policy decision. */
  policyTable: 'AGENT_POLICY_TABLE',
  /** The deployment's environment (e.g. `production`): the Cedar `Tool` entities' `environment`. */
  environment: 'AGENT_ENVIRONMENT',
  /** DynamoDB table of the models' health (latency buckets and circuit breakers), shared by every agent (model-turn functions). */
  healthTable: 'AGENT_MODEL_HEALTH_TABLE',
  /** DynamoDB table of injected faults; set only when the runtime enables fault injection. */
  faultTable: 'AGENT_FAULT_TABLE',
} as const;

/** The name of one of the runtime's environment variables. */
export type EnvName = (typeof ENV)[keyof typeof ENV];
