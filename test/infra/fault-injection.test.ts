/**
 * Fault injection (chaos tests of durability), which only a runtime built with
 * `faultInjection: true` has: the fault table, its name in the environment of the
 * functions that can fire a fault, and UpdateItem on it for them alone. The
 * default runtime has none of it (functions.test.ts, wiring.test.ts).
 */
import '../../lib/text-assets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../lambdas/core/env-names';
import { AgentRuntimeStack } from '../../lib/stacks/agent-runtime-stack';
import { FIXTURE_MODULE, functionChild, testApp, TUNED_MODULE } from './support/stack';
import { allPolicyStatements, asArray, grantLines, logicalIdOf, must, render, resource, roleIdOf, statementsOfRole } from './support/template';
import { stepLimitAgent } from '../fixtures/agents';
import { tunedAgent } from './support/tuned-agent';

let stack: AgentRuntimeStack;
let template: Template;
beforeAll(() => {
  stack = new AgentRuntimeStack(testApp(), 'FaultInfra', {
    runtime: { faultInjection: true },
    agents: [
      { definition: stepLimitAgent, module: FIXTURE_MODULE, exportName: 'stepLimitAgent' },
      { definition: tunedAgent, module: TUNED_MODULE, exportName: 'tunedAgent' },
    ],
  });
  template = Template.fromStack(stack);
});

const faultTable = (): string => logicalIdOf(must(stack.runtime.faultTable, 'fault table'));
const envOf = (fn: lambda.IFunction): Record<string, unknown> =>
  (resource(template, logicalIdOf(fn), 'AWS::Lambda::Function').Properties.Environment as { Variables: Record<string, unknown> }).Variables;
/** The functions whose steps can fire a fault: every agent step, and the approval request. */
const injecting = (): lambda.IFunction[] => [
  ...stack.agents.flatMap((a) => {
    const definition = must([stepLimitAgent, tunedAgent].find((d) => d.name === a.name), a.name);
    return [a.prepareFunction, a.modelTurnFunction, ...definition.tools.map((t) => a.toolFunction(t.name))];
  }),
  stack.runtime.approvalRequestFunction,
];
/** The runtime's functions that never fire one. */
const quiet = (): lambda.IFunction[] => [
  stack.runtime.projectorFunction,
  stack.runtime.recordFailureFunction,
  stack.runtime.executionStatusFunction,
  stack.runtime.controlRunFunction,
  functionChild(stack.runtime, 'UnknownAgent'),
  functionChild(stack.runtime, 'GetRun'),
  functionChild(stack.runtime, 'DecideApproval'),
];

describe('with faultInjection: true', () => {
  it('has the fault table: a fault per session and point, on demand, deleted with the stack (test runtimes only)', () => {
    expect(resource(template, faultTable(), 'AWS::DynamoDB::Table')).toMatchObject({
      Properties: {
        KeySchema: [
          { AttributeName: 'sessionId', KeyType: 'HASH' },
          { AttributeName: 'point', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      },
      DeletionPolicy: 'Delete',
    });
  });

  it('names the fault table in the environment of every function that can fire a fault', () => {
    const fns = injecting();
    expect(fns.length).toBe(2 * 2 + stepLimitAgent.tools.length + tunedAgent.tools.length + 1);
    for (const fn of fns) expect(envOf(fn)[ENV.faultTable], fn.node.path).toEqual({ Ref: faultTable() });
  });

  it('lets every function that can fire a fault decrement its row (UpdateItem), and nothing else on the table', () => {
    const table = `\${${faultTable()}.Arn}`;
    for (const fn of injecting()) {
      const onFaults = grantLines(statementsOfRole(template, roleIdOf(fn))).filter((l) => l.includes(faultTable()));
      expect(onFaults, fn.node.path).toEqual([`dynamodb:UpdateItem ${table}`]);
    }
    const actions = allPolicyStatements(template)
      .filter(({ statement }) => asArray(statement.Resource).some((r) => render(r).includes(faultTable())))
      .flatMap(({ statement }) => asArray(statement.Action));
    expect(new Set(actions)).toEqual(new Set(['dynamodb:UpdateItem']));
  });

  it('gives the runtime functions that never fire a fault neither the table nor a grant on it', () => {
    for (const fn of quiet()) {
      expect(envOf(fn)[ENV.faultTable], fn.node.path).toBeUndefined();
      expect(grantLines(statementsOfRole(template, roleIdOf(fn))).filter((l) => l.includes(faultTable())), fn.node.path).toEqual([]);
    }
  });
});
