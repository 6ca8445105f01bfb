/**
 * The typed API agent authors use: {@link defineTool} and {@link defineAgent}.
 * Declarations only; the CDK constructs turn them into Lambda functions and a
 * state machine, and the handlers run them.
 */
import { z } from 'zod';
import { BudgetsSchema, ToolBudgetSchema } from './budget';
import {
  DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS,
  DEFAULT_MAX_OUTPUT_TOKENS,
  DEFAULT_MAX_OUTPUT_REPAIRS,
  DEFAULT_MAX_STEPS,
  DEFAULT_MODEL_TIMEOUT_SECONDS,
  DEFAULT_TOOL_CONCURRENCY,
  DEFAULT_TOOL_TIMEOUT_SECONDS,
  LAMBDA_MAX_TIMEOUT_SECONDS,
  MAX_STEPS_LIMIT,
  STANDARD_EXECUTION_HISTORY_LIMIT,
  STANDARD_WORKFLOW_MAX_SECONDS,
  TASK_RETRY,
} from './constants';
import { maxToolRetries, minimumHistoryEventLimit } from './history';
import { formatIssues } from './validation';
import type { Budgets, ToolBudget } from './budget';
import type { ToolSpec } from './contracts/model';
import { contextLimitProblems, type ContextLimit } from './context';
import { routeProblems, type ModelRef, type ModelRoute, type StepKind } from './routing';
import type { EventBridgeEnvelope } from './trigger';
import { outputPipelineProblems, type OutputPipeline } from './output';
import type { DataClassification, PolicySource, Principal } from './policy';

/** What a tool handler gets besides its input. */
export interface ToolContext {
  readonly sessionId: string;
  /** The model's id for this call. */
  readonly callId: string;
  /** The model turn that asked for the call. */
  readonly step: number;
  /**
   * Stable across retries and resumes of this call (`tc_` + 32 hex digits; a new one
   * after a rollback): key side effects on it (a conditional write, a request id)
   * so that a retried call does not repeat them.
   */
  readonly idempotencyKey: string;
  /** Present when the call went through a human approval. */
  readonly approval?: { readonly approvalId?: string; readonly decidedBy?: string; readonly reason?: string };
}

/**
 * A tool: a versioned, schema-typed function the model may call.
 * @typeParam I zod schema of the input (its JSON Schema is what the model sees)
 * @typeParam O zod schema of the output (a result that fails it is a tool failure)
 */
export interface ToolDefinition<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  /** {@link TOOL_NAME_PATTERN}, `^[a-zA-Z0-9_-]{1,64}$` (the strictest of the providers' tool-name rules: Anthropic, OpenAI, Bedrock). */
  readonly name: string;
  /** Semantic version of the tool's contract ({@link SEMVER_PATTERN}), recorded with every call. */
  readonly version: string;
  /** What the tool does, for the model. */
  readonly description: string;
  readonly input: I;
  readonly output: O;
  /**
   * Runs the tool. Throw {@link import('./errors').ToolError} for a failure the model should see.
   * Absent for HTTP tools (`http`), which the runtime calls.
   */
  readonly handler?: (input: z.infer<I>, context: ToolContext) => Promise<z.infer<O>>;
  /** An HTTP endpoint the runtime calls instead of a handler (tool manifests). */
  readonly http?: HttpImplementation;
  /** Whether a human must approve each call first. @default false */
  readonly needsApproval: boolean;
  /**
   * Whether running the call twice has the effect of running it once (a read, or a
   * write keyed on `ToolContext.idempotencyKey`). A retried idempotent call may run
   * again when its first attempt died before recording a result. A non-idempotent
   * call never runs twice for one call id: its intent is recorded before it runs,
   * and an intent without a result is answered `OUTCOME_UNKNOWN` instead of
   * running again. @default false
   */
  readonly idempotent: boolean;
  /** Timeout of one call, seconds: the Lambda timeout and the RunTool Task's TimeoutSeconds. @default 30 */
  readonly timeoutSeconds: number;
  /** The Retry of the tool's Task (faults only; a `ToolError` is a result, never retried). @default {@link TASK_RETRY} */
  readonly retry: ToolRetry;
  /** Calls per session and cost per call. @default no limit, no cost */
  readonly budget?: ToolBudget;
  /** Sensitivity of the data it touches: the Cedar `Tool` entity's `classification`. @default 'internal' */
  readonly classification: DataClassification;
  /** Policy tags: the Cedar `Tool` entity's `tags`. @default [] */
  readonly tags: readonly string[];
  /** The manifest the tool was declared in, when it was (audit, error messages). */
  readonly source?: string;
}

