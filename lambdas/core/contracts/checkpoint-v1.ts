/**
 * Checkpoint records as schema version 1 wrote them (the walking skeleton).
 * Frozen: records of this version stay in tables and in test/fixtures/checkpoints/v1,
 * and readers upgrade them to the current version (see `checkpoint.ts`). Never
 * edit a schema here; a new format is a new version.
 */
import { z } from 'zod';
import { ModelResponseSchema, ToolResultBlockSchema } from './model';
import { ApprovalOutcomeSchema, FailureSchema, SessionIdSchema, ToolCallRefSchema } from './loop';

const base = {
  sessionId: SessionIdSchema,
  sk: z.string(),
  schemaVersion: z.literal(1),
  /** ISO 8601 time of writing. */
  createdAt: z.string(),
};

/** Session status. `RUNNING` includes waiting for an approval. */
export const SessionStatusV1Schema = z.enum(['RUNNING', 'SUCCEEDED', 'FAILED']);

/** Where a run came from. Example: `{"source":"eventbridge","dedupeKey":"6a7e8feb-…","detailType":"GuardDuty Finding","eventSource":"aws.guardduty","time":"…"}` */
export const TriggerInfoV1Schema = z.object({
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
export const SessionRecordV1Schema = z.object({
  ...base,
  kind: z.literal('session'),
  agent: z.string(),
  status: SessionStatusV1Schema,
  executionArn: z.string(),
  trigger: TriggerInfoV1Schema.optional(),
  updatedAt: z.string(),
  /** Model turns taken so far. */
  step: z.number().int().nonnegative(),
  output: z.unknown().optional(),
  failure: FailureSchema.extend({ failedState: z.string() }).optional(),
});

/** The validated trigger input and the first user message built from it. Example: `{"sessionId":"ses_a1","sk":"CP#000000#input","schemaVersion":1,"createdAt":"…","kind":"input","step":0,"input":{…},"prompt":"GuardDuty reports …","trigger":{…}}` */
export const InputCheckpointV1Schema = z.object({
  ...base,
  kind: z.literal('input'),
  step: z.literal(0),
  input: z.unknown(),
  prompt: z.string(),
  trigger: TriggerInfoV1Schema,
});

/**
 * One model turn: what was asked (model, tools offered, message count), what came
 * back, and the outcome the loop took.
 * Example: `{"sessionId":"ses_a1","sk":"CP#000001#model","schemaVersion":1,"createdAt":"…","kind":"model","step":1,"provider":"scripted","request":{"modelId":"scripted/demo","tools":["echo"],"messageCount":1},"response":{…},"outcome":"tool_calls","calls":[…],"inlineResults":[],"durationMs":12}`
 */
export const ModelCheckpointV1Schema = z.object({
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
export const ApprovalCheckpointV1Schema = z.object({
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
export const ToolCheckpointV1Schema = z.object({
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
export const CheckpointRecordV1Schema = z.discriminatedUnion('kind', [
  SessionRecordV1Schema,
  InputCheckpointV1Schema,
  ModelCheckpointV1Schema,
  ApprovalCheckpointV1Schema,
  ToolCheckpointV1Schema,
]);

export type CheckpointRecordV1 = z.infer<typeof CheckpointRecordV1Schema>;
