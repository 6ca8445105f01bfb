import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ABANDONED_SK_PREFIX, type ToolCheckpoint } from '../../../lambdas/core/contracts/checkpoint';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';
import {
  CUT_OFF_ERROR,
  decideFinalAnswer,
  OUTPUT_REPAIR_PREFIX,
  OUTPUT_STAGES,
  outputContext,
  outputPipelineProblems,
  parseAnswerJson,
  repairMessage,
  StageOutcomeSchema,
  type ConfidenceRule,
  type FinalDecision,
  type OutputContext,
  type OutputPipeline,
  type SemanticRule,
  type StageOutcome,
} from '../../../lambdas/core/output';
import { inputRecord, modelRecord, response, text, toolRecord, toolRecordByRef, toolUse } from '../support/records';

const InvoiceSchema = z.object({
  invoiceIds: z.array(z.string()),
  amount: z.number(),
  dueDate: z.iso.date(),
  /** Left loose so that the pipeline, not the schema, checks the reported confidence. */
  confidence: z.unknown().optional(),
});
type Invoice = z.infer<typeof InvoiceSchema>;

const NOW = Date.parse('2026-01-15T12:00:00Z');
const CONTEXT: OutputContext = {
  toolResults: [
    { tool: 'find_invoices', step: 1, callId: 'c1', result: { ids: ['inv-1', 'inv-2'] } },
    { tool: 'find_invoices', step: 2, callId: 'c2', result: { ids: ['inv-3'] } },
  ],
  now: NOW,
};

const knownIds = (ctx: OutputContext): Set<string> =>
  new Set(ctx.toolResults.flatMap((r) => (r.result as { ids?: string[] }).ids ?? []));

const idsExist: SemanticRule<Invoice> = {
  name: 'ids-exist',
  description: 'Every cited invoice id was returned by find_invoices.',
  check: (o, ctx) => o.invoiceIds.filter((id) => !knownIds(ctx).has(id)).map((id) => `${id} was not returned by any tool`),
};
const amountPositive: SemanticRule<Invoice> = {
  name: 'amount-positive',
  description: 'The amount is positive.',
  check: (o) => (o.amount > 0 ? undefined : [`amount ${o.amount} must be positive`]),
};
const dueNotPast: SemanticRule<Invoice> = {
  name: 'due-not-past',
  description: 'The due date is not in the past.',
  check: (o, ctx) => (Date.parse(o.dueDate) >= ctx.now - 86_400_000 ? [] : [`dueDate ${o.dueDate} is in the past`]),
};
const idsCovered: ConfidenceRule<Invoice> = {
  name: 'ids-covered',
  score: (o, ctx) => {
    const all = knownIds(ctx);
    const share = o.invoiceIds.length / all.size;
    return share === 1 ? { score: 1 } : { score: share, reason: `${o.invoiceIds.length} of ${all.size} invoices cited` };
  },
};

const RULES: OutputPipeline<Invoice> = { rules: [idsExist, amountPositive, dueNotPast] };

const answer = (value: unknown, stopReason?: 'max_tokens') => response([text(JSON.stringify(value))], stopReason);
const GOOD: Invoice = { invoiceIds: ['inv-1', 'inv-2', 'inv-3'], amount: 120, dueDate: '2026-02-01' };

function decide(value: unknown, pipeline?: OutputPipeline<Invoice>, repairs = 0, maxOutputRepairs = 2, stopReason?: 'max_tokens'): FinalDecision<Invoice> {
  return decideFinalAnswer(answer(value, stopReason), { schema: InvoiceSchema, pipeline, context: CONTEXT, repairs, maxOutputRepairs });
}

/** Each stage's outcome, in order: `parse:passed schema:passed …`. */
const outcomes = (stages: readonly StageOutcome[]): string => stages.map((s) => `${s.stage}:${s.outcome}`).join(' ');

