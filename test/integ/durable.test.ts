/**
 * Durable execution on the deployed state machines: the fault-injection suite
 * (every Lambda state of the loop failing once by throw, timeout and process
 * kill), a provider outage past the retries resumed after recovery, a crash
 * between a non-idempotent tool's side effect and its return, continue-as-new
 * across executions, cancel, and rollback.
 *
 * Faults are rows of the runtime's fault table (deployed with `faultInjection: true`),
 * written before the run starts; the run's session id is known in advance from
 * its idempotency key. The durability agent's tools count their side effects in
 * the effects table; every counter must end at exactly 1.
 */
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { ExecutionRecord, ToolCheckpoint } from '../../lambdas/core/contracts/checkpoint';
import { sessionIdFor } from '../../lambdas/core/ids';
import { targetsLocalCloud } from '../../scripts/lib/cloud';
import { LONG_RUN_TURNS } from '../fixtures/agents';
import { api, checkpoints, doc, ended, eventually, expectCompleteEventLog, history, outputs, uniqueKey } from './harness';

const DURABLE = 'integ-durable';
type Point = 'Prepare' | 'ModelTurn' | 'RunTool' | 'RunTool.afterSideEffect' | 'RequestApproval';
type Mode = 'throw' | 'timeout' | 'kill';

const table = (name: string): string => {
  const value = outputs[name];
  if (!value) throw new Error(`stack output ${name} missing`);
  return value;
};

/** Plans a fault: the next `times` arrivals of the session's steps at `point` fail by `mode`. */
async function injectFault(sessionId: string, point: Point, mode: Mode, times = 1): Promise<void> {
  await doc.send(new PutCommand({ TableName: table('FaultTableName'), Item: { sessionId, point, mode, remaining: times } }));
}

/** How many times the fault at `point` fired. */
async function fired(sessionId: string, point: Point): Promise<number> {
  const out = await doc.send(new GetCommand({ TableName: table('FaultTableName'), Key: { sessionId, point }, ConsistentRead: true }));
  return Number(out.Item?.fired ?? 0);
}

/** How many times the durability agent's tool call `callId` applied its effect. */
async function applied(sessionId: string, callId: string): Promise<number> {
  const out = await doc.send(new GetCommand({ TableName: table('EffectTableName'), Key: { effectId: `${sessionId}#${callId}` }, ConsistentRead: true }));
  return Number(out.Item?.applied ?? 0);
}

interface Driven {
  readonly sessionId: string;
  readonly resumes: number;
  readonly approvals: number;
}

/**
 * Runs the durability agent to its end as an operator would: approves what waits
 * for approval, and resumes the session (after `resumeAfterMs`: an in-progress
 * idempotency lock lasts the killed function's timeout) whenever it failed.
 */
