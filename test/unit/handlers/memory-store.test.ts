/** The in-memory store keeps the CheckpointStore's contract; the step tests rely on it. */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { CheckpointStore } from '../../../lambdas/adapters/checkpoint-store';
import { ApprovalRecordSchema } from '../../../lambdas/core/contracts/api';
import { checkpointKey, type SessionRecord } from '../../../lambdas/core/contracts/checkpoint';
import { CorruptCheckpointError, SessionFencedError } from '../../../lambdas/core/errors';
import { API_TRIGGER_INFO, APPROVAL_TABLE, budgetWait, inputRecord, modelRecord, SESSION_ID, sessionHeadItem, text, toolRecord } from '../support/records';
import { rejection } from '../support/rejection';
import { ItemTooLargeError, MAX_ITEM_BYTES, MemoryCheckpointStore } from './memory-store';

const EXEC_1 = 'arn:aws:states:us-east-1:123456789012:execution:unit:one';
const EXEC_2 = 'arn:aws:states:us-east-1:123456789012:execution:unit:two';
/** A pause as the PauseForBudget wait records it (at 11:15). */
const PAUSE = { budget: 'costUsd', used: 0.0502, limit: 0.05, at: '2024-12-10T11:15:00.000Z', approvalId: 'apv_pause', step: 3 } as const;
/** A record as a step hands it to putCheckpoint: without the fields the store fills in. */
const without = <T extends { schemaVersion: number; createdAt: string }>({ schemaVersion: _v, createdAt: _c, ...rest }: T): Omit<T, 'schemaVersion' | 'createdAt'> => rest;

/** Pauses as the approval request task does: the pause with its wait (`budgetWait`). */
const pauseOf = (store: MemoryCheckpointStore, pause: NonNullable<SessionRecord['pause']> = PAUSE, executionArn = EXEC_1, sessionId = SESSION_ID) =>
  store.pause(sessionId, executionArn, pause, budgetWait(pause, sessionId));

/** A store with a RUNNING session owned by EXEC_1. */
async function running(): Promise<MemoryCheckpointStore> {
  const store = new MemoryCheckpointStore();
  await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO });
  return store;
}

