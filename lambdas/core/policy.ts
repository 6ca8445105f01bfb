/**
 * Authorisation, pure: the run's principal, the Cedar schema generated from an
 * agent's tools, and the entities and requests the policy engine evaluates.
 */
import type {
  ApplySpec,
  CedarValueJson,
  Context,
  DetailedError,
  EntityJson,
  EntityUidJson,
  PolicySetTextToPartsAnswer,
  PolicyToJsonAnswer,
  SchemaJson,
  TypeOfAttribute,
} from '@cedar-policy/cedar-wasm/nodejs';
import { z } from 'zod';
import type { ToolDefinition } from './define';

/**
 * Who a run acts for: taken from the trigger (never from the model), stored with
 * the session, and the Cedar principal of every authorisation. Unknown keys are rejected.
 * The length limits (ids of 1-256 characters, roles of 1-128, at most 50 roles) are the
 * runtime's choice: room for the usual user, tenant and role ids, while a principal stays
 * small in every session head and every policy request.
 * Example: `{"user":"alice","tenant":"acme","roles":["dba"]}`
 */
export const PrincipalSchema = z
  .object({
    /** The user (or service) id: `User::"<user>"`. */
    user: z.string().min(1).max(256),
    /** The tenant the run belongs to: the user's `tenant` attribute. */
    tenant: z.string().min(1).max(256),
    /** Roles: the user's parents, `Role::"<role>"`. */
    roles: z.array(z.string().min(1).max(128)).max(50),
  })
  .strict();

/** Who a run acts for. */
export type Principal = z.infer<typeof PrincipalSchema>;

/**
 * The principal of a session that recorded none (a session from before principals,
 * or a run started without one): an anonymous user of the `default` tenant with no
 * roles, so that only policies permitting every principal let it use a tool.
 * Example: `{"user":"anonymous","tenant":"default","roles":[]}`
 */
export const DEFAULT_PRINCIPAL: Principal = { user: 'anonymous', tenant: 'default', roles: [] };

/** Sensitivity of the data a tool touches: the Cedar `Tool` entity's `classification`. */
export const DataClassificationSchema = z.enum(['public', 'internal', 'confidential', 'restricted']);
/** Sensitivity of the data a tool touches. */
export type DataClassification = z.infer<typeof DataClassificationSchema>;

/** Cedar policies declared beside an agent: their text and the file they came from (for error messages). */
export interface PolicySource {
  /** Cedar policy text. */
  readonly text: string;
  /** The file, relative to the project root, e.g. `examples/ssh-brute-force/policies.cedar`. */
  readonly source: string;
}

// ---------------------------------------------------------------------------
// The Cedar model (no namespace):
//   principal  User::"<user>"   {tenant: String}, parents Role::"<role>"
//   resource   Tool::"<name>"   {agent, environment, classification: String; tags: Set<String>}
//   actions    Action::"discoverTool" (context {}) and Action::"callTool"
//              (context {arguments: {...}, step: Long}), both in Action::"useTool".
// ---------------------------------------------------------------------------

/** Cedar entity type of principals: `User::"<user>"`. */
export const USER_TYPE = 'User';
/** Cedar entity type of roles, the parents of a user: `Role::"<role>"`. */
export const ROLE_TYPE = 'Role';
/** Cedar entity type of resources: `Tool::"<tool name>"`. */
export const TOOL_TYPE = 'Tool';
/** Cedar entity type of actions. */
export const ACTION_TYPE = 'Action';
/** The action group both actions belong to: `action in Action::"useTool"` matches either. */
export const USE_TOOL_ACTION = 'useTool';

/**
 * The two actions authorised: `discoverTool` (may the model be offered the tool;
 * context `{}`) and `callTool` (this call; context `{arguments, step}`).
 */
export const POLICY_ACTIONS = ['discoverTool', 'callTool'] as const;
/** `discoverTool` or `callTool`. */
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/**
 * The policy set of an agent that declares none: every declared tool permitted to
 * every principal. Cedar itself denies by default; this is the runtime's default.
 */
export const DEFAULT_POLICIES = 'permit (principal, action, resource);\n';

/**
 * Cedar's answer for one request.
 * Example: `{"allowed":true,"policies":["dba-select-production"],"errors":[]}`
 */
export interface PolicyDecision {
  /** True only when Cedar answered allow without any error. */
  readonly allowed: boolean;
  /**
   * The determining policies: those that permitted (allow) or forbade (deny), by
   * their `@id("...")` annotation, else Cedar's id (`policy0`, `policy1` ... in file order).
   * Empty when nothing matched (default deny) or on error.
   */
  readonly policies: string[];
  /** Evaluation or request errors (any error denies), one line each. */
  readonly errors: string[];
}

