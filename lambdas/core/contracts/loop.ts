/**
 * What passes between the states of an agent's state machine. The payload is a
 * pointer (decision 2 of the design): ids, counters and routing fields only.
 * Messages and tool results live in the checkpoint table and are loaded by the
 * step that needs them, so the payload does not grow with the number of turns.
 */
import { z } from 'zod';
import { SESSION_ID_PATTERN } from '../constants';

/** A session id: also the execution name of API-started runs. Example: `ses_k3x9...` */
export const SessionIdSchema = z.string().regex(SESSION_ID_PATTERN, 'must be 1-80 characters of [0-9A-Za-z_-]');

/** A failure carried as a value to the RecordFailure step. Example: `{"error":"InvalidInput","cause":"detail.severity: Expected number"}` */
export const FailureSchema = z.object({
  error: z.string(),
  cause: z.string(),
});

/**
 * A tool call the Map state runs: the call id, the tool, the ARN of the Lambda
 * function that runs it (invoked by `FunctionName.$`), and whether a human must
 * approve it first.
 * Example: `{"callId":"toolu_06","tool":"block_address","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:block","needsApproval":true}`
 */
export const ToolCallRefSchema = z.object({
  callId: z.string(),
  tool: z.string(),
  functionArn: z.string(),
  needsApproval: z.boolean(),
});

/**
 * What a tool call's iteration reports back (the RunTools Map collects them into
 * `toolRuns`): its status and the history events it wrote (`core/history.ts`).
 * Example: `{"callId":"toolu_06","status":"succeeded","events":11}`
 */
export const ToolRunSchema = z.object({
  callId: z.string(),
  status: z.string(),
  events: z.number().int().nonnegative(),
});

/**
 * A human's answer to a wait of the loop itself (not a tool's approval): a budget
 * pause (`raised`, `stopped`; `timed_out` from the wait's Catch) or an output review
 * (`approved`, `rejected`, `timed_out`). Set at `$.decision` by the wait's
 * ResultPath; the next model turn consumes it.
 * Example: `{"decision":"raised","decidedBy":"alice"}`
 */
export const WaitDecisionSchema = z.object({
  decision: z.enum(['raised', 'stopped', 'approved', 'rejected', 'timed_out']),
  reason: z.string().optional(),
  approvalId: z.string().optional(),
  decidedBy: z.string().optional(),
});

/** Fields every loop payload carries besides the session pointer. */
const progress = {
  /** The answer to the loop's last wait (budget pause, output review); null otherwise. */
  decision: WaitDecisionSchema.nullable(),
  /** History events written so far by this execution (an upper-bound estimate, `core/history.ts`). */
  events: z.number().int().nonnegative(),
  /** Which execution of the session this is (1 for the first). */
  execution: z.number().int().positive(),
  /** The session's branch (rollbacks so far): part of the idempotency keys. */
  branch: z.number().int().nonnegative(),
  /** The RunTools Map's iterations, when the Map ran since the last model turn; null otherwise. */
  toolRuns: z.array(ToolRunSchema).nullable(),
};

/**
 * The result of the Prepare step.
 * - `ready`: the session exists (or this continuation took it over); go to the model turn after `step`.
 * - `duplicate`: this trigger already started another execution (EventBridge delivers at least once).
 * - `superseded`: a continuation whose session moved on (cancelled, or taken over by another execution).
 * - `failed`: the trigger input is invalid; `failure` names the fields.
 * Example: `{"sessionId":"ses_a1","step":0,"repairs":0,"outcome":"ready","events":8,"execution":1,"toolRuns":[]}`
 */
export const PrepareResultSchema = z.object({
  sessionId: SessionIdSchema,
  step: z.number().int().nonnegative(),
  repairs: z.number().int().nonnegative(),
  outcome: z.enum(['ready', 'duplicate', 'superseded', 'failed']),
  failure: FailureSchema.optional(),
  ...progress,
});

/**
 * Input of a model turn: which session, and the counters so far (`repairs` is
 * informational; the turn recounts it from the checkpoints).
 * Example: `{"sessionId":"ses_a1","step":2,"repairs":0,"executionArn":"arn:aws:states:…","retryCount":0,"events":48,"execution":1,"toolRuns":[…]}`
 */
