/**
 * A tool call: runs one tool for one call id, once. The call is authorised again
 * (Cedar `callTool` with the session's principal and the arguments), so a
 * permission revoked since the model turn applies: a denied call is answered
 * exactly like a call of a tool that does not exist. The arguments come from the
 * model checkpoint (not the payload); they are validated against the tool's
 * input schema before it runs; a rejected or timed-out approval is recorded as
 * the result without running it; the result is validated against the output
 * schema, stored in S3 when large, and checkpointed with the tool's declared cost
 * per call. An HTTP tool (manifest) is called by the runtime. A retried call whose
 * checkpoint exists returns it.
 *
 * Side effects happen at most once per call id:
 * - the call runs inside Powertools idempotency keyed on the call's idempotency
 *   key, so a retry or resume after it completed gets its recorded outcome;
 * - a non-idempotent tool first records its intent (`CP#<step>#intent#<call>`);
 *   finding an intent without a result means an earlier attempt died after it
 *   may have acted, so the call is answered `OUTCOME_UNKNOWN` and not run again.
 */
import { withResponse } from '../../adapters/body-store';
import { TOOL_STATUSES_THAT_RAN } from '../../core/budget';
import { MAX_TOOL_RESULT_BYTES } from '../../core/constants';
import { checkpointKey, type BodyRef, type ToolCheckpoint } from '../../core/contracts/checkpoint';
import type { ToolTaskInput } from '../../core/contracts/loop';
import type { ToolDefinition } from '../../core/define';
import { ConfigurationError, SessionFencedError, ToolError, ToolOutputInvalidError } from '../../core/errors';
import { toolIterationEvents } from '../../core/history';
import { toolCallIdempotencyKey } from '../../core/ids';
import { toolUseOf, unknownToolResult } from '../../core/loop';
import { DEFAULT_PRINCIPAL } from '../../core/policy';
import { argumentIssues, formatIssues } from '../../core/validation';
import { logger } from '../../observability/powertools';
import type { StepDeps } from './deps';

/**
 * What a tool task returns: one item of the RunTools Map's `toolRuns`, with the
 * history events its iteration wrote.
 */
export interface ToolTaskResult {
  sessionId: string;
  step: number;
  callId: string;
  status: ToolCheckpoint['status'];
  events: number;
}

/** What a call produced: its status and its result, inline or by reference. */
type Outcome = Pick<ToolCheckpoint, 'status' | 'isError'> & { result?: string; resultRef?: BodyRef };

/**
 * Runs the call once (a call already checkpointed returns its recorded status; Powertools
 * idempotency per call id), after the call-time policy check and input validation, and
 * checkpoints its outcome (a result above the inline limit in S3, by reference).
 * @param toolName the tool this function serves (its `AGENT_TOOL_NAME`)
 * @returns the call's status and the history events its iteration wrote
 * @throws ConfigurationError when the call names another tool, the agent declares no such
 *   tool, its model turn (or the tool call in it) is missing, a tool that needs approval
 *   arrives without a decision, or the tool has neither a `handler` nor an `http` endpoint;
 *   ToolOutputInvalidError when the tool's result fails its output schema;
 *   SessionFencedError when the execution no longer owns the session;
 *   whatever the tool throws other than ToolError (a fault: retried).
 */
export async function runTool(input: ToolTaskInput, toolName: string, deps: StepDeps): Promise<ToolTaskResult> {
  const { agent, store } = deps;
  const now = deps.now ?? Date.now;
  const { sessionId, step, call } = input;
  const done = (status: ToolCheckpoint['status']): ToolTaskResult => ({
    sessionId,
    step,
    callId: call.callId,
    status,
    events: toolIterationEvents({ approval: input.approval.decision, retries: input.retryCount }),
  });
  const sk = checkpointKey.tool(step, call.callId);
  const existing = await store.getCheckpoint(sessionId, sk);
  if (existing?.kind === 'tool') return done(existing.status);
  await deps.fault('RunTool', sessionId);

  if (call.tool !== toolName) throw new ConfigurationError(`function for tool ${toolName} was invoked for ${call.tool}`);
  const tool = agent.tools.find((t) => t.name === toolName);
  if (!tool) throw new ConfigurationError(`agent ${agent.name} declares no tool ${toolName}`);
  const turn = await store.getCheckpoint(sessionId, checkpointKey.model(step));
  const use = toolUseOf(turn?.kind === 'model' ? await withResponse(turn, deps.bodies) : turn, call.callId);
  if (!use) throw new ConfigurationError(`step ${step} has no tool call ${call.callId}`);

  const idempotencyKey = toolCallIdempotencyKey(sessionId, step, call.callId, input.branch);
  const started = now();
  const outcome = await deps.once(idempotencyKey, () => execute(tool, use.input, input, idempotencyKey, sk, deps));
  const ran = TOOL_STATUSES_THAT_RAN.includes(outcome.status);
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
    idempotencyKey,
    ...outcome,
    costUsd: ran ? (tool.budget?.costPerCallUsd ?? 0) : 0,
    durationMs: now() - started,
  };
  const { record: stored } = await store.putCheckpoint(record, input.executionArn);
  return done(stored.kind === 'tool' ? stored.status : outcome.status);
}

