/**
 * The HTTP API's request and response bodies (API Gateway REST, Lambda proxy).
 *
 * | method and path                       | body                          | answer |
 * |---------------------------------------|-------------------------------|--------|
 * | POST /agents/{agent}/runs             | {@link StartRunRequestSchema}  | 202 {@link StartRunResponse} |
 * | GET  /runs/{sessionId}                | -                             | 200 {@link RunStatus} |
 * | GET  /runs/{sessionId}/events         | -                             | 200 `{events: EventLogRecord[]}` |
 * | POST /approvals/{approvalId}          | {@link DecideApprovalRequestSchema} | 200 `{approvalId, status}` |
 */
import { z } from 'zod';

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

/** A run's status. Example: `{"sessionId":"ses_a1","agent":"ssh-investigator","status":"RUNNING","executionArn":"arn:…","step":3,"createdAt":"…","updatedAt":"…","pendingApprovals":[…]}` */
export const RunStatusSchema = z.object({
  sessionId: z.string(),
  agent: z.string(),
  status: z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']),
  executionArn: z.string(),
  step: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
  output: z.unknown().optional(),
  failure: z.object({ error: z.string(), cause: z.string(), failedState: z.string() }).optional(),
  pendingApprovals: z.array(PendingApprovalSchema),
});

export type StartRunRequest = z.infer<typeof StartRunRequestSchema>;
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