export const ModelTurnInputSchema = z.object({
  ...progress,
  /** Null when absent: an execution started before the field existed. */
  decision: WaitDecisionSchema.nullable().default(null),
  sessionId: SessionIdSchema,
  /** Model turns taken so far. */
  step: z.number().int().nonnegative(),
  /** Invalid final answers sent back for repair so far. */
  repairs: z.number().int().nonnegative(),
  executionArn: z.string(),
  /** This attempt's `$$.State.RetryCount`. */
  retryCount: z.number().int().nonnegative(),
});

/**
 * The StartExecution of the session's next execution (the ContinueAsNew state).
 * Example: `{"name":"ses_a1-x2","input":{"continuation":{"sessionId":"ses_a1","parentExecutionArn":"arn:…:ses_a1","reason":"continue-as-new","execution":2}}}`
 */
export const ContinuationSchema = z.object({
  name: z.string(),
  input: z.object({
    continuation: z.object({
      sessionId: SessionIdSchema,
      parentExecutionArn: z.string(),
      reason: z.enum(['continue-as-new', 'resume', 'rollback']),
      execution: z.number().int().positive(),
    }),
  }),
});

/**
 * A budget that stopped the run, as the pause carries it: which budget, how much is
 * used and its limit, in the budget's units (tokens, USD, steps, seconds, depth).
 * Example: `{"budget":"costUsd","used":0.0502,"limit":0.05}`
 */
export const PauseSchema = z.object({
  budget: z.enum(['inputTokens', 'outputTokens', 'costUsd', 'steps', 'wallClockSeconds', 'subAgentDepth']),
  used: z.number().nonnegative(),
  limit: z.number().nonnegative(),
});

/**
 * The result of a model turn, routed by the `Route` Choice state.
 * - `tool_calls`: run `calls` (Map), then the next model turn.
 * - `repair`: the final answer failed validation; the errors were recorded and go back to the model.
 * - `final`: the answer is valid and recorded; the run succeeds.
 * - `continue`: the execution's history is near its limit: no model call; the
 *   session continues in a new execution (`continuation`) from this `step`.
 * - `paused`: a budget is used up (`pause`); checked before each spend. The run waits
 *   (PauseForBudget) for a raise, which returns to the model turn at this `step`, or a stop.
 * - `review`: the answer goes to a human (confidence below the gate, or rules failing,
 *   as declared); their decision returns to the model turn at this `step`.
 * - `failed`: the run cannot go on (invalid answer past its repairs, context limit); `failure` says why.
 * Example: `{"sessionId":"ses_a1","step":3,"repairs":0,"outcome":"tool_calls","calls":[{"callId":"toolu_06","tool":"block_address","functionArn":"arn:…","needsApproval":true}],"events":68,"execution":1,"toolRuns":[]}`
 */
export const ModelTurnResultSchema = z.object({
  sessionId: SessionIdSchema,
  step: z.number().int().nonnegative(),
  repairs: z.number().int().nonnegative(),
  outcome: z.enum(['tool_calls', 'repair', 'final', 'continue', 'failed', 'paused', 'review']),
  calls: z.array(ToolCallRefSchema),
  failure: FailureSchema.optional(),
  continuation: ContinuationSchema.optional(),
  pause: PauseSchema.optional(),
  ...progress,
});

/**
 * A human decision, as the approval task returns it (SendTaskSuccess output), or
 * `not_required` for tools that need none, or `timed_out` from the wait's Catch.
 * Example: `{"decision":"rejected","reason":"address belongs to our VPN","approvalId":"apv_…","decidedBy":"alice"}`
 */
export const ApprovalOutcomeSchema = z.object({
  decision: z.enum(['not_required', 'approved', 'rejected', 'timed_out']),
  reason: z.string().optional(),
  approvalId: z.string().optional(),
  decidedBy: z.string().optional(),
});

