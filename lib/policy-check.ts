/**
 * Synth-time checks of an agent's Cedar policies: they must parse and pass
 * Cedar's strict validation against the schema generated from the agent's tools
 * (`policySchema` in lambdas/core/policy.ts). The CLI runs the same check on an
 * override before writing it to the policy table.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { cedarErrorText, policyNames, TOOL_TYPE, type PolicySchema, type PolicySource } from '../lambdas/core/policy';

/** Options of {@link policyProblems} and {@link checkPolicies}. */
export interface PolicyCheckOptions {
  /**
   * The agent's tool names: a policy naming another `Tool::"..."` (a typo, a removed
   * tool) is a problem, since it could never match. @default not checked
   */
  readonly tools?: readonly string[];
}

/** The 1-based line of a UTF-8 byte offset (Cedar's source locations count bytes). */
function lineOfByte(text: string, byteOffset: number): number {
  return lineOfChar(Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8'), Number.MAX_SAFE_INTEGER);
}

/** The 1-based line of a character offset. */
function lineOfChar(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < Math.min(offset, text.length); i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** `file:line` of a diagnostic's first source location, or the file alone. */
function where(policies: PolicySource, error: cedar.DetailedError): string {
  const at = error.sourceLocations?.[0];
  return at ? `${policies.source}:${lineOfByte(policies.text, at.start)}` : policies.source;
}

/**
 * Entity references `Tool::"<id>"` outside comments and string literals, with
 * their character offsets.
 */
function toolReferences(text: string): Array<{ id: string; offset: number }> {
  const refs: Array<{ id: string; offset: number }> = [];
  const uid = new RegExp(`${TOOL_TYPE}\\s*::\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'y');
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end;
    } else if (ch === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (/[A-Za-z_]/.test(ch ?? '') && !/[A-Za-z0-9_:]/.test(text[i - 1] ?? ' ')) {
      uid.lastIndex = i;
      const m = uid.exec(text);
      if (m) {
        refs.push({ id: (m[1] ?? '').replace(/\\(.)/g, '$1'), offset: i });
        i = uid.lastIndex;
      } else {
        while (i < text.length && /[A-Za-z0-9_]/.test(text[i] ?? '')) i++;
      }
    } else {
      i++;
    }
  }
  return refs;
}

/**
 * Everything wrong with a policy set, one line each, in file order:
 * `<file>:<line>: <policy>: <problem>`, where the policy is its `@id`
 * annotation or Cedar's id (`policy0` is the file's first policy). Parse errors
 * have no policy: `<file>:<line>: <problem>`.
 * Checks: the text parses (no templates); Cedar's strict validation against
 * `schema`, errors and warnings (unknown attributes, entity types or actions, type
 * errors, optional attributes read without `has`, impossible policies such as one
 * testing an argument no tool declares); no two policies share an `@id`; with
 * `options.tools`, every `Tool::"..."` names one of them.
 * Example: `["examples/x/policies.cedar:4: policy0: attribute \`role\` on entity type \`User\` not found (did you mean \`tenant\`?)"]`
 * @returns [] when the policies are valid
 */
export function policyProblems(policies: PolicySource, schema: PolicySchema, options: PolicyCheckOptions = {}): string[] {
  const answer = cedar.validate({ schema, policies: { staticPolicies: policies.text }, validationSettings: { mode: 'strict' } });
  if (answer.type === 'failure') return answer.errors.map((e) => `${where(policies, e)}: ${cedarErrorText(e)}`);
  const names = policyNames(policies.text, cedar);
  // Warnings count: an impossible policy (e.g. one testing an argument no tool has) is
  // a permit that never permits or, worse, a forbid that never forbids. A policy with
  // errors gets no warnings (they repeat the errors' consequences).
  const failed = new Set(answer.validationErrors.map((v) => v.policyId));
  const found = [...answer.validationErrors, ...answer.validationWarnings.filter((v) => !failed.has(v.policyId))];
  const offset = (v: cedar.ValidationError): number => v.error.sourceLocations?.[0]?.start ?? Number.MAX_SAFE_INTEGER;
  const problems = found
    .map((v, i) => ({ v, i }))
    .sort((a, b) => offset(a.v) - offset(b.v) || a.i - b.i)
    .map(({ v }) => `${where(policies, v.error)}: ${names.get(v.policyId) ?? v.policyId}: ${cedarErrorText(v.error, names)}`);
  const byName = new Map<string, string>();
  for (const [id, name] of names) {
    const first = byName.get(name);
    if (first === undefined) byName.set(name, id);
    else problems.push(`${policies.source}: ${id}: @id("${name}") is also the id of ${first}`);
  }
  if (options.tools) {
    const known = new Set(options.tools);
    for (const ref of toolReferences(policies.text)) {
      if (!known.has(ref.id)) {
        problems.push(`${policies.source}:${lineOfChar(policies.text, ref.offset)}: ${TOOL_TYPE}::"${ref.id}" is not a tool of the agent (its tools: ${[...known].join(', ') || 'none'})`);
      }
    }
  }
  return problems;
}

/**
 * Throws unless the policies are valid (see {@link policyProblems}): at synth
 * time for the file beside an agent, and in the CLI for an override before it is
 * written (with `source` naming where the text came from).
 * @throws Error whose message lists every problem, one line each, e.g.
 *   `examples/x/policies.cedar:4: policy0: attribute \`role\` on entity type \`User\` not found (did you mean \`tenant\`?)`
 */
export function checkPolicies(policies: PolicySource, schema: PolicySchema, options: PolicyCheckOptions = {}): void {
  const problems = policyProblems(policies, schema, options);
  if (problems.length > 0) throw new Error(problems.join('\n'));
}
