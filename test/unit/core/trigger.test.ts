import { describe, expect, it } from 'vitest';
import { SESSION_ID_PATTERN } from '../../../lambdas/core/constants';
import { SessionIdSchema } from '../../../lambdas/core/contracts/loop';
import { approvalIdFor, sessionIdFor } from '../../../lambdas/core/ids';
import { parseTrigger, type ApiTrigger, type EventBridgeEnvelope } from '../../../lambdas/core/trigger';
import guardDutyEvent from '../../../examples/ssh-brute-force/events/guardduty-ssh-brute-force.json';

const AGENT = 'ssh-investigator';
const EVENT: EventBridgeEnvelope = guardDutyEvent;

describe('parseTrigger', () => {
  it('recognises an EventBridge event: session from the event id, input from detail, info from the envelope', () => {
    const parsed = parseTrigger(AGENT, EVENT);
    expect(parsed).toEqual({
      ok: true,
      sessionId: sessionIdFor(AGENT, '7b3e6a1c-2f4d-4c8e-9a51-0d6e2b9f4c37'),
      input: EVENT.detail,
      info: {
        source: 'eventbridge',
        dedupeKey: '7b3e6a1c-2f4d-4c8e-9a51-0d6e2b9f4c37',
        detailType: 'GuardDuty Finding',
        eventSource: 'aws.guardduty',
        time: '2024-12-10T11:10:06Z',
      },
    });
  });

  it('maps a redelivered event to the same session, and another agent to another session', () => {
    const first = parseTrigger(AGENT, EVENT);
    const again = parseTrigger(AGENT, structuredClone(EVENT));
    const other = parseTrigger('other-agent', EVENT);
    expect(first.ok && again.ok && other.ok).toBe(true);
    if (!first.ok || !again.ok || !other.ok) return;
    expect(again.sessionId).toBe(first.sessionId);
    expect(other.sessionId).not.toBe(first.sessionId);
  });

  it('recognises an API trigger: its session id and input as given, the idempotency key as dedupe key', () => {
    const trigger: ApiTrigger = { source: 'api', sessionId: sessionIdFor(AGENT, 'alert-42'), idempotencyKey: 'alert-42', input: { question: 'why?' } };
    expect(parseTrigger(AGENT, trigger)).toEqual({
      ok: true,
      sessionId: trigger.sessionId,
      input: { question: 'why?' },
      info: { source: 'api', dedupeKey: 'alert-42' },
    });
  });

  it.each([
    ['an empty object', {}],
    ['null', null],
    ['a string', 'hello'],
    ['an event without an id', { ...EVENT, id: '' }],
    ['an event without detail-type', (({ 'detail-type': _omitted, ...rest }) => rest)(EVENT)],
    ['an API trigger whose session id is not an execution name', { source: 'api', sessionId: 'has spaces', idempotencyKey: 'k', input: {} }],
    ['an API trigger without an idempotency key', { source: 'api', sessionId: 'ses_1', input: {} }],
  ])('fails when the input is %s', (_what, raw) => {
    const parsed = parseTrigger(AGENT, raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(/neither an EventBridge event .* nor an API trigger/);
  });
});

describe('sessionIdFor', () => {
  it('is deterministic', () => {
    expect(sessionIdFor(AGENT, 'key-1')).toBe(sessionIdFor(AGENT, 'key-1'));
  });

  it('differs per agent and per key', () => {
    const ids = new Set([sessionIdFor(AGENT, 'key-1'), sessionIdFor(AGENT, 'key-2'), sessionIdFor('other', 'key-1'), sessionIdFor('other', 'key-2')]);
    expect(ids.size).toBe(4);
  });

  it('is ses_ and 32 hex digits, a valid execution name and session id', () => {
    const id = sessionIdFor(AGENT, '7b3e6a1c-2f4d-4c8e-9a51-0d6e2b9f4c37');
    expect(id).toMatch(/^ses_[0-9a-f]{32}$/);
    expect(id).toMatch(SESSION_ID_PATTERN);
    expect(SessionIdSchema.safeParse(id).success).toBe(true);
  });
});

describe('approvalIdFor', () => {
  const session = sessionIdFor(AGENT, 'key-1');

  it('is deterministic, apv_ and 24 hex digits', () => {
    expect(approvalIdFor(session, 3, 'toolu_06')).toBe(approvalIdFor(session, 3, 'toolu_06'));
    expect(approvalIdFor(session, 3, 'toolu_06')).toMatch(/^apv_[0-9a-f]{24}$/);
  });

  it('differs per session, step and call', () => {
    const ids = new Set([
      approvalIdFor(session, 3, 'toolu_06'),
      approvalIdFor(sessionIdFor(AGENT, 'key-2'), 3, 'toolu_06'),
      approvalIdFor(session, 4, 'toolu_06'),
      approvalIdFor(session, 3, 'toolu_07'),
    ]);
    expect(ids.size).toBe(4);
  });
});
