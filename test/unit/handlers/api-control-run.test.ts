import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { StartedExecution } from '../../../lambdas/adapters/executions';
import { SessionControl, type ControlApprovalStore, type ControlSessionStore, type ExecutionControl } from '../../../lambdas/adapters/session-control';
import type { ApprovalRecord, PendingApproval } from '../../../lambdas/core/contracts/api';
import { checkpointKey, type CheckpointRecord, type RollbackRecord, type SessionRecord } from '../../../lambdas/core/contracts/checkpoint';
import { createControlHandler } from '../../../lambdas/handlers/api-control-run';
import { SESSION_ID, sessionRecord } from '../support/records';

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:unit-agent';
const execArn = (name: string): string => `arn:aws:states:us-east-1:123456789012:execution:unit-agent:${name}`;
const EXEC_2 = execArn(`${SESSION_ID}-x2`);
const EXEC_3 = execArn(`${SESSION_ID}-x3`);
const EXEC_4 = execArn(`${SESSION_ID}-x4`);
const NOW = new Date('2024-12-10T12:00:00.000Z');
const FAILED_AT = '2024-12-10T11:30:00.000Z';
/** A failure the execution-status backstop records: the execution ended outside the loop's Catch graph. */
const TIMED_OUT = { error: 'States.Timeout', cause: 'the execution timed out', failedState: 'Execution' };

