/**
 * The output pipeline, pure: a final answer goes parse → schema (zod) → semantic
 * rules → confidence → gate, and each stage's outcome is recorded.
 *
 * Outcomes, in order of precedence:
 * - the answer cannot be parsed, breaks the schema, or reports no valid confidence:
 *   `repair` while repairs remain, else `failed` with `OutputValidationFailed`;
 * - a semantic rule fails (or a rule or score function throws): `repair` while
 *   repairs remain, else the pipeline's `onRuleFailure`: `failed` with
 *   `OutputRuleFailed`, or `review` with the reasons;
 * - the confidence is below the gate's threshold: `review` or `failed` with
 *   `LowConfidence`, as the gate declares (never a repair);
 * - otherwise `final`.
 *
 * This module imports nothing of `loop.ts` (which calls it), so that the two do not
 * form an import cycle.
 */
import type { z } from 'zod';
import { CHECKPOINT_SK_PREFIX, OUTPUT_STAGES, type CheckpointRecord, type OutputStage, type StageOutcome, type ToolCheckpoint } from './contracts/checkpoint';
import type { Failure } from './contracts/loop';
import type { ModelResponse } from './contracts/model';
import { CorruptCheckpointError } from './errors';
import { formatIssues } from './validation';

/**
 * What semantic rules and confidence rules see besides the answer: the session's
 * successful tool results (parsed JSON, in step order) and the time.
 * Build it with {@link outputContext}.
 * Example: `{"toolResults":[{"tool":"count_failed_attempts","step":1,"callId":"toolu_01","result":{"totalFailedAttempts":528,…}}],"now":1733829600000}`
 */
export interface OutputContext {
  /** Successful tool calls of the session: tool name, step, call id, parsed result. */
  readonly toolResults: readonly { readonly tool: string; readonly step: number; readonly callId: string; readonly result: unknown }[];
  /** Now, ms since the epoch. */
  readonly now: number;
}

/**
 * A semantic rule: a check the schema cannot express (a date not in the past, an
 * amount positive, every cited id present in the tool results).
 * `check` returns the problems (empty or undefined: the rule holds). Each problem
 * is sent to the model as `<name>: <problem>`, so write it for the model: what is
 * wrong and what the tools said instead. A `check` that throws counts as a failure
 * of the rule, with the error's message.
 */
export interface SemanticRule<O = unknown> {
  /** `^[a-z][a-z0-9_-]{0,63}$`: names the rule in records and messages. */
  readonly name: string;
  /** What the rule asks, for people and for the model's repair message. */
  readonly description: string;
  readonly check: (output: O, context: OutputContext) => readonly string[] | undefined;
}

/**
 * A confidence rule: computes a score from 0 to 1 for the answer, with a reason
 * when it lowers confidence. A `score` that throws, or returns anything but a number
 * from 0 to 1, counts as a failure of the rule (like a {@link SemanticRule}'s) and as
 * a score of 0.
 */
export interface ConfidenceRule<O = unknown> {
  /** `^[a-z][a-z0-9_-]{0,63}$`: names the score in records and reasons. */
  readonly name: string;
  /** The answer's score, a number from 0 to 1, and why when it lowers confidence. */
  readonly score: (output: O, context: OutputContext) => { readonly score: number; readonly reason?: string };
}

/**
 * The declared pipeline after parse and schema.
 * - `rules`: semantic rules; a failure goes back to the model with the reasons
 *   while the agent's `maxOutputRepairs` last, then `onRuleFailure` applies.
 * - `confidence`: `reportedField` names a top-level number field (0..1) of the
 *   answer the model reports (missing or out of range: the answer is invalid and
 *   goes back for repair); `rules` compute scores; the answer's confidence is the
 *   minimum of all of them (1 when none is declared).
 * - `gate`: at or above `threshold` the answer is accepted; below, `below` says
 *   whether it goes to a human (`review`: an approval task with the answer and
 *   the reasons) or the run fails (`fail`, error `LowConfidence`).
 * Check a declaration with {@link outputPipelineProblems}.
 */