describe('MemoryCheckpointStore', () => {
  it('creates a session once: the second create returns the first head with created false', async () => {
    const store = new MemoryCheckpointStore();
    const first = await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO });
    const second = await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_2, trigger: API_TRIGGER_INFO });
    expect(first).toMatchObject({ created: true, session: { status: 'RUNNING', step: 0, executionArn: EXEC_1, schemaVersion: 2, executions: 1, branch: 0 } });
    expect(second).toEqual({ created: false, session: first.session });
  });

  it('writes a checkpoint once: the second write returns the first record with created false', async () => {
    const store = new MemoryCheckpointStore();
    const first = await store.putCheckpoint(without(toolRecord(1, 'c1', '"first"')));
    const second = await store.putCheckpoint(without(toolRecord(1, 'c1', '"second"')));
    expect(first.created).toBe(true);
    expect(second).toEqual({ created: false, record: expect.objectContaining({ result: '"first"' }) as unknown });
    expect(await store.getCheckpoint(SESSION_ID, checkpointKey.tool(1, 'c1'))).toMatchObject({ result: '"first"', schemaVersion: 2 });
  });

  it('fails when a checkpoint does not match the schema, and stores nothing', async () => {
    const store = new MemoryCheckpointStore();
    await expect(store.putCheckpoint({ ...without(toolRecord(1, 'c1', '{}')), result: 42 as unknown as string })).rejects.toThrow();
    expect(store.dump(SESSION_ID)).toEqual({});
  });

  it('lists the checkpoints of a session in sort-key order, without the head or the execution records', async () => {
    const store = await running();
    await store.putCheckpoint({ sessionId: SESSION_ID, sk: checkpointKey.execution(1), kind: 'execution', execution: 1, executionArn: EXEC_1, reason: 'start', step: 0 });
    await store.putCheckpoint(without(modelRecord(10, [text('{}')])));
    await store.putCheckpoint(without(toolRecord(2, 'c1', '{}')));
    await store.putCheckpoint(without(inputRecord('q')));
    await store.putCheckpoint(without(modelRecord(2, [text('{}')])));
    expect((await store.listCheckpoints(SESSION_ID)).map((r) => r.sk)).toEqual([checkpointKey.input(), checkpointKey.model(2), checkpointKey.tool(2, 'c1'), checkpointKey.model(10)]);
    expect(await store.listCheckpoints('ses_other')).toEqual([]);
  });

  it('moves the head step forward only, and marks it SUCCEEDED with the output for the owning execution', async () => {
    const store = await running();
    await store.recordStep(SESSION_ID, 3);
    await store.recordStep(SESSION_ID, 2);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ step: 3, status: 'RUNNING' });
    await store.markSucceeded(SESSION_ID, 4, { answer: 'x' }, EXEC_1);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ step: 4, status: 'SUCCEEDED', output: { answer: 'x' } });
    // Idempotent: a replayed final turn marks it again.
    await store.markSucceeded(SESSION_ID, 4, { answer: 'x' }, EXEC_1);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ step: 4, status: 'SUCCEEDED' });
  });

  it('ignores recordStep without a head, and fails markSucceeded without one with SessionFencedError', async () => {
    const store = new MemoryCheckpointStore();
    await store.recordStep(SESSION_ID, 1);
    expect(await store.getSession(SESSION_ID)).toBeUndefined();
    await expect(store.markSucceeded(SESSION_ID, 1, {}, EXEC_1)).rejects.toBeInstanceOf(SessionFencedError);
  });

  it('fails markSucceeded for another execution or a cancelled session, and changes nothing', async () => {
    const store = await running();
    await expect(store.markSucceeded(SESSION_ID, 1, {}, EXEC_2)).rejects.toBeInstanceOf(SessionFencedError);
    await store.cancel(SESSION_ID, { reason: 'wrong host' });
    const before = store.dump(SESSION_ID);
    await expect(store.markSucceeded(SESSION_ID, 1, {}, EXEC_1)).rejects.toBeInstanceOf(SessionFencedError);
    expect(store.dump(SESSION_ID)).toEqual(before);
  });

  it('fails like DynamoDB when an item is larger than 400 KB, and stores nothing', async () => {
    const store = new MemoryCheckpointStore();
    await expect(store.putCheckpoint(without(toolRecord(1, 'c1', JSON.stringify('x'.repeat(MAX_ITEM_BYTES)))))).rejects.toBeInstanceOf(ItemTooLargeError);
    expect(store.dump(SESSION_ID)).toEqual({});
    await expect(store.putCheckpoint(without(toolRecord(1, 'c1', JSON.stringify('x'.repeat(MAX_ITEM_BYTES - 1024)))))).resolves.toMatchObject({ created: true });
  });

  it('fails with CorruptCheckpointError when reading a record of an unsupported schema version', async () => {
    const store = new MemoryCheckpointStore();
    store.seed({ ...toolRecord(1, 'c1', '{}'), schemaVersion: 99 });
    await expect(store.getCheckpoint(SESSION_ID, checkpointKey.tool(1, 'c1'))).rejects.toBeInstanceOf(CorruptCheckpointError);
    await expect(store.listCheckpoints(SESSION_ID)).rejects.toThrow(/unsupported schemaVersion 99/);
  });

  it('reads version 1 records upgraded: a head gains executions 1 and branch 0, a checkpoint keeps every field', async () => {
    const store = new MemoryCheckpointStore();
    store.seed(sessionHeadItem('RUNNING', 2));
    store.seed({ ...toolRecord(1, 'c1', '{"a":1}'), schemaVersion: 1 });
    expect(await store.getSession(SESSION_ID)).toEqual({ ...sessionHeadItem('RUNNING', 2), schemaVersion: 2, executions: 1, branch: 0 });
    expect(await store.getCheckpoint(SESSION_ID, checkpointKey.tool(1, 'c1'))).toEqual(toolRecord(1, 'c1', '{"a":1}'));
  });
});

