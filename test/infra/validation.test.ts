/** Construction-time validation of the runtime and agent constructs. */
import '../../lib/text-assets';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../lib/constructs/agent';
import { AgentRuntime } from '../../lib/constructs/agent-runtime';
import { AgentRuntimeStack } from '../../lib/stacks/agent-runtime-stack';
import { ENV } from '../../lambdas/core/env-names';
import { repairAgent, stepLimitAgent } from '../fixtures/agents';
import { FIXTURE_MODULE, testApp } from './support/stack';
import { logicalIdOf, resource } from './support/template';

const bareStack = (): Stack => new Stack(testApp(), 'Validation');
const repairSpec = { definition: repairAgent, module: FIXTURE_MODULE, exportName: 'repairAgent' };

describe('AgentRuntime', () => {
  it.each([0, 15, -1, 2.5, Number.NaN])('fails when deadLetterRetentionDays is out of range (%s)', (days) => {
    expect(() => new AgentRuntime(bareStack(), 'Runtime', { deadLetterRetentionDays: days })).toThrow(
      /AgentRuntime: deadLetterRetentionDays must be an integer from 1 to 14/,
    );
  });

  it.each([
    [1, 86_400],
    [14, 1_209_600],
  ])('accepts deadLetterRetentionDays %i (both queues keep messages %i s)', (days, seconds) => {
    const stack = bareStack();
    const runtime = new AgentRuntime(stack, 'Runtime', { deadLetterRetentionDays: days });
    const template = Template.fromStack(stack);
    for (const queue of [runtime.deadLetterQueue, runtime.deliveryDeadLetterQueue]) {
      expect(resource(template, logicalIdOf(queue), 'AWS::SQS::Queue').Properties.MessageRetentionPeriod).toBe(seconds);
    }
  });
});

describe('AgentRuntime: bodyInlineLimitBytes', () => {
  it.each([0, -1, 1.5, 262_145, Number.NaN])('fails when bodyInlineLimitBytes is out of range (%s)', (bytes) => {
    expect(() => new AgentRuntime(bareStack(), 'Runtime', { bodyInlineLimitBytes: bytes })).toThrow(
      `AgentRuntime: bodyInlineLimitBytes must be an integer from 1 to 262144 (256 KiB), got ${bytes}`,
    );
  });

  it.each([1, 4096, 262_144])('accepts bodyInlineLimitBytes %i and hands it to the agent functions', (bytes) => {
    const stack = bareStack();
    const runtime = new AgentRuntime(stack, 'Runtime', { bodyInlineLimitBytes: bytes });
    const agent = new Agent(stack, 'Repair', { runtime, ...repairSpec });
    expect(runtime.bodyInlineLimitBytes).toBe(bytes);
    const template = Template.fromStack(stack);
    for (const fn of [agent.prepareFunction, agent.modelTurnFunction]) {
      const env = (resource(template, logicalIdOf(fn), 'AWS::Lambda::Function').Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env[ENV.bodyInlineLimit]).toBe(String(bytes));
    }
  });
});

describe('Agent', () => {
  it('fails when two agents share a name (AgentRuntime.registerAgent)', () => {
    const stack = bareStack();
    const runtime = new AgentRuntime(stack, 'Runtime');
    new Agent(stack, 'First', { runtime, ...repairSpec });
    expect(() => new Agent(stack, 'Second', { runtime, ...repairSpec })).toThrow(/AgentRuntime: an agent named "integ-repair" is already registered/);
  });

  it('fails when two agent specs of a stack share a name', () => {
    expect(() => new AgentRuntimeStack(testApp(), 'Twice', { agents: [repairSpec, repairSpec] })).toThrow(/integ-repair/);
  });

  it('fails when the agent module does not exist', () => {
    const stack = bareStack();
    const runtime = new AgentRuntime(stack, 'Runtime');
    expect(() => new Agent(stack, 'Missing', { runtime, definition: repairAgent, module: 'test/fixtures/no-such-module.ts' })).toThrow(
      /Agent\(integ-repair\): module \S*test\/fixtures\/no-such-module\.ts does not exist/,
    );
  });

  describe('toolFunction', () => {
    let agent: Agent;
    beforeAll(() => {
      const stack = bareStack();
      agent = new Agent(stack, 'StepLimit', {
        runtime: new AgentRuntime(stack, 'Runtime'),
        definition: stepLimitAgent,
        module: FIXTURE_MODULE,
        exportName: 'stepLimitAgent',
      });
    });

    it('returns the function of a declared tool', () => {
      expect(agent.toolFunction('echo').node.id).toBe('Tool-echo');
    });

    it('fails when the agent declares no such tool, naming the tool and the agent', () => {
      expect(() => agent.toolFunction('nope')).toThrow('Agent(integ-step-limit): no tool named "nope"');
    });
  });
});