export interface OutputPipeline<O = unknown> {
  readonly rules?: readonly SemanticRule<O>[];
  /** What a rule failure becomes once the repairs are used up. @default 'fail' */
  readonly onRuleFailure?: 'fail' | 'review';
  readonly confidence?: {
    readonly reportedField?: string;
    readonly rules?: readonly ConfidenceRule<O>[];
  };
  /** @default no gate (every valid answer is accepted) */
  readonly gate?: { readonly threshold: number; readonly below: 'review' | 'fail' };
}

export { OUTPUT_STAGES, StageOutcomeSchema, type OutputStage, type StageOutcome } from './contracts/checkpoint';

/**
 * What a final answer means for the run; `stages` has one entry per stage, in order.
 * - `final`: accepted; `output` is the schema's output, `confidence` 0..1.
 * - `repair`: send `validationErrors` back to the model ({@link repairMessage}).
 * - `review`: a human decides: `reasons` say why (rule failures past the repairs,
 *   or a confidence below the gate).
 * - `failed`: the run fails with `failure` (`OutputValidationFailed`,
 *   `OutputRuleFailed` or `LowConfidence`); `output` and `confidence` are there when
 *   the answer passed the schema.
 */
export type FinalDecision<O = unknown> =
  | { readonly outcome: 'final'; readonly output: O; readonly confidence: number; readonly stages: StageOutcome[] }
  | { readonly outcome: 'repair'; readonly validationErrors: string[]; readonly stages: StageOutcome[] }
  | { readonly outcome: 'review'; readonly output: O; readonly confidence: number; readonly reasons: string[]; readonly stages: StageOutcome[] }
  | {
      readonly outcome: 'failed';
      readonly validationErrors: string[];
      readonly failure: Failure;
      readonly output?: O;
      readonly confidence?: number;
      readonly stages: StageOutcome[];
    };

/** Props of {@link decideFinalAnswer}. */
export interface FinalAnswerProps<S extends z.ZodType> {
  /** The agent's output schema. */
  readonly schema: S;
  /** @default none: parse and schema only, confidence 1, no gate */
  readonly pipeline?: OutputPipeline<z.infer<S>>;
  /** The session's tool results and the time ({@link outputContext}). */
  readonly context: OutputContext;
  /** Repairs already used in this run. */
  readonly repairs: number;
  /** Repairs allowed (the agent's `maxOutputRepairs`). */
  readonly maxOutputRepairs: number;
}

/** The parse error of an answer cut off at the output token limit (`stopReason: max_tokens`). */
export const CUT_OFF_ERROR = '(root): the answer was cut off at the output token limit; answer more briefly';

/** First line of the user message that sends a rejected final answer back to the model. */
export const OUTPUT_REPAIR_PREFIX = 'Your final answer was rejected. Fix these problems and answer again with JSON only:';

/**
 * The user message that sends a rejected final answer back: {@link OUTPUT_REPAIR_PREFIX},
 * then one `- <problem>` line per error.
 * Example: `"Your final answer was rejected. Fix these problems and answer again with JSON only:\n- counts-match-tools: 183.62.140.253: attempts 300, but count_failed_attempts reported 286 (toolu_01)"`
 */
export function repairMessage(validationErrors: readonly string[]): string {
  return `${OUTPUT_REPAIR_PREFIX}\n${validationErrors.map((e) => `- ${e}`).join('\n')}`;
}

/**
 * The {@link OutputContext} of a session: its live (`CP#`) tool checkpoints with
 * status `succeeded`, results parsed from JSON, in step order (the records' order
 * within a step). Failed, rejected and unknown-outcome calls are left out.
 * Bodies stored in S3 must have been loaded into the records first (`result`),
 * including those the context limit dropped from the conversation.
 * @param now ms since the epoch
 * @throws Error when a succeeded call's body was not loaded;
 *   CorruptCheckpointError when a result is not JSON.
 */
