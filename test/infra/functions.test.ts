/**
 * The Lambda functions: the house defaults (runtime, architecture, tracing, JSON
 * logs into a retained log group, source maps) and each function's environment,
 * whose names are shared with the handlers through `ENV`.
 */
import '../../lib/text-assets';
import { Match } from 'aws-cdk-lib/assertions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { BLOCKLIST_TABLE_ENV } from '../../examples/ssh-brute-force/tools';
import { DEFAULT_BODY_INLINE_LIMIT_BYTES } from '../../lambdas/core/constants';
import { ENV } from '../../lambdas/core/env-names';
import { AGENT_DEFINITIONS, EXAMPLE_AGENT, functionChild, synthRuntime, type RuntimeUnderTest } from './support/stack';
import { arnOf, logicalIdOf, must, parseJoinedJson, render, resource, resourcesOfType, type CfnResource } from './support/template';

let rt: RuntimeUnderTest;
beforeAll(() => {
  rt = synthRuntime();
});

const propsOf = (fn: lambda.IFunction): Record<string, unknown> => resource(rt.template, logicalIdOf(fn), 'AWS::Lambda::Function').Properties;
const envOf = (fn: lambda.IFunction): Record<string, unknown> => {
  const environment = propsOf(fn).Environment as { Variables?: Record<string, unknown> } | undefined;
  return must(environment?.Variables, `environment of ${fn.node.path}`);
};
const definitionOf = (name: string): (typeof AGENT_DEFINITIONS)[number] => must(AGENT_DEFINITIONS.find((d) => d.name === name), `definition ${name}`);

/** The runtime's own functions (not per agent). */
const runtimeFunctions = (): lambda.IFunction[] => {
  const runtime = rt.stack.runtime;
  return [
    runtime.projectorFunction,
    runtime.approvalRequestFunction,
    runtime.recordFailureFunction,
    runtime.executionStatusFunction,
    functionChild(runtime, 'UnknownAgent'),
    functionChild(runtime, 'GetRun'),
    functionChild(runtime, 'DecideApproval'),
    runtime.controlRunFunction,
  ];
};
/** Every per-agent function with its agent: prepare, model turn, start-run, one per tool. */
const agentFunctions = (): { agent: string; fn: lambda.IFunction }[] =>
  rt.stack.agents.flatMap((agent) =>
    [agent.prepareFunction, agent.modelTurnFunction, agent.startRunFunction, ...definitionOf(agent.name).tools.map((t) => agent.toolFunction(t.name))].map((fn) => ({
      agent: agent.name,
      fn,
    })),
  );

describe('every Lambda function', () => {
  const functions = (): [string, CfnResource][] => Object.entries(resourcesOfType(rt.template, 'AWS::Lambda::Function'));

  it('is one of the runtime or agent functions (no stray helper functions)', () => {
    const known = [...runtimeFunctions(), ...agentFunctions().map((f) => f.fn)].map(logicalIdOf).sort();
    expect(functions().map(([id]) => id).sort()).toEqual(known);
  });

  it('runs nodejs22.x on arm64', () => {
    rt.template.allResourcesProperties('AWS::Lambda::Function', { Runtime: 'nodejs22.x', Architectures: ['arm64'] });
  });

  it('has active X-Ray tracing', () => {
    rt.template.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: { Mode: 'Active' } });
  });

  it('logs JSON into its own log group, which has a retention', () => {
    const groups = new Set<string>();
    for (const [id, fn] of functions()) {
      const logging = fn.Properties.LoggingConfig as { LogFormat?: string; LogGroup?: unknown } | undefined;
      expect(logging?.LogFormat, id).toBe('JSON');
      const group = render(must(logging?.LogGroup, `log group of ${id}`)).replace(/^\$\{(.+)\}$/, '$1');
      expect(resource(rt.template, group, 'AWS::Logs::LogGroup').Properties.RetentionInDays, id).toEqual(expect.any(Number));
      groups.add(group);
    }
    expect(groups.size).toBe(functions().length);
  });

  it('sets POWERTOOLS_SERVICE_NAME and NODE_OPTIONS --enable-source-maps', () => {
    rt.template.allResourcesProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_SERVICE_NAME: Match.stringLikeRegexp('^.+$'),
          NODE_OPTIONS: Match.stringLikeRegexp('--enable-source-maps'),
        }),
      },
    });
  });

  it("names its service after the runtime or the agent it serves", () => {
    for (const fn of runtimeFunctions()) expect(envOf(fn).POWERTOOLS_SERVICE_NAME, fn.node.path).toBe('agent-runtime');
    for (const { agent, fn } of agentFunctions()) expect(envOf(fn).POWERTOOLS_SERVICE_NAME, fn.node.path).toBe(agent);
  });
});

