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
 * The idempotency key of a tool call: `tc_` + 32 hex digits of SHA-256(session, step,
 * call), and of the branch after a rollback (branch 0 keeps the walking skeleton's keys).
 * The same on every retry and resume of the call; tools with side effects key them on it.
 */
export function toolCallIdempotencyKey(sessionId: string, step: number, callId: string, branch = 0): string {
  const parts = branch === 0 ? [sessionId, String(step), callId] : [sessionId, String(step), callId, `branch-${branch}`];
  return `tc_${digest('tool-call', ...parts).slice(0, 32)}`;
}

/**
 * The idempotency key of a model call: `mc_` + 32 hex digits of SHA-256(session, step, branch).
 * The same on every retry and resume of the turn.
 */
export function modelCallIdempotencyKey(sessionId: string, step: number, branch = 0): string {
  return `mc_${digest('model-call', sessionId, String(step), `branch-${branch}`).slice(0, 32)}`;
}

/**
 * The idempotency key of the model call that summarises a tool result (the `summarise`
 * route): `ms_` + 32 hex digits of SHA-256(session, the result's sort key, branch).
 */
export function summaryIdempotencyKey(sessionId: string, toolSk: string, branch = 0): string {
  return `ms_${digest('model-summary', sessionId, toolSk, `branch-${branch}`).slice(0, 32)}`;
}
