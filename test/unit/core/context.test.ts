/**
 * The context limit: the request's estimated size, which tool results are
 * replaced (dropped or summarised, oldest first) so that it fits, when the run
 * fails instead, and what the model checkpoint records.
 */
import { describe, expect, it } from 'vitest';
import {
  ContextLimitSchema,
  contextLimitFailure,
  contextLimitProblems,
  contextRecord,
  estimateTokens,
  ESTIMATED_BYTES_PER_TOKEN,
  planContext,
  summariseResult,
  SUMMARY_MAX_BYTES,
  type ContextFrame,
  type ContextLimit,
} from '../../../lambdas/core/context';
import { checkpointKey, type CheckpointRecord, type ModelCheckpoint } from '../../../lambdas/core/contracts/checkpoint';
import type { Message, ToolSpec } from '../../../lambdas/core/contracts/model';
import { buildConversation, droppedResultNote, errorResult } from '../../../lambdas/core/loop';
import { inputRecord, modelRecord, omit, text, toolRecord, toolRecordByRef, toolUse } from '../support/records';

const ECHO: ToolSpec = { name: 'echo', description: 'Returns its text.', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } };
const FRAME: ContextFrame = { system: 'You answer questions.', tools: [ECHO] };
const NO_FRAME: ContextFrame = { system: '', tools: [] };
const SUFFIX = 'the context limit keeps the newest tool results in full; call the tool again for the full result)';

const bytes = (s: string): number => Buffer.byteLength(s);
const turn = (step: number, ...callIds: string[]): ModelCheckpoint => modelRecord(step, callIds.map((id) => toolUse(id, 'echo', { text: 'hi' })));
const sized = (step: number, callId: string, size: number, char = 'x') => toolRecord(step, callId, char.repeat(size));
/** Three turns, one call each, results of 1000 bytes; the last turn's result is the newest. */
const history = (): CheckpointRecord[] => [inputRecord('q'), turn(1, 'a'), sized(1, 'a', 1000), turn(2, 'b'), sized(2, 'b', 1000), turn(3, 'c'), sized(3, 'c', 1000)];

/** Bytes of what a request built from `messages` and `frame` carries: the texts, tool results and assistant content as JSON. */
function requestBytes(messages: Message[], frame: ContextFrame): number {
  let total = bytes(frame.system) + bytes(JSON.stringify(frame.tools));
  for (const message of messages) {
    if (message.role === 'assistant') total += bytes(JSON.stringify(message.content));
    else for (const block of message.content) total += bytes(block.type === 'text' ? block.text : block.type === 'tool_result' ? block.content : '');
  }
  return total;
}
const tokensOf = (n: number): number => Math.ceil(n / ESTIMATED_BYTES_PER_TOKEN);

describe('estimateTokens', () => {
  it('is the UTF-8 bytes over 4, rounded up', () => {
    expect(ESTIMATED_BYTES_PER_TOKEN).toBe(4);
    expect(estimateTokens('')).toBe(0);
    expect(estimateTokens('abcd')).toBe(1);
    expect(estimateTokens('abcde')).toBe(2);
  });

  it('counts bytes, not characters: text outside ASCII counts more', () => {
    expect(estimateTokens('éééé')).toBe(2);
    expect(estimateTokens('日本語')).toBe(3);
  });
});

