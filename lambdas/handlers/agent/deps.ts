/** What the per-agent steps need from the outside world, so tests can hand in their own. */
import type { CheckpointStore } from '../../adapters/checkpoint-store';
import type { ModelProvider } from '../../core/contracts/model';
import type { AgentDefinition } from '../../core/define';

/** The checkpoint operations the steps use. */
export type StepStore = Pick<
  CheckpointStore,
  'createSession' | 'getCheckpoint' | 'putCheckpoint' | 'listCheckpoints' | 'recordStep' | 'markSucceeded'
>;

export interface StepDeps {
  readonly agent: AgentDefinition;
  readonly store: StepStore;
  /** A provider for the agent's model reference. */
  readonly provider: () => ModelProvider;
  /** Tool name → Lambda function ARN. */
  readonly toolFunctions: () => Record<string, string>;
  readonly now?: () => number;
}
