/**
 * The stack the CDK assertion tests read: the runtime with the example agent
 * (`ssh-investigator`, with its blocklist wiring), two fixture agents and the
 * tuned test agent. Built without bundling (`aws:cdk:bundling-stacks: []`), so
 * NodejsFunction does not run esbuild.
 */
import '../../../lib/text-assets';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { sshInvestigator } from '../../../examples/ssh-brute-force/deploy';
import type { AgentDefinition } from '../../../lambdas/core/define';
import type { Agent } from '../../../lib/constructs/agent';
import { PROJECT_ROOT } from '../../../lib/constructs/runtime-function';
import { AgentRuntimeStack, type AgentSpec } from '../../../lib/stacks/agent-runtime-stack';
import { failingToolAgent, stepLimitAgent } from '../../fixtures/agents';
import { must } from './template';
import { tunedAgent } from './tuned-agent';

export const FIXTURE_MODULE = 'test/fixtures/agents.ts';
export const TUNED_MODULE = 'test/infra/support/tuned-agent.ts';
export const EXAMPLE_AGENT = sshInvestigator.definition.name;

/** The feature flags and context of `cdk.json`, so that the tests read what `cdk synth` produces. */
export const CDK_JSON_CONTEXT = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> }).context ?? {};

/** An app with the project's context whose stacks skip asset bundling. */
export function testApp(): App {
  return new App({ context: { ...CDK_JSON_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
}

/** The agents of the stack under test. */
export const AGENT_SPECS: readonly AgentSpec[] = [
  sshInvestigator,
  { definition: stepLimitAgent, module: FIXTURE_MODULE, exportName: 'stepLimitAgent' },
  { definition: failingToolAgent, module: FIXTURE_MODULE, exportName: 'failingToolAgent' },
  { definition: tunedAgent, module: TUNED_MODULE, exportName: 'tunedAgent' },
];

export const AGENT_DEFINITIONS: readonly AgentDefinition[] = AGENT_SPECS.map((s) => s.definition);

export interface RuntimeUnderTest {
  readonly stack: AgentRuntimeStack;
  readonly template: Template;
  /** The deployed agent of that name. */
  agent(name: string): Agent;
}

/** Builds and synthesizes the stack (a few seconds: call it once per file, in `beforeAll`). */
export function synthRuntime(): RuntimeUnderTest {
  const stack = new AgentRuntimeStack(testApp(), 'InfraTest', { agents: AGENT_SPECS });
  const template = Template.fromStack(stack);
  return {
    stack,
    template,
    agent: (name) => must(stack.agents.find((a) => a.name === name), `agent ${name}`),
  };
}

/** A Lambda function child of a construct (for the runtime's functions it keeps private). */
export function functionChild(scope: IConstruct, id: string): lambda.Function {
  const child = scope.node.findChild(id);
  if (!(child instanceof lambda.Function)) throw new Error(`${child.node.path} is not a Lambda function`);
  return child;
}
