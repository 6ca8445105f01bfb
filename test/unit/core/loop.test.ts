import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MAX_TOOL_CALLS_PER_TURN } from '../../../lambdas/core/constants';
import type { TextBlock, ToolResultBlock } from '../../../lambdas/core/contracts/model';
import {
  buildConversation,
  decideTurn,
  droppedResultNote,
  errorResult,
  loaded,
  parseFinalAnswer,
  REPAIR_PREFIX,
  toolUseOf,
  unknownToolResult,
  type CallAuthorization,
  type TurnContext,
} from '../../../lambdas/core/loop';
import { decideFinalAnswer, OUTPUT_REPAIR_PREFIX, type FinalDecision } from '../../../lambdas/core/output';
import { inputRecord, modelRecord, omit, response, text, toolRecord, toolRecordByRef, toolUse } from '../support/records';

const AnswerSchema = z.object({ answer: z.string(), confidence: z.number().min(0).max(1) });

const ECHO_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:unit-echo';
const BLOCK_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:unit-block';

const ALLOWED: CallAuthorization = { allowed: true, policies: [], errors: [] };

/**
 * The turn context of an agent with `echo` and `block` (needs approval): every call
 * allowed, no calls so far, final answers decided by the output pipeline (schema only).
 */
const context = (repairs = 0, maxOutputRepairs = 2, overrides: Partial<TurnContext> = {}): TurnContext => ({
  tools: new Map([
    ['echo', { functionArn: ECHO_ARN, needsApproval: false }],
    ['block', { functionArn: BLOCK_ARN, needsApproval: true }],
  ]),
  authorize: () => ALLOWED,
  callsSoFar: {},
  final: (answer) => decideFinalAnswer(answer, { schema: AnswerSchema, context: { toolResults: [], now: 0 }, repairs, maxOutputRepairs }),
  ...overrides,
});

const userText = (message: { content: readonly unknown[] } | undefined): string =>
  ((message?.content ?? []) as TextBlock[]).map((b) => b.text).join('');

