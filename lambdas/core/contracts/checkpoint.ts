/**
 * The checkpoint table's records, schema version 2. One table, partition key
 * `sessionId`, sort key `sk`:
 *
 * | sk                                | kind        | written by                          |
 * |-----------------------------------|-------------|-------------------------------------|
 * | `SESSION`                         | `session`   | every step (the head; updated)      |
 * | `EXEC#0002`                       | `execution` | Prepare of each execution of the session |
 * | `CP#000000#input`                 | `input`     | Prepare                             |
 * | `CP#000003#model`                 | `model`     | model turn 3                        |
 * | `CP#000003#approval#<call>`       | `approval`  | approval request                    |
 * | `CP#000003#intent#<call>`         | `intent`    | a non-idempotent tool, before it runs |
 * | `CP#000003#tool#<call>`           | `tool`      | tool call                           |
 * | `ROLLBACK#0001`                   | `rollback`  | `rollback` (API, CLI)               |
 * | `NOTICE#BudgetThresholdReached#costUsd` | `notice` | a model turn (once per key: 80% of a budget, a tool budget used up) |
 * | `PAUSE#2026-11-21T10:00:00.000Z`  | `pause`     | the approval function, when a run pauses on a budget |
 * | `ABANDONED#0001#CP#000004#model`  | (any `CP#` kind) | `rollback`: a checkpoint after the step rolled back to |
 *
 * Every record carries `schemaVersion`. Checkpoints (`CP#...`) are written once,
 * with `attribute_not_exists(sk)`, so a retried step never duplicates one; the
 * session head is the only record that is updated. The live chain of a session
 * is its `CP#` records; a rollback moves later ones under `ABANDONED#<branch>#`.
 * The table's stream feeds the event log.
 *
 * Versions: 1 (`checkpoint-v1.ts`, frozen) and 2 (this file). Readers accept
 * both ({@link StoredCheckpointRecordSchema}) and upgrade version 1 records in
 * memory; writers write version 2. Changing a record's shape means adding a
 * version, not editing one.
 *
 * Version 2 adds: the session's executions, branch (rollbacks) and cancellation,
 * status `CANCELLED`; bodies stored in S3 by reference (`resultRef`,
 * `responseRef`); tool status `outcome_unknown`; the `intent`, `execution` and
 * `rollback` kinds. Governance added, as optional fields and new kinds that older
 * version 2 records simply lack (so they still parse): the head's principal,
 * budgets, pause and stop, statuses `PAUSED_BUDGET` and `STOPPED`; model usage,
 * cost, denials, offered tools, output stages, confidence, outcome `review`; tool
 * cost and status `denied`; the `notice` and `pause` kinds.
 */
import { z } from 'zod';
import { STEP_KINDS } from '../routing';
import { CHECKPOINT_SCHEMA_VERSION, SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS } from '../constants';
import { CorruptCheckpointError } from '../errors';
import {
  ApprovalCheckpointV1Schema,
  CheckpointRecordV1Schema,
  InputCheckpointV1Schema,
  ModelCheckpointV1Schema,
  SessionRecordV1Schema,
  ToolCheckpointV1Schema,
  TriggerInfoV1Schema,
  type CheckpointRecordV1,
} from './checkpoint-v1';
import { BudgetsSchema, type Budgets } from '../budget';
import { PrincipalSchema, type Principal } from '../policy';
import { CIRCUIT_STATES } from '../health';
import { FailureSchema, PauseSchema } from './loop';
import { ModelResponseSchema, UsageSchema, type ToolResultBlockSchema } from './model';

const v2 = { schemaVersion: z.literal(CHECKPOINT_SCHEMA_VERSION) };

/**
 * The context limit's strategies (`core/context.ts`, `ContextStrategySchema`, which
 * says what each does). Listed here, not there, because this file may not import
 * `context.ts` (it imports this one).
 */
export const CONTEXT_STRATEGIES = ['drop-oldest-tool-results', 'summarise', 'fail'] as const;

/** The stages of the pipeline, in the order they run. */
export const OUTPUT_STAGES = ['parse', 'schema', 'rules', 'confidence', 'gate'] as const;

