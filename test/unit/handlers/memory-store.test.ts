/** The in-memory store keeps the CheckpointStore's contract; the step tests rely on it. */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { checkpointKey } from '../../../lambdas/core/contracts/checkpoint';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';
import { API_TRIGGER_INFO, inputRecord, modelRecord, SESSION_ID, text, toolRecord } from '../support/records';
import { MemoryCheckpointStore } from './memory-store';

const EXEC_1 = 'arn:aws:states:us-east-1:123456789012:execution:unit:one';
const EXEC_2 = 'arn:aws:states:us-east-1:123456789012:execution:unit:two';
/** A record as a step hands it to putCheckpoint: without the fields the store fills in. */
const without = <T extends { schemaVersion: number; createdAt: string }>({ schemaVersion: _v, createdAt: _c, ...rest }: T): Omit<T, 'schemaVersion' | 'createdAt'> => rest;

describe('MemoryCheckpointStore', () => {
  it('creates a session once: the second create returns the first head with created false', async () => {
    const store = new MemoryCheckpointStore();
    const first = await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO });
    const second = await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_2, trigger: API_TRIGGER_INFO });
    expect(first).toMatchObject({ created: true, session: { status: 'RUNNING', step: 0, executionArn: EXEC_1 } });
    expect(second).toEqual({ created: false, session: first.session });
  });

  it('writes a checkpoint once: the second write returns the first record with created false', async () => {
    const store = new MemoryCheckpointStore();
    const first = await store.putCheckpoint(without(toolRecord(1, 'c1', '"first"')));
    const second = await store.putCheckpoint(without(toolRecord(1, 'c1', '"second"')));
    expect(first.created).toBe(true);
    expect(second).toEqual({ created: false, record: expect.objectContaining({ result: '"first"' }) as unknown });
    expect(await store.getCheckpoint(SESSION_ID, checkpointKey.tool(1, 'c1'))).toMatchObject({ result: '"first"' });
  });

  it('fails when a checkpoint does not match the schema, and stores nothing', async () => {
    const store = new MemoryCheckpointStore();
    await expect(store.putCheckpoint({ ...without(toolRecord(1, 'c1', '{}')), result: 42 as unknown as string })).rejects.toThrow();
    expect(store.dump(SESSION_ID)).toEqual({});
  });

  it('lists the checkpoints of a session in sort-key order, without the head', async () => {
    const store = new MemoryCheckpointStore();
    await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO });
    await store.putCheckpoint(without(modelRecord(10, [text('{}')])));
    await store.putCheckpoint(without(toolRecord(2, 'c1', '{}')));
    await store.putCheckpoint(without(inputRecord('q')));
    await store.putCheckpoint(without(modelRecord(2, [text('{}')])));
    expect((await store.listCheckpoints(SESSION_ID)).map((r) => r.sk)).toEqual([checkpointKey.input(), checkpointKey.model(2), checkpointKey.tool(2, 'c1'), checkpointKey.model(10)]);
    expect(await store.listCheckpoints('ses_other')).toEqual([]);
  });

  it('moves the head step forward only, and marks it SUCCEEDED with the output', async () => {
    const store = new MemoryCheckpointStore();
    await store.createSession({ sessionId: SESSION_ID, agent: 'unit', executionArn: EXEC_1, trigger: API_TRIGGER_INFO });
    await store.recordStep(SESSION_ID, 3);
    await store.recordStep(SESSION_ID, 2);
    expect(await store.getSession(SESSION_ID)).toMatchObject({ step: 3, status: 'RUNNING' });
    await store.markSucceeded(SESSION_ID, 4, { answer: 'x' });
    expect(await store.getSession(SESSION_ID)).toMatchObject({ step: 4, status: 'SUCCEEDED', output: { answer: 'x' } });
  });

  it('ignores recordStep without a head, and fails markSucceeded without one', async () => {
    const store = new MemoryCheckpointStore();
    await store.recordStep(SESSION_ID, 1);
    expect(await store.getSession(SESSION_ID)).toBeUndefined();
    await expect(store.markSucceeded(SESSION_ID, 1, {})).rejects.toBeInstanceOf(ConditionalCheckFailedException);
  });

  it('fails with CorruptCheckpointError when reading a record of an unsupported schema version', async () => {
    const store = new MemoryCheckpointStore();
    store.seed({ ...toolRecord(1, 'c1', '{}'), schemaVersion: 99 });
    await expect(store.getCheckpoint(SESSION_ID, checkpointKey.tool(1, 'c1'))).rejects.toBeInstanceOf(CorruptCheckpointError);
    await expect(store.listCheckpoints(SESSION_ID)).rejects.toThrow(/unsupported schemaVersion 99/);
  });
});
