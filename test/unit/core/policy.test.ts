/** The Cedar model of tool authorisation: schema, entities, arguments and requests. */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool } from '../../../lambdas/core/define';
import {
  argumentTypes,
  authorizationRequest,
  callArguments,
  cedarErrorText,
  DEFAULT_POLICIES,
  DEFAULT_PRINCIPAL,
  policyNames,
  policySchema,
  PrincipalSchema,
  principalEntities,
  toolEntity,
} from '../../../lambdas/core/policy';
import { databaseQuery, listTables, POLICY_AGENT, POLICY_TOOLS } from '../../fixtures/policies/tools';

const tool = (name: string, input: z.ZodType) =>
  defineTool({ name, version: '1.0.0', description: name, input, output: z.unknown(), handler: async () => null });

const dba = { user: 'alice', tenant: 'acme', roles: ['dba'] };

describe('policySchema', () => {
  it('declares User, Role, Tool and the two actions of the useTool group, with arguments from the tools', () => {
    const str = { type: 'String' };
    expect(policySchema([databaseQuery])).toEqual({
      '': {
        entityTypes: {
          Role: {},
          User: { memberOfTypes: ['Role'], shape: { type: 'Record', attributes: { tenant: str } } },
          Tool: {
            shape: { type: 'Record', attributes: { agent: str, environment: str, classification: str, tags: { type: 'Set', element: str } } },
          },
        },
        actions: {
          useTool: {},
          discoverTool: {
            memberOf: [{ id: 'useTool' }],
            appliesTo: { principalTypes: ['User'], resourceTypes: ['Tool'], context: { type: 'Record', attributes: {} } },
          },
          callTool: {
            memberOf: [{ id: 'useTool' }],
            appliesTo: {
              principalTypes: ['User'],
              resourceTypes: ['Tool'],
              context: {
                type: 'Record',
                attributes: {
                  step: { type: 'Long' },
                  arguments: {
                    type: 'Record',
                    attributes: { operation: { type: 'String', required: false }, sql: { type: 'String', required: false } },
                  },
                },
              },
            },
          },
        },
      },
    });
  });

  it('is a schema Cedar accepts, and the default policies pass strict validation against it', () => {
    const schema = policySchema(POLICY_TOOLS);
    expect(cedar.checkParseSchema(schema)).toEqual({ type: 'success' });
    const answer = cedar.validate({ schema, policies: { staticPolicies: DEFAULT_POLICIES }, validationSettings: { mode: 'strict' } });
    expect(answer).toMatchObject({ type: 'success', validationErrors: [] });
  });

  it('is a schema Cedar accepts for an agent without tools', () => {
    expect(cedar.checkParseSchema(policySchema([]))).toEqual({ type: 'success' });
  });
});

describe('argumentTypes', () => {
  it('maps strings, enums, literals, integers, booleans and string arrays; leaves the rest out', () => {
    const types = argumentTypes([
      tool('t', z.object({
        s: z.string(),
        e: z.enum(['a', 'b']),
        lit: z.literal('x'),
        either: z.union([z.literal('a'), z.literal('b')]),
        n: z.int(),
        optionalFlag: z.boolean().optional(),
        defaulted: z.boolean().default(false),
        names: z.array(z.string()),
        enums: z.array(z.enum(['a', 'b'])),
        ratio: z.number(),
        numbers: z.array(z.int()),
        nested: z.object({ x: z.string() }),
        nullable: z.string().nullable(),
        mixed: z.union([z.string(), z.int()]),
        __entity: z.string(),
      })),
    ]);
    expect(types).toEqual({
      defaulted: { type: 'Boolean' },
      e: { type: 'String' },
      either: { type: 'String' },
      enums: { type: 'Set', element: { type: 'String' } },
      lit: { type: 'String' },
      n: { type: 'Long' },
      names: { type: 'Set', element: { type: 'String' } },
      optionalFlag: { type: 'Boolean' },
      s: { type: 'String' },
    });
  });

  it('takes the union of the tools\' properties and leaves out a name two tools type differently', () => {
    const types = argumentTypes([
      tool('a', z.object({ shared: z.string(), clash: z.string(), onlyA: z.int() })),
      tool('b', z.object({ shared: z.enum(['x']), clash: z.int(), onlyB: z.boolean() })),
      tool('c', z.object({ clash: z.string() })),
    ]);
    expect(types).toEqual({ onlyA: { type: 'Long' }, onlyB: { type: 'Boolean' }, shared: { type: 'String' } });
  });

  it('leaves a name out when another tool gives it a type with no Cedar equivalent', () => {
    expect(argumentTypes([tool('a', z.object({ x: z.string() })), tool('b', z.object({ x: z.number() }))])).toEqual({});
  });

  it('gives nothing for a tool whose input is not an object', () => {
    expect(argumentTypes([tool('a', z.string())])).toEqual({});
  });
});

describe('callArguments', () => {
  const schema = policySchema([tool('t', z.object({ s: z.string(), n: z.int(), b: z.boolean(), tags: z.array(z.string()) }))]);

  it('passes the declared attributes whose value has the declared type', () => {
    expect(callArguments({ s: 'x', n: 3, b: false, tags: ['a', 'b'] }, schema)).toEqual({ s: 'x', n: 3, b: false, tags: ['a', 'b'] });
  });

  it('leaves out undeclared attributes and values of another type', () => {
    expect(callArguments({ s: 1, n: 1.5, b: 'true', tags: ['a', 2], extra: 'x' }, schema)).toEqual({});
    expect(callArguments({ n: 2 ** 53 }, schema)).toEqual({});
    expect(callArguments({ n: -(2 ** 53 - 1) }, schema)).toEqual({ n: -(2 ** 53 - 1) });
  });

  it('gives {} for input that is not an object', () => {
    for (const input of [null, undefined, 'SELECT', 3, ['s']]) expect(callArguments(input, schema)).toEqual({});
  });

  it('ignores inherited properties', () => {
    expect(callArguments(Object.create({ s: 'inherited' }) as object, schema)).toEqual({});
  });
});

