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
 * `rollback` kinds.
 */
import { z } from 'zod';
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
import { ModelResponseSchema, type ToolResultBlockSchema } from './model';

const v2 = { schemaVersion: z.literal(CHECKPOINT_SCHEMA_VERSION) };

/** Session status. `RUNNING` includes waiting for an approval; `CANCELLED` is final. */
export const SessionStatusSchema = z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']);

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
});

/** The validated trigger input and the first user message built from it. */
export const InputCheckpointSchema = InputCheckpointV1Schema.extend(v2);

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
   * What the agent's context limit did to this request: bytes of tool results sent,
   * and how many of the oldest results were replaced by a note (absent: no limit applied).
   */
  context: z.object({ toolResultBytes: z.number().int().nonnegative(), droppedToolResults: z.number().int().nonnegative() }).optional(),
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
  status: z.enum(['succeeded', 'tool_error', 'invalid_input', 'rejected', 'outcome_unknown']),
  result: z.string().optional(),
  resultRef: BodyRefSchema.optional(),
  /** The key under which the call is idempotent (`ToolContext.idempotencyKey`). */
  idempotencyKey: z.string().optional(),
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
]);

export type SessionStatus = z.infer<typeof SessionStatusSchema>;
export type TriggerInfo = z.infer<typeof TriggerInfoSchema>;
export type BodyRef = z.infer<typeof BodyRefSchema>;
export type Cancellation = z.infer<typeof CancellationSchema>;
export type SessionRecord = z.infer<typeof SessionRecordSchema>;
export type InputCheckpoint = z.infer<typeof InputCheckpointSchema>;
export type ModelCheckpoint = z.infer<typeof ModelCheckpointSchema>;
export type ApprovalCheckpoint = z.infer<typeof ApprovalCheckpointSchema>;
export type IntentCheckpoint = z.infer<typeof IntentCheckpointSchema>;
export type ToolCheckpoint = z.infer<typeof ToolCheckpointSchema>;
export type ExecutionReason = z.infer<typeof ExecutionReasonSchema>;
export type ExecutionRecord = z.infer<typeof ExecutionRecordSchema>;
export type RollbackRecord = z.infer<typeof RollbackRecordSchema>;
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

/** A new session head: RUNNING at step 0, its first execution, branch 0, created and updated at `at` (ISO 8601). */
export function newSessionRecord(props: { sessionId: string; agent: string; executionArn: string; trigger: TriggerInfo }, at: string): SessionRecord {
  return {
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
  /** The record of the session's `branch`th rollback. */
  rollback: (branch: number): string => `ROLLBACK#${seq(branch)}`,
  /** Where a rollback to branch `branch` moves the checkpoint `sk`. */
  abandoned: (branch: number, sk: string): string => `${ABANDONED_SK_PREFIX}${seq(branch)}#${sk}`,
};
