/**
 * Powertools singletons, created once per Lambda instance. Structured JSON logs;
 * every handler appends `sessionId`, `executionArn` and `step` to each line.
 * The service name comes from `POWERTOOLS_SERVICE_NAME` (set by the constructs).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Tracer } from '@aws-lambda-powertools/tracer';

/** Structured JSON logger (level from `POWERTOOLS_LOG_LEVEL`, default INFO). */
export const logger = new Logger();
/** X-Ray tracer; AWS SDK clients are wrapped with it (`adapters/clients`). */
export const tracer = new Tracer();

/** Keys that identify a step on every log line. */
export interface StepLogKeys {
  sessionId?: string;
  executionArn?: string;
  step?: number | string;
  agent?: string;
  tool?: string;
  callId?: string;
}

/**
 * Sets the per-invocation keys (replacing the previous invocation's).
 * Call at the top of every handler.
 */
export function logStep(keys: StepLogKeys): void {
  logger.resetKeys();
  logger.appendKeys({ ...keys });
}