describe('ContextLimitSchema and contextLimitProblems', () => {
  it('accepts the older bytes-only limit, a token limit, and both', () => {
    for (const limit of [
      { maxToolResultBytes: 200_000, strategy: 'drop-oldest-tool-results' },
      { maxContextTokens: 180_000, strategy: 'summarise' },
      { maxToolResultBytes: 1, maxContextTokens: 8000, strategy: 'fail' },
    ]) {
      expect(ContextLimitSchema.safeParse(limit).success).toBe(true);
      expect(contextLimitProblems(limit, 4096)).toEqual([]);
    }
    expect(contextLimitProblems(undefined, 4096)).toEqual([]);
  });

  it('fails when neither size is set', () => {
    expect(contextLimitProblems({ strategy: 'fail' }, 4096)).toEqual(['context must set maxToolResultBytes, maxContextTokens or both']);
  });

  it.each([0, -1, 1.5, Number.NaN, '10'])('fails when a size is %s, naming the field', (value) => {
    expect(contextLimitProblems({ maxToolResultBytes: value, strategy: 'fail' }, 4096)).toEqual(['context.maxToolResultBytes must be a positive integer']);
    expect(contextLimitProblems({ maxContextTokens: value, strategy: 'fail' }, 4096)).toEqual(['context.maxContextTokens must be a positive integer']);
  });

  it('fails when the strategy or a key is unknown, or the limit is not an object', () => {
    expect(contextLimitProblems({ maxContextTokens: 10_000, strategy: 'truncate' }, 4096)).toEqual(['context.strategy must be drop-oldest-tool-results, summarise or fail']);
    expect(contextLimitProblems({ maxContextTokens: 10_000, strategy: 'fail', window: 3 }, 4096)).toEqual(['context has unknown key(s): window']);
    expect(contextLimitProblems(200_000, 4096)).toEqual(['context must be an object']);
  });

  it('fails when maxContextTokens leaves no room once the output tokens are reserved', () => {
    expect(contextLimitProblems({ maxContextTokens: 4096, strategy: 'fail' }, 4096)).toEqual([
      'context.maxContextTokens must be more than maxOutputTokens (4096), which every request reserves for the answer',
    ]);
  });
});