const CONTEXT = {
  functionName: 'agent-runtime-control-run',
  awsRequestId: '5b1c9f2e-7d7a-4c1b-9f0e-1a2b3c4d5e6f',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

/** The session head: its second execution, branch 0, failed unless told otherwise. */
function head(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return sessionRecord({
    status: 'FAILED',
    executionArn: EXEC_2,
    executions: 2,
    parentExecutionArn: execArn(SESSION_ID),
    createdAt: '2024-12-10T11:00:00.000Z',
    updatedAt: FAILED_AT,
    step: 4,
    failure: { error: 'States.TaskFailed', cause: 'provider 503', failedState: 'ModelTurn' },
    ...overrides,
  });
}

/** Live checkpoints of a session with model turns 1..`turns`, each with one tool call. Only kind, sk and step matter here. */
function chain(turns: number): CheckpointRecord[] {
  const records: CheckpointRecord[] = [{ sessionId: SESSION_ID, sk: checkpointKey.input(), kind: 'input', step: 0 } as CheckpointRecord];
  for (let step = 1; step <= turns; step++) {
    records.push({ sessionId: SESSION_ID, sk: checkpointKey.model(step), kind: 'model', step, outcome: 'tool_calls' } as CheckpointRecord);
    records.push({ sessionId: SESSION_ID, sk: checkpointKey.tool(step, `c${step}`), kind: 'tool', step } as CheckpointRecord);
  }
  return records;
}

const pending = (approvalId: string, requestedAt: string): PendingApproval => ({
  approvalId,
  tool: 'block_address',
  input: { address: '203.0.113.7' },
  step: 3,
  requestedAt,
  expiresAt: '2024-12-11T00:00:00.000Z',
});

type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';

/**
 * Strict fakes of the checkpoint store, the approval store and Step Functions,
 * with the conditions of the real ones. Every call is logged in order (`calls`);
 * tests compare the whole log, so an unexpected call fails them. An execution is
 * redrivable when it is marked so (`redrivable: true`, Step Functions' `redriveStatus`
 * REDRIVABLE) and has ended; `redriveFails` makes RedriveExecution throw anyway.
 */
class World {
  readonly calls: string[] = [];
  /** Runs just before a conditional write of the session store: a concurrent change. */
  meanwhile: () => void = () => undefined;
  readonly rollbacks: Array<Omit<RollbackRecord, 'schemaVersion' | 'createdAt' | 'sk' | 'kind' | 'sessionId'>> = [];
  readonly executions = new Map<
    string,
    { status: ExecutionStatus; input: string; stoppedWith?: { error: string; cause: string }; redrivable?: boolean; redriveCount?: number }
  >();
  readonly expired: string[] = [];
  /** Task tokens of the waits still waiting, by approval id (a budget pause's wait, a tool's approval). */
  readonly tokens = new Map<string, string>();
  /** Tokens whose task no longer waits (it timed out or its execution ended): SendTaskSuccess fails. */
  readonly gone = new Set<string>();
  /** SendTaskSuccess calls that reached a waiting task, in order. */
  readonly completed: Array<{ taskToken: string; output: unknown }> = [];
  /** Decisions recorded on approvals, in order. */
  readonly decisions: Array<{ approvalId: string; status: string; reason?: string; decidedBy?: string }> = [];
  /** Approvals the session index (listPending) does not show yet, though the table (get) has them: the index is eventually consistent. */
  readonly unindexed = new Set<string>();
  /** Approvals the table holds decided while the index still shows them pending (an earlier request answered them). */
  readonly answeredInTable = new Map<string, 'approved' | 'rejected' | 'expired'>();
  /** What RedriveExecution throws (a race with the 14-day limit, an emulator without the API…); undefined: it succeeds when redrivable. */
  redriveFails: Error | undefined = undefined;

  constructor(
    public session: SessionRecord | undefined,
    public records: CheckpointRecord[] = chain(4),
    public approvals: PendingApproval[] = [],
  ) {}

  readonly sessions: ControlSessionStore = {
    getSession: async (sessionId) => {
      this.calls.push('getSession');
      return sessionId === this.session?.sessionId ? structuredClone(this.session) : undefined;
    },
    listCheckpoints: async () => {
      this.calls.push('listCheckpoints');
      return structuredClone(this.records);
    },
    cancel: async (sessionId, cancellation) => {
      this.calls.push(`cancel ${JSON.stringify(cancellation)}`);
      this.meanwhile();
      const before = this.session;
      if (!before || before.sessionId !== sessionId || (before.status !== 'RUNNING' && before.status !== 'PAUSED_BUDGET')) return undefined;
      this.session = { ...before, status: 'CANCELLED', cancellation: { ...cancellation, at: NOW.toISOString() } };
      return structuredClone(before);
    },
    rollBack: async (session, rollback) => {
      this.calls.push(`rollBack branch ${rollback.branch}`);
      this.meanwhile();
      const now = this.session;
      if (!now || now.executionArn !== session.executionArn || now.branch !== rollback.branch - 1) return false;
      this.rollbacks.push(rollback);
      this.session = { ...now, branch: rollback.branch, step: rollback.toStep };
      this.records = this.records.filter((r) => !rollback.abandoned.includes(r.sk));
      return true;
    },
    markFailed: async (props, onlyIfRunning = false) => {
      this.calls.push(`markFailed ${props.failure.error} onlyIfRunning=${String(onlyIfRunning)}`);
      this.meanwhile();
      const now = this.session;
      if (!now || now.executionArn !== props.executionArn || (onlyIfRunning && now.status !== 'RUNNING')) return false;
      this.session = { ...now, status: 'FAILED', failure: props.failure };
      return true;
    },
    setBudgets: async (read, budgets) => {
      this.calls.push(`setBudgets ${JSON.stringify(budgets)}`);
      this.meanwhile();
      const now = this.session;
      if (!now || now.sessionId !== read.sessionId || now.status !== read.status || (now.status !== 'RUNNING' && now.status !== 'PAUSED_BUDGET')) return undefined;
      if (now.status === 'PAUSED_BUDGET' && now.pause?.approvalId !== read.pause?.approvalId) return undefined;
      if (now.status === 'PAUSED_BUDGET' && now.pause) {
        const { pause, ...rest } = now;
        this.session = { ...rest, budgets, status: 'RUNNING', pausedSeconds: (now.pausedSeconds ?? 0) + (NOW.getTime() - Date.parse(pause.at)) / 1000 };
      } else {
        this.session = { ...now, budgets };
      }
      return structuredClone(read);
    },
    stop: async (read, stop) => {
      this.calls.push(`stopSession ${JSON.stringify(stop)}`);
      this.meanwhile();
      const now = this.session;
      if (!now || now.status !== 'PAUSED_BUDGET' || !read.pause || now.pause?.approvalId !== read.pause.approvalId) return undefined;
      this.session = { ...now, status: 'STOPPED', stop: { ...stop, at: NOW.toISOString() } };
      return structuredClone(read);
    },
    reopen: async (sessionId, executionArn) => {
      this.calls.push(`reopen ${executionArn}`);
      this.meanwhile();
      const now = this.session;
      if (!now || now.sessionId !== sessionId || now.executionArn !== executionArn || now.status !== 'FAILED') return undefined;
      const { failure, ...rest } = now;
      this.session = { ...rest, status: 'RUNNING' };
      return failure;
    },
  };

  readonly approvalStore: ControlApprovalStore = {
    listPending: async (sessionId) => {
      this.calls.push('listPending');
      return sessionId === SESSION_ID ? structuredClone(this.approvals.filter((a) => !this.unindexed.has(a.approvalId))) : [];
    },
    markExpired: async (approvalId) => {
      this.calls.push(`markExpired ${approvalId}`);
      this.expired.push(approvalId);
    },
    get: async (approvalId) => {
      this.calls.push(`get ${approvalId}`);
      const pendingOne = this.approvals.find((a) => a.approvalId === approvalId);
      const taskToken = this.tokens.get(approvalId);
      if (!pendingOne || !taskToken) return undefined;
      const status = this.answeredInTable.get(approvalId) ?? 'pending';
      return { ...pendingOne, sessionId: SESSION_ID, agent: 'unit-agent', callId: `call-${approvalId}`, taskToken, status } satisfies ApprovalRecord;
    },
    decide: async (approvalId, decision) => {
      this.calls.push(`decide ${approvalId} ${decision.status}`);
      const index = this.approvals.findIndex((a) => a.approvalId === approvalId);
      if (index < 0) return undefined;
      // Decided: no longer pending.
      const [decided] = this.approvals.splice(index, 1);
      this.decisions.push({ approvalId, ...decision });
      return decided && { ...decided, sessionId: SESSION_ID, agent: 'unit-agent', callId: `call-${approvalId}`, taskToken: this.tokens.get(approvalId) ?? '', ...decision };
    },
    markDelivered: async (approvalId) => {
      this.calls.push(`markDelivered ${approvalId}`);
    },
  };

  /** SendTaskSuccess: true when the task still waited. */
  readonly completeTask = async (taskToken: string, output: unknown): Promise<boolean> => {
    this.calls.push(`complete ${taskToken}`);
    if (this.gone.has(taskToken)) return false;
    this.completed.push({ taskToken, output });
    this.gone.add(taskToken);
    return true;
  };

  /** Step Functions, with RedriveExecution (a test may replace it by a control without redrive). */
  sfn: ExecutionControl = {
    start: async (stateMachineArn, name, input, requestedAt): Promise<StartedExecution> => {
      this.calls.push(`start ${name}`);
      expect(stateMachineArn).toBe(STATE_MACHINE);
      expect(requestedAt).toBe(NOW.getTime());
      const executionArn = execArn(name);
      const existing = this.executions.get(executionArn);
      if (existing) return { started: false, executionArn, reason: existing.input === input ? 'same-input' : 'other-input' };
      this.executions.set(executionArn, { status: 'RUNNING', input });
      return { started: true, executionArn };
    },
    status: async (executionArn) => {
      this.calls.push(`status ${executionArn}`);
      return this.executions.get(executionArn)?.status;
    },
    stop: async (executionArn, error, cause) => {
      this.calls.push(`stop ${executionArn} ${error}`);
      const execution = this.executions.get(executionArn);
      if (!execution) return false;
      Object.assign(execution, { status: 'ABORTED', stoppedWith: { error, cause } });
      return true;
    },
    redrivable: async (executionArn) => {
      this.calls.push(`redrivable ${executionArn}`);
      const execution = this.executions.get(executionArn);
      return execution?.redrivable === true && execution.status !== 'RUNNING' && execution.status !== 'SUCCEEDED';
    },
    redrive: async (executionArn) => {
      this.calls.push(`redrive ${executionArn}`);
      if (this.redriveFails) throw this.redriveFails;
      const execution = this.executions.get(executionArn);
      if (!execution?.redrivable || execution.status === 'RUNNING' || execution.status === 'SUCCEEDED') {
        throw Object.assign(new Error(`execution ${executionArn} is not redrivable`), { name: 'ExecutionNotRedrivable' });
      }
      Object.assign(execution, { status: 'RUNNING', redriveCount: (execution.redriveCount ?? 0) + 1 });
    },
  };

  handler(): (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult> {
    const control = new SessionControl({ sessions: this.sessions, approvals: this.approvalStore, executions: this.sfn, now: () => NOW, completeTask: this.completeTask });
    const handler = createControlHandler(() => control);
    return (event) => handler(event, CONTEXT);
  }

  /** Sends POST /runs/{sessionId}/{action} with `body` (an object, or raw text), and parses the answer. */
  async post(action: string, body?: unknown, sessionId = SESSION_ID): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await this.handler()(request(action, body, sessionId));
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  }
}

function request(action: string, body: unknown, sessionId: string): APIGatewayProxyEvent {
  return {
    resource: `/runs/{sessionId}/${action}`,
    path: `/runs/${sessionId}/${action}`,
    httpMethod: 'POST',
    headers: { 'content-type': 'application/json' },
    pathParameters: { sessionId },
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: { identity: { userArn: 'arn:aws:iam::123456789012:user/alice', caller: 'AIDAEXAMPLE' } },
  } as unknown as APIGatewayProxyEvent;
}

const continuation = (reason: string, execution: number, parent: string): string =>
  JSON.stringify({ continuation: { sessionId: SESSION_ID, parentExecutionArn: parent, reason, execution } });

describe('POST /runs/{sessionId}/resume', () => {
  it('starts the next execution of the session with a resume continuation, answering 202', async () => {
    const world = new World(head());

    const res = await world.post('resume', { reason: 'provider is back', requestedBy: 'alice' });

    expect(res).toEqual({ status: 202, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: true, method: 'continuation' } });
    expect(world.executions.get(EXEC_3)?.input).toBe(continuation('resume', 3, EXEC_2));
    expect(world.calls).toEqual(['getSession', 'listPending', `start ${SESSION_ID}-x3`]);
  });

  it('accepts a request without a body', async () => {
    const world = new World(head());
    await expect(world.post('resume')).resolves.toMatchObject({ status: 202, body: { execution: 3, created: true, method: 'continuation' } });
  });

  it('answers a repeated request 200 with created: false (the execution exists with the same input)', async () => {
    const world = new World(head());
    await world.post('resume');

    const again = await world.post('resume');

    expect(again).toEqual({ status: 200, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: false, method: 'continuation' } });
    expect(world.executions.size).toBe(1);
  });

  it('fails when the next execution exists with other input, answering 409 ExecutionConflict', async () => {
    const world = new World(head());
    world.executions.set(EXEC_3, { status: 'RUNNING', input: continuation('continue-as-new', 3, EXEC_2) });

    const res = await world.post('resume');

    expect(res).toMatchObject({ status: 409, body: { error: 'ExecutionConflict' } });
    expect(String(res.body.message)).toContain(`${SESSION_ID}-x3`);
  });

  it('expires the approvals of the failed execution only, before starting the next one', async () => {
    const world = new World(head(), chain(4), [pending('apv_old', '2024-12-10T11:20:00.000Z'), pending('apv_new', '2024-12-10T11:40:00.000Z')]);

    await world.post('resume');

    expect(world.expired).toEqual(['apv_old']);
    expect(world.calls).toEqual(['getSession', 'listPending', 'markExpired apv_old', `start ${SESSION_ID}-x3`]);
  });

  it.each([
    ['RUNNING', head({ status: 'RUNNING', failure: undefined }), 'only FAILED sessions can be resumed'],
    ['SUCCEEDED', head({ status: 'SUCCEEDED', failure: undefined }), 'only FAILED sessions can be resumed'],
    ['CANCELLED', head({ status: 'CANCELLED', failure: undefined }), 'only FAILED sessions can be resumed'],
    ['FAILED with OutputValidationFailed', head({ failure: { error: 'OutputValidationFailed', cause: 'x', failedState: 'Route' } }), 'roll back to an earlier step instead'],
  ])('fails when the session is %s, answering 409 NotResumable and starting nothing', async (_name, session, why) => {
    const world = new World(session);

    const res = await world.post('resume');

    expect(res).toMatchObject({ status: 409, body: { error: 'NotResumable' } });
    expect(String(res.body.message)).toContain(why);
    expect(world.calls).toEqual(['getSession']);
  });

  it('fails when the session is unknown, answering 404', async () => {
    const world = new World(head());
    await expect(world.post('resume', {}, 'ses_unknown')).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
    expect(world.calls).toEqual(['getSession']);
  });

  it('fails when the session id cannot be one, answering 404 without reading the store', async () => {
    const world = new World(head());
    await expect(world.post('resume', {}, 'no such/session')).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
    expect(world.calls).toEqual([]);
  });

  it('fails when the body is not JSON or a field is wrong, answering 400 naming the field', async () => {
    const world = new World(head());
    await expect(world.post('resume', '{"reason":')).resolves.toMatchObject({ status: 400, body: { error: 'InvalidRequest', message: 'body is not valid JSON' } });
    const long = await world.post('resume', { reason: 'x'.repeat(1001) });
    expect(long).toMatchObject({ status: 400, body: { error: 'InvalidRequest', issues: [expect.stringMatching(/^reason: /)] } });
    expect(world.calls).toEqual([]);
  });
});