describe('MemoryCheckpointStore: fenced writes', () => {
  it('writes a fenced checkpoint while the execution owns the RUNNING session', async () => {
    const store = await running();
    await expect(store.putCheckpoint(without(toolRecord(1, 'c1', '{}')), EXEC_1)).resolves.toMatchObject({ created: true });
  });

  it('fails with SessionFencedError for another execution, and writes nothing', async () => {
    const store = await running();
    const writes = store.writes.length;
    const err = await rejection(store.putCheckpoint(without(toolRecord(1, 'c1', '{}')), EXEC_2));
    expect(err).toBeInstanceOf(SessionFencedError);
    expect(err.message).toContain(EXEC_2);
    expect(store.writes).toHaveLength(writes);
  });

  it('fails with SessionFencedError once the session is cancelled, or when there is no session', async () => {
    const store = await running();
    await store.cancel(SESSION_ID, { reason: 'stop' });
    await expect(store.putCheckpoint(without(toolRecord(1, 'c1', '{}')), EXEC_1)).rejects.toBeInstanceOf(SessionFencedError);
    await expect(new MemoryCheckpointStore().putCheckpoint(without(toolRecord(1, 'c1', '{}')), EXEC_1)).rejects.toBeInstanceOf(SessionFencedError);
  });

  it('returns a checkpoint an earlier attempt wrote, even when the fence no longer holds', async () => {
    const store = await running();
    await store.putCheckpoint(without(toolRecord(1, 'c1', '"first"')), EXEC_1);
    await store.cancel(SESSION_ID, { reason: 'stop' });
    await expect(store.putCheckpoint(without(toolRecord(1, 'c1', '"second"')), EXEC_1)).resolves.toEqual({
      created: false,
      record: expect.objectContaining({ result: '"first"' }) as unknown,
    });
  });
});

