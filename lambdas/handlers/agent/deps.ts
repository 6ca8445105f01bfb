/** What the per-agent steps need from the outside world, so tests can hand in their own. */
import type { BodyStore } from '../../adapters/body-store';
import type { CheckpointStore } from '../../adapters/checkpoint-store';
import type { FaultPoint } from '../../adapters/fault-injection';
import type { Once } from '../../adapters/idempotency';
import type { WaitDecision } from '../../core/contracts/loop';
import type { ModelProvider } from '../../core/contracts/model';
import type { AgentDefinition, HttpImplementation, ToolDefinition } from '../../core/define';
import type { PolicyDecision, Principal } from '../../core/policy';
import type { ModelRef } from '../../core/routing';
import type { HealthBook } from '../../adapters/model-health';

/** The checkpoint operations the steps use. */
export type StepStore = Pick<
  CheckpointStore,
  'createSession' | 'getSession' | 'getCheckpoint' | 'putCheckpoint' | 'listCheckpoints' | 'listAbandoned' | 'listNotices' | 'recordStep' | 'markSucceeded' | 'takeOver'
>;

/**
 * The policies in force at one moment (the agent's bundled Cedar policies, or an
 * operator's override from the policy table), read fresh for each step so that a
 * change applies at the next call.
 */
export interface PolicySnapshot {
  /** `bundled`, or the override's version. */
  readonly version: string;
  /** Decides one request: may `principal` discover (be offered) or call `tool` (with `args` at `step`). */
  decide(request: { principal: Principal; action: 'discoverTool' | 'callTool'; tool: ToolDefinition; arguments?: unknown; step?: number }): PolicyDecision;
}

/** The body operations the steps use (S3 in Lambda). */
export type StepBodies = Pick<BodyStore, 'exceedsInline' | 'put' | 'get'>;

/** The dependencies of the per-agent steps (prepare, model turn, tool call). */
export interface StepDeps {
  /** The agent the steps run. */
  readonly agent: AgentDefinition;
  /** Checkpoint storage (the DynamoDB store in Lambda). */
  readonly store: StepStore;
  /** Large bodies by reference (the S3 store in Lambda). */
  readonly bodies: StepBodies;
  /** Runs a model or tool call once per idempotency key (Powertools idempotency in Lambda). */
  readonly once: Once;
  /** The adapter of a model reference, whose calls give up after `timeoutMs` (`adapters/providers/index.ts` in Lambda). */
  readonly provider: (ref: ModelRef, timeoutMs: number) => ModelProvider;
  /** The models' shared health: breakers and latency windows (the DynamoDB store in Lambda). */
  readonly health: HealthBook;
  /** No model call starts that could not end before this time, ms since the epoch (the invocation's remaining time). @default none */
  readonly deadline?: () => number | undefined;
  /** Reports a fault of the health table (the call goes on without health information). */
  readonly onHealthError?: (error: unknown, key: string) => void;
  /** Tool name → Lambda function ARN. */
  readonly toolFunctions: () => Record<string, string>;
  /** Fires an injected fault planned for the session at `point` (chaos tests); a no-op unless enabled. */
  readonly fault: (point: FaultPoint, sessionId: string) => Promise<void>;
  /** The policies in force now (read before every decision). */
  readonly policies: () => Promise<PolicySnapshot>;
  /**
   * The recorded answer to the output review of model turn `step` on `branch` (its approval record),
   * or undefined while it is pending: the review's answer survives a continue-as-new or a resume.
   */
  readonly reviewDecision: (sessionId: string, step: number, branch: number) => Promise<WaitDecision | undefined>;
  /** Calls an HTTP tool's endpoint (`adapters/http-tool.ts` in Lambda). */
  readonly callHttp: (http: HttpImplementation, input: unknown, context: { idempotencyKey: string; timeoutMs: number; toolName: string }) => Promise<unknown>;
  /** The clock, in milliseconds since the epoch (durations in checkpoints). @default Date.now */
  readonly now?: () => number;
}