/**
 * How a tool's Task retries faults (Amazon States Language Retry): `maxAttempts`
 * counts every attempt including the first (Retry `MaxAttempts` is one less).
 * Example: `{"maxAttempts":3,"intervalSeconds":1,"backoffRate":2,"maxDelaySeconds":20,"jitter":"full"}`
 */
export interface ToolRetry {
  /** Every attempt, the first included: an integer from 1 to 100. @default 4 ({@link TASK_RETRY}'s 3 retries + 1) */
  readonly maxAttempts: number;
  /** Seconds before the first retry, a positive integer. @default 1 */
  readonly intervalSeconds: number;
  /** 1 for a fixed interval, above 1 for exponential backoff. @default 2 */
  readonly backoffRate: number;
  /** Longest wait between attempts, seconds: an integer of at least `intervalSeconds`. @default 20 */
  readonly maxDelaySeconds: number;
  /** `full`: JitterStrategy FULL; `none`: none. @default 'full' */
  readonly jitter: 'full' | 'none';
}

/**
 * An HTTP tool's endpoint: the runtime sends the validated input as JSON (POST,
 * PUT, PATCH) or as query parameters (GET, DELETE) with the tool's timeout, and
 * validates the JSON answer against the output schema. 429, 5xx, timeouts and
 * dropped connections are faults (retried by the Task's Retry); other 4xx are
 * tool errors the model sees.
 * Example: `{"url":"https://internal-api.corp/v1/search","method":"POST","headers":{"x-api-version":"1"}}`
 */
export interface HttpImplementation {
  /** The endpoint, `http:` or `https:`, without credentials (a manifest's URL is checked). */
  readonly url: string;
  /** GET and DELETE send the input as query parameters; POST, PUT and PATCH as a JSON body. */
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Extra request headers; the runtime sets `content-type` and `idempotency-key` itself. @default none */
  readonly headers?: Readonly<Record<string, string>>;
  /** Timeout of one HTTP request, ms. @default the tool's `timeoutSeconds` × 1000 */
  readonly timeoutMs?: number;
}

/** Props of {@link defineTool}. */
export type ToolProps<I extends z.ZodType, O extends z.ZodType> = Omit<
  ToolDefinition<I, O>,
  'needsApproval' | 'timeoutSeconds' | 'idempotent' | 'retry' | 'classification' | 'tags'
> & {
  readonly needsApproval?: boolean;
  readonly timeoutSeconds?: number;
  readonly idempotent?: boolean;
  readonly retry?: Partial<ToolRetry>;
  readonly classification?: DataClassification;
  readonly tags?: readonly string[];
};

/** A tool's name: 1-64 of `[a-zA-Z0-9_-]`, the strictest of the providers' tool-name rules (Anthropic, OpenAI, Bedrock). */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
/** A semantic version's shape (SemVer 2.0.0, loosely): `MAJOR.MINOR.PATCH`, optionally `-<pre-release>` and `+<build>`. */
export const SEMVER_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const AGENT_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * Declares a tool, applying the defaults of {@link ToolDefinition}.
 * @throws Error naming the field: a name not matching {@link TOOL_NAME_PATTERN}, a version
 *   not matching {@link SEMVER_PATTERN}; not exactly one of `handler` and `http`; `retry`
 *   out of range (`maxAttempts` an integer 1-100, `intervalSeconds` a positive integer,
 *   `backoffRate` at least 1, `maxDelaySeconds` an integer of at least `intervalSeconds`);
 *   `timeoutSeconds` not an integer from 1 to {@link LAMBDA_MAX_TIMEOUT_SECONDS}; a `budget`
 *   {@link ToolBudgetSchema} rejects.
 */