describe('buildConversation', () => {
  it('starts with the input prompt as the first user message', () => {
    expect(buildConversation([inputRecord('What is 6 x 7?')])).toEqual([{ role: 'user', content: [{ type: 'text', text: 'What is 6 x 7?' }] }]);
  });

  it('follows a turn with its assistant content, then the tool results in call order, inline results included', () => {
    const content = [text('Checking.'), toolUse('c1', 'echo', { text: 'a' }), toolUse('c2', 'nope'), toolUse('c3', 'echo', { text: 'b' })];
    const unknown = errorResult('c2', 'UNKNOWN_TOOL', 'No tool named "nope" is available.');
    const records = [
      toolRecord(1, 'c3', '{"text":"b"}'),
      inputRecord('q'),
      modelRecord(1, content, { inlineResults: [unknown] }),
      toolRecord(1, 'c1', '{"error":"TOOL_ERROR","message":"boom"}', true),
    ];

    const messages = buildConversation(records);

    expect(messages).toHaveLength(3);
    expect(messages[1]).toEqual({ role: 'assistant', content });
    expect(messages[2]).toEqual({
      role: 'user',
      content: [
        { type: 'tool_result', toolUseId: 'c1', content: '{"error":"TOOL_ERROR","message":"boom"}', isError: true },
        unknown,
        { type: 'tool_result', toolUseId: 'c3', content: '{"text":"b"}', isError: false },
      ],
    });
  });

  it('orders the turns by step, whatever the order of the records', () => {
    const records = [
      modelRecord(10, [text('{"answer":"x","confidence":1}')], { outcome: 'final' }),
      modelRecord(2, [toolUse('c2', 'echo')]),
      toolRecord(2, 'c2', '"two"'),
      modelRecord(1, [toolUse('c1', 'echo')]),
      toolRecord(1, 'c1', '"one"'),
      inputRecord('q'),
    ];

    const messages = buildConversation(records);

    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect((messages[2]?.content[0] as ToolResultBlock).content).toBe('"one"');
    expect((messages[4]?.content[0] as ToolResultBlock).content).toBe('"two"');
    expect(messages[5]?.content).toEqual([text('{"answer":"x","confidence":1}')]);
  });

  it('answers a rejected final answer with REPAIR_PREFIX and each validation error', () => {
    const errors = ['confidence: Invalid input: expected number, received undefined', 'answer: Too small'];
    const records = [inputRecord('q'), modelRecord(1, [text('{"answer":""}')], { outcome: 'repair', validationErrors: errors })];

    const messages = buildConversation(records);

    expect(messages).toHaveLength(3);
    expect(messages[2]?.role).toBe('user');
    const repair = userText(messages[2]);
    expect(REPAIR_PREFIX).toBe(OUTPUT_REPAIR_PREFIX);
    expect(repair.startsWith('Your final answer was rejected. Fix these problems and answer again with JSON only:\n')).toBe(true);
    for (const error of errors) expect(repair).toContain(`- ${error}`);
  });

  it('adds no user message after a final turn', () => {
    const records = [inputRecord('q'), modelRecord(1, [text('{"answer":"42","confidence":1}')], { outcome: 'final' })];
    expect(buildConversation(records).map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('fails when the input checkpoint is missing', () => {
    expect(() => buildConversation([modelRecord(1, [text('{}')], { outcome: 'final' })])).toThrow(/no input checkpoint/);
  });

  it('fails when a tool call has no recorded result, naming the step and the call', () => {
    const records = [inputRecord('q'), modelRecord(1, [toolUse('c1', 'echo'), toolUse('c2', 'echo')]), toolRecord(1, 'c1', '{}')];
    expect(() => buildConversation(records)).toThrow(/step 1.*c2/);
  });

  it('fails when the only result for the call id was recorded at another step', () => {
    const records = [inputRecord('q'), modelRecord(1, [toolUse('c1', 'echo')]), toolRecord(2, 'c1', '{}')];
    expect(() => buildConversation(records)).toThrow(/c1/);
  });

  it('replaces a result the context plan replaced by its text (a note or a summary), keeping its error flag, and sends the others as they are', () => {
    const records = [
      inputRecord('q'),
      modelRecord(1, [toolUse('c1', 'echo'), toolUse('c2', 'echo'), toolUse('c3', 'echo')]),
      toolRecord(1, 'c1', '{"text":"old"}', true),
      toolRecord(1, 'c2', '{"text":"kept"}'),
      toolRecord(1, 'c3', '{"text":"long"}'),
    ];
    const dropped = toolRecord(1, 'c1', '{"text":"old"}', true);
    const summarised = toolRecord(1, 'c3', '{"text":"long"}');

    const messages = buildConversation(records, new Map([[dropped.sk, droppedResultNote(dropped)], [summarised.sk, 'summary: one field']]));

    expect(messages[2]?.content).toEqual([
      { type: 'tool_result', toolUseId: 'c1', content: droppedResultNote(dropped), isError: true },
      { type: 'tool_result', toolUseId: 'c2', content: '{"text":"kept"}', isError: false },
      { type: 'tool_result', toolUseId: 'c3', content: 'summary: one field', isError: false },
    ]);
  });

  it('sends a replaced result stored by reference as its replacement, without needing its body', () => {
    const ref = { bucket: 'b', key: 'ses/CP#000001#tool#c1/0.json', bytes: 70_000, sha256: '0'.repeat(64) };
    const records = [inputRecord('q'), modelRecord(1, [toolUse('c1', 'echo')]), toolRecordByRef(1, 'c1', ref)];
    const tool = records[2];
    if (tool?.kind !== 'tool') throw new Error('the third record is the tool checkpoint');
    const messages = buildConversation(records, new Map([[tool.sk, droppedResultNote(tool)]]));
    expect(JSON.parse((messages[2]?.content[0] as ToolResultBlock).content)).toMatchObject({ error: 'CONTEXT_DROPPED', message: expect.stringContaining('echo (70000 bytes)') as unknown });
  });

  it('fails when a result stored by reference was not loaded, naming the checkpoint and the key', () => {
    const ref = { bucket: 'b', key: 'ses/CP#000001#tool#c1/0.json', bytes: 70_000, sha256: '0'.repeat(64) };
    const records = [inputRecord('q'), modelRecord(1, [toolUse('c1', 'echo')]), toolRecordByRef(1, 'c1', ref)];
    expect(() => buildConversation(records)).toThrow('CP#000001#tool#c1: result body not loaded (ses/CP#000001#tool#c1/0.json)');
  });

  it('fails when a model response stored by reference was not loaded', () => {
    const turn = { ...omit(modelRecord(1, [text('{}')], { outcome: 'final' }), 'response'), responseRef: { bucket: 'b', key: 'ses/CP#000001#model/0.json', bytes: 9, sha256: '0'.repeat(64) } };
    expect(() => buildConversation([inputRecord('q'), turn])).toThrow('CP#000001#model: response body not loaded (ses/CP#000001#model/0.json)');
    expect(() => loaded(turn)).toThrow(/response body not loaded/);
    expect(() => toolUseOf(turn, 'c1')).toThrow(/response body not loaded/);
  });
});

describe('droppedResultNote', () => {
  it('tells the model which tool result was dropped, its size, and that it may call the tool again', () => {
    const note = JSON.parse(droppedResultNote(toolRecord(3, 'c1', '{"a":"é"}'))) as { error: string; message: string };
    expect(note.error).toBe('CONTEXT_DROPPED');
    expect(note.message).toBe(
      "The result of echo (10 bytes) was dropped from the context: the agent's context limit keeps the newest tool results. Call the tool again if you need it.",
    );
  });
});

describe('parseFinalAnswer', () => {
  it('parses plain JSON through the schema', () => {
    expect(parseFinalAnswer(' {"answer": "42", "confidence": 0.9}\n', AnswerSchema)).toEqual({ ok: true, output: { answer: '42', confidence: 0.9 } });
  });

  it('parses JSON inside a ```json fence, with prose around it', () => {
    const answer = 'Here it is:\n```json\n{"answer": "42", "confidence": 1}\n```\nDone.';
    expect(parseFinalAnswer(answer, AnswerSchema)).toEqual({ ok: true, output: { answer: '42', confidence: 1 } });
  });

  it('parses JSON inside a fence without a language', () => {
    expect(parseFinalAnswer('```\n{"answer": "a", "confidence": 0}\n```', AnswerSchema)).toEqual({ ok: true, output: { answer: 'a', confidence: 0 } });
  });

  it('returns the schema output (defaults applied)', () => {
    const schema = z.object({ answer: z.string(), tags: z.array(z.string()).default([]) });
    expect(parseFinalAnswer('{"answer":"a"}', schema)).toEqual({ ok: true, output: { answer: 'a', tags: [] } });
  });

  it('fails when the text is not JSON, naming (root)', () => {
    const parsed = parseFinalAnswer('the answer is 42', AnswerSchema);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]).toMatch(/^\(root\): not valid JSON/);
  });

  it('fails when fields break the schema, one error per field naming its path', () => {
    const schema = z.object({ report: z.object({ hits: z.array(z.object({ ip: z.ipv4() })) }), confidence: z.number() });
    const parsed = parseFinalAnswer('{"report":{"hits":[{"ip":"10.0.0.1"},{"ip":"10.0.0"}]}}', schema);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toHaveLength(2);
    expect(parsed.errors.some((e) => e.startsWith('report.hits.1.ip: '))).toBe(true);
    expect(parsed.errors.some((e) => e.startsWith('confidence: '))).toBe(true);
  });

  it('fails when the JSON is valid but the root has the wrong type, naming (root)', () => {
    const parsed = parseFinalAnswer('[1, 2]', AnswerSchema);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.errors[0]).toMatch(/^\(root\): /);
  });

  // Regression: parseFinalAnswer looked for a ``` fence anywhere in the text before
  // trying the text as JSON, so a valid plain-JSON answer whose string value contains a code span
  // (``` ... ```) is cut down to the text between the backticks and rejected as "not valid JSON".
  it('parses a plain JSON answer whose string value contains a ``` code span', () => {
    const answer = '{"answer": "run ```ls -l /var/log``` first", "confidence": 0.5}';
    expect(parseFinalAnswer(answer, AnswerSchema)).toEqual({ ok: true, output: { answer: 'run ```ls -l /var/log``` first', confidence: 0.5 } });
  });
});

