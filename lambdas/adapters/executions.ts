/** Starting and describing Step Functions executions. */
import { DescribeExecutionCommand, ExecutionAlreadyExists, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { executionArnOf } from '../core/history';
import { sfnClient } from './clients';

/** The outcome of {@link startNamedExecution}. */
export type StartedExecution =
  | { started: true; executionArn: string }
  | { started: false; executionArn: string; reason: 'same-input' | 'other-input' };

/**
 * Starts an execution whose name is an idempotency key.
 *
 * A second start with the same name is not a second run: Step Functions answers it
 * with the first execution while it runs with the same input (so its start date is
 * older than this request), and with ExecutionAlreadyExists otherwise; the first
 * execution's input then tells a repeat from a conflicting reuse.
 * @param requestedAt when this request arrived (ms since the epoch); a start date
 *   more than a second before it means the execution already existed
 * @throws the SDK's errors other than ExecutionAlreadyExists
 */
export async function startNamedExecution(stateMachineArn: string, name: string, input: string, requestedAt: number): Promise<StartedExecution> {
  try {
    const out = await sfnClient().send(new StartExecutionCommand({ stateMachineArn, name, input }));
    const executionArn = out.executionArn ?? '';
    const startedBefore = out.startDate !== undefined && out.startDate.getTime() < requestedAt - 1000;
    return startedBefore ? { started: false, executionArn, reason: 'same-input' } : { started: true, executionArn };
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists)) throw err;
    const executionArn = executionArnOf(stateMachineArn, name);
    const existing = await sfnClient().send(new DescribeExecutionCommand({ executionArn }));
    const same = existing.input !== undefined && JSON.stringify(JSON.parse(existing.input)) === input;
    return { started: false, executionArn, reason: same ? 'same-input' : 'other-input' };
  }
}