/**
 * What one stage of the pipeline did, as the model checkpoint records it. `errors`
 * lists the problems of a failed stage; `confidence` is the answer's confidence
 * (confidence and gate stages); `detail` says why a stage was skipped, or what it found.
 * Example: `{"stage":"rules","outcome":"failed","errors":["cited-lines-exist: line 4242 was not returned by any tool in this session"]}`
 */
export const StageOutcomeSchema = z.object({
  stage: z.enum(OUTPUT_STAGES),
  outcome: z.enum(['passed', 'failed', 'skipped']),
  errors: z.array(z.string()).optional(),
  confidence: z.number().min(0).max(1).optional(),
  detail: z.string().optional(),
});
/** What one stage did ({@link StageOutcomeSchema}). */
export type StageOutcome = z.infer<typeof StageOutcomeSchema>;
/** A stage of the pipeline: `parse`, `schema`, `rules`, `confidence` or `gate`. */
export type OutputStage = StageOutcome['stage'];

/**
 * Session status. `RUNNING` includes waiting for an approval or an output review;
 * `PAUSED_BUDGET`: a budget is used up and the run waits for `raise-budget` or `stop`;
 * `CANCELLED` and `STOPPED` (stopped while paused, partial results kept) are final.
 */
export const SessionStatusSchema = z.enum(['RUNNING', 'PAUSED_BUDGET', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'STOPPED']);

/**
 * The current budget pause of a session (status `PAUSED_BUDGET`): the budget used up
 * ({@link PauseSchema}), when the wait began (`at`, ISO 8601), the wait's approval id,
 * and the model turns completed (`step`).
 * Example: `{"budget":"costUsd","used":0.0502,"limit":0.05,"at":"2026-11-21T10:00:00.000Z","approvalId":"apv_…","step":3}`
 */
export const SessionPauseSchema = PauseSchema.extend({ at: z.string(), approvalId: z.string(), step: z.number().int().nonnegative() });

/** How a run ended on `stop` (while paused on a budget). Example: `{"reason":"too expensive","by":"alice","at":"2026-11-21T10:00:00.000Z"}` */
export const StopSchema = z.object({ reason: z.string(), by: z.string().optional(), at: z.string() });

/** Where a run came from. Example: `{"source":"eventbridge","dedupeKey":"6a7e8feb-…","detailType":"GuardDuty Finding","eventSource":"aws.guardduty","time":"…"}` */
export const TriggerInfoSchema = TriggerInfoV1Schema;

/**
 * A body stored in S3 instead of inline (larger than the inline limit).
 * Example: `{"bucket":"agentruntime-bodies-1a2b","key":"ses_a1/CP#000003#tool#toolu_06.json","bytes":51234,"sha256":"9f86d0…"}`
 */