describe('POST /runs/{sessionId}/resume by redrive', () => {
  /** A session whose execution ended outside the loop (the backstop recorded it), Step Functions offering to redrive it. */
  const redrivableWorld = (failure: SessionRecord['failure'] = TIMED_OUT): World => {
    const world = new World(head({ failure }));
    world.executions.set(EXEC_2, { status: 'TIMED_OUT', input: '{}', redrivable: true });
    return world;
  };

  it('reopens the session for its own execution and redrives that execution, answering 202 with method redrive and starting no new execution', async () => {
    const world = redrivableWorld();

    const res = await world.post('resume', { reason: 'timed out waiting on the provider', requestedBy: 'alice' });

    expect(res).toEqual({ status: 202, body: { sessionId: SESSION_ID, executionArn: EXEC_2, execution: 2, created: true, method: 'redrive' } });
    expect(world.session).toMatchObject({ status: 'RUNNING', executionArn: EXEC_2, executions: 2 });
    expect(world.session?.failure).toBeUndefined();
    expect(world.executions.get(EXEC_2)).toMatchObject({ status: 'RUNNING', redriveCount: 1 });
    expect(world.executions.has(EXEC_3)).toBe(false);
    expect(world.calls).toEqual(['getSession', 'listPending', `redrivable ${EXEC_2}`, `reopen ${EXEC_2}`, `redrive ${EXEC_2}`]);
  });

  it('expires the approvals of the failed execution before redriving it', async () => {
    const world = redrivableWorld();
    world.approvals.push(pending('apv_old', '2024-12-10T11:20:00.000Z'));

    await world.post('resume');

    expect(world.expired).toEqual(['apv_old']);
    expect(world.calls.slice(0, 3)).toEqual(['getSession', 'listPending', 'markExpired apv_old']);
  });

  it('fails the session again with the failure it had and resumes with a continuation when the redrive is refused', async () => {
    const world = redrivableWorld();
    world.redriveFails = Object.assign(new Error('Execution is not redrivable'), { name: 'ExecutionNotRedrivable' });

    const res = await world.post('resume');

    expect(res).toEqual({ status: 202, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: true, method: 'continuation' } });
    expect(world.executions.get(EXEC_3)?.input).toBe(continuation('resume', 3, EXEC_2));
    expect(world.calls).toEqual([
      'getSession',
      'listPending',
      `redrivable ${EXEC_2}`,
      `reopen ${EXEC_2}`,
      `redrive ${EXEC_2}`,
      `markFailed ${TIMED_OUT.error} onlyIfRunning=true`,
      `start ${SESSION_ID}-x3`,
    ]);
    // FAILED again under its own execution, with the same failure, so that the continuation can take it over.
    expect(world.session).toMatchObject({ status: 'FAILED', executionArn: EXEC_2, failure: TIMED_OUT });
  });

  it('redrives nothing when the execution is not redrivable (redriveStatus NOT_REDRIVABLE: older than 14 days, or succeeded), resuming with a continuation', async () => {
    const world = redrivableWorld();
    world.executions.set(EXEC_2, { status: 'TIMED_OUT', input: '{}', redrivable: false });

    const res = await world.post('resume');

    expect(res).toMatchObject({ status: 202, body: { executionArn: EXEC_3, execution: 3, method: 'continuation' } });
    expect(world.calls).toEqual(['getSession', 'listPending', `redrivable ${EXEC_2}`, `start ${SESSION_ID}-x3`]);
    expect(world.session).toMatchObject({ status: 'FAILED', failure: TIMED_OUT });
  });

  it.each([
    ['RunTools', { error: 'States.TaskFailed', cause: 'tool crashed', failedState: 'RunTools' }],
    ['ModelTurn', { error: 'States.TaskFailed', cause: 'provider 503', failedState: 'ModelTurn' }],
  ])(
    'does not redrive an execution that failed in %s (through the Catch graph, which would redrive only its Fail state), even when Step Functions could',
    async (_state, failure) => {
      const world = redrivableWorld(failure);

      const res = await world.post('resume');

      expect(res).toMatchObject({ status: 202, body: { executionArn: EXEC_3, execution: 3, method: 'continuation' } });
      expect(world.calls).toEqual(['getSession', 'listPending', `start ${SESSION_ID}-x3`]);
      expect(world.executions.get(EXEC_2)?.redriveCount).toBeUndefined();
    },
  );

  it('resumes with a continuation when the execution control cannot redrive (no redrivable/redrive: an emulator, an older adapter)', async () => {
    const world = redrivableWorld();
    const withoutRedrive: ExecutionControl = { ...world.sfn };
    delete withoutRedrive.redrivable;
    delete withoutRedrive.redrive;
    world.sfn = withoutRedrive;

    const res = await world.post('resume');

    expect(res).toEqual({ status: 202, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: true, method: 'continuation' } });
    expect(world.calls).toEqual(['getSession', 'listPending', `start ${SESSION_ID}-x3`]);
    expect(world.session).toMatchObject({ status: 'FAILED', failure: TIMED_OUT });
  });

  it('resumes with a continuation when the session store cannot reopen a session', async () => {
    const world = redrivableWorld();
    const withoutReopen: ControlSessionStore = { ...world.sessions };
    delete withoutReopen.reopen;
    const control = new SessionControl({ sessions: withoutReopen, approvals: world.approvalStore, executions: world.sfn, now: () => NOW });

    const res = await control.resume(SESSION_ID, { reason: 'x' });

    expect(res).toEqual({ ok: true, value: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: true, method: 'continuation' } });
    expect(world.calls).toEqual(['getSession', 'listPending', `start ${SESSION_ID}-x3`]);
  });

  it('redrives nothing when the session changed before it was reopened (another resume\'s continuation took it over), answering as a repeated request', async () => {
    const world = redrivableWorld();
    world.meanwhile = () => {
      world.executions.set(EXEC_3, { status: 'RUNNING', input: continuation('resume', 3, EXEC_2) });
      world.session = head({ status: 'RUNNING', failure: undefined, executionArn: EXEC_3, executions: 3, parentExecutionArn: EXEC_2 });
    };

    const res = await world.post('resume');

    expect(res).toEqual({ status: 200, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, created: false, method: 'continuation' } });
    expect(world.calls).toEqual(['getSession', 'listPending', `redrivable ${EXEC_2}`, `reopen ${EXEC_2}`, `start ${SESSION_ID}-x3`]);
    expect(world.executions.get(EXEC_2)).toMatchObject({ status: 'TIMED_OUT' });
    expect(world.session).toMatchObject({ status: 'RUNNING', executionArn: EXEC_3 });
  });
});