/** A Cedar JSON schema (`{"": {entityTypes, actions}}`). */
export type PolicySchema = SchemaJson<string>;
/** The type of one argument in the schema: String, Long, Boolean or Set<String>. */
export type ArgumentType = { type: 'String' } | { type: 'Long' } | { type: 'Boolean' } | { type: 'Set'; element: { type: 'String' } };

/**
 * A Cedar authorisation request, as `isAuthorized` takes it (with the schema, so
 * that Cedar checks the request and entities against it).
 */
export interface AuthorizationRequest {
  /** `User::"<user>"`. */
  readonly principal: EntityUidJson;
  /** `Action::"discoverTool"` or `Action::"callTool"`. */
  readonly action: EntityUidJson;
  /** `Tool::"<tool name>"`. */
  readonly resource: EntityUidJson;
  /** `{}` for `discoverTool`; `{arguments, step}` for `callTool`. */
  readonly context: Context;
  /** The user, its roles and the tool ({@link principalEntities}, {@link toolEntity}). */
  readonly entities: EntityJson[];
  /** The agent's schema ({@link policySchema}). */
  readonly schema: PolicySchema;
}

/** The tool fields that become the `Tool` entity. */
export type PolicyTool = Pick<ToolDefinition, 'name' | 'classification' | 'tags'>;

const STRING: ArgumentType = { type: 'String' };
const LONG: ArgumentType = { type: 'Long' };
const BOOLEAN: ArgumentType = { type: 'Boolean' };
const STRING_SET: ArgumentType = { type: 'Set', element: { type: 'String' } };

/** The Cedar type of one JSON Schema property, or undefined when it has none here. */
function argumentType(property: unknown): ArgumentType | undefined {
  if (typeof property !== 'object' || property === null) return undefined;
  const p = property as Record<string, unknown>;
  const branches = Array.isArray(p.anyOf) ? p.anyOf : Array.isArray(p.oneOf) ? p.oneOf : undefined;
  if (branches) {
    const types = branches.map(argumentType);
    const first = types[0];
    return first && types.every((t) => t !== undefined && sameType(t, first)) ? first : undefined;
  }
  switch (p.type) {
    case 'string':
      return STRING;
    case 'integer':
      return LONG;
    case 'boolean':
      return BOOLEAN;
    case 'array':
      return argumentType(p.items)?.type === 'String' ? STRING_SET : undefined;
    default:
      return undefined;
  }
}