describe('outputContext', () => {
  const search = (step: number, callId: string, result: string): ToolCheckpoint => ({ ...toolRecord(step, callId, result), tool: 'search' });

  it('keeps the succeeded tool results, parsed, in step order, keeping the record order within a step', () => {
    const records = [
      search(3, 'c3', '{"n":3}'),
      inputRecord('q'),
      modelRecord(1, [toolUse('c1', 'search'), toolUse('c0', 'search')]),
      search(1, 'c1', '{"n":1}'),
      search(1, 'c0', '[0]'),
      search(2, 'c2', '"two"'),
    ];

    expect(outputContext(records, NOW)).toEqual({
      toolResults: [
        { tool: 'search', step: 1, callId: 'c1', result: { n: 1 } },
        { tool: 'search', step: 1, callId: 'c0', result: [0] },
        { tool: 'search', step: 2, callId: 'c2', result: 'two' },
        { tool: 'search', step: 3, callId: 'c3', result: { n: 3 } },
      ],
      now: NOW,
    });
  });

  it('leaves out failed, rejected and unknown-outcome calls, and checkpoints a rollback abandoned', () => {
    const records: ToolCheckpoint[] = [
      toolRecord(1, 'ok', '{"ok":true}'),
      toolRecord(1, 'err', '{"error":"TOOL_ERROR","message":"boom"}', true),
      { ...toolRecord(1, 'rej', '{"status":"rejected"}'), status: 'rejected' },
      { ...toolRecord(1, 'unk', '{"error":"OUTCOME_UNKNOWN"}'), status: 'outcome_unknown' },
      { ...toolRecord(2, 'old', '{"ok":"old"}'), sk: `${ABANDONED_SK_PREFIX}0001#CP#000002#tool#old` },
    ];

    expect(outputContext(records, NOW).toolResults.map((r) => r.callId)).toEqual(['ok']);
  });

  it('fails when a succeeded result stored by reference was not loaded, naming the checkpoint and the key', () => {
    const ref = { bucket: 'b', key: 'ses/CP#000001#tool#c1.json', bytes: 9, sha256: '0'.repeat(64) };
    expect(() => outputContext([toolRecordByRef(1, 'c1', ref)], NOW)).toThrow('CP#000001#tool#c1: result body not loaded (ses/CP#000001#tool#c1.json)');
  });

  it('fails with CorruptCheckpointError when a result is not JSON', () => {
    expect(() => outputContext([toolRecord(1, 'c1', 'not json')], NOW)).toThrow(CorruptCheckpointError);
  });

  it('is empty for a session without tool calls', () => {
    expect(outputContext([inputRecord('q'), modelRecord(1, [text('{}')], { outcome: 'final' })], 5)).toEqual({ toolResults: [], now: 5 });
  });
});

