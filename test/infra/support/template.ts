/**
 * Typed helpers over a synthesized template: logical ids of constructs, CloudFormation
 * intrinsics rendered as `${LogicalId.Attr}` text, the IAM grants of a role as
 * `action resource` lines, and state machine definitions parsed back into ASL.
 */
import { CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Matcher, MatchResult, type Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** One resource of a template. */
export interface CfnResource {
  readonly Type: string;
  readonly Properties: Record<string, unknown>;
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
}

/** An IAM policy statement as synthesized. */
export interface PolicyStatement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: string | string[];
  readonly NotAction?: unknown;
  readonly Resource?: unknown;
  readonly NotResource?: unknown;
  readonly Principal?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
  readonly Sid?: string;
}

interface PolicyDocument {
  readonly Statement: PolicyStatement[];
}

/** The value, or an error naming what was missing. */
export function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`missing: ${what}`);
  return value;
}

export function asArray<T>(value: T | readonly T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? [...(value as readonly T[])] : [value as T];
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Matches a value equal to `pattern`, or an array with an element equal to it:
 * the two shapes an IAM Action or Resource takes, depending on how
 * `@aws-cdk/aws-iam:minimizePolicies` merged the statement.
 */
class OneOrAmong extends Matcher {
  readonly name = 'oneOrAmong';
  constructor(private readonly pattern: unknown) {
    super();
  }
  test(actual: unknown): MatchResult {
    const result = new MatchResult(actual);
    const candidates: readonly unknown[] = Array.isArray(actual) ? (actual as readonly unknown[]) : [actual];
    if (!candidates.some((c) => Match.exact(this.pattern).test(c).isSuccess)) {
      result.recordFailure({ matcher: this, path: [], message: `expected ${JSON.stringify(this.pattern)}, alone or in an array` });
    }
    return result;
  }
}

/** A matcher for an IAM Action/Resource that is `pattern` or lists it among others. */
export const oneOrAmong = (pattern: unknown): Matcher => new OneOrAmong(pattern);

/** The resources of one type, by logical id. */
export function resourcesOfType(template: Template, type: string): Record<string, CfnResource> {
  return template.findResources(type) as Record<string, CfnResource>;
}

/** One resource by logical id, checking its type. */
export function resource(template: Template, logicalId: string, type: string): CfnResource {
  const found = must(resourcesOfType(template, type)[logicalId], `${type} ${logicalId}`);
  return found;
}

/** Logical id of a construct's CloudFormation resource (its default child, or itself). */
export function logicalIdOf(construct: IConstruct): string {
  const element = construct instanceof CfnElement ? construct : construct.node.defaultChild;
  if (!(element instanceof CfnElement)) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return Stack.of(element).getLogicalId(element);
}

/** `${LogicalId.Arn}`: how {@link render} shows `Fn::GetAtt [id, Arn]`. */
export const arnOf = (construct: IConstruct): string => `\${${logicalIdOf(construct)}.Arn}`;
/** `${LogicalId}`: how {@link render} shows `Ref id`. */
export const refOf = (construct: IConstruct): string => `\${${logicalIdOf(construct)}}`;

/** Logical id of the role of a grantee (a function, a state machine). */
export function roleIdOf(grantee: { readonly role?: iam.IRole }): string {
  return logicalIdOf(must(grantee.role, 'role'));
}

/**
 * Renders a CloudFormation value as text: `Ref` as `${Id}`, `Fn::GetAtt` as
 * `${Id.Attr}`, `Fn::Join` joined, `Fn::Select`/`Fn::Split` spelled out.
 * @throws Error on any other intrinsic, so that a test cannot match it by accident.
 */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (isRecord(value)) {
    const entries = Object.entries(value);
    const [entry] = entries;
    if (entries.length === 1 && entry !== undefined) {
      const [fn, arg] = entry;
      const args = Array.isArray(arg) ? (arg as readonly unknown[]) : undefined;
      if (fn === 'Ref' && typeof arg === 'string') return `\${${arg}}`;
      if (fn === 'Fn::GetAtt' && args) return `\${${args.map(render).join('.')}}`;
      if (fn === 'Fn::Join' && args && typeof args[0] === 'string' && Array.isArray(args[1])) {
        return (args[1] as readonly unknown[]).map(render).join(args[0]);
      }
      if (fn === 'Fn::Select' && args) return `\${Select(${render(args[0])}, ${render(args[1])})}`;
      if (fn === 'Fn::Split' && args) return `Split(${render(args[0])}, ${render(args[1])})`;
    }
  }
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

/** Statements of every AWS::IAM::Policy attached to the role, and of the role's inline policies. */
export function statementsOfRole(template: Template, roleLogicalId: string): PolicyStatement[] {
  const statements: PolicyStatement[] = [];
  for (const policy of Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))) {
    const roles = asArray(policy.Properties.Roles as unknown[] | undefined);
    if (roles.some((r) => isRecord(r) && r.Ref === roleLogicalId)) {
      statements.push(...(policy.Properties.PolicyDocument as PolicyDocument).Statement);
    }
  }
  const role = resource(template, roleLogicalId, 'AWS::IAM::Role');
  for (const inline of asArray(role.Properties.Policies as { PolicyDocument: PolicyDocument }[] | undefined)) {
    statements.push(...inline.PolicyDocument.Statement);
  }
  return statements;
}

