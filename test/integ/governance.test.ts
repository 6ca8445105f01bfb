/**
 * Governance on the local cloud (agents in test/fixtures/governance.ts): budgets
 * with their 80% event, pause, raise and stop; a tool budget used up; invalid
 * arguments rejected without running the tool; a restricted tool invisible and
 * indistinguishable from a missing one; a permission revoked mid-run; a rule
 * failure repaired, one escalated to a human; a low-confidence answer reviewed.
 */
import { describe, expect, it } from 'vitest';
import { PolicyStore } from '../../lambdas/adapters/policy-engine';
import type { ModelCheckpoint, NoticeRecord, PauseRecord, ToolCheckpoint } from '../../lambdas/core/contracts/checkpoint';
import { BUDGET_COST_USD, REVOKED_POLICIES } from '../fixtures/governance';
import { api, checkpoints, doc, ended, eventually, expectCompleteEventLog, history, outputs, publishedFor, uniqueKey } from './harness';

const BOB = { user: 'bob', tenant: 'acme', roles: ['analyst'] };
const question = { question: 'q' };

const models = (records: Awaited<ReturnType<typeof checkpoints>>): ModelCheckpoint[] => records.filter((r): r is ModelCheckpoint => r.kind === 'model');
const tools = (records: Awaited<ReturnType<typeof checkpoints>>): ToolCheckpoint[] => records.filter((r): r is ToolCheckpoint => r.kind === 'tool');

/**
 * The run once paused for its budget, with the pause's approval listed: pending approvals
 * come from a secondary index, which follows the pause's write (eventually consistent).
 */
async function pausedForBudget(sessionId: string): Promise<Awaited<ReturnType<typeof api.getRun>>> {
  return eventually(`session ${sessionId} PAUSED_BUDGET with its approval`, async () => {
    const run = await api.getRun(sessionId).catch(() => undefined);
    return run?.status === 'PAUSED_BUDGET' && run.pendingApprovals.length > 0 ? run : undefined;
  }, 60_000);
}