describe('every log group', () => {
  it('has a retention', () => {
    rt.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: Match.anyValue() });
  });
});

describe('per-agent functions', () => {
  it('know the checkpoint table and log as their agent', () => {
    for (const { agent, fn } of agentFunctions()) {
      expect(envOf(fn), fn.node.path).toMatchObject({
        [ENV.checkpointTable]: { Ref: logicalIdOf(rt.stack.runtime.checkpointTable) },
        POWERTOOLS_SERVICE_NAME: agent,
      });
    }
  });

  it('know the body bucket, the inline limit of bodies (16 KiB by default) and the idempotency table', () => {
    for (const { fn } of agentFunctions()) {
      expect(envOf(fn), fn.node.path).toMatchObject({
        [ENV.bodyBucket]: { Ref: logicalIdOf(rt.stack.runtime.bodyBucket) },
        [ENV.bodyInlineLimit]: String(DEFAULT_BODY_INLINE_LIMIT_BYTES),
        [ENV.idempotencyTable]: { Ref: logicalIdOf(rt.stack.runtime.idempotencyTable) },
      });
    }
    expect(DEFAULT_BODY_INLINE_LIMIT_BYTES).toBe(16_384);
  });

  it("model-turn and tool functions know the policy table (the operators' overrides) and the deployment's environment, 'production' by default; prepare and start-run do not", () => {
    for (const agent of rt.stack.agents) {
      for (const fn of [agent.modelTurnFunction, ...definitionOf(agent.name).tools.map((t) => agent.toolFunction(t.name))]) {
        expect(envOf(fn), fn.node.path).toMatchObject({
          [ENV.policyTable]: { Ref: logicalIdOf(rt.stack.runtime.policyTable) },
          [ENV.environment]: 'production',
        });
      }
      for (const fn of [agent.prepareFunction, agent.startRunFunction]) expect(envOf(fn)[ENV.policyTable], fn.node.path).toBeUndefined();
    }
    expect(rt.stack.runtime.environment).toBe('production');
  });

  it('model-turn knows the approval table (the recorded answer to an output review); prepare, start-run and the tools do not', () => {
    for (const agent of rt.stack.agents) {
      expect(envOf(agent.modelTurnFunction)[ENV.approvalTable], agent.name).toEqual({ Ref: logicalIdOf(rt.stack.runtime.approvalTable) });
      const others = [agent.prepareFunction, agent.startRunFunction, ...definitionOf(agent.name).tools.map((t) => agent.toolFunction(t.name))];
      for (const fn of others) expect(envOf(fn)[ENV.approvalTable], fn.node.path).toBeUndefined();
    }
  });

  it('no runtime function knows the policy table (only agent functions decide policies)', () => {
    for (const fn of runtimeFunctions()) expect(envOf(fn)[ENV.policyTable], fn.node.path).toBeUndefined();
  });

  it('have no fault table unless the runtime enables fault injection', () => {
    for (const fn of [...runtimeFunctions(), ...agentFunctions().map((f) => f.fn)]) expect(envOf(fn)[ENV.faultTable], fn.node.path).toBeUndefined();
  });

  it('prepare and model-turn use their handlers, and model-turn has the declared model timeout', () => {
    for (const agent of rt.stack.agents) {
      expect(propsOf(agent.prepareFunction).Handler).toBe('index.prepare');
      expect(propsOf(agent.modelTurnFunction)).toMatchObject({ Handler: 'index.modelTurn', Timeout: definitionOf(agent.name).modelTimeoutSeconds });
    }
  });

  it("model-turn has AGENT_TOOL_FUNCTIONS: a JSON map of each tool's name to its function's ARN", () => {
    for (const agent of rt.stack.agents) {
      const map = parseJoinedJson(envOf(agent.modelTurnFunction)[ENV.toolFunctions]);
      const expected = Object.fromEntries(definitionOf(agent.name).tools.map((t) => [t.name, arnOf(agent.toolFunction(t.name))]));
      expect(map, agent.name).toEqual(expected);
    }
  });

  it('a tool function runs runTool for its tool (AGENT_TOOL_NAME)', () => {
    for (const agent of rt.stack.agents) {
      for (const tool of definitionOf(agent.name).tools) {
        const fn = agent.toolFunction(tool.name);
        expect(propsOf(fn).Handler, fn.node.path).toBe('index.runTool');
        expect(envOf(fn)[ENV.toolName], fn.node.path).toBe(tool.name);
      }
    }
  });

  it("a tool function's timeout is the tool's declared timeoutSeconds", () => {
    for (const agent of rt.stack.agents) {
      for (const tool of definitionOf(agent.name).tools) {
        expect(propsOf(agent.toolFunction(tool.name)).Timeout, `${agent.name}/${tool.name}`).toBe(tool.timeoutSeconds);
      }
    }
    // The tuned agent's tools declare 45 and 90 s: the default (30 s) cannot pass this by accident.
    expect(propsOf(rt.agent('infra-tuned').toolFunction('slow_lookup')).Timeout).toBe(45);
  });

  it("the example's block_address knows the blocklist table", () => {
    const example = rt.agent(EXAMPLE_AGENT);
    expect(envOf(example.toolFunction('block_address'))[BLOCKLIST_TABLE_ENV]).toEqual({ Ref: logicalIdOf(example.node.findChild('Blocklist')) });
    expect(envOf(example.toolFunction('show_log_lines'))[BLOCKLIST_TABLE_ENV]).toBeUndefined();
  });
});

