/**
 * Tool authorisation with the real Cedar engine (seed 003: `database_query` runs
 * SELECT in production for the dba role only), and the policy table through a
 * strict fake of the DynamoDB document client.
 */
import { DeleteCommand, GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { beforeEach, describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { effectivePolicies, PolicyEngine, PolicyStore, type PolicyRecord } from '../../../lambdas/adapters/policy-engine';
import {
  authorizationRequest,
  DEFAULT_POLICIES,
  DEFAULT_PRINCIPAL,
  policySchema,
  type PolicyAction,
  type Principal,
  type PolicyTool,
} from '../../../lambdas/core/policy';
import { databaseQuery, dropTable, listTables, POLICY_AGENT, POLICY_TOOLS, policyFile } from '../../fixtures/policies/tools';

const SEED_003 = policyFile('database-query.cedar').text;
const schema = policySchema(POLICY_TOOLS);
const dba: Principal = { user: 'alice', tenant: 'acme', roles: ['dba'] };
const analyst: Principal = { user: 'bob', tenant: 'acme', roles: ['analyst'] };

/** One request for the seed's agent: production, step 1, unless told otherwise. */
const request = (props: { principal: Principal; action: PolicyAction; tool?: PolicyTool; arguments?: unknown; environment?: string }) =>
  authorizationRequest({
    tool: databaseQuery,
    agent: POLICY_AGENT,
    environment: 'production',
    schema,
    step: 1,
    ...props,
  });
const call = (principal: Principal, operation: string, environment = 'production') =>
  request({ principal, action: 'callTool', arguments: { operation, sql: `${operation} * FROM users` }, environment });

describe('PolicyEngine: seed 003 (database_query runs SELECT in production for dba only)', () => {
  const engine = new PolicyEngine();

  it('allows dba to SELECT in production, naming the determining policy', () => {
    expect(engine.authorize(SEED_003, call(dba, 'SELECT'))).toEqual({ allowed: true, policies: ['dba-selects-in-production'], errors: [] });
  });

  it.each(['DELETE', 'INSERT', 'UPDATE'])('denies dba %s in production (no policy permits it)', (operation) => {
    expect(engine.authorize(SEED_003, call(dba, operation))).toEqual({ allowed: false, policies: [], errors: [] });
  });

  it('denies analyst SELECT in production', () => {
    expect(engine.authorize(SEED_003, call(analyst, 'SELECT'))).toEqual({ allowed: false, policies: [], errors: [] });
  });

  it('denies dba SELECT in staging: the policy says production only', () => {
    expect(engine.authorize(SEED_003, call(dba, 'SELECT', 'staging'))).toEqual({ allowed: false, policies: [], errors: [] });
  });

  it('denies dba a call whose operation the arguments lack or mistype', () => {
    expect(engine.authorize(SEED_003, request({ principal: dba, action: 'callTool', arguments: { sql: 'SELECT 1' } })).allowed).toBe(false);
    expect(engine.authorize(SEED_003, request({ principal: dba, action: 'callTool', arguments: { operation: ['SELECT'] } })).allowed).toBe(false);
  });

  it('denies the default principal (a session that recorded none: no roles)', () => {
    expect(engine.authorize(SEED_003, call(DEFAULT_PRINCIPAL, 'SELECT')).allowed).toBe(false);
  });

  it('offers database_query to dba and not to analyst', () => {
    expect(engine.authorize(SEED_003, request({ principal: dba, action: 'discoverTool' }))).toEqual({
      allowed: true,
      policies: ['dba-discovers-database-query'],
      errors: [],
    });
    expect(engine.authorize(SEED_003, request({ principal: analyst, action: 'discoverTool' })).allowed).toBe(false);
  });

  it('offers each principal only the tools it may use', () => {
    const offered = (principal: Principal) =>
      POLICY_TOOLS.filter((tool) => engine.authorize(SEED_003, request({ principal, action: 'discoverTool', tool })).allowed).map((t) => t.name);
    expect(offered(dba)).toEqual(['database_query', 'list_tables']);
    expect(offered(analyst)).toEqual(['list_tables']);
    expect(offered({ user: 'eve', tenant: 'globex', roles: ['dba'] })).toEqual(['database_query']);
  });

  it('lets a forbid override a permit (a disabled tool, even under the default policies plus the forbid)', () => {
    const text = `${DEFAULT_POLICIES}\n${SEED_003}`;
    expect(engine.authorize(text, request({ principal: dba, action: 'callTool', tool: dropTable, arguments: { table: 'users' } }))).toEqual({
      allowed: false,
      policies: ['no-disabled-tools'],
      errors: [],
    });
    expect(engine.authorize(text, request({ principal: dba, action: 'callTool', tool: listTables, arguments: {} })).allowed).toBe(true);
  });
});

describe('PolicyEngine', () => {
  const engine = new PolicyEngine();

  it('denies when no policy matches (Cedar is default deny)', () => {
    const text = 'permit (principal in Role::"dba", action, resource == Tool::"list_tables");';
    expect(engine.authorize(text, call(dba, 'SELECT'))).toEqual({ allowed: false, policies: [], errors: [] });
    expect(engine.authorize('', call(dba, 'SELECT'))).toEqual({ allowed: false, policies: [], errors: [] });
  });

  it('allows everything under the default policies, naming Cedar\'s id of the policy', () => {
    expect(engine.authorize(DEFAULT_POLICIES, call(analyst, 'DELETE'))).toEqual({ allowed: true, policies: ['policy0'], errors: [] });
  });

  it('denies a revoked permission at the very next call', () => {
    expect(engine.authorize(SEED_003, call(dba, 'SELECT')).allowed).toBe(true);
    const revoked = SEED_003.replace('context.arguments.operation == "SELECT"', 'context.arguments.operation == "EXPLAIN"');
    expect(engine.authorize(revoked, call(dba, 'SELECT'))).toEqual({ allowed: false, policies: [], errors: [] });
    expect(engine.authorize(SEED_003, call(dba, 'SELECT')).allowed).toBe(true);
  });

  it('denies, without throwing, when the policies do not parse', () => {
    const decision = engine.authorize('permit (principal, action, resource', call(dba, 'SELECT'));
    expect(decision.allowed).toBe(false);
    expect(decision.policies).toEqual([]);
    expect(decision.errors).toEqual([expect.stringContaining('failed to parse policies from string: unexpected end of input')]);
  });

  it('denies when a policy fails to evaluate, though Cedar alone would skip it and allow', () => {
    // The unguarded forbid errors on a call without `operation`; Cedar ignores erroring policies.
    const text = `${DEFAULT_POLICIES}@id("no-deletes")\nforbid (principal, action == Action::"callTool", resource) when { context.arguments.operation == "DELETE" };`;
    const decision = engine.authorize(text, request({ principal: dba, action: 'callTool', arguments: { sql: 'DELETE FROM users' } }));
    expect(decision.allowed).toBe(false);
    expect(decision.policies).toEqual([]);
    expect(decision.errors).toEqual([expect.stringMatching(/^no-deletes: .*operation/)]);
  });

  it('denies a request that does not match the schema', () => {
    const bad = { ...call(dba, 'SELECT'), context: { arguments: { undeclared: 'x' }, step: 1 } };
    const decision = engine.authorize(DEFAULT_POLICIES, bad);
    expect(decision.allowed).toBe(false);
    expect(decision.errors).toEqual([expect.stringContaining('undeclared')]);
  });

  it('denies a request for a tool of another schema', () => {
    const decision = engine.authorize(DEFAULT_POLICIES, { ...call(dba, 'SELECT'), schema: { '': { entityTypes: {}, actions: {} } } });
    expect(decision).toEqual({ allowed: false, policies: [], errors: [expect.stringContaining('callTool')] });
  });

  it('denies templates (policies with slots are not supported)', () => {
    const decision = engine.authorize('permit (principal == ?principal, action, resource);', call(dba, 'SELECT'));
    expect(decision).toEqual({ allowed: false, policies: [], errors: ['static policy set includes a template'] });
  });
});

type Item = Record<string, unknown>;

/**
 * The policy table in memory, answering exactly the commands PolicyStore sends
 * (GetItem with ConsistentRead, the versioned UpdateItem, DeleteItem) and
 * failing on anything else. Every command is recorded.
 */
class FakePolicyTable {
  readonly items = new Map<string, Item>();
  readonly sent: Array<{ name: string; input: Record<string, unknown> }> = [];

  readonly client = {
    send: async (command: unknown): Promise<unknown> => {
      if (command instanceof GetCommand) return this.get(command.input as { TableName: string; Key: { agent: string }; ConsistentRead?: boolean });
      if (command instanceof UpdateCommand) return this.update(command.input as UpdateInput);
      if (command instanceof DeleteCommand) return this.delete(command.input as { TableName: string; Key: { agent: string } });
      throw new Error(`FakePolicyTable: unexpected command ${(command as object).constructor.name}`);
    },
  } as unknown as DynamoDBDocumentClient;

  private record(name: string, input: object): void {
    this.sent.push({ name, input: input as Record<string, unknown> });
  }

  private get(input: { TableName: string; Key: { agent: string }; ConsistentRead?: boolean }) {
    this.record('GetItem', input);
    if (input.ConsistentRead !== true) throw new Error('FakePolicyTable: policy reads must be strongly consistent');
    const item = this.items.get(input.Key.agent);
    return { Item: item ? structuredClone(item) : undefined };
  }

  private update(input: UpdateInput) {
    this.record('UpdateItem', input);
    const expected = 'SET #policies = :policies, #updatedAt = :updatedAt, #updatedBy = :updatedBy ADD #version :one';
    if (input.UpdateExpression !== expected || input.ReturnValues !== 'ALL_NEW') throw new Error(`FakePolicyTable: unexpected update ${input.UpdateExpression}`);
    const values = input.ExpressionAttributeValues;
    const before = this.items.get(input.Key.agent);
    const item: Item = {
      agent: input.Key.agent,
      policies: values[':policies'],
      updatedAt: values[':updatedAt'],
      updatedBy: values[':updatedBy'],
      version: ((before?.version as number | undefined) ?? 0) + (values[':one'] as number),
    };
    this.items.set(input.Key.agent, item);
    return { Attributes: structuredClone(item) };
  }

  private delete(input: { TableName: string; Key: { agent: string } }) {
    this.record('DeleteItem', input);
    this.items.delete(input.Key.agent);
    return {};
  }
}
interface UpdateInput {
  TableName: string;
  Key: { agent: string };
  UpdateExpression: string;
  ExpressionAttributeValues: Record<string, unknown>;
  ReturnValues: string;
}

describe('PolicyStore', () => {
  let table: FakePolicyTable;
  let store: PolicyStore;
  const at = new Date('2025-05-01T10:00:00.000Z');

  beforeEach(() => {
    table = new FakePolicyTable();
    store = new PolicyStore(table.client, 'policies', () => at);
  });

  it('has no override for an agent nobody wrote one for', async () => {
    expect(await store.current(POLICY_AGENT)).toBeUndefined();
    expect(table.sent).toEqual([{ name: 'GetItem', input: { TableName: 'policies', Key: { agent: POLICY_AGENT }, ConsistentRead: true } }]);
  });

  it('writes overrides with a version counting the writes, and who wrote them', async () => {
    const first = await store.put(POLICY_AGENT, SEED_003, 'carol');
    expect(first).toEqual({ agent: POLICY_AGENT, policies: SEED_003, version: 1, updatedAt: at.toISOString(), updatedBy: 'carol' });
    const second = await store.put(POLICY_AGENT, DEFAULT_POLICIES, 'dave');
    expect(second).toMatchObject({ version: 2, policies: DEFAULT_POLICIES, updatedBy: 'dave' });
    expect(await store.current(POLICY_AGENT)).toEqual(second);
    expect(await store.current('other-agent')).toBeUndefined();
  });

  it('reads the table at every call: nothing is cached', async () => {
    await store.current(POLICY_AGENT);
    await store.put(POLICY_AGENT, SEED_003, 'carol');
    expect(await store.current(POLICY_AGENT)).toMatchObject({ version: 1 });
    expect(table.sent.map((c) => c.name)).toEqual(['GetItem', 'UpdateItem', 'GetItem']);
  });

  it('removes an override', async () => {
    await store.put(POLICY_AGENT, SEED_003, 'carol');
    await store.remove(POLICY_AGENT);
    expect(await store.current(POLICY_AGENT)).toBeUndefined();
  });

  it('fails when a stored item is malformed', async () => {
    table.items.set(POLICY_AGENT, { agent: POLICY_AGENT, policies: 42, version: 0 });
    await expect(store.current(POLICY_AGENT)).rejects.toBeInstanceOf(ZodError);
  });

  it('applies a revocation mid-run: the next call reads the new policies and is denied', async () => {
    const engine = new PolicyEngine();
    const bundled = policyFile('database-query.cedar');
    const decide = async () => {
      const policies = effectivePolicies(bundled, await store.current(POLICY_AGENT));
      return { version: policies.version, ...engine.authorize(policies.text, call(dba, 'SELECT')) };
    };
    expect(await decide()).toMatchObject({ version: 'bundled', allowed: true });
    await store.put(POLICY_AGENT, SEED_003.replace(/@id\("dba-selects-in-production"\)[^;]*;/, ''), 'carol');
    expect(await decide()).toMatchObject({ version: '1', allowed: false, errors: [] });
    await store.remove(POLICY_AGENT);
    expect(await decide()).toMatchObject({ version: 'bundled', allowed: true });
  });
});

describe('effectivePolicies', () => {
  const override: Pick<PolicyRecord, 'policies' | 'version'> = { policies: 'forbid (principal, action, resource);', version: 7 };

  it('takes the override first, then the bundled file, then the default policies', () => {
    expect(effectivePolicies(policyFile('database-query.cedar'), override)).toEqual({ text: override.policies, version: '7' });
    expect(effectivePolicies(policyFile('database-query.cedar'), undefined)).toEqual({ text: SEED_003, version: 'bundled' });
    expect(effectivePolicies(undefined, undefined)).toEqual({ text: DEFAULT_POLICIES, version: 'bundled' });
  });
});