describe('planContext', () => {
  it('replaces nothing without a limit, and still estimates the whole request', () => {
    const records = history();
    const plan = planContext(records, undefined, FRAME);
    expect(plan).toEqual({
      limit: undefined,
      replaced: new Map(),
      dropped: 0,
      summarised: 0,
      summarisedKeys: [],
      exceeded: false,
      toolResultBytes: 3000,
      estimatedTokens: tokensOf(requestBytes(buildConversation(records), FRAME)),
      reservedOutputTokens: 0,
    });
    expect(contextRecord(plan)).toBeUndefined();
  });

  describe('a bytes-only limit (the older behaviour)', () => {
    it('drops the oldest results until the newest fit, replacing each by the note', () => {
      const records = history();
      const plan = planContext(records, { maxToolResultBytes: 2500, strategy: 'drop-oldest-tool-results' }, FRAME);
      expect(plan.replaced).toEqual(new Map([[checkpointKey.tool(1, 'a'), droppedResultNote(sized(1, 'a', 1000))]]));
      expect(plan).toMatchObject({ dropped: 1, summarised: 0, exceeded: false, toolResultBytes: 2000 });
    });

    it('keeps the newest results contiguous: once one is replaced, every older one is too, even a small one', () => {
      const records = [sized(1, 'a', 10), sized(2, 'b', 200), sized(3, 'c', 100)];
      const plan = planContext(records, { maxToolResultBytes: 250, strategy: 'drop-oldest-tool-results' }, NO_FRAME);
      expect([...plan.replaced.keys()]).toEqual([checkpointKey.tool(1, 'a'), checkpointKey.tool(2, 'b')]);
      expect(plan.toolResultBytes).toBe(100);
    });

    it('never exceeds under drop: with every result replaced, no tool result bytes are left', () => {
      const plan = planContext(history(), { maxToolResultBytes: 1, strategy: 'drop-oldest-tool-results' }, FRAME);
      expect(plan).toMatchObject({ dropped: 3, exceeded: false, toolResultBytes: 0 });
    });

    it('fails under the fail strategy without replacing anything, with the older message', () => {
      const plan = planContext(history(), { maxToolResultBytes: 2500, strategy: 'fail' }, FRAME);
      expect(plan).toMatchObject({ replaced: new Map(), exceeded: true, toolResultBytes: 3000 });
      expect(contextLimitFailure(plan)).toEqual({ error: 'ContextLimitExceeded', cause: "tool results of 3000 bytes exceed the agent's context limit of 2500 bytes" });
    });
  });

  describe('a token limit', () => {
    const fullTokens = tokensOf(requestBytes(buildConversation(history()), FRAME));

    it('sends everything when the estimate fits the limit exactly', () => {
      const plan = planContext(history(), { maxContextTokens: fullTokens, strategy: 'fail' }, FRAME);
      expect(plan).toMatchObject({ replaced: new Map(), exceeded: false, estimatedTokens: fullTokens });
    });

    it('counts the system prompt, the tool specs, the prompt, the assistant turns, inline results and repairs, not only tool results', () => {
      const records: CheckpointRecord[] = [
        inputRecord('Why did the build fail? '.repeat(20)),
        modelRecord(1, [text('Looking.'), toolUse('a', 'echo', { text: 'hi' }), toolUse('z', 'nope')], {
          inlineResults: [errorResult('z', 'UNKNOWN_TOOL', 'No tool named "nope" is available.')],
        }),
        sized(1, 'a', 100),
        modelRecord(2, [text('not json')], { outcome: 'repair', validationErrors: ['(root): not valid JSON'] }),
      ];
      const frame: ContextFrame = { system: 'S'.repeat(4000), tools: [ECHO] };
      const expected = requestBytes(buildConversation(records), frame);
      const plan = planContext(records, { maxContextTokens: 100_000, strategy: 'fail' }, frame);
      expect(plan.estimatedTokens).toBe(tokensOf(expected));
      expect(plan.estimatedTokens).toBeGreaterThan(1000 + 25);
      // Tool results alone (100 bytes) fit a limit the system prompt alone breaks.
      expect(planContext(records, { maxContextTokens: 1000, maxToolResultBytes: 1000, strategy: 'fail' }, frame).exceeded).toBe(true);
    });

    it('reserves the output tokens of the request', () => {
      const limit: ContextLimit = { maxContextTokens: fullTokens + 100, strategy: 'fail' };
      expect(planContext(history(), limit, { ...FRAME, maxOutputTokens: 100 }).exceeded).toBe(false);
      const plan = planContext(history(), limit, { ...FRAME, maxOutputTokens: 101 });
      expect(plan).toMatchObject({ exceeded: true, reservedOutputTokens: 101 });
      expect(contextLimitFailure(plan)).toEqual({
        error: 'ContextLimitExceeded',
        cause: `the request's estimated ${fullTokens} tokens plus 101 reserved for the answer exceed the context limit of ${fullTokens + 100} tokens`,
      });
    });

    it('drops the oldest results, by step then sort key, until the estimate fits', () => {
      const records = [inputRecord('q'), turn(1, 'b', 'a'), sized(1, 'b', 1000), sized(1, 'a', 1000), turn(2, 'c'), sized(2, 'c', 1000)];
      const fullBytes = requestBytes(buildConversation(records), FRAME);
      const note = (callId: string) => droppedResultNote(sized(1, callId, 1000));
      // Room for the request with the oldest result replaced by its note, and no more.
      const limit = tokensOf(fullBytes - 1000 + bytes(note('a')));
      const plan = planContext(records, { maxContextTokens: limit, strategy: 'drop-oldest-tool-results' }, FRAME);
      expect(plan.replaced).toEqual(new Map([[checkpointKey.tool(1, 'a'), note('a')]]));
      expect(plan).toMatchObject({ dropped: 1, exceeded: false, toolResultBytes: 2000 });
      expect(plan.estimatedTokens).toBe(limit);

      const two = planContext(records, { maxContextTokens: limit - 1, strategy: 'drop-oldest-tool-results' }, FRAME);
      expect([...two.replaced.keys()]).toEqual([checkpointKey.tool(1, 'a'), checkpointKey.tool(1, 'b')]);
    });

    it('keeps a result no larger than its replacement in full: replacing it would not shrink the request', () => {
      const records = [inputRecord('q'), turn(1, 'a'), toolRecord(1, 'a', '{}'), turn(2, 'b'), sized(2, 'b', 4000)];
      const full = tokensOf(requestBytes(buildConversation(records), FRAME));
      const plan = planContext(records, { maxContextTokens: full - 100, strategy: 'drop-oldest-tool-results' }, FRAME);
      expect([...plan.replaced.keys()]).toEqual([checkpointKey.tool(2, 'b')]);
      expect(plan).toMatchObject({ dropped: 1, exceeded: false, toolResultBytes: 2 });
    });

    it('summarises the oldest results under summarise, counting the summaries in the estimate', () => {
      const json = JSON.stringify({ total: 3, hosts: Array.from({ length: 200 }, (_, i) => `10.0.0.${i}`) });
      const records = [inputRecord('q'), turn(1, 'a'), toolRecord(1, 'a', json), turn(2, 'b'), toolRecord(2, 'b', json)];
      const fullBytes = requestBytes(buildConversation(records), FRAME);
      const full = tokensOf(fullBytes);
      const plan = planContext(records, { maxContextTokens: full - 10, strategy: 'summarise' }, FRAME);
      expect(plan.replaced).toEqual(new Map([[checkpointKey.tool(1, 'a'), summariseResult(json)]]));
      expect(plan).toMatchObject({ dropped: 0, summarised: 1, summarisedKeys: [checkpointKey.tool(1, 'a')], exceeded: false, toolResultBytes: bytes(json) });
      expect(plan.estimatedTokens).toBe(tokensOf(fullBytes - bytes(json) + bytes(summariseResult(json))));
      expect(contextRecord(plan)).toEqual({
        toolResultBytes: bytes(json),
        droppedToolResults: 0,
        summarisedToolResults: 1,
        estimatedTokens: plan.estimatedTokens,
        maxContextTokens: full - 10,
        strategy: 'summarise',
      });
    });

    it('drops, under summarise, a result whose body was not loaded, sizing it by its reference', () => {
      const ref = { bucket: 'b', key: 'ses/CP#000001#tool#a/0.json', bytes: 70_000, sha256: '0'.repeat(64) };
      const records = [inputRecord('q'), turn(1, 'a'), toolRecordByRef(1, 'a', ref), turn(2, 'b'), sized(2, 'b', 100)];
      const plan = planContext(records, { maxContextTokens: 10_000, strategy: 'summarise' }, FRAME);
      expect(plan.replaced).toEqual(new Map([[checkpointKey.tool(1, 'a'), droppedResultNote(toolRecordByRef(1, 'a', ref))]]));
      expect(plan).toMatchObject({ dropped: 1, summarised: 0, exceeded: false, toolResultBytes: 100 });
    });

    it('sizes an answer stored in S3 by its reference', () => {
      const ref = { bucket: 'b', key: 'ses/CP#000001#model/0.json', bytes: 40_000, sha256: '0'.repeat(64) };
      const records = [inputRecord('q'), { ...omit(turn(1, 'a'), 'response'), responseRef: ref }, sized(1, 'a', 10)];
      expect(planContext(records, undefined, NO_FRAME).estimatedTokens).toBe(tokensOf(bytes('q') + 40_000 + 10 + bytes('[]')));
    });

    it('fails under fail, replacing nothing', () => {
      const plan = planContext(history(), { maxContextTokens: fullTokens - 1, strategy: 'fail' }, FRAME);
      expect(plan).toMatchObject({ replaced: new Map(), dropped: 0, summarised: 0, exceeded: true, toolResultBytes: 3000, estimatedTokens: fullTokens });
      expect(contextRecord(plan)).toEqual({
        toolResultBytes: 3000,
        droppedToolResults: 0,
        summarisedToolResults: 0,
        estimatedTokens: fullTokens,
        maxContextTokens: fullTokens - 1,
        strategy: 'fail',
      });
    });

    it.each(['drop-oldest-tool-results', 'summarise'] as const)('fails under %s when the request does not fit even with every result replaced', (strategy) => {
      const frame: ContextFrame = { system: 'S'.repeat(40_000), tools: [ECHO] };
      const plan = planContext(history(), { maxContextTokens: 10_000, strategy }, frame);
      expect(plan.exceeded).toBe(true);
      expect(plan.replaced.size).toBe(3);
      expect(plan.dropped + plan.summarised).toBe(3);
      expect(contextLimitFailure(plan).cause).toBe(
        `the request's estimated ${plan.estimatedTokens} tokens plus 0 reserved for the answer exceed the context limit of 10000 tokens, with 3 tool result(s) replaced (${strategy})`,
      );
    });
  });

  it('is deterministic: the same plan for the same records, in any order', () => {
    const limit: ContextLimit = { maxContextTokens: 700, strategy: 'summarise' };
    const records = history();
    const first = planContext(records, limit, FRAME);
    expect(planContext(history(), limit, FRAME)).toEqual(first);
    expect(planContext([...records].reverse(), limit, FRAME)).toEqual(first);
    expect([...planContext([...records].reverse(), limit, FRAME).replaced.keys()]).toEqual([...first.replaced.keys()]);
    expect(first.summarised).toBeGreaterThan(0);
  });

  it('records the plan for the model checkpoint, without maxContextTokens under a bytes-only limit', () => {
    const plan = planContext(history(), { maxToolResultBytes: 2500, strategy: 'drop-oldest-tool-results' }, FRAME);
    expect(contextRecord(plan)).toEqual({
      toolResultBytes: 2000,
      droppedToolResults: 1,
      summarisedToolResults: 0,
      estimatedTokens: plan.estimatedTokens,
      strategy: 'drop-oldest-tool-results',
    });
  });
});