export const BodyRefSchema = z.object({
  bucket: z.string(),
  key: z.string(),
  /** Size of the body in bytes (UTF-8). */
  bytes: z.number().int().nonnegative(),
  /** SHA-256 of the body, hex; checked when it is read back. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Why a session was cancelled. Example: `{"reason":"wrong host","by":"alice","at":"2026-11-21T10:00:00.000Z"}` */
export const CancellationSchema = z.object({ reason: z.string(), by: z.string().optional(), at: z.string() });

/**
 * The session head: status, the current execution, the final output or the failure.
 * Example: `{"sessionId":"ses_a1","sk":"SESSION","schemaVersion":2,"kind":"session","agent":"ssh-investigator","status":"RUNNING","executionArn":"arn:…:ses_a1-x2","executions":2,"branch":0,…}`
 */
export const SessionRecordSchema = SessionRecordV1Schema.extend({
  ...v2,
  status: SessionStatusSchema,
  /** Executions the session has had (1 + continuations, resumes and rollbacks). */
  executions: z.number().int().positive(),
  /** The execution before the current one, when there was one. */
  parentExecutionArn: z.string().optional(),
  /** Rollbacks so far: checkpoints written after a rollback belong to this branch. */
  branch: z.number().int().nonnegative(),
  cancellation: CancellationSchema.optional(),
  /** Who the run acts for (from the trigger; the principal of every policy decision). */
  principal: PrincipalSchema.optional(),
  /** The run's budgets in force (agent defaults, trigger and request overrides, raises). */
  budgets: BudgetsSchema.optional(),
  /** Seconds spent paused on budgets (not counted against `wallClockSeconds`). */
  pausedSeconds: z.number().nonnegative().optional(),
  /** Pauses so far. */
  pauses: z.number().int().nonnegative().optional(),
  /** The current pause (status `PAUSED_BUDGET`): the budget used up, when, and the approval id of the wait. */
  pause: SessionPauseSchema.optional(),
  /** How the run was stopped (status `STOPPED`). */
  stop: StopSchema.optional(),
  /** How deep in a chain of sub-agents this run is (0: started by a trigger or a person). */
  depth: z.number().int().nonnegative().optional(),
});

/** The validated trigger input and the first user message built from it. */
export const InputCheckpointSchema = InputCheckpointV1Schema.extend(v2);

/**
 * How a model call was routed: the step kind, the route's models in order, the one
 * that answered, each model's part (answered, failed after its retries, or skipped
 * with the reason), and the circuit changes the call made (`adapters/model-router.ts`).
 * Example: `{"kind":"act","route":["anthropic/claude-sonnet-4-5","openai/gpt-4.1"],"servedBy":{"provider":"openai","modelId":"gpt-4.1","index":1},"attempts":[{"provider":"anthropic","modelId":"claude-sonnet-4-5","outcome":"skipped","calls":0,"reason":"circuit open"},{"provider":"openai","modelId":"gpt-4.1","outcome":"answered","calls":1,"latencyMs":812,"requestId":"req_1"}],"transitions":[]}`
 */
export const RoutingRecordSchema = z.object({
  kind: z.enum(STEP_KINDS),
  route: z.array(z.string()),
  servedBy: z.object({ provider: z.string(), modelId: z.string(), index: z.number().int().nonnegative() }),
  attempts: z.array(
    z.object({
      provider: z.string(),
      modelId: z.string(),
      outcome: z.enum(['answered', 'failed', 'skipped']),
      /** Calls made to this model (1 + retries); 0 when skipped. */
      calls: z.number().int().nonnegative(),
      /** True when the call probed the model's half-open circuit. */
      probe: z.boolean().optional(),
      /** Milliseconds of the last call (the adapter's loading excluded). */
      latencyMs: z.number().nonnegative().optional(),
      /** The last fault's kind (`ProviderFaultKind`). */
      fault: z.string().optional(),
      /** The last fault's HTTP status, when the provider answered one. */
      status: z.number().int().optional(),
      /** The provider's request id of the answer, or of the last fault. */
      requestId: z.string().optional(),
      /** Why it was skipped (`circuit open`, no time left, …) or how it failed, in words; also set on a last-resort call. */
      reason: z.string().optional(),
    }),
  ),
  transitions: z.array(
    z.object({
      provider: z.string(),
      modelId: z.string(),
      /** The model's health key (provider, model id, and where it is served). */
      model: z.string().optional(),
      from: z.enum(CIRCUIT_STATES),
      to: z.enum(CIRCUIT_STATES),
      reason: z.string(),
      at: z.string(),
      stats: z.object({ calls: z.number(), errors: z.number(), errorRate: z.number(), p50Ms: z.number().optional(), p95Ms: z.number().optional() }).optional(),
    }),
  ),
});

/**
 * A tool result summarised by the `summarise` route's model: the text (before the
 * runtime's closing note), the model that wrote it, its usage and cost (counted in the
 * budgets), and the circuit changes its call made.
 * Example: `{"text":"3 failed logins from 203.0.113.7 …","provider":"bedrock","modelId":"amazon.nova-micro-v1:0","usage":{"inputTokens":900,"outputTokens":60},"costUsd":0.00004,"transitions":[]}`
 */
export const ModelSummarySchema = z.object({
  text: z.string(),
  provider: z.string(),
  modelId: z.string(),
  usage: UsageSchema,
  costUsd: z.number().nonnegative(),
  transitions: RoutingRecordSchema.shape.transitions,
});

/**
 * One model turn: what was asked (model, tools offered, message count), what came
 * back (inline, or in S3 when larger than the inline limit), and the outcome the loop took.
 */
export const ModelCheckpointSchema = ModelCheckpointV1Schema.extend({
  ...v2,
  /** The answer; absent when it is in S3 (`responseRef`). */
  response: ModelResponseSchema.optional(),
  responseRef: BodyRefSchema.optional(),
  /** The key under which the provider call is idempotent. */
  idempotencyKey: z.string().optional(),
  /**
   * What the agent's context limit did to this request (absent: no limit applied):
   * bytes of tool results sent in full; how many of the oldest results were replaced
   * by a note, or by a summary; the request's estimated input tokens (`core/context.ts`);
   * the token limit, when set; the strategy. Records written before token limits
   * carry the first two only.
   */
  context: z
    .object({
      toolResultBytes: z.number().int().nonnegative(),
      droppedToolResults: z.number().int().nonnegative(),
      summarisedToolResults: z.number().int().nonnegative().optional(),
      estimatedTokens: z.number().int().nonnegative().optional(),
      maxContextTokens: z.number().int().positive().optional(),
      strategy: z.enum(CONTEXT_STRATEGIES).optional(),
      /**
       * Summaries a model wrote in this turn (the agent's `summarise` route), by the sort key
       * of the tool result they replace: later turns reuse them, so each result is summarised once.
       */
      summaries: z.record(z.string(), ModelSummarySchema).optional(),
    })
    .optional(),
  /** Token usage of the call (also inside `response`, which may be in S3). */
  usage: UsageSchema.optional(),
  /** What the call cost, USD (price table, `core/budget.ts`). */
  costUsd: z.number().nonnegative().optional(),
  /** `review`: a valid answer below the confidence gate (or failing rules, as declared) waits for a human. */
  outcome: z.enum(['tool_calls', 'repair', 'final', 'failed', 'review']),
  /**
   * Tool calls not run, with the real reason (the model was told only that no such tool
   * is available, or that the tool's budget is used up): `not_declared`, `denied`
   * (policy; `policies` are the determining policy ids), `budget_exceeded`.
   */
  denials: z
    .array(
      z.object({
        callId: z.string(),
        tool: z.string(),
        /** `not_declared`: no such tool; `denied`: a policy forbids it; `budget_exceeded`: its calls per session are used up. */
        reason: z.enum(['not_declared', 'denied', 'budget_exceeded']),
        /** Determining policy ids (`denied`). */
        policies: z.array(z.string()).optional(),
        /** The policy set that decided (`denied`): `bundled` (the agent's file or the default) or the policy table override's version, e.g. `"3"`. */
        policyVersion: z.string().optional(),
        /** Cedar's evaluation or request errors, one line each (`denied`; any error denies). */
        errors: z.array(z.string()).optional(),
      }),
    )
    .optional(),
  /** Tools offered to the model (after policy). */
  offeredTools: z.array(z.string()).optional(),
  /** The output pipeline's stages on a final answer (parse, schema, rules, confidence, gate). */
  stages: z.array(StageOutcomeSchema).optional(),
  /** The answer's confidence, 0 to 1, when the pipeline computed one. */
  confidence: z.number().min(0).max(1).optional(),
  /** Why the answer went to a human (outcome `review`). */
  reviewReasons: z.array(z.string()).optional(),
  /** Why the run cannot go on (outcome `failed`): `OutputValidationFailed`, `OutputRuleFailed`, `LowConfidence`. */
  failure: FailureSchema.optional(),
  /** The request's parameters, as sent to the model that answered. */
  params: z.object({ maxTokens: z.number().int().positive().optional(), temperature: z.number().optional() }).optional(),
  /** How the call was routed (absent on records written before routing). */
  routing: RoutingRecordSchema.optional(),
});

/** An approval was requested. The task token is not here (it lives in the approval table only). */
export const ApprovalCheckpointSchema = ApprovalCheckpointV1Schema.extend(v2);

/**
 * One tool call and its result. `result` is the JSON text the model sees, inline, or
 * in S3 (`resultRef`) when larger than the inline limit. `outcome_unknown`: a
 * non-idempotent tool's earlier attempt recorded its intent but no result (it may or
 * may not have acted); it was not run again.
 */
export const ToolCheckpointSchema = ToolCheckpointV1Schema.extend({
  ...v2,
  status: z.enum(['succeeded', 'tool_error', 'invalid_input', 'rejected', 'outcome_unknown', 'denied']),
  result: z.string().optional(),
  resultRef: BodyRefSchema.optional(),
  /** The key under which the call is idempotent (`ToolContext.idempotencyKey`). */
  idempotencyKey: z.string().optional(),
  /** What the call cost, USD (the tool's declared cost per call; 0 when it did not run). */
  costUsd: z.number().nonnegative().optional(),
});

/**
 * A non-idempotent tool is about to run (written before it runs; its result follows
 * in the `tool` checkpoint). An intent without a result means the outcome is unknown.
 * Example: `{"sessionId":"ses_a1","sk":"CP#000003#intent#toolu_06","schemaVersion":2,"kind":"intent","step":3,"callId":"toolu_06","tool":"charge_card","idempotencyKey":"tc_…","executionArn":"arn:…","createdAt":"…"}`
 */
export const IntentCheckpointSchema = z.object({
  sessionId: SessionRecordSchema.shape.sessionId,
  sk: z.string(),
  ...v2,
  createdAt: z.string(),
  kind: z.literal('intent'),
  step: z.number().int().positive(),
  callId: z.string(),
  tool: z.string(),
  idempotencyKey: z.string(),
  executionArn: z.string(),
});

/** Why an execution of a session started. */
export const ExecutionReasonSchema = z.enum(['start', 'continue-as-new', 'resume', 'rollback']);

/**
 * An execution of the session began (one per execution; sk `EXEC#<n>`).
 * Example: `{"sessionId":"ses_a1","sk":"EXEC#0002","schemaVersion":2,"kind":"execution","execution":2,"executionArn":"arn:…:ses_a1-x2","parentExecutionArn":"arn:…:ses_a1","reason":"continue-as-new","step":1225,"createdAt":"…"}`
 */
export const ExecutionRecordSchema = z.object({
  sessionId: SessionRecordSchema.shape.sessionId,
  sk: z.string(),
  ...v2,
  createdAt: z.string(),
  kind: z.literal('execution'),
  /** 1 for the first execution. */
  execution: z.number().int().positive(),
  executionArn: z.string(),
  parentExecutionArn: z.string().optional(),
  reason: ExecutionReasonSchema,
  /** Model turns completed when it began. */
  step: z.number().int().nonnegative(),
});

/**
 * A rollback (sk `ROLLBACK#<branch>`): checkpoints after `toStep` moved under
 * `ABANDONED#<branch>#`, and the session continued from `toStep`.
 * Example: `{"sessionId":"ses_a1","sk":"ROLLBACK#0001","schemaVersion":2,"kind":"rollback","branch":1,"toStep":2,"fromStep":4,"abandoned":["CP#000003#model",…],"reason":"wrong host","requestedBy":"alice","createdAt":"…"}`
 */
export const RollbackRecordSchema = z.object({
  sessionId: SessionRecordSchema.shape.sessionId,
  sk: z.string(),
  ...v2,
  createdAt: z.string(),
  kind: z.literal('rollback'),
  branch: z.number().int().positive(),
  toStep: z.number().int().nonnegative(),
  fromStep: z.number().int().nonnegative(),
  /** Sort keys of the checkpoints abandoned (moved under `ABANDONED#<branch>#`). */
  abandoned: z.array(z.string()),
  reason: z.string(),
  requestedBy: z.string().optional(),
});

/** The notices (`NOTICE#<notice>#<key>`); each is also an event type of its own name (`contracts/events.ts`). */
export const NOTICE_NAMES = ['BudgetThresholdReached', 'ToolBudgetExceeded', 'ModelFallback', 'CircuitOpened', 'CircuitHalfOpened', 'CircuitClosed'] as const;

/**
 * A governance notice, written once per key (`NOTICE#<notice>#<key>`), logged as its
 * own event type and published on the runtime's bus by the projector.
 * - `BudgetThresholdReached`: a budget reached 80% (key: the budget).
 * - `ToolBudgetExceeded`: a call of a tool past its calls per session (key: step and call id).
 * - `ModelFallback`: a model turn was answered by a fallback, not its route's primary (key: the step).
 * - `CircuitOpened`, `CircuitHalfOpened`, `CircuitClosed`: this session's call changed a model's
 *   circuit breaker (key: `<provider>/<model id>#<when>`); the detail says why, with the window's statistics.
 * Example: `{"sessionId":"ses_a1","sk":"NOTICE#BudgetThresholdReached#costUsd","schemaVersion":2,"kind":"notice","notice":"BudgetThresholdReached","agent":"ssh-investigator","step":3,"detail":{"budget":"costUsd","used":0.041,"limit":0.05},"createdAt":"…"}`
 */
export const NoticeRecordSchema = z.object({
  sessionId: SessionRecordSchema.shape.sessionId,
  sk: z.string(),
  ...v2,
  createdAt: z.string(),
  kind: z.literal('notice'),
  notice: z.enum(NOTICE_NAMES),
  agent: z.string(),
  step: z.number().int().nonnegative(),
  detail: z.record(z.string(), z.unknown()),
});

/**
 * A budget ran out and the run paused (`PAUSE#<when its wait began>`): the snapshot of where it stood.
 * Example: `{"sessionId":"ses_a1","sk":"PAUSE#2026-11-21T10:00:00.000Z","schemaVersion":2,"kind":"pause","agent":"ssh-investigator","step":3,"budget":"costUsd","used":0.0502,"limit":0.05,"budgets":{"costUsd":0.05},"approvalId":"apv_…","expiresAt":"…","createdAt":"…"}`
 */
export const PauseRecordSchema = PauseSchema.extend({
  sessionId: SessionRecordSchema.shape.sessionId,
  sk: z.string(),
  ...v2,
  createdAt: z.string(),
  kind: z.literal('pause'),
  agent: z.string(),
  /** Model turns completed when it paused. */
  step: z.number().int().nonnegative(),
  /** The budgets in force when it paused. */
  budgets: BudgetsSchema,
  /** The wait's id (raise-budget and stop answer it). */
  approvalId: z.string(),
  expiresAt: z.string(),
});

/** Any record of the checkpoint table, as written today (version 2). */
export const CheckpointRecordSchema = z.discriminatedUnion('kind', [
  SessionRecordSchema,
  InputCheckpointSchema,
  ModelCheckpointSchema,
  ApprovalCheckpointSchema,
  IntentCheckpointSchema,
  ToolCheckpointSchema,
  ExecutionRecordSchema,
  RollbackRecordSchema,
  NoticeRecordSchema,
  PauseRecordSchema,
]);

export type SessionStatus = z.infer<typeof SessionStatusSchema>;
export type TriggerInfo = z.infer<typeof TriggerInfoSchema>;
export type BodyRef = z.infer<typeof BodyRefSchema>;
export type Cancellation = z.infer<typeof CancellationSchema>;
export type SessionRecord = z.infer<typeof SessionRecordSchema>;
export type InputCheckpoint = z.infer<typeof InputCheckpointSchema>;
export type ModelCheckpoint = z.infer<typeof ModelCheckpointSchema>;
/** How a model call was routed ({@link RoutingRecordSchema}). */
export type RoutingRecord = z.infer<typeof RoutingRecordSchema>;
/** A tool result summarised by a model ({@link ModelSummarySchema}). */
export type ModelSummary = z.infer<typeof ModelSummarySchema>;
export type ApprovalCheckpoint = z.infer<typeof ApprovalCheckpointSchema>;
export type IntentCheckpoint = z.infer<typeof IntentCheckpointSchema>;
export type ToolCheckpoint = z.infer<typeof ToolCheckpointSchema>;
export type ExecutionReason = z.infer<typeof ExecutionReasonSchema>;
export type ExecutionRecord = z.infer<typeof ExecutionRecordSchema>;
export type RollbackRecord = z.infer<typeof RollbackRecordSchema>;
/** A governance notice ({@link NoticeRecordSchema}). */
export type NoticeRecord = z.infer<typeof NoticeRecordSchema>;
/** A budget pause's snapshot ({@link PauseRecordSchema}). */
export type PauseRecord = z.infer<typeof PauseRecordSchema>;
export type CheckpointRecord = z.infer<typeof CheckpointRecordSchema>;
export type ToolResult = z.infer<typeof ToolResultBlockSchema>;

/**
 * Upgrades a version 1 record to version 2 in memory: every field kept; a session
 * head gets `executions: 1` and `branch: 0` (version 1 had neither continuations nor rollbacks).
 */
export function upgradeV1(record: CheckpointRecordV1): CheckpointRecord {
  const version = CHECKPOINT_SCHEMA_VERSION as typeof CHECKPOINT_SCHEMA_VERSION;
  if (record.kind === 'session') return { executions: 1, branch: 0, ...record, schemaVersion: version };
  return { ...record, schemaVersion: version } as CheckpointRecord;
}

/** A stored record of any supported version, upgraded to the current one. */
export const StoredCheckpointRecordSchema = z.union([CheckpointRecordSchema, CheckpointRecordV1Schema.transform(upgradeV1)]);
/** A stored session head of any supported version, upgraded to the current one. */
export const StoredSessionRecordSchema = z.union([
  SessionRecordSchema,
  SessionRecordV1Schema.transform((r) => upgradeV1(r) as SessionRecord),
]);

/**
 * A new session head: RUNNING at step 0, its first execution, branch 0, created and
 * updated at `at` (ISO 8601), with the run's principal, budgets and sub-agent depth when given.
 */
export function newSessionRecord(
  props: { sessionId: string; agent: string; executionArn: string; trigger: TriggerInfo; principal?: Principal; budgets?: Budgets; depth?: number },
  at: string,
): SessionRecord {
  return {
    ...(props.principal ? { principal: props.principal } : {}),
    ...(props.budgets ? { budgets: props.budgets } : {}),
    ...(props.depth !== undefined ? { depth: props.depth } : {}),
    sessionId: props.sessionId,
    sk: SESSION_SK,
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    kind: 'session',
    agent: props.agent,
    status: 'RUNNING',
    executionArn: props.executionArn,
    executions: 1,
    branch: 0,
    trigger: props.trigger,
    createdAt: at,
    updatedAt: at,
    step: 0,
  };
}

/**
 * Reads a stored record: its `schemaVersion` must be one this build supports, then
 * it must match `schema` (e.g. {@link StoredCheckpointRecordSchema}).
 * @throws CorruptCheckpointError naming the record (session and sort key) and the problem.
 */
export function parseStoredRecord<T>(
  item: Record<string, unknown>,
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { message: string } } },
): T {
  const where = `record ${String(item.sessionId)}/${String(item.sk)}`;
  const version = item.schemaVersion;
  if (typeof version !== 'number' || !SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS.includes(version)) {
    throw new CorruptCheckpointError(`${where} has unsupported schemaVersion ${String(version)}`);
  }
  const parsed = schema.safeParse(item);
  if (!parsed.success) throw new CorruptCheckpointError(`${where} is malformed: ${parsed.error.message}`);
  return parsed.data;
}

