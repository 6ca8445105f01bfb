/**
 * Behaviour-changing defaults of the runtime, in one place. Units are in the names.
 */

/** Version of every checkpoint record written today. Readers accept all of {@link SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS}. */
export const CHECKPOINT_SCHEMA_VERSION = 2;
/** Checkpoint schema versions this build can read. */
export const SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS: readonly number[] = [1, 2];
/** Version of the event log rows and the dead-letter envelope written today. */
export const EVENT_SCHEMA_VERSION = 1;

/** Model turns a run may take before it fails with `StepLimitReached`. */
export const DEFAULT_MAX_STEPS = 20;
/**
 * The largest `maxSteps` an agent may declare. Runs continue as new executions
 * before a Standard execution's 25,000 history events, so length is bounded only
 * by this guard against runaway loops (and, later, by budgets).
 */
export const MAX_STEPS_LIMIT = 100_000;
/**
 * History events a Standard execution may have: 25,000 ("Step Functions service
 * quotas", Execution history: maximum events; not adjustable). An agent's run
 * continues as a new execution before it gets there.
 */
export const STANDARD_EXECUTION_HISTORY_LIMIT = 25_000;
/** Times an invalid final answer is sent back to the model with its validation errors before the run fails. */
export const DEFAULT_MAX_OUTPUT_REPAIRS = 2;
/** Tool calls of one model turn that run at once (the Map state's MaxConcurrency). */
export const DEFAULT_TOOL_CONCURRENCY = 4;
/** How long a human approval may wait before it counts as rejected with reason "timed out" (24 h). */
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 86_400;
/**
 * The longest timeout a Lambda function may have: 900 s (15 minutes; "Lambda quotas",
 * function timeout, not adjustable). Bounds a tool's `timeoutSeconds` and a manifest's `timeout_ms`.
 */
export const LAMBDA_MAX_TIMEOUT_SECONDS = 900;
/**
 * The longest a Standard workflow execution may run: one year, 31,536,000 s ("Step
 * Functions service quotas", maximum execution time). Bounds the waits a run may make
 * (`approvalTimeoutSeconds`, `budgetPauseTimeoutSeconds`).
 */
export const STANDARD_WORKFLOW_MAX_SECONDS = 31_536_000;
/** Lambda timeout of a model turn. */
export const DEFAULT_MODEL_TIMEOUT_SECONDS = 120;
/** Lambda timeout of a tool call. */
export const DEFAULT_TOOL_TIMEOUT_SECONDS = 30;
/**
 * Seconds added to a model turn's or a tool's timeout to make its Task's TimeoutSeconds:
 * room for the invocation itself (a cold start), so the function's own timeout fires first.
 */
export const TASK_TIMEOUT_MARGIN_SECONDS = 5;
/**
 * Seconds an HTTP tool's function lives past its request's timeout, to record the
 * outcome (its Lambda timeout is the tool's `timeoutSeconds` plus this).
 */
export const HTTP_TOOL_RECORD_SECONDS = 1;
/** How long a run paused on an exhausted budget waits for a raise or a stop: 7 days. */
export const DEFAULT_BUDGET_PAUSE_TIMEOUT_SECONDS = 604_800;
/**
 * The most output tokens one model call may produce (the request's `maxTokens`), unless
 * the agent says otherwise. The runtime's choice: within the output maximum of every model
 * the price table lists (`core/budget.ts`), and a bound on what one call's output can cost.
 */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096;
/** The share of a budget at which `BudgetThresholdReached` is announced (once per budget per session). */
export const BUDGET_THRESHOLD_FRACTION = 0.8;
/** Tool calls one model turn may request; more is answered with an error result for the extras. */
export const MAX_TOOL_CALLS_PER_TURN = 16;
/**
 * The largest tool result recorded, in bytes of JSON (10 MiB). A larger one is
 * answered with a `RESULT_TOO_LARGE` error result. Results above
 * {@link DEFAULT_BODY_INLINE_LIMIT_BYTES} are stored in S3, not in the checkpoint.
 */
export const MAX_TOOL_RESULT_BYTES = 10 * 1024 * 1024;
/**
 * Bodies (tool results, model responses) larger than this many bytes are stored in
 * the runtime's S3 bucket and checkpointed by reference (16 KiB): DynamoDB items
 * are capped at 400 KB and Step Functions payloads at 256 KiB.
 */
export const DEFAULT_BODY_INLINE_LIMIT_BYTES = 16 * 1024;
/**
 * How long Powertools idempotency records of model and tool calls are kept: 7 days,
 * longer than a run may wait to be resumed in practice (the DLQ keeps 14).
 */
export const IDEMPOTENCY_RECORD_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Retry of transient faults on every Lambda task: 3 retries, 1 s first interval,
 * doubling, at most 20 s apart, full jitter (Step Functions Retry fields).
 */
export const TASK_RETRY = {
  maxAttempts: 3,
  intervalSeconds: 1,
  backoffRate: 2,
  maxDelaySeconds: 20,
} as const;

/**
 * Retry of a model or tool call that finds its idempotency key locked by an attempt
 * that died mid-call (Powertools `IdempotencyAlreadyInProgressError`; the lock lasts
 * the dead attempt's remaining time, at most the function's timeout): 5 retries,
 * 15 s doubling, at most 120 s apart, full jitter. Past them, the run is resumed.
 */
export const IN_PROGRESS_RETRY = {
  errors: ['IdempotencyAlreadyInProgressError'],
  maxAttempts: 5,
  intervalSeconds: 15,
  backoffRate: 2,
  maxDelaySeconds: 120,
} as const;

/** Retry of RecordFailure and of the direct DLQ send: 5 retries, 1 s doubling, full jitter. */
export const FAILURE_RETRY = { maxAttempts: 5, intervalSeconds: 1, backoffRate: 2 } as const;

/**
 * Delivery of trigger events to a state machine: EventBridge's own maxima
 * (185 attempts, 24 hours), then the delivery dead-letter queue.
 */
export const TRIGGER_DELIVERY = { retryAttempts: 185, maxEventAgeHours: 24 } as const;

/**
 * The checkpoint stream's event source mapping: batches of at most 100 records
 * or 1 s, 10 retries with bisection, one shard at a time (order per session).
 */
export const PROJECTOR_STREAM = { batchSize: 100, maxBatchingWindowSeconds: 1, retryAttempts: 10 } as const;

/** Name of the approval table's index by session (it never projects the task token). */
export const APPROVALS_BY_SESSION_INDEX = 'bySession';

/** Reason recorded when an approval wait reaches its timeout. */
export const APPROVAL_TIMED_OUT_REASON = 'timed out';

/**
 * Step Functions execution names are 1-80 characters of `[0-9A-Za-z_-]`
 * (StartExecution API reference); session ids are used as execution names.
 */
export const SESSION_ID_PATTERN = /^[0-9A-Za-z_-]{1,80}$/;
