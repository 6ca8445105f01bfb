/**
 * What starts a run: an EventBridge event (the rule's target input is the whole
 * event), or the API (`{source: "api", sessionId, idempotencyKey, input}`); and
 * what continues one (`{continuation: {...}}`: continue-as-new, resume, rollback).
 * Session ids are derived from the trigger, so a trigger delivered twice maps to
 * one session.
 */
import { z } from 'zod';
import type { TriggerInfo } from './contracts/checkpoint';
import { ContinuationSchema, SessionIdSchema } from './contracts/loop';
import { BudgetsSchema } from './budget';
import { sessionIdFor } from './ids';
import { PrincipalSchema } from './policy';

/**
 * An EventBridge event envelope (EventBridge User Guide, "Amazon EventBridge events").
 * Example: `{"version":"0","id":"6a7e8feb-...","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"123456789012","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`
 */
export const EventBridgeEnvelopeSchema = z.object({
  version: z.string(),
  id: z.string().min(1),
  'detail-type': z.string(),
  source: z.string(),
  account: z.string(),
  time: z.string(),
  region: z.string(),
  resources: z.array(z.string()),
  detail: z.unknown(),
});

/** The execution input the API function starts a run with. Example: `{"source":"api","sessionId":"ses_a1","idempotencyKey":"alert-42","input":{…}}` */
export const ApiTriggerSchema = z.object({
  source: z.literal('api'),
  sessionId: SessionIdSchema,
  idempotencyKey: z.string(),
  input: z.unknown(),
  /** Who the run acts for (the request's, or the caller's identity). */
  principal: PrincipalSchema.optional(),
  /** The request's budget overrides. */
  budgets: BudgetsSchema.optional(),
  /** Sub-agent depth. @default 0 */
  depth: z.number().int().nonnegative().optional(),
});

/**
 * The input of a session's continuation execution (continue-as-new, resume,
 * rollback): which session, the execution it takes over from, why, and its number.
 * Example: `{"continuation":{"sessionId":"ses_a1","parentExecutionArn":"arn:…:ses_a1","reason":"resume","execution":2}}`
 */
export const ContinuationTriggerSchema = ContinuationSchema.shape.input;

export type ContinuationTrigger = z.infer<typeof ContinuationTriggerSchema>;
export type EventBridgeEnvelope = z.infer<typeof EventBridgeEnvelopeSchema>;
export type ApiTrigger = z.infer<typeof ApiTriggerSchema>;

/** A trigger, recognised: a new run (EventBridge, API), or the continuation of a session. */
export type ParsedTrigger =
  | {
      ok: true;
      sessionId: string;
      input: unknown;
      info: TriggerInfo;
      continuation?: undefined;
      /** The API request's principal, budgets and depth. */
      request?: Pick<ApiTrigger, 'principal' | 'budgets' | 'depth'>;
      /** The EventBridge event (its trigger's principal and budgets are derived from it). */
      event?: EventBridgeEnvelope;
    }
  | { ok: true; sessionId: string; continuation: ContinuationTrigger['continuation']; input?: undefined; info?: undefined }
  | { ok: false; error: string };

/**
 * Recognises the execution input of an agent's state machine.
 * @returns `ok: false` with a message when the input is neither an EventBridge event nor an API trigger.
 */
export function parseTrigger(agent: string, raw: unknown): ParsedTrigger {
  const continued = ContinuationTriggerSchema.safeParse(raw);
  if (continued.success) return { ok: true, sessionId: continued.data.continuation.sessionId, continuation: continued.data.continuation };
  const api = ApiTriggerSchema.safeParse(raw);
  if (api.success) {
    return {
      ok: true,
      sessionId: api.data.sessionId,
      input: api.data.input,
      info: { source: 'api', dedupeKey: api.data.idempotencyKey },
      request: { principal: api.data.principal, budgets: api.data.budgets, depth: api.data.depth },
    };
  }
  const event = EventBridgeEnvelopeSchema.safeParse(raw);
  if (event.success) {
    return {
      ok: true,
      sessionId: sessionIdFor(agent, event.data.id),
      input: event.data.detail,
      info: {
        source: 'eventbridge',
        dedupeKey: event.data.id,
        detailType: event.data['detail-type'],
        eventSource: event.data.source,
        time: event.data.time,
      },
      event: event.data,
    };
  }
  return {
    ok: false,
    error:
      'execution input is neither an EventBridge event (version, id, detail-type, source, detail ...), an API trigger ({source: "api", sessionId, idempotencyKey, input}) nor a continuation ({continuation: {sessionId, parentExecutionArn, reason, execution}})',
  };
}

/**
 * The trigger of `triggers` that admits an EventBridge event: the first whose
 * `source` and `detailType` lists (when given) contain the event's. Detail patterns
 * are left to the rule that delivered it.
 */
export function matchTrigger<T extends { eventPattern: { source?: readonly string[]; detailType?: readonly string[] } }>(
  triggers: readonly T[],
  event: EventBridgeEnvelope,
): T | undefined {
  return triggers.find(
    (t) => (!t.eventPattern.source || t.eventPattern.source.includes(event.source)) && (!t.eventPattern.detailType || t.eventPattern.detailType.includes(event['detail-type'])),
  );
}