describe('parseAnswerJson', () => {
  it('parses the whole text, or else the first fenced block', () => {
    expect(parseAnswerJson(' {"a":1} ')).toEqual({ ok: true, json: { a: 1 } });
    expect(parseAnswerJson('Here:\n```json\n{"a":2}\n```\nDone.')).toEqual({ ok: true, json: { a: 2 } });
    expect(parseAnswerJson('```\n[3]\n```')).toEqual({ ok: true, json: [3] });
    expect(parseAnswerJson('{"a":"use ```x``` here"}')).toEqual({ ok: true, json: { a: 'use ```x``` here' } });
  });

  it('fails on text that is not JSON, naming (root)', () => {
    const parsed = parseAnswerJson('The answer is 42.');
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(/^\(root\): not valid JSON \(/);
  });
});

describe('repairMessage', () => {
  it('says the answer was rejected and lists each problem on its own line', () => {
    expect(repairMessage(['amount: Expected number', 'ids-exist: inv-9 was not returned by any tool'])).toBe(
      `${OUTPUT_REPAIR_PREFIX}\n- amount: Expected number\n- ids-exist: inv-9 was not returned by any tool`,
    );
    expect(OUTPUT_REPAIR_PREFIX).toContain('rejected');
  });
});

describe('decideFinalAnswer', () => {
  describe('without a pipeline', () => {
    it('accepts a valid answer with confidence 1, running parse and schema and skipping the rest', () => {
      const decision = decide(GOOD);

      expect(decision).toEqual({ outcome: 'final', output: GOOD, confidence: 1, stages: expect.any(Array) as unknown });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:skipped confidence:skipped gate:skipped');
      for (const stage of decision.stages) expect(StageOutcomeSchema.parse(stage)).toEqual(stage);
    });

    it('joins the text blocks and reads a fenced answer', () => {
      const decision = decideFinalAnswer(response([text('Report:\n```json\n{"invoiceIds":[],'), text('"amount":1,"dueDate":"2026-02-01"}\n```')]), {
        schema: InvoiceSchema,
        context: CONTEXT,
        repairs: 0,
        maxOutputRepairs: 2,
      });
      expect(decision.outcome).toBe('final');
    });
  });

  describe('parse', () => {
    it('asks for a repair of text that is not JSON, skipping every later stage', () => {
      const decision = decideFinalAnswer(response([text('I think it is inv-1.')]), { schema: InvoiceSchema, pipeline: RULES, context: CONTEXT, repairs: 0, maxOutputRepairs: 2 });

      expect(decision.outcome).toBe('repair');
      expect(decision.outcome === 'repair' && decision.validationErrors).toEqual([expect.stringMatching(/^\(root\): not valid JSON/)]);
      expect(outcomes(decision.stages)).toBe('parse:failed schema:skipped rules:skipped confidence:skipped gate:skipped');
      expect(decision.stages[1]?.detail).toBe('the answer could not be parsed');
    });

    it('fails an answer cut off at max_tokens, even when its text parses', () => {
      const decision = decide(GOOD, RULES, 0, 2, 'max_tokens');

      expect(decision).toMatchObject({ outcome: 'repair', validationErrors: [CUT_OFF_ERROR] });
      expect(decision.stages[0]).toEqual({ stage: 'parse', outcome: 'failed', errors: [CUT_OFF_ERROR] });
      expect(CUT_OFF_ERROR).toBe('(root): the answer was cut off at the output token limit; answer more briefly');
    });

    it('fails with OutputValidationFailed once the repairs are used up', () => {
      const decision = decideFinalAnswer(response([text('nope')]), { schema: InvoiceSchema, context: CONTEXT, repairs: 2, maxOutputRepairs: 2 });

      expect(decision.outcome).toBe('failed');
      if (decision.outcome !== 'failed') return;
      expect(decision.failure.error).toBe('OutputValidationFailed');
      expect(decision.failure.cause).toMatch(/^final answer still invalid after 2 repair\(s\): \(root\): not valid JSON/);
      expect(decision.output).toBeUndefined();
    });
  });

  describe('schema', () => {
    it('asks for a repair naming each field, without running the rules', () => {
      let ran = false;
      const spy: SemanticRule<Invoice> = { name: 'spy', description: 'records that it ran', check: () => ((ran = true), []) };

      const decision = decide({ invoiceIds: 'inv-1', amount: '12' }, { rules: [spy] });

      expect(decision.outcome).toBe('repair');
      expect(decision.outcome === 'repair' && decision.validationErrors).toEqual([
        expect.stringMatching(/^invoiceIds: /),
        expect.stringMatching(/^amount: /),
        expect.stringMatching(/^dueDate: /),
      ]);
      expect(outcomes(decision.stages)).toBe('parse:passed schema:failed rules:skipped confidence:skipped gate:skipped');
      expect(decision.stages[1]?.errors).toHaveLength(3);
      expect(ran).toBe(false);
    });

    it('fails with OutputValidationFailed in the same format as the loop once the repairs are used up', () => {
      const decision = decide({ invoiceIds: [], amount: 1 }, undefined, 1, 1);

      expect(decision).toMatchObject({
        outcome: 'failed',
        validationErrors: ['dueDate: Invalid input: expected string, received undefined'],
        failure: { error: 'OutputValidationFailed', cause: 'final answer still invalid after 1 repair(s): dueDate: Invalid input: expected string, received undefined' },
      });
    });

    it('fails at once when the agent allows no repairs', () => {
      expect(decide({}, undefined, 0, 0).outcome).toBe('failed');
    });
  });

  describe('semantic rules', () => {
    const BAD = { ...GOOD, invoiceIds: ['inv-1', 'inv-9'], amount: -5 };

    it('accepts an answer every rule holds for, recording that they held', () => {
      const decision = decide(GOOD, RULES);

      expect(decision.outcome).toBe('final');
      expect(decision.stages[2]).toEqual({ stage: 'rules', outcome: 'passed', detail: '3 rule(s) held' });
    });

    it('asks for a repair with every problem prefixed by its rule name, skipping the gate', () => {
      const decision = decide(BAD, { ...RULES, gate: { threshold: 0.5, below: 'fail' } });

      expect(decision).toMatchObject({
        outcome: 'repair',
        validationErrors: ['ids-exist: inv-9 was not returned by any tool', 'amount-positive: amount -5 must be positive'],
      });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:failed confidence:skipped gate:skipped');
      expect(decision.stages[2]?.errors).toEqual(['ids-exist: inv-9 was not returned by any tool', 'amount-positive: amount -5 must be positive']);
      expect(decision.stages[4]?.detail).toBe('the answer goes back to the model for repair');
    });

    it('is repaired: a failing answer goes back while repairs remain, and the fixed one is accepted', () => {
      const first = decide(BAD, RULES, 0, 2);
      const second = decide({ ...BAD, amount: 5 }, RULES, 1, 2);
      const third = decide(GOOD, RULES, 2, 2);

      expect([first.outcome, second.outcome, third.outcome]).toEqual(['repair', 'repair', 'final']);
      expect(second.outcome === 'repair' && second.validationErrors).toEqual(['ids-exist: inv-9 was not returned by any tool']);
    });

    it('is bounded: once the repairs are used up it fails with OutputRuleFailed by default, keeping the output', () => {
      const decision = decide(BAD, RULES, 2, 2);

      expect(decision).toMatchObject({
        outcome: 'failed',
        validationErrors: ['ids-exist: inv-9 was not returned by any tool', 'amount-positive: amount -5 must be positive'],
        failure: {
          error: 'OutputRuleFailed',
          cause: 'final answer still breaks its rules after 2 repair(s): ids-exist: inv-9 was not returned by any tool; amount-positive: amount -5 must be positive',
        },
        output: BAD,
        confidence: 1,
      });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:failed confidence:skipped gate:skipped');
    });

    it("goes to review with the rules' reasons once the repairs are used up, when onRuleFailure is review", () => {
      const decision = decide(BAD, { ...RULES, onRuleFailure: 'review', gate: { threshold: 0.9, below: 'fail' } }, 2, 2);

      expect(decision).toMatchObject({
        outcome: 'review',
        output: BAD,
        confidence: 1,
        reasons: ['ids-exist: inv-9 was not returned by any tool', 'amount-positive: amount -5 must be positive'],
      });
      expect(decision.stages[4]).toEqual({ stage: 'gate', outcome: 'skipped', detail: 'rules still fail after 2 repair(s): the answer goes to review' });
    });

    it('sees the time of the context', () => {
      const decision = decide({ ...GOOD, dueDate: '2025-12-01' }, RULES);
      expect(decision.outcome === 'repair' && decision.validationErrors).toEqual(['due-not-past: dueDate 2025-12-01 is in the past']);
    });

    it('counts a rule that throws as a failure of that rule, with its error, and never throws', () => {
      const broken: SemanticRule<Invoice> = {
        name: 'broken',
        description: 'throws',
        check: () => {
          throw new TypeError('cannot read properties of undefined');
        },
      };
      const notAnError: SemanticRule<Invoice> = {
        name: 'throws-string',
        description: 'throws a string',
        check: () => {
          throw 'oops'; // eslint-disable-line @typescript-eslint/only-throw-error
        },
      };

      const decision = decide(GOOD, { rules: [broken, notAnError, amountPositive] });

      expect(decision).toMatchObject({
        outcome: 'repair',
        validationErrors: ['broken: could not be checked (TypeError: cannot read properties of undefined)', 'throws-string: could not be checked (oops)'],
      });
      expect(decide(GOOD, { rules: [broken] }, 2, 2)).toMatchObject({ outcome: 'failed', failure: { error: 'OutputRuleFailed' } });
    });
  });

  describe('confidence', () => {
    it('is the reported field when declared', () => {
      const decision = decide({ ...GOOD, confidence: 0.75 }, { confidence: { reportedField: 'confidence' } });

      expect(decision).toMatchObject({ outcome: 'final', confidence: 0.75 });
      expect(decision.stages[3]).toEqual({ stage: 'confidence', outcome: 'passed', confidence: 0.75, detail: 'confidence 0.75' });
    });

    it.each([
      ['missing', undefined, 'nothing'],
      ['not a number', '0.9', '"0.9"'],
      ['above 1', 1.5, '1.5'],
      ['below 0', -0.1, '-0.1'],
    ])('asks for a repair when the reported confidence is %s', (_, confidence, shown) => {
      const decision = decide({ ...GOOD, confidence }, { confidence: { reportedField: 'confidence' } });

      expect(decision).toMatchObject({ outcome: 'repair', validationErrors: [`confidence: the confidence must be a number from 0 to 1 (got ${shown})`] });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:skipped confidence:failed gate:skipped');
    });

    it('fails with OutputValidationFailed when the reported confidence is still invalid after the repairs, even if onRuleFailure is review', () => {
      const decision = decide(GOOD, { onRuleFailure: 'review', confidence: { reportedField: 'confidence' } }, 2, 2);
      expect(decision).toMatchObject({ outcome: 'failed', failure: { error: 'OutputValidationFailed' }, confidence: 0 });
    });

    it('reads the reported field only on an object answer', () => {
      const decision = decideFinalAnswer(answer([0.9]), {
        schema: z.array(z.number()),
        pipeline: { confidence: { reportedField: 'confidence' } },
        context: CONTEXT,
        repairs: 0,
        maxOutputRepairs: 1,
      });
      expect(decision.outcome).toBe('repair');
    });

    it('is computed by the confidence rules', () => {
      const decision = decide({ ...GOOD, invoiceIds: ['inv-1', 'inv-2'] }, { confidence: { rules: [idsCovered] } });

      expect(decision.outcome).toBe('final');
      expect(decision.outcome === 'final' && decision.confidence).toBeCloseTo(2 / 3);
      expect(decision.stages[3]).toMatchObject({ stage: 'confidence', outcome: 'passed', detail: 'ids-covered 0.667' });
    });

    it('is the minimum of the reported value and the computed scores', () => {
      const pipeline: OutputPipeline<Invoice> = { confidence: { reportedField: 'confidence', rules: [idsCovered] } };
      expect(decide({ ...GOOD, confidence: 0.5 }, pipeline)).toMatchObject({ outcome: 'final', confidence: 0.5 });
      expect(decide({ ...GOOD, invoiceIds: ['inv-1'], confidence: 0.9 }, pipeline)).toMatchObject({ outcome: 'final', confidence: 1 / 3 });
    });

    it('counts a score that throws or is out of range as a rule failure and as 0', () => {
      const throws: ConfidenceRule<Invoice> = {
        name: 'throws',
        score: () => {
          throw new RangeError('bad');
        },
      };
      const nan: ConfidenceRule<Invoice> = { name: 'nan', score: () => ({ score: Number.NaN }) };

      const repair = decide(GOOD, { confidence: { rules: [throws, nan] } });
      expect(repair).toMatchObject({
        outcome: 'repair',
        validationErrors: ['throws: could not be scored (RangeError: bad)', 'nan: the score must be a number from 0 to 1 (got NaN)'],
      });
      expect(repair.stages[3]).toMatchObject({ stage: 'confidence', outcome: 'failed', confidence: 0 });

      expect(decide(GOOD, { onRuleFailure: 'review', confidence: { rules: [throws] } }, 2, 2)).toMatchObject({
        outcome: 'review',
        confidence: 0,
        reasons: ['throws: could not be scored (RangeError: bad)'],
      });
    });

    it('is computed even when rules fail, so that one repair message lists every problem', () => {
      const decision = decide({ ...GOOD, amount: 0 }, { rules: [amountPositive], confidence: { reportedField: 'confidence' } });

      expect(decision).toMatchObject({
        outcome: 'repair',
        validationErrors: ['confidence: the confidence must be a number from 0 to 1 (got nothing)', 'amount-positive: amount 0 must be positive'],
      });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:failed confidence:failed gate:skipped');
    });
  });

  describe('gate', () => {
    const gated = (below: 'review' | 'fail'): OutputPipeline<Invoice> => ({
      confidence: { reportedField: 'confidence', rules: [idsCovered] },
      gate: { threshold: 0.8, below },
    });

    it('accepts an answer at the threshold', () => {
      const decision = decide({ ...GOOD, confidence: 0.8 }, gated('fail'));

      expect(decision).toMatchObject({ outcome: 'final', confidence: 0.8 });
      expect(decision.stages[4]).toEqual({ stage: 'gate', outcome: 'passed', confidence: 0.8, detail: 'confidence 0.8 >= threshold 0.8' });
    });

    it('sends an answer below the threshold to review with the low scores and their reasons', () => {
      const decision = decide({ ...GOOD, invoiceIds: ['inv-1', 'inv-2'], confidence: 0.9 }, gated('review'));

      expect(decision).toMatchObject({
        outcome: 'review',
        output: { invoiceIds: ['inv-1', 'inv-2'] },
        reasons: ['confidence 0.667 is below the threshold 0.8', 'ids-covered: 0.667 (2 of 3 invoices cited)'],
      });
      expect(outcomes(decision.stages)).toBe('parse:passed schema:passed rules:skipped confidence:passed gate:failed');
      expect(decision.stages[4]).toMatchObject({ detail: 'the answer goes to review', errors: (decision as { reasons: string[] }).reasons });
    });

    it('names the reported confidence when it is the low one', () => {
      const decision = decide({ ...GOOD, confidence: 0.3 }, gated('review'));
      expect(decision.outcome === 'review' && decision.reasons).toEqual(['confidence 0.3 is below the threshold 0.8', 'confidence: 0.3 (reported by the model)']);
    });

    it('fails the run with LowConfidence when declared, never asking for a repair', () => {
      const decision = decide({ ...GOOD, invoiceIds: ['inv-1'], confidence: 0.9 }, gated('fail'), 0, 2);

      expect(decision).toMatchObject({
        outcome: 'failed',
        validationErrors: ['confidence 0.333 is below the threshold 0.8', 'ids-covered: 0.333 (1 of 3 invoices cited)'],
        failure: { error: 'LowConfidence', cause: 'final answer below the confidence threshold: confidence 0.333 is below the threshold 0.8; ids-covered: 0.333 (1 of 3 invoices cited)' },
        output: { invoiceIds: ['inv-1'] },
      });
      expect(decision.stages[4]).toMatchObject({ stage: 'gate', outcome: 'failed', detail: 'the run fails' });
    });

    it('passes every answer with confidence 1 when no confidence is declared', () => {
      expect(decide(GOOD, { gate: { threshold: 1, below: 'fail' } })).toMatchObject({ outcome: 'final', confidence: 1 });
    });
  });

  it('records one outcome per stage, in pipeline order, each valid against StageOutcomeSchema', () => {
    const decisions = [
      decide('x'),
      decide({}),
      decide({ ...GOOD, amount: -1 }, RULES),
      decide({ ...GOOD, confidence: 0.1 }, { rules: [amountPositive], confidence: { reportedField: 'confidence' }, gate: { threshold: 0.5, below: 'review' } }),
    ];
    for (const d of decisions) {
      expect(d.stages.map((s) => s.stage)).toEqual([...OUTPUT_STAGES]);
      for (const stage of d.stages) expect(StageOutcomeSchema.safeParse(stage).success).toBe(true);
    }
    expect(outcomes(decisions[3]?.stages ?? [])).toBe('parse:passed schema:passed rules:passed confidence:passed gate:failed');
  });
});

describe('outputPipelineProblems', () => {
  it('accepts a well-formed pipeline', () => {
    expect(outputPipelineProblems({ ...RULES, confidence: { reportedField: 'confidence', rules: [idsCovered] }, gate: { threshold: 0.7, below: 'review' } })).toEqual([]);
  });

  it('names malformed and duplicate rule names, an empty reported field and a threshold outside 0..1', () => {
    const pipeline: OutputPipeline<Invoice> = {
      rules: [idsExist, { ...idsExist }, { ...amountPositive, name: 'Amount Positive' }],
      confidence: { reportedField: '', rules: [{ ...idsCovered, name: '' }] },
      gate: { threshold: 1.5, below: 'fail' },
    };
    expect(outputPipelineProblems(pipeline)).toEqual([
      'outputPipeline.rules[1].name: duplicate name "ids-exist"',
      'outputPipeline.rules[2].name: "Amount Positive" must match /^[a-z][a-z0-9_-]{0,63}$/',
      'outputPipeline.confidence.rules[0].name: "" must match /^[a-z][a-z0-9_-]{0,63}$/',
      'outputPipeline.confidence.reportedField: must not be empty',
      'outputPipeline.gate.threshold: must be a number from 0 to 1',
    ]);
  });
});
