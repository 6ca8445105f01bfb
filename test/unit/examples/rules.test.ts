/**
 * The ssh-investigator's output rules against the real tool results of its
 * recorded runs: the tools run on the inputs of the conversations' tool calls (as
 * the recorded runs got them), the results become tool checkpoints and then an
 * OutputContext, and the recorded final answers must pass every rule; tampered
 * answers must not.
 *
 * Needs `.log` files loaded as text (a vitest plugin, like esbuild's text loader).
 */
import { describe, expect, it } from 'vitest';
import { MemoryBlockStore } from '../support/block-store';
import type { ToolCheckpoint } from '../../../lambdas/core/contracts/checkpoint';
import type { ModelResponse, ToolUseBlock } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import type { ToolDefinition } from '../../../lambdas/core/define';
import { toolCallIdempotencyKey } from '../../../lambdas/core/ids';
import { decideFinalAnswer, outputContext, type OutputContext } from '../../../lambdas/core/output';
import { agent, approvedConversation, IncidentReportSchema, rejectedConversation, type IncidentReport } from '../../../examples/ssh-brute-force/agent';
import {
  citedLinesRead,
  INCIDENT_REPORT_CONFIDENCE_THRESHOLD,
  incidentReportPipeline,
  incidentReportRules,
} from '../../../examples/ssh-brute-force/rules';
import {
  createBlockAddressTool,
  type CountFailedAttemptsOutput,
  type SearchLogLinesOutput,
  type ShowLogLinesOutput,
} from '../../../examples/ssh-brute-force/tools';
import { toolRecord } from '../support/records';

const OFFENDER = '183.62.140.253';
/** When the recorded run ended (block_address's clock in the replay). */
const RUN_ENDED = Date.parse('2024-12-10T11:20:00.000Z');


/** What running a recorded conversation's tool calls produced. */
interface RecordedRun {
  /** The tool checkpoints the runtime would have written, in call order. */
  readonly records: ToolCheckpoint[];
  /** Output of each call that ran, by call id. */
  readonly outputs: Map<string, unknown>;
  /** The final answer, as the model gave it. */
  readonly final: ModelResponse;
  readonly report: IncidentReport;
}

/**
 * Runs the tool calls of a recorded conversation on the real tools, as the runtime
 * does (input through the tool's schema, output checked by it; block_address on a
 * memory store), and records each as a tool checkpoint: `succeeded` with the
 * output's JSON, or `rejected` for a block the approver declined.
 */
async function runRecorded(script: ScriptedConversation, approval: 'approved' | 'rejected'): Promise<RecordedRun> {
  const blockTool = createBlockAddressTool(new MemoryBlockStore(), () => new Date(RUN_ENDED));
  const byName = new Map<string, ToolDefinition>(agent.tools.map((t) => [t.name, t.name === blockTool.name ? blockTool : t]));
  const records: ToolCheckpoint[] = [];
  const outputs = new Map<string, unknown>();
  for (const [index, turn] of script.turns.entries()) {
    const step = index + 1;
    const calls = turn.response.content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
    if (calls.length === 0) {
      const final: ModelResponse = { ...turn.response, modelId: script.modelId };
      const text = turn.response.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
      return { records, outputs, final, report: IncidentReportSchema.parse(JSON.parse(text)) };
    }
    for (const call of calls) {
      const tool = byName.get(call.name);
      if (!tool?.handler) throw new Error(`step ${step}: ${call.id} names no runnable tool: ${call.name}`);
      const base = { ...toolRecord(step, call.id, ''), tool: call.name, input: call.input };
      if (tool.needsApproval && approval === 'rejected') {
        records.push({ ...base, status: 'rejected', isError: true, result: JSON.stringify({ status: 'rejected', reason: 'not approved by the reviewer' }) });
        continue;
      }
      const context = { sessionId: 'ses_rules', callId: call.id, step, idempotencyKey: toolCallIdempotencyKey('ses_rules', step, call.id) };
      const output: unknown = tool.output.parse(await tool.handler(tool.input.parse(call.input), context));
      outputs.set(call.id, output);
      records.push({ ...base, result: JSON.stringify(output) });
    }
  }
  throw new Error('the conversation has no final answer');
}

/** The problems every rule finds, each as `<rule>: <problem>`. */
const problems = (report: IncidentReport, context: OutputContext): string[] =>
  incidentReportRules.flatMap((rule) => (rule.check(report, context) ?? []).map((p) => `${rule.name}: ${p}`));

/** A final answer carrying `report`. */
const answer = (report: unknown): ModelResponse => ({
  content: [{ type: 'text', text: JSON.stringify(report) }],
  stopReason: 'end_turn',
  usage: { inputTokens: 1, outputTokens: 1 },
  modelId: 'scripted/ssh-investigator-v1',
});

