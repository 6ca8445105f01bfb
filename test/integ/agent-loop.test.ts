/**
 * The agent loop executing on the deployed state machines: triggers, approvals,
 * outcomes, failures into the DLQ, checkpoints and the event log.
 */
import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { IncidentReportSchema } from '../../examples/ssh-brute-force/agent';
import type { CheckpointRecord, ModelCheckpoint, ToolCheckpoint } from '../../lambdas/core/contracts/checkpoint';
import { sessionIdFor } from '../../lambdas/core/ids';
import { ApiError } from '../../scripts/lib/api-client';
import {
  api,
  checkpoints,
  deadLetterFor,
  executionOf,
  ended,
  expectCompleteEventLog,
  findingEvent,
  history,
  publishFinding,
  sfn,
  startExecution,
  uniqueKey,
  RESPONDER,
} from './harness';

const offendingIp = (findingEvent.detail as { service: { action: { networkConnectionAction: { remoteIpDetails: { ipAddressV4: string } } } } }).service.action
  .networkConnectionAction.remoteIpDetails.ipAddressV4;

const models = (records: CheckpointRecord[]): ModelCheckpoint[] => records.filter((r): r is ModelCheckpoint => r.kind === 'model').sort((a, b) => a.step - b.step);
const tools = (records: CheckpointRecord[]): ToolCheckpoint[] => records.filter((r): r is ToolCheckpoint => r.kind === 'tool');

describe('the example agent, ssh-investigator', () => {
  it('investigates a GuardDuty finding published on EventBridge and blocks the address after approval', async () => {
    const sessionId = await publishFinding();
    const executionArn = await executionOf(sessionId);

    const pending = await api.waitForApproval(sessionId);
    expect(pending.tool).toBe('block_address');
    expect(pending.input).toMatchObject({ address: offendingIp });
    expect(JSON.stringify(await api.getRun(sessionId))).not.toContain('taskToken');
    await api.decide(pending.approvalId, 'approve', 'confirmed', 'integ-test');

    await ended(executionArn, 'SUCCEEDED');
    const run = await api.getRun(sessionId);
    expect(run.status).toBe('SUCCEEDED');
    const report = IncidentReportSchema.parse(run.output);
    expect(report.blockedAddresses).toEqual([offendingIp]);

    // The report agrees with what the tools computed on the real log during this run.
    const records = await checkpoints(sessionId);
    const count = tools(records).find((t) => t.tool === 'count_failed_attempts');
    const counted = JSON.parse(count?.result ?? '{}') as { sources: { address: string; attempts: number; firstSeen: string; lastSeen: string }[] };
    for (const offender of report.offendingAddresses) {
      expect(counted.sources.find((s) => s.address === offender.address)).toMatchObject(offender);
    }
    const shown = tools(records).map((t) => t.result).join('\n');
    for (const id of report.citedLineIds) expect(shown).toContain(`"lineId":${id}`);
    const block = tools(records).find((t) => t.tool === 'block_address');
    expect(block).toMatchObject({ status: 'succeeded', approval: { decision: 'approved', decidedBy: 'integ-test' } });

    expect(models(records).map((m) => m.outcome)).toEqual(['tool_calls', 'tool_calls', 'tool_calls', 'final']);
    expect(records.filter((r) => r.kind === 'approval')).toHaveLength(1);
    await expectCompleteEventLog(sessionId, 'SessionSucceeded');
  });

  it('starts a run through the API; the same idempotency key returns the same session', async () => {
    const key = uniqueKey('api');
    const first = await api.startRun('ssh-investigator', findingEvent.detail, key, { principal: RESPONDER });
    expect(first.created).toBe(true);
    const again = await api.startRun('ssh-investigator', findingEvent.detail, key, { principal: RESPONDER });
    expect(again).toMatchObject({ sessionId: first.sessionId, executionArn: first.executionArn, created: false });
    await expect(api.startRun('ssh-investigator', { ...findingEvent.detail, severity: 9 }, key, { principal: RESPONDER })).rejects.toMatchObject({ status: 409 });

    const pending = await api.waitForApproval(first.sessionId);
    await api.decide(pending.approvalId, 'approve');
    await ended(first.executionArn, 'SUCCEEDED');
    expect((await api.getRun(first.sessionId)).status).toBe('SUCCEEDED');
  });

  it('fails when the API request is invalid, naming the field', async () => {
    const noInput = api.request('POST', 'agents/ssh-investigator/runs', {});
    await expect(noInput).rejects.toBeInstanceOf(ApiError);
    await expect(noInput).rejects.toMatchObject({ status: 400, body: { issues: [expect.stringContaining('input')] } });
    await expect(api.startRun('no-such-agent', {})).rejects.toMatchObject({ status: 404 });
    await expect(api.getRun('ses_unknown')).rejects.toMatchObject({ status: 404 });
  });

  it('fails when the API input does not match the agent, answering 400 naming the field and starting nothing', async () => {
    const detail = structuredClone(findingEvent.detail) as { service: { action: { networkConnectionAction: { remoteIpDetails: { ipAddressV4: string } } } } };
    detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4 = 'not-an-ip';
    const key = uniqueKey('bad-input');
    await expect(api.startRun('ssh-investigator', detail, key, { principal: RESPONDER })).rejects.toMatchObject({
      status: 400,
      body: { error: 'InvalidInput', issues: [expect.stringContaining('input.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4')] },
    });
    await expect(api.getRun(sessionIdFor('ssh-investigator', key))).rejects.toMatchObject({ status: 404 });
  });

  it('fails when an event does not match the agent, recording the field and sending the envelope to the DLQ', async () => {
    const detail = structuredClone(findingEvent.detail) as { service: { action: { networkConnectionAction: { remoteIpDetails: { ipAddressV4: string } } } } };
    detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4 = 'not-an-ip';
    const envelope = { ...findingEvent, id: uniqueKey('bad-event'), detail };
    const executionArn = await startExecution('ssh-investigator', envelope);
    await ended(executionArn, 'FAILED');
    const sessionId = sessionIdFor('ssh-investigator', envelope.id);
    const dead = await deadLetterFor(sessionId);
    expect(dead).toMatchObject({ agent: 'ssh-investigator', executionArn, failedState: 'Prepare', error: 'InvalidInput' });
    expect(dead.cause).toContain('detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4');
    expect(await api.getRun(sessionId)).toMatchObject({ status: 'FAILED', failure: { error: 'InvalidInput', failedState: 'Prepare' } });
    await expectCompleteEventLog(sessionId, 'SessionFailed');
  });
});