describe('POST /runs/{sessionId}/cancel', () => {
  const running = (): SessionRecord => head({ status: 'RUNNING', failure: undefined });

  it('cancels a RUNNING session, stops its execution with the reason and expires its approvals, answering 200', async () => {
    const world = new World(running(), chain(4), [pending('apv_1', '2024-12-10T11:40:00.000Z')]);
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });

    const res = await world.post('cancel', { reason: 'wrong host', requestedBy: 'bob' });

    expect(res).toEqual({ status: 200, body: { sessionId: SESSION_ID, status: 'CANCELLED', stoppedExecutions: [EXEC_2], expiredApprovals: ['apv_1'] } });
    expect(world.session).toMatchObject({ status: 'CANCELLED', cancellation: { reason: 'wrong host', by: 'bob' } });
    expect(world.executions.get(EXEC_2)).toMatchObject({ status: 'ABORTED', stoppedWith: { error: 'Cancelled', cause: 'wrong host' } });
    expect(world.calls).toEqual([
      'getSession',
      'cancel {"reason":"wrong host","by":"bob"}',
      `status ${EXEC_2}`,
      `stop ${EXEC_2} Cancelled`,
      `status ${EXEC_3}`,
      'listPending',
      'markExpired apv_1',
    ]);
  });

  it('also stops the next execution when it already runs (a continuation not yet in charge)', async () => {
    const world = new World(running());
    world.executions.set(EXEC_2, { status: 'SUCCEEDED', input: '{}' });
    world.executions.set(EXEC_3, { status: 'RUNNING', input: continuation('continue-as-new', 3, EXEC_2) });

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 200, body: { stoppedExecutions: [EXEC_3] } });
    expect(world.executions.get(EXEC_2)?.status).toBe('SUCCEEDED');
    expect(world.executions.get(EXEC_3)).toMatchObject({ status: 'ABORTED', stoppedWith: { error: 'Cancelled', cause: 'enough' } });
  });

  it('stops nothing when the executions have ended or do not exist', async () => {
    const world = new World(running());
    world.executions.set(EXEC_2, { status: 'FAILED', input: '{}' });

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 200, body: { status: 'CANCELLED', stoppedExecutions: [], expiredApprovals: [] } });
    expect(world.calls.filter((c) => c.startsWith('stop'))).toEqual([]);
  });

  it('stops the executions of the head as it was when cancelled (taken over by a continuation meanwhile)', async () => {
    const world = new World(running());
    world.executions.set(EXEC_3, { status: 'RUNNING', input: continuation('continue-as-new', 3, EXEC_2) });
    world.meanwhile = () => {
      world.session = head({ status: 'RUNNING', failure: undefined, executionArn: EXEC_3, executions: 3, parentExecutionArn: EXEC_2 });
    };

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 200, body: { stoppedExecutions: [EXEC_3] } });
    expect(world.calls).toEqual(['getSession', 'cancel {"reason":"enough","by":"arn:aws:iam::123456789012:user/alice"}', `status ${EXEC_3}`, `stop ${EXEC_3} Cancelled`, `status ${EXEC_4}`, 'listPending']);
  });

  it('records the caller\'s IAM identity when the body names nobody', async () => {
    const world = new World(running());
    await world.post('cancel', { reason: 'enough' });
    expect(world.session?.cancellation?.by).toBe('arn:aws:iam::123456789012:user/alice');
  });

  it('fails when the status changed meanwhile, answering 409 Conflict and stopping nothing', async () => {
    const world = new World(running());
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });
    world.meanwhile = () => {
      world.session = head();
    };

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(world.executions.get(EXEC_2)?.status).toBe('RUNNING');
    expect(world.calls).toEqual(['getSession', 'cancel {"reason":"enough","by":"arn:aws:iam::123456789012:user/alice"}']);
  });

  it.each(['FAILED', 'SUCCEEDED'] as const)('fails when the session is %s, answering 409 NotCancellable', async (status) => {
    const world = new World(head({ status }));

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 409, body: { error: 'NotCancellable', message: `session ${SESSION_ID} is ${status}; only RUNNING sessions can be cancelled` } });
    expect(world.calls).toEqual(['getSession']);
  });

  it('fails when the session is already CANCELLED, answering 409, after stopping what still runs', async () => {
    const world = new World(head({ status: 'CANCELLED', failure: undefined, cancellation: { reason: 'first', at: FAILED_AT } }));
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });

    const res = await world.post('cancel', { reason: 'again' });

    expect(res).toMatchObject({ status: 409, body: { error: 'NotCancellable' } });
    expect(world.executions.get(EXEC_2)).toMatchObject({ status: 'ABORTED', stoppedWith: { error: 'Cancelled', cause: 'first' } });
    expect(world.calls).toEqual(['getSession', `status ${EXEC_2}`, `stop ${EXEC_2} Cancelled`, `status ${EXEC_3}`]);
  });

  it('fails when the session is unknown, answering 404', async () => {
    const world = new World(undefined);
    await expect(world.post('cancel', { reason: 'enough' })).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
  });

  it.each([
    ['missing', {}],
    ['empty', { reason: '' }],
    ['longer than 1000 characters', { reason: 'x'.repeat(1001) }],
    ['not a string', { reason: 42 }],
  ])('fails when the reason is %s, answering 400 naming reason', async (_name, body) => {
    const world = new World(running());

    const res = await world.post('cancel', body);

    expect(res).toMatchObject({ status: 400, body: { error: 'InvalidRequest', issues: [expect.stringMatching(/^reason: /)] } });
    expect(world.calls).toEqual([]);
  });
});