/** Input of a tool task (one Map item). Example: `{"sessionId":"ses_a1","step":3,"call":{…},"approval":{"decision":"approved"},"executionArn":"arn:…"}` */
export const ToolTaskInputSchema = z.object({
  sessionId: SessionIdSchema,
  step: z.number().int().positive(),
  call: ToolCallRefSchema,
  approval: ApprovalOutcomeSchema,
  executionArn: z.string(),
  /** This attempt's `$$.State.RetryCount`. @default 0 */
  retryCount: z.number().int().nonnegative().default(0),
  /** The session's branch (rollbacks so far). @default 0 */
  branch: z.number().int().nonnegative().default(0),
});

const waitFields = {
  agent: z.string(),
  sessionId: SessionIdSchema,
  taskToken: z.string().min(1),
  timeoutSeconds: z.number().int().positive(),
  /** When the wait began (`$$.State.EnteredTime`), ISO 8601: its timeout counts from here. */
  requestedAt: z.string(),
  executionArn: z.string(),
};

/**
 * Input of the approval request task (`.waitForTaskToken`), one of:
 * - a tool call that needs approval (`kind` absent or `tool_call`; `step` is the model turn);
 * - `output_review`: the final answer of model turn `step + 1` goes to a human;
 * - `budget_pause`: a budget is used up after `step` model turns (`pause`).
 * Example: `{"agent":"ssh-investigator","sessionId":"ses_a1","step":3,"call":{…},"taskToken":"…","timeoutSeconds":86400,"requestedAt":"2026-11-21T09:00:00.000Z","executionArn":"arn:…"}`
 */
export const ApprovalRequestInputSchema = z.preprocess(
  // An execution started before `kind` existed requests tool approvals without it.
  (raw) => (raw && typeof raw === 'object' && !('kind' in raw) ? { ...raw, kind: 'tool_call' } : raw),
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('tool_call'), step: z.number().int().positive(), call: ToolCallRefSchema, ...waitFields }),
    z.object({
    kind: z.literal('output_review'),
    step: z.number().int().nonnegative(),
    /** The session's branch: part of the review's approval id. @default 0 */
    branch: z.number().int().nonnegative().default(0),
    ...waitFields,
  }),
    z.object({ kind: z.literal('budget_pause'), step: z.number().int().nonnegative(), pause: PauseSchema, ...waitFields }),
  ]),
);

/**
 * Input of the RecordFailure task: the state that failed, and the error.
 * Example: `{"agent":"ssh-investigator","executionArn":"arn:…","executionName":"ses_a1","failedState":"RunTools","state":{"sessionId":"ses_a1","step":1},"caught":{"Error":"States.TaskFailed","Cause":"…"}}`
 */
export const RecordFailureInputSchema = z.object({
  agent: z.string(),
  executionArn: z.string(),
  executionName: z.string(),
  failedState: z.string(),
  /** The payload at the failed state: a loop pointer, or the raw trigger when Prepare failed. */
  state: z.record(z.string(), z.unknown()),
  /** Step Functions' Catch output (`Error`, `Cause`), when a task threw. */
  caught: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
});

export type Failure = z.infer<typeof FailureSchema>;
export type ToolRun = z.infer<typeof ToolRunSchema>;
export type Continuation = z.infer<typeof ContinuationSchema>;
export type ToolCallRef = z.infer<typeof ToolCallRefSchema>;
export type PrepareResult = z.infer<typeof PrepareResultSchema>;
export type ModelTurnInput = z.infer<typeof ModelTurnInputSchema>;
export type ModelTurnResult = z.infer<typeof ModelTurnResultSchema>;
export type ApprovalOutcome = z.infer<typeof ApprovalOutcomeSchema>;
export type ToolTaskInput = z.infer<typeof ToolTaskInputSchema>;
export type ApprovalRequestInput = z.infer<typeof ApprovalRequestInputSchema>;
/** A human's answer to a loop wait ({@link WaitDecisionSchema}). */
export type WaitDecision = z.infer<typeof WaitDecisionSchema>;
/** A budget that stopped the run ({@link PauseSchema}). */
export type Pause = z.infer<typeof PauseSchema>;
export type RecordFailureInput = z.infer<typeof RecordFailureInputSchema>;