describe('approvals', () => {
  it('gives a rejection to the model as the tool result, with its reason', async () => {
    const run = await api.startRun('integ-declined', findingEvent.detail, uniqueKey('reject'), { principal: RESPONDER });
    const pending = await api.waitForApproval(run.sessionId);
    await api.decide(pending.approvalId, 'reject', 'address belongs to our VPN', 'integ-test');
    await expect(api.decide(pending.approvalId, 'approve')).rejects.toMatchObject({ status: 409 });

    await ended(run.executionArn, 'SUCCEEDED');
    const report = IncidentReportSchema.parse((await api.getRun(run.sessionId)).output);
    expect(report.blockedAddresses).toEqual([]);
    const block = tools(await checkpoints(run.sessionId)).find((t) => t.tool === 'block_address');
    expect(block).toMatchObject({ status: 'rejected', isError: true, approval: { decision: 'rejected', reason: 'address belongs to our VPN' } });
    expect(block?.result).toContain('address belongs to our VPN');
  });

  it('counts an approval that times out as a rejection with reason "timed out"', async () => {
    const run = await api.startRun('integ-declined', findingEvent.detail, uniqueKey('timeout'), { principal: RESPONDER });
    const pending = await api.waitForApproval(run.sessionId);
    expect(new Date(pending.expiresAt).getTime() - new Date(pending.requestedAt).getTime()).toBe(10_000);

    await ended(run.executionArn, 'SUCCEEDED', 60_000);
    const block = tools(await checkpoints(run.sessionId)).find((t) => t.tool === 'block_address');
    expect(block).toMatchObject({ status: 'rejected', approval: { decision: 'timed_out', reason: 'timed out' } });
    expect(JSON.parse(block?.result ?? '{}')).toMatchObject({ status: 'rejected', reason: 'timed out' });
    await expect(api.decide(pending.approvalId, 'approve')).rejects.toMatchObject({ status: 409 });
  });
});