describe.each([
  { file: 'conversation.json', script: approvedConversation, approval: 'approved' as const },
  { file: 'conversation.rejected.json', script: rejectedConversation, approval: 'rejected' as const },
])('the recorded final answer of $file', ({ script, approval }) => {
  it('passes every rule against the tool results of its run', async () => {
    const run = await runRecorded(script, approval);
    const context = outputContext(run.records, RUN_ENDED);

    expect(context.toolResults.map((r) => r.callId)).toEqual(
      approval === 'approved' ? ['toolu_01', 'toolu_02', 'toolu_03', 'toolu_04', 'toolu_05', 'toolu_06'] : ['toolu_01', 'toolu_02', 'toolu_03', 'toolu_04', 'toolu_05'],
    );
    expect(problems(run.report, context)).toEqual([]);
    expect(problems(run.report, outputContext(run.records, Date.now()))).toEqual([]);
    expect(citedLinesRead.score(run.report, context)).toEqual({ score: 1 });
  });

  it('is accepted by the pipeline with confidence 1, every stage recorded', async () => {
    const run = await runRecorded(script, approval);

    const decision = decideFinalAnswer(run.final, {
      schema: agent.output,
      pipeline: incidentReportPipeline,
      context: outputContext(run.records, RUN_ENDED),
      repairs: 0,
      maxOutputRepairs: agent.maxOutputRepairs,
    });

    expect(decision).toMatchObject({ outcome: 'final', output: run.report, confidence: 1 });
    expect(decision.stages.map((s) => `${s.stage}:${s.outcome}`)).toEqual(['parse:passed', 'schema:passed', 'rules:passed', 'confidence:passed', 'gate:passed']);
  });
});

