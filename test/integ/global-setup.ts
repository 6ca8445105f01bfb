/**
 * Brings the target up and deploys the integration stack once for the whole suite.
 * The target is the local cloud (MiniStack, started here and stopped at the end
 * if this run started it) unless AWS_ENDPOINT_URL names another endpoint or
 * AGENT_RUNTIME_TARGET=aws selects a real account.
 */
import type { TestProject } from 'vitest/node';
import { deploy, localCloudDown, localCloudUp, targetsLocalCloud, useLocalCloudEnv, type StackOutputs } from '../../scripts/lib/cloud';

declare module 'vitest' {
  export interface ProvidedContext {
    outputs: StackOutputs;
  }
}

export const INTEG_STACK = 'AgentRuntimeInteg';

export default function setup(project: TestProject): () => void {
  useLocalCloudEnv();
  const started = targetsLocalCloud() ? localCloudUp() : false;
  const t0 = Date.now();
  const outputs = deploy('npx tsx test/integ/app.ts', INTEG_STACK, (line) => console.log(`[integ] ${line}`));
  console.log(`[integ] ${INTEG_STACK} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  project.provide('outputs', outputs);
  return () => {
    if (started && process.env.KEEP_LOCAL_CLOUD !== '1') localCloudDown();
  };
}