/** Sort key of the session head. */
export const SESSION_SK = 'SESSION';
/** Prefix of every live checkpoint's sort key. */
export const CHECKPOINT_SK_PREFIX = 'CP#';
/** Prefix of the sort keys of governance notices. */
export const NOTICE_SK_PREFIX = 'NOTICE#';
/** Prefix of the sort keys of checkpoints a rollback abandoned. */
export const ABANDONED_SK_PREFIX = 'ABANDONED#';

const pad = (step: number): string => String(step).padStart(6, '0');
const seq = (n: number): string => String(n).padStart(4, '0');

/** Sort keys of checkpoints; zero-padded so that they sort by step. */
export const checkpointKey = {
  input: (): string => `CP#${pad(0)}#input`,
  model: (step: number): string => `CP#${pad(step)}#model`,
  approval: (step: number, callId: string): string => `CP#${pad(step)}#approval#${callId}`,
  intent: (step: number, callId: string): string => `CP#${pad(step)}#intent#${callId}`,
  tool: (step: number, callId: string): string => `CP#${pad(step)}#tool#${callId}`,
  /** The record of the session's `n`th execution. */
  execution: (n: number): string => `EXEC#${seq(n)}`,
  /** A governance notice, once per `notice` and `key`. */
  notice: (notice: string, key: string): string => `${NOTICE_SK_PREFIX}${notice}#${key}`,
  /** The budget pause whose wait began at `at` (ISO 8601, so that pauses sort by time). */
  pause: (at: string): string => `PAUSE#${at}`,
  /** The record of the session's `branch`th rollback. */
  rollback: (branch: number): string => `ROLLBACK#${seq(branch)}`,
  /** Where a rollback to branch `branch` moves the checkpoint `sk`. */
  abandoned: (branch: number, sk: string): string => `${ABANDONED_SK_PREFIX}${seq(branch)}#${sk}`,
};