/** Every statement of every AWS::IAM::Policy, with the policy's logical id. */
export function allPolicyStatements(template: Template): { policy: string; roles: string[]; statement: PolicyStatement }[] {
  return Object.entries(resourcesOfType(template, 'AWS::IAM::Policy')).flatMap(([policy, res]) => {
    const roles = asArray(res.Properties.Roles as unknown[] | undefined).map(render);
    return (res.Properties.PolicyDocument as PolicyDocument).Statement.map((statement) => ({ policy, roles, statement }));
  });
}

/** What the statements allow, one `action resource` line each (resources rendered), sorted, without duplicates. */
export function grantLines(statements: readonly PolicyStatement[]): string[] {
  const lines = new Set<string>();
  for (const s of statements) {
    if (s.Effect !== 'Allow') continue;
    if (s.NotAction !== undefined || s.NotResource !== undefined) throw new Error(`NotAction/NotResource in ${JSON.stringify(s)}`);
    for (const action of asArray(s.Action)) for (const res of asArray(s.Resource)) lines.add(`${action} ${render(res)}`);
  }
  return [...lines].sort();
}

/** Lines `action resource` for each action on each resource, sorted (the expected side of {@link grantLines}). */
export function lines(actions: readonly string[], resources: readonly string[]): string[] {
  return actions.flatMap((a) => resources.map((r) => `${a} ${r}`)).sort();
}

/** A JSON value written with intrinsics inside its strings (an Fn::Join of text and tokens), parsed. */
export function parseJoinedJson(value: unknown): unknown {
  return JSON.parse(render(value)) as unknown;
}

// ---------------------------------------------------------------- Amazon States Language

export interface AslRetrier {
  readonly ErrorEquals: string[];
  readonly MaxAttempts?: number;
  readonly IntervalSeconds?: number;
  readonly BackoffRate?: number;
  readonly MaxDelaySeconds?: number;
  readonly JitterStrategy?: string;
}

export interface AslCatcher {
  readonly ErrorEquals: string[];
  readonly Next: string;
  readonly ResultPath?: string | null;
}

export interface AslChoiceRule {
  readonly Variable?: string;
  readonly Next: string;
  readonly StringEquals?: string;
  readonly BooleanEquals?: boolean;
  readonly NumericGreaterThanEquals?: number;
}

export interface AslState {
  readonly Type: string;
  readonly Comment?: string;
  readonly Next?: string;
  readonly End?: boolean;
  readonly Default?: string;
  readonly Resource?: string;
  readonly Parameters?: Record<string, unknown>;
  readonly Result?: unknown;
  readonly ResultPath?: string | null;
  readonly OutputPath?: string;
  readonly TimeoutSeconds?: number;
  readonly Retry?: AslRetrier[];
  readonly Catch?: AslCatcher[];
  readonly Choices?: AslChoiceRule[];
  readonly ItemsPath?: string;
  readonly ItemSelector?: Record<string, unknown>;
  readonly MaxConcurrency?: number;
  readonly ItemProcessor?: AslMachine;
  readonly Error?: string;
  readonly Cause?: string;
  readonly ErrorPath?: string;
  readonly CausePath?: string;
}

export interface AslMachine {
  readonly StartAt: string;
  readonly States: Record<string, AslState>;
  readonly Comment?: string;
}

/**
 * A state machine's DefinitionString (text, or an Fn::Join of text and tokens)
 * parsed as ASL; tokens inside strings are rendered as `${Id}` / `${Id.Attr}`.
 */
export function parseDefinition(definitionString: unknown): AslMachine {
  return parseJoinedJson(definitionString) as AslMachine;
}

/** A state of the machine or of one of its Map item processors. */
export function findState(machine: AslMachine, name: string): AslState {
  const direct = machine.States[name];
  if (direct) return direct;
  for (const state of Object.values(machine.States)) {
    if (state.ItemProcessor) {
      try {
        return findState(state.ItemProcessor, name);
      } catch {
        // not in this processor
      }
    }
  }
  throw new Error(`no state named ${name}`);
}

/** Every state name a state can go to (Next, Default, choice rules, catchers). */
export function transitionsOf(state: AslState): string[] {
  return [
    ...(state.Next === undefined ? [] : [state.Next]),
    ...(state.Default === undefined ? [] : [state.Default]),
    ...(state.Choices ?? []).map((c) => c.Next),
    ...(state.Catch ?? []).map((c) => c.Next),
  ];
}