export function outputContext(records: readonly CheckpointRecord[], now: number): OutputContext {
  const tools = records
    .filter((r): r is ToolCheckpoint => r.kind === 'tool' && r.status === 'succeeded' && r.sk.startsWith(CHECKPOINT_SK_PREFIX))
    .map((r, index) => ({ r, index }))
    .sort((a, b) => a.r.step - b.r.step || a.index - b.index)
    .map(({ r }) => r);
  const toolResults = tools.map((r) => {
    if (r.result === undefined) throw new Error(`${r.sk}: result body not loaded (${r.resultRef?.key ?? 'no reference'})`);
    let result: unknown;
    try {
      result = JSON.parse(r.result);
    } catch (err) {
      throw new CorruptCheckpointError(`record ${r.sessionId}/${r.sk}: result is not JSON (${(err as Error).message})`);
    }
    return { tool: r.tool, step: r.step, callId: r.callId, result };
  });
  return { toolResults, now };
}

/**
 * Parses the JSON of a final answer's text: the whole text, or else the first
 * ```json (or bare ```) fenced block in it.
 * @returns the JSON value, or the problem as `(root): not valid JSON (…)`.
 */
export function parseAnswerJson(text: string): { ok: true; json: unknown } | { ok: false; error: string } {
  // The whole text first: a valid answer may contain a ``` code span inside a string.
  try {
    return { ok: true, json: JSON.parse(text.trim()) as unknown };
  } catch (err) {
    const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(text);
    try {
      if (!fenced?.[1]) throw err;
      return { ok: true, json: JSON.parse(fenced[1].trim()) as unknown };
    } catch (inner) {
      return { ok: false, error: `(root): not valid JSON (${(inner as Error).message})` };
    }
  }
}

/**
 * Decides what a final answer (a model response without tool calls) means for the
 * run, running parse → schema → rules → confidence → gate (see the module's doc for
 * the outcomes). Semantic rules and confidence run together once the schema
 * passes, so that one repair message lists every problem; the gate runs only when
 * they found none. Never throws on account of a rule: a throwing rule or score is a
 * rule failure.
 * - parse: the text blocks joined, as JSON (or its first fenced block); an answer cut
 *   off at `max_tokens` fails with {@link CUT_OFF_ERROR}.
 * - schema: `schema.safeParse`, one error per issue (`path: message`).
 * - rules: each rule's problems, as `<rule name>: <problem>`.
 * - confidence: the minimum of the reported field and the scores (1 when none);
 *   an invalid reported value, or a score that throws or is out of 0..1, counts as 0
 *   and fails the stage.
 * - gate: `confidence >= threshold` passes.
 */