describe('POST /runs/{sessionId}/rollback', () => {
  it('rolls a FAILED session back to toStep and continues it in the next execution, answering 202', async () => {
    const world = new World(head());

    const res = await world.post('rollback', { toStep: 2, reason: 'wrong host', requestedBy: 'alice' });

    expect(res).toEqual({ status: 202, body: { sessionId: SESSION_ID, executionArn: EXEC_3, execution: 3, branch: 1, abandoned: 4 } });
    expect(world.rollbacks).toEqual([
      {
        branch: 1,
        toStep: 2,
        fromStep: 4,
        abandoned: [checkpointKey.model(3), checkpointKey.tool(3, 'c3'), checkpointKey.model(4), checkpointKey.tool(4, 'c4')],
        reason: 'wrong host',
        requestedBy: 'alice',
      },
    ]);
    expect(world.executions.get(EXEC_3)?.input).toBe(continuation('rollback', 3, EXEC_2));
    expect(world.calls).toEqual(['getSession', 'listCheckpoints', `status ${EXEC_3}`, 'listPending', 'rollBack branch 1', `start ${SESSION_ID}-x3`]);
  });

  it('marks a RUNNING session failed on behalf of its execution before stopping it, then rolls back', async () => {
    const world = new World(head({ status: 'RUNNING', failure: undefined }), chain(4), [pending('apv_1', '2024-12-10T11:40:00.000Z')]);
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });

    const res = await world.post('rollback', { toStep: 3, reason: 'the model went astray' });

    expect(res).toMatchObject({ status: 202, body: { execution: 3, branch: 1, abandoned: 2 } });
    expect(world.executions.get(EXEC_2)).toMatchObject({ status: 'ABORTED', stoppedWith: { error: 'RolledBack', cause: 'the model went astray' } });
    expect(world.session).toMatchObject({ status: 'FAILED', failure: { error: 'RolledBack', cause: 'the model went astray', failedState: 'Rollback' }, branch: 1, step: 3 });
    expect(world.calls).toEqual([
      'getSession',
      'listCheckpoints',
      `status ${EXEC_3}`,
      'markFailed RolledBack onlyIfRunning=true',
      `status ${EXEC_2}`,
      `stop ${EXEC_2} RolledBack`,
      'listPending',
      'markExpired apv_1',
      'rollBack branch 1',
      `start ${SESSION_ID}-x3`,
    ]);
  });

  it('rolls back to step 0 (before the first model turn), abandoning every turn', async () => {
    const world = new World(head({ status: 'SUCCEEDED', failure: undefined, branch: 2 }));
    const res = await world.post('rollback', { toStep: 0, reason: 'start over' });
    expect(res).toMatchObject({ status: 202, body: { branch: 3, abandoned: 8 } });
  });

  it('fails when toStep is after the last model turn, answering 400 InvalidRollback naming toStep and changing nothing', async () => {
    const world = new World(head());

    const res = await world.post('rollback', { toStep: 9, reason: 'x' });

    expect(res).toMatchObject({ status: 400, body: { error: 'InvalidRollback', issues: [expect.stringMatching(/^toStep: toStep 9 is after the session's last model turn \(4\)/)] } });
    expect(world.calls).toEqual(['getSession', 'listCheckpoints']);
  });

  it.each([
    ['missing', { reason: 'x' }],
    ['negative', { toStep: -1, reason: 'x' }],
    ['not an integer', { toStep: 1.5, reason: 'x' }],
    ['a string', { toStep: '2', reason: 'x' }],
  ])('fails when toStep is %s, answering 400 naming toStep', async (_name, body) => {
    const world = new World(head());

    const res = await world.post('rollback', body);

    expect(res).toMatchObject({ status: 400, body: { error: 'InvalidRequest', issues: [expect.stringMatching(/^toStep: /)] } });
    expect(world.calls).toEqual([]);
  });

  it('fails when the reason is missing, answering 400 naming reason', async () => {
    const world = new World(head());
    await expect(world.post('rollback', { toStep: 1 })).resolves.toMatchObject({ status: 400, body: { issues: [expect.stringMatching(/^reason: /)] } });
  });

  it('fails when the session is CANCELLED, answering 409 NotRollbackable', async () => {
    const world = new World(head({ status: 'CANCELLED', failure: undefined }));
    await expect(world.post('rollback', { toStep: 1, reason: 'x' })).resolves.toMatchObject({ status: 409, body: { error: 'NotRollbackable' } });
    expect(world.calls).toEqual(['getSession', 'listCheckpoints']);
  });

  it('fails when the next execution already exists, answering 409 Conflict before changing anything', async () => {
    const world = new World(head({ status: 'RUNNING', failure: undefined }));
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });
    world.executions.set(EXEC_3, { status: 'RUNNING', input: continuation('continue-as-new', 3, EXEC_2) });

    const res = await world.post('rollback', { toStep: 1, reason: 'x' });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(String(res.body.message)).toContain(`${SESSION_ID}-x3 of session ${SESSION_ID} already exists (RUNNING)`);
    expect(world.calls).toEqual(['getSession', 'listCheckpoints', `status ${EXEC_3}`]);
    expect(world.session?.status).toBe('RUNNING');
  });

  it('fails when a RUNNING session changed before it was marked, answering 409 Conflict and stopping nothing', async () => {
    const world = new World(head({ status: 'RUNNING', failure: undefined }));
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });
    world.meanwhile = () => {
      world.session = head({ status: 'SUCCEEDED', failure: undefined });
    };

    const res = await world.post('rollback', { toStep: 1, reason: 'x' });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(world.executions.get(EXEC_2)?.status).toBe('RUNNING');
    expect(world.calls).toEqual(['getSession', 'listCheckpoints', `status ${EXEC_3}`, 'markFailed RolledBack onlyIfRunning=true']);
  });

  it('fails when another rollback moved the branch meanwhile, answering 409 Conflict and starting nothing', async () => {
    const world = new World(head());
    world.meanwhile = () => {
      if (world.session) world.session = { ...world.session, branch: 1 };
    };

    const res = await world.post('rollback', { toStep: 1, reason: 'x' });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(world.executions.size).toBe(0);
    expect(world.rollbacks).toEqual([]);
  });

  it('fails when the session is unknown, answering 404', async () => {
    const world = new World(undefined);
    await expect(world.post('rollback', { toStep: 1, reason: 'x' })).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
    expect(world.calls).toEqual(['getSession']);
  });
});

