/**
 * The typed API agent authors use: {@link defineTool} and {@link defineAgent}.
 * Declarations only; the CDK constructs turn them into Lambda functions and a
 * state machine, and the handlers run them.
 */
import { z } from 'zod';
import {
  DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  DEFAULT_MAX_OUTPUT_REPAIRS,
  DEFAULT_MAX_STEPS,
  DEFAULT_MODEL_TIMEOUT_SECONDS,
  DEFAULT_TOOL_CONCURRENCY,
  DEFAULT_TOOL_TIMEOUT_SECONDS,
  MAX_STEPS_LIMIT,
  STANDARD_EXECUTION_HISTORY_LIMIT,
} from './constants';
import { minimumHistoryEventLimit } from './history';
import type { ToolSpec } from './contracts/model';
import type { ContextLimit } from './durable';
import type { ScriptedConversation } from './contracts/scripted';

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
  /** `^[a-zA-Z0-9_-]{1,64}$` (the strictest of the providers' tool-name rules: Anthropic, OpenAI, Bedrock). */
  readonly name: string;
  /** Semantic version of the tool's contract, recorded with every call. */
  readonly version: string;
  /** What the tool does, for the model. */
  readonly description: string;
  readonly input: I;
  readonly output: O;
  /** Runs the tool. Throw {@link import('./errors').ToolError} for a failure the model should see. */
  readonly handler: (input: z.infer<I>, context: ToolContext) => Promise<z.infer<O>>;
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
  /** Lambda timeout of one call, seconds. @default 30 */
  readonly timeoutSeconds: number;
}

/** Props of {@link defineTool}. */
export type ToolProps<I extends z.ZodType, O extends z.ZodType> = Omit<
  ToolDefinition<I, O>,
  'needsApproval' | 'timeoutSeconds' | 'idempotent'
> & { readonly needsApproval?: boolean; readonly timeoutSeconds?: number; readonly idempotent?: boolean };

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const AGENT_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * Declares a tool.
 * @throws Error naming the field when the name or version is malformed.
 */
export function defineTool<I extends z.ZodType, O extends z.ZodType>(props: ToolProps<I, O>): ToolDefinition<I, O> {
  if (!TOOL_NAME.test(props.name)) throw new Error(`defineTool: name "${props.name}" must match ${TOOL_NAME}`);
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.test(props.version)) throw new Error(`defineTool(${props.name}): version "${props.version}" must be semver (1.0.0)`);
  return {
    ...props,
    needsApproval: props.needsApproval ?? false,
    idempotent: props.idempotent ?? false,
    timeoutSeconds: props.timeoutSeconds ?? DEFAULT_TOOL_TIMEOUT_SECONDS,
  };
}

/** The JSON Schema the model sees for a tool's input (zod's `toJSONSchema`, input side). */
export function toolSpec(tool: ToolDefinition): ToolSpec {
  const schema = z.toJSONSchema(tool.input, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete schema.$schema;
  return { name: tool.name, description: tool.description, inputSchema: schema };
}

/**
 * Which model drives an agent. Only the scripted provider exists today: it replays
 * a recorded conversation (see {@link ScriptedConversation}).
 */
export type ModelRef = { readonly provider: 'scripted'; readonly script: ScriptedConversation };

/** An EventBridge trigger: the rule's event pattern (EventBridge event-pattern syntax). */
export interface EventBridgeTrigger {
  readonly type: 'eventbridge';
  readonly eventPattern: {
    readonly source?: string[];
    readonly detailType?: string[];
    readonly detail?: Record<string, unknown>;
  };
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
  /** The model that drives the agent. */
  readonly model: ModelRef;
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
   * The most bytes of tool results sent to the model in one request, and the
   * strategy above it (drop the oldest results, noted in the checkpoint, or fail
   * with `ContextLimitExceeded`). @default no limit
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
}

/** Props of {@link defineAgent}: the optional fields take the defaults above. */
export type AgentProps<I extends z.ZodType, O extends z.ZodType> = Omit<
  AgentDefinition<I, O>,
  'maxSteps' | 'maxOutputRepairs' | 'toolConcurrency' | 'approvalTimeoutSeconds' | 'modelTimeoutSeconds' | 'triggers' | 'historyEventLimit'
> &
  Partial<
    Pick<
      AgentDefinition<I, O>,
      'maxSteps' | 'maxOutputRepairs' | 'toolConcurrency' | 'approvalTimeoutSeconds' | 'modelTimeoutSeconds' | 'triggers' | 'historyEventLimit'
    >
  >;

/**
 * Declares an agent.
 * @throws Error naming the field: a malformed name, duplicate tool names, a
 *   non-positive limit, `maxSteps` above {@link MAX_STEPS_LIMIT}, `historyEventLimit` outside
 *   {@link minimumHistoryEventLimit} .. 25,000, an approval timeout
 *   outside 1 s .. 1 year (the Step Functions task timeout range).
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
  };
  for (const field of ['maxSteps', 'toolConcurrency', 'approvalTimeoutSeconds', 'modelTimeoutSeconds'] as const) {
    if (!Number.isInteger(agent[field]) || agent[field] < 1) throw new Error(`${where}: ${field} must be a positive integer`);
  }
  if (!Number.isInteger(agent.maxOutputRepairs) || agent.maxOutputRepairs < 0) {
    throw new Error(`${where}: maxOutputRepairs must be a non-negative integer`);
  }
  if (agent.maxSteps > MAX_STEPS_LIMIT) {
    throw new Error(`${where}: maxSteps must be at most ${MAX_STEPS_LIMIT}`);
  }
  const minHistory = minimumHistoryEventLimit();
  if (!Number.isInteger(agent.historyEventLimit) || agent.historyEventLimit < minHistory || agent.historyEventLimit > STANDARD_EXECUTION_HISTORY_LIMIT) {
    throw new Error(`${where}: historyEventLimit must be an integer from ${minHistory} (room for one worst-case turn) to ${STANDARD_EXECUTION_HISTORY_LIMIT} (the Standard execution quota)`);
  }
  if (agent.context && (!Number.isInteger(agent.context.maxToolResultBytes) || agent.context.maxToolResultBytes < 1)) {
    throw new Error(`${where}: context.maxToolResultBytes must be a positive integer`);
  }
  if (agent.approvalTimeoutSeconds > 31_536_000) throw new Error(`${where}: approvalTimeoutSeconds must be at most 31536000 (1 year)`);
  return agent;
}
