/**
 * The HTTP API's request and response bodies (API Gateway REST, Lambda proxy).
 *
 * | method and path                       | body                          | answer |
 * |---------------------------------------|-------------------------------|--------|
 * | POST /agents/{agent}/runs             | {@link StartRunRequestSchema}  | 202 {@link StartRunResponse} |
 * | GET  /runs/{sessionId}                | -                             | 200 {@link RunStatus} |
 * | GET  /runs/{sessionId}/events         | -                             | 200 `{events: EventLogRecord[]}` |
 * | POST /approvals/{approvalId}          | {@link DecideApprovalRequestSchema} | 200 `{approvalId, status}` |
 * | POST /runs/{sessionId}/resume         | {@link ResumeRunRequestSchema} (optional) | 202 {@link ResumeRunResponse} (`created: true`); 200 with `created: false` for a repeated request |
 * | POST /runs/{sessionId}/cancel         | {@link CancelRunRequestSchema} | 200 {@link CancelRunResponse} |
 * | POST /runs/{sessionId}/rollback       | {@link RollbackRunRequestSchema} | 202 {@link RollbackRunResponse} |
 * | POST /runs/{sessionId}/budget         | {@link RaiseBudgetRequestSchema} | 200 {@link RaiseBudgetResponse} |
 * | POST /runs/{sessionId}/stop           | {@link StopRunRequestSchema}   | 200 {@link StopRunResponse} |
 *
 * Errors are `{error, message, issues?}` ({@link ProblemSchema}): 400 `InvalidRequest`
 * naming the fields (bad JSON, a field missing or out of range); 404 `UnknownSession`,
 * `UnknownApproval`, `UnknownAgent`; 409 with a name saying why (for the control
 * routes: `NotResumable`, `NotCancellable`, `NotRollbackable`, `NotRaisable`, `NotStoppable`, `Conflict`,
 * `ExecutionConflict`; 400 `InvalidRollback` names `toStep`).
 */
import { z } from 'zod';
import { BudgetRaiseSchema, BudgetsSchema } from '../budget';
import { PrincipalSchema } from '../policy';
import { CancellationSchema, SessionPauseSchema, SessionStatusSchema, StopSchema } from './checkpoint';
import { PauseSchema } from './loop';

/** Idempotency keys: 1-128 printable ASCII characters. */
export const IdempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters without spaces');

/**
 * Starts a run. The idempotency key may also come in the `Idempotency-Key` header;
 * the same key for the same agent returns the same session.
 * Example: `{"input":{"...":"..."},"idempotencyKey":"alert-42"}`
 */
export const StartRunRequestSchema = z.object({
  input: z.unknown().refine((v) => v !== undefined, 'is required'),
  idempotencyKey: IdempotencyKeySchema.optional(),
  /**
   * Who the run acts for (the principal of its policy decisions). The API is IAM-authorised:
   * a caller allowed to start runs is trusted to assert the end user it acts for.
   * @default `{user: <the caller's IAM identity>, tenant: "default", roles: []}`
   */
  principal: PrincipalSchema.optional(),
  /** Budgets of this run, overriding the agent's field by field. */
  budgets: BudgetsSchema.optional(),
  /**
   * How deep in a chain of sub-agents this run is (a supervisor starting a sub-agent passes its own depth + 1):
   * 0-100, the runtime's bound on the field (the agent's `subAgentDepth` budget is what limits a run). @default 0
   */
  depth: z.number().int().nonnegative().max(100).optional(),
});

/** Approves or rejects a pending approval. Example: `{"decision":"reject","reason":"address belongs to our VPN"}` */
export const DecideApprovalRequestSchema = z.object({
  decision: z.enum(['approve', 'reject']),
  reason: z.string().max(2000).optional(),
  decidedBy: z.string().max(200).optional(),
});