/** The wait of a budget pause, as the approval request task stores it: tool `budget:<budget>`. */
const PAUSE_APPROVAL: PendingApproval = {
  approvalId: 'apv_pause',
  tool: 'budget:costUsd',
  input: { budget: 'costUsd', used: 0.0502, limit: 0.05 },
  step: 4,
  requestedAt: '2024-12-10T11:50:00.000Z',
  expiresAt: '2024-12-17T11:50:00.000Z',
};
const PAUSE_TOKEN = 'token-of-the-pause';

/** A session paused on its cost budget at step 4 since 11:50, its wait pending. */
const paused = (overrides: Partial<SessionRecord> = {}): SessionRecord =>
  head({
    status: 'PAUSED_BUDGET',
    failure: undefined,
    budgets: { costUsd: 0.05, steps: 8 },
    pause: { budget: 'costUsd', used: 0.0502, limit: 0.05, at: '2024-12-10T11:50:00.000Z', approvalId: 'apv_pause', step: 4 },
    pauses: 1,
    ...overrides,
  });

/** A world with a paused session, its pause's wait and a tool approval of an earlier turn both pending. */
function pausedWorld(session: SessionRecord = paused(), records: CheckpointRecord[] = chain(4)): World {
  const world = new World(session, records, [pending('apv_tool', '2024-12-10T11:40:00.000Z'), { ...PAUSE_APPROVAL }]);
  world.tokens.set('apv_pause', PAUSE_TOKEN);
  world.tokens.set('apv_tool', 'token-of-the-tool-approval');
  return world;
}