async function execute(tool: ToolDefinition, args: unknown, input: ToolTaskInput, idempotencyKey: string, sk: string, deps: StepDeps): Promise<Outcome> {
  const { approval, sessionId, step, call } = input;
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
  // Authorised again at call time: a permission revoked since the model turn (during an approval wait) applies now.
  const session = await deps.store.getSession(sessionId);
  const policies = await deps.policies();
  const principal = session?.principal ?? DEFAULT_PRINCIPAL;
  const deny = async (): Promise<Outcome> => {
    // An earlier attempt that recorded its intent may have acted before the permission went: a denial cannot undo that.
    if (!tool.idempotent && (await deps.store.getCheckpoint(sessionId, checkpointKey.intent(step, call.callId)))) return outcomeUnknown(tool);
    return { status: 'denied', isError: true, result: unknownToolResult(call.callId, tool.name).content };
  };
  const authorized = (value: unknown): boolean => {
    const decision = policies.decide({ principal, action: 'callTool', tool, arguments: value, step });
    if (!decision.allowed) logger.warn('tool call denied by policy', { tool: tool.name, policies: decision.policies, errors: decision.errors, policyVersion: policies.version });
    return decision.allowed;
  };
  // The arguments as the model gave them first: a forbidden tool must not reveal its schema.
  if (!authorized(args)) return deny();
  const parsed = tool.input.safeParse(args, { reportInput: true });
  if (!parsed.success) {
    const issues = argumentIssues(parsed.error);
    logger.warn('tool call rejected: invalid arguments', { tool: tool.name, fields: issues.map((i) => i.field) });
    return {
      status: 'invalid_input',
      isError: true,
      result: JSON.stringify({ error: 'INVALID_ARGUMENTS', message: `The arguments do not match ${tool.name}'s input schema; it was not run. Fix them and call it again.`, issues }),
    };
  }
  // Then the arguments the tool will get, when parsing changed them (defaults, transforms).
  if (JSON.stringify(parsed.data) !== JSON.stringify(args) && !authorized(parsed.data)) return deny();
  if (tool.idempotent) {
    // No intent record fences it: check that the session is still this execution's before acting.
    if (session?.executionArn !== input.executionArn || session.status !== 'RUNNING') {
      throw new SessionFencedError(`execution ${input.executionArn} no longer owns session ${sessionId} (or it is not RUNNING); ${tool.name} was not run`);
    }
  } else {
    const intent = await deps.store.putCheckpoint(
      { sessionId, sk: checkpointKey.intent(step, call.callId), kind: 'intent', step, callId: call.callId, tool: tool.name, idempotencyKey, executionArn: input.executionArn },
      input.executionArn,
    );
    if (!intent.created) return outcomeUnknown(tool);
  }
  let value: unknown;
  try {
    if (tool.http) {
      value = await deps.callHttp(tool.http, parsed.data, { idempotencyKey, timeoutMs: tool.http.timeoutMs ?? tool.timeoutSeconds * 1000, toolName: tool.name });
    } else if (tool.handler) {
      value = await tool.handler(parsed.data, {
        sessionId,
        callId: call.callId,
        step,
        idempotencyKey,
        approval: approval.decision === 'approved' ? { approvalId: approval.approvalId, decidedBy: approval.decidedBy, reason: approval.reason } : undefined,
      });
    } else {
      throw new ConfigurationError(`tool ${tool.name} has neither a handler nor an HTTP endpoint`);
    }
  } catch (err) {
    if (err instanceof ToolError) {
      return { status: 'tool_error', isError: true, result: JSON.stringify({ error: 'TOOL_ERROR', message: err.message }) };
    }
    throw err;
  }
  await deps.fault('RunTool.afterSideEffect', sessionId);
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
  if (deps.bodies.exceedsInline(result)) return { status: 'succeeded', isError: false, resultRef: await deps.bodies.put(sessionId, sk, result) };
  return { status: 'succeeded', isError: false, result };
}

/** The outcome of a call an earlier attempt started (its intent is recorded) and never reported: it may have acted. */
function outcomeUnknown(tool: ToolDefinition): Outcome {
  return {
    status: 'outcome_unknown',
    isError: true,
    result: JSON.stringify({
      error: 'OUTCOME_UNKNOWN',
      message: `An earlier attempt of this ${tool.name} call started and did not report back; it may or may not have taken effect. It was not run again: check its effect before calling it again.`,
    }),
  };
}