describe('runtime functions', () => {
  const runtime = (): RuntimeUnderTest['stack']['runtime'] => rt.stack.runtime;

  it("each agent's start-run function knows its own state machine", () => {
    for (const agent of rt.stack.agents) {
      expect(envOf(agent.startRunFunction)[ENV.stateMachineArn], agent.name).toEqual({ Ref: logicalIdOf(agent.stateMachine) });
    }
  });

  it('the unknown-agent function names every agent', () => {
    expect(envOf(functionChild(runtime(), 'UnknownAgent'))[ENV.agentNames]).toBe(rt.stack.agents.map((a) => a.name).join(','));
  });

  it('projector knows the event table and the runtime bus (governance events)', () => {
    expect(envOf(runtime().projectorFunction)).toMatchObject({
      [ENV.eventTable]: { Ref: logicalIdOf(runtime().eventTable) },
      [ENV.eventBusName]: { Ref: logicalIdOf(runtime().eventBus) },
    });
  });

  it('record-failure knows the checkpoint table and the dead-letter queue', () => {
    expect(envOf(runtime().recordFailureFunction)).toMatchObject({
      [ENV.checkpointTable]: { Ref: logicalIdOf(runtime().checkpointTable) },
      [ENV.deadLetterQueueUrl]: { Ref: logicalIdOf(runtime().deadLetterQueue) },
    });
  });

  it('approval-request knows the checkpoint and approval tables, the runtime bus and the body bucket', () => {
    expect(envOf(runtime().approvalRequestFunction)).toMatchObject({
      [ENV.checkpointTable]: { Ref: logicalIdOf(runtime().checkpointTable) },
      [ENV.approvalTable]: { Ref: logicalIdOf(runtime().approvalTable) },
      [ENV.eventBusName]: { Ref: logicalIdOf(runtime().eventBus) },
      [ENV.bodyBucket]: { Ref: logicalIdOf(runtime().bodyBucket) },
    });
  });

  it('control-run knows the checkpoint and approval tables, and uses its handler', () => {
    expect(envOf(runtime().controlRunFunction)).toMatchObject({
      [ENV.checkpointTable]: { Ref: logicalIdOf(runtime().checkpointTable) },
      [ENV.approvalTable]: { Ref: logicalIdOf(runtime().approvalTable) },
    });
    expect(propsOf(runtime().controlRunFunction).Handler).toBe('index.handler');
  });

  it('get-run knows the checkpoint, approval and event tables; decide-approval the approval table', () => {
    expect(envOf(functionChild(runtime(), 'GetRun'))).toMatchObject({
      [ENV.checkpointTable]: { Ref: logicalIdOf(runtime().checkpointTable) },
      [ENV.approvalTable]: { Ref: logicalIdOf(runtime().approvalTable) },
      [ENV.eventTable]: { Ref: logicalIdOf(runtime().eventTable) },
    });
    expect(envOf(functionChild(runtime(), 'DecideApproval'))).toMatchObject({ [ENV.approvalTable]: { Ref: logicalIdOf(runtime().approvalTable) } });
  });
});