async function drive(label: string, plan: (sessionId: string) => Promise<void>, opts: { maxResumes?: number; resumeAfterMs?: number } = {}): Promise<Driven> {
  const key = uniqueKey(label);
  const sessionId = sessionIdFor(DURABLE, key);
  await plan(sessionId);
  await api.startRun(DURABLE, { question: label }, key);
  let resumes = 0;
  let approvals = 0;
  const until = Date.now() + 240_000;
  for (;;) {
    if (Date.now() > until) throw new Error(`${label}: session ${sessionId} did not finish`);
    const run = await api.getRun(sessionId).catch(() => undefined);
    if (run?.status === 'SUCCEEDED') return { sessionId, resumes, approvals };
    if (run?.status === 'FAILED') {
      if (resumes >= (opts.maxResumes ?? 2)) throw new Error(`${label}: still FAILED after ${resumes} resume(s): ${JSON.stringify(run.failure)}`);
      await new Promise((r) => setTimeout(r, opts.resumeAfterMs ?? 6_000));
      await api.resume(sessionId, { reason: `integ ${label}` });
      resumes++;
      await eventually(`${sessionId} running again`, async () => ((await api.getRun(sessionId)).status === 'FAILED' ? undefined : true), 30_000);
      continue;
    }
    const pending = run?.pendingApprovals[0];
    if (pending) {
      await api.decide(pending.approvalId, 'approve', 'integ', 'integ-test').catch(() => undefined);
      approvals++;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The run's effects were applied once each, it ended SUCCEEDED, and its event log is complete. */
async function expectExactlyOnce(sessionId: string): Promise<void> {
  expect(await applied(sessionId, 'toolu_d1')).toBe(1);
  expect(await applied(sessionId, 'toolu_d2')).toBe(1);
  const run = await api.getRun(sessionId);
  expect(run).toMatchObject({ status: 'SUCCEEDED', output: { answer: 'both effects applied' } });
  await expectCompleteEventLog(sessionId, 'SessionSucceeded');
}

const POINTS: Point[] = ['Prepare', 'ModelTurn', 'RunTool'];
const MODES: Mode[] = ['throw', 'timeout', 'kill'];

describe('fault injection: each Lambda state of the loop fails once', () => {
  it.concurrent.each(POINTS.flatMap((point) => MODES.map((mode) => [point, mode] as const)))(
    '%s fails by %s: the run succeeds and each side effect is applied exactly once',
    async (point, mode) => {
      const { sessionId } = await drive(`fault-${point}-${mode}`, (s) => injectFault(s, point, mode));
      expect(await fired(sessionId, point)).toBe(1);
      await expectExactlyOnce(sessionId);
    },
    300_000,
  );

  // On AWS a failed invocation fails a `.waitForTaskToken` task, which Retry then retries.
  // MiniStack 1.5.33 swallows it (stepfunctions.py, _invoke_with_callback: `except
  // _ExecutionError: pass`), so there the wait runs to its TimeoutSeconds and the
  // call counts as rejected ("timed out"). Either way: the run succeeds and no effect
  // happens twice.
  it.concurrent.each(MODES)(
    'RequestApproval fails by %s: the run succeeds and no side effect is applied twice',
    async (mode) => {
      const { sessionId } = await drive(`fault-RequestApproval-${mode}`, (s) => injectFault(s, 'RequestApproval', mode));
      expect(await fired(sessionId, 'RequestApproval')).toBe(1);
      if (!targetsLocalCloud()) {
        await expectExactlyOnce(sessionId);
        return;
      }
      const guarded = (await checkpoints(sessionId)).find((r): r is ToolCheckpoint => r.kind === 'tool' && r.callId === 'toolu_d2');
      expect(guarded).toMatchObject({ status: 'rejected', approval: { decision: 'timed_out' } });
      expect(await applied(sessionId, 'toolu_d1')).toBe(1);
      expect(await applied(sessionId, 'toolu_d2')).toBe(0);
      expect((await api.getRun(sessionId)).status).toBe('SUCCEEDED');
      await expectCompleteEventLog(sessionId, 'SessionSucceeded');
    },
    300_000,
  );
});

describe('recovery', () => {
  it('a model step failing past its retries during a provider outage is resumed after recovery and completes', async () => {
    // 4 failures: the first attempt and its 3 retries. The 5th arrival (the resumed execution) finds the provider back.
    const { sessionId, resumes } = await drive('outage', (s) => injectFault(s, 'ModelTurn', 'throw', 4), { resumeAfterMs: 500 });
    expect(await fired(sessionId, 'ModelTurn')).toBe(4);
    expect(resumes).toBe(1);
    const records = await checkpoints(sessionId);
    const executions = records.filter((r): r is ExecutionRecord => r.kind === 'execution').sort((a, b) => a.execution - b.execution);
    expect(executions.map((e) => e.reason)).toEqual(['start', 'resume']);
    expect(executions[1]?.parentExecutionArn).toBe(executions[0]?.executionArn);
    // Only the failed execution went to the DLQ path; the resumed one ended SUCCEEDED.
    await ended(executions[0]?.executionArn ?? '', 'FAILED');
    await ended(executions[1]?.executionArn ?? '', 'SUCCEEDED');
    await expectExactlyOnce(sessionId);
  }, 300_000);

  it.concurrent.each(['throw', 'kill'] as const)(
    'a crash (%s) between a non-idempotent tool\'s side effect and its return never repeats the effect',
    async (mode) => {
      const { sessionId } = await drive(`after-effect-${mode}`, (s) => injectFault(s, 'RunTool.afterSideEffect', mode));
      expect(await fired(sessionId, 'RunTool.afterSideEffect')).toBe(1);
      const records = await checkpoints(sessionId);
      const first = records.find((r): r is ToolCheckpoint => r.kind === 'tool' && r.callId === 'toolu_d1');
      // The effect happened once; its outcome was not seen, so the model is told so instead of it running again.
      expect(first).toMatchObject({ status: 'outcome_unknown', isError: true });
      expect(first?.result).toContain('OUTCOME_UNKNOWN');
      expect(records.some((r) => r.kind === 'intent' && r.callId === 'toolu_d1')).toBe(true);
      await expectExactlyOnce(sessionId);
    },
    300_000,
  );
});

describe('continue-as-new', () => {
  it('a long run continues in new executions linked by session and parent, transparently to the caller', async () => {
    const key = uniqueKey('long');
    const started = await api.startRun('integ-long-run', { question: 'echo' }, key);
    const run = await eventually('the long run to finish', async () => {
      const r = await api.getRun(started.sessionId);
      return r.status === 'RUNNING' ? undefined : r;
    }, 120_000);
    expect(run).toMatchObject({ status: 'SUCCEEDED', output: { answer: `echoed ${LONG_RUN_TURNS} times` }, step: LONG_RUN_TURNS + 1 });

    const records = await checkpoints(started.sessionId);
    const executions = records.filter((r): r is ExecutionRecord => r.kind === 'execution').sort((a, b) => a.execution - b.execution);
    // Four one-tool turns fit under the lowered limit: 12 turns and the answer take 4 executions (3 crossings).
    expect(executions.length).toBeGreaterThanOrEqual(3);
    expect(executions[0]).toMatchObject({ reason: 'start', executionArn: started.executionArn });
    for (const [i, e] of executions.entries()) {
      if (i === 0) continue;
      expect(e).toMatchObject({ reason: 'continue-as-new', execution: i + 1, parentExecutionArn: executions[i - 1]?.executionArn });
      const parent = await history(executions[i - 1]?.executionArn ?? '');
      expect(parent.at(-1)?.type).toBe('ExecutionSucceeded');
      expect(parent.some((h) => h.stateEnteredEventDetails?.name === 'ContinueAsNew')).toBe(true);
    }
    expect(run.executionArn).toBe(executions.at(-1)?.executionArn);
    expect(run.executions).toBe(executions.length);
    // The 20 KB results went to S3 by reference, and the conversation still reached the model whole.
    const results = records.filter((r): r is ToolCheckpoint => r.kind === 'tool');
    expect(results).toHaveLength(LONG_RUN_TURNS);
    for (const r of results) {
      expect(r).toMatchObject({ status: 'succeeded', resultRef: { bytes: expect.any(Number) as number } });
      expect(r.result).toBeUndefined();
    }
    await expectCompleteEventLog(started.sessionId, 'SessionSucceeded');
  }, 180_000);
});

describe('cancel', () => {
  it('stops the current execution, records why, and leaves nothing running', async () => {
    const key = uniqueKey('cancel');
    const started = await api.startRun(DURABLE, { question: 'cancel me' }, key);
    await api.waitForApproval(started.sessionId);
    const answer = await api.cancel(started.sessionId, { reason: 'wrong host', requestedBy: 'integ-test' });
    expect(answer.status).toBe('CANCELLED');
    await ended(started.executionArn, 'ABORTED');
    const run = await api.getRun(started.sessionId);
    expect(run).toMatchObject({ status: 'CANCELLED', cancellation: { reason: 'wrong host', by: 'integ-test' }, pendingApprovals: [] });
    // The backstop saw the ABORTED execution and left the cancelled session as it was.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await api.getRun(started.sessionId)).status).toBe('CANCELLED');
    await expect(api.resume(started.sessionId, {})).rejects.toMatchObject({ status: 409 });
    expect(await applied(started.sessionId, 'toolu_d2')).toBe(0);
  }, 120_000);
});

describe('rollback', () => {
  it('makes step N the head, continues from there, and keeps the later steps in the log as abandoned', async () => {
    const key = uniqueKey('rollback');
    const started = await api.startRun('integ-rollback', { question: 'echo' }, key);
    const { sessionId } = started;
    await eventually('the first run', async () => ((await api.getRun(sessionId)).status === 'SUCCEEDED' ? true : undefined), 60_000);
    const before = await checkpoints(sessionId);

    const rolled = await api.rollback(sessionId, { toStep: 2, reason: 'redo from step 2', requestedBy: 'integ-test' });
    expect(rolled).toMatchObject({ sessionId, branch: 1, execution: 2, abandoned: 5 });
    await ended(rolled.executionArn, 'SUCCEEDED');
    const run = await api.getRun(sessionId);
    expect(run).toMatchObject({ status: 'SUCCEEDED', branch: 1, executions: 2, executionArn: rolled.executionArn });
    expect(run.output).toEqual({ answer: 'echoed 4 times', confidence: 1 });

    const after = await checkpoints(sessionId);
    const abandoned = after.filter((r) => r.sk.startsWith('ABANDONED#0001#'));
    const later = before.filter((r) => r.sk.startsWith('CP#') && 'step' in r && r.step > 2);
    expect(abandoned.map((r) => r.sk.replace('ABANDONED#0001#', '')).sort()).toEqual(later.map((r) => r.sk).sort());
    expect(after.find((r) => r.kind === 'rollback')).toMatchObject({ branch: 1, toStep: 2, fromStep: 5, reason: 'redo from step 2' });
    // Steps 1-2 were kept; 3-5 were run again on the new branch.
    const models = after.filter((r) => r.kind === 'model' && r.sk.startsWith('CP#'));
    expect(models).toHaveLength(5);
    expect(after.filter((r): r is ExecutionRecord => r.kind === 'execution').map((e) => e.reason)).toEqual(['start', 'rollback']);

    const events = await eventually('the rollback in the event log', async () => {
      const rows = await api.getEvents(sessionId);
      return rows.at(-1)?.type === 'SessionSucceeded' && rows.some((e) => e.type === 'SessionRolledBack') ? rows : undefined;
    }, 30_000);
    const rollbackAt = events.findIndex((e) => e.type === 'SessionRolledBack');
    expect(events.filter((e) => e.type === 'CheckpointAbandoned')).toHaveLength(later.length);
    expect(events.slice(0, rollbackAt).filter((e) => e.type === 'SessionSucceeded')).toHaveLength(1);
  }, 120_000);
});