describe('budgets', () => {
  it('announces 80% once, pauses at 100% with a snapshot, and finishes where it stopped after a raise', async () => {
    const run = await api.startRun('integ-budget', question, uniqueKey('budget-raise'));
    const paused = await pausedForBudget(run.sessionId);
    expect(paused.pause).toMatchObject({ budget: 'costUsd', used: 3, limit: BUDGET_COST_USD, step: 3 });
    expect(paused.pendingApprovals.map((a) => a.tool)).toEqual(['budget:costUsd']);

    const threshold = await publishedFor(run.sessionId, 'BudgetThresholdReached');
    expect(threshold).toEqual([expect.objectContaining({ budget: 'costUsd', used: 2, limit: BUDGET_COST_USD, step: 2 })]);
    const exhausted = await publishedFor(run.sessionId, 'BudgetExhausted');
    expect(exhausted[0]).toMatchObject({ budget: 'costUsd', used: 3, limit: BUDGET_COST_USD });

    const raised = await api.raiseBudget(run.sessionId, { budgets: { costUsd: 5 }, reason: 'worth it', requestedBy: 'integ' });
    expect(raised).toMatchObject({ status: 'RUNNING', budgets: { costUsd: 5 }, resumed: true });
    await ended(run.executionArn, 'SUCCEEDED');

    const done = await api.getRun(run.sessionId);
    expect(done).toMatchObject({ status: 'SUCCEEDED', step: 4, budgets: { costUsd: 5 }, output: { answer: 'echoed three times' } });
    const records = await checkpoints(run.sessionId);
    // Every model call is accounted: four turns at 1 USD; each echo run once.
    expect(models(records).map((m) => m.costUsd)).toEqual([1, 1, 1, 1]);
    expect(tools(records).map((t) => t.callId)).toEqual(['toolu_b1', 'toolu_b2', 'toolu_b3']);
    // Once per budget per session, though turns 3 and 4 were past 80% too; one pause snapshot.
    expect(records.filter((r): r is NoticeRecord => r.kind === 'notice')).toEqual([expect.objectContaining({ notice: 'BudgetThresholdReached', step: 2, detail: { budget: 'costUsd', used: 2, limit: BUDGET_COST_USD } })]);
    expect(records.filter((r): r is PauseRecord => r.kind === 'pause')).toEqual([expect.objectContaining({ budget: 'costUsd', used: 3, step: 3, budgets: { costUsd: BUDGET_COST_USD } })]);
    await publishedFor(run.sessionId, 'SessionResumed');
    await expectCompleteEventLog(run.sessionId, 'SessionSucceeded');
    const types = (await api.getEvents(run.sessionId)).map((e) => e.type);
    expect(types.filter((t) => t === 'BudgetThresholdReached')).toHaveLength(1);
    expect(types).toEqual(expect.arrayContaining(['BudgetExhausted', 'SessionPaused', 'SessionResumed']));
    expect(types.indexOf('SessionPaused')).toBeLessThan(types.indexOf('SessionResumed'));
  });

  it('ends STOPPED with its partial results when stopped while paused', async () => {
    const run = await api.startRun('integ-budget', question, uniqueKey('budget-stop'));
    await pausedForBudget(run.sessionId);
    const stopped = await api.stop(run.sessionId, { reason: 'not worth more', requestedBy: 'integ' });
    expect(stopped).toMatchObject({ status: 'STOPPED', step: 3, completedToolCalls: 3, pause: { budget: 'costUsd', used: 3, limit: BUDGET_COST_USD } });

    await ended(run.executionArn, 'SUCCEEDED');
    const states = (await history(run.executionArn)).filter((e) => e.type === 'SucceedStateEntered').map((e) => e.stateEnteredEventDetails?.name);
    expect(states).toContain('Stopped');
    const run2 = await api.getRun(run.sessionId);
    expect(run2).toMatchObject({ status: 'STOPPED', stop: { reason: 'not worth more', by: 'integ' } });
    expect(run2.output).toBeUndefined();
    // The partial results: three model turns and their tool results, kept.
    const records = await checkpoints(run.sessionId);
    expect(models(records)).toHaveLength(3);
    expect(tools(records).map((t) => t.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(records.filter((r): r is PauseRecord => r.kind === 'pause')).toHaveLength(1);
    await publishedFor(run.sessionId, 'SessionStopped');
    await expect(api.raiseBudget(run.sessionId, { budgets: { costUsd: 9 } })).rejects.toMatchObject({ status: 409 });
  });
});

describe('tools and policies', () => {
  it('enforces tool budgets, schemas and policies, and applies a revocation at the next call', async () => {
    const run = await api.startRun('integ-tools', question, uniqueKey('tools'), { principal: BOB });
    const pending = await api.waitForApproval(run.sessionId);
    expect(pending.tool).toBe('gate');
    // The turn's calls run concurrently, in no fixed order: the gate may wait before
    // probe has run. Revoke probe once it has, while the gate waits: the next model
    // turn and call see it.
    await eventually('probe (toolu_t6) to have run', async () => tools(await checkpoints(run.sessionId)).find((t) => t.callId === 'toolu_t6'));
    const policies = new PolicyStore(doc, outputs.PolicyTableName ?? '');
    await policies.put('integ-tools', REVOKED_POLICIES, 'integ');
    try {
      await api.decide(pending.approvalId, 'approve', 'ok', 'integ');
      await ended(run.executionArn, 'SUCCEEDED');
    } finally {
      await policies.remove('integ-tools');
    }
    const records = await checkpoints(run.sessionId);
    const [turn1, turn2] = models(records);

    // The restricted tool was never offered; calling it and calling a missing tool get the same answer.
    expect(turn1?.offeredTools).toEqual(['limited_echo', 'count_effect', 'probe', 'gate']);
    const answer = (id: string) => turn1?.inlineResults.find((r) => r.toolUseId === id);
    expect(answer('toolu_t4')?.content.replace('secret_tool', 'X')).toBe(answer('toolu_t5')?.content.replace('no_such_tool', 'X'));
    expect(answer('toolu_t4')).toMatchObject({ isError: true });
    // The event log keeps the real reasons.
    expect(turn1?.denials).toEqual([
      expect.objectContaining({ callId: 'toolu_t4', tool: 'secret_tool', reason: 'denied' }),
      expect.objectContaining({ callId: 'toolu_t5', tool: 'no_such_tool', reason: 'not_declared' }),
    ]);

    // Invalid arguments: not run, the model told which field, what was expected and what it got.
    const invalid = tools(records).find((t) => t.callId === 'toolu_t3');
    expect(invalid).toMatchObject({ status: 'invalid_input', isError: true, costUsd: 0 });
    expect(JSON.parse(invalid?.result ?? '{}')).toMatchObject({ error: 'INVALID_ARGUMENTS', issues: [{ field: 'label', expected: 'string', got: '42' }] });
    expect(records.some((r) => r.kind === 'intent' && r.callId === 'toolu_t3')).toBe(false);

    // The tool budget: two calls ran (and cost), the third was refused without running.
    expect(tools(records).filter((t) => t.tool === 'limited_echo').map((t) => [t.callId, t.costUsd])).toEqual([
      ['toolu_t1', 0.01],
      ['toolu_t2', 0.01],
    ]);
    expect(turn2?.inlineResults.find((r) => r.toolUseId === 'toolu_t8')?.content).toContain('TOOL_BUDGET_EXCEEDED');
    const exceeded = await publishedFor(run.sessionId, 'ToolBudgetExceeded');
    expect(exceeded[0]).toMatchObject({ tool: 'limited_echo', callId: 'toolu_t8', callsPerSession: 2 });

    // The revocation: probe ran in turn 1, was not offered in turn 2, and its call there was answered as missing.
    expect(tools(records).find((t) => t.callId === 'toolu_t6')).toMatchObject({ status: 'succeeded' });
    expect(turn2?.offeredTools).toEqual(['limited_echo', 'count_effect', 'gate']);
    expect(turn2?.denials).toEqual(expect.arrayContaining([expect.objectContaining({ callId: 'toolu_t9', tool: 'probe', reason: 'denied', policyVersion: expect.any(String) as unknown })]));
    expect(turn2?.inlineResults.find((r) => r.toolUseId === 'toolu_t9')?.content).toContain('UNKNOWN_TOOL');
    await expectCompleteEventLog(run.sessionId, 'SessionSucceeded');
    expect((await api.getEvents(run.sessionId)).map((e) => e.type)).toContain('ToolBudgetExceeded');
  });
});

describe('output pipeline', () => {
  it('sends a rule failure back to the model, then routes a low-confidence answer to a human', async () => {
    const run = await api.startRun('integ-rules', question, uniqueKey('rules'));
    const pending = await api.waitForApproval(run.sessionId);
    expect(pending).toMatchObject({ tool: 'output_review', input: { output: { answer: 'see id-7', cited: ['id-7'] }, confidence: 0.4 } });
    expect((pending.input as { reasons: string[] }).reasons.join(' ')).toContain('0.7');
    await api.decide(pending.approvalId, 'approve', 'checked by hand', 'integ');
    await ended(run.executionArn, 'SUCCEEDED');
    expect(await api.getRun(run.sessionId)).toMatchObject({ status: 'SUCCEEDED', output: { answer: 'see id-7', cited: ['id-7'] } });

    const [, repaired, reviewed] = models(await checkpoints(run.sessionId));
    expect(repaired).toMatchObject({ outcome: 'repair' });
    expect(repaired?.validationErrors?.join(' ')).toContain('cited-ids-exist');
    expect(repaired?.stages?.map((s) => [s.stage, s.outcome])).toEqual([
      ['parse', 'passed'],
      ['schema', 'passed'],
      ['rules', 'failed'],
      ['confidence', 'passed'],
      ['gate', 'skipped'],
    ]);
    expect(reviewed).toMatchObject({ outcome: 'review', confidence: 0.4 });
    expect(reviewed?.stages?.find((s) => s.stage === 'gate')).toMatchObject({ outcome: 'failed' });
    await expectCompleteEventLog(run.sessionId, 'SessionSucceeded');
  });

  it('escalates a rule failure to a human when no repairs are left, and fails the run when they reject it', async () => {
    const run = await api.startRun('integ-escalate', question, uniqueKey('escalate'));
    const pending = await api.waitForApproval(run.sessionId);
    expect(pending.tool).toBe('output_review');
    expect((pending.input as { reasons: string[] }).reasons.join(' ')).toContain('cited id "id-3"');
    await api.decide(pending.approvalId, 'reject', 'id-3 does not exist', 'integ');
    expect(await ended(run.executionArn, 'FAILED')).toMatchObject({ error: 'OutputRejected' });
    expect(await api.getRun(run.sessionId)).toMatchObject({ status: 'FAILED', failure: { error: 'OutputRejected' } });
    expect((await api.getRun(run.sessionId)).failure?.cause).toContain('id-3 does not exist');
    await expectCompleteEventLog(run.sessionId, 'SessionFailed');
  });
});