export function decideFinalAnswer<S extends z.ZodType>(response: ModelResponse, props: FinalAnswerProps<S>): FinalDecision<z.infer<S>> {
  const { pipeline, repairs, maxOutputRepairs } = props;
  const stages: StageOutcome[] = [];
  const canRepair = repairs < maxOutputRepairs;
  const skipRest = (from: OutputStage, detail: string): void => {
    for (const stage of OUTPUT_STAGES.slice(OUTPUT_STAGES.indexOf(from))) stages.push({ stage, outcome: 'skipped', detail });
  };
  const invalid = (validationErrors: string[]): FinalDecision<z.infer<S>> =>
    canRepair
      ? { outcome: 'repair', validationErrors, stages }
      : { outcome: 'failed', validationErrors, failure: outputFailure('OutputValidationFailed', maxOutputRepairs, validationErrors), stages };

  // parse
  const parsed = response.stopReason === 'max_tokens' ? { ok: false as const, error: CUT_OFF_ERROR } : parseAnswerJson(answerText(response));
  if (!parsed.ok) {
    stages.push({ stage: 'parse', outcome: 'failed', errors: [parsed.error] });
    skipRest('schema', 'the answer could not be parsed');
    return invalid([parsed.error]);
  }
  stages.push({ stage: 'parse', outcome: 'passed' });

  // schema
  const checked = props.schema.safeParse(parsed.json);
  if (!checked.success) {
    const errors = formatIssues(checked.error);
    stages.push({ stage: 'schema', outcome: 'failed', errors });
    skipRest('rules', 'the answer does not match the output schema');
    return invalid(errors);
  }
  stages.push({ stage: 'schema', outcome: 'passed' });
  const output = checked.data as z.infer<S>;

  // rules
  const rules = pipeline?.rules ?? [];
  const ruleErrors = rules.flatMap((rule) => runRule(rule, output, props.context));
  stages.push(
    rules.length === 0
      ? { stage: 'rules', outcome: 'skipped', detail: 'no rules declared' }
      : ruleErrors.length > 0
        ? { stage: 'rules', outcome: 'failed', errors: ruleErrors }
        : { stage: 'rules', outcome: 'passed', detail: `${rules.length} rule(s) held` },
  );

  // confidence
  const scored = confidenceOf(output, pipeline?.confidence, props.context);
  const confidence = scored.confidence;
  stages.push(
    scored.parts.length === 0
      ? { stage: 'confidence', outcome: 'skipped', confidence, detail: 'no confidence declared: 1' }
      : scored.invalid.length + scored.ruleErrors.length > 0
        ? { stage: 'confidence', outcome: 'failed', confidence, errors: [...scored.invalid, ...scored.ruleErrors] }
        : { stage: 'confidence', outcome: 'passed', confidence, detail: scored.parts.map((p) => `${p.name} ${round(p.score)}`).join(', ') },
  );

  const brokenRules = [...ruleErrors, ...scored.ruleErrors];
  if (scored.invalid.length + brokenRules.length > 0) {
    const problems = [...scored.invalid, ...brokenRules];
    if (canRepair) {
      skipRest('gate', 'the answer goes back to the model for repair');
      return { outcome: 'repair', validationErrors: problems, stages };
    }
    if (scored.invalid.length > 0) {
      skipRest('gate', `the answer is still invalid after ${maxOutputRepairs} repair(s)`);
      return { outcome: 'failed', validationErrors: problems, failure: outputFailure('OutputValidationFailed', maxOutputRepairs, problems), output, confidence, stages };
    }
    if (pipeline?.onRuleFailure === 'review') {
      skipRest('gate', `rules still fail after ${maxOutputRepairs} repair(s): the answer goes to review`);
      return { outcome: 'review', output, confidence, reasons: brokenRules, stages };
    }
    skipRest('gate', `rules still fail after ${maxOutputRepairs} repair(s)`);
    return { outcome: 'failed', validationErrors: brokenRules, failure: outputFailure('OutputRuleFailed', maxOutputRepairs, brokenRules), output, confidence, stages };
  }

  // gate
  const gate = pipeline?.gate;
  if (!gate) {
    stages.push({ stage: 'gate', outcome: 'skipped', confidence, detail: 'no gate declared' });
    return { outcome: 'final', output, confidence, stages };
  }
  if (confidence >= gate.threshold) {
    stages.push({ stage: 'gate', outcome: 'passed', confidence, detail: `confidence ${round(confidence)} >= threshold ${gate.threshold}` });
    return { outcome: 'final', output, confidence, stages };
  }
  const reasons = [
    `confidence ${round(confidence)} is below the threshold ${gate.threshold}`,
    ...scored.parts.filter((p) => p.score < gate.threshold).map((p) => `${p.name}: ${round(p.score)}${p.reason === undefined ? '' : ` (${p.reason})`}`),
  ];
  stages.push({ stage: 'gate', outcome: 'failed', confidence, errors: reasons, detail: gate.below === 'review' ? 'the answer goes to review' : 'the run fails' });
  if (gate.below === 'review') return { outcome: 'review', output, confidence, reasons, stages };
  return {
    outcome: 'failed',
    validationErrors: reasons,
    failure: { error: 'LowConfidence', cause: `final answer below the confidence threshold: ${reasons.join('; ')}` },
    output,
    confidence,
    stages,
  };
}

/**
 * The problems of a pipeline declaration, one per line naming the field (empty: none):
 * rule and score names must match `^[a-z][a-z0-9_-]{0,63}$` and be unique among
 * rules and among scores, the reported field must be non-empty, the gate's threshold
 * a number from 0 to 1.
 * Example: `["outputPipeline.gate.threshold: must be a number from 0 to 1"]`
 */