describe('tampered answers', () => {
  const recorded = runRecorded(approvedConversation, 'approved');
  const setup = async (): Promise<{ report: IncidentReport; context: OutputContext; run: RecordedRun }> => {
    const run = await recorded;
    return { report: run.report, context: outputContext(run.records, RUN_ENDED), run };
  };
  const withOffender = (report: IncidentReport, change: Partial<IncidentReport['offendingAddresses'][number]>): IncidentReport => ({
    ...report,
    offendingAddresses: report.offendingAddresses.map((a) => (a.address === OFFENDER ? { ...a, ...change } : a)),
  });

  it('fails cited-lines-exist when a cited line id was returned by no tool', async () => {
    const { report, context } = await setup();

    expect(problems({ ...report, citedLineIds: [...report.citedLineIds, 1500, 4242] }, context)).toEqual([
      'cited-lines-exist: lines 1500, 4242 were not returned by any tool in this session; cite only line ids that search_log_lines, show_log_lines or count_failed_attempts returned',
    ]);
    expect(problems({ ...report, citedLineIds: [1500] }, context)).toEqual([
      'cited-lines-exist: line 1500 was not returned by any tool in this session; cite only line ids that search_log_lines, show_log_lines or count_failed_attempts returned',
    ]);
  });

  it("accepts a count_failed_attempts sample line id as returned, but lowers confidence for a cited line whose text was never read", async () => {
    const { report, context, run } = await setup();
    const counted = run.outputs.get('toolu_01') as CountFailedAttemptsOutput;
    const read = new Set(
      ['toolu_02', 'toolu_03', 'toolu_04', 'toolu_05'].flatMap((id) => (run.outputs.get(id) as SearchLogLinesOutput | ShowLogLinesOutput).lines.map((l) => l.lineId)),
    );
    const unread = counted.sources.flatMap((s) => s.sampleLineIds).filter((id) => !read.has(id)).slice(0, 2);
    expect(unread).toHaveLength(2);
    const tampered = { ...report, citedLineIds: [...report.citedLineIds, ...unread] };

    expect(problems(tampered, context)).toEqual([]);
    expect(citedLinesRead.score(tampered, context)).toEqual({
      score: 6 / 8,
      reason: `lines ${unread.join(', ')} were cited but never read (search_log_lines or show_log_lines)`,
    });
    const decision = decideFinalAnswer(answer(tampered), { schema: agent.output, pipeline: incidentReportPipeline, context, repairs: 0, maxOutputRepairs: 2 });
    expect(6 / 8).toBeLessThan(INCIDENT_REPORT_CONFIDENCE_THRESHOLD);
    expect(decision).toMatchObject({
      outcome: 'review',
      confidence: 0.75,
      reasons: [
        `confidence 0.75 is below the threshold ${INCIDENT_REPORT_CONFIDENCE_THRESHOLD}`,
        `cited-lines-read: 0.75 (lines ${unread.join(', ')} were cited but never read (search_log_lines or show_log_lines))`,
      ],
    });
  });

  it('fails counts-match-tools when an attempts count differs from count_failed_attempts', async () => {
    const { report, context } = await setup();

    expect(problems(withOffender(report, { attempts: 300 }), context)).toEqual([
      `counts-match-tools: ${OFFENDER}: attempts is 300 but count_failed_attempts reported 286 (call toolu_01); copy the numbers exactly`,
    ]);
  });

  it('fails counts-match-tools when firstSeen or lastSeen differ, and accepts the same instants written otherwise', async () => {
    const { report, context } = await setup();

    expect(problems(withOffender(report, { firstSeen: '2024-12-10T10:54:30Z', lastSeen: '2024-12-10T11:04:40Z' }), context)).toEqual([
      `counts-match-tools: ${OFFENDER}: firstSeen is 2024-12-10T10:54:30Z but count_failed_attempts reported 2024-12-10T10:54:29Z; lastSeen is 2024-12-10T11:04:40Z but count_failed_attempts reported 2024-12-10T11:04:43Z (call toolu_01); copy the numbers exactly`,
    ]);
    expect(problems(withOffender(report, { firstSeen: '2024-12-10T10:54:29.000Z', lastSeen: '2024-12-10T12:04:43+01:00' }), context)).toEqual([]);
  });

  it('fails counts-match-tools for an address count_failed_attempts never reported', async () => {
    const { report, context } = await setup();
    const invented = { address: '10.0.0.9', attempts: 12, firstSeen: '2024-12-10T08:00:00Z', lastSeen: '2024-12-10T08:01:00Z' };

    expect(problems({ ...report, offendingAddresses: [...report.offendingAddresses, invented] }, context)).toEqual([
      'counts-match-tools: 10.0.0.9: count_failed_attempts reported no failed attempts from it; list only addresses it reported, with its numbers',
    ]);
  });

  it('fails window-not-in-future when the window ends after now, and window-ordered when it is reversed', async () => {
    const { report, context } = await setup();

    expect(problems({ ...report, timeWindow: { from: report.timeWindow.from, to: '2024-12-10T12:00:00Z' } }, context)).toEqual([
      'window-not-in-future: timeWindow.to 2024-12-10T12:00:00Z is in the future (now is 2024-12-10T11:20:00.000Z); report the times the tools returned',
    ]);
    const reversed = { from: report.timeWindow.to, to: report.timeWindow.from };
    expect(problems({ ...report, timeWindow: reversed }, context)).toContain(
      `window-ordered: timeWindow.from ${reversed.from} is after timeWindow.to ${reversed.to}`,
    );
  });

  it('fails addresses-within-window when an address lies outside the window', async () => {
    const { report, context } = await setup();
    const narrow = { from: '2024-12-10T09:00:00Z', to: '2024-12-10T11:04:45Z' };

    expect(problems({ ...report, timeWindow: narrow }, context)).toEqual([
      `addresses-within-window: 112.95.230.3: firstSeen 2024-12-10T07:27:52Z is outside timeWindow (${narrow.from} to ${narrow.to})`,
      `addresses-within-window: 112.95.230.3: lastSeen 2024-12-10T07:28:51Z is outside timeWindow (${narrow.from} to ${narrow.to})`,
      `addresses-within-window: 5.188.10.180: firstSeen 2024-12-10T08:24:35Z is outside timeWindow (${narrow.from} to ${narrow.to})`,
      `addresses-within-window: 5.188.10.180: lastSeen 2024-12-10T08:26:24Z is outside timeWindow (${narrow.from} to ${narrow.to})`,
    ]);
  });

  it('fails blocked-addresses-confirmed when a block is claimed that did not happen, or one that happened is left out', async () => {
    const { report, context } = await setup();
    const rejected = await runRecorded(rejectedConversation, 'rejected');
    const rejectedContext = outputContext(rejected.records, RUN_ENDED);

    expect(problems({ ...rejected.report, blockedAddresses: [OFFENDER] }, rejectedContext)).toEqual([
      `blocked-addresses-confirmed: ${OFFENDER} is listed as blocked but no block_address call succeeded for it in this session; list only addresses block_address blocked`,
    ]);
    expect(problems({ ...report, blockedAddresses: [] }, context)).toEqual([
      `blocked-addresses-confirmed: ${OFFENDER} was blocked by block_address (call toolu_06) but is missing from blockedAddresses`,
    ]);
  });

  it('goes back to the model with the reasons, then to review once the repairs are used up', async () => {
    const { report, context } = await setup();
    const tampered = withOffender({ ...report, citedLineIds: [...report.citedLineIds, 4242] }, { attempts: 300 });
    const props = { schema: agent.output, pipeline: incidentReportPipeline, context, maxOutputRepairs: agent.maxOutputRepairs };
    const reasons = [
      'cited-lines-exist: line 4242 was not returned by any tool in this session; cite only line ids that search_log_lines, show_log_lines or count_failed_attempts returned',
      `counts-match-tools: ${OFFENDER}: attempts is 300 but count_failed_attempts reported 286 (call toolu_01); copy the numbers exactly`,
    ];

    expect(decideFinalAnswer(answer(tampered), { ...props, repairs: 0 })).toMatchObject({ outcome: 'repair', validationErrors: reasons });
    expect(decideFinalAnswer(answer(tampered), { ...props, repairs: agent.maxOutputRepairs })).toMatchObject({ outcome: 'review', output: tampered, reasons });
  });
});