describe('POST /runs/{sessionId}/budget', () => {
  it("raises the budgets of a paused run and resumes it: RUNNING, the paused time kept aside, the pause's wait answered raised, answering 200", async () => {
    const world = pausedWorld();

    const res = await world.post('budget', { budgets: { costUsd: 1 }, reason: 'the investigation needs more', requestedBy: 'bob' });

    expect(res).toEqual({ status: 200, body: { sessionId: SESSION_ID, status: 'RUNNING', budgets: { costUsd: 1, steps: 8 }, resumed: true } });
    expect(world.session).toMatchObject({ status: 'RUNNING', budgets: { costUsd: 1, steps: 8 }, pausedSeconds: 600 });
    expect(world.session?.pause).toBeUndefined();
    expect(world.completed).toEqual([{ taskToken: PAUSE_TOKEN, output: { decision: 'raised', reason: 'the investigation needs more', decidedBy: 'bob', approvalId: 'apv_pause' } }]);
    expect(world.decisions).toEqual([{ approvalId: 'apv_pause', status: 'approved', reason: 'the investigation needs more', decidedBy: 'bob' }]);
    // The tool approval waits for its own answer (POST /approvals/{id}).
    expect(world.calls).toEqual([
      'getSession',
      'setBudgets {"costUsd":1,"steps":8}',
      'listPending',
      'get apv_pause',
      `complete ${PAUSE_TOKEN}`,
      'decide apv_pause approved',
      'markDelivered apv_pause',
    ]);
  });

  it("answers the head's pause even when the session index does not show its wait yet (the pause and its wait are written together; the index lags): the wait first, then the record", async () => {
    const world = pausedWorld();
    world.unindexed.add('apv_pause');

    const res = await world.post('budget', { budgets: { costUsd: 1 }, requestedBy: 'bob' });

    expect(res).toMatchObject({ status: 200, body: { status: 'RUNNING', resumed: true } });
    expect(world.completed).toEqual([{ taskToken: PAUSE_TOKEN, output: { decision: 'raised', decidedBy: 'bob', approvalId: 'apv_pause' } }]);
    expect(world.calls).toEqual([
      'getSession',
      'setBudgets {"costUsd":1,"steps":8}',
      'listPending',
      'get apv_pause',
      `complete ${PAUSE_TOKEN}`,
      'decide apv_pause approved',
      'markDelivered apv_pause',
    ]);
  });

  it("answers the head's pause first, then another budget pause the index shows still waiting (one a cut-short request left), never a tool approval", async () => {
    const older: PendingApproval = { ...PAUSE_APPROVAL, approvalId: 'apv_pause_old', step: 2, requestedAt: '2024-12-10T11:20:00.000Z' };
    const world = pausedWorld();
    world.approvals.unshift(older);
    world.tokens.set('apv_pause_old', 'token-of-the-old-pause');

    const res = await world.post('budget', { budgets: { costUsd: 1 } });

    expect(res).toMatchObject({ status: 200, body: { resumed: true } });
    expect(world.completed.map((c) => c.taskToken)).toEqual([PAUSE_TOKEN, 'token-of-the-old-pause']);
    expect(world.calls.slice(2)).toEqual([
      'listPending',
      'get apv_pause',
      `complete ${PAUSE_TOKEN}`,
      'decide apv_pause approved',
      'markDelivered apv_pause',
      'get apv_pause_old',
      'complete token-of-the-old-pause',
      'decide apv_pause_old approved',
      'markDelivered apv_pause_old',
    ]);
  });

  it.each(['approved', 'rejected', 'expired'] as const)('skips a wait the table holds %s though the index still shows it pending: no answer, no decision', async (status) => {
    const world = pausedWorld();
    world.answeredInTable.set('apv_pause', status);

    const res = await world.post('budget', { budgets: { costUsd: 1 } });

    expect(res).toMatchObject({ status: 200, body: { status: 'RUNNING', resumed: false } });
    expect(world.completed).toEqual([]);
    expect(world.decisions).toEqual([]);
    expect(world.calls.slice(2)).toEqual(['listPending', 'get apv_pause']);
  });

  it('takes each field as the new limit, not an increment: it may lower one, and keeps the others', async () => {
    const world = pausedWorld();
    const res = await world.post('budget', { budgets: { steps: 4 } });
    expect(res).toMatchObject({ status: 200, body: { budgets: { costUsd: 0.05, steps: 4 }, resumed: true } });
  });

  it('sets the budgets of a RUNNING run, resuming nothing', async () => {
    const world = new World(head({ status: 'RUNNING', failure: undefined, budgets: { costUsd: 0.05 } }), chain(4), [pending('apv_tool', '2024-12-10T11:40:00.000Z')]);

    const res = await world.post('budget', { budgets: { costUsd: 2 } });

    expect(res).toEqual({ status: 200, body: { sessionId: SESSION_ID, status: 'RUNNING', budgets: { costUsd: 2 }, resumed: false } });
    expect(world.session).toMatchObject({ status: 'RUNNING', budgets: { costUsd: 2 } });
    expect(world.completed).toEqual([]);
    expect(world.calls).toEqual(['getSession', 'setBudgets {"costUsd":2}', 'listPending']);
  });

  it('answers the wait of a pause a cut-short request left waiting on a RUNNING run', async () => {
    const world = pausedWorld(head({ status: 'RUNNING', failure: undefined, budgets: { costUsd: 1 } }));
    const res = await world.post('budget', { budgets: { costUsd: 1 } });
    expect(res).toMatchObject({ status: 200, body: { status: 'RUNNING', resumed: true } });
    expect(world.completed.map((c) => c.taskToken)).toEqual([PAUSE_TOKEN]);
  });

  it('marks the pause expired, and does not claim the run resumed, when its wait no longer waits (it timed out)', async () => {
    const world = pausedWorld();
    world.gone.add(PAUSE_TOKEN);

    const res = await world.post('budget', { budgets: { costUsd: 1 } });

    expect(res).toMatchObject({ status: 200, body: { resumed: false } });
    expect(world.expired).toEqual(['apv_pause']);
    expect(world.calls.slice(-2)).toEqual([`complete ${PAUSE_TOKEN}`, 'markExpired apv_pause']);
  });

  it("records the caller's IAM identity as the decider when the body names nobody", async () => {
    const world = pausedWorld();
    await world.post('budget', { budgets: { costUsd: 1 } });
    expect(world.completed[0]?.output).toMatchObject({ decision: 'raised', decidedBy: 'arn:aws:iam::123456789012:user/alice' });
  });

  it.each(['SUCCEEDED', 'FAILED', 'CANCELLED', 'STOPPED'] as const)('fails when the session is %s, answering 409 NotRaisable and changing nothing', async (status) => {
    const world = pausedWorld(paused({ status }));

    const res = await world.post('budget', { budgets: { costUsd: 1 } });

    expect(res).toMatchObject({ status: 409, body: { error: 'NotRaisable', message: `session ${SESSION_ID} is ${status}; only RUNNING or PAUSED_BUDGET runs have budgets to raise` } });
    expect(world.calls).toEqual(['getSession']);
  });

  it('fails when the session changed meanwhile (stopped, or raised by another request), answering 409 Conflict and answering no wait', async () => {
    const world = pausedWorld();
    world.meanwhile = () => {
      world.session = paused({ status: 'STOPPED', stop: { reason: 'enough', at: NOW.toISOString() } });
    };

    const res = await world.post('budget', { budgets: { costUsd: 1 } });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(world.completed).toEqual([]);
    expect(world.calls).toEqual(['getSession', 'setBudgets {"costUsd":1,"steps":8}']);
  });

  it('fails when the session is unknown, answering 404', async () => {
    const world = pausedWorld();
    await expect(world.post('budget', { budgets: { costUsd: 1 } }, 'ses_unknown')).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
  });

  it.each([
    ['no budgets', {}, /^budgets: /],
    ['no budget named', { budgets: {} }, /name at least one budget to raise/],
    ['an unknown budget', { budgets: { dollars: 5 } }, /^budgets: /],
    ['a cost of zero', { budgets: { costUsd: 0 } }, /^budgets\.costUsd: /],
    ['fractional steps', { budgets: { steps: 2.5 } }, /^budgets\.steps: /],
  ])('fails when the body has %s, answering 400 naming the field and changing nothing', async (_what, body, issue) => {
    const world = pausedWorld();

    const res = await world.post('budget', body);

    expect(res).toMatchObject({ status: 400, body: { error: 'InvalidRequest' } });
    expect(res.body.issues).toEqual(expect.arrayContaining([expect.stringMatching(issue)]));
    expect(world.calls).toEqual([]);
  });
});