export function outputPipelineProblems(pipeline: OutputPipeline<never>, where = 'outputPipeline'): string[] {
  const problems: string[] = [];
  const names = (list: readonly { name: string }[], field: string): void => {
    const seen = new Set<string>();
    list.forEach(({ name }, i) => {
      if (!RULE_NAME.test(name)) problems.push(`${where}.${field}[${i}].name: "${name}" must match ${String(RULE_NAME)}`);
      if (seen.has(name)) problems.push(`${where}.${field}[${i}].name: duplicate name "${name}"`);
      seen.add(name);
    });
  };
  names(pipeline.rules ?? [], 'rules');
  names(pipeline.confidence?.rules ?? [], 'confidence.rules');
  if (pipeline.confidence?.reportedField === '') problems.push(`${where}.confidence.reportedField: must not be empty`);
  const threshold = pipeline.gate?.threshold;
  if (threshold !== undefined && !(typeof threshold === 'number' && threshold >= 0 && threshold <= 1)) {
    problems.push(`${where}.gate.threshold: must be a number from 0 to 1`);
  }
  return problems;
}

const RULE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

/** The text of a model answer: its text blocks joined. */
export function answerText(response: ModelResponse): string {
  return response.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
}

/** The failure of a run whose answer still fails after the repairs; the cause lists the problems. */
export function outputFailure(error: 'OutputValidationFailed' | 'OutputRuleFailed', maxOutputRepairs: number, problems: readonly string[]): Failure {
  const what = error === 'OutputValidationFailed' ? 'still invalid' : 'still breaks its rules';
  return { error, cause: `final answer ${what} after ${maxOutputRepairs} repair(s): ${problems.join('; ')}` };
}

/** A rule's problems, prefixed with its name; a rule that throws reports the error. */
function runRule<O>(rule: SemanticRule<O>, output: O, context: OutputContext): string[] {
  try {
    return (rule.check(output, context) ?? []).map((problem) => `${rule.name}: ${problem}`);
  } catch (err) {
    return [`${rule.name}: could not be checked (${errorText(err)})`];
  }
}

interface ConfidencePart {
  readonly name: string;
  readonly score: number;
  readonly reason?: string;
}

/** The confidence of an answer: each part (reported field, scores), their minimum, and what was wrong. */
function confidenceOf<O>(
  output: O,
  declared: OutputPipeline<O>['confidence'],
  context: OutputContext,
): { confidence: number; parts: ConfidencePart[]; invalid: string[]; ruleErrors: string[] } {
  const parts: ConfidencePart[] = [];
  const invalid: string[] = [];
  const ruleErrors: string[] = [];
  const field = declared?.reportedField;
  if (field !== undefined) {
    const value = typeof output === 'object' && output !== null && !Array.isArray(output) ? (output as Record<string, unknown>)[field] : undefined;
    if (isUnitScore(value)) {
      parts.push({ name: field, score: value, reason: 'reported by the model' });
    } else {
      invalid.push(`${field}: the confidence must be a number from 0 to 1 (got ${value === undefined ? 'nothing' : JSON.stringify(value)})`);
      parts.push({ name: field, score: 0, reason: 'no valid confidence reported' });
    }
  }
  for (const rule of declared?.rules ?? []) {
    let problem: string;
    try {
      const { score, reason } = rule.score(output, context);
      if (isUnitScore(score)) {
        parts.push(reason === undefined ? { name: rule.name, score } : { name: rule.name, score, reason });
        continue;
      }
      problem = `the score must be a number from 0 to 1 (got ${String(score)})`;
    } catch (err) {
      problem = `could not be scored (${errorText(err)})`;
    }
    ruleErrors.push(`${rule.name}: ${problem}`);
    parts.push({ name: rule.name, score: 0, reason: problem });
  }
  const confidence = parts.reduce((min, p) => Math.min(min, p.score), 1);
  return { confidence, parts, invalid, ruleErrors };
}

const isUnitScore = (value: unknown): value is number => typeof value === 'number' && value >= 0 && value <= 1;

const errorText = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/** A score for messages: at most 3 decimals. */
const round = (score: number): number => Math.round(score * 1000) / 1000;
