/**
 * Prepare: validates the trigger input, creates the session (once per trigger)
 * and checkpoints the first user message.
 */
import { checkpointKey } from '../../core/contracts/checkpoint';
import type { PrepareResult } from '../../core/contracts/loop';
import { parseTrigger } from '../../core/trigger';
import { formatIssues } from '../../core/validation';
import type { StepDeps } from './deps';

/** Input of the Prepare task, built by the state machine. */
export interface PrepareEvent {
  /** The execution input: an EventBridge event or an API trigger. */
  trigger: unknown;
  executionArn: string;
  executionName: string;
}

/**
 * Runs Prepare.
 * @returns `ready`, `duplicate` (this trigger already runs in another execution),
 *   or `failed` with `InvalidInput` naming the fields.
 */
export async function prepare(event: PrepareEvent, deps: StepDeps): Promise<PrepareResult> {
  const { agent, store } = deps;
  const trigger = parseTrigger(agent.name, event.trigger);
  if (!trigger.ok) {
    return { sessionId: event.executionName, step: 0, repairs: 0, outcome: 'failed', failure: { error: 'InvalidInput', cause: trigger.error } };
  }
  const base = { sessionId: trigger.sessionId, step: 0 as const, repairs: 0 as const };
  const input = agent.input.safeParse(trigger.input);
  if (!input.success) {
    const where = trigger.info.source === 'eventbridge' ? 'detail' : 'input';
    const cause = formatIssues(input.error, where).join('; ');
    return { ...base, outcome: 'failed', failure: { error: 'InvalidInput', cause } };
  }
  const { session } = await store.createSession({
    sessionId: trigger.sessionId,
    agent: agent.name,
    executionArn: event.executionArn,
    trigger: trigger.info,
  });
  if (session.executionArn !== event.executionArn) return { ...base, outcome: 'duplicate' };

  const meta = { source: trigger.info.source, detailType: trigger.info.detailType, time: trigger.info.time };
  await store.putCheckpoint({
    sessionId: trigger.sessionId,
    sk: checkpointKey.input(),
    kind: 'input',
    step: 0,
    input: input.data,
    prompt: agent.prompt(input.data, meta),
    trigger: trigger.info,
  });
  return { ...base, outcome: 'ready' };
}