/** A pending approval as callers see it: never the task token. Example: `{"approvalId":"apv_…","tool":"block_address","input":{"address":"183.62.140.253"},"step":3,"requestedAt":"…","expiresAt":"…"}` */
export const PendingApprovalSchema = z.object({
  approvalId: z.string(),
  tool: z.string(),
  input: z.unknown(),
  step: z.number(),
  requestedAt: z.string(),
  expiresAt: z.string(),
});

/**
 * A run's status. `executionArn` is the session's current execution; a session
 * spans several (continue-as-new, resume, rollback). `pendingApprovals` is empty
 * unless the run is RUNNING.
 * Example: `{"sessionId":"ses_a1","agent":"ssh-investigator","status":"RUNNING","executionArn":"arn:…:ses_a1-x2","executions":2,"branch":0,"parentExecutionArn":"arn:…:ses_a1","step":3,"createdAt":"…","updatedAt":"…","pendingApprovals":[…]}`
 */
export const RunStatusSchema = z.object({
  sessionId: z.string(),
  agent: z.string(),
  status: SessionStatusSchema,
  /** The session's current execution. */
  executionArn: z.string(),
  /** Executions the session has had (1 + continuations, resumes and rollbacks). */
  executions: z.number().int().positive(),
  /** Rollbacks so far (0 for none). */
  branch: z.number().int().nonnegative(),
  /** The execution before the current one, when there was one. */
  parentExecutionArn: z.string().optional(),
  /** Why and when the run was cancelled (status CANCELLED). Example: `{"reason":"wrong host","by":"alice","at":"2026-11-21T10:00:00.000Z"}` */
  cancellation: CancellationSchema.optional(),
  /** Model turns completed. */
  step: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
  output: z.unknown().optional(),
  failure: z.object({ error: z.string(), cause: z.string(), failedState: z.string() }).optional(),
  pendingApprovals: z.array(PendingApprovalSchema),
  /** The budgets in force. */
  budgets: BudgetsSchema.optional(),
  /** The budget the run is paused on (status PAUSED_BUDGET): the session head's {@link SessionPauseSchema}, `step` any number here. */
  pause: SessionPauseSchema.extend({ step: z.number() }).optional(),
  /** How the run was stopped (status STOPPED). */
  stop: StopSchema.optional(),
  /** Who the run acts for. */
  principal: PrincipalSchema.optional(),
});

/** An error answer. Example: `{"error":"NotResumable","message":"session ses_a1 is RUNNING; only FAILED sessions can be resumed"}` */
export const ProblemSchema = z.object({
  error: z.string(),
  message: z.string(),
  /** For 400s: one `field: message` line per field at fault. */
  issues: z.array(z.string()).optional(),
});

/** Free text saying why a run is controlled: 1-1000 characters (it becomes a Step Functions `cause`, at most 32,768). */
const ReasonSchema = z.string().min(1).max(1000);
/** Who asks (free text, for the audit trail); defaults to the caller's IAM identity. */
const RequestedBySchema = z.string().min(1).max(200);

/**
 * Resumes a FAILED run from its last good checkpoint, in a new execution. The body
 * is optional; `reason` and `requestedBy` are logged.
 * Example: `{"reason":"model provider outage is over","requestedBy":"alice"}`
 */
export const ResumeRunRequestSchema = z.object({
  reason: ReasonSchema.optional(),
  requestedBy: RequestedBySchema.optional(),
});

/**
 * Answer of POST /runs/{sessionId}/resume: the execution that continues the session
 * (it takes the session over in its Prepare step).
 * Example: `{"sessionId":"ses_a1","executionArn":"arn:aws:states:…:execution:ssh-investigator:ses_a1-x2","execution":2,"created":true}`
 */
export const ResumeRunResponseSchema = z.object({
  sessionId: z.string(),
  executionArn: z.string(),
  /** The execution's number in the session (2 for the first continuation). */
  execution: z.number().int().positive(),
  /** False when a repeated request found the execution already started (answered 200, not 202). */
  created: z.boolean(),
  /**
   * How the run resumed: `redrive` (Step Functions RedriveExecution of the failed
   * execution, same ARN: for executions that ended outside the loop's Catch graph,
   * where the service offers it) or `continuation` (a new execution from the last
   * good checkpoint, everywhere).
   */
  method: z.enum(['redrive', 'continuation']),
});

