/**
 * The per-agent Lambda handlers. Each agent's generated entry file does
 * `export const { prepare, modelTurn, runTool, startRun } = createAgentHandlers(agent)`;
 * the Agent construct points one function at each export.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { ApprovalStore } from '../../adapters/approval-store';
import { BodyStore } from '../../adapters/body-store';
import { CheckpointStore } from '../../adapters/checkpoint-store';
import { documentClient, s3Client, takeDynamoDbRequests } from '../../adapters/clients';
import { requireEnv, requireJsonMapEnv } from '../../adapters/config';
import { injectFault } from '../../adapters/fault-injection';
import { callHttpTool } from '../../adapters/http-tool';
import { powertoolsOnce, type Once } from '../../adapters/idempotency';
import type { effectivePolicies, PolicyEngine, PolicyStore } from '../../adapters/policy-engine';
import { ModelHealthStore, type HealthBook } from '../../adapters/model-health';
import { providerFor } from '../../adapters/providers';
import { ModelTurnInputSchema, ToolTaskInputSchema, type ModelTurnResult, type PrepareResult } from '../../core/contracts/loop';
import type { AgentDefinition } from '../../core/define';
import { outputReviewCallId, reviewAnswer } from '../../core/approvals';
import { ENV } from '../../core/env-names';
import { turnMarginMs } from '../../core/routing';
import { approvalIdFor } from '../../core/ids';
import { authorizationRequest, policySchema } from '../../core/policy';
import { logger, logStep } from '../../observability/powertools';
import type { PolicySnapshot, StepDeps } from './deps';
import { modelTurn } from './model-turn';
import { prepare, type PrepareEvent } from './prepare';
import { runTool, type ToolTaskResult } from './run-tool';
import { startRun } from './start-run';

/** The handlers of an agent. */
export interface AgentHandlers {
  /** The Prepare task: validates the trigger, creates the session (see `prepare.ts`). */
  prepare(event: PrepareEvent, context: Context): Promise<PrepareResult>;
  /**
   * The ModelTurn task (see `model-turn.ts`). @throws ZodError when `event` is not a
   * {@link ModelTurnInputSchema}; whatever the turn throws (faults, retried by the Task).
   */
  modelTurn(event: unknown, context: Context): Promise<ModelTurnResult>;
  /**
   * A tool's RunTool task, for the tool named by the function's `AGENT_TOOL_NAME` (see
   * `run-tool.ts`). @throws ZodError when `event` is not a {@link ToolTaskInputSchema};
   * ConfigurationError when the environment variable is unset; whatever the call throws.
   */
  runTool(event: unknown, context: Context): Promise<ToolTaskResult>;
  /** POST /agents/{agent}/runs (API Gateway Lambda proxy). */
  startRun(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult>;
}

/**
 * The policies in force, read before every decision: the operator's override from
 * the policy table when there is one, else the agent's bundled policies (else the
 * default, which permits every declared tool). Never cached, so a change applies at the next call.
 */
function policySnapshots(agent: AgentDefinition): () => Promise<PolicySnapshot> {
  // Made on first use: only the functions that decide policies (model turn, tools) have the
  // table, and only they load Cedar's wasm (a dynamic import: no cost at Prepare's or StartRun's cold start).
  let ready:
    | Promise<{ engine: PolicyEngine; store: PolicyStore; effective: typeof effectivePolicies; environment: string; schema: ReturnType<typeof policySchema> }>
    | undefined;
  return async () => {
    ready ??= import('../../adapters/policy-engine').then((m) => ({
      engine: new m.PolicyEngine(),
      effective: m.effectivePolicies,
      store: new m.PolicyStore(documentClient(), requireEnv(ENV.policyTable)),
      environment: requireEnv(ENV.environment),
      schema: policySchema(agent.tools),
    }));
    const { engine, store, effective, environment, schema } = await ready;
    const { text, version } = effective(agent.policies, await store.current(agent.name));
    return {
      version,
      decide: (request) => engine.authorize(text, authorizationRequest({ ...request, agent: agent.name, environment, schema })),
    };
  };
}

/** The models' health table, named on first use: only the model-turn functions have it. */
function healthBook(): HealthBook {
  let store: ModelHealthStore | undefined;
  const get = (): ModelHealthStore => (store ??= new ModelHealthStore(documentClient(), requireEnv(ENV.healthTable)));
  return {
    read: (...args) => get().read(...args),
    record: (...args) => get().record(...args),
    transition: (...args) => get().transition(...args),
  };
}

/** The recorded answers to output reviews (only the model turn asks, so the table is named on first use). */
function reviewDecisions(store: () => ApprovalStore): StepDeps['reviewDecision'] {
  let approvals: ApprovalStore | undefined;
  return async (sessionId, step, branch) => {
    const record = await (approvals ??= store()).get(approvalIdFor(sessionId, step, outputReviewCallId(branch)));
    return record ? reviewAnswer(record) : undefined;
  };
}

/**
 * Builds an agent's handlers. Environment is read on first use (the functions
 * share one bundle but not one configuration).
 */
export function createAgentHandlers(agent: AgentDefinition): AgentHandlers {
  let base: Omit<StepDeps, 'once' | 'fault'> | undefined;
  let onceFor: ((context: Context) => Once) | undefined;
  let toolNameOnce: string | undefined;
  // Per invocation: the idempotency lock and injected timeouts follow this invocation's remaining time.
  const getDeps = (context: Context): StepDeps => {
    base ??= {
      agent,
      store: new CheckpointStore(documentClient(), requireEnv(ENV.checkpointTable)),
      bodies: new BodyStore(s3Client(), requireEnv(ENV.bodyBucket), Number(requireEnv(ENV.bodyInlineLimit))),
      provider: providerFor,
      health: healthBook(),
      onHealthError: (error, key) => logger.warn('model health table unavailable: routing without health information', { model: key, error }),
      toolFunctions: () => requireJsonMapEnv(ENV.toolFunctions),
      policies: policySnapshots(agent),
      callHttp: callHttpTool,
      reviewDecision: reviewDecisions(() => new ApprovalStore(documentClient(), requireEnv(ENV.approvalTable))),
    };
    return {
      ...base,
      once: (onceFor ??= powertoolsOnce(requireEnv(ENV.idempotencyTable)))(context),
      fault: (point, sessionId) => injectFault(point, sessionId, context),
      // The invocation's end less a margin for the checkpoint: no model call or retry starts within a second of it.
      deadline: () => Date.now() + context.getRemainingTimeInMillis() - turnMarginMs(agent.modelTimeoutSeconds),
    };
  };

  return {
    async prepare(event, context) {
      logStep({ agent: agent.name, executionArn: event.executionArn, step: 0 });
      logger.addContext(context);
      const result = await prepare(event, getDeps(context));
      logger.info('prepared', { sessionId: result.sessionId, outcome: result.outcome, failure: result.failure });
      return result;
    },
    async modelTurn(event, context) {
      const input = ModelTurnInputSchema.parse(event);
      logStep({ agent: agent.name, sessionId: input.sessionId, executionArn: input.executionArn, step: input.step + 1 });
      logger.addContext(context);
      takeDynamoDbRequests();
      const result = await modelTurn(input, getDeps(context));
      logger.info('model turn', { outcome: result.outcome, calls: result.calls.map((c) => c.tool), failure: result.failure, pause: result.pause, events: result.events, dynamodb: takeDynamoDbRequests() });
      return result;
    },
    async runTool(event, context) {
      const input = ToolTaskInputSchema.parse(event);
      const toolName = (toolNameOnce ??= requireEnv(ENV.toolName));
      logStep({ agent: agent.name, sessionId: input.sessionId, executionArn: input.executionArn, step: input.step, tool: toolName, callId: input.call.callId });
      logger.addContext(context);
      takeDynamoDbRequests();
      const result = await runTool(input, toolName, getDeps(context));
      logger.info('tool call', { status: result.status, approval: input.approval.decision, dynamodb: takeDynamoDbRequests() });
      return result;
    },
    async startRun(event, context) {
      logStep({ agent: agent.name });
      logger.addContext(context);
      return startRun(event, agent, requireEnv(ENV.stateMachineArn));
    },
  };
}
