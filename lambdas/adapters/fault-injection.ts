/**
 * Fault injection, for chaos tests of the runtime's durability. Enabled only when
 * the runtime is deployed with `faultInjection: true` (the fault table's name is
 * then in the environment); otherwise {@link injectFault} returns at once and
 * touches nothing.
 *
 * A fault is a row `{sessionId, point, mode, remaining}` of the fault table. When
 * a step of that session reaches `point` while `remaining > 0`, the row is
 * decremented (conditionally, so each fault fires once per count) and the step
 * fails by `mode`:
 * - `throw`: throws `InjectedFault` (an ordinary fault, retried);
 * - `timeout`: sleeps past the function's timeout (Lambda ends it);
 * - `kill`: kills its own process with SIGKILL (the runtime sees a crash).
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { ENV } from '../core/env-names';
import { logger } from '../observability/powertools';
import { documentClient } from './clients';

/** Where a fault can fire: the start of a step, or a tool's moment between its side effect and its return. */
export type FaultPoint = 'Prepare' | 'ModelTurn' | 'RunTool' | 'RunTool.afterSideEffect' | 'RequestApproval';

/** How an injected fault fails the step. */
export type FaultMode = 'throw' | 'timeout' | 'kill';

/** The error an injected `throw` fault raises. */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
}

/**
 * Fires the fault planned for `sessionId` at `point`, if any.
 * @throws InjectedFault for a `throw` fault; never returns for `timeout` and `kill` faults.
 */
export async function injectFault(point: FaultPoint, sessionId: string, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<void> {
  const table = process.env[ENV.faultTable];
  if (!table) return;
  let mode: FaultMode;
  try {
    const out = await documentClient().send(
      new UpdateCommand({
        TableName: table,
        Key: { sessionId, point },
        UpdateExpression: 'SET remaining = remaining - :one, fired = if_not_exists(fired, :zero) + :one',
        ConditionExpression: 'remaining > :zero',
        ExpressionAttributeValues: { ':one': 1, ':zero': 0 },
        ReturnValues: 'ALL_NEW',
      }),
    );
    mode = out.Attributes?.mode as FaultMode;
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException) return;
    throw err;
  }
  logger.warn('injecting fault', { point, mode, sessionId });
  if (mode === 'timeout') {
    await new Promise((resolve) => setTimeout(resolve, (context?.getRemainingTimeInMillis() ?? 900_000) + 5_000));
  } else if (mode === 'kill') {
    process.kill(process.pid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 60_000));
  }
  throw new InjectedFault(`injected ${mode} fault at ${point}`);
}