export function defineTool<I extends z.ZodType, O extends z.ZodType>(props: ToolProps<I, O>): ToolDefinition<I, O> {
  if (!TOOL_NAME_PATTERN.test(props.name)) throw new Error(`defineTool: name "${props.name}" must match ${TOOL_NAME_PATTERN}`);
  if (!SEMVER_PATTERN.test(props.version)) throw new Error(`defineTool(${props.name}): version "${props.version}" must be semver (1.0.0)`);
  const where = `defineTool(${props.name})`;
  if (!props.handler === !props.http) throw new Error(`${where}: exactly one of handler and http is required`);
  const retry: ToolRetry = {
    maxAttempts: TASK_RETRY.maxAttempts + 1,
    intervalSeconds: TASK_RETRY.intervalSeconds,
    backoffRate: TASK_RETRY.backoffRate,
    maxDelaySeconds: TASK_RETRY.maxDelaySeconds,
    jitter: 'full',
    ...props.retry,
  };
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1 || retry.maxAttempts > 100) throw new Error(`${where}: retry.maxAttempts must be an integer from 1 to 100`);
  if (!Number.isInteger(retry.intervalSeconds) || retry.intervalSeconds < 1) throw new Error(`${where}: retry.intervalSeconds must be a positive integer`);
  if (!(retry.backoffRate >= 1)) throw new Error(`${where}: retry.backoffRate must be at least 1`);
  if (!Number.isInteger(retry.maxDelaySeconds) || retry.maxDelaySeconds < retry.intervalSeconds) throw new Error(`${where}: retry.maxDelaySeconds must be an integer of at least retry.intervalSeconds`);
  const timeoutSeconds = props.timeoutSeconds ?? DEFAULT_TOOL_TIMEOUT_SECONDS;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > LAMBDA_MAX_TIMEOUT_SECONDS) {
    throw new Error(`${where}: timeoutSeconds must be an integer from 1 to ${LAMBDA_MAX_TIMEOUT_SECONDS} (the Lambda maximum)`);
  }
  const budget = props.budget === undefined ? undefined : ToolBudgetSchema.safeParse(props.budget);
  if (budget && !budget.success) throw new Error(`${where}: budget: ${formatIssues(budget.error, 'budget').join('; ')}`);
  return {
    ...props,
    needsApproval: props.needsApproval ?? false,
    idempotent: props.idempotent ?? false,
    timeoutSeconds,
    retry,
    classification: props.classification ?? 'internal',
    tags: props.tags ?? [],
  };
}

