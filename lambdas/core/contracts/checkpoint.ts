/**
 * The checkpoint table's records. One table, partition key `sessionId`, sort key `sk`:
 *
 * | sk                          | kind       | written by            |
 * |-----------------------------|------------|-----------------------|
 * | `SESSION`                   | `session`  | every step (head; updated) |
 * | `CP#000000#input`           | `input`    | Prepare               |
 * | `CP#000003#model`           | `model`    | model turn 3          |
 * | `CP#000003#approval#<call>` | `approval` | approval request      |
 * | `CP#000003#tool#<call>`     | `tool`     | tool call             |
 *
 * Every record carries `schemaVersion`. Checkpoints (`CP#...`) are written once,
 * with `attribute_not_exists(sk)`, so a retried step never duplicates one; the
 * session head is the only record that is updated. The table's stream feeds the
 * event log. Changing a record's shape means adding a schema version, not editing one.
 */
import { z } from 'zod';
import { CHECKPOINT_SCHEMA_VERSION, SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS } from '../constants';
import { CorruptCheckpointError } from '../errors';
import { ModelResponseSchema, ToolResultBlockSchema } from './model';
import { ApprovalOutcomeSchema, FailureSchema, SessionIdSchema, ToolCallRefSchema } from './loop';

const base = {
  sessionId: SessionIdSchema,
  sk: z.string(),
  schemaVersion: z.literal(CHECKPOINT_SCHEMA_VERSION),
  /** ISO 8601 time of writing. */
  createdAt: z.string(),
};

/** Session status. `RUNNING` includes waiting for an approval. */
export const SessionStatusSchema = z.enum(['RUNNING', 'SUCCEEDED', 'FAILED']);

/** Where a run came from. Example: `{"source":"eventbridge","dedupeKey":"6a7e8feb-…","detailType":"GuardDuty Finding","eventSource":"aws.guardduty","time":"…"}` */
export const TriggerInfoSchema = z.object({
  source: z.enum(['eventbridge', 'api']),
  /** EventBridge event id, or the API caller's idempotency key. */
  dedupeKey: z.string(),
  detailType: z.string().optional(),
  eventSource: z.string().optional(),
  time: z.string().optional(),
});

/**
 * The session head: status, the current execution, the final output or the failure.
 * Example: `{"sessionId":"ses_a1","sk":"SESSION","kind":"session","agent":"ssh-investigator","status":"RUNNING",...}`
 */
export const SessionRecordSchema = z.object({
  ...base,
  kind: z.literal('session'),
  agent: z.string(),
  status: SessionStatusSchema,
  executionArn: z.string(),
  trigger: TriggerInfoSchema.optional(),
  updatedAt: z.string(),
  /** Model turns taken so far. */
  step: z.number().int().nonnegative(),
  output: z.unknown().optional(),
  failure: FailureSchema.extend({ failedState: z.string() }).optional(),
});

/** The validated trigger input and the first user message built from it. Example: `{"sessionId":"ses_a1","sk":"CP#000000#input","schemaVersion":1,"createdAt":"…","kind":"input","step":0,"input":{…},"prompt":"GuardDuty reports …","trigger":{…}}` */
export const InputCheckpointSchema = z.object({
  ...base,
  kind: z.literal('input'),
  step: z.literal(0),
  input: z.unknown(),
  prompt: z.string(),
  trigger: TriggerInfoSchema,
});

/**
 * One model turn: what was asked (model, tools offered, message count), what came
 * back, and the outcome the loop took.
 * Example: `{"sessionId":"ses_a1","sk":"CP#000001#model","schemaVersion":1,"createdAt":"…","kind":"model","step":1,"provider":"scripted","request":{"modelId":"scripted/demo","tools":["echo"],"messageCount":1},"response":{…},"outcome":"tool_calls","calls":[…],"inlineResults":[],"durationMs":12}`
 */