/**
 * Cancels a RUNNING run: the session becomes CANCELLED (final), its executions are
 * stopped (error `Cancelled`, cause `reason`) and its pending approvals expire.
 * Example: `{"reason":"wrong host","requestedBy":"alice"}`
 */
export const CancelRunRequestSchema = z.object({
  reason: ReasonSchema,
  requestedBy: RequestedBySchema.optional(),
});

/**
 * Answer of POST /runs/{sessionId}/cancel.
 * Example: `{"sessionId":"ses_a1","status":"CANCELLED","stoppedExecutions":["arn:aws:states:…:execution:ssh-investigator:ses_a1"],"expiredApprovals":["apv_…"]}`
 */
export const CancelRunResponseSchema = z.object({
  sessionId: z.string(),
  status: z.literal('CANCELLED'),
  /** Executions this request stopped (those still running). */
  stoppedExecutions: z.array(z.string()),
  /** Approvals this request expired (pending ones). */
  expiredApprovals: z.array(z.string()),
});

/**
 * Rolls a run back to the end of model turn `toStep` (0: before the first turn):
 * later checkpoints are abandoned (kept under `ABANDONED#<branch>#`), a RUNNING run
 * is stopped (error `RolledBack`), and a new execution continues from `toStep`.
 * Example: `{"toStep":2,"reason":"the model picked the wrong host","requestedBy":"alice"}`
 */
export const RollbackRunRequestSchema = z.object({
  /** Model turns to keep; at most the session's last model turn. */
  toStep: z.number().int().nonnegative(),
  reason: ReasonSchema,
  requestedBy: RequestedBySchema.optional(),
});

/**
 * Answer of POST /runs/{sessionId}/rollback.
 * Example: `{"sessionId":"ses_a1","executionArn":"arn:…:execution:ssh-investigator:ses_a1-x2","execution":2,"branch":1,"abandoned":5}`
 */
export const RollbackRunResponseSchema = z.object({
  sessionId: z.string(),
  /** The execution that continues the session from `toStep`. */
  executionArn: z.string(),
  execution: z.number().int().positive(),
  /** The session's branch after the rollback (rollbacks so far). */
  branch: z.number().int().positive(),
  /** How many checkpoints were abandoned. */
  abandoned: z.number().int().nonnegative(),
});

/**
 * Raises (sets) a run's budgets: each field is the new limit. A run paused on a budget
 * resumes where it stopped (the next model turn checks the budgets again).
 * Example: `{"budgets":{"costUsd":5},"reason":"the investigation needs more","requestedBy":"alice"}`
 */
export const RaiseBudgetRequestSchema = z.object({
  budgets: BudgetRaiseSchema,
  reason: ReasonSchema.optional(),
  requestedBy: RequestedBySchema.optional(),
});

/**
 * Answer of POST /runs/{sessionId}/budget.
 * Example: `{"sessionId":"ses_a1","status":"RUNNING","budgets":{"costUsd":5},"resumed":true}`
 */
export const RaiseBudgetResponseSchema = z.object({
  sessionId: z.string(),
  status: z.enum(['RUNNING', 'PAUSED_BUDGET']),
  budgets: BudgetsSchema,
  /** True when the run was paused and this raise resumed it. */
  resumed: z.boolean(),
});

/**
 * Stops a run paused on a budget: it ends STOPPED, its checkpoints (partial results) kept.
 * Example: `{"reason":"not worth more","requestedBy":"alice"}`
 */
export const StopRunRequestSchema = z.object({
  reason: ReasonSchema,
  requestedBy: RequestedBySchema.optional(),
});

/**
 * Answer of POST /runs/{sessionId}/stop: the partial results are the completed
 * tool calls and the spend at the pause.
 * Example: `{"sessionId":"ses_a1","status":"STOPPED","step":3,"pause":{"budget":"costUsd","used":0.05,"limit":0.05},"completedToolCalls":4}`
 */
