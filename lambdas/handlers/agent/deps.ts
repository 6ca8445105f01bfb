/** What the per-agent steps need from the outside world, so tests can hand in their own. */
import type { CheckpointStore } from '../../adapters/checkpoint-store';
import type { ModelProvider } from '../../core/contracts/model';
import type { AgentDefinition } from '../../core/define';

/** The checkpoint operations the steps use. */
export type StepStore = Pick<
  CheckpointStore,
  'createSession' | 'getCheckpoint' | 'putCheckpoint' | 'listCheckpoints' | 'recordStep' | 'markSucceeded'
>;

/** The dependencies of the per-agent steps (prepare, model turn, tool call). */
export interface StepDeps {
  /** The agent the steps run. */
  readonly agent: AgentDefinition;
  /** Checkpoint storage (the DynamoDB store in Lambda). */
  readonly store: StepStore;
  /** A provider for the agent's model reference. */
  readonly provider: () => ModelProvider;
  /** Tool name → Lambda function ARN. */
  readonly toolFunctions: () => Record<string, string>;
  /** The clock, in milliseconds since the epoch (durations in checkpoints). @default Date.now */
  readonly now?: () => number;
}