describe('decideTurn', () => {
  it('turns tool calls into Map items with the function ARN and the approval flag, in call order', () => {
    const decision = decideTurn(response([text('Let me look.'), toolUse('c1', 'echo', { text: 'x' }), toolUse('c2', 'block')]), context());
    expect(decision).toEqual({
      outcome: 'tool_calls',
      calls: [
        { callId: 'c1', tool: 'echo', functionArn: ECHO_ARN, needsApproval: false },
        { callId: 'c2', tool: 'block', functionArn: BLOCK_ARN, needsApproval: true },
      ],
      inlineResults: [],
      denials: [],
    });
  });

  it('answers a call of an undeclared tool with an UNKNOWN_TOOL error result, does not run it, and records why', () => {
    const decision = decideTurn(response([toolUse('c1', 'rm_rf'), toolUse('c2', 'echo')]), context());
    expect(decision.outcome).toBe('tool_calls');
    if (decision.outcome !== 'tool_calls') return;
    expect(decision.calls.map((c) => c.callId)).toEqual(['c2']);
    expect(decision.inlineResults).toEqual([unknownToolResult('c1', 'rm_rf')]);
    const [result] = decision.inlineResults;
    expect(result).toMatchObject({ type: 'tool_result', toolUseId: 'c1', isError: true });
    expect(JSON.parse(result?.content ?? '')).toEqual({ error: 'UNKNOWN_TOOL', message: 'No tool named "rm_rf" is available.' });
    expect(decision.denials).toEqual([{ callId: 'c1', tool: 'rm_rf', reason: 'not_declared' }]);
  });

  it('authorises each call of a declared tool with its arguments', () => {
    const asked: unknown[] = [];
    decideTurn(
      response([toolUse('c1', 'echo', { text: 'x' }), toolUse('c2', 'nope'), toolUse('c3', 'block', { address: '203.0.113.7' })]),
      context(0, 2, {
        authorize: (use) => {
          asked.push(use);
          return ALLOWED;
        },
      }),
    );
    expect(asked).toEqual([toolUse('c1', 'echo', { text: 'x' }), toolUse('c3', 'block', { address: '203.0.113.7' })]);
  });

  it('answers a call the policy denies exactly as a call of a tool that does not exist, and records the real reason', () => {
    const denied: CallAuthorization = { allowed: false, policies: ['forbid-block-outside-hours'], errors: [], version: 'v7' };
    const decision = decideTurn(
      response([toolUse('c1', 'block', { address: '203.0.113.7' }), toolUse('c2', 'echo')]),
      context(0, 2, { authorize: (use) => (use.name === 'block' ? denied : ALLOWED) }),
    );
    if (decision.outcome !== 'tool_calls') throw new Error(`unexpected outcome ${decision.outcome}`);
    expect(decision.calls.map((c) => c.callId)).toEqual(['c2']);
    expect(decision.inlineResults).toEqual([unknownToolResult('c1', 'block')]);
    expect(decision.denials).toEqual([{ callId: 'c1', tool: 'block', reason: 'denied', policies: ['forbid-block-outside-hours'], policyVersion: 'v7', errors: undefined }]);
  });

  it('keeps the errors of a policy evaluation in the denial', () => {
    const broken: CallAuthorization = { allowed: false, policies: [], errors: ['policy0: unknown attribute'], version: 'v8' };
    const decision = decideTurn(response([toolUse('c1', 'echo')]), context(0, 2, { authorize: () => broken }));
    if (decision.outcome !== 'tool_calls') throw new Error(`unexpected outcome ${decision.outcome}`);
    expect(decision.denials).toEqual([{ callId: 'c1', tool: 'echo', reason: 'denied', policies: [], policyVersion: 'v8', errors: ['policy0: unknown attribute'] }]);
  });

  it("answers the calls past a tool's calls per session with TOOL_BUDGET_EXCEEDED, counting the session's calls and this turn's", () => {
    const tools: TurnContext['tools'] = new Map([
      ['echo', { functionArn: ECHO_ARN, needsApproval: false, budget: { callsPerSession: 3 } }],
      ['block', { functionArn: BLOCK_ARN, needsApproval: true }],
    ]);
    const decision = decideTurn(
      response([toolUse('c1', 'echo'), toolUse('c2', 'block'), toolUse('c3', 'echo'), toolUse('c4', 'echo')]),
      context(0, 2, { tools, callsSoFar: { echo: 1, block: 40 } }),
    );
    if (decision.outcome !== 'tool_calls') throw new Error(`unexpected outcome ${decision.outcome}`);
    expect(decision.calls.map((c) => c.callId)).toEqual(['c1', 'c2', 'c3']);
    expect(decision.inlineResults).toEqual([
      errorResult('c4', 'TOOL_BUDGET_EXCEEDED', 'echo may be called at most 3 time(s) per session; this call was not run. Continue without it.'),
    ]);
    expect(decision.denials).toEqual([{ callId: 'c4', tool: 'echo', reason: 'budget_exceeded' }]);
  });

  it(`answers the calls past ${MAX_TOOL_CALLS_PER_TURN} in one turn with TOO_MANY_CALLS and runs the first ${MAX_TOOL_CALLS_PER_TURN}`, () => {
    const uses = Array.from({ length: MAX_TOOL_CALLS_PER_TURN + 2 }, (_, i) => toolUse(`c${i + 1}`, 'echo'));
    const decision = decideTurn(response(uses), context());
    if (decision.outcome !== 'tool_calls') throw new Error(`unexpected outcome ${decision.outcome}`);
    expect(decision.calls.map((c) => c.callId)).toEqual(uses.slice(0, MAX_TOOL_CALLS_PER_TURN).map((u) => u.id));
    expect(decision.inlineResults.map((r) => r.toolUseId)).toEqual([`c${MAX_TOOL_CALLS_PER_TURN + 1}`, `c${MAX_TOOL_CALLS_PER_TURN + 2}`]);
    for (const r of decision.inlineResults) {
      expect(r.isError).toBe(true);
      expect((JSON.parse(r.content) as { error: string }).error).toBe('TOO_MANY_CALLS');
    }
    expect(decision.denials).toEqual([]);
  });

  it('does not count calls of unknown, denied or over-budget tools towards the per-turn limit', () => {
    const tools: TurnContext['tools'] = new Map([
      ['echo', { functionArn: ECHO_ARN, needsApproval: false }],
      ['block', { functionArn: BLOCK_ARN, needsApproval: true, budget: { callsPerSession: 1 } }],
    ]);
    const uses = [
      toolUse('x', 'nope'),
      toolUse('d', 'echo', { deny: true }),
      toolUse('b', 'block'),
      ...Array.from({ length: MAX_TOOL_CALLS_PER_TURN }, (_, i) => toolUse(`c${i + 1}`, 'echo')),
    ];
    const decision = decideTurn(
      response(uses),
      context(0, 2, { tools, callsSoFar: { block: 1 }, authorize: (use) => ((use.input as { deny?: boolean }).deny ? { ...ALLOWED, allowed: false } : ALLOWED) }),
    );
    if (decision.outcome !== 'tool_calls') throw new Error(`unexpected outcome ${decision.outcome}`);
    expect(decision.calls).toHaveLength(MAX_TOOL_CALLS_PER_TURN);
    expect(decision.inlineResults.map((r) => r.toolUseId)).toEqual(['x', 'd', 'b']);
  });

  it('hands an answer without tool calls to the output pipeline and returns its decision as it is', () => {
    const answer = response([text('anything')]);
    const decided: FinalDecision = { outcome: 'review', output: { answer: 'a' }, confidence: 0.4, reasons: ['confidence 0.4 is below the threshold 0.7'], stages: [] };
    const seen: unknown[] = [];
    const decision = decideTurn(
      answer,
      context(0, 2, {
        final: (r) => {
          seen.push(r);
          return decided;
        },
      }),
    );
    expect(seen).toEqual([answer]);
    expect(decision).toBe(decided);
  });

  it('returns final with the parsed output for a valid answer', () => {
    const decision = decideTurn(response([text('```json\n{"answer":"42","confidence":0.9}\n```')]), context());
    expect(decision).toMatchObject({ outcome: 'final', output: { answer: '42', confidence: 0.9 } });
  });

  it('joins the text blocks of the answer before parsing it', () => {
    const decision = decideTurn(response([text('{"answer":"42",'), text('"confidence":1}')]), context());
    expect(decision).toMatchObject({ outcome: 'final', output: { answer: '42', confidence: 1 } });
  });

  it('asks for a repair of an invalid answer while repairs remain, with errors naming the field', () => {
    const decision = decideTurn(response([text('{"answer":"42"}')]), context(1, 2));
    expect(decision.outcome).toBe('repair');
    if (decision.outcome !== 'repair') return;
    expect(decision.validationErrors).toEqual([expect.stringMatching(/^confidence: /)]);
  });

  it('fails with OutputValidationFailed when the answer is invalid and the repairs are used up', () => {
    const decision = decideTurn(response([text('{"answer":"42"}')]), context(2, 2));
    expect(decision.outcome).toBe('failed');
    if (decision.outcome !== 'failed') return;
    expect(decision.failure.error).toBe('OutputValidationFailed');
    expect(decision.failure.cause).toContain('after 2 repair(s)');
    expect(decision.failure.cause).toContain('confidence: ');
    expect(decision.validationErrors).toEqual([expect.stringMatching(/^confidence: /)]);
  });

  it('fails at once when the agent allows no repairs', () => {
    expect(decideTurn(response([text('nope')]), context(0, 0)).outcome).toBe('failed');
  });

  it('asks for a repair when the answer was cut off at max_tokens, even if the text parses', () => {
    const decision = decideTurn(response([text('{"answer":"42","confidence":1}')], 'max_tokens'), context());
    expect(decision.outcome).toBe('repair');
    if (decision.outcome !== 'repair') return;
    expect(decision.validationErrors).toEqual([expect.stringMatching(/^\(root\): .*token limit/)]);
  });
});

