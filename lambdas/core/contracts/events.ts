/**
 * The event log and the dead-letter envelope.
 *
 * The event log table (partition key `sessionId`, sort key `seq`) is appended to
 * by the projector from the checkpoint table's stream; rows are never updated.
 * `seq` is the stream record's sequence number, zero-padded to 40 digits, so rows
 * sort in stream order within a session.
 */
import { z } from 'zod';
import { EVENT_SCHEMA_VERSION } from '../constants';
import { ABANDONED_SK_PREFIX, NOTICE_NAMES } from './checkpoint';

/**
 * Event types, one per kind of checkpoint change. Governance: `BudgetThresholdReached` and
 * `ToolBudgetExceeded` (notices), `BudgetExhausted` (a pause's snapshot), `SessionPaused`,
 * `SessionResumed` (a raise), `SessionStopped`. Routing (notices): `ModelFallback` (a
 * fallback answered), `CircuitOpened`, `CircuitHalfOpened`, `CircuitClosed`. A rollback shows as
 * `SessionRolledBack`, then one `CheckpointAbandoned` (the record, moved under
 * `ABANDONED#<branch>#`) and one `RecordRemoved` (its live key) per later checkpoint.
 */
export const EventTypeSchema = z.enum([
  'SessionStarted',
  'SessionUpdated',
  'SessionSucceeded',
  'SessionFailed',
  'InputAccepted',
  'ModelTurnCompleted',
  'ApprovalRequested',
  'ToolCallCompleted',
  'SessionCancelled',
  'ExecutionStarted',
  'ToolCallIntended',
  'SessionRolledBack',
  'CheckpointAbandoned',
  'RecordRemoved',
  'BudgetExhausted',
  'SessionPaused',
  'SessionResumed',
  'SessionStopped',
  ...NOTICE_NAMES,
]);

/** Notices logged as an event type of their own name. */
const NOTICE_EVENT_TYPES: ReadonlySet<EventType> = new Set<EventType>(NOTICE_NAMES);

/**
 * Event types the projector also publishes on the runtime's bus (source
 * `agent-runtime`, detail-type the event type, detail {@link publishedDetail}):
 * every notice, and the governance events operators act on. Delivery is at least once; `eventId` tells repeats apart.
 */
export const PUBLISHED_EVENT_TYPES: ReadonlySet<EventType> = new Set<EventType>([...NOTICE_NAMES, 'BudgetExhausted', 'SessionResumed', 'SessionStopped']);

/**
 * The detail of a published event: the session, the agent, the step, the event id
 * and what the record says (a notice's `detail`; a pause's budget standing; a head's status).
 * Example: `{"eventId":"4f1c…","sessionId":"ses_a1","agent":"ssh-investigator","type":"BudgetThresholdReached","step":3,"budget":"costUsd","used":0.041,"limit":0.05}`
 */
export function publishedDetail(row: EventLogRecord): Record<string, unknown> {
  const r = row.record;
  const base = { eventId: row.eventId, sessionId: row.sessionId, agent: r.agent, type: row.type, step: r.step, at: row.at };
  // The row's own fields win over a notice's detail (a circuit change's `at` is in its detail as `at` too).
  if (r.kind === 'notice') return { ...(r.detail as Record<string, unknown>), ...base };
  if (r.kind === 'pause') return { ...base, budget: r.budget, used: r.used, limit: r.limit, budgets: r.budgets, approvalId: r.approvalId, expiresAt: r.expiresAt };
  return { ...base, status: r.status, budgets: r.budgets, stop: r.stop };
}

/**
 * One row of the event log.
 * Example: `{"sessionId":"ses_a1","seq":"000...0123","schemaVersion":1,"type":"ToolCallCompleted","at":"2026-11-21T09:00:00.000Z","eventId":"4f1c...","change":"INSERT","checkpointKey":"CP#000001#tool#call_1","record":{...}}`
 */
export const EventLogRecordSchema = z.object({
  sessionId: z.string(),
  seq: z.string().regex(/^\d{40}$/),
  schemaVersion: z.literal(EVENT_SCHEMA_VERSION),
  type: EventTypeSchema,
  /** When the change happened (the stream record's ApproximateCreationDateTime), ISO 8601. */
  at: z.string(),
  /** The stream record's eventID. */
  eventId: z.string(),
  change: z.enum(['INSERT', 'MODIFY', 'REMOVE']),
  checkpointKey: z.string(),
  /** The checkpoint record after the change (before it, for REMOVE). */
  record: z.record(z.string(), z.unknown()),
});