describe('POST /runs/{sessionId}/stop', () => {
  /** Checkpoints of four turns whose tool calls ended: three succeeded, one rejected by its approver. */
  const results = (): CheckpointRecord[] =>
    chain(4).map((r) => (r.kind === 'tool' ? ({ ...r, status: r.step === 3 ? 'rejected' : 'succeeded' } as CheckpointRecord) : r));

  it("stops a paused run: STOPPED with why, the pause's wait answered stopped, answering 200 with the partial results", async () => {
    const world = pausedWorld(paused(), results());

    const res = await world.post('stop', { reason: 'not worth more', requestedBy: 'bob' });

    expect(res).toEqual({
      status: 200,
      body: { sessionId: SESSION_ID, status: 'STOPPED', step: 4, pause: { budget: 'costUsd', used: 0.0502, limit: 0.05 }, completedToolCalls: 3 },
    });
    expect(world.session).toMatchObject({ status: 'STOPPED', stop: { reason: 'not worth more', by: 'bob', at: NOW.toISOString() } });
    expect(world.completed).toEqual([{ taskToken: PAUSE_TOKEN, output: { decision: 'stopped', reason: 'not worth more', decidedBy: 'bob', approvalId: 'apv_pause' } }]);
    expect(world.decisions).toEqual([{ approvalId: 'apv_pause', status: 'rejected', reason: 'not worth more', decidedBy: 'bob' }]);
    expect(world.calls).toEqual([
      'getSession',
      'stopSession {"reason":"not worth more","by":"bob"}',
      'listPending',
      'get apv_pause',
      `complete ${PAUSE_TOKEN}`,
      'decide apv_pause rejected',
      'markDelivered apv_pause',
      'listCheckpoints',
    ]);
  });

  it("answers the head's pause even when the session index does not show its wait yet: the wait first, then the record", async () => {
    const world = pausedWorld(paused(), results());
    world.unindexed.add('apv_pause');

    const res = await world.post('stop', { reason: 'not worth more', requestedBy: 'bob' });

    expect(res).toMatchObject({ status: 200, body: { status: 'STOPPED' } });
    expect(world.completed).toEqual([{ taskToken: PAUSE_TOKEN, output: { decision: 'stopped', reason: 'not worth more', decidedBy: 'bob', approvalId: 'apv_pause' } }]);
    expect(world.calls.slice(2)).toEqual(['listPending', 'get apv_pause', `complete ${PAUSE_TOKEN}`, 'decide apv_pause rejected', 'markDelivered apv_pause', 'listCheckpoints']);
  });

  it("marks the head's pause expired, deciding nothing, when its wait is gone (it timed out)", async () => {
    const world = pausedWorld();
    world.unindexed.add('apv_pause');
    world.gone.add(PAUSE_TOKEN);

    await expect(world.post('stop', { reason: 'enough' })).resolves.toMatchObject({ status: 200, body: { status: 'STOPPED' } });

    expect(world.decisions).toEqual([]);
    expect(world.expired).toEqual(['apv_pause']);
    expect(world.calls.slice(3, 6)).toEqual(['get apv_pause', `complete ${PAUSE_TOKEN}`, 'markExpired apv_pause']);
  });

  it("records the caller's IAM identity when the body names nobody", async () => {
    const world = pausedWorld();
    await world.post('stop', { reason: 'enough' });
    expect(world.session?.stop?.by).toBe('arn:aws:iam::123456789012:user/alice');
  });

  it.each([
    ['RUNNING', 'cancel a running one'],
    ['FAILED', 'only runs paused on a budget can be stopped'],
    ['SUCCEEDED', 'only runs paused on a budget can be stopped'],
    ['CANCELLED', 'only runs paused on a budget can be stopped'],
  ] as const)('fails when the session is %s, answering 409 NotStoppable and changing nothing', async (status, why) => {
    const world = pausedWorld(paused({ status, pause: undefined }));

    const res = await world.post('stop', { reason: 'enough' });

    expect(res).toMatchObject({ status: 409, body: { error: 'NotStoppable' } });
    expect(String(res.body.message)).toContain(why);
    expect(world.calls).toEqual(['getSession']);
  });

  it('fails when the session is already STOPPED, answering 409, after answering the wait a cut-short request left waiting', async () => {
    const world = pausedWorld(paused({ status: 'STOPPED', stop: { reason: 'first', by: 'bob', at: '2024-12-10T11:55:00.000Z' } }));

    const res = await world.post('stop', { reason: 'again' });

    expect(res).toMatchObject({ status: 409, body: { error: 'NotStoppable' } });
    expect(world.completed).toEqual([{ taskToken: PAUSE_TOKEN, output: { decision: 'stopped', reason: 'first', decidedBy: 'bob', approvalId: 'apv_pause' } }]);
    expect(world.session).toMatchObject({ status: 'STOPPED', stop: { reason: 'first' } });
  });

  it('fails when the run was raised meanwhile, answering 409 Conflict and answering no wait', async () => {
    const world = pausedWorld();
    world.meanwhile = () => {
      world.session = head({ status: 'RUNNING', failure: undefined, budgets: { costUsd: 1 } });
    };

    const res = await world.post('stop', { reason: 'enough' });

    expect(res).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(world.completed).toEqual([]);
    expect(world.session?.status).toBe('RUNNING');
  });

  it('fails when the session is unknown, answering 404', async () => {
    const world = pausedWorld();
    await expect(world.post('stop', { reason: 'enough' }, 'ses_unknown')).resolves.toMatchObject({ status: 404, body: { error: 'UnknownSession' } });
  });

  it('fails when the reason is missing, answering 400 naming reason', async () => {
    const world = pausedWorld();
    await expect(world.post('stop', {})).resolves.toMatchObject({ status: 400, body: { error: 'InvalidRequest', issues: [expect.stringMatching(/^reason: /)] } });
    expect(world.calls).toEqual([]);
  });
});

describe('POST /runs/{sessionId}/cancel of a run paused on a budget', () => {
  it('refuses to cancel a run paused on a budget (stop it instead), answering 409 NotCancellable', async () => {
    const world = pausedWorld();
    const res = await world.post('cancel', { reason: 'enough' });
    expect(res).toMatchObject({ status: 409, body: { error: 'NotCancellable' } });
    expect(world.calls).toEqual(['getSession']);
  });

  it('cancels a run that paused on a budget between the read and the cancel, stopping its execution', async () => {
    const world = new World(head({ status: 'RUNNING', failure: undefined }));
    world.executions.set(EXEC_2, { status: 'RUNNING', input: '{}' });
    world.meanwhile = () => {
      world.session = paused();
    };

    const res = await world.post('cancel', { reason: 'enough' });

    expect(res).toMatchObject({ status: 200, body: { status: 'CANCELLED', stoppedExecutions: [EXEC_2] } });
    expect(world.session?.status).toBe('CANCELLED');
  });
});

describe('createControlHandler', () => {
  it('answers 404 for a path that is no control route', async () => {
    const world = new World(head());
    await expect(world.post('pause', {})).resolves.toMatchObject({ status: 404, body: { error: 'UnknownRoute' } });
    await expect(world.post('raise', { budgets: { costUsd: 1 } })).resolves.toMatchObject({ status: 404, body: { error: 'UnknownRoute' } });
    expect(world.calls).toEqual([]);
  });

  it('makes its SessionControl on first use only', async () => {
    let made = 0;
    const world = new World(head());
    const handler = createControlHandler(() => {
      made++;
      return new SessionControl({ sessions: world.sessions, approvals: world.approvalStore, executions: world.sfn, now: () => NOW });
    });
    expect(made).toBe(0);
    await handler(request('resume', {}, SESSION_ID), CONTEXT);
    expect(made).toBe(1);
  });
});