describe('MemoryCheckpointStore: takeOver, cancel and reopen', () => {
  const takeOver = (store: MemoryCheckpointStore, fromStatuses: readonly ('RUNNING' | 'FAILED' | 'SUCCEEDED' | 'CANCELLED')[], parent = EXEC_1) =>
    store.takeOver({ sessionId: SESSION_ID, executionArn: EXEC_2, parentExecutionArn: parent, execution: 2, fromStatuses });

  it("hands the session to the continuation: its execution, RUNNING, the parent recorded, failure cleared", async () => {
    const store = await running();
    store.patch(SESSION_ID, 'SESSION', { status: 'FAILED', failure: { error: 'States.Timeout', cause: 'slow', failedState: 'ModelTurn' } });
    const head = await takeOver(store, ['FAILED']);
    expect(head).toMatchObject({ executionArn: EXEC_2, parentExecutionArn: EXEC_1, status: 'RUNNING', executions: 2, branch: 0 });
    expect(head).not.toHaveProperty('failure');
    expect(await store.getSession(SESSION_ID)).toEqual(head);
  });

  it('refuses (undefined, nothing written) when the head has another execution, a status not allowed, or no status is allowed', async () => {
    const store = await running();
    const writes = store.writes.length;
    expect(await takeOver(store, ['RUNNING'], EXEC_2)).toBeUndefined();
    expect(await takeOver(store, ['FAILED'])).toBeUndefined();
    expect(await takeOver(store, [])).toBeUndefined();
    expect(store.writes).toHaveLength(writes);
  });

  it('takes a version 1 head over as a version 2 one', async () => {
    const store = new MemoryCheckpointStore();
    store.seed({ ...sessionHeadItem('RUNNING', 3), executionArn: EXEC_1 });
    await expect(takeOver(store, ['RUNNING'])).resolves.toMatchObject({ schemaVersion: 2, executions: 2, branch: 0, step: 3, executionArn: EXEC_2 });
    expect(store.dump(SESSION_ID).SESSION).toMatchObject({ schemaVersion: 2, executions: 2, branch: 0 });
  });

  it('cancels a RUNNING or budget-paused session only, returning the head as it was', async () => {
    const store = await running();
    await expect(store.cancel(SESSION_ID, { reason: 'wrong host', by: 'alice' })).resolves.toMatchObject({ status: 'RUNNING' });
    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'CANCELLED', cancellation: { reason: 'wrong host', by: 'alice', at: '2024-12-10T11:10:07.000Z' } });
    await expect(store.cancel(SESSION_ID, { reason: 'again' })).resolves.toBeUndefined();

    const pausedStore = await running();
    await pauseOf(pausedStore);
    await expect(pausedStore.cancel(SESSION_ID, { reason: 'enough' })).resolves.toMatchObject({ status: 'PAUSED_BUDGET' });
    expect(await pausedStore.getSession(SESSION_ID)).toMatchObject({ status: 'CANCELLED' });
  });

  it('pauses a RUNNING session for its execution together with its wait: PAUSED_BUDGET, the pause recorded and counted, the approval record with its token put', async () => {
    const store = await running();
    expectTypeOf(store.pause.bind(store)).toEqualTypeOf<CheckpointStore['pause']>();

    await expect(pauseOf(store)).resolves.toBe('paused');

    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'PAUSED_BUDGET', pause: PAUSE, pauses: 1 });
    expect(store.waits.get(PAUSE.approvalId)).toEqual({ tableName: APPROVAL_TABLE, item: budgetWait(PAUSE).Item });
    expect(ApprovalRecordSchema.parse(store.waits.get(PAUSE.approvalId)?.item)).toMatchObject({ status: 'pending', taskToken: 'token-of-apv_pause', tool: 'budget:costUsd', step: 3 });
  });

  it('answers already when a retry of the same wait finds its pause, and writes nothing', async () => {
    const store = await running();
    await pauseOf(store);
    const writes = store.writes.length;
    const waits = [...store.waits.entries()];

    await expect(pauseOf(store)).resolves.toBe('already');

    expect(store.writes).toHaveLength(writes);
    expect([...store.waits.entries()]).toEqual(waits);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'PAUSED_BUDGET', pause: PAUSE, pauses: 1 });
  });

  it('counts a later pause after the first, with its own wait', async () => {
    const store = await running();
    await pauseOf(store);
    await store.setBudgets((await store.getSession(SESSION_ID))!, { costUsd: 1 });
    const second = { ...PAUSE, approvalId: 'apv_second', limit: 1, used: 1, at: '2024-12-10T11:40:00.000Z' };

    await expect(pauseOf(store, second)).resolves.toBe('paused');

    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'PAUSED_BUDGET', pause: second, pauses: 2 });
    expect([...store.waits.keys()]).toEqual(['apv_pause', 'apv_second']);
  });

  it("pauses while the budget's limit is the pause's, or the session has no such limit yet", async () => {
    const limited = new MemoryCheckpointStore();
    await limited.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, budgets: { costUsd: PAUSE.limit, steps: 3 } });
    await expect(pauseOf(limited)).resolves.toBe('paused');

    const other = new MemoryCheckpointStore();
    await other.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, budgets: { steps: 3 } });
    await expect(pauseOf(other)).resolves.toBe('paused');
  });

  it("answers raised, writing nothing, when the budget's limit changed since the run found it used up (a raise came first)", async () => {
    const store = new MemoryCheckpointStore();
    await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, budgets: { costUsd: PAUSE.limit } });
    await store.setBudgets((await store.getSession(SESSION_ID))!, { costUsd: 1 });
    const writes = store.writes.length;

    await expect(pauseOf(store)).resolves.toBe('raised');

    expect(store.writes).toHaveLength(writes);
    expect(store.waits.size).toBe(0);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'RUNNING', budgets: { costUsd: 1 } });
    expect(await store.getSession(SESSION_ID)).not.toHaveProperty('pause');
  });

  it('fails to pause with SessionFencedError for another execution, another wait, a session not RUNNING or none, and writes nothing (no wait either)', async () => {
    const store = await running();
    await expect(pauseOf(store, PAUSE, EXEC_2)).rejects.toBeInstanceOf(SessionFencedError);
    expect(store.waits.size).toBe(0);
    await pauseOf(store);
    const writes = store.writes.length;

    await expect(pauseOf(store, { ...PAUSE, approvalId: 'apv_other' })).rejects.toBeInstanceOf(SessionFencedError);
    await expect(pauseOf(store, PAUSE, EXEC_1, 'ses_unknown')).rejects.toBeInstanceOf(SessionFencedError);

    expect(store.writes).toHaveLength(writes);
    expect([...store.waits.keys()]).toEqual(['apv_pause']);
  });

  it('fails to pause with SessionFencedError, not raised, when the raised session is no longer RUNNING or belongs to another execution', async () => {
    const store = new MemoryCheckpointStore();
    await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, budgets: { costUsd: PAUSE.limit } });
    await store.setBudgets((await store.getSession(SESSION_ID))!, { costUsd: 1 });

    await expect(pauseOf(store, PAUSE, EXEC_2)).rejects.toBeInstanceOf(SessionFencedError);
    await store.cancel(SESSION_ID, { reason: 'enough' });
    await expect(pauseOf(store)).rejects.toBeInstanceOf(SessionFencedError);
    expect(store.waits.size).toBe(0);
  });

  it('raises the budgets of a paused session: RUNNING again, the paused seconds added up, the pause removed', async () => {
    let now = new Date('2024-12-10T11:10:07.000Z');
    const store = new MemoryCheckpointStore(() => now);
    await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, budgets: { costUsd: 0.05 } });
    await pauseOf(store);
    now = new Date('2024-12-10T11:25:00.000Z');
    const head = await store.getSession(SESSION_ID);
    expectTypeOf(store.setBudgets.bind(store)).toEqualTypeOf<CheckpointStore['setBudgets']>();

    await expect(store.setBudgets(head!, { costUsd: 1 })).resolves.toEqual(head);

    const raised = await store.getSession(SESSION_ID);
    // Paused from 11:15:00 to 11:25:00.
    expect(raised).toMatchObject({ status: 'RUNNING', budgets: { costUsd: 1 }, pausedSeconds: 600, pauses: 1 });
    expect(raised).not.toHaveProperty('pause');
  });

  it('sets the budgets of a RUNNING session without touching anything else', async () => {
    const store = await running();
    const head = await store.getSession(SESSION_ID);
    await expect(store.setBudgets(head!, { steps: 3 })).resolves.toEqual(head);
    expect(await store.getSession(SESSION_ID)).toEqual({ ...head, budgets: { steps: 3 } });
  });

  it('refuses a raise (undefined, nothing written) when the head changed since it was read, or the session has ended', async () => {
    const store = await running();
    const read = await store.getSession(SESSION_ID);
    await pauseOf(store);
    const writes = store.writes.length;
    await expect(store.setBudgets(read!, { costUsd: 1 })).resolves.toBeUndefined();
    const pausedHead = await store.getSession(SESSION_ID);
    await expect(store.setBudgets({ ...pausedHead!, pause: { ...PAUSE, approvalId: 'apv_other' } }, { costUsd: 1 })).resolves.toBeUndefined();
    await expect(store.setBudgets({ ...pausedHead!, status: 'SUCCEEDED' }, { costUsd: 1 })).resolves.toBeUndefined();
    expect(store.writes).toHaveLength(writes);
  });

  it('stops a paused session: STOPPED with why and when, its pause kept', async () => {
    const store = await running();
    await pauseOf(store);
    const head = await store.getSession(SESSION_ID);
    expectTypeOf(store.stop.bind(store)).toEqualTypeOf<CheckpointStore['stop']>();

    await expect(store.stop(head!, { reason: 'not worth more', by: 'alice' })).resolves.toEqual(head);

    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'STOPPED', stop: { reason: 'not worth more', by: 'alice', at: '2024-12-10T11:10:07.000Z' }, pause: PAUSE });
  });

  it('refuses to stop (undefined, nothing written) a session not paused, or paused by another wait since it was read', async () => {
    const store = await running();
    const runningHead = await store.getSession(SESSION_ID);
    await expect(store.stop(runningHead!, { reason: 'x' })).resolves.toBeUndefined();
    await pauseOf(store);
    const pausedHead = await store.getSession(SESSION_ID);
    const writes = store.writes.length;
    await expect(store.stop({ ...pausedHead!, pause: { ...PAUSE, approvalId: 'apv_other' } }, { reason: 'x' })).resolves.toBeUndefined();
    await store.setBudgets(pausedHead!, { costUsd: 1 });
    await expect(store.stop(pausedHead!, { reason: 'x' })).resolves.toBeUndefined();
    expect(store.writes).toHaveLength(writes + 1);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'RUNNING' });
  });

  it('refuses fenced checkpoint writes while the session is paused', async () => {
    const store = await running();
    await pauseOf(store);
    await expect(store.putCheckpoint(without(modelRecord(1, [text('{}')])), EXEC_1)).rejects.toBeInstanceOf(SessionFencedError);
  });

  it('creates a session with its principal, budgets and sub-agent depth', async () => {
    const store = new MemoryCheckpointStore();
    const principal = { user: 'alice', tenant: 'acme', roles: ['analyst'] };
    const { session } = await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO, principal, budgets: { steps: 3 }, depth: 1 });
    expect(session).toMatchObject({ principal, budgets: { steps: 3 }, depth: 1 });
    expect(await store.getSession(SESSION_ID)).toEqual(session);
  });

  it('reopens a FAILED session for its own execution: RUNNING, the failure removed and returned, the execution unchanged', async () => {
    const store = await running();
    const failure = { error: 'States.Timeout', cause: 'the execution timed out', failedState: 'Execution' };
    store.patch(SESSION_ID, 'SESSION', { status: 'FAILED', failure });

    expectTypeOf(store.reopen.bind(store)).toEqualTypeOf<CheckpointStore['reopen']>();
    await expect(store.reopen(SESSION_ID, EXEC_1)).resolves.toEqual(failure);

    const head = await store.getSession(SESSION_ID);
    expect(head).toMatchObject({ status: 'RUNNING', executionArn: EXEC_1, executions: 1, branch: 0 });
    expect(head).not.toHaveProperty('failure');
  });

  it('refuses to reopen (undefined, nothing written) for another execution, a session not FAILED, or no session', async () => {
    const store = await running();
    expect(await store.reopen(SESSION_ID, EXEC_1)).toBeUndefined();
    store.patch(SESSION_ID, 'SESSION', { status: 'FAILED', failure: { error: 'States.Timeout', cause: 'slow', failedState: 'Execution' } });
    const writes = store.writes.length;
    expect(await store.reopen(SESSION_ID, EXEC_2)).toBeUndefined();
    expect(await store.reopen('ses_unknown', EXEC_1)).toBeUndefined();
    store.patch(SESSION_ID, 'SESSION', { status: 'CANCELLED' });
    expect(await store.reopen(SESSION_ID, EXEC_1)).toBeUndefined();
    expect(store.writes).toHaveLength(writes + 1);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ status: 'CANCELLED', failure: { error: 'States.Timeout' } });
  });

  it('reopens a version 1 head as a version 2 one', async () => {
    const store = new MemoryCheckpointStore();
    store.seed({ ...sessionHeadItem('FAILED', 3), executionArn: EXEC_1, failure: { error: 'States.Runtime', cause: 'x', failedState: 'Execution' } });
    await expect(store.reopen(SESSION_ID, EXEC_1)).resolves.toMatchObject({ error: 'States.Runtime' });
    expect(store.dump(SESSION_ID).SESSION).toMatchObject({ schemaVersion: 2, executions: 1, branch: 0, status: 'RUNNING', step: 3 });
  });
});