describe('toolUseOf', () => {
  const turn = modelRecord(1, [text('hi'), toolUse('c1', 'echo', { text: 'a' }), toolUse('c2', 'block')]);

  it('finds the tool call of a model checkpoint by id', () => {
    expect(toolUseOf(turn, 'c2')).toEqual(toolUse('c2', 'block'));
    expect(toolUseOf(turn, 'c1')?.input).toEqual({ text: 'a' });
  });

  it('returns undefined for an unknown id, another kind of record, or no record', () => {
    expect(toolUseOf(turn, 'c9')).toBeUndefined();
    expect(toolUseOf(inputRecord('q'), 'c1')).toBeUndefined();
    expect(toolUseOf(toolRecord(1, 'c1', '{}'), 'c1')).toBeUndefined();
    expect(toolUseOf(undefined, 'c1')).toBeUndefined();
  });
});

describe('errorResult', () => {
  it('is an error tool result whose content is JSON {error, message}', () => {
    expect(errorResult('c1', 'TOOL_ERROR', 'boom')).toEqual({ type: 'tool_result', toolUseId: 'c1', isError: true, content: '{"error":"TOOL_ERROR","message":"boom"}' });
  });

  it('adds details when given', () => {
    const result = errorResult('c1', 'INVALID_ARGUMENTS', 'bad', { issues: ['id: expected number'] });
    expect(JSON.parse(result.content)).toEqual({ error: 'INVALID_ARGUMENTS', message: 'bad', details: { issues: ['id: expected number'] } });
  });
});
