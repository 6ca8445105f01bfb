/** Deterministic ids, so that a redelivered trigger or a retried step finds its earlier record. */
import { createHash } from 'node:crypto';

const digest = (...parts: string[]): string => createHash('sha256').update(parts.join('\n')).digest('hex');

/** The session id for a trigger of an agent: `ses_` + 32 hex digits of SHA-256(agent, dedupe key). */
export function sessionIdFor(agent: string, dedupeKey: string): string {
  return `ses_${digest(agent, dedupeKey).slice(0, 32)}`;
}

/** The approval id of a tool call: `apv_` + 24 hex digits of SHA-256(session, step, call). */
export function approvalIdFor(sessionId: string, step: number, callId: string): string {
  return `apv_${digest(sessionId, String(step), callId).slice(0, 24)}`;
}

/**
 * The idempotency key of a tool call: `tc_` + 32 hex digits of SHA-256(session, step, call).
 * The same on every retry of the call; tools with side effects key them on it.
 */
export function toolCallIdempotencyKey(sessionId: string, step: number, callId: string): string {
  return `tc_${digest('tool-call', sessionId, String(step), callId).slice(0, 32)}`;
}