/**
 * The one envelope every failed run sends to the dead-letter queue.
 * Example: `{"schemaVersion":1,"agent":"ssh-investigator","sessionId":"ses_a1","executionArn":"arn:aws:states:...","failedState":"RunTools","error":"States.TaskFailed","cause":"...","time":"2026-11-21T09:00:00.000Z"}`
 */
export const DeadLetterEnvelopeSchema = z.object({
  schemaVersion: z.literal(EVENT_SCHEMA_VERSION),
  agent: z.string(),
  sessionId: z.string(),
  executionArn: z.string(),
  failedState: z.string(),
  error: z.string(),
  cause: z.string(),
  /** ISO 8601. */
  time: z.string(),
});

/** The envelope of a failed run, stamped with the schema version. @param time ISO 8601 */
export function deadLetterEnvelope(props: {
  agent: string;
  sessionId: string;
  executionArn: string;
  failedState: string;
  error: string;
  cause: string;
  time: string;
}): DeadLetterEnvelope {
  return { schemaVersion: EVENT_SCHEMA_VERSION, ...props };
}

export type EventType = z.infer<typeof EventTypeSchema>;
export type EventLogRecord = z.infer<typeof EventLogRecordSchema>;
export type DeadLetterEnvelope = z.infer<typeof DeadLetterEnvelopeSchema>;

/** A stream record reduced to what the projector needs (images already unmarshalled). */
export interface CheckpointChange {
  readonly eventId: string;
  readonly eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  readonly sequenceNumber: string;
  /** Epoch seconds (DynamoDB Streams `ApproximateCreationDateTime`). */
  readonly approximateCreationEpochSeconds: number;
  readonly newImage?: Record<string, unknown>;
  readonly oldImage?: Record<string, unknown>;
}

/**
 * Maps a checkpoint change to its event log row.
 * @throws Error when the record has no `sessionId`/`sk` or the sequence number is not decimal digits.
 */
export function toEventLogRecord(change: CheckpointChange): EventLogRecord {
  const record = change.newImage ?? change.oldImage;
  if (!record || typeof record.sessionId !== 'string' || typeof record.sk !== 'string') {
    throw new Error(`stream record ${change.eventId} has no sessionId/sk image`);
  }
  if (!/^\d{1,40}$/.test(change.sequenceNumber)) throw new Error(`stream record ${change.eventId}: sequence number "${change.sequenceNumber}" is not decimal`);
  return {
    sessionId: record.sessionId,
    seq: change.sequenceNumber.padStart(40, '0'),
    schemaVersion: EVENT_SCHEMA_VERSION,
    type: eventType(change, record),
    at: new Date(change.approximateCreationEpochSeconds * 1000).toISOString(),
    eventId: change.eventId,
    change: change.eventName,
    checkpointKey: record.sk,
    record,
  };
}

function eventType(change: CheckpointChange, record: Record<string, unknown>): EventType {
  if (change.eventName === 'REMOVE') return 'RecordRemoved';
  if (typeof record.sk === 'string' && record.sk.startsWith(ABANDONED_SK_PREFIX)) return 'CheckpointAbandoned';
  switch (record.kind) {
    case 'session': {
      // A run that fails before Prepare creates its session inserts the head already FAILED.
      if (change.eventName === 'INSERT') return record.status === 'FAILED' ? 'SessionFailed' : 'SessionStarted';
      const before = change.oldImage?.status;
      if (record.status !== before && record.status === 'SUCCEEDED') return 'SessionSucceeded';
      if (record.status !== before && record.status === 'FAILED') return 'SessionFailed';
      if (record.status !== before && record.status === 'CANCELLED') return 'SessionCancelled';
      if (record.status !== before && record.status === 'PAUSED_BUDGET') return 'SessionPaused';
      if (record.status !== before && record.status === 'STOPPED') return 'SessionStopped';
      if (record.status !== before && before === 'PAUSED_BUDGET' && record.status === 'RUNNING') return 'SessionResumed';
      return 'SessionUpdated';
    }
    case 'input':
      return 'InputAccepted';
    case 'model':
      return 'ModelTurnCompleted';
    case 'approval':
      return 'ApprovalRequested';
    case 'tool':
      return 'ToolCallCompleted';
    case 'intent':
      return 'ToolCallIntended';
    case 'execution':
      return 'ExecutionStarted';
    case 'rollback':
      return 'SessionRolledBack';
    case 'notice':
      return NOTICE_EVENT_TYPES.has(record.notice as EventType) ? (record.notice as EventType) : 'BudgetThresholdReached';
    case 'pause':
      return 'BudgetExhausted';
    default:
      throw new Error(`stream record ${change.eventId}: unknown checkpoint kind ${String(record.kind)}`);
  }
}