/** The JSON Schema the model sees for a tool's input (zod's `toJSONSchema`, input side). */
export function toolSpec(tool: ToolDefinition): ToolSpec {
  const schema = z.toJSONSchema(tool.input, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete schema.$schema;
  return { name: tool.name, description: tool.description, inputSchema: schema };
}

/** Which model serves a call (scripted, Bedrock, Anthropic, OpenAI): see `core/routing.ts`. */
export type { ModelRef, ModelRoute, StepKind } from './routing';

/**
 * An EventBridge trigger: the rule's event pattern (EventBridge event-pattern syntax),
 * the principal its runs act for, and its budget overrides. Prepare picks the first
 * trigger whose `source` and `detailType` lists admit the event.
 */
export interface EventBridgeTrigger {
  readonly type: 'eventbridge';
  readonly eventPattern: {
    readonly source?: string[];
    readonly detailType?: string[];
    readonly detail?: Record<string, unknown>;
  };
  /**
   * Who runs started by this trigger act for: fixed, or derived from the event
   * (never from the model). @default `{user: "eventbridge:<source>", tenant: <account>, roles: []}`
   */
  readonly principal?: Principal | ((event: EventBridgeEnvelope) => Principal);
  /** Budgets of runs started by this trigger, overriding the agent's field by field. */
  readonly budgets?: Budgets;
}

/** Metadata of the trigger, given to `prompt`. */
export interface TriggerMeta {
  readonly source: 'eventbridge' | 'api';
  readonly detailType?: string;
  readonly time?: string;
}

/** A declared agent. */
export interface AgentDefinition<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  /** `^[a-z][a-z0-9-]{0,39}$`; names the state machine and the API path. */
  readonly name: string;
  /** What the agent does, for people (state machine comment, logs). */
  readonly description: string;
  /** The system prompt of every model call. */
  readonly systemPrompt: string;
  /**
   * The model that drives the agent: one model, or a route (a primary, ordered
   * fallbacks, an SLO, retry and breaker settings). It serves every step kind
   * `routes` does not name (`core/routing.ts`).
   */
  readonly model: ModelRef | ModelRoute;
  /**
   * Routes per step kind (`plan`, `act`, `repair`, `summarise`), each replacing
   * `model` for its kind. Deterministic: no model chooses the model. @default none
   */
  readonly routes?: Partial<Record<StepKind, ModelRoute>>;
  /**
   * Schema of the run's input: the EventBridge event's `detail`, or the API's `input`.
   * Invalid input fails the run with `InvalidInput` naming the fields.
   */
  readonly input: I;
  /** Builds the first user message from the validated input. */
  readonly prompt: (input: z.infer<I>, trigger: TriggerMeta) => string;
  /** The tools the model may call; each runs in its own Lambda function. */
  readonly tools: readonly ToolDefinition[];
  /** Schema of the final answer (JSON). */
  readonly output: O;
  /** Model turns before the run fails with `StepLimitReached`. @default 20 */
  readonly maxSteps: number;
  /**
   * History events an execution may reach before the run continues as a new
   * execution (linked by session id and parent execution ARN). Lower it only to
   * test continuation; it must leave room for a worst-case turn
   * ({@link minimumHistoryEventLimit}). @default 25000 (the Standard execution quota)
   */
  readonly historyEventLimit: number;
  /**
   * The most sent to the model in one request (`core/context.ts`): `maxContextTokens`,
   * the model's window in tokens (the whole request, estimated, plus `maxOutputTokens`),
   * and/or `maxToolResultBytes`, the bytes of tool results sent in full. Above either,
   * `strategy` replaces the oldest tool results by a note or a summary, or fails with
   * `ContextLimitExceeded`, as does a request that does not fit with every result
   * replaced. What the limit did is recorded in each model checkpoint. @default no limit
   */
  readonly context?: ContextLimit;
  /** Invalid final answers sent back to the model before the run fails. @default 2 */
  readonly maxOutputRepairs: number;
  /** Tool calls of one turn run at once. @default 4 */
  readonly toolConcurrency: number;
  /** Seconds an approval may wait before it counts as rejected ("timed out"). @default 86400 */
  readonly approvalTimeoutSeconds: number;
  /** Lambda timeout of a model turn, seconds. @default 120 */
  readonly modelTimeoutSeconds: number;
  /** EventBridge rules that start the agent (it can always be started through the API). @default [] */
  readonly triggers: readonly EventBridgeTrigger[];
  /** Default budgets of a run (triggers and API requests override them field by field). @default no limits */
  readonly budgets: Budgets;
  /**
   * Seconds a run paused on an exhausted budget waits for `raise-budget` or `stop`
   * before it fails with `BudgetExhausted`. @default 604800 (7 days)
   */
  readonly budgetPauseTimeoutSeconds: number;
  /** The most output tokens one model call may produce (the request's `maxTokens`). @default 4096 */
  readonly maxOutputTokens: number;
  /**
   * Cedar policies authorising tool calls (default deny: only what they permit runs).
   * @default every declared tool permitted to every principal (`permit (principal, action, resource);`)
   */
  readonly policies?: PolicySource;
  /** What a valid answer must also pass: semantic rules, confidence, gate. @default none */
  readonly outputPipeline?: OutputPipeline<z.infer<O>>;
}

/** Props of {@link defineAgent}: the optional fields take the defaults above. */
export type AgentProps<I extends z.ZodType, O extends z.ZodType> = Omit<
  AgentDefinition<I, O>,
  DefaultedAgentField
> &
  Partial<Pick<AgentDefinition<I, O>, DefaultedAgentField>>;

type DefaultedAgentField =
  | 'maxSteps'
  | 'maxOutputRepairs'
  | 'toolConcurrency'
  | 'approvalTimeoutSeconds'
  | 'modelTimeoutSeconds'
  | 'triggers'
  | 'historyEventLimit'
  | 'budgets'
  | 'budgetPauseTimeoutSeconds'
  | 'maxOutputTokens';

/**
 * Declares an agent, applying the defaults of {@link AgentDefinition}.
 * @throws Error naming the field: a malformed name; duplicate tool names; `budgets`, or a
 *   trigger's `budgets`, that {@link BudgetsSchema} rejects; `maxSteps`, `toolConcurrency`,
 *   `approvalTimeoutSeconds`, `modelTimeoutSeconds`, `budgetPauseTimeoutSeconds` or
 *   `maxOutputTokens` not a positive integer; `maxOutputRepairs` negative or not an integer;
 *   `maxSteps` above {@link MAX_STEPS_LIMIT}; `historyEventLimit` outside
 *   {@link minimumHistoryEventLimit} (with the tools' retries) .. 25,000; a route problem
 *   ({@link routeProblems}: timeouts, SLO, retry and breaker ranges, duplicate or empty
 *   models, a temperature outside 0-2 or above 1 for a Claude model, an unknown step kind);
 *   a `context` problem ({@link contextLimitProblems}, e.g. `maxContextTokens` not above
 *   `maxOutputTokens`); an `outputPipeline` problem ({@link outputPipelineProblems});
 *   `approvalTimeoutSeconds` or `budgetPauseTimeoutSeconds` above
 *   {@link STANDARD_WORKFLOW_MAX_SECONDS} (1 year).
 */
