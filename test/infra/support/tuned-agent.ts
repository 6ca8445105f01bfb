/**
 * An agent that exists only for the CDK assertion tests: every limit differs from
 * its default and from the other agents' (a tool timeout of 45 s and one of 90 s,
 * a tool retry of its own, 7 steps, 3 concurrent tools, a 15-minute approval
 * timeout, a 60 s model turn, a one-hour budget pause), so that a construct
 * ignoring a declared value cannot pass by accident.
 * Never deployed; the model script is borrowed from a fixture agent.
 */
import { z } from 'zod';
import { defineAgent, defineTool } from '../../../lambdas/core/define';
import { stepLimitAgent } from '../../fixtures/agents';

/** The retry of {@link slowLookup}: 6 attempts, 3 s apart growing 1.5 times, at most 60 s apart, no jitter. */
export const SLOW_LOOKUP_RETRY = { maxAttempts: 6, intervalSeconds: 3, backoffRate: 1.5, maxDelaySeconds: 60, jitter: 'none' } as const;

/** A slow read-only tool (timeout 45 s, a retry of its own). */
export const slowLookup = defineTool({
  name: 'slow_lookup',
  version: '1.0.0',
  description: 'Looks a key up, slowly.',
  input: z.object({ key: z.string() }),
  output: z.object({ value: z.string() }),
  timeoutSeconds: 45,
  retry: SLOW_LOOKUP_RETRY,
  handler: async ({ key }) => ({ value: key }),
});

/** A tool that needs a human approval (timeout 90 s). */
export const guardedWrite = defineTool({
  name: 'guarded_write',
  version: '2.1.0',
  description: 'Writes a value after a human approves it.',
  input: z.object({ key: z.string(), value: z.string() }),
  output: z.object({ written: z.boolean() }),
  needsApproval: true,
  timeoutSeconds: 90,
  handler: async () => ({ written: true }),
});

/** EventBridge pattern of the tuned agent's trigger. */
export const TUNED_TRIGGER_PATTERN = {
  source: ['infra.tests'],
  detailType: ['Tuned Request'],
  detail: { kind: ['tuned'] },
};

/** The Secrets Manager secret of the tuned agent's Anthropic key. */
export const TUNED_ANTHROPIC_SECRET = 'infra/anthropic-key';
/** The Bedrock models of the tuned agent's routes: a model id, and a cross-region inference profile. */
export const TUNED_BEDROCK_MODEL = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
export const TUNED_BEDROCK_PROFILE = 'us.amazon.nova-pro-v1:0';

export const tunedAgent = defineAgent({
  name: 'infra-tuned',
  description: 'CDK assertion test agent with non-default limits',
  systemPrompt: 'Answer the question.',
  model: stepLimitAgent.model,
  // Routes to each real provider: the construct grants what each needs (and nothing for the scripted default).
  routes: {
    plan: {
      primary: { provider: 'anthropic', modelId: 'claude-sonnet-4-5', apiKey: { secretName: TUNED_ANTHROPIC_SECRET } },
      fallbacks: [{ provider: 'bedrock', modelId: TUNED_BEDROCK_MODEL }],
      sloP95Ms: 8000,
    },
    act: {
      primary: { provider: 'bedrock', modelId: TUNED_BEDROCK_PROFILE },
      fallbacks: [{ provider: 'anthropic', modelId: 'claude-sonnet-4-5', apiKey: { secretName: TUNED_ANTHROPIC_SECRET } }, { provider: 'openai', modelId: 'gpt-4.1' }],
    },
  },
  input: z.object({ question: z.string() }),
  prompt: (input: { question: string }) => input.question,
  output: z.object({ answer: z.string() }),
  tools: [slowLookup, guardedWrite],
  maxSteps: 7,
  toolConcurrency: 3,
  approvalTimeoutSeconds: 900,
  modelTimeoutSeconds: 60,
  budgetPauseTimeoutSeconds: 3600,
  triggers: [{ type: 'eventbridge', eventPattern: TUNED_TRIGGER_PATTERN }],
});