describe('summariseResult', () => {
  it('summarises a JSON object by its top-level keys: scalars as they are, arrays by length, objects by keys', () => {
    const result = JSON.stringify({ total: 3, ok: true, none: null, user: 'root', hosts: ['a', 'b'], meta: { region: 'eu', zone: 'a' }, empty: {} });
    expect(summariseResult(result)).toBe(
      [
        'JSON object with 7 key(s):',
        '- total: 3',
        '- ok: true',
        '- none: null',
        '- user: "root"',
        '- hosts: array of 2 item(s)',
        '- meta: object with 2 key(s) (region, zone)',
        '- empty: object with 0 key(s)',
        `(summarised from ${bytes(result)} bytes: ${SUFFIX}`,
      ].join('\n'),
    );
  });

  it('cuts long string values to 120 characters', () => {
    const result = JSON.stringify({ log: 'é'.repeat(500) });
    expect(summariseResult(result).split('\n')[1]).toBe(`- log: "${'é'.repeat(120)}…"`);
  });

  it('summarises a JSON array by its length and first item', () => {
    const result = JSON.stringify([{ ip: '10.0.0.1', n: 4 }, { ip: '10.0.0.2', n: 1 }]);
    expect(summariseResult(result)).toBe(`JSON array of 2 item(s); the first: object with 2 key(s) (ip, n)\n(summarised from ${bytes(result)} bytes: ${SUFFIX}`);
    expect(summariseResult('[3, 1]')).toMatch(/^JSON array of 2 item\(s\); the first: 3\n/);
    expect(summariseResult('[]')).toMatch(/^JSON array of 0 items\n/);
  });

  it('summarises text by its first and last non-blank lines, counting those between', () => {
    const result = ['Jan 1 sshd: Failed password for root', 'line 2', '', 'line 3', 'Jan 2 sshd: Accepted key for alice', ''].join('\n');
    expect(summariseResult(result)).toBe(
      ['Jan 1 sshd: Failed password for root', '[… 2 more line(s) …]', 'Jan 2 sshd: Accepted key for alice', `(summarised from ${bytes(result)} bytes: ${SUFFIX}`].join('\n'),
    );
    expect(summariseResult('one\r\ntwo')).toMatch(/^one\ntwo\n\(summarised/);
    expect(summariseResult('')).toMatch(/^\(empty\)\n\(summarised from 0 bytes/);
  });

  it('summarises a JSON string as the text it holds', () => {
    expect(summariseResult(JSON.stringify('first\nmiddle\nlast'))).toMatch(/^first\n\[… 1 more line\(s\) …\]\nlast\n/);
  });

  it(`keeps the body within ${SUMMARY_MAX_BYTES} bytes, cut on a character boundary`, () => {
    const result = JSON.stringify(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`kéy${i}`, 'é'.repeat(100)])));
    const summary = summariseResult(result);
    const body = summary.slice(0, summary.lastIndexOf('\n(summarised'));
    expect(bytes(body)).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(bytes(body)).toBeGreaterThan(SUMMARY_MAX_BYTES - 4);
    expect(body.endsWith('…')).toBe(true);
    expect(body).not.toContain('\uFFFD');
    expect(summary.endsWith(`(summarised from ${bytes(result)} bytes: ${SUFFIX}`)).toBe(true);
  });

  it('is deterministic: the keys in their order, then where the summary came from', () => {
    const result = JSON.stringify({ b: 1, a: [1, 2, 3] });
    expect(summariseResult(result)).toBe(`JSON object with 2 key(s):\n- b: 1\n- a: array of 3 item(s)\n(summarised from 19 bytes: ${SUFFIX}`);
  });
});