export const StopRunResponseSchema = z.object({
  sessionId: z.string(),
  status: z.literal('STOPPED'),
  step: z.number().int().nonnegative(),
  pause: PauseSchema,
  completedToolCalls: z.number().int().nonnegative(),
});

/** Body of POST /runs/{sessionId}/budget ({@link RaiseBudgetRequestSchema}). */
export type RaiseBudgetRequest = z.infer<typeof RaiseBudgetRequestSchema>;
/** Answer of POST /runs/{sessionId}/budget ({@link RaiseBudgetResponseSchema}). */
export type RaiseBudgetResponse = z.infer<typeof RaiseBudgetResponseSchema>;
/** Body of POST /runs/{sessionId}/stop ({@link StopRunRequestSchema}). */
export type StopRunRequest = z.infer<typeof StopRunRequestSchema>;
/** Answer of POST /runs/{sessionId}/stop ({@link StopRunResponseSchema}). */
export type StopRunResponse = z.infer<typeof StopRunResponseSchema>;
export type StartRunRequest = z.infer<typeof StartRunRequestSchema>;
export type Problem = z.infer<typeof ProblemSchema>;
export type ResumeRunRequest = z.infer<typeof ResumeRunRequestSchema>;
/**
 * Query of GET /runs/{sessionId}/events: rows after `after` (a `seq`, exclusive),
 * at most `limit` (1-1000, default 1000). The answer is
 * `{sessionId, events, nextAfter?}`; pass `nextAfter` back as `after` for the next page.
 * Example: `?after=0000000000000000000000000000000000012345&limit=100`
 */
export const EventsPageSchema = z.object({
  after: z.string().regex(/^\d{40}$/, 'must be a 40-digit seq of the event log').optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export type EventsPage = z.infer<typeof EventsPageSchema>;
export type ResumeRunResponse = z.infer<typeof ResumeRunResponseSchema>;
export type CancelRunRequest = z.infer<typeof CancelRunRequestSchema>;
export type CancelRunResponse = z.infer<typeof CancelRunResponseSchema>;
export type RollbackRunRequest = z.infer<typeof RollbackRunRequestSchema>;
export type RollbackRunResponse = z.infer<typeof RollbackRunResponseSchema>;
export type DecideApprovalRequest = z.infer<typeof DecideApprovalRequestSchema>;
export type PendingApproval = z.infer<typeof PendingApprovalSchema>;
export type RunStatus = z.infer<typeof RunStatusSchema>;
/** Answer of POST /agents/{agent}/runs. */
export interface StartRunResponse {
  sessionId: string;
  executionArn: string;
  /** False when the idempotency key had already started this run. */
  created: boolean;
}

/**
 * A record of the approval table (never streamed; the token never leaves it).
 * `approvalId` is derived from the session and call, so a retried request reuses it.
 * Example: `{"approvalId":"apv_…","sessionId":"ses_a1","agent":"ssh-investigator","step":3,"callId":"toolu_06","tool":"block_address","input":{…},"taskToken":"…","status":"pending","requestedAt":"…","expiresAt":"…"}`
 */
export const ApprovalRecordSchema = z.object({
  approvalId: z.string(),
  sessionId: z.string(),
  agent: z.string(),
  step: z.number(),
  callId: z.string(),
  tool: z.string(),
  input: z.unknown(),
  taskToken: z.string(),
  /** `expired`: decided, but the run no longer waited (timed out or ended) when the answer was sent. */
  status: z.enum(['pending', 'approved', 'rejected', 'expired']),
  requestedAt: z.string(),
  expiresAt: z.string(),
  decidedAt: z.string().optional(),
  /** When the decision reached the waiting task (SendTaskSuccess succeeded). */
  deliveredAt: z.string().optional(),
  decidedBy: z.string().optional(),
  reason: z.string().optional(),
});
export type ApprovalRecord = z.infer<typeof ApprovalRecordSchema>;
