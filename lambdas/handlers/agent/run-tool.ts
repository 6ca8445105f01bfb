/**
 * A tool call: runs one tool for one call id, once. The arguments come from the
 * model checkpoint (not the payload); they are validated against the tool's
 * input schema before it runs; a rejected or timed-out approval is recorded as
 * the result without running it; the result is validated against the output
 * schema and checkpointed. A retried call whose checkpoint exists returns it.
 */
import { MAX_TOOL_RESULT_BYTES } from '../../core/constants';
import { checkpointKey, type ToolCheckpoint } from '../../core/contracts/checkpoint';
import type { ToolTaskInput } from '../../core/contracts/loop';
import type { ToolDefinition } from '../../core/define';
import { ConfigurationError, ToolError, ToolOutputInvalidError } from '../../core/errors';
import { toolCallIdempotencyKey } from '../../core/ids';
import { toolUseOf } from '../../core/loop';
import { formatIssues } from '../../core/validation';
import type { StepDeps } from './deps';

/** What a tool task returns (the Map discards it; it shows in the execution history). */
export interface ToolTaskResult {
  sessionId: string;
  step: number;
  callId: string;
  status: ToolCheckpoint['status'];
}

/**
 * Runs the call.
 * @param toolName the tool this function serves (its `AGENT_TOOL_NAME`)
 * @throws ConfigurationError when the call names another tool or its model turn is missing;
 *   ToolOutputInvalidError when the tool's result fails its output schema;
 *   whatever the tool throws other than ToolError (a fault: retried).
 */
export async function runTool(input: ToolTaskInput, toolName: string, deps: StepDeps): Promise<ToolTaskResult> {
  const { agent, store } = deps;
  const now = deps.now ?? Date.now;
  const { sessionId, step, call } = input;
  const done = { sessionId, step, callId: call.callId };
  const sk = checkpointKey.tool(step, call.callId);
  const existing = await store.getCheckpoint(sessionId, sk);
  if (existing?.kind === 'tool') return { ...done, status: existing.status };

  if (call.tool !== toolName) throw new ConfigurationError(`function for tool ${toolName} was invoked for ${call.tool}`);
  const tool = agent.tools.find((t) => t.name === toolName);
  if (!tool) throw new ConfigurationError(`agent ${agent.name} declares no tool ${toolName}`);
  const turn = await store.getCheckpoint(sessionId, checkpointKey.model(step));
  const use = toolUseOf(turn, call.callId);
  if (!use) throw new ConfigurationError(`step ${step} has no tool call ${call.callId}`);

  const started = now();
  const outcome = await execute(tool, use.input, input);
  const record = {
    sessionId,
    sk,
    kind: 'tool' as const,
    step,
    callId: call.callId,
    tool: tool.name,
    toolVersion: tool.version,
    input: use.input,
    approval: input.approval,
    ...outcome,
    durationMs: now() - started,
  };
  const { record: stored } = await store.putCheckpoint(record);
  return { ...done, status: stored.kind === 'tool' ? stored.status : outcome.status };
}

async function execute(
  tool: ToolDefinition,
  args: unknown,
  input: ToolTaskInput,
): Promise<Pick<ToolCheckpoint, 'status' | 'result' | 'isError'>> {
  const { approval } = input;
  // Defence in depth: a tool that needs approval never runs without one, whatever the payload says.
  if (tool.needsApproval && approval.decision !== 'approved' && approval.decision !== 'rejected' && approval.decision !== 'timed_out') {
    throw new ConfigurationError(`${tool.name} needs approval but the call arrived with decision "${approval.decision}"`);
  }
  if (approval.decision === 'rejected' || approval.decision === 'timed_out') {
    const reason = approval.decision === 'timed_out' ? 'timed out' : (approval.reason ?? 'no reason given');
    return {
      status: 'rejected',
      isError: true,
      result: JSON.stringify({ status: 'rejected', reason, message: `A human did not approve this call (${reason}); it was not run.` }),
    };
  }
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) {
    return {
      status: 'invalid_input',
      isError: true,
      result: JSON.stringify({ error: 'INVALID_ARGUMENTS', message: `The arguments do not match ${tool.name}'s input schema.`, issues: formatIssues(parsed.error) }),
    };
  }
  let value: unknown;
  try {
    value = await tool.handler(parsed.data, {
      sessionId: input.sessionId,
      callId: input.call.callId,
      step: input.step,
      idempotencyKey: toolCallIdempotencyKey(input.sessionId, input.step, input.call.callId),
      approval: approval.decision === 'approved' ? { approvalId: approval.approvalId, decidedBy: approval.decidedBy, reason: approval.reason } : undefined,
    });
  } catch (err) {
    if (err instanceof ToolError) {
      return { status: 'tool_error', isError: true, result: JSON.stringify({ error: 'TOOL_ERROR', message: err.message }) };
    }
    throw err;
  }
  const output = tool.output.safeParse(value);
  if (!output.success) {
    throw new ToolOutputInvalidError(`${tool.name} returned a result its output schema rejects: ${formatIssues(output.error).join('; ')}`);
  }
  const result = JSON.stringify(output.data) ?? 'null';
  const bytes = Buffer.byteLength(result);
  if (bytes > MAX_TOOL_RESULT_BYTES) {
    // Recorded, not thrown: a retry would run the tool again and get the same result.
    return {
      status: 'tool_error',
      isError: true,
      result: JSON.stringify({ error: 'RESULT_TOO_LARGE', message: `${tool.name} returned ${bytes} bytes; results are limited to ${MAX_TOOL_RESULT_BYTES}. Ask for less.` }),
    };
  }
  return { status: 'succeeded', isError: false, result };
}
