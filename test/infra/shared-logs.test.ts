/**
 * `logGroups: 'shared'`: every function of the runtime and of its agents logs to the
 * runtime's one log group (Lambda advanced logging controls).
 */
import '../../lib/text-assets';
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { AgentRuntimeStack } from '../../lib/stacks/agent-runtime-stack';
import { stepLimitAgent } from '../fixtures/agents';
import { FIXTURE_MODULE, testApp } from './support/stack';
import { must } from './support/template';

describe('AgentRuntime logGroups: shared', () => {
  it('sends every function’s logs to the runtime’s one log group, and creates none per function', () => {
    const stack = new AgentRuntimeStack(testApp(), 'SharedLogs', {
      runtime: { logGroups: 'shared' },
      agents: [{ definition: stepLimitAgent, module: FIXTURE_MODULE, exportName: 'stepLimitAgent' }],
    });
    const template = Template.fromStack(stack);
    const shared = stack.getLogicalId(must(stack.runtime.logGroup, 'shared log group').node.defaultChild as CfnElement);
    const functions = Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) => !id.startsWith('CustomResource') && !id.includes('AWS679f53fac002430cb0da5b7982bd2287'));
    expect(functions.length).toBeGreaterThan(5);
    for (const [id, fn] of functions) {
      expect((fn.Properties as { LoggingConfig?: { LogGroup?: unknown } }).LoggingConfig?.LogGroup, id).toEqual({ Ref: shared });
    }
    // The shared group, and one per state machine: none per function.
    const groups = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    expect(groups).toContain(shared);
    expect(groups).toHaveLength(1 + Object.keys(template.findResources('AWS::StepFunctions::StateMachine')).length);
  });
});