export function defineAgent<I extends z.ZodType, O extends z.ZodType>(props: AgentProps<I, O>): AgentDefinition<I, O> {
  const where = `defineAgent(${props.name})`;
  if (!AGENT_NAME.test(props.name)) throw new Error(`${where}: name must match ${AGENT_NAME}`);
  const names = new Set<string>();
  for (const tool of props.tools) {
    if (names.has(tool.name)) throw new Error(`${where}: tools: duplicate tool name "${tool.name}"`);
    names.add(tool.name);
  }
  const agent: AgentDefinition<I, O> = {
    ...props,
    maxSteps: props.maxSteps ?? DEFAULT_MAX_STEPS,
    maxOutputRepairs: props.maxOutputRepairs ?? DEFAULT_MAX_OUTPUT_REPAIRS,
    toolConcurrency: props.toolConcurrency ?? DEFAULT_TOOL_CONCURRENCY,
    approvalTimeoutSeconds: props.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    modelTimeoutSeconds: props.modelTimeoutSeconds ?? DEFAULT_MODEL_TIMEOUT_SECONDS,
    triggers: props.triggers ?? [],
    historyEventLimit: props.historyEventLimit ?? STANDARD_EXECUTION_HISTORY_LIMIT,
    budgets: props.budgets ?? {},
    budgetPauseTimeoutSeconds: props.budgetPauseTimeoutSeconds ?? DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS,
    maxOutputTokens: props.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS,
  };
  const budgets = BudgetsSchema.safeParse(agent.budgets);
  if (!budgets.success) throw new Error(`${where}: ${formatIssues(budgets.error, 'budgets').join('; ')}`);
  agent.triggers.forEach((trigger, i) => {
    const parsed = trigger.budgets === undefined ? undefined : BudgetsSchema.safeParse(trigger.budgets);
    if (parsed && !parsed.success) throw new Error(`${where}: ${formatIssues(parsed.error, `triggers[${i}].budgets`).join('; ')}`);
  });
  for (const field of ['maxSteps', 'toolConcurrency', 'approvalTimeoutSeconds', 'modelTimeoutSeconds', 'budgetPauseTimeoutSeconds', 'maxOutputTokens'] as const) {
    if (!Number.isInteger(agent[field]) || agent[field] < 1) throw new Error(`${where}: ${field} must be a positive integer`);
  }
  if (!Number.isInteger(agent.maxOutputRepairs) || agent.maxOutputRepairs < 0) {
    throw new Error(`${where}: maxOutputRepairs must be a non-negative integer`);
  }
  if (agent.maxSteps > MAX_STEPS_LIMIT) {
    throw new Error(`${where}: maxSteps must be at most ${MAX_STEPS_LIMIT}`);
  }
  const minHistory = minimumHistoryEventLimit(undefined, maxToolRetries(agent.tools));
  if (!Number.isInteger(agent.historyEventLimit) || agent.historyEventLimit < minHistory || agent.historyEventLimit > STANDARD_EXECUTION_HISTORY_LIMIT) {
    throw new Error(`${where}: historyEventLimit must be an integer from ${minHistory} (room for one worst-case turn) to ${STANDARD_EXECUTION_HISTORY_LIMIT} (the Standard execution quota)`);
  }
  const routing = routeProblems(agent.model, agent.routes, agent.modelTimeoutSeconds);
  if (routing.length > 0) throw new Error(`${where}: ${routing.join('; ')}`);
  const contextProblems = contextLimitProblems(agent.context, agent.maxOutputTokens);
  if (contextProblems.length > 0) throw new Error(`${where}: ${contextProblems.join('; ')}`);
  if (agent.outputPipeline) {
    const problems = outputPipelineProblems(agent.outputPipeline as OutputPipeline<never>);
    if (problems.length > 0) throw new Error(`${where}: ${problems.join('; ')}`);
  }
  for (const field of ['approvalTimeoutSeconds', 'budgetPauseTimeoutSeconds'] as const) {
    if (agent[field] > STANDARD_WORKFLOW_MAX_SECONDS) throw new Error(`${where}: ${field} must be at most ${STANDARD_WORKFLOW_MAX_SECONDS} (1 year, the Step Functions task timeout maximum)`);
  }
  return agent;
}