const sameType = (a: ArgumentType, b: ArgumentType): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The `arguments` record type of `callTool`'s context: the union of the top-level
 * input properties of the agent's tools (the JSON Schema the model sees), each
 * optional. string (and string enums) → String, integer → Long, boolean → Bool,
 * array of strings → Set<String>; anything else, a name two tools give different
 * types, or a name starting with `__` (Cedar's JSON escapes) is left out.
 * Example: `{"operation":{"type":"String"},"sql":{"type":"String"}}`
 */
export function argumentTypes(agentTools: readonly ToolDefinition[]): Record<string, ArgumentType> {
  const types = new Map<string, ArgumentType | null>();
  for (const tool of agentTools) {
    // The JSON Schema the model sees (as `toolSpec` makes it; not imported, so that
    // this module, which contracts/checkpoint.ts imports, imports define.ts for types only).
    const { properties } = z.toJSONSchema(tool.input, { io: 'input', unrepresentable: 'any' }) as { properties?: unknown };
    if (typeof properties !== 'object' || properties === null) continue;
    for (const [name, property] of Object.entries(properties as Record<string, unknown>)) {
      if (name.startsWith('__')) continue;
      const type = argumentType(property);
      const seen = types.get(name);
      if (seen === undefined) types.set(name, type ?? null);
      else if (seen !== null && (type === undefined || !sameType(seen, type))) types.set(name, null);
    }
  }
  const out: Record<string, ArgumentType> = {};
  for (const [name, type] of [...types].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) if (type) out[name] = type;
  return out;
}

/**
 * The Cedar schema (JSON, no namespace) policies are validated against at synth
 * time and requests checked against at call time. Example (one tool with input
 * `{operation: enum, sql: string}`):
 * ```json
 * {"": {
 *   "entityTypes": {
 *     "Role": {},
 *     "User": {"memberOfTypes": ["Role"], "shape": {"type": "Record", "attributes": {"tenant": {"type": "String"}}}},
 *     "Tool": {"shape": {"type": "Record", "attributes": {"agent": {"type": "String"}, "environment": {"type": "String"},
 *       "classification": {"type": "String"}, "tags": {"type": "Set", "element": {"type": "String"}}}}}},
 *   "actions": {
 *     "useTool": {},
 *     "discoverTool": {"memberOf": [{"id": "useTool"}], "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Tool"],
 *       "context": {"type": "Record", "attributes": {}}}},
 *     "callTool": {"memberOf": [{"id": "useTool"}], "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Tool"],
 *       "context": {"type": "Record", "attributes": {"step": {"type": "Long"}, "arguments": {"type": "Record", "attributes": {
 *         "operation": {"type": "String", "required": false}, "sql": {"type": "String", "required": false}}}}}}}}}}
 * ```
 */
export function policySchema(agentTools: readonly ToolDefinition[]): PolicySchema {
  const str: TypeOfAttribute<string> = { type: 'String' };
  const argumentAttributes: Record<string, TypeOfAttribute<string>> = {};
  for (const [name, type] of Object.entries(argumentTypes(agentTools))) argumentAttributes[name] = { ...type, required: false };
  const appliesTo = (context: Record<string, TypeOfAttribute<string>>): ApplySpec<string> => ({
    principalTypes: [USER_TYPE],
    resourceTypes: [TOOL_TYPE],
    context: { type: 'Record', attributes: context },
  });
  return {
    '': {
      entityTypes: {
        [ROLE_TYPE]: {},
        [USER_TYPE]: { memberOfTypes: [ROLE_TYPE], shape: { type: 'Record', attributes: { tenant: str } } },
        [TOOL_TYPE]: {
          shape: {
            type: 'Record',
            attributes: { agent: str, environment: str, classification: str, tags: { type: 'Set', element: str } },
          },
        },
      },
      actions: {
        [USE_TOOL_ACTION]: {},
        discoverTool: { memberOf: [{ id: USE_TOOL_ACTION }], appliesTo: appliesTo({}) },
        callTool: {
          memberOf: [{ id: USE_TOOL_ACTION }],
          appliesTo: appliesTo({ step: { type: 'Long' }, arguments: { type: 'Record', attributes: argumentAttributes } }),
        },
      },
    },
  };
}

/** The `arguments` attribute types a schema built by {@link policySchema} declares (empty for any other schema). */
function schemaArgumentTypes(schema: PolicySchema): Record<string, ArgumentType> {
  const context = schema['']?.actions.callTool?.appliesTo?.context as { attributes?: Record<string, unknown> } | undefined;
  const args = context?.attributes?.arguments as { attributes?: Record<string, ArgumentType> } | undefined;
  return args?.attributes ?? {};
}

const matches = (type: ArgumentType, value: unknown): boolean => {
  switch (type.type) {
    case 'String':
      return typeof value === 'string';
    case 'Long':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'Boolean':
      return typeof value === 'boolean';
    case 'Set':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
  }
};

/**
 * The call's `context.arguments`: the input's top-level attributes the schema
 * declares whose value has the declared type (an integer beyond ±2^53 does not);
 * the rest are left out, so policies test them with `has`.
 * Example: `callArguments({operation: "SELECT", sql: "...", limit: 1.5}, schema)` → `{"operation":"SELECT","sql":"..."}`
 * @param args the tool input (any value: a non-object gives `{}`)
 */
export function callArguments(args: unknown, schema: PolicySchema): Record<string, CedarValueJson> {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return {};
  const out: Record<string, CedarValueJson> = {};
  for (const [name, type] of Object.entries(schemaArgumentTypes(schema))) {
    if (!Object.hasOwn(args, name)) continue;
    const value = (args as Record<string, unknown>)[name];
    if (matches(type, value)) out[name] = value as CedarValueJson;
  }
  return out;
}

/**
 * The resource entity: `Tool::"<name>"` with its attributes.
 * Example: `{"uid":{"type":"Tool","id":"database_query"},"attrs":{"agent":"dba-assistant","environment":"production","classification":"restricted","tags":["sql"]},"parents":[]}`
 * @param environment the deployment's environment, e.g. `production`
 */
export function toolEntity(tool: PolicyTool, agent: string, environment: string): EntityJson {
  return {
    uid: { type: TOOL_TYPE, id: tool.name },
    attrs: { agent, environment, classification: tool.classification, tags: [...new Set(tool.tags)] },
    parents: [],
  };
}

/**
 * The principal's entities: `User::"<user>"` (attribute `tenant`, parents its
 * roles) and one `Role::"<role>"` per distinct role.
 */
export function principalEntities(principal: Principal): EntityJson[] {
  const roles = [...new Set(principal.roles)];
  return [
    {
      uid: { type: USER_TYPE, id: principal.user },
      attrs: { tenant: principal.tenant },
      parents: roles.map((id) => ({ type: ROLE_TYPE, id })),
    },
    ...roles.map((id): EntityJson => ({ uid: { type: ROLE_TYPE, id }, attrs: {}, parents: [] })),
  ];
}

/** What {@link authorizationRequest} builds a request from. */
export interface AuthorizationInput {
  /** The run's principal (from the trigger, never the model). */
  readonly principal: Principal;
  readonly action: PolicyAction;
  readonly tool: PolicyTool;
  /** The agent's name: the tool's `agent` attribute. */
  readonly agent: string;
  /** The deployment's environment: the tool's `environment` attribute. */
  readonly environment: string;
  /** The agent's schema ({@link policySchema}): filters the arguments; Cedar checks the request against it. */
  readonly schema: PolicySchema;
  /** `callTool`: the tool input as the model gave it (filtered by {@link callArguments}). @default {} */
  readonly arguments?: unknown;
  /** `callTool`: the model turn that asked for the call. Required for `callTool`. */
  readonly step?: number;
}

/**
 * The Cedar request for one decision: `discoverTool` with context `{}`, or
 * `callTool` with context `{arguments, step}`.
 * @throws Error when `callTool` has no `step` (a non-negative integer).
 */
export function authorizationRequest(input: AuthorizationInput): AuthorizationRequest {
  let context: Context = {};
  if (input.action === 'callTool') {
    const step = input.step;
    if (step === undefined || !Number.isSafeInteger(step) || step < 0) throw new Error(`authorizationRequest(${input.tool.name}): callTool needs step, a non-negative integer`);
    context = { arguments: callArguments(input.arguments ?? {}, input.schema), step };
  }
  return {
    principal: { type: USER_TYPE, id: input.principal.user },
    action: { type: ACTION_TYPE, id: input.action },
    resource: { type: TOOL_TYPE, id: input.tool.name },
    context,
    entities: [...principalEntities(input.principal), toolEntity(input.tool, input.agent, input.environment)],
    schema: input.schema,
  };
}

/** The two parsing functions of `@cedar-policy/cedar-wasm` {@link policyNames} uses (core imports no values from it). */
export interface CedarParser {
  /** Splits a policy set's text into the text of each policy (cedar-wasm `policySetTextToParts`). */
  policySetTextToParts(text: string): PolicySetTextToPartsAnswer;
  /** Parses one policy's text into Cedar's JSON form, annotations included (cedar-wasm `policyToJson`). */
  policyToJson(policy: string): PolicyToJsonAnswer;
}

/**
 * Names of a policy set's policies: Cedar's id (`policy0`, `policy1` ... in file
 * order) → the policy's `@id("...")` annotation, for the policies that have one.
 * Empty when the text does not parse.
 * Example: for `@id("dba-select") permit (...); permit (...);` → `Map {"policy0" => "dba-select"}`
 */
export function policyNames(text: string, cedar: CedarParser): Map<string, string> {
  const names = new Map<string, string>();
  const parts = cedar.policySetTextToParts(text);
  if (parts.type !== 'success') return names;
  // policySetTextToParts lists the policies sorted by id as strings (policy0, policy1, policy10, policy2 ...).
  const ids = Array.from({ length: parts.policies.length }, (_, i) => `policy${i}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  parts.policies.forEach((part, i) => {
    const json = cedar.policyToJson(part);
    const name = json.type === 'success' ? json.json.annotations?.id : undefined;
    const id = ids[i];
    if (name !== undefined && id !== undefined) names.set(id, name);
  });
  return names;
}

/**
 * One Cedar diagnostic on one line: its message (without Cedar's "for policy
 * `policy0`, " prefix: the caller names the policy), its source labels, then
 * Cedar's help in parentheses. With `names`, Cedar ids in the text become `@id` names.
 * Example: ``attribute `role` on entity type `User` not found (did you mean `tenant`?)``
 */
export function cedarErrorText(error: DetailedError, names?: ReadonlyMap<string, string>): string {
  const clean = (text: string): string => text.replace(/^for policy `[^`]*`, /, '');
  const labels = (error.sourceLocations ?? []).map((l) => l.label).filter((l): l is string => Boolean(l));
  const message = [clean(error.message), ...labels].join(': ');
  const text = error.help ? `${message} (${clean(error.help)})` : message;
  return names ? text.replace(/`(policy\d+)`/g, (m, id: string) => (names.has(id) ? `\`${names.get(id)}\`` : m)) : text;
}
