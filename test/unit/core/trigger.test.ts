import { describe, expect, it } from 'vitest';
import { SESSION_ID_PATTERN } from '../../../lambdas/core/constants';
import { SessionIdSchema } from '../../../lambdas/core/contracts/loop';
import { approvalIdFor, modelCallIdempotencyKey, sessionIdFor, toolCallIdempotencyKey } from '../../../lambdas/core/ids';
import { matchTrigger, parseTrigger, type ApiTrigger, type EventBridgeEnvelope } from '../../../lambdas/core/trigger';
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
      // The envelope itself: its trigger's principal and budgets are derived from it.
      event: EVENT,
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
      request: {},
    });
  });

  it("carries an API trigger's principal, budgets and sub-agent depth", () => {
    const principal = { user: 'alice', tenant: 'acme', roles: ['analyst'] };
    const trigger: ApiTrigger = {
      source: 'api',
      sessionId: sessionIdFor(AGENT, 'alert-43'),
      idempotencyKey: 'alert-43',
      input: { question: 'why?' },
      principal,
      budgets: { costUsd: 0.5, steps: 4 },
      depth: 1,
    };
    const parsed = parseTrigger(AGENT, trigger);
    expect(parsed).toMatchObject({ ok: true, request: { principal, budgets: { costUsd: 0.5, steps: 4 }, depth: 1 } });
  });

  it.each([
    ['a principal without a tenant', { principal: { user: 'alice', roles: [] } }],
    ['a budget of zero steps', { budgets: { steps: 0 } }],
    ['an unknown budget', { budgets: { dollars: 3 } }],
    ['a negative depth', { depth: -1 }],
  ])('fails when an API trigger has %s', (_what, change) => {
    const trigger = { source: 'api', sessionId: sessionIdFor(AGENT, 'alert-44'), idempotencyKey: 'alert-44', input: {}, ...change };
    expect(parseTrigger(AGENT, trigger)).toMatchObject({ ok: false });
  });

  it('recognises a continuation: the session it continues, no input or trigger info of its own', () => {
    const sessionId = sessionIdFor(AGENT, 'alert-42');
    const continuation = { sessionId, parentExecutionArn: `arn:aws:states:us-east-1:123456789012:execution:${AGENT}:${sessionId}`, reason: 'continue-as-new', execution: 2 } as const;
    expect(parseTrigger(AGENT, { continuation })).toEqual({ ok: true, sessionId, continuation });
    // The ContinueAsNew state adds Step Functions' own parent link; it is not part of the trigger.
    expect(parseTrigger(AGENT, { continuation, AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: continuation.parentExecutionArn })).toEqual({ ok: true, sessionId, continuation });
  });

  it.each([
    ['an unknown reason', { reason: 'restart' }],
    ['execution 0', { execution: 0 }],
    ['a session id that is not an execution name', { sessionId: 'has spaces' }],
    ['no parent execution', { parentExecutionArn: undefined }],
  ])('fails when a continuation has %s', (_what, change) => {
    const continuation = { sessionId: 'ses_1', parentExecutionArn: 'arn:aws:states:us-east-1:123456789012:execution:a:ses_1', reason: 'resume', execution: 2, ...change };
    expect(parseTrigger(AGENT, { continuation })).toMatchObject({ ok: false });
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
    if (!parsed.ok) expect(parsed.error).toMatch(/neither an EventBridge event .*, an API trigger .* nor a continuation/);
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

describe('toolCallIdempotencyKey', () => {
  const session = sessionIdFor(AGENT, 'key-1');

  it('is tc_ and 32 hex digits, the same on every retry of the call', () => {
    expect(toolCallIdempotencyKey(session, 3, 'toolu_06')).toMatch(/^tc_[0-9a-f]{32}$/);
    expect(toolCallIdempotencyKey(session, 3, 'toolu_06')).toBe(toolCallIdempotencyKey(session, 3, 'toolu_06'));
  });

  it('keeps the keys of branch 0 (a session never rolled back keeps the keys it had before rollbacks existed)', () => {
    expect(toolCallIdempotencyKey(session, 3, 'toolu_06', 0)).toBe(toolCallIdempotencyKey(session, 3, 'toolu_06'));
  });

  it('differs per session, step, call and branch', () => {
    const keys = new Set([
      toolCallIdempotencyKey(session, 3, 'toolu_06'),
      toolCallIdempotencyKey(sessionIdFor(AGENT, 'key-2'), 3, 'toolu_06'),
      toolCallIdempotencyKey(session, 4, 'toolu_06'),
      toolCallIdempotencyKey(session, 3, 'toolu_07'),
      toolCallIdempotencyKey(session, 3, 'toolu_06', 1),
      toolCallIdempotencyKey(session, 3, 'toolu_06', 2),
    ]);
    expect(keys.size).toBe(6);
  });
});

describe('modelCallIdempotencyKey', () => {
  const session = sessionIdFor(AGENT, 'key-1');

  it('is mc_ and 32 hex digits, the same on every retry and resume of the turn (branch 0 by default)', () => {
    expect(modelCallIdempotencyKey(session, 2)).toMatch(/^mc_[0-9a-f]{32}$/);
    expect(modelCallIdempotencyKey(session, 2)).toBe(modelCallIdempotencyKey(session, 2, 0));
  });

  it('differs per session, step and branch, and from every tool call key', () => {
    const keys = new Set([
      modelCallIdempotencyKey(session, 2),
      modelCallIdempotencyKey(sessionIdFor(AGENT, 'key-2'), 2),
      modelCallIdempotencyKey(session, 3),
      modelCallIdempotencyKey(session, 2, 1),
    ]);
    expect(keys.size).toBe(4);
    expect(modelCallIdempotencyKey(session, 2).slice(3)).not.toBe(toolCallIdempotencyKey(session, 2, '').slice(3));
  });
});

describe('matchTrigger', () => {
  const triggers = [
    { name: 'findings', eventPattern: { source: ['aws.guardduty'], detailType: ['GuardDuty Finding'] } },
    { name: 'any-guardduty', eventPattern: { source: ['aws.guardduty'] } },
    { name: 'anything', eventPattern: {} },
  ];

  it('is the first trigger whose source and detail-type lists contain the event\'s', () => {
    expect(matchTrigger(triggers, EVENT)?.name).toBe('findings');
    expect(matchTrigger(triggers, { ...EVENT, 'detail-type': 'GuardDuty Runtime Finding' })?.name).toBe('any-guardduty');
    expect(matchTrigger(triggers, { ...EVENT, source: 'aws.securityhub' })?.name).toBe('anything');
  });

  it('is undefined when no trigger admits the event', () => {
    expect(matchTrigger(triggers.slice(0, 2), { ...EVENT, source: 'aws.securityhub' })).toBeUndefined();
  });
});