export const ModelCheckpointSchema = z.object({
  ...base,
  kind: z.literal('model'),
  step: z.number().int().positive(),
  provider: z.string(),
  request: z.object({
    modelId: z.string(),
    tools: z.array(z.string()),
    messageCount: z.number().int().nonnegative(),
  }),
  response: ModelResponseSchema,
  outcome: z.enum(['tool_calls', 'repair', 'final', 'failed']),
  calls: z.array(ToolCallRefSchema),
  /** Results the loop answered itself (unknown tool, too many calls). */
  inlineResults: z.array(ToolResultBlockSchema),
  /** Why the final answer was rejected (`repair` / `failed`). */
  validationErrors: z.array(z.string()).optional(),
  output: z.unknown().optional(),
  durationMs: z.number().nonnegative(),
});

/** An approval was requested. The task token is not here (it lives in the approval table only). Example: `{"sessionId":"ses_a1","sk":"CP#000003#approval#toolu_06","kind":"approval","step":3,"approvalId":"apv_…","callId":"toolu_06","tool":"block_address","input":{…},"expiresAt":"…",…}` */
export const ApprovalCheckpointSchema = z.object({
  ...base,
  kind: z.literal('approval'),
  step: z.number().int().positive(),
  approvalId: z.string(),
  callId: z.string(),
  tool: z.string(),
  input: z.unknown(),
  expiresAt: z.string(),
});

/** One tool call and its result. `result` is the JSON text the model sees. Example: `{"sessionId":"ses_a1","sk":"CP#000001#tool#toolu_01","kind":"tool","step":1,"callId":"toolu_01","tool":"echo","toolVersion":"1.0.0","input":{"text":"hi"},"approval":{"decision":"not_required"},"status":"succeeded","result":"{\"text\":\"hi\"}","isError":false,"durationMs":3,…}` */
export const ToolCheckpointSchema = z.object({
  ...base,
  kind: z.literal('tool'),
  step: z.number().int().positive(),
  callId: z.string(),
  tool: z.string(),
  toolVersion: z.string(),
  input: z.unknown(),
  approval: ApprovalOutcomeSchema,
  status: z.enum(['succeeded', 'tool_error', 'invalid_input', 'rejected']),
  result: z.string(),
  isError: z.boolean(),
  durationMs: z.number().nonnegative(),
});

/** Any record of the checkpoint table. */
export const CheckpointRecordSchema = z.discriminatedUnion('kind', [
  SessionRecordSchema,
  InputCheckpointSchema,
  ModelCheckpointSchema,
  ApprovalCheckpointSchema,
  ToolCheckpointSchema,
]);

export type SessionStatus = z.infer<typeof SessionStatusSchema>;
export type TriggerInfo = z.infer<typeof TriggerInfoSchema>;
export type SessionRecord = z.infer<typeof SessionRecordSchema>;
export type InputCheckpoint = z.infer<typeof InputCheckpointSchema>;
export type ModelCheckpoint = z.infer<typeof ModelCheckpointSchema>;
export type ApprovalCheckpoint = z.infer<typeof ApprovalCheckpointSchema>;
export type ToolCheckpoint = z.infer<typeof ToolCheckpointSchema>;
export type CheckpointRecord = z.infer<typeof CheckpointRecordSchema>;
export type ToolResult = z.infer<typeof ToolResultBlockSchema>;

/** A new session head: RUNNING at step 0, created and updated at `at` (ISO 8601). */
export function newSessionRecord(props: { sessionId: string; agent: string; executionArn: string; trigger: TriggerInfo }, at: string): SessionRecord {
  return {
    sessionId: props.sessionId,
    sk: SESSION_SK,
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    kind: 'session',
    agent: props.agent,
    status: 'RUNNING',
    executionArn: props.executionArn,
    trigger: props.trigger,
    createdAt: at,
    updatedAt: at,
    step: 0,
  };
}

/**
 * Reads a stored record: its `schemaVersion` must be one this build supports, then
 * it must match `schema` (e.g. {@link CheckpointRecordSchema}).
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
/** Prefix of every checkpoint's sort key. */
export const CHECKPOINT_SK_PREFIX = 'CP#';

const pad = (step: number): string => String(step).padStart(6, '0');

/** Sort keys of checkpoints; zero-padded so that they sort by step. */
export const checkpointKey = {
  input: (): string => `CP#${pad(0)}#input`,
  model: (step: number): string => `CP#${pad(step)}#model`,
  approval: (step: number, callId: string): string => `CP#${pad(step)}#approval#${callId}`,
  tool: (step: number, callId: string): string => `CP#${pad(step)}#tool#${callId}`,
};