describe('MemoryCheckpointStore: rollBack and abandoned checkpoints', () => {
  /** A RUNNING session with the input and two model turns, the first with a tool call. */
  async function twoTurns(): Promise<MemoryCheckpointStore> {
    const store = await running();
    await store.putCheckpoint(without(inputRecord('q')));
    await store.putCheckpoint(without(modelRecord(1, [text('{}')])));
    await store.putCheckpoint(without(toolRecord(1, 'c1', '{}')));
    await store.putCheckpoint(without(modelRecord(2, [text('{}')])));
    return store;
  }
  const ROLLBACK = { branch: 1, toStep: 0, fromStep: 2, abandoned: [checkpointKey.model(1), checkpointKey.tool(1, 'c1'), checkpointKey.model(2)], reason: 'wrong path' };

  it('moves the head to the new branch at toStep, the abandoned checkpoints under ABANDONED#<branch> (listed by listAbandoned, not listCheckpoints), and writes the ROLLBACK# record', async () => {
    const store = await twoTurns();
    expectTypeOf(store.rollBack.bind(store)).toEqualTypeOf<CheckpointStore['rollBack']>();
    expectTypeOf(store.listAbandoned.bind(store)).toEqualTypeOf<CheckpointStore['listAbandoned']>();

    await expect(store.rollBack((await store.getSession(SESSION_ID))!, ROLLBACK)).resolves.toBe(true);

    expect(await store.getSession(SESSION_ID)).toMatchObject({ branch: 1, step: 0, status: 'RUNNING', executionArn: EXEC_1 });
    expect((await store.listCheckpoints(SESSION_ID)).map((r) => r.sk)).toEqual([checkpointKey.input()]);
    const abandoned = await store.listAbandoned(SESSION_ID);
    expect(abandoned.map((r) => r.sk)).toEqual(ROLLBACK.abandoned.map((sk) => checkpointKey.abandoned(1, sk)));
    expect(abandoned.map((r) => r.kind)).toEqual(['model', 'tool', 'model']);
    expect(store.dump(SESSION_ID)[checkpointKey.abandoned(1, checkpointKey.model(1))]).toMatchObject({ abandonedBy: 1, abandonedAt: '2024-12-10T11:10:07.000Z' });
    expect(await store.getCheckpoint(SESSION_ID, checkpointKey.rollback(1))).toMatchObject({ kind: 'rollback', ...ROLLBACK });
  });

  it('refuses a rollback (false, nothing written) for another execution than the head has, or when the branch moved meanwhile', async () => {
    const store = await twoTurns();
    const head = (await store.getSession(SESSION_ID))!;
    const before = store.dump(SESSION_ID);

    await expect(store.rollBack({ ...head, executionArn: EXEC_2 }, ROLLBACK)).resolves.toBe(false);
    await expect(store.rollBack(head, { ...ROLLBACK, branch: 2 })).resolves.toBe(false);

    expect(store.dump(SESSION_ID)).toEqual(before);
    expect(await store.listAbandoned(SESSION_ID)).toEqual([]);
  });
});
