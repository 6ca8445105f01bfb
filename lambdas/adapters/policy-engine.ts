/**
 * Tool authorisation at call time: Cedar (`@cedar-policy/cedar-wasm`) evaluates
 * the agent's policies for each request, and the policy table holds the policy
 * overrides an operator wrote (read before every decision, so a change applies at
 * the next call, even mid-run).
 *
 * Bundling: the Cedar glue reads `cedar_wasm_bg.wasm` beside the bundle, so a
 * function importing this module needs `RuntimeFunction`'s `cedar: true`.
 */
import { DeleteCommand, GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { z } from 'zod';
import { cedarErrorText, DEFAULT_POLICIES, policyNames, type AuthorizationRequest, type PolicyDecision, type PolicySource } from '../core/policy';

/**
 * Evaluates Cedar policies. Stateless apart from a cache of the last policy
 * text's `@id` names; the policy text is given with every request.
 */
export class PolicyEngine {
  private named: { text: string; names: Map<string, string> } | undefined;

  /**
   * Cedar's decision for one request (see `authorizationRequest` in core/policy).
   * Default deny: allowed only when a permit matches and no forbid does. Any
   * error denies: policies that do not parse, a request or entity that does not
   * match the schema, a policy that fails to evaluate (Cedar would skip it, which
   * could skip a forbid). Never throws.
   * @param policiesText Cedar policy text (the bundled file, or an override)
   * @returns `policies`: the determining policies by `@id` annotation or Cedar id
   *   (`policy0` ...); `errors`: one line each, e.g. `policy1: entity \`User::"a"\` does not exist`
   */
  authorize(policiesText: string, request: AuthorizationRequest): PolicyDecision {
    try {
      const answer = cedar.isAuthorized({
        principal: request.principal,
        action: request.action,
        resource: request.resource,
        context: request.context,
        entities: request.entities,
        schema: request.schema,
        validateRequest: true,
        policies: { staticPolicies: policiesText },
      });
      if (answer.type === 'failure') return { allowed: false, policies: [], errors: answer.errors.map((e) => cedarErrorText(e)) };
      const names = this.names(policiesText);
      const name = (id: string): string => names.get(id) ?? id;
      const { decision, diagnostics } = answer.response;
      const errors = diagnostics.errors.map((e) => `${name(e.policyId)}: ${cedarErrorText(e.error, names)}`);
      return {
        allowed: decision === 'allow' && errors.length === 0,
        policies: errors.length === 0 ? diagnostics.reason.map(name) : [],
        errors,
      };
    } catch (err) {
      return { allowed: false, policies: [], errors: [`Cedar failed: ${err instanceof Error ? err.message : String(err)}`] };
    }
  }

  private names(text: string): Map<string, string> {
    if (this.named?.text !== text) this.named = { text, names: policyNames(text, cedar) };
    return this.named.names;
  }
}

/**
 * A policy override in the policy table (partition key `agent`). `version` counts
 * the writes, from 1.
 * Example: `{"agent":"dba-assistant","policies":"permit (...);","version":3,"updatedAt":"2025-05-01T10:00:00.000Z","updatedBy":"alice"}`
 */
export const PolicyRecordSchema = z.object({
  agent: z.string().min(1),
  policies: z.string(),
  version: z.number().int().positive(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
/** A policy override in the policy table. */
export type PolicyRecord = z.infer<typeof PolicyRecordSchema>;

/**
 * Reads and writes the policy table through the DynamoDB document client. It
 * stores text only: callers validate an override against the agent's schema
 * (`lib/policy-check.ts`) before {@link PolicyStore.put}. SDK errors propagate;
 * an item that fails {@link PolicyRecordSchema} throws a ZodError.
 */
export class PolicyStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * The agent's override, or undefined when it has none (the bundled policies
   * apply). A strongly consistent GetItem every time, never cached: call it
   * before every decision so that a change applies at the next call.
   */
  async current(agent: string): Promise<PolicyRecord | undefined> {
    const out = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { agent }, ConsistentRead: true }));
    return out.Item ? PolicyRecordSchema.parse(out.Item) : undefined;
  }

  /**
   * Writes the agent's override (one UpdateItem: the version goes up by one).
   * @param by who made the change (audit), e.g. the operator's user id
   * @returns the record as stored
   */
  async put(agent: string, policies: string, by: string): Promise<PolicyRecord> {
    const out = await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { agent },
        UpdateExpression: 'SET #policies = :policies, #updatedAt = :updatedAt, #updatedBy = :updatedBy ADD #version :one',
        ExpressionAttributeNames: { '#policies': 'policies', '#updatedAt': 'updatedAt', '#updatedBy': 'updatedBy', '#version': 'version' },
        ExpressionAttributeValues: { ':policies': policies, ':updatedAt': this.now().toISOString(), ':updatedBy': by, ':one': 1 },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return PolicyRecordSchema.parse(out.Attributes);
  }

  /** Deletes the agent's override: the bundled policies apply again from the next call. */
  async remove(agent: string): Promise<void> {
    await this.client.send(new DeleteCommand({ TableName: this.tableName, Key: { agent } }));
  }
}

/**
 * The policies in force: the override when there is one, else the bundled file,
 * else {@link DEFAULT_POLICIES}.
 * @returns `text`, and `version`: `"bundled"` (the file or the default) or the
 *   override's version (`"3"`), for the audit record of each decision
 */
export function effectivePolicies(
  bundled: PolicySource | undefined,
  override: Pick<PolicyRecord, 'policies' | 'version'> | undefined,
): { text: string; version: string } {
  if (override) return { text: override.policies, version: String(override.version) };
  return { text: bundled?.text ?? DEFAULT_POLICIES, version: 'bundled' };
}