describe('entities', () => {
  it('makes the principal a User with its tenant, child of one Role per distinct role', () => {
    expect(principalEntities({ user: 'alice', tenant: 'acme', roles: ['dba', 'analyst', 'dba'] })).toEqual([
      { uid: { type: 'User', id: 'alice' }, attrs: { tenant: 'acme' }, parents: [{ type: 'Role', id: 'dba' }, { type: 'Role', id: 'analyst' }] },
      { uid: { type: 'Role', id: 'dba' }, attrs: {}, parents: [] },
      { uid: { type: 'Role', id: 'analyst' }, attrs: {}, parents: [] },
    ]);
  });

  it('makes the tool a Tool with agent, environment, classification and tags', () => {
    expect(toolEntity(databaseQuery, POLICY_AGENT, 'production')).toEqual({
      uid: { type: 'Tool', id: 'database_query' },
      attrs: { agent: 'dba-assistant', environment: 'production', classification: 'restricted', tags: ['sql', 'database'] },
      parents: [],
    });
    expect(toolEntity(listTables, POLICY_AGENT, 'staging').attrs).toEqual({ agent: 'dba-assistant', environment: 'staging', classification: 'internal', tags: [] });
  });

  it('has a default principal that is a valid principal with no roles', () => {
    expect(PrincipalSchema.parse(DEFAULT_PRINCIPAL)).toEqual({ user: 'anonymous', tenant: 'default', roles: [] });
  });
});

describe('authorizationRequest', () => {
  const schema = policySchema(POLICY_TOOLS);
  const base = { principal: dba, tool: databaseQuery, agent: POLICY_AGENT, environment: 'production', schema } as const;

  it('builds discoverTool with an empty context', () => {
    const request = authorizationRequest({ ...base, action: 'discoverTool', arguments: { operation: 'SELECT' } });
    expect(request).toEqual({
      principal: { type: 'User', id: 'alice' },
      action: { type: 'Action', id: 'discoverTool' },
      resource: { type: 'Tool', id: 'database_query' },
      context: {},
      entities: [...principalEntities(dba), toolEntity(databaseQuery, POLICY_AGENT, 'production')],
      schema,
    });
  });

  it('builds callTool with the filtered arguments and the step', () => {
    const request = authorizationRequest({ ...base, action: 'callTool', arguments: { operation: 'SELECT', sql: 'SELECT 1', hint: 'x' }, step: 4 });
    expect(request.action).toEqual({ type: 'Action', id: 'callTool' });
    expect(request.context).toEqual({ arguments: { operation: 'SELECT', sql: 'SELECT 1' }, step: 4 });
  });

  it('gives callTool empty arguments when there are none', () => {
    expect(authorizationRequest({ ...base, action: 'callTool', step: 0 }).context).toEqual({ arguments: {}, step: 0 });
  });

  it.each([undefined, -1, 1.5])('fails when callTool has no valid step (%s)', (step) => {
    expect(() => authorizationRequest({ ...base, action: 'callTool', step })).toThrow('authorizationRequest(database_query): callTool needs step, a non-negative integer');
  });

  it('is a request Cedar accepts against the schema', () => {
    const request = authorizationRequest({ ...base, action: 'callTool', arguments: { operation: 'SELECT', sql: 'x' }, step: 1 });
    const answer = cedar.isAuthorized({ ...request, validateRequest: true, policies: { staticPolicies: DEFAULT_POLICIES } });
    expect(answer).toMatchObject({ type: 'success', response: { decision: 'allow' } });
  });
});

describe('policyNames', () => {
  it('maps Cedar ids to @id annotations in file order, past ten policies', () => {
    const text = Array.from({ length: 12 }, (_, i) => (i % 3 === 1 ? '' : `@id("p${i}") `) + 'permit (principal, action, resource);').join('\n');
    const expected = new Map(Array.from({ length: 12 }, (_, i) => i).filter((i) => i % 3 !== 1).map((i) => [`policy${i}`, `p${i}`]));
    expect(policyNames(text, cedar)).toEqual(expected);
  });

  it('is empty for text that does not parse', () => {
    expect(policyNames('permit (', cedar).size).toBe(0);
  });
});

describe('cedarErrorText', () => {
  it('drops Cedar\'s policy prefix, keeps labels and help, and names policies by @id', () => {
    const text = cedarErrorText(
      { message: 'for policy `policy1`, unable to guarantee safety', help: 'for policy `policy0`, try `has`', code: null, url: null, severity: null, sourceLocations: [{ label: 'here', start: 0, end: 1 }] },
      new Map([['policy0', 'first']]),
    );
    expect(text).toBe('unable to guarantee safety: here (try `has`)');
    expect(cedarErrorText({ message: 'policy `policy0` and `policy2`', help: null, code: null, url: null, severity: null }, new Map([['policy0', 'first']]))).toBe(
      'policy `first` and `policy2`',
    );
  });
});