describe('runs that end outside the loop', () => {
  it('records a stopped execution as FAILED and sends its envelope to the DLQ', async () => {
    const run = await api.startRun('integ-declined', findingEvent.detail, uniqueKey('stopped'), { principal: RESPONDER });
    await api.waitForApproval(run.sessionId);
    await sfn.send(new StopExecutionCommand({ executionArn: run.executionArn, error: 'OperatorStopped', cause: 'stopped by the integration test' }));
    await ended(run.executionArn, 'ABORTED');
    const envelope = await deadLetterFor(run.sessionId);
    expect(envelope).toMatchObject({ agent: 'integ-declined', executionArn: run.executionArn, failedState: 'Execution' });
    expect(await api.getRun(run.sessionId)).toMatchObject({ status: 'FAILED', failure: { failedState: 'Execution' } });
    await expectCompleteEventLog(run.sessionId, 'SessionFailed');
  });
});

describe('loop outcomes', () => {
  it('sends an invalid final answer back to the model with the validation errors, then succeeds', async () => {
    const run = await api.startRun('integ-repair', { question: 'What is six times seven?' }, uniqueKey('repair'));
    await ended(run.executionArn, 'SUCCEEDED');
    const records = await checkpoints(run.sessionId);
    expect(models(records).map((m) => m.outcome)).toEqual(['repair', 'final']);
    expect(models(records)[0]?.validationErrors).toEqual([expect.stringContaining('confidence')]);
    expect((await api.getRun(run.sessionId)).output).toEqual({ answer: '42', confidence: 0.9 });
    await expectCompleteEventLog(run.sessionId, 'SessionSucceeded');
  });

  it('fails with OutputValidationFailed when the answer is still invalid after its repairs', async () => {
    const run = await api.startRun('integ-never-valid', { question: 'q' }, uniqueKey('never-valid'));
    expect(await ended(run.executionArn, 'FAILED')).toMatchObject({ error: 'OutputValidationFailed' });
    expect(await deadLetterFor(run.sessionId)).toMatchObject({ failedState: 'ModelTurn', error: 'OutputValidationFailed', agent: 'integ-never-valid' });
    await expectCompleteEventLog(run.sessionId, 'SessionFailed');
  });

  it('fails with StepLimitReached when the agent reaches maxSteps, enforced by the definition', async () => {
    const run = await api.startRun('integ-step-limit', { question: 'q' }, uniqueKey('limit'));
    expect(await ended(run.executionArn, 'FAILED')).toMatchObject({ error: 'StepLimitReached' });
    const records = await checkpoints(run.sessionId);
    expect(models(records)).toHaveLength(2);
    expect(tools(records)).toHaveLength(1);
    expect(await deadLetterFor(run.sessionId)).toMatchObject({ failedState: 'StepLimitReached', error: 'StepLimitReached' });
    expect((await history(run.executionArn)).some((e) => e.stateEnteredEventDetails?.name === 'StepLimitReached')).toBe(true);
  });

  it('retries a tool that keeps failing, then records the run and sends its envelope to the DLQ', async () => {
    const run = await api.startRun('integ-failing-tool', { question: 'q' }, uniqueKey('failing'));
    await ended(run.executionArn, 'FAILED');
    const envelope = await deadLetterFor(run.sessionId);
    expect(envelope).toMatchObject({ schemaVersion: 1, agent: 'integ-failing-tool', sessionId: run.sessionId, executionArn: run.executionArn, failedState: 'RunTools' });
    expect(envelope.error).not.toBe('');
    expect(Date.parse(envelope.time)).not.toBeNaN();
    const attempts = (await history(run.executionArn)).filter((e) => e.type === 'TaskFailed' && (e.taskFailedEventDetails?.cause ?? '').includes('disk on fire'));
    expect(attempts).toHaveLength(4); // the first try and 3 retries
    expect(await api.getRun(run.sessionId)).toMatchObject({ status: 'FAILED', failure: { failedState: 'RunTools' } });
    expect(tools(await checkpoints(run.sessionId))).toHaveLength(0);
  });

  it('runs a trigger delivered twice only once', async () => {
    const envelope = {
      version: '0',
      id: uniqueKey('event'),
      'detail-type': 'Question Asked',
      source: 'integ.test',
      account: '000000000000',
      time: new Date().toISOString(),
      region: 'us-east-1',
      resources: [],
      detail: { question: 'What is six times seven?' },
    };
    const first = await startExecution('integ-repair', envelope);
    await ended(first, 'SUCCEEDED');
    const second = await startExecution('integ-repair', envelope);
    await ended(second, 'SUCCEEDED');
    expect((await history(second)).some((e) => e.stateEnteredEventDetails?.name === 'DuplicateTrigger')).toBe(true);
    expect((await history(second)).some((e) => e.stateEnteredEventDetails?.name === 'ModelTurn')).toBe(false);
  });
});
